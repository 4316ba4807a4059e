/*
 * rd_http.c: the strict HTTP/1.1 request-head parser and chunked decoder of
 * rd_http.h (RFC 9112; the rules and their statuses are listed there).
 *
 * The head is scanned once, left to right, each byte classified by a table.
 * Every decision at a byte depends only on the bytes before it, and running
 * out of bytes is always "need more" (unless a limit is already passed):
 * that is what makes a prefix give 0 or the same error as the whole input,
 * and lets a caller re-parse a growing buffer without keeping state.
 * Limits bound every loop, so the parser never looks past max_request_line
 * + 2 bytes of request line or max_header_bytes bytes of fields.
 */
#include "rd_http.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

const rd_http_limits_t rd_http_default_limits = {
    .max_request_line = 8192,
    .max_header_bytes = 32768,
    .max_headers = 100,
    .max_body = 1u << 20,
    .max_chunk_ext = 4096,
};

/* Byte classes: a bit per role. */
enum {
    TCHAR = 1,  /* token (RFC 9110 5.6.2): method, field name */
    VCHAR = 2,  /* field value: VCHAR, obs-text, SP, HTAB */
    TARGET = 4, /* request-target as sent: visible ASCII */
    HEX = 8
};

/* The class of byte c, as a constant expression (the table is built by the
 * compiler from the RFC's definitions, not typed in). */
#define ALPHA_(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define DIGIT_(c) ((c) >= '0' && (c) <= '9')
#define TSYM_(c)                                                                                   \
    ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||           \
     (c) == '`' || (c) == '|' || (c) == '~')
#define CLS(c)                                                                                     \
    ((ALPHA_(c) || DIGIT_(c) || TSYM_(c) ? TCHAR : 0) |                                            \
     (((c) > 0x20 && (c) != 0x7f) || (c) == ' ' || (c) == '\t' ? VCHAR : 0) |                      \
     ((c) > 0x20 && (c) < 0x7f ? TARGET : 0) |                                                     \
     (DIGIT_(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F') ? HEX : 0))
#define C4(n) CLS(n), CLS(n + 1), CLS(n + 2), CLS(n + 3)
#define C16(n) C4(n), C4(n + 4), C4(n + 8), C4(n + 12)
#define C64(n) C16(n), C16(n + 16), C16(n + 32), C16(n + 48)

static const unsigned char cls[256] = {C64(0), C64(64), C64(128), C64(192)};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

/* Skip, 16 bytes at a time, the bytes of p[i..end) that are surely
 * allowed: in a value (`value`) those from SP to '~' and obs-text; in a
 * target those from '!' to '~'. It stops at the first block holding any
 * other byte (HTAB included), and the table-driven loop after it decides
 * that byte: this only makes the common case faster, never changes what is
 * accepted. Reads stay inside [i, end). */
static size_t skip_plain(const unsigned char *p, size_t i, size_t end, int value)
{
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8(value ? 0x20 : 0x21), del = _mm_set1_epi8(0x7f);
    while (end - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* compared as signed bytes, so 0x80-0xff (obs-text) are below lo */
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, lo), _mm_cmpeq_epi8(v, del));
        if (value) bad = _mm_andnot_si128(_mm_cmplt_epi8(v, _mm_setzero_si128()), bad);
        int m = _mm_movemask_epi8(bad);
        if (m) return i + (size_t)__builtin_ctz((unsigned)m);
        i += 16;
    }
#else
    (void)p;
    (void)end;
    (void)value;
#endif
    return i;
}

const char *rd_http_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return NULL;
    }
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* s[0..n) equals the lower-case lit, ignoring ASCII case */
static int eqi(const unsigned char *s, size_t n, const char *lit)
{
    for (size_t k = 0; k < n; k++)
        if (!lit[k] || lower(s[k]) != lit[k]) return 0;
    return lit[n] == '\0';
}

/* Connection's comma-separated options: bit 1 close, bit 2 keep-alive. */
static int conn_options(const unsigned char *v, size_t n)
{
    int seen = 0;
    size_t k = 0;
    while (k < n) {
        while (k < n && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
            k++;
        size_t s = k;
        while (k < n && v[k] != ',' && v[k] != ' ' && v[k] != '\t')
            k++;
        if (eqi(v + s, k - s, "close"))
            seen |= 1;
        else if (eqi(v + s, k - s, "keep-alive"))
            seen |= 2;
    }
    return seen;
}

#define FAIL(status, msg)                                                                          \
    do {                                                                                           \
        req->why = (msg);                                                                          \
        return -(status);                                                                          \
    } while (0)

/* What a byte that may not be where it is says about the input. */
static const char *bad_byte(unsigned char c, const char *otherwise)
{
    return c == '\n' ? "bare LF" : otherwise;
}

long rd_http_parse_request(const char *buf, size_t len, rd_http_req_t *req,
                           const rd_http_limits_t *lim)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (!lim) lim = &rd_http_default_limits;
    req->nheaders = 0;
    req->method.p = req->target.p = req->host.p = NULL;
    req->method.n = req->target.n = req->host.n = 0;
    req->minor = 0;
    req->body = RD_HTTP_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = req->expect_continue = 0;
    req->why = NULL;

    /*{===== request line: [CRLF]* method SP target SP HTTP/1.x CRLF =====
     * Bytes up to index max_request_line may be looked at (that one only
     * as the CR), so running out at max_request_line + 1 is 414. */
    size_t rlmax = lim->max_request_line;
    size_t b = len <= rlmax ? len : rlmax + 1;
    size_t i = 0;
#define RL_OUT(at)                                                                                 \
    do {                                                                                           \
        if ((at) > rlmax) FAIL(414, "request line too long");                                      \
        return 0;                                                                                  \
    } while (0)

    /* RFC 9112 2.2: a server SHOULD ignore empty lines before the request */
    while (i < b && p[i] == '\r') {
        if (i + 1 >= len) return 0;
        if (p[i + 1] != '\n') FAIL(400, "bare CR");
        i += 2;
    }
    if (i >= b) RL_OUT(i);

    size_t ms = i;
    while (i < b && IS(p[i], TCHAR))
        i++;
    if (i >= b) RL_OUT(i);
    if (p[i] != ' ' || i == ms)
        FAIL(400, p[i] == '\n'   ? "bare LF"
                  : p[i] == ' '  ? "empty method"
                  : p[i] == '\r' ? "request line is not METHOD SP target SP HTTP/1.x"
                                 : "a byte not allowed in a method");
    req->method.p = buf + ms;
    req->method.n = i - ms;
    i++;

    size_t ts = i;
    i = skip_plain(p, i, b, 0);
    while (i < b && IS(p[i], TARGET))
        i++;
    if (i >= b) RL_OUT(i);
    if (p[i] != ' ' || i == ts)
        FAIL(400, p[i] == '\n'              ? "bare LF"
                  : i == ts || p[i] == '\r' ? "request line is not METHOD SP target SP HTTP/1.x"
                                            : "a byte not allowed in the request target");
    req->target.p = buf + ts;
    req->target.n = i - ts;
    i++;

    static const char http[] = "HTTP/";
    for (int k = 0; k < 5; k++, i++) {
        if (i >= b) RL_OUT(i);
        if (p[i] != (unsigned char)http[k])
            FAIL(400,
                 p[i] == '\n' ? "bare LF" : "request line is not METHOD SP target SP HTTP/1.x");
    }
    unsigned char ver[3];
    for (int k = 0; k < 3; k++, i++) {
        if (i >= b) RL_OUT(i);
        ver[k] = p[i];
        if (k == 1 ? p[i] != '.' : (p[i] < '0' || p[i] > '9'))
            FAIL(400, p[i] == '\n' ? "bare LF" : "HTTP version is not DIGIT.DIGIT");
    }
    if (i >= b) RL_OUT(i);
    if (p[i] != '\r')
        FAIL(400, p[i] == '\n' ? "bare LF" : "request line does not end after the version");
    if (i + 1 >= len) return 0;
    if (p[i + 1] != '\n') FAIL(400, "bare CR");
    i += 2;
    if (ver[0] != '1' || ver[2] > '1') FAIL(505, "HTTP version other than 1.0 or 1.1");
    req->minor = ver[2] - '0';
#undef RL_OUT

    /*{===== field lines, then an empty line =====
     * At most max_header_bytes bytes from hs on are looked at. */
    size_t hs = i, hmax = lim->max_header_bytes;
    size_t hb = len - hs <= hmax ? len : hs + hmax;
    size_t maxh = req->cap < lim->max_headers ? req->cap : lim->max_headers;
    int seen_cl = 0, seen_te = 0, te_chunked = 0, expect_other = 0, conn = 0;
    uint64_t cl = 0;
#define H_OUT(at)                                                                                  \
    do {                                                                                           \
        if ((at)-hs >= hmax) FAIL(431, "header fields too long");                                  \
        return 0;                                                                                  \
    } while (0)

    for (;;) {
        if (i >= hb) H_OUT(i);
        unsigned char c = p[i];
        if (c == '\r') {
            if (i + 1 >= hb) H_OUT(i + 1);
            if (p[i + 1] != '\n') FAIL(400, "bare CR"); /* "\r\n\rX": CVE-2025-23167 class */
            i += 2;
            break;
        }
        if (!IS(c, TCHAR)) {
            if (c == ' ' || c == '\t')
                FAIL(400, req->nheaders ? "obs-fold (a field line starting with whitespace)"
                                        : "whitespace before the first field");
            FAIL(400,
                 bad_byte(c, c == ':' ? "empty field name" : "a byte not allowed in a field name"));
        }
        if (req->nheaders >= maxh) FAIL(431, "too many header fields");
        size_t ns = i;
        do
            i++;
        while (i < hb && IS(p[i], TCHAR));
        if (i >= hb) H_OUT(i);
        if (p[i] != ':')
            FAIL(400, p[i] == ' ' || p[i] == '\t' ? "whitespace before a colon" /* CVE-2021-22959 */
                      : p[i] == '\r'              ? "a field line without a colon"
                                     : bad_byte(p[i], "a byte not allowed in a field name"));
        size_t ne = i++;
        while (i < hb && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t vs = i;
        i = skip_plain(p, i, hb, 1);
        while (i < hb && IS(p[i], VCHAR))
            i++;
        if (i >= hb) H_OUT(i);
        if (p[i] != '\r') FAIL(400, p[i] == '\n' ? "bare LF" : "a control byte in a field value");
        if (i + 1 >= hb) H_OUT(i + 1);
        if (p[i + 1] != '\n') FAIL(400, "bare CR"); /* "X: \rx": CVE-2023-30589 */
        size_t ve = i;
        while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
            ve--;
        i += 2;

        rd_http_header_t *h = &req->headers[req->nheaders++];
        h->name.p = buf + ns;
        h->name.n = ne - ns;
        h->value.p = buf + vs;
        h->value.n = ve - vs;
        const unsigned char *n = p + ns, *v = p + vs;
        size_t nl = ne - ns, vl = ve - vs;
        switch (nl) {
        case 4:
            if (eqi(n, nl, "host")) {
                if (req->host.p) FAIL(400, "two Host fields");
                req->host = h->value;
            }
            break;
        case 6:
            if (eqi(n, nl, "expect")) {
                if (eqi(v, vl, "100-continue"))
                    req->expect_continue = 1;
                else
                    expect_other = 1;
            }
            break;
        case 10:
            if (eqi(n, nl, "connection")) conn |= conn_options(v, vl);
            break;
        case 14:
            if (eqi(n, nl, "content-length")) {
                if (seen_cl) FAIL(400, "two Content-Length fields");
                seen_cl = 1;
                if (vl < 1 || vl > 19) FAIL(400, "Content-Length is not 1 to 19 digits");
                for (size_t k = 0; k < vl; k++) {
                    if (v[k] < '0' || v[k] > '9') FAIL(400, "Content-Length is not 1 to 19 digits");
                    cl = cl * 10 + (uint64_t)(v[k] - '0');
                }
            }
            break;
        case 17:
            if (eqi(n, nl, "transfer-encoding")) {
                if (seen_te) FAIL(400, "two Transfer-Encoding fields");
                seen_te = 1;
                te_chunked = eqi(v, vl, "chunked");
            }
            break;
        }
    }
#undef H_OUT

    /*{===== what the head says as a whole ===== */
    if (seen_te) {
        if (req->minor == 0) FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (seen_cl) FAIL(400, "Content-Length with Transfer-Encoding");
        if (!te_chunked) FAIL(501, "Transfer-Encoding other than chunked");
        req->body = RD_HTTP_BODY_CHUNKED;
    } else if (seen_cl) {
        if (cl > lim->max_body) FAIL(413, "Content-Length above the body limit");
        req->body = RD_HTTP_BODY_LENGTH;
        req->content_length = cl;
    }
    if (req->minor == 1) {
        if (!req->host.p) FAIL(400, "HTTP/1.1 without Host");
        if (expect_other) FAIL(417, "Expect other than 100-continue");
        req->keep_alive = !(conn & 1);
    } else {
        req->expect_continue = 0; /* RFC 9110 10.1.1: ignored in HTTP/1.0 */
        req->keep_alive = (conn & 2) && !(conn & 1);
    }
    return (long)i;
}
#undef FAIL

int rd_http_need_parse(const char *buf, size_t seen, size_t len, const rd_http_limits_t *lim)
{
    if (!lim) lim = &rd_http_default_limits;
    if (seen >= len) return 0;
    /* past every limit: the parse gives an error now (414 or 431 at the latest) */
    size_t most = lim->max_request_line + 2;
    most = lim->max_header_bytes > SIZE_MAX - most ? SIZE_MAX : most + lim->max_header_bytes;
    if (len > most) return 1;
    return memchr(buf + seen, '\n', len - seen) != NULL;
}

/*{====================================================================
 * Chunked bodies: a byte-at-a-time state machine for the framing, spans for
 * the data.
 *=====================================================================*/

enum {
    CH_SIZE0,   /* the first hex digit of a size */
    CH_SIZE,    /* more hex digits, ';', BWS or CR */
    CH_BWS,     /* whitespace after the size: only ';' may follow */
    CH_EXT,     /* chunk extensions, up to CR: only their bytes are checked (no
                   one uses them; their bytes are capped) */
    CH_SIZE_LF, /* the LF of the size line */
    CH_DATA,    /* left data bytes */
    CH_DATA_CR, /* the CRLF after the data */
    CH_DATA_LF,
    CH_TR_START, /* a trailer line, or the CR of the last empty line */
    CH_TR_NAME,
    CH_TR_VALUE,
    CH_TR_LF,
    CH_END_LF,
    CH_DONE
};

void rd_http_chunked_init(rd_http_chunked_t *c, const rd_http_limits_t *lim)
{
    if (!lim) lim = &rd_http_default_limits;
    memset(c, 0, sizeof *c);
    c->max_body = lim->max_body;
    c->max_ext = lim->max_chunk_ext;
    c->max_trailer = lim->max_header_bytes;
    c->max_trailers = lim->max_headers;
    c->state = CH_SIZE0;
}

int rd_http_chunked_done(const rd_http_chunked_t *c)
{
    return c->state == CH_DONE;
}

#define CFAIL(status, msg)                                                                         \
    do {                                                                                           \
        c->why = (msg);                                                                            \
        c->state = -(status);                                                                      \
        return -(status);                                                                          \
    } while (0)

static unsigned hexval(unsigned char b)
{
    return b <= '9' ? (unsigned)(b - '0') : (unsigned)(lower(b) - 'a' + 10);
}

long rd_http_chunked_decode(rd_http_chunked_t *c, const char *buf, size_t n, rd_http_span_t *data)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t i = 0;
    data->p = buf;
    data->n = 0;
    if (c->state < 0) return c->state; /* an error stays */
    while (i < n) {
        int st = c->state;
        if (st == CH_DATA) {
            uint64_t k = n - i < c->left ? n - i : c->left;
            data->p = buf + i;
            data->n = (size_t)k;
            i += (size_t)k;
            c->left -= k;
            c->total += k;
            if (!c->left) c->state = CH_DATA_CR;
            return (long)i;
        }
        if (st == CH_DONE) break;
        unsigned char b = p[i++];
        if (st >= CH_TR_START && ++c->trailer > c->max_trailer) CFAIL(431, "trailer too long");
        switch (st) {
        case CH_SIZE0:
            if (!IS(b, HEX)) CFAIL(400, bad_byte(b, "chunk size is not hex"));
            c->left = hexval(b);
            c->digits = 1;
            c->state = CH_SIZE;
            break;
        case CH_SIZE:
            if (IS(b, HEX)) {
                if (++c->digits > 16) CFAIL(400, "chunk size longer than 16 hex digits");
                c->left = c->left << 4 | hexval(b);
            } else if (b == '\r') {
                c->state = CH_SIZE_LF;
            } else if (b == ';') {
                c->state = CH_EXT;
            } else if (b == ' ' || b == '\t') {
                c->state = CH_BWS;
            } else {
                CFAIL(400, bad_byte(b, "chunk size is not hex"));
            }
            break;
        case CH_BWS:
            if (b == ';')
                c->state = CH_EXT;
            else if (b != ' ' && b != '\t')
                CFAIL(400, bad_byte(b, "whitespace after a chunk size not followed by ';'"));
            break;
        case CH_EXT:
            if (b == '\r') {
                c->state = CH_SIZE_LF;
                break;
            }
            if (!IS(b, VCHAR)) CFAIL(400, bad_byte(b, "a control byte in a chunk extension"));
            if (++c->ext > c->max_ext) CFAIL(413, "chunk extensions too long");
            break;
        case CH_SIZE_LF:
            if (b != '\n') CFAIL(400, "bare CR");
            if (c->left == 0) {
                c->state = CH_TR_START;
            } else {
                if (c->left > c->max_body - c->total)
                    CFAIL(413, "chunked body above the body limit");
                c->state = CH_DATA;
            }
            break;
        case CH_DATA_CR:
            if (b != '\r') CFAIL(400, "chunk data not followed by CRLF");
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (b != '\n') CFAIL(400, "chunk data not followed by CRLF");
            c->state = CH_SIZE0;
            break;
        case CH_TR_START:
            if (b == '\r') {
                c->state = CH_END_LF;
            } else if (IS(b, TCHAR)) {
                if (++c->ntrailers > c->max_trailers) CFAIL(431, "too many trailer fields");
                c->state = CH_TR_NAME;
            } else if (b == ' ' || b == '\t') {
                CFAIL(400, "obs-fold (a trailer line starting with whitespace)");
            } else {
                CFAIL(400, bad_byte(b, b == ':' ? "empty field name"
                                                : "a byte not allowed in a field name"));
            }
            break;
        case CH_TR_NAME:
            if (b == ':')
                c->state = CH_TR_VALUE;
            else if (b == ' ' || b == '\t')
                CFAIL(400, "whitespace before a colon");
            else if (!IS(b, TCHAR))
                CFAIL(400, bad_byte(b, "a byte not allowed in a field name"));
            break;
        case CH_TR_VALUE:
            if (b == '\r')
                c->state = CH_TR_LF;
            else if (!IS(b, VCHAR))
                CFAIL(400, b == '\n' ? "bare LF" : "a control byte in a field value");
            break;
        case CH_TR_LF:
            if (b != '\n') CFAIL(400, "bare CR");
            c->state = CH_TR_START;
            break;
        case CH_END_LF:
            if (b != '\n') CFAIL(400, "bare CR");
            c->state = CH_DONE;
            return (long)i;
        }
    }
    return (long)i;
}
#undef CFAIL

/*{====================================================================
 * Response heads: the status line, then field lines scanned as in a
 * request (same classes, same order of decisions).
 *=====================================================================*/

#define RFAIL(msg)                                                                                 \
    do {                                                                                           \
        resp->why = (msg);                                                                         \
        return -1;                                                                                 \
    } while (0)

/* One head at buf[0..len) (no 1xx skipping): as rd_http_parse_response. */
static long parse_one_response(const char *buf, size_t len, rd_http_resp_t *resp,
                               const rd_http_limits_t *lim, int flags)
{
    const unsigned char *p = (const unsigned char *)buf;
    resp->nheaders = 0;
    resp->status = 0;
    resp->reason.p = NULL;
    resp->reason.n = 0;
    resp->minor = 0;
    resp->body = RD_HTTP_BODY_NONE;
    resp->content_length = 0;
    resp->keep_alive = 0;
    resp->why = NULL;

    /*{===== status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF ===== */
    size_t rlmax = lim->max_request_line;
    size_t b = len <= rlmax ? len : rlmax + 1;
    size_t i = 0;
#define SL_OUT(at)                                                                                 \
    do {                                                                                           \
        if ((at) > rlmax) RFAIL("status line too long");                                           \
        return 0;                                                                                  \
    } while (0)
    static const char http[] = "HTTP/";
    for (int k = 0; k < 5; k++, i++) {
        if (i >= b) SL_OUT(i);
        if (p[i] != (unsigned char)http[k])
            RFAIL(p[i] == '\n' ? "bare LF" : "status line is not HTTP/1.x SP code SP reason");
    }
    unsigned char ver[3];
    for (int k = 0; k < 3; k++, i++) {
        if (i >= b) SL_OUT(i);
        ver[k] = p[i];
        if (k == 1 ? p[i] != '.' : (p[i] < '0' || p[i] > '9'))
            RFAIL(p[i] == '\n' ? "bare LF" : "HTTP version is not DIGIT.DIGIT");
    }
    if (ver[0] != '1' || ver[2] > '1') RFAIL("HTTP version other than 1.0 or 1.1");
    if (i >= b) SL_OUT(i);
    if (p[i] != ' ')
        RFAIL(p[i] == '\n' ? "bare LF" : "status line is not HTTP/1.x SP code SP reason");
    i++;
    int code = 0;
    for (int k = 0; k < 3; k++, i++) {
        if (i >= b) SL_OUT(i);
        if (p[i] < '0' || p[i] > '9')
            RFAIL(p[i] == '\n' ? "bare LF" : "status code is not three digits");
        code = code * 10 + (p[i] - '0');
    }
    if (code < 100) RFAIL("status code below 100");
    if (i >= b) SL_OUT(i);
    size_t rs = i;
    int sp = p[i] == ' ';
    if (sp) {
        rs = ++i;
        while (i < b && IS(p[i], VCHAR))
            i++;
        if (i >= b) SL_OUT(i);
    }
    if (p[i] != '\r')
        RFAIL(p[i] == '\n' ? "bare LF"
              : sp         ? "a control byte in the reason phrase"
                           : "status code is not three digits");
    if (i + 1 >= len) return 0; /* the CR may be at max_request_line, as in a request */
    if (p[i + 1] != '\n') RFAIL("bare CR");
    resp->status = code;
    resp->reason.p = buf + rs;
    resp->reason.n = i - rs;
    resp->minor = ver[2] - '0';
    i += 2;
#undef SL_OUT

    /*{===== field lines, then an empty line ===== */
    size_t hs = i, hmax = lim->max_header_bytes;
    size_t hb = len - hs <= hmax ? len : hs + hmax;
    size_t maxh = resp->cap < lim->max_headers ? resp->cap : lim->max_headers;
    int seen_cl = 0, seen_te = 0, te_chunked = 0, conn = 0;
    uint64_t cl = 0;
#define H_OUT(at)                                                                                  \
    do {                                                                                           \
        if ((at)-hs >= hmax) RFAIL("header fields too long");                                      \
        return 0;                                                                                  \
    } while (0)
    for (;;) {
        if (i >= hb) H_OUT(i);
        unsigned char c = p[i];
        if (c == '\r') {
            if (i + 1 >= hb) H_OUT(i + 1);
            if (p[i + 1] != '\n') RFAIL("bare CR");
            i += 2;
            break;
        }
        if (!IS(c, TCHAR)) {
            if (c == ' ' || c == '\t')
                RFAIL(resp->nheaders ? "obs-fold (a field line starting with whitespace)"
                                     : "whitespace before the first field");
            RFAIL(
                bad_byte(c, c == ':' ? "empty field name" : "a byte not allowed in a field name"));
        }
        if (resp->nheaders >= maxh) RFAIL("too many header fields");
        size_t ns = i;
        do
            i++;
        while (i < hb && IS(p[i], TCHAR));
        if (i >= hb) H_OUT(i);
        if (p[i] != ':')
            RFAIL(p[i] == ' ' || p[i] == '\t' ? "whitespace before a colon"
                  : p[i] == '\r'              ? "a field line without a colon"
                                 : bad_byte(p[i], "a byte not allowed in a field name"));
        size_t ne = i++;
        while (i < hb && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t vs = i;
        i = skip_plain(p, i, hb, 1);
        while (i < hb && IS(p[i], VCHAR))
            i++;
        if (i >= hb) H_OUT(i);
        if (p[i] != '\r') RFAIL(p[i] == '\n' ? "bare LF" : "a control byte in a field value");
        if (i + 1 >= hb) H_OUT(i + 1);
        if (p[i + 1] != '\n') RFAIL("bare CR");
        size_t ve = i;
        while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
            ve--;
        i += 2;

        rd_http_header_t *h = &resp->headers[resp->nheaders++];
        h->name.p = buf + ns;
        h->name.n = ne - ns;
        h->value.p = buf + vs;
        h->value.n = ve - vs;
        const unsigned char *n = p + ns, *v = p + vs;
        size_t nl = ne - ns, vl = ve - vs;
        switch (nl) { /* as in a request */
        case 10:
            if (eqi(n, nl, "connection")) conn |= conn_options(v, vl);
            break;
        case 14:
            if (eqi(n, nl, "content-length")) {
                if (seen_cl) RFAIL("two Content-Length fields");
                seen_cl = 1;
                if (vl < 1 || vl > 19) RFAIL("Content-Length is not 1 to 19 digits");
                for (size_t k = 0; k < vl; k++) {
                    if (v[k] < '0' || v[k] > '9') RFAIL("Content-Length is not 1 to 19 digits");
                    cl = cl * 10 + (uint64_t)(v[k] - '0');
                }
            }
            break;
        case 17:
            if (eqi(n, nl, "transfer-encoding")) {
                if (seen_te) RFAIL("two Transfer-Encoding fields");
                seen_te = 1;
                te_chunked = eqi(v, vl, "chunked");
            }
            break;
        }
    }
#undef H_OUT

    /*{===== what the head says as a whole ===== */
    if (seen_te && seen_cl) RFAIL("Content-Length with Transfer-Encoding");
    if (seen_te && resp->minor == 0) RFAIL("Transfer-Encoding in an HTTP/1.0 response");
    resp->keep_alive = resp->minor == 1 ? !(conn & 1) : (conn & 2) && !(conn & 1);
    if ((flags & RD_HTTP_RESP_HEAD) || code < 200 || code == 204 || code == 304) {
        resp->body = RD_HTTP_BODY_NONE;
        if (code == 101) resp->keep_alive = 0; /* the connection is no longer HTTP */
    } else if (seen_te) {
        if (!te_chunked) RFAIL("Transfer-Encoding other than chunked");
        resp->body = RD_HTTP_BODY_CHUNKED;
    } else if (seen_cl) {
        if (cl > lim->max_body) RFAIL("Content-Length above the body limit");
        resp->body = RD_HTTP_BODY_LENGTH;
        resp->content_length = cl;
    } else {
        resp->body = RD_HTTP_BODY_CLOSE;
        resp->keep_alive = 0;
    }
    return (long)i;
}

long rd_http_parse_response(const char *buf, size_t len, rd_http_resp_t *resp,
                            const rd_http_limits_t *lim, int flags)
{
    if (!lim) lim = &rd_http_default_limits;
    size_t off = 0;
    for (;;) {
        long r = parse_one_response(buf + off, len - off, resp, lim, flags);
        if (r <= 0) return r;
        off += (size_t)r;
        if (resp->status >= 200 || resp->status == 101) return (long)off;
        /* an interim 1xx head: the final one follows */
    }
}
#undef RFAIL

/*{====================================================================
 * A request's body across reads
 *=====================================================================*/

void rd_http_body_init(rd_http_body_reader_t *b, const rd_http_req_t *req,
                       const rd_http_limits_t *lim)
{
    memset(b, 0, sizeof *b);
    b->chunked = req->body == RD_HTTP_BODY_CHUNKED;
    if (b->chunked)
        rd_http_chunked_init(&b->c, lim);
    else if (req->body == RD_HTTP_BODY_LENGTH)
        b->left = req->content_length;
}

long rd_http_body_read(rd_http_body_reader_t *b, const char *p, size_t n, rd_http_span_t *data)
{
    if (b->chunked) {
        long r = rd_http_chunked_decode(&b->c, p, n, data);
        if (r < 0) b->why = b->c.why;
        return r;
    }
    size_t k = b->left < n ? (size_t)b->left : n;
    b->left -= k;
    data->p = p;
    data->n = k;
    return (long)k;
}

int rd_http_body_done(const rd_http_body_reader_t *b)
{
    return b->chunked ? rd_http_chunked_done(&b->c) : b->left == 0;
}
