/* test_http_oracle.c: rd_http against Debian's http-parser 2.9.4 (a
 * test-only oracle) on generated *valid* requests: both must read the same
 * method, target, version, header fields (in order), body framing,
 * keep-alive, body bytes and request boundaries, alone and pipelined. The
 * generator is a seeded PRNG over methods, targets, header sets, optional
 * whitespace, Content-Length and chunked bodies (with extensions and
 * trailers). http-parser is lenient where rd_http is strict, so it is an
 * oracle only for valid input; the strict rules have their own table in
 * test_http.c. */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_http.h"
#include "test.h"

/*{===== the generator ===== */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf_t;

static void put(sbuf_t *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p);
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(sbuf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) /* 0..n-1, xorshift64* */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 2685821657736338717ull) >> 33) % n;
}

static void put_ows(sbuf_t *b)
{
    static const char *ows[] = {"", "", "", " ", "  ", "\t", " \t "};
    puts_(b, ows[rnd(7)]);
}

static void put_from(sbuf_t *b, const char *set, size_t minn, size_t maxn)
{
    size_t n = minn + rnd((uint32_t)(maxn - minn + 1)), len = strlen(set);
    for (size_t k = 0; k < n; k++)
        put(b, &set[rnd((uint32_t)len)], 1);
}

static void put_case(sbuf_t *b, const char *name) /* random letter case */
{
    for (const char *c = name; *c; c++) {
        char ch = *c;
        if (ch >= 'a' && ch <= 'z' && rnd(3) == 0)
            ch = (char)(ch - 32);
        else if (ch >= 'A' && ch <= 'Z' && rnd(3) == 0)
            ch = (char)(ch + 32);
        put(b, &ch, 1);
    }
}

static const char *methods[] = {"GET",     "HEAD",  "POST",  "PUT",      "DELETE",
                                "OPTIONS", "PATCH", "TRACE", "PROPFIND", "MKCOL"};
#define PATHCH "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
#define TOKCH "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
#define VALCH                                                                                      \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./"               \
    ":;<=>?@[\\]^_`{|}~"

/* One valid request; *body_out gets its body's data (decoded). */
static void gen_request(sbuf_t *b, sbuf_t *body_out)
{
    const char *m = methods[rnd(10)];
    puts_(b, m);
    puts_(b, " ");
    int t = (int)rnd(6);
    if (t == 0 && strcmp(m, "OPTIONS") == 0) {
        puts_(b, "*");
    } else if (t == 1) {
        puts_(b, "http://example.org");
        if (rnd(2)) puts_(b, ":8080");
        puts_(b, "/");
        put_from(b, PATHCH, 0, 12);
    } else {
        for (int seg = (int)rnd(4); seg >= 0; seg--) {
            puts_(b, "/");
            put_from(b, PATHCH, 0, 10);
        }
        if (rnd(2)) {
            puts_(b, "?");
            put_from(b, PATHCH "/?", 0, 20);
        }
        if (rnd(4) == 0) puts_(b, "%20%C3%A9");
    }
    int minor = rnd(5) ? 1 : 0;
    puts_(b, minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");

    int nfields = (int)rnd(9), host_at = minor || rnd(2) ? (int)rnd((uint32_t)nfields + 1) : -1;
    int framing = minor ? (int)rnd(3) : (int)rnd(2); /* none, length, chunked (1.1 only) */
    int frame_at = framing ? (int)rnd((uint32_t)nfields + 1) : -1;
    int conn_at = rnd(3) == 0 ? (int)rnd((uint32_t)nfields + 1) : -1;
    static const char *names[] = {"User-Agent",   "Accept",  "Accept-Language", "Cookie",
                                  "X-Request-Id", "Referer", "Cache-Control",   "Upgrade-Insecure"};
    size_t cl = rnd(4) == 0 ? 0 : rnd(200);
    for (int f = 0; f <= nfields; f++) {
        if (f == host_at) {
            put_case(b, "Host");
            puts_(b, ":");
            put_ows(b);
            put_from(b, "abcdefghijklmnopqrstuvwxyz.-", 1, 12);
            if (rnd(2)) puts_(b, ":8080");
            put_ows(b);
            puts_(b, "\r\n");
        }
        if (f == frame_at) {
            if (framing == 1) {
                put_case(b, "Content-Length");
                puts_(b, ":");
                put_ows(b);
                char num[32];
                snprintf(num, sizeof num, "%zu", cl);
                puts_(b, num);
            } else {
                put_case(b, "Transfer-Encoding");
                puts_(b, ":");
                put_ows(b);
                put_case(b, "chunked");
            }
            /* http-parser refuses whitespace after "chunked" and a tab after a
             * length (RFC 9112 allows both; test_http.c has the cases) */
            if (framing == 1 && rnd(2)) puts_(b, "  ");
            puts_(b, "\r\n");
        }
        if (f == conn_at) {
            put_case(b, "Connection");
            puts_(b, ":");
            put_ows(b);
            put_case(b, rnd(2) ? "close" : "keep-alive");
            puts_(b, "\r\n");
        }
        if (f == nfields) break;
        if (rnd(3))
            put_case(b, names[rnd(8)]);
        else
            put_from(b, TOKCH, 1, 16);
        puts_(b, ":");
        put_ows(b);
        if (rnd(3)) {
            put_from(b, VALCH, 1, 30);
            if (rnd(3) == 0) {
                puts_(b, " \t");
                put_from(b, VALCH, 1, 10);
            }
        }
        put_ows(b);
        puts_(b, "\r\n");
    }
    puts_(b, "\r\n");

    if (framing == 1) {
        size_t at = body_out->n;
        put_from(body_out, VALCH " \r\n", cl, cl);
        put(b, body_out->p + at, cl);
    } else if (framing == 2) {
        for (int c = (int)rnd(4); c > 0; c--) {
            size_t n = 1 + rnd(300);
            char size[32];
            snprintf(size, sizeof size, rnd(2) ? "%zx" : "%zX", n);
            if (rnd(4) == 0) puts_(b, "00");
            puts_(b, size);
            if (rnd(4) == 0) puts_(b, ";name=value;flag");
            puts_(b, "\r\n");
            size_t at = body_out->n;
            put_from(body_out, VALCH " \r\n", n, n);
            put(b, body_out->p + at, n);
            puts_(b, "\r\n");
        }
        puts_(b, "0\r\n");
        if (rnd(3) == 0) puts_(b, "X-Trailer: done\r\n");
        puts_(b, "\r\n");
    }
}

/*{===== the oracle ===== */

#define MAXF 32
typedef struct {
    sbuf_t url, body, name[MAXF], value[MAXF];
    int nf, complete, headers_done;
    unsigned method, minor, chunked, keep_alive;
    uint64_t content_length;
} msg_t;

static int on_url(http_parser *p, const char *at, size_t n)
{
    put(&((msg_t *)p->data)->url, at, n);
    return 0;
}
static int on_field(http_parser *p, const char *at, size_t n)
{
    msg_t *m = p->data;            /* a whole message per execute: a name comes in one piece */
    if (m->headers_done) return 0; /* a trailer field: rd_http checks and drops them */
    CHECK(m->nf < MAXF);
    put(&m->name[m->nf++], at, n);
    return 0;
}
static int on_value(http_parser *p, const char *at, size_t n)
{
    msg_t *m = p->data;
    if (m->headers_done) return 0;
    put(&m->value[m->nf - 1], at, n); /* not called for an empty value */
    return 0;
}
static int on_headers_complete(http_parser *p)
{
    msg_t *m = p->data;
    m->headers_done = 1;
    m->method = p->method;
    m->minor = p->http_minor;
    m->chunked = (p->flags & F_CHUNKED) != 0;
    m->content_length = p->content_length;
    m->keep_alive = (unsigned)http_should_keep_alive(p);
    return 0;
}
static int on_body(http_parser *p, const char *at, size_t n)
{
    put(&((msg_t *)p->data)->body, at, n);
    return 0;
}
static int on_message_complete(http_parser *p)
{
    ((msg_t *)p->data)->complete = 1;
    http_parser_pause(p, 1); /* one message per execute */
    return 0;
}

static void msg_free(msg_t *m)
{
    free(m->url.p);
    free(m->body.p);
    for (int k = 0; k < MAXF; k++) {
        free(m->name[k].p);
        free(m->value[k].p);
    }
}

static int span_eq(rd_http_span_t s, const char *p, size_t n)
{
    return s.n == n && (n == 0 || memcmp(s.p, p, n) == 0);
}

/* Take one request at buf[0..len) with both parsers and compare; returns
 * the bytes it took (head and body). */
static size_t compare_one(const char *buf, size_t len, const char *want_body, size_t want_n)
{
    static const rd_http_limits_t lim = {8192, 32768, 100, 1u << 20, 4096};
    rd_http_header_t hs[64];
    rd_http_req_t req = {.headers = hs, .cap = 64};
    long r = rd_http_parse_request(buf, len, &req, &lim);
    if (r <= 0) fprintf(stderr, "rd_http %ld (%s) on:\n%.*s\n", r, req.why, (int)len, buf);
    CHECK(r > 0);

    /* rd_http's body */
    sbuf_t body = {0};
    size_t used = (size_t)r;
    if (req.body == RD_HTTP_BODY_LENGTH) {
        CHECK(len - used >= req.content_length);
        put(&body, buf + used, req.content_length);
        used += req.content_length;
    } else if (req.body == RD_HTTP_BODY_CHUNKED) {
        rd_http_chunked_t c;
        rd_http_chunked_init(&c, &lim);
        while (!rd_http_chunked_done(&c)) {
            rd_http_span_t d;
            long u = rd_http_chunked_decode(&c, buf + used, len - used, &d);
            CHECK(u > 0);
            put(&body, d.p, d.n);
            used += (size_t)u;
        }
    }
    CHECK_EQ(body.n, want_n);
    CHECK(want_n == 0 || memcmp(body.p, want_body, want_n) == 0);

    /* http-parser's reading of the same bytes */
    msg_t m;
    memset(&m, 0, sizeof m);
    http_parser_settings s;
    memset(&s, 0, sizeof s);
    s.on_url = on_url;
    s.on_header_field = on_field;
    s.on_header_value = on_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &m;
    size_t took = http_parser_execute(&p, &s, buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    if (!(e == HPE_OK || e == HPE_PAUSED) || !m.complete)
        fprintf(stderr, "http-parser %s on:\n%.*s\n", http_errno_name(e), (int)len, buf);
    CHECK((e == HPE_OK || e == HPE_PAUSED) && m.complete);

    CHECK_EQ(took, used);
    const char *mname = http_method_str((enum http_method)m.method);
    CHECK(span_eq(req.method, mname, strlen(mname)));
    CHECK(span_eq(req.target, m.url.p, m.url.n));
    CHECK_EQ(req.minor, m.minor);
    CHECK_EQ(req.nheaders, m.nf);
    for (int k = 0; k < m.nf; k++) {
        CHECK(span_eq(hs[k].name, m.name[k].p, m.name[k].n));
        /* http-parser keeps a value's trailing whitespace; RFC 9112 5 says it is not part of it */
        size_t vn = m.value[k].n;
        while (vn && (m.value[k].p[vn - 1] == ' ' || m.value[k].p[vn - 1] == '\t'))
            vn--;
        CHECK(span_eq(hs[k].value, m.value[k].p ? m.value[k].p : "", vn));
    }
    CHECK_EQ(req.body == RD_HTTP_BODY_CHUNKED, m.chunked);
    if (req.body == RD_HTTP_BODY_LENGTH)
        CHECK_EQ(req.content_length, m.content_length);
    else if (!m.chunked)
        CHECK(m.content_length == 0 || m.content_length == UINT64_MAX);
    CHECK_EQ(req.keep_alive, m.keep_alive);
    CHECK_EQ(body.n, m.body.n);
    CHECK(body.n == 0 || memcmp(body.p, m.body.p, body.n) == 0);
    free(body.p);
    msg_free(&m);
    return used;
}

TEST(http_oracle_agrees_on_generated_requests)
{
    int n = 0;
    for (int i = 0; i < 20000; i++) {
        sbuf_t req = {0}, body = {0};
        gen_request(&req, &body);
        CHECK_EQ(compare_one(req.p, req.n, body.p, body.n), req.n);
        free(req.p);
        free(body.p);
        n++;
    }
    CHECK_EQ(n, 20000);
}

TEST(http_oracle_agrees_on_generated_pipelines)
{
    for (int i = 0; i < 2000; i++) {
        sbuf_t all = {0};
        sbuf_t bodies[8] = {{0}};
        size_t ends[8];
        int k = 1 + (int)rnd(8);
        for (int j = 0; j < k; j++) {
            gen_request(&all, &bodies[j]);
            ends[j] = all.n;
        }
        size_t pos = 0;
        for (int j = 0; j < k; j++) {
            pos += compare_one(all.p + pos, all.n - pos, bodies[j].p, bodies[j].n);
            CHECK_EQ(pos, ends[j]);
            free(bodies[j].p);
        }
        free(all.p);
    }
}
