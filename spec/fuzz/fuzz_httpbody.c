/*
 * fuzz_httpbody.c: libFuzzer driver for a server connection's request
 * stream with streamed bodies: core/rd_http.c's head parser and body reader
 * (rd_http_body_read: Content-Length and chunked across reads) on
 * core/rd_framer.c's buffer, in the loop bindings/lhttp.c's frame() runs
 * (lhttp.c itself needs Lua; this is its C skeleton over the same calls).
 *
 * An input is three bytes of settings, then the bytes of pipelined requests:
 *   in[0]  bits 0-1 the limits; bits 2-3 the whole-body limit (0, 8, 100,
 *          huge: bodies above it are streamed, at or under it waited for
 *          whole and decoded again from their start at each read, as
 *          lhttp.c does)
 *   in[1]  seed of the read lengths
 *   in[2]  seed of the pauses: after a part of a streamed body the loop
 *          stops, its bytes kept in the framer, and goes on at the next
 *          read (pauseReading, then resumeReading's redelivery)
 *
 * The same bytes parsed in one buffer, every body read in one pass, is the
 * reference: both must give the same requests (method, target, fields, the
 * body's data) in order, and the same error status at the same request;
 * a request unfinished at the end is compared by neither. (At the end the
 * head is parsed once more even if rd_http_need_parse says no: it may only
 * delay an error to the next line end.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_framer.h"
#include "rd_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_httpbody.c:%d: %s\n", __LINE__, #c);                             \
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
static const uint64_t wholes[4] = {0, 8, 100, UINT64_MAX};

/* what a run saw: the finished requests' bytes, then the error */
typedef struct out {
    char *p;
    size_t n, cap;
    size_t done; /* bytes of whole requests (the rest is the one being read) */
    long status; /* the error, or 0 */
} out_t;

static void put(out_t *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->p = realloc(o->p, o->cap);
        REQUIRE(o->p);
    }
    if (n) memcpy(o->p + o->n, p, n);
    o->n += n;
}

static void puthead(out_t *o, const rd_http_req_t *req)
{
    o->n = o->done; /* (an unfinished one before it cannot be: bytes are in order) */
    put(o, "H", 1);
    put(o, req->method.p, req->method.n);
    put(o, " ", 1);
    put(o, req->target.p, req->target.n);
    for (size_t i = 0; i < req->nheaders; i++) {
        put(o, "\n", 1);
        put(o, req->headers[i].name.p, req->headers[i].name.n);
        put(o, ":", 1);
        put(o, req->headers[i].value.p, req->headers[i].value.n);
    }
    put(o, "\nB", 2);
}

static void finish(out_t *o)
{
    put(o, "E", 1);
    o->done = o->n;
}

/* The reference: every byte in one buffer. */
static void reference(const char *p, size_t n, const rd_http_limits_t *lim, out_t *o)
{
    rd_http_header_t hs[NH];
    size_t pos = 0;
    while (pos < n) {
        rd_http_req_t req = {.headers = hs, .cap = NH};
        long h = rd_http_parse_request(p + pos, n - pos, &req, lim);
        if (h == 0) return;
        if (h < 0) {
            o->status = -h;
            return;
        }
        pos += (size_t)h;
        puthead(o, &req);
        rd_http_body_reader_t b;
        rd_http_body_init(&b, &req, lim);
        while (!rd_http_body_done(&b)) {
            rd_http_span_t d;
            long r = rd_http_body_read(&b, p + pos, n - pos, &d);
            if (r < 0) {
                o->status = -r;
                return;
            }
            put(o, d.p, d.n);
            pos += (size_t)r;
            if (r == 0 || (pos == n && !rd_http_body_done(&b))) return;
        }
        finish(o);
    }
}

/* lhttp.c's stateless decode of a chunked body that may be whole: its
 * encoded length, 0 not yet, -1 above whole, or -status */
static long whole_chunked(const char *p, size_t n, const rd_http_limits_t *lim, uint64_t whole,
                          out_t *o)
{
    rd_http_chunked_t c;
    rd_http_chunked_init(&c, lim);
    size_t used = 0;
    while (!rd_http_chunked_done(&c)) {
        rd_http_span_t d;
        long r = rd_http_chunked_decode(&c, p + used, n - used, &d);
        if (r < 0) return r;
        if (c.total > whole) return -1;
        if (o) put(o, d.p, d.n);
        used += (size_t)r;
        if (r == 0 || used == n) {
            if (rd_http_chunked_done(&c)) break;
            return 0;
        }
    }
    return (long)used;
}

typedef struct conn {
    rd_framer_t f;
    const rd_http_limits_t *lim;
    uint64_t whole;
    int streaming;
    rd_http_body_reader_t b;
    size_t scanned;
    unsigned pauses;
    int failed;
} conn_t;

/* one read's bytes (n 0: a redelivery), as lhttp.c's frame(); -> progress made */
static int deliver(conn_t *c, const char *p, size_t n, out_t *o)
{
    rd_framer_t *f = &c->f;
    REQUIRE(rd_framer_feed(f, p, n) == 0);
    rd_http_header_t hs[NH];
    int progress = 0;
    while (!c->failed) {
        rd_span_t s = rd_framer_peek(f);
        if (s.n == 0) break;
        if (c->streaming) {
            rd_http_span_t d;
            long r = rd_http_body_read(&c->b, s.p, s.n, &d);
            if (r < 0) {
                o->status = -r;
                c->failed = 1;
                break;
            }
            REQUIRE((size_t)r <= s.n && d.n <= (size_t)r);
            REQUIRE(!d.n || (d.p >= s.p && d.p + d.n <= s.p + r));
            put(o, d.p, d.n);
            rd_framer_skip(f, (size_t)r);
            progress |= r > 0;
            if (rd_http_body_done(&c->b)) {
                c->streaming = 0;
                finish(o);
            } else if (r == 0) {
                break;
            }
            if (d.n && (c->pauses & 1)) { /* the handler does not read: paused */
                c->pauses = c->pauses >> 1 | (c->pauses & 1) << 7;
                break;
            }
            c->pauses = c->pauses >> 1 | (c->pauses & 1) << 7;
            continue;
        }
        if (c->scanned && c->scanned <= s.n && !rd_http_need_parse(s.p, c->scanned, s.n, c->lim))
            break;
        rd_http_req_t req = {.headers = hs, .cap = NH};
        long h = rd_http_parse_request(s.p, s.n, &req, c->lim);
        if (h == 0) {
            c->scanned = s.n;
            break;
        }
        c->scanned = 0;
        if (h < 0) {
            o->status = -h;
            c->failed = 1;
            break;
        }
        size_t whole = (size_t)h;
        int streamed = 0;
        long blen = 0;
        if (req.body == RD_HTTP_BODY_LENGTH) {
            streamed = req.content_length > c->whole;
            if (!streamed && s.n - whole < req.content_length) break;
        } else if (req.body == RD_HTTP_BODY_CHUNKED) {
            blen = whole_chunked(s.p + whole, s.n - whole, c->lim, c->whole, NULL);
            streamed = blen == -1;
            if (blen < -1) {
                o->status = -blen;
                c->failed = 1;
                break;
            }
            if (blen == 0) break;
        }
        puthead(o, &req);
        progress = 1;
        if (streamed) {
            rd_http_body_init(&c->b, &req, c->lim);
            c->streaming = 1;
            rd_framer_skip(f, whole);
            continue;
        }
        if (req.body == RD_HTTP_BODY_LENGTH) {
            put(o, s.p + whole, (size_t)req.content_length);
            whole += (size_t)req.content_length;
        } else if (req.body == RD_HTTP_BODY_CHUNKED) {
            REQUIRE(whole_chunked(s.p + whole, s.n - whole, c->lim, c->whole, o) == blen);
            whole += (size_t)blen;
        }
        finish(o);
        rd_framer_skip(f, whole);
    }
    REQUIRE(rd_framer_keep(f) == 0);
    return progress;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 3) return 0;
    const rd_http_limits_t *lim = &limits[in[0] & 3];
    uint64_t whole = wholes[(in[0] >> 2) & 3];
    unsigned seed = in[1];
    const char *p = (const char *)in + 3;
    size_t n = size - 3;

    out_t ref = {0}, got = {0};
    reference(p, n, lim, &ref);

    conn_t c = {.lim = lim, .whole = whole, .pauses = in[2]};
    rd_framer_init(&c.f);
    c.f.max = RD_FRAME_MAX;
    size_t pos = 0;
    while (pos < n && !c.failed) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 1 + (seed >> 16) % 37;
        if ((seed >> 8) % 5 == 0) len = n - pos; /* sometimes the rest at once */
        if (len > n - pos) len = n - pos;
        /* each read in an allocation of its own, freed after it */
        char *r = malloc(len);
        REQUIRE(r);
        memcpy(r, p + pos, len);
        deliver(&c, r, len, &got);
        free(r);
        pos += len;
    }
    /* the end: resumeReading's redeliveries until nothing moves */
    for (int k = 0; k < 1 << 20 && !c.failed && deliver(&c, "", 0, &got); k++) {
    }
    /* a head parse skipped by rd_http_need_parse only delays its error to
     * the next line end: parse once more as if one had come */
    c.scanned = 0;
    for (int k = 0; k < 1 << 20 && !c.failed && deliver(&c, "", 0, &got); k++) {
        c.scanned = 0;
    }
    rd_framer_destroy(&c.f);

    REQUIRE(got.status == ref.status);
    REQUIRE(got.done == ref.done);
    REQUIRE(ref.done == 0 || memcmp(got.p, ref.p, ref.done) == 0);
    free(ref.p);
    free(got.p);
    return 0;
}
