/*
 * rd_http.h: a strict HTTP/1.1 request-head parser and chunked-body decoder.
 * No Lua and no libev in here: bytes in, spans and a status out.
 *
 * The head parser is stateless over the connection's read buffer (the
 * picohttpparser way): call rd_http_parse_request on every unconsumed byte
 * after each read. It returns the head's length once the head is whole, 0
 * while it is not, or an HTTP status (negated) to answer and close with. Its
 * spans point into the buffer (no copy), so they are valid as long as those
 * bytes are; a head that arrived in pieces is simply parsed again from its
 * first byte. Several pipelined requests in one read are taken in one pass
 * by calling it again at buf + consumed (+ the body).
 *
 * Strict by default (RFC 9112, and the smuggling inputs other parsers have
 * fallen for): a bare CR or LF anywhere, obs-fold, whitespace before a
 * colon, a byte that is not a token in the method or a header name, a
 * control byte (other than HTAB) in a value, a request line other than
 * `METHOD SP target SP HTTP/1.x CRLF` are 400; another HTTP version is 505.
 * The body's framing is decided from the head: Content-Length and
 * Transfer-Encoding together, two of either, a Content-Length that is not
 * 1-19 digits, Transfer-Encoding in HTTP/1.0, HTTP/1.1 without exactly one
 * Host: 400; a Transfer-Encoding other than exactly `chunked`: 501; an
 * Expect other than 100-continue: 417. Limits: request line 414, header
 * bytes and count 431, Content-Length above the body limit 413.
 *
 * Errors are decided in the order the bytes come, so a prefix of any input
 * gives 0 or the error the whole input gives, never another answer.
 *
 * Left to the caller: the request-target's form (origin, absolute,
 * authority, asterisk) and its decoding; Host's syntax beyond the value
 * bytes; what a method means. There is no lenient mode (bare LF, obs-fold
 * are always 400).
 *
 * Replacing it: the interface is only the calls below and the plain
 * structs they fill (spans, a status, the framing). A packaged parser such
 * as llhttp 9 fits behind it by running over the whole buffer at each call
 * (llhttp_init, then llhttp_execute paused in on_headers_complete) and
 * filling rd_http_req_t from its callbacks; the chunked decoder maps onto
 * its on_body callback; rd_http_need_parse holds for any parser. Nothing
 * else in reactord may depend on how this file scans.
 */
#ifndef RD_HTTP_H
#define RD_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* A run of bytes inside the caller's buffer (not NUL-terminated). */
typedef struct rd_http_span {
    const char *p;
    size_t n;
} rd_http_span_t;

typedef struct rd_http_header {
    rd_http_span_t name;  /* as sent (case kept); a token */
    rd_http_span_t value; /* without the optional whitespace around it */
} rd_http_header_t;

/* Per-listener limits. A NULL limits pointer means rd_http_default_limits. */
typedef struct rd_http_limits {
    size_t max_request_line; /* bytes before its CRLF (leading empty lines count); 414 */
    size_t max_header_bytes; /* the field lines and the empty line ending them; 431 */
    size_t max_headers;      /* field lines (also trailer lines); 431 */
    uint64_t max_body;       /* Content-Length, or decoded chunked bytes; 413 */
    size_t max_chunk_ext;    /* chunk-extension bytes in one body (CVE-2024-22019); 413 */
} rd_http_limits_t;

/* 8 KiB request line, 32 KiB of fields, 100 fields, 1 MiB body, 4 KiB of
 * chunk extensions. */
extern const rd_http_limits_t rd_http_default_limits;

typedef enum rd_http_body {
    RD_HTTP_BODY_NONE = 0, /* no body (no Content-Length, no Transfer-Encoding) */
    RD_HTTP_BODY_LENGTH,   /* content_length bytes follow the head (maybe 0) */
    RD_HTTP_BODY_CHUNKED,  /* a chunked body follows: see rd_http_chunked_t */
    RD_HTTP_BODY_CLOSE     /* responses only: the body is every byte until the peer closes */
} rd_http_body_t;

typedef struct rd_http_req {
    rd_http_header_t *headers;    /* rw: the caller's array, set before parsing */
    size_t cap;                   /* rw: its size; more fields than min(cap, max_headers): 431 */
    size_t nheaders;              /* ro: fields parsed, in the order sent */
    rd_http_span_t method;        /* ro: a token, case-sensitive ("GET") */
    rd_http_span_t target;        /* ro: the request-target as sent (visible ASCII) */
    rd_http_span_t host;          /* ro: Host's value (p NULL when there is none) */
    int minor;                    /* ro: 0 for HTTP/1.0, 1 for HTTP/1.1 */
    rd_http_body_t body;          /* ro: how the body is framed */
    uint64_t content_length;      /* ro: with RD_HTTP_BODY_LENGTH */
    unsigned keep_alive : 1;      /* ro: 1.1 unless Connection: close; 1.0 only with keep-alive */
    unsigned expect_continue : 1; /* ro: HTTP/1.1 and Expect: 100-continue */
    const char *why;              /* ro: after an error, what was wrong (static text) */
} rd_http_req_t;

/* Parse the request head at buf[0..len). Returns the head's length in bytes
 * (> 0; the body, if any, starts there), 0 if more bytes are needed, or
 * -status (-400, -413, -414, -417, -431, -501, -505) with req->why set.
 * req->headers and req->cap must be set; the other fields are written. */
long rd_http_parse_request(const char *buf, size_t len, rd_http_req_t *req,
                           const rd_http_limits_t *lim);

/* After a parse of buf[0..seen) gave 0, whether buf[0..len) is worth parsing:
 * 1 if the new bytes hold an LF (a head only ends on one) or the buffer
 * passed the limits, else 0. Skipping a parse when it says 0 only delays an
 * error to the next line end, never changes an answer; it makes a head sent
 * a byte at a time cost a parse per line, not per byte (slowloris). */
int rd_http_need_parse(const char *buf, size_t seen, size_t len, const rd_http_limits_t *lim);

/* The reason phrase of a status this file returns ("Bad Request"), or NULL. */
const char *rd_http_reason(int status);

/*{====================================================================
 * Response heads (for a client), with the request parser's strictness.
 *
 * The status line must be `HTTP/1.x SP 3DIGIT SP reason CRLF` (the reason
 * may be empty, and `HTTP/1.x SP 3DIGIT CRLF` is taken too), the code
 * 100..999. Field lines are checked exactly as in a request (bare CR or LF,
 * obs-fold, whitespace before a colon, a non-token name, a control byte in
 * a value are errors). Interim 1xx heads (other than 101) are skipped: the
 * length returned covers them and the spans describe the final head. Body
 * framing (RFC 9112 6.3): none after a HEAD request and for 1xx, 204 and
 * 304 (whatever the fields say); else Transfer-Encoding, which must be
 * exactly `chunked`; else Content-Length (1-19 digits, once, not with
 * Transfer-Encoding); else every byte until the peer closes
 * (RD_HTTP_BODY_CLOSE, and keep_alive 0). Limits: the status line as
 * max_request_line, the fields as a request's, Content-Length above
 * max_body. Every error is -1 with why set (the response cannot be used;
 * the connection must be closed). As for requests, a prefix of any input
 * gives 0 or the whole input's error.
 *=====================================================================*/

typedef struct rd_http_resp {
    rd_http_header_t *headers; /* rw: the caller's array, set before parsing */
    size_t cap;                /* rw: its size */
    size_t nheaders;           /* ro: fields of the final head, in the order sent */
    int status;                /* ro: 100..999 */
    rd_http_span_t reason;     /* ro: the reason phrase (maybe empty) */
    int minor;                 /* ro: 0 for HTTP/1.0, 1 for HTTP/1.1 */
    rd_http_body_t body;       /* ro: how the body is framed */
    uint64_t content_length;   /* ro: with RD_HTTP_BODY_LENGTH */
    unsigned keep_alive : 1;   /* ro: the connection may carry another request after the body */
    const char *why;           /* ro: after an error, what was wrong (static text) */
} rd_http_resp_t;

/* Flags of rd_http_parse_response */
#define RD_HTTP_RESP_HEAD 1 /* the request was HEAD: no body whatever the fields say */

/* Parse a response head at buf[0..len): its length (> 0, 1xx heads before
 * it included), 0 if more bytes are needed, or -1 with resp->why set. */
long rd_http_parse_response(const char *buf, size_t len, rd_http_resp_t *resp,
                            const rd_http_limits_t *lim, int flags);

/*{====================================================================
 * Chunked bodies. Chunk data crosses reads, so the decoder keeps a small
 * state; it copies nothing: each call hands back a span of the body's data
 * inside the bytes given to it.
 *=====================================================================*/

typedef struct rd_http_chunked {
    uint64_t left;                  /* private: data bytes of the current chunk still to come */
    uint64_t total;                 /* ro: data bytes decoded so far */
    uint64_t max_body;              /* private: from the limits */
    size_t ext, max_ext;            /* private: chunk-extension bytes so far, and the cap */
    size_t trailer, max_trailer;    /* private: trailer bytes so far, and the cap */
    size_t ntrailers, max_trailers; /* private: trailer fields so far, and the cap */
    unsigned digits;                /* private: hex digits of the size line so far */
    int state;                      /* private */
    const char *why;                /* ro: after an error, what was wrong (static text) */
} rd_http_chunked_t;

/* A decoder at the start of a chunked body (limits NULL: the defaults). */
void rd_http_chunked_init(rd_http_chunked_t *c, const rd_http_limits_t *lim);
/* Decode from p[0..n): returns the bytes used (0..n) and sets *data to the
 * body data found among them (possibly empty; at most one span per call),
 * or -status (400, 413, 431) with c->why set (and every later call gives
 * it again). Call again on the rest while it uses bytes and is not done. Framing bytes are taken
 * into the state, so nothing needs to be kept for the next read. Trailer fields are checked like
 * header fields, then dropped. */
long rd_http_chunked_decode(rd_http_chunked_t *c, const char *p, size_t n, rd_http_span_t *data);
/* 1 once the last chunk and the trailers' empty line are decoded: the bytes
 * after those used belong to the next request. */
int rd_http_chunked_done(const rd_http_chunked_t *c);

/*{====================================================================
 * A request's body read across reads (a server streaming a body too big to
 * wait for whole): Content-Length or chunked alike, spans of the bytes
 * given, nothing copied.
 *=====================================================================*/

typedef struct rd_http_body_reader {
    int chunked;         /* private */
    uint64_t left;       /* private: Content-Length bytes still to come */
    rd_http_chunked_t c; /* private */
    const char *why;     /* ro: after an error, what was wrong (static text) */
} rd_http_body_reader_t;

/* A reader at the start of req's body (req->body LENGTH or CHUNKED). */
void rd_http_body_init(rd_http_body_reader_t *b, const rd_http_req_t *req,
                       const rd_http_limits_t *lim);
/* Read from p[0..n): the bytes used (0..n), *data the body data among them
 * (maybe empty, one span per call), or -status with b->why set. Call again
 * on the rest while it uses bytes and is not done. */
long rd_http_body_read(rd_http_body_reader_t *b, const char *p, size_t n, rd_http_span_t *data);
/* 1 once the whole body is read: the bytes after belong to the next request. */
int rd_http_body_done(const rd_http_body_reader_t *b);

#endif
