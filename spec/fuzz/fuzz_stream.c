/*
 * fuzz_stream.c: libFuzzer driver for a coroutine stream's reads on the
 * framer (rd_framer_until, rd_framer_peek/skip: what bindings/lstream.c
 * does for readuntil, readexactly and read). See README.md.
 *
 * The stream is fed in the reads the input asks for, each a fresh
 * allocation freed after rd_framer_keep (ASan sees any span left pointing
 * into it). After each read, and again between reads (from the bytes the
 * framer kept, as a task that reads later does), the input's script of
 * takes runs: "until the delimiter" or "exactly n" or "up to n". A plain
 * model (every unconsumed byte in one array, a naive search) must give the
 * same answer to every take: the same bytes, "not yet", or "too long".
 *
 *   in[0]  bits 0-2 the delimiter (of delims[]), bits 3-7 the limit (x 3)
 *   in[1]  how many reads (mod 16); then a length byte per read (b % 8 if
 *          b < 128, else (b - 128) * 4), then a script byte per read:
 *          bits 0-1 what to take (until / exact / some / until), bits 2-4 n,
 *          bits 5-7 how many takes after the read (and as many between)
 *   the rest: the stream
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_stream.c:%d: %s\n", __LINE__, #c);                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* self-overlapping ones are where a resumed search goes wrong */
static const struct {
    const char *d;
    size_t n;
} delims[8] = {{"\n", 1},  {"\r\n", 2}, {"?", 1},    {"\0", 1},
               {"aab", 3}, {"aa", 2},   {"abab", 4}, {"ab", 2}};

typedef struct {
    uint8_t buf[1 << 16];
    size_t n; /* unconsumed bytes */
} model_t;

/* the model's answer: 1 and the bytes, 0 not yet, -1 too long */
static int model_until(model_t *m, const char *d, size_t dlen, size_t limit, size_t *len)
{
    for (size_t i = 0; i + dlen <= m->n; i++) {
        if (memcmp(m->buf + i, d, dlen) == 0) {
            if (i > limit) return -1;
            *len = i;
            return 1;
        }
    }
    size_t next = m->n >= dlen ? m->n - dlen + 1 : 0;
    return next > limit ? -1 : 0;
}

static void consume(model_t *m, size_t k)
{
    memmove(m->buf, m->buf + k, m->n - k);
    m->n -= k;
}

static void take(rd_framer_t *f, model_t *m, int what, size_t n, const char *d, size_t dlen,
                 size_t limit)
{
    if (what == 0 || what == 3) {
        rd_span_t s;
        size_t len = 0;
        int want = model_until(m, d, dlen, limit, &len);
        int got = rd_framer_until(f, d, dlen, limit, &s);
        REQUIRE((want == 1) == (got == 1));
        REQUIRE((want == 0) == (got == 0));
        REQUIRE((want == -1) == (got == RD_ETOOBIG));
        if (got == 1) {
            REQUIRE(s.n == len && memcmp(s.p, m->buf, len) == 0);
            consume(m, len + dlen);
        }
        return;
    }
    rd_span_t s = rd_framer_peek(f);
    REQUIRE(s.n == m->n && memcmp(s.p, m->buf, s.n) == 0);
    if (what == 1 && s.n < n) return; /* exactly n: not yet */
    size_t k = s.n < n ? s.n : n;
    rd_framer_skip(f, k);
    consume(m, k);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 2) return 0;
    const char *d = delims[in[0] & 7].d;
    size_t dlen = delims[in[0] & 7].n;
    size_t limit = (size_t)(in[0] >> 3) * 3;
    size_t nreads = in[1] % 16;
    if (size < 2 + 2 * nreads) return 0;
    const uint8_t *lens = in + 2, *script = in + 2 + nreads;
    const uint8_t *stream = in + 2 + 2 * nreads;
    size_t left = size - 2 - 2 * nreads;
    static model_t m;
    m.n = 0;
    rd_framer_t f;
    rd_framer_init(&f);
    for (size_t r = 0; r < nreads || left; r++) {
        size_t len = left;
        uint8_t sc = 0x20; /* past the script: one until per read */
        if (r < nreads) {
            len = lens[r] < 128 ? lens[r] % 8u : (size_t)(lens[r] - 128) * 4;
            sc = script[r];
        }
        if (len > left) len = left;
        if (m.n + len > sizeof m.buf) break;
        uint8_t *read = malloc(len ? len : 1);
        memcpy(read, stream, len);
        stream += len;
        left -= len;
        memcpy(m.buf + m.n, read, len);
        m.n += len;
        REQUIRE(rd_framer_feed(&f, (const char *)read, len) == 0);
        int what = sc & 3, takes = 1 + (sc >> 5);
        size_t n = (sc >> 2) & 7;
        for (int i = 0; i < takes; i++)
            take(&f, &m, what, n, d, dlen, limit);
        REQUIRE(rd_framer_keep(&f) == 0);
        free(read);
        REQUIRE(rd_framer_pending(&f) == m.n);
        /* between reads: from what the framer kept (lstream.c's feed of nothing) */
        if (m.n) {
            REQUIRE(rd_framer_feed(&f, "", 0) == 0);
            for (int i = 0; i < takes; i++)
                take(&f, &m, (what + 1) & 3, n + 1, d, dlen, limit);
            REQUIRE(rd_framer_keep(&f) == 0);
            REQUIRE(rd_framer_pending(&f) == m.n);
        }
        if (r >= nreads && left == 0) break;
    }
    rd_framer_destroy(&f);
    return 0;
}
