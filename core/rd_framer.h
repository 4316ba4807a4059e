/*
 * rd_framer.h: splitting a byte stream into frames. No Lua in here.
 *
 * A framer belongs to one connection. Its owner hands it each read with
 * rd_framer_feed, takes frames with rd_framer_next until it says "more",
 * then calls rd_framer_keep, which keeps the unfinished frame. A frame that
 * arrived whole inside one read is a span into that read's buffer: no copy.
 * Only the bytes of an unfinished frame are copied, into a buffer the framer
 * owns (freed again when it empties, so an idle connection holds little).
 *
 * What a frame is, is a rule (rd_frame_rule_t): one scan function. Lines,
 * big-endian length prefixes and netstrings are built in; the HTTP request
 * head will be a rule too. The rule and its settings may change between two
 * calls of rd_framer_next (a reload, setRawMode): the framer keeps no state
 * that depends on them except `scanned`, which a change resets.
 */
#ifndef RD_FRAMER_H
#define RD_FRAMER_H

#include <stddef.h>
#include <stdint.h>

#include "rd.h"

typedef struct rd_framer rd_framer_t;

/* A frame's payload (without its prefix, delimiter or trailer). */
typedef struct rd_span {
    const char *p;
    size_t n;
} rd_span_t;

/* A rule looks at the unconsumed bytes p[0..n) and says what comes next:
 *   > 0          a whole frame: *out is its payload inside p; the return
 *                value is how many bytes it takes up (prefix + payload + trailer)
 *   0            not yet: more bytes are needed (it may set f->need, the
 *                total it knows it needs, so the buffer grows once)
 *   RD_ETOOBIG   the frame is, or will be, longer than f->max; f->declared
 *                is its declared length where the rule knows it, else 0
 *   RD_EFRAME    the bytes cannot be a frame of this rule
 * A rule may keep its progress in f->scanned (how far it has looked without
 * finding the end) so that a frame arriving a byte at a time costs O(n). */
typedef long (*rd_frame_scan_fn)(rd_framer_t *f, const char *p, size_t n, rd_span_t *out);

typedef struct rd_frame_rule {
    const char *name;      /* "line", "u8", "u16", "u32", "netstring" */
    rd_frame_scan_fn scan; /* see above */
} rd_frame_rule_t;

extern const rd_frame_rule_t rd_frame_line;      /* payload, then f->delim */
extern const rd_frame_rule_t rd_frame_u8;        /* 1-byte big-endian length, payload */
extern const rd_frame_rule_t rd_frame_u16;       /* 2-byte big-endian length, payload */
extern const rd_frame_rule_t rd_frame_u32;       /* 4-byte big-endian length, payload */
extern const rd_frame_rule_t rd_frame_netstring; /* "LEN:payload," (D. J. Bernstein) */

/* The longest whole frame (prefix, payload and trailer), in bytes: a frame
 * that would be longer is RD_ETOOBIG whatever max says, and no read longer
 * than this is taken. So lengths fit in 32 bits and the fields a read
 * touches fit in one cache line (a line per connection per request, at
 * 1,000 connections, is the read path's main cost after the instructions). */
#define RD_FRAME_MAX 0x7fffffffu

struct rd_framer {
    /* what every read touches, first and in 64 bytes */
    const char *in;              /* private: the bytes being framed (buf or a read) */
    const char *delim;           /* rw: the line rule's delimiter; not owned, must
                                    stay valid while frames are taken */
    const rd_frame_rule_t *rule; /* rw: set with rd_framer_set_rule */
    char *buf;                   /* private: the unfinished frame, owned */
    size_t max;                  /* rw: the longest payload accepted (see RD_FRAME_MAX) */
    uint32_t inlen, pos;         /* private: the bytes' length, how far frames took them */
    uint32_t len;                /* private: bytes kept in buf */
    uint32_t dlen;               /* rw: the delimiter's length, >= 1 */
    uint32_t scanned;            /* private: rule's progress in the unconsumed bytes */
    uint32_t need;               /* private: rule's hint, bytes the frame needs in all */
    /* the rest */
    uint32_t cap;      /* private: buf's size */
    uint32_t user;     /* the owner's (a word that would be padding): the framer never
                        * reads or writes it, but rd_framer_init zeroes it */
    uint64_t declared; /* ro: after RD_ETOOBIG, the declared length (or 0) */
};

/* An empty framer with the line rule, "\r\n" and a 16 KiB maximum. */
void rd_framer_init(rd_framer_t *f);
/* Free the buffer; the framer is empty and may be used again. */
void rd_framer_destroy(rd_framer_t *f);
/* Change the rule (and forget the rule's progress); the bytes stay. */
void rd_framer_set_rule(rd_framer_t *f, const rd_frame_rule_t *rule);
/* The line rule's settings, cheap enough to call at every read. The rule's
 * progress is kept unless the delimiter is another: it is compared by
 * address, so the owner keeps its delimiter alive while it is set (a new
 * one at a freed one's address would look the same). */
static inline void rd_framer_set_line(rd_framer_t *f, const char *delim, size_t dlen, size_t max);

/* Start framing one read's bytes, after what is kept from earlier reads.
 * Without kept bytes, frames point into data; with them, data is appended
 * to the framer's buffer first. -ENOMEM (no memory, or a read longer than
 * RD_FRAME_MAX) leaves the framer as it was. */
static inline int rd_framer_feed(rd_framer_t *f, const char *data, size_t n);
/* The next frame: 1 and *out set, 0 when more bytes are needed, or the
 * rule's RD_ETOOBIG / RD_EFRAME. After an error, *out is every unconsumed
 * byte (the oversized frame and what follows) and the framer is empty:
 * the owner decides what to do with them (LineReceiver's lineLengthExceeded
 * gets them all, as Twisted's does). *out stays valid until the next feed,
 * keep or take. */
static inline int rd_framer_next(rd_framer_t *f, rd_span_t *out);
/* Every unconsumed byte, and the framer is empty: for leaving framing
 * (setRawMode) with the rest of the read. Valid until the next call. */
rd_span_t rd_framer_take(rd_framer_t *f);
/* The read is done: keep the unconsumed bytes for the next feed.
 * -ENOMEM (the bytes are dropped) if they cannot be copied. */
static inline int rd_framer_keep(rd_framer_t *f);
/* Bytes kept from earlier reads (an unfinished frame). */
size_t rd_framer_pending(const rd_framer_t *f);
/* For an owner that frames the bytes itself (a coroutine stream's reads),
 * between feed and keep: the unconsumed bytes, valid until the next feed,
 * keep or take... */
static inline rd_span_t rd_framer_peek(const rd_framer_t *f);
/* ...and consuming n of them (n <= peek's length); the rule's progress is reset. */
static inline void rd_framer_skip(rd_framer_t *f, size_t n);
/* A stream's "read until": among the unconsumed bytes, the ones before the
 * delimiter d (f->delim is set to d; the owner keeps d alive while it is
 * set): 1 with *out the payload, consumed with its delimiter; 0 not yet
 * (the search resumes there next time, so a payload that comes a byte at a
 * time costs O(n)); RD_ETOOBIG no delimiter within limit bytes (nothing
 * consumed). Between feed and keep. */
int rd_framer_until(rd_framer_t *f, const char *d, size_t dlen, size_t limit, rd_span_t *out);

/*{====================================================================
 * The calls a connection makes at every read, with their common case
 * inline: a read whose frames arrive whole, nothing kept before or after.
 * As plain calls they cost ~40 instructions per zen request (callgrind);
 * the rest of each is in rd_framer.c.
 *=====================================================================*/

int rd__framer_feed(rd_framer_t *f, const char *data, size_t n);
int rd__framer_next(rd_framer_t *f, rd_span_t *out);
int rd__framer_keep(rd_framer_t *f);

static inline void rd_framer_set_line(rd_framer_t *f, const char *delim, size_t dlen, size_t max)
{
    if (delim != f->delim || dlen != f->dlen) { /* written only when it changes */
        f->scanned = 0;
        f->delim = delim;
        f->dlen = dlen <= RD_FRAME_MAX ? (uint32_t)dlen : RD_FRAME_MAX;
    }
    if (max != f->max) f->max = max;
}

static inline int rd_framer_feed(rd_framer_t *f, const char *data, size_t n)
{
    if (f->in || f->len || n > RD_FRAME_MAX) return rd__framer_feed(f, data, n);
    f->in = data;
    f->inlen = (uint32_t)n;
    f->pos = 0;
    return 0;
}

static inline int rd_framer_next(rd_framer_t *f, rd_span_t *out)
{
    if (!f->in || f->pos == f->inlen) return 0;
    return rd__framer_next(f, out);
}

static inline rd_span_t rd_framer_peek(const rd_framer_t *f)
{
    rd_span_t s = {"", 0};
    if (f->in) s = (rd_span_t){f->in + f->pos, f->inlen - f->pos};
    return s;
}

static inline void rd_framer_skip(rd_framer_t *f, size_t n)
{
    f->pos += (uint32_t)n;
    f->scanned = f->need = 0;
}

static inline int rd_framer_keep(rd_framer_t *f)
{
    /* a read framed where it lay and taken whole: the buffer was not used */
    if (f->in && f->in != f->buf && f->pos == f->inlen) {
        f->in = NULL; /* scanned and need are 0: the last frame taken reset them */
        f->inlen = f->pos = 0;
        return 0;
    }
    return rd__framer_keep(f);
}

#endif
