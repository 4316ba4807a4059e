/* test_framer.c: the framers of core/rd_framer.c, fed the ways a socket can
 * cut a stream. Each read is copied into a fresh allocation and freed after
 * rd_framer_keep, so under ASan a frame or a kept byte that still points
 * into an old read is a use-after-free. The link wraps realloc (the
 * framer's only allocator) to count its calls and to fail one on demand. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rd_framer.h"
#include "test.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static long reallocs;     /* calls so far */
static long fail_at = -1; /* the call (counted from 0) that returns NULL */

void *__wrap_realloc(void *p, size_t n)
{
    if (reallocs++ == fail_at) return NULL;
    return __real_realloc(p, n);
}

typedef struct {
    const rd_frame_rule_t *rule;
    const char *delim;
    size_t dlen, max;
} cfg_t;

static void setup(rd_framer_t *f, const cfg_t *c)
{
    rd_framer_init(f);
    rd_framer_set_rule(f, c->rule);
    rd_framer_set_line(f, c->delim ? c->delim : "\r\n", c->delim ? c->dlen : 2, c->max);
}

static size_t digits(size_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* The most an unfinished frame may hold for the framer to keep it. */
static size_t limit(const cfg_t *c)
{
    size_t head = c->rule == &rd_frame_line        ? (c->delim ? c->dlen : 2) - 1
                  : c->rule == &rd_frame_u8        ? 0
                  : c->rule == &rd_frame_u16       ? 1
                  : c->rule == &rd_frame_u32       ? 3
                  : c->rule == &rd_frame_netstring ? digits(c->max) + 1
                                                   : 0;
    return c->max > SIZE_MAX - head ? SIZE_MAX : c->max + head;
}

/* What a run produced: frames encoded "len:payload", then the error and
 * the rest it handed over. Grown with malloc so realloc counts the
 * framer alone. */
typedef struct {
    char *b;
    size_t n, cap;
    int frames;
    int err;
    char *rest;
    size_t nrest;
    uint64_t declared;
} got_t;

static void put(got_t *g, const char *p, size_t n)
{
    if (g->n + n > g->cap) {
        size_t cap = (g->n + n) * 2 + 64;
        char *b = malloc(cap);
        CHECK(b != NULL);
        if (g->n) memcpy(b, g->b, g->n);
        free(g->b);
        g->b = b;
        g->cap = cap;
    }
    if (n) memcpy(g->b + g->n, p, n);
    g->n += n;
}

static void put_frame(got_t *g, const char *p, size_t n)
{
    char h[32];
    int hl = snprintf(h, sizeof h, "%zu:", n);
    put(g, h, (size_t)hl);
    put(g, p, n);
    g->frames++;
}

static void got_free(got_t *g)
{
    free(g->b);
    free(g->rest);
    memset(g, 0, sizeof *g);
}

static int inside(const char *p, size_t n, const char *base, size_t len)
{
    return base && (uintptr_t)p >= (uintptr_t)base && n <= len &&
           (uintptr_t)p - (uintptr_t)base <= len - n;
}

/* Frame data[0..n) as reads ending at cuts[0..ncuts) and then n. */
static void run(const cfg_t *c, const char *data, size_t n, const size_t *cuts, size_t ncuts,
                got_t *g)
{
    memset(g, 0, sizeof *g);
    rd_framer_t f;
    setup(&f, c);
    size_t at = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        CHECK(end >= at && end <= n);
        size_t len = end - at;
        char *rd = malloc(len ? len : 1);
        CHECK(rd != NULL);
        if (len) memcpy(rd, data + at, len);
        int kept = rd_framer_pending(&f) > 0;
        CHECK_EQ(rd_framer_feed(&f, rd, len), 0);
        rd_span_t s;
        int r;
        while ((r = rd_framer_next(&f, &s)) == 1) {
            if (kept)
                CHECK(inside(s.p, s.n, f.buf, f.len));
            else /* no kept bytes: the frame is a span of the read itself */
                CHECK(inside(s.p, s.n, rd, len));
            put_frame(g, s.p, s.n);
        }
        if (r < 0) {
            CHECK(r == RD_ETOOBIG || r == RD_EFRAME);
            CHECK(s.n > 0);
            CHECK(inside(s.p, s.n, kept ? f.buf : rd, kept ? f.len : len));
            g->err = r;
            g->declared = f.declared;
            g->rest = malloc(s.n);
            memcpy(g->rest, s.p, s.n);
            g->nrest = s.n;
            CHECK_EQ(rd_framer_pending(&f), 0);
            CHECK_EQ(rd_framer_next(&f, &s), 0); /* the framer is empty */
        }
        CHECK_EQ(rd_framer_keep(&f), 0);
        CHECK(rd_framer_pending(&f) <= limit(c));
        CHECK(f.len == 0 || f.len <= f.cap);
        free(rd);
        at = end;
        if (r < 0) break;
    }
    rd_framer_destroy(&f);
}

static void run_once(const cfg_t *c, const char *data, size_t n, got_t *g)
{
    run(c, data, n, NULL, 0, g);
}

static void run_bytes(const cfg_t *c, const char *data, size_t n, got_t *g)
{
    size_t *cuts = malloc((n ? n : 1) * sizeof *cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    run(c, data, n, cuts, n ? n - 1 : 0, g);
    free(cuts);
}

/* A chunked run against the one-shot one: the same frames, the same error,
 * and the rest it hands over is what of the one-shot rest had arrived. */
static void same(const got_t *once, const got_t *g)
{
    CHECK_EQ(g->frames, once->frames);
    CHECK_EQ(g->n, once->n);
    CHECK(g->n == 0 || memcmp(g->b, once->b, g->n) == 0);
    CHECK_EQ(g->err, once->err);
    CHECK(g->nrest <= once->nrest);
    CHECK(g->nrest == 0 || memcmp(g->rest, once->rest, g->nrest) == 0);
}

#define S(s) s, sizeof(s) - 1
#define W(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

typedef struct {
    const char *p;
    size_t n;
} str_t;

static const struct {
    cfg_t c;
    const char *data;
    size_t n;
    str_t want[6];
} streams[] = {
    {{&rd_frame_line, "\r\n", 2, 16},
     S("one\r\n\r\ntwo\r\nthree\r\n"),
     {W("one"), W(""), W("two"), W("three")}},
    {{&rd_frame_line, "\n", 1, 16}, S("a\nbc\n\n\rdef\n"), {W("a"), W("bc"), W(""), W("\rdef")}},
    {{&rd_frame_line, "\r\n\r\n", 4, 32},
     S("GET / HTTP/1.0\r\nHost: x\r\n\r\n\r\n\r\nz\r\r\n\r\n\r\r\n\r\r\n\r\n"),
     {W("GET / HTTP/1.0\r\nHost: x"), W(""), W("z\r"), W("\r\r\n\r")}},
    {{&rd_frame_line, "aab", 3, 16}, S("xaaabaabyaab"), {W("xa"), W(""), W("y")}},
    {{&rd_frame_u8, NULL, 0, 255},
     S("\x03"
       "abc"
       "\x00"
       "\x01"
       "\x00"
       "\x02"
       "\xff\x01"),
     {W("abc"), W(""), W("\0"), W("\xff\x01")}},
    {{&rd_frame_u16, NULL, 0, 65535},
     S("\x00\x05"
       "hello"
       "\x00\x00"
       "\x00\x01"
       "!"),
     {W("hello"), W(""), W("!")}},
    {{&rd_frame_u32, NULL, 0, 1 << 20},
     S("\x00\x00\x00\x05"
       "hello"
       "\x00\x00\x00\x00"
       "\x00\x00\x00\x02"
       "hi"),
     {W("hello"), W(""), W("hi")}},
    {{&rd_frame_netstring, NULL, 0, 1000},
     S("5:hello,0:,12:hello world!,1:,,"),
     {W("hello"), W(""), W("hello world!"), W(",")}},
};

static void want_frames(got_t *w, const str_t *want)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < 6 && want[i].p; i++)
        put_frame(w, want[i].p, want[i].n);
}

/* Every stream as one read, as two reads cut at every offset, as three
 * reads cut at every pair of offsets, and a byte per read: one result. */
TEST(framer_every_split_position)
{
    for (size_t t = 0; t < sizeof streams / sizeof streams[0]; t++) {
        const cfg_t *c = &streams[t].c;
        const char *d = streams[t].data;
        size_t n = streams[t].n;
        got_t want, once, g;
        want_frames(&want, streams[t].want);
        run_once(c, d, n, &once);
        same(&want, &once);
        CHECK_EQ(once.err, 0);
        for (size_t i = 0; i <= n; i++) {
            run(c, d, n, &i, 1, &g);
            same(&once, &g);
            got_free(&g);
            for (size_t j = i; j <= n; j++) {
                size_t cuts[2] = {i, j};
                run(c, d, n, cuts, 2, &g);
                same(&once, &g);
                got_free(&g);
            }
        }
        run_bytes(c, d, n, &g);
        same(&once, &g);
        got_free(&g);
        got_free(&once);
        got_free(&want);
    }
}

/* Whole frames in one read cost no allocation and no copy. */
TEST(framer_many_frames_in_one_read_no_copy)
{
    static const cfg_t cs[] = {
        {&rd_frame_line, "\r\n", 2, 100},    {&rd_frame_u8, NULL, 0, 100},
        {&rd_frame_u16, NULL, 0, 100},       {&rd_frame_u32, NULL, 0, 100},
        {&rd_frame_netstring, NULL, 0, 100},
    };
    for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
        char *data = malloc(100000);
        size_t n = 0;
        int frames = 0;
        for (; n < 99000; frames++) {
            size_t len = (size_t)frames % 50;
            if (cs[t].rule == &rd_frame_line) {
                memset(data + n, 'a' + frames % 26, len);
                memcpy(data + n + len, "\r\n", 2);
                n += len + 2;
            } else if (cs[t].rule == &rd_frame_netstring) {
                n += (size_t)sprintf(data + n, "%zu:", len);
                memset(data + n, 'x', len);
                data[n + len] = ',';
                n += len + 1;
            } else {
                size_t hl = cs[t].rule == &rd_frame_u8 ? 1 : cs[t].rule == &rd_frame_u16 ? 2 : 4;
                memset(data + n, 0, hl);
                data[n + hl - 1] = (char)len;
                memset(data + n + hl, 'y', len);
                n += hl + len;
            }
        }
        rd_framer_t f;
        setup(&f, &cs[t]);
        long before = reallocs;
        CHECK_EQ(rd_framer_feed(&f, data, n), 0);
        rd_span_t s;
        int got = 0;
        const char *last = data;
        while (rd_framer_next(&f, &s) == 1) {
            CHECK_EQ(s.n, (size_t)got % 50);
            CHECK(s.p >= last && s.p + s.n <= data + n); /* in the read, in order */
            last = s.p + s.n;
            got++;
        }
        CHECK_EQ(got, frames);
        CHECK_EQ(rd_framer_keep(&f), 0);
        CHECK_EQ(rd_framer_pending(&f), 0);
        CHECK_EQ(reallocs, before);
        CHECK(f.buf == NULL);
        rd_framer_destroy(&f);
        free(data);
    }
}

/* A 4 GiB length is refused from its four header bytes, however they are
 * cut, with the length it declared and without memory for it. */
TEST(framer_u32_4gib_prefix_too_big_without_allocating)
{
    static const char hdr[] = "\xff\xff\xff\xff"
                              "abc";
    cfg_t c = {&rd_frame_u32, NULL, 0, 16384};
    for (size_t i = 0; i <= 4; i++) {
        got_t g;
        long before = reallocs;
        run(&c, hdr, 7, &i, 1, &g);
        CHECK_EQ(g.err, RD_ETOOBIG);
        CHECK(g.declared == 0xFFFFFFFFu);
        CHECK_EQ(g.frames, 0);
        if (i == 0 || i == 4) /* the header came whole: nothing was kept */
            CHECK_EQ(reallocs, before);
        else
            CHECK_EQ(reallocs, before + 1); /* the header's first bytes, in 64 */
        got_free(&g);
    }
    /* the rest handed over is the whole frame start and what follows */
    got_t g;
    run_once(&c, hdr, 7, &g);
    CHECK_EQ(g.nrest, 7);
    CHECK(memcmp(g.rest, hdr, 7) == 0);
    got_free(&g);

    /* With no limit at all, a 4 GiB frame is still too big: no frame is
     * longer than RD_FRAME_MAX */
    rd_framer_t f;
    rd_framer_init(&f);
    rd_framer_set_rule(&f, &rd_frame_u32);
    rd_framer_set_line(&f, "\r\n", 2, SIZE_MAX);
    rd_span_t s;
    CHECK_EQ(rd_framer_feed(&f, hdr, 7), 0);
    CHECK_EQ(rd_framer_next(&f, &s), RD_ETOOBIG);
    CHECK(f.declared == 0xFFFFFFFFu);
    CHECK_EQ(rd_framer_keep(&f), 0);
    rd_framer_destroy(&f);
    /* and a frame just under it is a promise: memory follows the bytes that
     * arrive, not the header */
    static const char big[7] = {0x7f, (char)0xff, (char)0xff, (char)0xf0, 'a', 'b', 'c'};
    rd_framer_init(&f);
    rd_framer_set_rule(&f, &rd_frame_u32);
    rd_framer_set_line(&f, "\r\n", 2, SIZE_MAX);
    CHECK_EQ(rd_framer_feed(&f, big, 7), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 7);
    CHECK(f.cap <= 64);
    char more[1000];
    memset(more, 'z', sizeof more);
    CHECK_EQ(rd_framer_feed(&f, more, sizeof more), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK(f.cap <= 2048); /* doubling, not the 4 GiB it declared */
    rd_framer_destroy(&f);
}

TEST(framer_short_prefixes_too_big_from_the_header)
{
    static const struct {
        cfg_t c;
        const char *d;
        size_t n;
        uint64_t declared;
    } t[] = {
        {{&rd_frame_u8, NULL, 0, 3}, S("\x04"), 4},
        {{&rd_frame_u8, NULL, 0, 0}, S("\x01"), 1},
        {{&rd_frame_u16, NULL, 0, 255}, S("\x01\x00"), 256},
        {{&rd_frame_u16, NULL, 0, 16384}, S("\xff\xff"), 65535},
        {{&rd_frame_u32, NULL, 0, 65535}, S("\x00\x01\x00\x00"), 65536},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        got_t g;
        run_once(&t[i].c, t[i].d, t[i].n, &g);
        CHECK_EQ(g.err, RD_ETOOBIG);
        CHECK(g.declared == t[i].declared);
        got_free(&g);
    }
    /* exactly max is a frame */
    cfg_t c = {&rd_frame_u8, NULL, 0, 3};
    got_t g, w;
    run_bytes(&c,
              S("\x03"
                "abc"
                "\x00"),
              &g);
    want_frames(&w, (str_t[]){W("abc"), W(""), {NULL, 0}});
    same(&w, &g);
    got_free(&g);
    got_free(&w);
}

/* A delimiter of 2 and 4 bytes cut at every position, with parts of it in
 * the payloads, which must not be taken for it. */
TEST(framer_delimiter_split_across_reads)
{
    static const struct {
        const char *delim;
        size_t dlen;
        const char *d;
        size_t n;
        str_t want[4];
    } t[] = {
        {"\r\n", 2, S("a\r\rb\r\n\n\r\n"), {W("a\r\rb"), W("\n")}},
        {"\r\n\r\n", 4, S("h\r\n\r\r\n\r\n\r\n\r\n"), {W("h\r\n\r"), W("")}},
        {"\r\n\r\n", 4, S("\r\n\r\r\n\r\r\n\r\n"), {W("\r\n\r\r\n\r")}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cfg_t c = {&rd_frame_line, t[i].delim, t[i].dlen, 64};
        got_t w, g;
        want_frames(&w, t[i].want);
        for (size_t k = 0; k <= t[i].n; k++) {
            run(&c, t[i].d, t[i].n, &k, 1, &g);
            same(&w, &g);
            got_free(&g);
        }
        run_bytes(&c, t[i].d, t[i].n, &g);
        same(&w, &g);
        got_free(&g);
        got_free(&w);
    }
}

/* A line of max bytes is a line wherever the reads end; of max + 1, too
 * long, seen as soon as the bytes rule out an ending in time. */
TEST(framer_line_exactly_max_and_max_plus_one)
{
    cfg_t c = {&rd_frame_line, "\r\n", 2, 8};
    static const char ok[] = "12345678\r\nz\r\n", big[] = "123456789\r\nz\r\n";
    got_t w, g;
    want_frames(&w, (str_t[]){W("12345678"), W("z"), {NULL, 0}});
    for (size_t k = 0; k <= sizeof ok - 1; k++) {
        run(&c, ok, sizeof ok - 1, &k, 1, &g);
        same(&w, &g);
        got_free(&g);
    }
    run_bytes(&c, ok, sizeof ok - 1, &g);
    same(&w, &g);
    got_free(&g);
    got_free(&w);

    got_t once;
    run_once(&c, big, sizeof big - 1, &once);
    CHECK_EQ(once.err, RD_ETOOBIG);
    CHECK_EQ(once.frames, 0);
    CHECK_EQ(once.nrest, sizeof big - 1); /* the line and all that follows */
    for (size_t k = 0; k <= sizeof big - 1; k++) {
        run(&c, big, sizeof big - 1, &k, 1, &g);
        same(&once, &g);
        CHECK_EQ(g.err, RD_ETOOBIG);
        got_free(&g);
    }
    run_bytes(&c, big, sizeof big - 1, &g);
    CHECK_EQ(g.err, RD_ETOOBIG);
    CHECK_EQ(g.nrest, 10); /* "123456789\r": no "\n" can save it */
    got_free(&g);
    got_free(&once);

    /* An unfinished tail of max + dlen - 1 bytes waits; one more is too long */
    rd_framer_t f;
    setup(&f, &c);
    rd_span_t s;
    CHECK_EQ(rd_framer_feed(&f, "12345678\r", 9), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 9);
    CHECK_EQ(rd_framer_feed(&f, "\r", 1), 0);
    CHECK_EQ(rd_framer_next(&f, &s), RD_ETOOBIG);
    CHECK_EQ(s.n, 10);
    CHECK(memcmp(s.p, "12345678\r\r", 10) == 0);
    CHECK_EQ(f.declared, 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    rd_framer_destroy(&f);
}

TEST(framer_hostile_netstrings)
{
    static const struct {
        const char *d;
        size_t n;
        int err;
        uint64_t declared;
    } t[] = {
        {S(":"), RD_EFRAME, 0},
        {S("a:"), RD_EFRAME, 0},
        {S("-1:x,"), RD_EFRAME, 0},
        {S("+1:x,"), RD_EFRAME, 0},
        {S(" 1:x,"), RD_EFRAME, 0},
        {S("1 :x,"), RD_EFRAME, 0},
        {S("1x"), RD_EFRAME, 0},
        {S("01:x,"), RD_EFRAME, 0},
        {S("00:,"), RD_EFRAME, 0},
        {S("0x"), RD_EFRAME, 0},
        {S("0:x"), RD_EFRAME, 0},     /* no ',' */
        {S("3:abc;"), RD_EFRAME, 0},  /* no ',' */
        {S("3:abcd,"), RD_EFRAME, 0}, /* longer than it said */
        {S("2:a,x"), RD_EFRAME, 0},   /* "a," then no ',' */
        {S("1:\0,"
           "1:x\0"),
         RD_EFRAME, 0},
        {S("1001:"), RD_ETOOBIG, 1001},
        {S("1001"), RD_ETOOBIG, 1001}, /* the digits say so before the ':' */
        {S("99999999999999999999999999999:"), RD_ETOOBIG, 9999},
        {S("18446744073709551616:"), RD_ETOOBIG, 1844},
    };
    cfg_t c = {&rd_frame_netstring, NULL, 0, 1000};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        got_t once, g;
        run_once(&c, t[i].d, t[i].n, &once);
        if (once.err != t[i].err)
            fprintf(stderr, "netstring case %zu: err %d, want %d\n", i, once.err, t[i].err);
        CHECK_EQ(once.err, t[i].err);
        if (t[i].err == RD_ETOOBIG) CHECK(once.declared == t[i].declared);
        run_bytes(&c, t[i].d, t[i].n, &g);
        same(&once, &g);
        got_free(&g);
        got_free(&once);
    }
    /* an unfinished netstring waits, its length known or not */
    static const char *waits[] = {"", "1", "10", "0", "3:ab", "1000:"};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        got_t g;
        run_once(&c, waits[i], strlen(waits[i]), &g);
        CHECK_EQ(g.err, 0);
        CHECK_EQ(g.frames, 0);
        got_free(&g);
    }
    /* with max as wide as the arithmetic, an overflowing LEN is too big, not
     * a wrapped small one */
    cfg_t wide = {&rd_frame_netstring, NULL, 0, SIZE_MAX};
    got_t g;
    run_once(&wide, S("99999999999999999999999:"), &g);
    CHECK_EQ(g.err, RD_ETOOBIG);
    CHECK(g.declared == UINT64_MAX);
    got_free(&g);
    run_once(&wide, S("18446744073709551617:"), &g); /* 2^64 + 1 */
    CHECK_EQ(g.err, RD_ETOOBIG);
    got_free(&g);
    /* under max and under 2^64, but a frame longer than RD_FRAME_MAX: too big
     * (found by the fuzzer, where the reference waited for the payload) */
    run_once(&wide, S("11111133333333333333:"), &g);
    CHECK_EQ(g.err, RD_ETOOBIG);
    CHECK(g.declared == 11111133333333333333u);
    got_free(&g);
    /* an error after good frames hands over only the bad one's bytes */
    run_once(&c, S("5:hello,x5:world,"), &g);
    CHECK_EQ(g.frames, 1);
    CHECK_EQ(g.err, RD_EFRAME);
    CHECK_EQ(g.nrest, 9);
    CHECK(memcmp(g.rest, "x5:world,", 9) == 0);
    got_free(&g);
}

/* take() in the middle of a read (setRawMode from a line) gets the rest,
 * from the read or from the buffer, and leaves the framer empty. */
TEST(framer_take_mid_read)
{
    rd_framer_t f;
    rd_framer_init(&f);
    rd_span_t s;
    static const char rd1[] = "a\r\nb\r\nrest";
    CHECK_EQ(rd_framer_feed(&f, rd1, sizeof rd1 - 1), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 1 && s.p == rd1);
    s = rd_framer_take(&f);
    CHECK(s.p == rd1 + 3 && s.n == 7); /* no copy */
    CHECK_EQ(rd_framer_pending(&f), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);

    /* from the buffer, after a kept part */
    CHECK_EQ(rd_framer_feed(&f, "par", 3), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_feed(&f, "t\r\nraw", 6), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 4 && memcmp(s.p, "part", 4) == 0);
    s = rd_framer_take(&f);
    CHECK(s.n == 3 && memcmp(s.p, "raw", 3) == 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);

    /* between reads: what keep kept; and an empty take is "", not NULL */
    CHECK_EQ(rd_framer_feed(&f, "half", 4), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    s = rd_framer_take(&f);
    CHECK(s.n == 4 && memcmp(s.p, "half", 4) == 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    s = rd_framer_take(&f);
    CHECK(s.p != NULL && s.n == 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    rd_framer_destroy(&f);
}

/* The rule may change between two frames of one read, and between reads
 * with a partial frame kept: the bytes stay, the new rule reads them. */
TEST(framer_rule_change_between_frames)
{
    rd_framer_t f;
    rd_framer_init(&f);
    rd_span_t s;
    static const char rd1[] = "hi\r\n"
                              "\x03"
                              "abc"
                              "\x00\x02"
                              "xy"
                              "5:hello,"
                              "\x00\x00\x00\x03"
                              "ab";
    CHECK_EQ(rd_framer_feed(&f, rd1, sizeof rd1 - 1), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 2 && memcmp(s.p, "hi", 2) == 0);
    rd_framer_set_rule(&f, &rd_frame_u8);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 3 && memcmp(s.p, "abc", 3) == 0);
    rd_framer_set_rule(&f, &rd_frame_u16);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 2 && memcmp(s.p, "xy", 2) == 0);
    rd_framer_set_rule(&f, &rd_frame_netstring);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 5 && memcmp(s.p, "hello", 5) == 0);
    rd_framer_set_rule(&f, &rd_frame_u32);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 6);
    /* a line framer meets the kept bytes: "\0\0\0\3ab" + "c\n" is a line */
    rd_framer_set_rule(&f, &rd_frame_line);
    rd_framer_set_line(&f, "\n", 1, 100);
    CHECK_EQ(rd_framer_feed(&f, "c\n", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 7 && memcmp(s.p, "\0\0\0\3abc", 7) == 0);
    CHECK_EQ(rd_framer_keep(&f), 0);

    /* a new delimiter forgets how far the old one was searched */
    CHECK_EQ(rd_framer_feed(&f, "ab;cd", 5), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(f.scanned, 5);
    rd_framer_set_line(&f, ";", 1, 100);
    CHECK_EQ(f.scanned, 0);
    CHECK_EQ(rd_framer_feed(&f, "", 0), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 2 && memcmp(s.p, "ab", 2) == 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 2);
    rd_framer_destroy(&f);
}

/* pending() is what the framer holds for the next read, and what it holds
 * is a copy: the read it came from is freed here. */
TEST(framer_pending_after_keep)
{
    rd_framer_t f;
    rd_framer_init(&f);
    rd_span_t s;
    char *rd = strdup("abc");
    CHECK_EQ(rd_framer_pending(&f), 0);
    CHECK_EQ(rd_framer_feed(&f, rd, 3), 0);
    CHECK_EQ(rd_framer_pending(&f), 0); /* still the caller's bytes */
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    free(rd);
    CHECK_EQ(rd_framer_pending(&f), 3);
    rd = strdup("de\r\nfg");
    CHECK_EQ(rd_framer_feed(&f, rd, 6), 0);
    CHECK_EQ(rd_framer_pending(&f), 9);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 5 && memcmp(s.p, "abcde", 5) == 0);
    CHECK_EQ(rd_framer_pending(&f), 2);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    free(rd);
    CHECK_EQ(rd_framer_pending(&f), 2);
    CHECK_EQ(rd_framer_feed(&f, "\r\n", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 2 && memcmp(s.p, "fg", 2) == 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    rd_framer_destroy(&f);
}

/* An emptied small buffer stays (no malloc per read for a client whose
 * lines straddle reads); an emptied big one goes. */
TEST(framer_buffer_kept_small_freed_big)
{
    rd_framer_t f;
    rd_framer_init(&f);
    rd_span_t s;
    CHECK_EQ(rd_framer_feed(&f, "ab", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    long before = reallocs;
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(rd_framer_feed(&f, "c\r\nab", 5), 0);
        CHECK_EQ(rd_framer_next(&f, &s), 1);
        CHECK(s.n == 3 && memcmp(s.p, "abc", 3) == 0);
        CHECK_EQ(rd_framer_next(&f, &s), 0);
        CHECK_EQ(rd_framer_keep(&f), 0);
    }
    CHECK_EQ(reallocs, before);
    CHECK_EQ(rd_framer_feed(&f, "\r\n", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK(f.buf != NULL && f.cap <= 1024); /* empty, and kept */

    char big[5000];
    memset(big, 'x', sizeof big);
    CHECK_EQ(rd_framer_feed(&f, big, sizeof big), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK(f.cap >= 5000);
    CHECK_EQ(rd_framer_feed(&f, "\r\n", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK_EQ(s.n, 5000);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK(f.buf == NULL && f.cap == 0); /* an idle connection holds little */
    rd_framer_destroy(&f);
}

/* A line arriving a byte per read is searched once: f->scanned is how far
 * no delimiter can start, and each read looks only at what is new. */
TEST(framer_line_byte_reads_are_searched_once)
{
    static const struct {
        const char *d;
        size_t dlen;
    } t[] = {{"\n", 1}, {"\r\n", 2}, {"\r\n\r\n", 4}};
    for (size_t i = 0; i < 3; i++) {
        rd_framer_t f;
        rd_framer_init(&f);
        rd_framer_set_line(&f, t[i].d, t[i].dlen, 100000);
        rd_span_t s;
        for (size_t n = 1; n <= 20000; n++) {
            CHECK_EQ(rd_framer_feed(&f, n % 2 ? "\r" : "x", 1), 0);
            CHECK_EQ(rd_framer_next(&f, &s), 0);
            CHECK_EQ(f.scanned, n >= t[i].dlen - 1 ? n - (t[i].dlen - 1) : 0);
            CHECK_EQ(rd_framer_keep(&f), 0);
        }
        CHECK_EQ(rd_framer_feed(&f, t[i].d, t[i].dlen), 0);
        CHECK_EQ(rd_framer_next(&f, &s), 1);
        CHECK_EQ(s.n, 20000);
        rd_framer_destroy(&f);
    }
}

/* A failed allocation: feed leaves the framer as it was, keep drops the
 * bytes it could not keep, and both say -ENOMEM. */
TEST(framer_out_of_memory)
{
    rd_framer_t f;
    rd_framer_init(&f);
    rd_span_t s;
    fail_at = reallocs;
    CHECK_EQ(rd_framer_feed(&f, "ab", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), -ENOMEM);
    CHECK_EQ(rd_framer_pending(&f), 0);

    CHECK_EQ(rd_framer_feed(&f, "ab", 2), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    char big[200];
    memset(big, 'x', sizeof big);
    fail_at = reallocs;
    CHECK_EQ(rd_framer_feed(&f, big, sizeof big), -ENOMEM);
    CHECK_EQ(rd_framer_pending(&f), 2);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_feed(&f, "c\n", 2), 0);
    rd_framer_set_line(&f, "\n", 1, 100);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 3 && memcmp(s.p, "abc", 3) == 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    rd_framer_destroy(&f);
}

/* A read whose owner unwound before keep (a handler error) is forgotten at
 * the next feed: its bytes may be gone. */
TEST(framer_unkept_read_is_forgotten)
{
    rd_framer_t f;
    rd_framer_init(&f);
    rd_span_t s;
    CHECK_EQ(rd_framer_feed(&f, "a\r\nb", 4), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK_EQ(rd_framer_feed(&f, "c\r\n", 3), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 1 && s.p[0] == 'c');
    CHECK_EQ(rd_framer_keep(&f), 0);
    /* the same from the buffer: the frames it gave are not given again */
    CHECK_EQ(rd_framer_feed(&f, "x", 1), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 0);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_feed(&f, "y\r\nz", 4), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 2 && memcmp(s.p, "xy", 2) == 0);
    CHECK_EQ(rd_framer_feed(&f, "w\r\n", 3), 0);
    CHECK_EQ(rd_framer_next(&f, &s), 1);
    CHECK(s.n == 1 && s.p[0] == 'w');
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    rd_framer_destroy(&f);
}

static uint64_t rnd_state;

static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13; /* xorshift64 */
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state >> 32);
}

/* Append one frame of the rule with a payload of n random bytes from
 * alpha; returns 0 if a line payload would end early (the caller retries). */
static int gen_frame(const cfg_t *c, got_t *data, got_t *want, size_t n, const char *alpha)
{
    char pay[600];
    size_t na = strlen(alpha);
    for (size_t i = 0; i < n; i++)
        pay[i] = alpha[rnd() % na];
    if (c->rule == &rd_frame_line) {
        char tmp[700];
        memcpy(tmp, pay, n);
        memcpy(tmp + n, c->delim, c->dlen);
        const char *hit = memmem(tmp, n + c->dlen, c->delim, c->dlen);
        if (hit != tmp + n) return 0;
        put(data, tmp, n + c->dlen);
    } else if (c->rule == &rd_frame_netstring) {
        char h[32];
        put(data, h, (size_t)snprintf(h, sizeof h, "%zu:", n));
        put(data, pay, n);
        put(data, ",", 1);
    } else {
        size_t hl = c->rule == &rd_frame_u8 ? 1 : c->rule == &rd_frame_u16 ? 2 : 4;
        unsigned char h[4] = {0, 0, (unsigned char)(n >> 8), (unsigned char)n};
        put(data, (char *)h + 4 - hl, hl);
        put(data, pay, n);
    }
    put_frame(want, pay, n);
    return 1;
}

/* Fixed-seed streams of every rule cut at random places: the frames of a
 * one-shot read, which are the frames the stream was made of. */
TEST(framer_random_chunking_matches_one_shot)
{
    static const cfg_t cs[] = {
        {&rd_frame_line, "\n", 1, 500},       {&rd_frame_line, "\r\n", 2, 500},
        {&rd_frame_line, "\r\n\r\n", 4, 500}, {&rd_frame_line, "aba", 3, 500},
        {&rd_frame_u8, NULL, 0, 255},         {&rd_frame_u16, NULL, 0, 500},
        {&rd_frame_u32, NULL, 0, 500},        {&rd_frame_netstring, NULL, 0, 500},
    };
    rnd_state = 0x9E3779B97F4A7C15u;
    for (int round = 0; round < 400; round++) {
        const cfg_t *c = &cs[round % (sizeof cs / sizeof cs[0])];
        got_t data = {0}, want = {0}, once, g;
        int frames = 1 + (int)(rnd() % 40);
        for (int i = 0; i < frames;) {
            size_t n = rnd() % 4 == 0 ? rnd() % (c->max + 1) : rnd() % 8;
            if (gen_frame(c, &data, &want, n, rnd() % 2 ? "ab\r\n" : "xyz\n\r,:0")) i++;
        }
        run_once(c, data.b, data.n, &once);
        same(&want, &once);
        CHECK_EQ(once.err, 0);
        for (int k = 0; k < 20; k++) {
            size_t cuts[64], nc = 0, at = 0;
            while (nc < 64 && at < data.n) {
                at += rnd() % 3 == 0 ? rnd() % 4 : rnd() % (data.n / 4 + 1);
                if (at > data.n) at = data.n;
                cuts[nc++] = at;
            }
            run(c, data.b, data.n, cuts, nc, &g);
            same(&once, &g);
            got_free(&g);
        }
        got_free(&once);
        got_free(&want);
        got_free(&data);
    }
}

/*{====================================================================
 * rd_framer_until: a coroutine stream's "read until", taken by the owner
 * between feed and keep, from the read or (between reads) from what was kept
 *=====================================================================*/

/* Feed the stream in reads of `chunk` bytes (each a fresh allocation, freed
 * after keep); after each read take every frame that is there. The frames,
 * joined with '|', and how the stream ended ("more" / "toobig"). */
static void until_all(const char *in, size_t n, size_t chunk, const char *d, size_t limit,
                      char *out, size_t outsize, const char **end)
{
    rd_framer_t f;
    rd_framer_init(&f);
    size_t o = 0;
    *end = "more";
    out[0] = 0;
    for (size_t at = 0; at < n; at += chunk) {
        size_t len = n - at < chunk ? n - at : chunk;
        char *read = malloc(len ? len : 1);
        memcpy(read, in + at, len);
        CHECK_EQ(rd_framer_feed(&f, read, len), 0);
        rd_span_t s;
        int r;
        while ((r = rd_framer_until(&f, d, strlen(d), limit, &s)) == 1) {
            CHECK(o + s.n + 2 < outsize);
            memcpy(out + o, s.p, s.n);
            o += s.n;
            out[o++] = '|';
            out[o] = 0;
        }
        if (r == RD_ETOOBIG) *end = "toobig";
        CHECK_EQ(rd_framer_keep(&f), 0);
        free(read);
        if (r == RD_ETOOBIG) break;
    }
    rd_framer_destroy(&f);
}

TEST(framer_until_table_every_chunking)
{
    static const struct {
        const char *in, *d;
        size_t limit;
        const char *frames, *end;
    } cases[] = {
        {"a?b?", "?", 16, "a|b|", "more"},
        {"a?b", "?", 16, "a|", "more"},
        {"??", "?", 16, "||", "more"},
        {"ab\r\ncd\r\n", "\r\n", 16, "ab|cd|", "more"},
        {"x\r\r\ny", "\r\n", 16, "x\r|", "more"},
        {"aaab", "aab", 16, "a|", "more"}, /* a self-overlapping delimiter */
        {"abababx", "abab", 16, "|", "more"},
        {"12345678", "?", 8, "", "more"},      /* exactly the limit, no delimiter yet */
        {"123456789", "?", 8, "", "toobig"},   /* one past it */
        {"12345678?", "?", 8, "12345678|", "more"},
        {"123456789?", "?", 8, "", "toobig"},
        {"1234567\r", "\r\n", 8, "", "more"},  /* a delimiter may still begin at the end */
        {"12345678\r", "\r\n", 8, "", "more"},
        {"123456789\r", "\r\n", 8, "", "toobig"},
        {"", "?", 0, "", "more"},
        {"?", "?", 0, "|", "more"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        for (size_t chunk = 1; chunk <= (n ? n : 1); chunk++) {
            const char *end;
            until_all(cases[i].in, n, chunk, cases[i].d, cases[i].limit, out, sizeof out, &end);
            if (strcmp(out, cases[i].frames) != 0 || strcmp(end, cases[i].end) != 0) {
                fprintf(stderr, "case %zu (%s) chunk %zu: got '%s' %s, want '%s' %s\n", i,
                        cases[i].in, chunk, out, end, cases[i].frames, cases[i].end);
                CHECK(0);
            }
        }
    }
}

/* A payload that comes a byte at a time is searched once, not once per byte. */
TEST(framer_until_resumes_its_search)
{
    rd_framer_t f;
    rd_framer_init(&f);
    enum { N = 100000 };
    rd_span_t s;
    for (size_t i = 0; i < N; i++) {
        char c = 'x';
        CHECK_EQ(rd_framer_feed(&f, &c, 1), 0);
        CHECK_EQ(rd_framer_until(&f, "\r\n", 2, N, &s), 0);
        CHECK(f.scanned + 1 >= rd_framer_peek(&f).n); /* only the last byte is searched again */
        CHECK_EQ(rd_framer_keep(&f), 0);
    }
    CHECK_EQ(rd_framer_feed(&f, "\r\n", 2), 0);
    CHECK_EQ(rd_framer_until(&f, "\r\n", 2, N, &s), 1);
    CHECK_EQ(s.n, N);
    CHECK_EQ(rd_framer_keep(&f), 0);
    CHECK_EQ(rd_framer_pending(&f), 0);
    rd_framer_destroy(&f);
}
