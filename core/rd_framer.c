/*
 * rd_framer.c: the framer of rd_framer.h and its five built-in rules.
 *
 * A read is framed where it lies: while nothing is kept, f->in is the
 * caller's bytes and frames are spans into them, so a connection whose
 * frames arrive whole copies and allocates nothing. Only once a frame
 * straddles two reads does the framer own bytes, and then the whole next
 * read is appended behind them (one memcpy, and every frame of that read
 * is contiguous). The line rule remembers in f->scanned how far it found
 * no delimiter, so a line fed a byte per read costs O(n), not O(n^2).
 *
 * Lengths are size_t at the interface and 32 bits inside (no frame is
 * longer than RD_FRAME_MAX), and every sum is checked before it is made: a
 * length prefix is a stranger's number, and 0xFFFFFFFF + 4 wraps 32 bits.
 * Declared lengths are compared with f->max before any buffer is sized
 * from them, so a 4 GiB prefix costs nothing.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_framer.h"

/* An emptied buffer up to this size stays: a client whose lines often
 * straddle reads would otherwise malloc and free at every read. A larger
 * one goes, so that an idle connection holds little. */
#define KEEP_CAP 1024

static long scan_line(rd_framer_t *f, const char *p, size_t n, rd_span_t *out);
#define MIN_CAP 64

void rd_framer_init(rd_framer_t *f)
{
    memset(f, 0, sizeof *f);
    f->rule = &rd_frame_line;
    f->delim = "\r\n";
    f->dlen = 2;
    f->max = 16384;
}

void rd_framer_destroy(rd_framer_t *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
    f->in = NULL;
    f->inlen = f->pos = 0;
    f->scanned = f->need = 0;
}

void rd_framer_set_rule(rd_framer_t *f, const rd_frame_rule_t *rule)
{
    f->rule = rule;
    f->scanned = 0;
    f->need = 0;
}

/* Room for want bytes in buf. Doubling keeps appends a byte at a time
 * O(1) amortised. The rule's hint (need, a length already checked against
 * max) sizes the buffer once for a frame up to HINT_MAX, and otherwise only
 * stops the doubling at the frame's end: memory for bytes that have not
 * arrived is a stranger's promise, so a header alone commits little. */
#define HINT_MAX 65536

static int reserve(rd_framer_t *f, size_t want)
{
    if (want <= f->cap) return 0;
    if (want > UINT32_MAX) return -ENOMEM;
    size_t need = f->need, cap;
    if (need > want && need <= HINT_MAX) {
        cap = need;
    } else {
        cap = f->cap > MIN_CAP ? f->cap : MIN_CAP;
        while (cap < want)
            cap = cap > UINT32_MAX / 2 ? want : cap * 2;
        if (need >= want && cap > need) cap = need;
    }
    char *b = realloc(f->buf, cap);
    if (!b) return -ENOMEM;
    f->buf = b;
    f->cap = (uint32_t)cap;
    return 0;
}

/* The buffer holds nothing: forget the rule's progress, and give the
 * memory back unless it is small (see KEEP_CAP). */
static void emptied(rd_framer_t *f)
{
    f->len = 0;
    f->scanned = f->need = 0;
    if (f->cap > KEEP_CAP) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
}

/* End the current read, whose unconsumed bytes are already saved or given
 * away: nothing of it may be looked at again. */
static void end_read(rd_framer_t *f)
{
    f->in = NULL;
    f->inlen = f->pos = 0;
}

int rd__framer_feed(rd_framer_t *f, const char *data, size_t n)
{
    assert((!f->buf || n == 0 || (uintptr_t)data < (uintptr_t)f->buf ||
            (uintptr_t)data >= (uintptr_t)f->buf + f->cap) &&
           "rd_framer_feed: data must not be a span of the framer's own buffer");
    if (f->in) {
        /* The previous read was not kept (its owner unwound past keep): its
         * unconsumed bytes may lie in memory already reused, so they go. */
        if (f->in == f->buf) emptied(f);
        end_read(f);
    }
    if (f->len == 0) {
        if (n > RD_FRAME_MAX) return -ENOMEM; /* lengths are 32 bits */
        f->in = data;
        f->inlen = (uint32_t)n;
        f->pos = 0;
        return 0;
    }
    if (n > UINT32_MAX - f->len) return -ENOMEM;
    if (reserve(f, (size_t)f->len + n) < 0) return -ENOMEM;
    if (n) memcpy(f->buf + f->len, data, n);
    f->len += (uint32_t)n;
    f->in = f->buf;
    f->inlen = f->len;
    f->pos = 0;
    return 0;
}

/* The framer gives every unconsumed byte to its owner and is empty. The
 * bytes stay where they are (in the read, or in buf) until the next feed,
 * keep or take, which is as long as the owner may use them. */
static rd_span_t give_rest(rd_framer_t *f)
{
    /* "" rather than NULL: an owner may hand an empty rest to memcpy */
    rd_span_t s = {"", 0};
    if (f->in && f->pos < f->inlen) s = (rd_span_t){f->in + f->pos, f->inlen - f->pos};
    f->pos = f->inlen;
    f->scanned = f->need = 0;
    return s;
}

int rd__framer_next(rd_framer_t *f, rd_span_t *out)
{
    if (!f->in || f->pos == f->inlen) return 0;
    size_t avail = f->inlen - f->pos;
    f->declared = 0;
    /* the line rule called directly, so that it can be inlined here */
    long r = f->rule == &rd_frame_line ? scan_line(f, f->in + f->pos, avail, out)
                                       : f->rule->scan(f, f->in + f->pos, avail, out);
    if (r > 0) {
        assert((size_t)r <= avail && "rd_framer_next: a rule took more bytes than it was given");
        f->pos += (uint32_t)r;
        f->scanned = f->need = 0;
        return 1;
    }
    if (r == 0) return 0;
    *out = give_rest(f);
    return (int)r;
}

rd_span_t rd_framer_take(rd_framer_t *f)
{
    if (!f->in) { /* between reads: what keep kept */
        f->in = f->buf;
        f->inlen = f->len;
        f->pos = 0;
    }
    return give_rest(f);
}

int rd__framer_keep(rd_framer_t *f)
{
    if (!f->in) return 0;
    uint32_t rest = f->inlen - f->pos;
    int rc = 0;
    if (f->in == f->buf) {
        if (f->pos && rest) memmove(f->buf, f->buf + f->pos, rest);
        f->len = rest;
    } else if (rest) { /* len is 0: an unkept read means a new frame start */
        if (reserve(f, rest) < 0) {
            rest = 0;
            rc = -ENOMEM;
        } else {
            memcpy(f->buf, f->in + f->pos, rest);
        }
        f->len = rest;
    }
    end_read(f);
    if (f->len == 0) emptied(f);
    return rc;
}

int rd_framer_until(rd_framer_t *f, const char *d, size_t dlen, size_t limit, rd_span_t *out)
{
    if (d != f->delim || dlen != f->dlen) { /* another delimiter: search from the start */
        f->delim = d;
        f->dlen = (uint32_t)dlen;
        f->scanned = 0;
    }
    rd_span_t s = rd_framer_peek(f);
    size_t from = f->scanned < s.n ? f->scanned : s.n;
    const char *hit = dlen == 1 ? memchr(s.p + from, d[0], s.n - from) /* readuntil("?") */
                      : dlen    ? memmem(s.p + from, s.n - from, d, dlen)
                                : s.p;
    if (hit) {
        size_t len = (size_t)(hit - s.p);
        if (len > limit) return RD_ETOOBIG;
        *out = (rd_span_t){s.p, len};
        rd_framer_skip(f, len + dlen);
        return 1;
    }
    size_t next = s.n >= dlen ? s.n - dlen + 1 : 0; /* a delimiter may start in the last dlen-1 */
    if (next > limit) return RD_ETOOBIG;
    f->scanned = (uint32_t)next;
    return 0;
}

size_t rd_framer_pending(const rd_framer_t *f)
{
    /* While a read is framed from buf, what its frames took is not pending */
    return f->in == f->buf && f->buf ? f->inlen - f->pos : f->len;
}

/*{====================================================================
 * Rules
 *=====================================================================*/

/* A whole frame longer than RD_FRAME_MAX is too big whatever f->max says
 * (and its size fits the long a rule returns, even where long is 32 bits). */
static int fits(size_t total)
{
    return total <= RD_FRAME_MAX;
}

/* Twisted's LineReceiver: a line may be max bytes, so an unfinished tail
 * may hold max + dlen - 1 (all but the last byte of the delimiter) before
 * no ending can make it short enough; that is checked as n - dlen >= max
 * because max + dlen may wrap. */
static long scan_line(rd_framer_t *f, const char *p, size_t n, rd_span_t *out)
{
    const char *d = f->delim;
    size_t dlen = f->dlen;
    if (!d || dlen == 0) return RD_EFRAME;
    size_t from = f->scanned <= n ? f->scanned : 0;
    const char *hit = dlen == 1 ? memchr(p + from, d[0], n - from) /* the common case */
                                : memmem(p + from, n - from, d, dlen);
    if (hit) {
        size_t len = (size_t)(hit - p);
        if (len > f->max || !fits(len + dlen)) return RD_ETOOBIG;
        out->p = p;
        out->n = len;
        return (long)(len + dlen);
    }
    if ((n >= dlen && n - dlen >= f->max) || n >= RD_FRAME_MAX) return RD_ETOOBIG;
    /* a delimiter starting before here would have ended inside p */
    f->scanned = n >= dlen - 1 ? (uint32_t)(n - (dlen - 1)) : 0;
    return 0;
}

/* A big-endian length of hlen bytes, then the payload. */
static long scan_prefixed(rd_framer_t *f, const char *p, size_t n, rd_span_t *out, size_t hlen)
{
    if (n < hlen) return 0;
    uint64_t len = 0;
    for (size_t i = 0; i < hlen; i++)
        len = len << 8 | (unsigned char)p[i];
    /* max is a size_t, so a length within it needs no check against SIZE_MAX
     * before the sum below, only the header's few bytes do */
    if (len > f->max || len > SIZE_MAX - hlen || !fits(hlen + (size_t)len)) {
        f->declared = len;
        return RD_ETOOBIG;
    }
    size_t total = hlen + (size_t)len;
    if (n < total) {
        f->need = (uint32_t)total;
        return 0;
    }
    out->p = p + hlen;
    out->n = (size_t)len;
    return (long)total;
}

static long scan_u8(rd_framer_t *f, const char *p, size_t n, rd_span_t *out)
{
    return scan_prefixed(f, p, n, out, 1);
}

static long scan_u16(rd_framer_t *f, const char *p, size_t n, rd_span_t *out)
{
    return scan_prefixed(f, p, n, out, 2);
}

static long scan_u32(rd_framer_t *f, const char *p, size_t n, rd_span_t *out)
{
    return scan_prefixed(f, p, n, out, 4);
}

/* "LEN:payload,". LEN is canonical decimal (Bernstein's spec, and
 * Twisted's NetstringReceiver): no sign, no spaces, no leading zeros but
 * "0:" itself, so one stream has one reading. The length is checked at
 * every digit: "99999999999999999999..." is refused at the digit that
 * passes max, which also bounds how many digits are ever looked at (one
 * more than max has). declared is then the value read so far, a lower
 * bound of what the peer meant. */
static long scan_netstring(rd_framer_t *f, const char *p, size_t n, rd_span_t *out)
{
    if (n == 0) return 0;
    if (p[0] < '0' || p[0] > '9') return RD_EFRAME;
    uint64_t len = 0;
    size_t i = 0;
    if (p[0] == '0') {
        if (n < 2) return 0;
        if (p[1] != ':') return RD_EFRAME; /* "01:" or "0x" */
        i = 1;
    } else {
        for (; i < n && p[i] != ':'; i++) {
            unsigned dg = (unsigned)(unsigned char)p[i] - '0';
            if (dg > 9) return RD_EFRAME;
            if (len > (UINT64_MAX - dg) / 10) { /* only where max is as wide */
                f->declared = UINT64_MAX;
                return RD_ETOOBIG;
            }
            len = len * 10 + dg;
            if (len > f->max) {
                f->declared = len;
                return RD_ETOOBIG;
            }
        }
        if (i == n) return 0;
    }
    size_t hlen = i + 1; /* digits and ':' */
    if (len > SIZE_MAX - hlen - 1 || !fits(hlen + (size_t)len + 1)) {
        f->declared = len;
        return RD_ETOOBIG;
    }
    size_t total = hlen + (size_t)len + 1;
    if (n < total) {
        f->need = (uint32_t)total;
        return 0;
    }
    if (p[total - 1] != ',') return RD_EFRAME;
    out->p = p + hlen;
    out->n = (size_t)len;
    return (long)total;
}

const rd_frame_rule_t rd_frame_line = {"line", scan_line};
const rd_frame_rule_t rd_frame_u8 = {"u8", scan_u8};
const rd_frame_rule_t rd_frame_u16 = {"u16", scan_u16};
const rd_frame_rule_t rd_frame_u32 = {"u32", scan_u32};
const rd_frame_rule_t rd_frame_netstring = {"netstring", scan_netstring};
