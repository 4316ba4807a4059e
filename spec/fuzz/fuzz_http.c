/*
 * fuzz_http.c: libFuzzer driver for core/rd_http.c (see README.md).
 *
 * An input is two bytes of settings, then the bytes:
 *   in[0]  bits 0-1 the limits (default, small, tiny, huge); bit 2 the bytes
 *          are a chunked body, not a request; bit 3 the bytes are a
 *          response (rd_http_parse_response), bit 4 its request was HEAD
 *   in[1]  seed of the read lengths (of the request, and of the chunked body)
 *
 * A request is parsed whole, then at every prefix (a sample of them when it
 * is long), each prefix in an allocation of exactly its size: a prefix must
 * give 0 or the whole input's error, and once it holds the head, the same
 * head. Fed in reads and parsed only when rd_http_need_parse says, it gives
 * the same success, or the same error or none yet. An accepted head is
 * checked against a plain reference written here from RFC 9112's grammar
 * (lines split on CRLF, then each part checked), and its fields against
 * what the reference reads. A chunked body (after an accepted head, or the
 * whole input in chunked mode) is decoded in one piece and in the pieces
 * in[1] chooses, each a fresh allocation freed after its call: both must
 * agree on the data, the bytes used and the error, and with a reference
 * decoder written here (which has no limits: it is not asked about 413/431).
 * A response is parsed whole and at every prefix (the same rule), and an
 * accepted one is checked against RFC 9112's status line and framing
 * rules by a reference here (check_response); a chunked body after it as a
 * request's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_http.c:%d: %s\n", __LINE__, #c);                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NH 64

static const rd_http_limits_t limits[4] = {
    {8192, 32768, 100, 1u << 20, 4096},
    {40, 80, 4, 64, 8},
    {8, 12, 1, 3, 1},
    {1u << 20, 1u << 20, NH, UINT64_MAX, 1u << 20},
};

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_vchar(unsigned char c) /* field value: VCHAR, obs-text, SP, HTAB */
{
    return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

static int eqi(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n) return 0;
    for (size_t k = 0; k < n; k++) {
        int c = (unsigned char)s[k];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != lit[k]) return 0;
    }
    return 1;
}

/* The reference: head[0..n) is an accepted request head. Checks it line by
 * line and compares what it reads with req. */
static void reference(const char *head, size_t n, const rd_http_req_t *req,
                      const rd_http_limits_t *lim)
{
    REQUIRE(n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0);
    /* every CR is followed by LF, every LF preceded by CR */
    for (size_t k = 0; k < n; k++) {
        if (head[k] == '\r') REQUIRE(k + 1 < n && head[k + 1] == '\n');
        if (head[k] == '\n') REQUIRE(k > 0 && head[k - 1] == '\r');
    }
    size_t pos = 0;
    while (head[pos] == '\r')
        pos += 2; /* leading empty lines */
    const char *line = head + pos;
    const char *eol = memchr(line, '\r', n - pos); /* a CR is always a CRLF here */
    REQUIRE(eol);
    size_t ll = (size_t)(eol - line);
    REQUIRE(memchr(line, 0, ll) == NULL);
    REQUIRE(pos + ll <= lim->max_request_line);
    /* METHOD SP target SP HTTP/1.x */
    const char *sp1 = memchr(line, ' ', ll);
    REQUIRE(sp1 && sp1 > line);
    const char *sp2 = memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line));
    REQUIRE(sp2 && sp2 > sp1 + 1);
    REQUIRE(memchr(sp2 + 1, ' ', ll - (size_t)(sp2 + 1 - line)) == NULL);
    for (const char *c = line; c < sp1; c++)
        REQUIRE(is_tchar((unsigned char)*c));
    for (const char *c = sp1 + 1; c < sp2; c++)
        REQUIRE(*c > 0x20 && *c < 0x7f);
    REQUIRE(eol - (sp2 + 1) == 8 &&
            (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0 || memcmp(sp2 + 1, "HTTP/1.0", 8) == 0));
    REQUIRE(req->method.p == line && req->method.n == (size_t)(sp1 - line));
    REQUIRE(req->target.p == sp1 + 1 && req->target.n == (size_t)(sp2 - sp1 - 1));
    REQUIRE(req->minor == sp2[8] - '0');
    /* field lines */
    size_t hs = pos + ll + 2, nf = 0, ncl = 0, nte = 0, nhost = 0;
    int chunked = 0;
    uint64_t cl = 0;
    REQUIRE(n - hs <= lim->max_header_bytes);
    for (size_t at = hs; at < n - 2;) {
        const char *l = head + at;
        const char *e = l;
        while (*e != '\r')
            e++;
        const char *colon = memchr(l, ':', (size_t)(e - l));
        REQUIRE(colon && colon > l);
        for (const char *c = l; c < colon; c++)
            REQUIRE(is_tchar((unsigned char)*c));
        const char *vs = colon + 1, *ve = e;
        for (const char *c = vs; c < ve; c++)
            REQUIRE(is_vchar((unsigned char)*c));
        while (vs < ve && (*vs == ' ' || *vs == '\t'))
            vs++;
        while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        REQUIRE(nf < req->nheaders);
        const rd_http_header_t *h = &req->headers[nf];
        REQUIRE(h->name.p == l && h->name.n == (size_t)(colon - l));
        REQUIRE(h->value.p == vs && h->value.n == (size_t)(ve - vs));
        size_t nl = (size_t)(colon - l), vl = (size_t)(ve - vs);
        if (eqi(l, nl, "content-length")) {
            ncl++;
            REQUIRE(vl >= 1 && vl <= 19);
            for (size_t k = 0; k < vl; k++) {
                REQUIRE(vs[k] >= '0' && vs[k] <= '9');
                cl = cl * 10 + (uint64_t)(vs[k] - '0');
            }
        } else if (eqi(l, nl, "transfer-encoding")) {
            nte++;
            chunked = eqi(vs, vl, "chunked");
        } else if (eqi(l, nl, "host")) {
            nhost++;
            REQUIRE(req->host.p == vs && req->host.n == vl);
        } else if (eqi(l, nl, "expect") && req->minor == 1) {
            REQUIRE(eqi(vs, vl, "100-continue") && req->expect_continue);
        }
        nf++;
        at = (size_t)(e - head) + 2;
    }
    REQUIRE(nf == req->nheaders && nf <= lim->max_headers);
    REQUIRE(ncl <= 1 && nte <= 1 && nhost <= 1 && !(ncl && nte));
    if (req->minor == 1) REQUIRE(nhost == 1);
    if (nte)
        REQUIRE(chunked && req->minor == 1 && req->body == RD_HTTP_BODY_CHUNKED);
    else if (ncl)
        REQUIRE(req->body == RD_HTTP_BODY_LENGTH && req->content_length == cl &&
                cl <= lim->max_body);
    else
        REQUIRE(req->body == RD_HTTP_BODY_NONE);
}

static long parse_copy(const char *in, size_t n, const rd_http_limits_t *lim, rd_http_req_t *req,
                       rd_http_header_t *hs, char **copy)
{
    char *c = malloc(n ? n : 1);
    REQUIRE(c);
    memcpy(c, in, n);
    req->headers = hs;
    req->cap = NH;
    long r = rd_http_parse_request(c, n, req, lim);
    REQUIRE(r <= (long)n);
    if (r > 0) {
        REQUIRE(!req->why);
        REQUIRE(req->method.p >= c && req->method.p + req->method.n <= c + r);
        REQUIRE(req->target.p >= c && req->target.p + req->target.n <= c + r);
        REQUIRE(req->nheaders <= lim->max_headers && req->nheaders <= NH);
        for (size_t k = 0; k < req->nheaders; k++) {
            REQUIRE(hs[k].name.p >= c && hs[k].name.p + hs[k].name.n <= c + r);
            REQUIRE(hs[k].value.p >= c && hs[k].value.p + hs[k].value.n <= c + r);
        }
    } else if (r < 0) {
        REQUIRE(req->why && rd_http_reason((int)-r));
    }
    if (copy)
        *copy = c;
    else
        free(c);
    return r;
}

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Decode p[0..n) in reads of the lengths *seed chooses (0: one read).
 * Returns the bytes used when done, 0 when more are needed, or -status;
 * the data goes to out (capacity n). */
static long decode(const char *p, size_t n, const rd_http_limits_t *lim, int split, uint32_t seed,
                   char *out, size_t *outn)
{
    rd_http_chunked_t c;
    rd_http_chunked_init(&c, lim);
    size_t pos = 0;
    *outn = 0;
    while (pos < n && !rd_http_chunked_done(&c)) {
        size_t len = n - pos;
        if (split) {
            size_t want =
                next_rand(&seed) % 8 == 0 ? 1 + next_rand(&seed) % 64 : 1 + next_rand(&seed) % 4;
            if (want < len) len = want;
        }
        char *piece = malloc(len);
        REQUIRE(piece);
        memcpy(piece, p + pos, len);
        size_t off = 0;
        while (off < len && !rd_http_chunked_done(&c)) {
            rd_http_span_t d;
            long r = rd_http_chunked_decode(&c, piece + off, len - off, &d);
            if (r < 0) {
                REQUIRE(c.why && c.state < 0);
                free(piece);
                return r;
            }
            REQUIRE((size_t)r <= len - off);
            REQUIRE(d.p >= piece + off && d.p + d.n <= piece + off + (size_t)r);
            REQUIRE(r > 0 || len - off == 0);
            memcpy(out + *outn, d.p, d.n);
            *outn += d.n;
            off += (size_t)r;
        }
        free(piece);
        pos += off;
    }
    REQUIRE(c.total == *outn && c.total <= lim->max_body);
    return rd_http_chunked_done(&c) ? (long)pos : 0;
}

/* The reference chunked decoder (RFC 9112 7.1, no limits): the bytes a whole
 * body takes, 0 if p[0..n) is a prefix of one, -1 if it cannot be; the
 * data goes to out. */
static long ref_chunked(const char *p, size_t n, char *out, size_t *outn)
{
    size_t i = 0;
    *outn = 0;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if ((k) > n) return 0;                                                                     \
    } while (0)
    for (;;) {
        uint64_t size = 0;
        size_t d = 0;
        for (;; i++) {
            NEED(i + 1);
            char c = p[i];
            int h = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (h < 0) break;
            if (++d > 16) return -1;
            size = size << 4 | (uint64_t)h;
        }
        if (d < 1) return -1;
        size_t ws = i;
        for (;; i++) {
            NEED(i + 1);
            if (p[i] != ' ' && p[i] != '\t') break;
        }
        if (p[i] != ';' && (i > ws || p[i] != '\r')) return -1;
        if (p[i] == ';')
            for (;; i++) {
                NEED(i + 1);
                if (p[i] == '\r') break;
                if (!is_vchar((unsigned char)p[i])) return -1;
            }
        NEED(i + 2);
        if (p[i] != '\r' || p[i + 1] != '\n') return -1;
        i += 2;
        if (size == 0) break;
        if (size > n - i) return 0;
        memcpy(out + *outn, p + i, size);
        *outn += size;
        i += size;
        NEED(i + 1); /* byte by byte: a wrong first byte is wrong at once */
        if (p[i] != '\r') return -1;
        NEED(i + 2);
        if (p[i + 1] != '\n') return -1;
        i += 2;
    }
    for (;;) { /* trailer lines, then an empty one */
        NEED(i + 1);
        if (p[i] == '\r') {
            NEED(i + 2);
            return p[i + 1] == '\n' ? (long)(i + 2) : -1;
        }
        size_t s0 = i;
        for (;; i++) {
            NEED(i + 1);
            if (!is_tchar((unsigned char)p[i])) break;
        }
        if (i == s0 || p[i] != ':') return -1;
        for (i++;; i++) {
            NEED(i + 1);
            if (p[i] == '\r') break;
            if (!is_vchar((unsigned char)p[i])) return -1;
        }
        NEED(i + 2);
        if (p[i + 1] != '\n') return -1;
        i += 2;
    }
#undef NEED
}

static void check_chunked(const char *p, size_t n, const rd_http_limits_t *lim, uint32_t seed)
{
    char *a = malloc(n + 1), *b = malloc(n + 1);
    REQUIRE(a && b);
    size_t an, bn;
    long ra = decode(p, n, lim, 0, seed, a, &an);
    long rb = decode(p, n, lim, 1, seed, b, &bn);
    REQUIRE(ra == rb);
    if (ra >= 0) REQUIRE(an == bn && memcmp(a, b, an) == 0);
    if (ra > 0) REQUIRE(an <= (size_t)ra);
    /* and the reference agrees, limits aside */
    size_t cn;
    long rc = ref_chunked(p, n, b, &cn);
    if (ra > 0) REQUIRE(rc == ra && cn == an && memcmp(a, b, an) == 0);
    if (ra == 0) REQUIRE(rc == 0);
    if (ra == -400) REQUIRE(rc == -1);
    free(a);
    free(b);
}

/* An accepted response head: every line ends in CRLF with no other CR or
 * LF, each head starts `HTTP/1.x DDD`, the last head (the final one) is
 * not an interim 1xx, every field line has a token name and a colon, and
 * the framing follows from the status, the flags and the fields. */
static const char *find(const char *p, const char *end, const char *lit)
{
    size_t m = strlen(lit);
    for (; p + m <= end; p++)
        if (memcmp(p, lit, m) == 0) return p;
    return NULL;
}

static void check_response(const char *h, size_t n, const rd_http_resp_t *r, int flags)
{
    REQUIRE(n >= 4 && memcmp(h + n - 4, "\r\n\r\n", 4) == 0);
    for (size_t k = 0; k < n; k++) {
        if (h[k] == '\r') REQUIRE(k + 1 < n && h[k + 1] == '\n');
        if (h[k] == '\n') REQUIRE(k > 0 && h[k - 1] == '\r');
    }
    /* the final head starts after the last interim one */
    size_t start = 0, last = 0;
    for (;;) {
        REQUIRE(n - start >= 16 && memcmp(h + start, "HTTP/1.", 7) == 0);
        REQUIRE(h[start + 7] == '0' || h[start + 7] == '1');
        int code = (h[start + 9] - '0') * 100 + (h[start + 10] - '0') * 10 + (h[start + 11] - '0');
        REQUIRE(code >= 100 && code <= 999);
        const char *end = find(h + start, h + n, "\r\n\r\n");
        REQUIRE(end);
        last = start;
        start = (size_t)(end - h) + 4;
        if (code >= 200 || code == 101) {
            REQUIRE(start == n);
            REQUIRE(code == r->status);
            break;
        }
        REQUIRE(start < n);
    }
    REQUIRE(r->minor == h[last + 7] - '0');
    int cl = 0, te = 0;
    const char *line = find(h + last, h + n, "\r\n") + 2;
    size_t fields = 0;
    while (line < h + n - 2) {
        const char *eol = find(line, h + n, "\r\n");
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        REQUIRE(colon && colon > line);
        for (const char *c = line; c < colon; c++)
            REQUIRE(is_tchar((unsigned char)*c));
        for (const char *c = colon + 1; c < eol; c++)
            REQUIRE(is_vchar((unsigned char)*c));
        REQUIRE(r->headers[fields].name.p == line);
        if (eqi(line, (size_t)(colon - line), "content-length")) cl++;
        if (eqi(line, (size_t)(colon - line), "transfer-encoding")) te++;
        fields++;
        line = eol + 2;
    }
    REQUIRE(fields == r->nheaders && cl <= 1 && te <= 1 && !(cl && te));
    int nobody =
        (flags & RD_HTTP_RESP_HEAD) || r->status < 200 || r->status == 204 || r->status == 304;
    if (nobody)
        REQUIRE(r->body == RD_HTTP_BODY_NONE);
    else if (te)
        REQUIRE(r->body == RD_HTTP_BODY_CHUNKED);
    else if (cl)
        REQUIRE(r->body == RD_HTTP_BODY_LENGTH);
    else
        REQUIRE(r->body == RD_HTTP_BODY_CLOSE && !r->keep_alive);
}

static long parse_resp_copy(const char *in, size_t n, const rd_http_limits_t *lim, int flags,
                            rd_http_resp_t *r, rd_http_header_t *hs, char **keep)
{
    char *c = malloc(n ? n : 1);
    REQUIRE(c);
    memcpy(c, in, n);
    r->headers = hs;
    r->cap = NH;
    long q = rd_http_parse_response(c, n, r, lim, flags);
    REQUIRE(q == -1 || q >= 0);
    if (q < 0) REQUIRE(r->why);
    if (q > 0) {
        REQUIRE((size_t)q <= n && r->status >= 100 && r->status <= 999);
        REQUIRE(r->reason.p >= c && r->reason.p + r->reason.n <= c + q);
    }
    if (keep)
        *keep = c;
    else
        free(c);
    return q;
}

static void fuzz_response(const char *data, size_t n, const rd_http_limits_t *lim, int flags,
                          uint32_t seed)
{
    rd_http_resp_t r;
    rd_http_header_t hs[NH];
    char *whole;
    long q = parse_resp_copy(data, n, lim, flags, &r, hs, &whole);
    if (q > 0) check_response(whole, (size_t)q, &r, flags);
    free(whole);
    size_t step = n <= 512 ? 1 : n / 64;
    for (size_t k = 0; k <= n; k += step) {
        rd_http_resp_t pr;
        rd_http_header_t phs[NH];
        long p = parse_resp_copy(data, k, lim, flags, &pr, phs, NULL);
        if (q > 0 && k >= (size_t)q) {
            REQUIRE(p == q && pr.status == r.status && pr.body == r.body);
            REQUIRE(pr.content_length == r.content_length && pr.keep_alive == r.keep_alive);
        } else {
            REQUIRE(p == 0 || (q < 0 && p == q));
        }
    }
    if (q > 0 && r.body == RD_HTTP_BODY_CHUNKED) check_chunked(data + q, n - (size_t)q, lim, seed);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 2) return 0;
    const rd_http_limits_t *lim = &limits[in[0] & 3];
    int chunked_mode = in[0] & 4;
    uint32_t seed = in[1];
    const char *data = (const char *)in + 2;
    size_t n = size - 2;
    if (chunked_mode) {
        check_chunked(data, n, lim, seed);
        return 0;
    }
    if (in[0] & 8) {
        fuzz_response(data, n, lim, in[0] & 16 ? RD_HTTP_RESP_HEAD : 0, seed);
        return 0;
    }

    rd_http_req_t req;
    rd_http_header_t hs[NH];
    char *whole;
    long r = parse_copy(data, n, lim, &req, hs, &whole);
    if (r > 0) reference(whole, (size_t)r, &req, lim);

    /* prefixes: all of them when short, else 64 spread over the input and
     * the 16 around the head's end */
    size_t step = n <= 512 ? 1 : n / 64;
    for (size_t k = 0; k <= n; k += step) {
        size_t cut[2] = {k, r > 0 && k < 16 ? (size_t)r - 8 + k : (size_t)-1};
        for (int j = 0; j < 2; j++) {
            if (cut[j] > n) continue;
            rd_http_req_t pr;
            rd_http_header_t phs[NH];
            char *copy;
            long q = parse_copy(data, cut[j], lim, &pr, phs, &copy);
            if (r > 0 && cut[j] >= (size_t)r) {
                REQUIRE(q == r);
                REQUIRE(pr.method.p - copy == req.method.p - whole);
                REQUIRE(pr.target.n == req.target.n && pr.nheaders == req.nheaders);
                REQUIRE(pr.body == req.body && pr.content_length == req.content_length);
                REQUIRE(pr.keep_alive == req.keep_alive);
            } else {
                REQUIRE(q == 0 || (r < 0 && q == r));
            }
            free(copy);
        }
    }
    free(whole);

    /* fed in reads, parsed only when rd_http_need_parse says: a success is
     * found at the same length, an error is that error or not found yet */
    size_t seen = 0;
    long q = 0;
    uint32_t rs = seed;
    for (size_t end = 0; end < n && q == 0;) {
        end += 1 + next_rand(&rs) % (next_rand(&rs) % 4 == 0 ? 64 : 4);
        if (end > n) end = n;
        if (!rd_http_need_parse(data, seen, end, lim)) continue;
        seen = end;
        rd_http_req_t pr;
        rd_http_header_t phs[NH];
        q = parse_copy(data, end, lim, &pr, phs, NULL);
    }
    if (r > 0)
        REQUIRE(q == r);
    else
        REQUIRE(q == 0 || q == r);

    if (r > 0 && req.body == RD_HTTP_BODY_CHUNKED)
        check_chunked(data + r, n - (size_t)r, lim, seed);
    return 0;
}
