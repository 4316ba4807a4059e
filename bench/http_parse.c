/*
 * http_parse.c: the cost of parsing one request head, rd_http against
 * Debian's http-parser 2.9.4, on the same bytes in the same run (not a test).
 *
 *   make all && build/http_parse [iterations [head]]
 *
 * (head 0-2 runs that head alone, for instruction counts:
 *  valgrind --tool=callgrind build/http_parse 1000 1)
 *
 * For each head it prints ns per parse (the median of 7 rounds) for:
 *   rd_http      rd_http_parse_request (spans for method, target, every field)
 *   http-parser  http_parser_execute with the callbacks a server needs to get
 *                the same spans (url, field, value) and the end of the head
 * Heads: a curl-like GET (83 bytes), a browser GET (705 bytes, like the one
 * in picohttpparser's bench), and a pipeline of 16 short GETs (the
 * TechEmpower plaintext shape), per request. Then the browser head fed a
 * byte per read (a slow client): rd_http re-parsed at every byte, rd_http
 * re-parsed when rd_http_need_parse says, and http-parser (incremental).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rd_http.h"

static const char curl_get[] = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                               "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

static const char browser_get[] =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    "Host: www.kittyhell.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_3; ja-JP-mac; rv:1.9.2.3) "
    "Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    "Keep-Alive: 115\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/"
    "reader/|utmcmd=referral\r\n"
    "\r\n";

#define SHORT_GET "GET /plaintext HTTP/1.1\r\nHost: server\r\nAccept: text/plain\r\n\r\n"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile size_t sink; /* keeps the work from being optimised away */

/*{===== rd_http ===== */

static size_t run_rd(const char *buf, size_t len)
{
    rd_http_header_t hs[32];
    rd_http_req_t req = {.headers = hs, .cap = 32};
    size_t pos = 0, n = 0;
    while (pos < len) {
        long r = rd_http_parse_request(buf + pos, len - pos, &req, NULL);
        if (r <= 0) {
            fprintf(stderr, "rd_http: %ld (%s)\n", r, req.why ? req.why : "incomplete");
            exit(1);
        }
        pos += (size_t)r;
        n += req.nheaders;
    }
    return n;
}

/*{===== http-parser ===== */

typedef struct {
    const char *url, *field[32], *value[32];
    size_t url_n, field_n[32], value_n[32];
    int nf, done, in_field; /* in_field: the last callback was a name's */
} spans_t;

static int hp_url(http_parser *p, const char *at, size_t n)
{
    spans_t *s = p->data;
    s->url = at;
    s->url_n = n;
    return 0;
}
static int hp_field(http_parser *p, const char *at, size_t n)
{
    spans_t *s = p->data;
    if (s->in_field) { /* a name in pieces (a read ended inside it): a server copies them */
        s->field_n[s->nf - 1] += n;
    } else if (s->nf < 32) {
        s->field[s->nf] = at;
        s->field_n[s->nf] = n;
        s->value_n[s->nf] = 0;
        s->nf++;
    }
    s->in_field = 1;
    return 0;
}
static int hp_value(http_parser *p, const char *at, size_t n)
{
    spans_t *s = p->data;
    if (!s->in_field) {
        s->value_n[s->nf - 1] += n;
    } else {
        s->value[s->nf - 1] = at;
        s->value_n[s->nf - 1] = n;
    }
    s->in_field = 0;
    return 0;
}
static int hp_complete(http_parser *p)
{
    ((spans_t *)p->data)->done++;
    http_parser_pause(p, 1); /* one request at a time, as a server takes them */
    return 0;
}

static http_parser_settings hp_settings;

static size_t run_hp(const char *buf, size_t len)
{
    spans_t s;
    http_parser p;
    size_t pos = 0, n = 0;
    while (pos < len) {
        s.nf = s.done = s.in_field = 0;
        http_parser_init(&p, HTTP_REQUEST);
        p.data = &s;
        size_t took = http_parser_execute(&p, &hp_settings, buf + pos, len - pos);
        enum http_errno e = HTTP_PARSER_ERRNO(&p);
        if ((e != HPE_OK && e != HPE_PAUSED) || !s.done) {
            fprintf(stderr, "http-parser: %s\n", http_errno_name(e));
            exit(1);
        }
        pos += took;
        n += (size_t)s.nf;
    }
    return n;
}

/*{===== a head that arrives a byte per read (a slow client) ===== */

static size_t slow_rd_every(const char *buf, size_t len) /* re-parse at every byte */
{
    rd_http_header_t hs[32];
    rd_http_req_t req = {.headers = hs, .cap = 32};
    long r = 0;
    for (size_t n = 1; n <= len && r == 0; n++)
        r = rd_http_parse_request(buf, n, &req, NULL);
    return r > 0 ? req.nheaders : 0;
}

static size_t slow_rd_lines(const char *buf, size_t len) /* only when rd_http_need_parse says */
{
    rd_http_header_t hs[32];
    rd_http_req_t req = {.headers = hs, .cap = 32};
    long r = 0;
    size_t seen = 0;
    for (size_t n = 1; n <= len && r == 0; n++) {
        if (!rd_http_need_parse(buf, seen, n, NULL)) continue;
        seen = n;
        r = rd_http_parse_request(buf, n, &req, NULL);
    }
    return r > 0 ? req.nheaders : 0;
}

static size_t slow_hp(const char *buf, size_t len) /* http-parser is incremental */
{
    spans_t s;
    http_parser p;
    s.nf = s.done = s.in_field = 0;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &s;
    for (size_t n = 0; n < len && !s.done; n++)
        http_parser_execute(&p, &hp_settings, buf + n, 1);
    return (size_t)s.nf;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median ns per request over 7 rounds of `iters` parses of buf */
static double measure(size_t (*run)(const char *, size_t), const char *buf, size_t len, int per_buf,
                      long iters)
{
    double t[7];
    for (int round = 0; round < 7; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++)
            sink += run(buf, len);
        t[round] = (now_ns() - t0) / (double)iters / per_buf;
    }
    qsort(t, 7, sizeof t[0], cmp);
    return t[3];
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;
    int only = argc > 2 ? atoi(argv[2]) : -1; /* one head (0-2) alone, for callgrind */
    hp_settings.on_url = hp_url;
    hp_settings.on_header_field = hp_field;
    hp_settings.on_header_value = hp_value;
    hp_settings.on_message_complete = hp_complete;

    char pipeline[16 * sizeof SHORT_GET];
    size_t plen = 0;
    for (int k = 0; k < 16; k++) {
        memcpy(pipeline + plen, SHORT_GET, sizeof SHORT_GET - 1);
        plen += sizeof SHORT_GET - 1;
    }
    const struct {
        const char *name, *buf;
        size_t len;
        int per;
    } heads[] = {
        {"curl GET", curl_get, sizeof curl_get - 1, 1},
        {"browser GET", browser_get, sizeof browser_get - 1, 1},
        {"16 pipelined, each", pipeline, plen, 16},
    };
    printf("%-20s %6s %12s %14s %7s\n", "head", "bytes", "rd_http ns", "http-parser ns", "ratio");
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        if (only >= 0 && (size_t)only != k) continue;
        /* both read the same fields, checked once */
        if (run_rd(heads[k].buf, heads[k].len) != run_hp(heads[k].buf, heads[k].len)) {
            fprintf(stderr, "the parsers disagree on %s\n", heads[k].name);
            return 1;
        }
        long it = heads[k].per > 1 ? iters / 8 : iters;
        double rd = measure(run_rd, heads[k].buf, heads[k].len, heads[k].per, it);
        double hp = measure(run_hp, heads[k].buf, heads[k].len, heads[k].per, it);
        printf("%-20s %6zu %12.1f %14.1f %6.2fx\n", heads[k].name, heads[k].len / heads[k].per, rd,
               hp, hp / rd);
    }

    if (only >= 0) return 0;
    /* the browser head a byte per read: ns per whole head */
    const char *slow = browser_get;
    size_t slow_len = sizeof browser_get - 1;
    if (slow_rd_every(slow, slow_len) != slow_hp(slow, slow_len) ||
        slow_rd_lines(slow, slow_len) != slow_hp(slow, slow_len)) {
        fprintf(stderr, "the parsers disagree a byte at a time\n");
        return 1;
    }
    printf("\nbrowser GET, a byte per read (ns per head):\n");
    long it = iters / 200 > 10 ? iters / 200 : 10;
    printf("  rd_http re-parsed at every byte  %10.0f\n",
           measure(slow_rd_every, slow, slow_len, 1, it));
    printf("  rd_http with rd_http_need_parse  %10.0f\n",
           measure(slow_rd_lines, slow, slow_len, 1, it));
    printf("  http-parser (incremental)        %10.0f\n", measure(slow_hp, slow, slow_len, 1, it));
    return 0;
}
