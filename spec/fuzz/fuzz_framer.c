/*
 * fuzz_framer.c: libFuzzer driver for core/rd_framer.c (see README.md).
 *
 * An input is a few bytes of settings, then the lengths of the reads, then
 * the stream. The stream is framed three ways: by a plain reference parser
 * written here from the rules' definitions, by the framer in one read, and
 * by the framer in the reads the input asks for (and a byte per read when
 * the stream is short). All three must agree frame for frame, on the error
 * and on where it starts. Each read is a fresh allocation freed after
 * rd_framer_keep, so ASan sees any span or kept byte left pointing into it.
 *
 *   in[0]  bits 0-2 rule (mod 5), bit 3 change rule after every frame,
 *          bits 4-6 delimiter, bit 7 leave framing (take) after a frame
 *   in[1]  max: itself below 192, else one of bigmax[]
 *   in[2]  after how many frames take() is called (mod 8), with bit 7 of in[0]
 *   in[3]  how many read lengths follow (mod 32); each is a byte b: b % 8 if
 *          b < 128 (short reads, 0 included), else (b - 128) * 8
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_framer.c:%d: %s\n", __LINE__, #c);                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const rd_frame_rule_t *const rules[] = {&rd_frame_line, &rd_frame_u8, &rd_frame_u16,
                                               &rd_frame_u32, &rd_frame_netstring};
#define NRULES 5

/* Self-overlapping ones ("aa", "abab", "aab") are where a resumed search
 * goes wrong. */
static const struct {
    const char *d;
    size_t n;
} delims[8] = {{"\n", 1},  {"\r\n", 2}, {"\r\n\r\n", 4}, {"\0", 1},
               {"aab", 3}, {"aa", 2},   {"abab", 4},     {"ab", 2}};

static const size_t bigmax[8] = {255, 256, 1000, 4096, 65535, 65536, 1u << 20, SIZE_MAX};

typedef struct {
    int rule0, cycle;
    long take_after; /* -1: never */
    const char *delim;
    size_t dlen, max;
} conf_t;

static const rd_frame_rule_t *rule_at(const conf_t *c, long frame)
{
    return rules[c->cycle ? (size_t)(c->rule0 + frame) % NRULES : (size_t)c->rule0];
}

static size_t ndigits(size_t v)
{
    size_t d = 1;
    for (; v >= 10; v /= 10)
        d++;
    return d;
}

static size_t limit(const conf_t *c, const rd_frame_rule_t *r)
{
    size_t head = r == &rd_frame_line  ? c->dlen - 1
                  : r == &rd_frame_u8  ? 0
                  : r == &rd_frame_u16 ? 1
                  : r == &rd_frame_u32 ? 3
                                       : ndigits(c->max) + 1;
    return c->max > SIZE_MAX - head ? SIZE_MAX : c->max + head;
}

/* What one way of framing produced. */
typedef struct {
    uint8_t *enc; /* the frames, each as 8 bytes of length then payload */
    size_t n, cap;
    long frames;
    int err;         /* 0, or the error of the first bad frame */
    size_t err_off;  /* where that frame starts in the stream */
    uint64_t decl;   /* f->declared after RD_ETOOBIG */
    size_t take_off; /* where take() began, or SIZE_MAX */
} result_t;

static void put(result_t *r, const void *p, size_t n)
{
    if (r->n + n > r->cap) {
        size_t cap = (r->n + n) * 2 + 256;
        uint8_t *b = realloc(r->enc, cap);
        REQUIRE(b != NULL);
        r->enc = b;
        r->cap = cap;
    }
    if (n) memcpy(r->enc + r->n, p, n);
    r->n += n;
}

static void put_frame(result_t *r, const void *p, size_t n)
{
    uint64_t len = n;
    put(r, &len, sizeof len);
    put(r, p, n);
    r->frames++;
}

/*{====================================================================
 * The reference: each rule as its definition says, with no state between
 * calls and no care for speed.
 *=====================================================================*/

/* As a rule's scan: > 0 a frame of that size with its payload at *off, *len;
 * 0 more bytes needed; RD_ETOOBIG (with *decl) or RD_EFRAME. */
static long ref_scan(const conf_t *c, const rd_frame_rule_t *rule, const uint8_t *p, size_t n,
                     size_t *off, size_t *len, uint64_t *decl)
{
    *decl = 0;
    if (rule == &rd_frame_line) {
        for (size_t i = 0; i + c->dlen <= n; i++)
            if (memcmp(p + i, c->delim, c->dlen) == 0) {
                if (i > c->max || i + c->dlen > RD_FRAME_MAX) return RD_ETOOBIG;
                *off = 0;
                *len = i;
                return (long)(i + c->dlen);
            }
        /* no line of max bytes can end here any more */
        if ((c->max <= SIZE_MAX - c->dlen && n >= c->max + c->dlen) || n >= RD_FRAME_MAX)
            return RD_ETOOBIG;
        return 0;
    }
    if (rule == &rd_frame_netstring) {
        size_t nd = 0;
        while (nd < n && p[nd] >= '0' && p[nd] <= '9')
            nd++;
        if (nd == 0) return n ? RD_EFRAME : 0;
        if (p[0] == '0' && nd > 1) return RD_EFRAME;
        uint64_t v = 0;
        for (size_t i = 0; i < nd; i++) { /* refused at the digit that passes max */
            unsigned dg = (unsigned)(p[i] - '0');
            if (v > (UINT64_MAX - dg) / 10) {
                *decl = UINT64_MAX;
                return RD_ETOOBIG;
            }
            v = v * 10 + dg;
            if (v > c->max) {
                *decl = v;
                return RD_ETOOBIG;
            }
        }
        if (nd == n) return 0;
        if (p[nd] != ':') return RD_EFRAME;
        size_t h = nd + 1;
        if (v > SIZE_MAX - h - 1 || h + v + 1 > RD_FRAME_MAX) { /* no frame is longer */
            *decl = v;
            return RD_ETOOBIG;
        }
        if (n < h + v + 1) return 0;
        if (p[h + v] != ',') return RD_EFRAME;
        *off = h;
        *len = (size_t)v;
        return (long)(h + v + 1);
    }
    size_t h = rule == &rd_frame_u8 ? 1 : rule == &rd_frame_u16 ? 2 : 4;
    if (n < h) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < h; i++)
        v = v * 256 + p[i];
    if (v > c->max || h + v > RD_FRAME_MAX) {
        *decl = v;
        return RD_ETOOBIG;
    }
    if (n - h < v) return 0;
    *off = h;
    *len = (size_t)v;
    return (long)(h + v);
}

static void ref_run(const conf_t *c, const uint8_t *data, size_t n, result_t *r)
{
    memset(r, 0, sizeof *r);
    r->take_off = SIZE_MAX;
    size_t pos = 0;
    for (;;) {
        if (r->frames == c->take_after) {
            r->take_off = pos;
            return;
        }
        size_t off = 0, len = 0;
        long k = ref_scan(c, rule_at(c, r->frames), data + pos, n - pos, &off, &len, &r->decl);
        if (k == 0) return;
        if (k < 0) {
            r->err = (int)k;
            r->err_off = pos;
            return;
        }
        put_frame(r, data + pos + off, len);
        pos += (size_t)k;
    }
}

/*{====================================================================
 * The framer, in reads
 *=====================================================================*/

static int inside(const char *p, size_t n, const char *base, size_t len)
{
    return base && (uintptr_t)p >= (uintptr_t)base && n <= len &&
           (uintptr_t)p - (uintptr_t)base <= len - n;
}

/* Frame data[0..n) in reads of the lengths lens[0..nlens), repeated until
 * the stream ends (nlens 0: one read). */
static void framer_run(const conf_t *c, const uint8_t *data, size_t n, const uint8_t *lens,
                       size_t nlens, result_t *r)
{
    memset(r, 0, sizeof *r);
    r->take_off = SIZE_MAX;
    rd_framer_t f;
    rd_framer_init(&f);
    rd_framer_set_line(&f, c->delim, c->dlen, c->max);
    rd_framer_set_rule(&f, rule_at(c, 0));
    size_t at = 0, k = 0, zeros = 0;
    int done = 0;
    while (!done) {
        size_t len = n - at;
        if (nlens) {
            uint8_t b = lens[k++ % nlens];
            size_t want = b < 128 ? b % 8 : (size_t)(b - 128) * 8;
            if (want == 0 && ++zeros > 2) want = 1; /* empty reads, but not forever */
            if (want) zeros = 0;
            if (want < len) len = want;
        }
        size_t end = at + len;
        done = end == n; /* the last read, even if empty */
        char *rd = malloc(len ? len : 1);
        REQUIRE(rd != NULL);
        if (len) memcpy(rd, data + at, len);
        int kept = rd_framer_pending(&f) > 0;
        REQUIRE(rd_framer_feed(&f, rd, len) == 0);
        for (;;) {
            if (r->frames == c->take_after) {
                rd_span_t s = rd_framer_take(&f);
                REQUIRE(s.p != NULL && s.n <= end);
                REQUIRE(s.n == 0 || memcmp(s.p, data + end - s.n, s.n) == 0);
                r->take_off = end - s.n;
                REQUIRE(rd_framer_pending(&f) == 0);
                done = 1;
                break;
            }
            rd_span_t s;
            int rc = rd_framer_next(&f, &s);
            if (rc == 0) break;
            if (rc < 0) {
                REQUIRE(rc == RD_ETOOBIG || rc == RD_EFRAME);
                REQUIRE(s.n > 0 && s.n <= end);
                REQUIRE(inside(s.p, s.n, kept ? f.buf : rd, kept ? f.len : len));
                REQUIRE(memcmp(s.p, data + end - s.n, s.n) == 0); /* every unconsumed byte */
                r->err = rc;
                r->err_off = end - s.n;
                r->decl = f.declared;
                REQUIRE(rd_framer_pending(&f) == 0);
                REQUIRE(rd_framer_next(&f, &s) == 0);
                done = 1;
                break;
            }
            REQUIRE(rc == 1);
            /* without kept bytes a frame is a span of the read: no copy */
            REQUIRE(inside(s.p, s.n, kept ? f.buf : rd, kept ? f.len : len));
            put_frame(r, s.p, s.n);
            if (c->cycle) rd_framer_set_rule(&f, rule_at(c, r->frames));
        }
        REQUIRE(rd_framer_keep(&f) == 0);
        REQUIRE(rd_framer_pending(&f) <= limit(c, f.rule));
        REQUIRE(rd_framer_pending(&f) <= end);
        if (rd_framer_pending(&f) == 0) REQUIRE(f.cap <= 1024); /* idle holds little */
        free(rd);
        at = end;
    }
    rd_framer_destroy(&f);
}

static void same(const result_t *a, const result_t *b)
{
    REQUIRE(a->frames == b->frames);
    REQUIRE(a->n == b->n);
    REQUIRE(a->n == 0 || memcmp(a->enc, b->enc, a->n) == 0);
    REQUIRE(a->err == b->err);
    if (a->err) REQUIRE(a->err_off == b->err_off);
    if (a->err == RD_ETOOBIG) REQUIRE(a->decl == b->decl);
    REQUIRE(a->take_off == b->take_off);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 4) return 0;
    conf_t c;
    c.rule0 = (in[0] & 7) % NRULES;
    c.cycle = (in[0] >> 3) & 1;
    c.delim = delims[(in[0] >> 4) & 7].d;
    c.dlen = delims[(in[0] >> 4) & 7].n;
    c.take_after = in[0] & 0x80 ? in[2] % 8 : -1;
    c.max = in[1] < 192 ? in[1] : bigmax[in[1] % 8];
    size_t nlens = in[3] % 32;
    if (nlens > size - 4) nlens = size - 4;
    const uint8_t *lens = in + 4;
    const uint8_t *data = in + 4 + nlens;
    size_t n = size - 4 - nlens;

    result_t ref, once, cut, bytes;
    ref_run(&c, data, n, &ref);
    framer_run(&c, data, n, NULL, 0, &once);
    same(&ref, &once);
    if (nlens) {
        framer_run(&c, data, n, lens, nlens, &cut);
        same(&once, &cut);
        free(cut.enc);
    }
    if (n <= 512) {
        static const uint8_t one = 1;
        framer_run(&c, data, n, &one, 1, &bytes);
        same(&once, &bytes);
        free(bytes.enc);
    }
    free(ref.enc);
    free(once.enc);
    return 0;
}
