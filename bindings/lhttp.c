/*
 * lhttp.c: the C half of reactor.http: request heads framed by core's
 * strict parser (rd_http.h) straight from the connection's read buffer.
 *
 * A protocol whose delimiter is reactor.core.framing.http has each read fed
 * to the connection's framer (as a stream's); every request whose head and
 * body are whole is taken in one pass, in order, and handed to
 *   self:requestReceived(method, target, headers, body, minor, keepalive, path, query)
 * with headers a table of lower-case names (repeated fields joined with
 * ", "; for a class whose limits were made raw, core._httplimits(opts,
 * true), the field lines as one string instead, which core._httpheaders
 * turns into that table when the handler first reads it), body a string ("" when there is none; a
 * chunked body decoded; false for a body above maxBody, streamed: see "Streamed bodies" below), and
 * for a target that starts with "/" its path and query (the part after the first "?", "" without
 * one; nil, nil for another form of target). The head itself never becomes a Lua string: only its
 * parts do. A bad request is self:badRequest(status, why) once, and reading stops (the Lua side
 * answers after the responses before it, and closes; without a badRequest the connection just
 * closes). What is left of an unfinished request is kept in the framer, copied once. The limits are
 * the class's _httplimits (core._httplimits), else the parser's defaults. core._httpbuild makes a
 * response's bytes (below).
 *
 * pauseReading() in requestReceived stops the requests still buffered too;
 * resumeReading() has them delivered (rd_conn_redeliver), as for lines.
 *
 * This file is the framer's rule here, so it keeps its progress in the
 * framer's rule fields, which rd_framer_skip resets at each request taken:
 * f->scanned, the unconsumed bytes already parsed without a whole head (a
 * parse is skipped until a new LF arrives: rd_http_need_parse, so a head
 * sent a byte at a time costs a parse per line, not per byte); f->need,
 * which of the unfinished request's calls were made: self:headStarted()
 * (its head or body spans reads: the Lua side times it) and
 * self:continueRequested() (its head is whole, with Expect: 100-continue,
 * and its body is not), each once per request; both are optional.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rd_http.h"
#include "rdlua.h"

const char rdL_http_framing = 'h';
const char rdL_httpbody_framing = 'b';

/* A protocol's limits (its class's _httplimits, from core._httplimits).
 * lim is the parser's: its max_body is the larger of maxBody and
 * maxStreamBody (the most a request may declare); whole is maxBody, the
 * most a body handed whole to requestReceived may hold. */
#define RDL_HTTP_LIMITS_MAGIC 0x72646c6du
typedef struct lhttplimits {
    uint32_t magic;
    int raw; /* 1: the headers go to requestReceived as their raw block (a string),
              * for core._httpheaders to make the table of when first read */
    rd_http_limits_t lim;
    uint64_t whole;
} lhttplimits;

/* Without _httplimits: the parser's defaults (rd_http_default_limits'
 * values: 1 MiB whole), with a 64 MiB streaming limit. */
#define RDL_HTTP_STREAM_BODY ((uint64_t)64 << 20)
static const lhttplimits default_limits = {
    RDL_HTTP_LIMITS_MAGIC, 0, {8192, 32768, 100, RDL_HTTP_STREAM_BODY, 4096}, 1u << 20};

static lua_Integer limitfield(lua_State *L, const char *name, lua_Integer dflt, lua_Integer max)
{
    int t = lua_getfield(L, 1, name);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return dflt;
    }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 1 || v > max)
        luaL_error(L, "%s must be an integer 1..%I (got %s)", name, max, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* core._httplimits({maxRequestLine=, maxHeaderBytes=, maxHeaders=, maxBody=,
 * maxStreamBody=, maxChunkExt=} [, raw]) -> the limits, for a protocol
 * class's _httplimits; raw true: its requestReceived gets the headers as
 * their raw block (see core._httpheaders). */
int rdL_httplimits(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const rd_http_limits_t *d = &rd_http_default_limits;
    rd_http_limits_t lim = {
        .max_request_line =
            (size_t)limitfield(L, "maxRequestLine", (lua_Integer)d->max_request_line, 1 << 30),
        .max_header_bytes =
            (size_t)limitfield(L, "maxHeaderBytes", (lua_Integer)d->max_header_bytes, 1 << 30),
        .max_headers = (size_t)limitfield(L, "maxHeaders", (lua_Integer)d->max_headers, 256),
        .max_body =
            (uint64_t)limitfield(L, "maxBody", (lua_Integer)d->max_body, (lua_Integer)1 << 31),
        .max_chunk_ext =
            (size_t)limitfield(L, "maxChunkExt", (lua_Integer)d->max_chunk_ext, 1 << 30),
    };
    uint64_t stream = (uint64_t)limitfield(L, "maxStreamBody", (lua_Integer)RDL_HTTP_STREAM_BODY,
                                           (lua_Integer)1 << 50);
    int raw = lua_toboolean(L, 2);
    lhttplimits *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->magic = RDL_HTTP_LIMITS_MAGIC;
    u->raw = raw;
    u->whole = lim.max_body;
    if (stream > lim.max_body) lim.max_body = stream;
    u->lim = lim;
    return 1;
}

/* The limits of self's class, left on the stack (kept alive while used). */
static const lhttplimits *limits_of(lua_State *L, lreactor *lr, int self)
{
    rdL_pushkey(L, lr, RDL_K_HTTPLIMITS);
    if (lua_gettable(L, self) == LUA_TUSERDATA && lua_rawlen(L, -1) == sizeof(lhttplimits)) {
        const lhttplimits *u = lua_touserdata(L, -1);
        if (u->magic == RDL_HTTP_LIMITS_MAGIC) return u;
    }
    return &default_limits;
}

enum { RDL_HTTP_MAXHEADERS = 256, RDL_HTTP_NAME = 64 };

/* Push the header table of n fields: lower-case names, repeats joined. */
static void pushfields(lua_State *L, lreactor *lr, const rd_http_header_t *hs, size_t n)
{
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        const rd_http_header_t *h = &hs[i];
        char low[RDL_HTTP_NAME];
        if (h->name.n <= sizeof low) {
            for (size_t k = 0; k < h->name.n; k++) {
                unsigned char c = (unsigned char)h->name.p[k];
                low[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
            rdL_pushbytes(L, lr, low, h->name.n);
        } else {
            luaL_Buffer b;
            char *d = luaL_buffinitsize(L, &b, h->name.n);
            for (size_t k = 0; k < h->name.n; k++) {
                unsigned char c = (unsigned char)h->name.p[k];
                d[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
            luaL_pushresultsize(&b, h->name.n);
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) { /* a repeat: "a, b" */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value.p, h->value.n);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            rdL_pushbytes(L, lr, h->value.p, h->value.n);
        }
        lua_rawset(L, -3);
    }
}

/* Push req's headers: the table, or for a raw class the field lines as
 * they came (one string, the spans' bytes only: no table per request for a
 * handler that never reads req.headers). */
static void pushheaders(lua_State *L, lreactor *lr, const rd_http_req_t *req, int raw)
{
    if (!raw) {
        pushfields(L, lr, req->headers, req->nheaders);
        return;
    }
    if (req->nheaders == 0) {
        lua_pushliteral(L, "");
        return;
    }
    const rd_http_header_t *last = &req->headers[req->nheaders - 1];
    const char *from = req->headers[0].name.p;
    rdL_pushbytes(L, lr, from, (size_t)(last->value.p + last->value.n - from));
}

/* core._httpheaders(raw) -> the header table of a raw block (pushheaders):
 * "Name: value" lines split at CRLF, the value's outer SP/HTAB dropped as
 * the parser drops them; a line without a colon is skipped. */
int rdL_httpheaders(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    lreactor *lr = rdL_reactor(L);
    rd_http_header_t hs[RDL_HTTP_MAXHEADERS];
    size_t nh = 0, i = 0;
    while (i < n && nh < RDL_HTTP_MAXHEADERS) {
        const char *e = memchr(p + i, '\r', n - i);
        size_t end = e ? (size_t)(e - p) : n;
        const char *c = memchr(p + i, ':', end - i);
        if (c) {
            size_t vs = (size_t)(c - p) + 1, ve = end;
            while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
                vs++;
            while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
                ve--;
            hs[nh].name.p = p + i;
            hs[nh].name.n = (size_t)(c - p) - i;
            hs[nh].value.p = p + vs;
            hs[nh].value.n = ve - vs;
            nh++;
        }
        i = end + 2; /* past the CRLF */
    }
    pushfields(L, lr, hs, nh);
    return 1;
}

/*{====================================================================
 * Responses: core._httpbuild(status, headers, body, head, close, dateline)
 * -> bytes, close | nil, why (the first three as a handler returns them:
 * [status,] [headers,] body, a missing status 200); with a transport as 7th argument the bytes go
 * straight to its output (two copies into its buffer, no Lua string) and
 * the first result is true. The whole response as one string: the status
 * line, the handler's header fields (each checked: a token name, a value
 * without control bytes other than HTAB; Content-Length, Transfer-Encoding,
 * Connection and Date are the server's, and a Connection: close from the
 * handler closes), Content-Type text/plain for a body without one,
 * Content-Length, dateline, Connection, and the body (none for a HEAD, a
 * 204 or a 304).
 *=====================================================================*/

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {505, "HTTP Version Not Supported"},
};

static const char *reason(lua_Integer status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status) return reasons[i].reason;
    return "Unknown";
}

/* The bytes of a response's header fields, by class: 1 a token byte (a
 * name), 2 a byte a value may hold (not a control byte other than HTAB);
 * a constant table, made by the compiler. */
enum { TOK = 1, VAL = 2 };
#define R4(x) x, x, x, x
#define R16(x) R4(x), R4(x), R4(x), R4(x)
static const unsigned char fieldbyte[256] = {
    /* 0x00-0x1f: controls, HTAB alone in a value */
    R4(0), R4(0), 0, VAL, 0, 0, R4(0), R16(0),
    /* 0x20-0x2f:  SP ! " # $ % & ' ( ) * + , - . / */
    VAL, TOK | VAL, VAL, TOK | VAL, TOK | VAL, TOK | VAL, TOK | VAL, TOK | VAL, VAL, VAL, TOK | VAL,
    TOK | VAL, VAL, TOK | VAL, TOK | VAL, VAL,
    /* 0x30-0x3f: 0-9 : ; < = > ? */
    R4(TOK | VAL), R4(TOK | VAL), TOK | VAL, TOK | VAL, VAL, VAL, VAL, VAL, VAL, VAL,
    /* 0x40-0x5f: @ A-Z [ \ ] ^ _ */
    VAL, TOK | VAL, TOK | VAL, TOK | VAL, R4(TOK | VAL), R4(TOK | VAL), R4(TOK | VAL),
    R4(TOK | VAL), R4(TOK | VAL), TOK | VAL, TOK | VAL, TOK | VAL, VAL, VAL, VAL, TOK | VAL,
    TOK | VAL,
    /* 0x60-0x7f: ` a-z { | } ~ DEL */
    TOK | VAL, TOK | VAL, TOK | VAL, TOK | VAL, R4(TOK | VAL), R4(TOK | VAL), R4(TOK | VAL),
    R4(TOK | VAL), R4(TOK | VAL), TOK | VAL, TOK | VAL, TOK | VAL, VAL, TOK | VAL, VAL, TOK | VAL,
    0,
    /* 0x80-0xff: obs-text, in a value only */
    R16(VAL), R16(VAL), R16(VAL), R16(VAL), R16(VAL), R16(VAL), R16(VAL), R16(VAL)};
#undef R16
#undef R4

/* name equals the lower-case word w, ignoring case */
static int named(const char *name, size_t n, const char *w)
{
    size_t wn = strlen(w);
    if (n != wn) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)w[i]) return 0;
    }
    return 1;
}

static int build_fail(lua_State *L, const char *fmt, const char *what)
{
    lua_pushnil(L);
    lua_pushfstring(L, fmt, what);
    return 2;
}

/* the response head, built on the C stack */
typedef struct headbuf {
    char p[8192];
    size_t n;
    int over;
} headbuf;

static void hadd(headbuf *h, const char *p, size_t n)
{
    if (n > sizeof h->p - h->n) {
        h->over = 1;
        return;
    }
    memcpy(h->p + h->n, p, n);
    h->n += n;
}

#define HADDLIT(h, s) hadd((h), "" s, sizeof(s) - 1)

/* the decimal digits of v (snprintf costs ~10x more per response) */
static void hadduint(headbuf *h, uint64_t v)
{
    char d[20];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hadd(h, d + i, sizeof d - i);
}

/* The Date field of a response now ("Date: Sun, 06 Nov 1994 08:49:37
 * GMT\r\n", RFC 9110's IMF-fixdate, 37 bytes), made when the second
 * changes: English names, whatever the locale. */
enum { RDL_DATE_LEN = 37 };
static const char *dateline(lreactor *lr)
{
    time_t now = time(NULL);
    if ((long long)now == lr->date_sec) return lr->date;
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    if (!gmtime_r(&now, &tm)) tm = (struct tm){.tm_mday = 1, .tm_year = 70}; /* (not after 1970) */
    char *d = lr->date;
    memcpy(d, "Date: ", 6);
    memcpy(d + 6, days + 3 * tm.tm_wday, 3);
    snprintf(d + 9, sizeof lr->date - 9, ", %02d ", tm.tm_mday);
    memcpy(d + 14, months + 3 * tm.tm_mon, 3);
    snprintf(d + 17, sizeof lr->date - 17, " %04d %02d:%02d:%02d GMT\r\n", tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    lr->date_sec = (long long)now;
    return lr->date;
}

int rdL_httpbuild(lua_State *L)
{
    lua_settop(L, 7);
    /* a handler's [status,] [headers,] body as it returned them, into the
     * three slots (what reactor.http's response() did in Lua) */
    if (!lua_isinteger(L, 1)) {
        if (lua_type(L, 1) == LUA_TTABLE) { /* headers, body */
            lua_copy(L, 2, 3);
            lua_copy(L, 1, 2);
        } else { /* body */
            lua_copy(L, 1, 3);
            lua_pushnil(L);
            lua_replace(L, 2);
        }
        lua_pushinteger(L, 200);
        lua_replace(L, 1);
    } else if (lua_type(L, 2) != LUA_TTABLE && !lua_isnil(L, 2)) { /* status, body */
        lua_copy(L, 2, 3);
        lua_pushnil(L);
        lua_replace(L, 2);
    } /* else status, headers, body; or status, nil, body */
    lua_Integer status = lua_tointeger(L, 1);
    if (status < 200 || status > 999) {
        lua_pushnil(L);
        lua_pushfstring(L, "status %I is not a final status (200..999)", status);
        return 2;
    }
    int t = lua_type(L, 3);
    if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TNUMBER)
        return build_fail(L, "the body must be a string (got %s)", lua_typename(L, t));
    size_t blen = 0;
    if (t != LUA_TNIL) lua_tolstring(L, 3, &blen); /* a number becomes its string, in place */
    int head = lua_toboolean(L, 4), close = lua_toboolean(L, 5);
    size_t dlen = RDL_DATE_LEN;
    const char *date = lua_isnil(L, 6) ? dateline(rdL_reactor(L)) : luaL_checklstring(L, 6, &dlen);
    ltransport *tr = NULL;
    if (!lua_isnoneornil(L, 7)) {
        tr = rdL_totransport(L, 7);
        if (!tr) return luaL_argerror(L, 7, "expected a transport");
    }
    headbuf h;
    h.n = 0;
    h.over = 0;
    HADDLIT(&h, "HTTP/1.1 ");
    hadduint(&h, (uint64_t)status);
    HADDLIT(&h, " ");
    const char *r = reason(status);
    hadd(&h, r, strlen(r));
    HADDLIT(&h, "\r\n");
    int typed = 0;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 2)) { /* key at -2, value at -1 */
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pushnil(L);
                lua_pushfstring(L, "bad response header name %s", luaL_typename(L, -3));
                return 2;
            }
            size_t kn, vn;
            const char *k = lua_tolstring(L, -2, &kn);
            int ok = kn > 0;
            for (size_t i = 0; ok && i < kn; i++)
                ok = fieldbyte[(unsigned char)k[i]] & TOK;
            if (!ok) return build_fail(L, "bad response header name %s", k);
            int vt = lua_type(L, -1);
            if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
                return build_fail(
                    L, "bad value for response header %s (a string without control bytes)", k);
            const char *v =
                lua_tolstring(L, -1, &vn); /* the value, not the key: lua_next is safe */
            for (size_t i = 0; i < vn; i++)
                if (!(fieldbyte[(unsigned char)v[i]] & VAL))
                    return build_fail(
                        L, "bad value for response header %s (a string without control bytes)", k);
            /* the server's own fields, told apart by their length first */
            if (kn == 10 && named(k, kn, "connection")) {
                if (named(v, vn, "close")) close = 1;
            } else if (!(kn == 14 && named(k, kn, "content-length")) &&
                       !(kn == 17 && named(k, kn, "transfer-encoding")) &&
                       !(kn == 4 && named(k, kn, "date"))) {
                if (!typed && kn == 12 && named(k, kn, "content-type")) typed = 1;
                hadd(&h, k, kn);
                HADDLIT(&h, ": ");
                hadd(&h, v, vn);
                HADDLIT(&h, "\r\n");
            }
            lua_pop(L, 1);
        }
    }
    if (!typed && blen > 0) HADDLIT(&h, "Content-Type: text/plain; charset=utf-8\r\n");
    int nobody = status == 204 || status == 304;
    if (!nobody) {
        HADDLIT(&h, "Content-Length: ");
        hadduint(&h, blen);
        HADDLIT(&h, "\r\n");
    }
    hadd(&h, date, dlen);
    if (close)
        HADDLIT(&h, "Connection: close\r\n\r\n");
    else
        HADDLIT(&h, "Connection: keep-alive\r\n\r\n");
    if (h.over) {
        lua_pushnil(L);
        lua_pushfstring(L, "the response's header fields are over %d bytes", (int)sizeof h.p);
        return 2;
    }
    if (tr) { /* straight into the connection's output: no string made */
        int st = tr->conn.state;
        if (st == RD_OPEN || st == RD_CONNECTING) {
            int body = !(head || nobody || blen == 0), w;
            if (body && blen <= sizeof h.p - h.n) { /* a small body: one write */
                memcpy(h.p + h.n, lua_tostring(L, 3), blen);
                w = rd_conn_write(&tr->conn, h.p, h.n + blen);
            } else {
                w = rd_conn_write(&tr->conn, h.p, h.n);
                if (w == 0 && body)
                    w = rdL_conn_writestring(L, &tr->conn, 3, lua_tostring(L, 3), blen);
            }
            if (w == -ENOMEM) luaL_error(L, "not enough memory");
            /* RD_ETOOBIG: the conn is aborted; connectionLost will say why */
        }
        lua_pushboolean(L, 1);
    } else if (head || nobody || blen == 0) {
        lua_pushlstring(L, h.p, h.n);
    } else { /* one string, one copy of the body */
        luaL_Buffer b;
        char *d = luaL_buffinitsize(L, &b, h.n + blen);
        memcpy(d, h.p, h.n);
        memcpy(d + h.n, lua_tostring(L, 3), blen);
        luaL_pushresultsize(&b, h.n + blen);
    }
    lua_pushboolean(L, close);
    return 2;
}

/* A chunked body starting at p[0..n): its encoded length (> 0) once whole,
 * 0 if more bytes are needed, or -status; RDL_HTTP_STREAMED once more than
 * whole data bytes are decoded. With b, the decoded data is added to it.
 * The decoder keeps no state across reads: an unfinished body is decoded
 * again from its start at the next read (bounded by whole). */
#define RDL_HTTP_STREAMED (-1)
static long chunked_upto(const char *p, size_t n, const rd_http_limits_t *lim, luaL_Buffer *b,
                         uint64_t whole)
{
    rd_http_chunked_t c;
    rd_http_chunked_init(&c, lim);
    size_t used = 0;
    while (!rd_http_chunked_done(&c)) {
        rd_http_span_t data = {NULL, 0};
        long r = rd_http_chunked_decode(&c, p + used, n - used, &data);
        if (r < 0) return r;
        if (c.total > whole) return RDL_HTTP_STREAMED;
        if (b && data.n) luaL_addlstring(b, data.p, data.n);
        used += (size_t)r;
        if (r == 0 || used == n) {
            if (rd_http_chunked_done(&c)) break;
            return 0;
        }
    }
    return (long)used;
}

static long chunked(const char *p, size_t n, const rd_http_limits_t *lim, luaL_Buffer *b)
{
    return chunked_upto(p, n, lim, b, UINT64_MAX);
}

/* An origin-form target ("/p?q"): its path and query ("" without a "?"),
 * the path being the target's own string (at targetidx) when there is no
 * query; another form: nil, nil. */
static void pushpath(lua_State *L, lreactor *lr, const rd_http_req_t *req, int targetidx)
{
    const char *p = req->target.p;
    size_t n = req->target.n;
    if (n == 0 || p[0] != '/') {
        lua_pushnil(L);
        lua_pushnil(L);
        return;
    }
    const char *q = memchr(p, '?', n);
    if (!q) {
        lua_pushvalue(L, targetidx);
        lua_pushliteral(L, "");
        return;
    }
    rdL_pushbytes(L, lr, p, (size_t)(q - p));
    lua_pushlstring(L, q + 1, n - (size_t)(q - p) - 1);
}

enum { NEED_CONTINUED = 1, NEED_TIMED = 2 }; /* f->need's bits, see the top */

/* self:name(), as the call record's callback, if the protocol defines it */
static void callself(lua_State *L, lreactor *lr, int self, const char *name)
{
    lr->call->what = name;
    if (lua_getfield(L, self, name) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushvalue(L, self);
    lua_call(L, 1, 0);
}

/* A request is unfinished after this read: self:headStarted() once. */
static void unfinished(lua_State *L, lreactor *lr, rd_framer_t *f, int self)
{
    if (f->need & NEED_TIMED) return;
    f->need |= NEED_TIMED;
    callself(L, lr, self, "headStarted");
}

static void bad(lua_State *L, lreactor *lr, ltransport *t, int self, long status, const char *why)
{
    rd_framer_destroy(&t->in); /* nothing after a bad request is framed */
    rd_conn_pause_reading(&t->conn, 1);
    lr->call->what = "badRequest";
    if (lua_getfield(L, self, "badRequest") == LUA_TNIL) { /* no answer to give: just close */
        lua_pop(L, 1);
        rd_conn_lose(&t->conn);
        return;
    }
    lua_pushvalue(L, self);
    lua_pushinteger(L, status);
    lua_pushstring(L, why ? why : "bad request");
    lua_call(L, 3, 0);
}

/*{====================================================================
 * Streamed bodies. A body above the whole limit (maxBody), with a
 * Content-Length or chunked, up to the parser's limit (maxStreamBody): the
 * request is handed to requestReceived as soon as its head is whole, with
 * body false; then each run of the body's data is self:bodyReceived(part)
 * as it is read (spans of the read buffer; chunked framing decoded by
 * rd_http_chunked_decode, which keeps its state across reads), and the end
 * is self:bodyReceived(nil), or self:bodyReceived(nil, why) for a bad
 * chunked body (then badRequest, as for a bad head). Meanwhile the
 * connection's delimiter is rdL_httpbody_framing (set on self, so the
 * dispatcher sends the reads to rdL_read_httpbody) and the decoder's state
 * is the userdata self._httpbody; both go at the end, and the requests
 * after it are parsed as before. bodyReceived may pauseReading(): the rest
 * waits in the framer until resumeReading() redelivers it. A protocol
 * without bodyReceived gets 413 for such a body (as before streaming).
 *=====================================================================*/

#define RDL_HTTP_BODY_MAGIC 0x7264626fu
typedef struct lhttpbody {
    uint32_t magic;
    rd_http_body_reader_t r;
} lhttpbody;

/* self._httpbody and self.delimiter: the value at idx and the body framing
 * (body mode), or nil and nil (the class's framing again) */
static void setmode(lua_State *L, int self, int idx)
{
    int on = !lua_isnil(L, idx);
    lua_pushliteral(L, "_httpbody");
    lua_pushvalue(L, idx);
    lua_rawset(L, self);
    lua_pushliteral(L, "delimiter");
    if (on)
        lua_pushlightuserdata(L, (void *)&rdL_httpbody_framing);
    else
        lua_pushnil(L);
    lua_rawset(L, self);
}

/* The body ends (why NULL) or is bad: body mode off, then
 * self:bodyReceived(nil [, why]). */
static void endbody(lua_State *L, lreactor *lr, int self, const char *why)
{
    lua_pushnil(L);
    setmode(L, self, lua_gettop(L));
    lua_pop(L, 1);
    lr->call->what = "bodyReceived";
    lua_getfield(L, self, "bodyReceived");
    lua_pushvalue(L, self);
    lua_pushnil(L);
    if (why)
        lua_pushstring(L, why);
    else
        lua_pushnil(L);
    lua_call(L, 3, 0);
}

/* One step of a streamed body: 1 to go on, 0 when this read is done with. */
static int bodystep(lua_State *L, lreactor *lr, ltransport *t, int self, lhttpbody **bp)
{
    rd_framer_t *f = &t->in;
    lhttpbody *b = *bp;
    rd_span_t s = rd_framer_peek(f);
    if (s.n == 0) return 0;
    rd_http_span_t d;
    long r = rd_http_body_read(&b->r, s.p, s.n, &d);
    if (r < 0) {
        const char *why = b->r.why; /* static text: b may go with the mode */
        *bp = NULL;
        rd_framer_skip(f, s.n);
        endbody(L, lr, self, why ? why : "bad chunked body");
        if (t->conn.state == RD_OPEN) bad(L, lr, t, self, -r, why);
        return 0;
    }
    size_t used = (size_t)r;
    int done = rd_http_body_done(&b->r);
    if (used == 0 && !done) return 0;
    if (d.n) {
        lr->call->what = "bodyReceived";
        lua_getfield(L, self, "bodyReceived");
        lua_pushvalue(L, self);
        lua_pushlstring(L, d.p, d.n);
        rd_framer_skip(f, used);
        lua_call(L, 2, 0);
    } else {
        rd_framer_skip(f, used);
    }
    if (done) {
        *bp = NULL;
        if (t->conn.state != RD_CLOSED) endbody(L, lr, self, NULL);
    }
    return 1;
}

/* Every whole request in the framer's bytes, then the framer keeps the
 * rest; b the streamed body being read, or NULL. */
static void frame(lua_State *L, lreactor *lr, ltransport *t, int self, lhttpbody *b)
{
    rd_framer_t *f = &t->in;
    const lhttplimits *limits = limits_of(L, lr, self);
    const rd_http_limits_t *lim = &limits->lim;
    rd_http_header_t headers[RDL_HTTP_MAXHEADERS];
    while (t->conn.state == RD_OPEN && !t->conn.user_paused) {
        if (b) {
            if (!bodystep(L, lr, t, self, &b)) break;
            continue;
        }
        rd_span_t s = rd_framer_peek(f);
        if (s.n == 0) break;
        if (f->scanned && f->scanned <= s.n && !rd_http_need_parse(s.p, f->scanned, s.n, lim))
            break;
        rd_http_req_t req = {.headers = headers, .cap = RDL_HTTP_MAXHEADERS};
        long h = rd_http_parse_request(s.p, s.n, &req, lim);
        if (h == 0) {
            unfinished(L, lr, f, self);
            f->scanned = (uint32_t)s.n;
            break;
        }
        if (h < 0) {
            bad(L, lr, t, self, -h, req.why);
            return;
        }
        size_t whole = (size_t)h;
        long blen = 0; /* a chunked body's encoded length, once it is whole */
        int missing = 0, streamed = 0;
        if (req.body == RD_HTTP_BODY_LENGTH) {
            missing = s.n - whole < req.content_length;
            streamed = req.content_length > limits->whole;
        } else if (req.body == RD_HTTP_BODY_CHUNKED) {
            blen = chunked_upto(s.p + whole, s.n - whole, lim, NULL, limits->whole);
            streamed = blen == RDL_HTTP_STREAMED;
            if (blen < 0 && !streamed) {
                bad(L, lr, t, self, -blen, "bad chunked body");
                return;
            }
            missing = blen == 0;
        }
        if (streamed) {
            if (lua_getfield(L, self, "bodyReceived") == LUA_TNIL) {
                bad(L, lr, t, self, 413, "body above the body limit");
                return;
            }
            lua_pop(L, 1);
            missing = 1; /* (for the Expect below) */
        }
        if (missing && req.expect_continue && !(f->need & NEED_CONTINUED)) {
            f->need |= NEED_CONTINUED; /* once per request */
            callself(L, lr, self, "continueRequested");
            if (t->conn.state != RD_OPEN) break;
        }
        if (missing && !streamed) {
            if (t->conn.state == RD_OPEN) unfinished(L, lr, f, self);
            break;
        }
        lr->call->what = "requestReceived";
        rdL_pushkey(L, lr, RDL_K_REQUESTRECEIVED);
        lua_gettable(L, self);
        lua_pushvalue(L, self);
        rdL_pushbytes(L, lr, req.method.p, req.method.n); /* (cached: clients repeat them) */
        rdL_pushbytes(L, lr, req.target.p, req.target.n);
        int targetidx = lua_gettop(L);
        pushheaders(L, lr, &req, limits->raw);
        if (streamed) {
            lhttpbody *nb = lua_newuserdatauv(L, sizeof *nb, 0);
            memset(nb, 0, sizeof *nb);
            nb->magic = RDL_HTTP_BODY_MAGIC;
            rd_http_body_init(&nb->r, &req, lim);
            setmode(L, self, lua_gettop(L)); /* self keeps it while it is read */
            lua_pop(L, 1);
            lua_pushboolean(L, 0);
            b = nb;
        } else if (req.body == RD_HTTP_BODY_LENGTH) {
            lua_pushlstring(L, s.p + whole, (size_t)req.content_length);
            whole += (size_t)req.content_length;
        } else if (req.body == RD_HTTP_BODY_CHUNKED) {
            luaL_Buffer buf;
            luaL_buffinit(L, &buf);
            chunked(s.p + whole, s.n - whole, lim, &buf);
            luaL_pushresult(&buf);
            whole += (size_t)blen;
        } else {
            lua_pushliteral(L, "");
        }
        lua_pushinteger(L, req.minor);
        lua_pushboolean(L, req.keep_alive);
        pushpath(L, lr, &req, targetidx);
        rd_framer_skip(f, whole); /* before the call: the spans are not used after it */
        lua_call(L, 9, 0);
    }
    if (t->conn.state == RD_CLOSED) {
        rd_framer_destroy(f);
        return;
    }
    if (rd_framer_keep(f) < 0) luaL_error(L, "not enough memory");
}

void rdL_read_http(lua_State *L, lreactor *lr, ltransport *t, int self, const char *p, size_t n)
{
    if (rd_framer_feed(&t->in, p, n) < 0) luaL_error(L, "not enough memory");
    frame(L, lr, t, self, NULL);
}

void rdL_read_httpbody(lua_State *L, lreactor *lr, ltransport *t, int self, const char *p, size_t n)
{
    if (rd_framer_feed(&t->in, p, n) < 0) luaL_error(L, "not enough memory");
    lhttpbody *b = NULL;
    if (lua_getfield(L, self, "_httpbody") == LUA_TUSERDATA &&
        lua_rawlen(L, -1) == sizeof(lhttpbody)) {
        b = lua_touserdata(L, -1);
        if (b->magic != RDL_HTTP_BODY_MAGIC) b = NULL;
    }
    if (!b) { /* the state is gone (not ours): back to heads */
        lua_pushnil(L);
        setmode(L, self, lua_gettop(L));
    }
    frame(L, lr, t, self, b);
}

/*{====================================================================
 * The client's half: response heads and chunked bodies from Lua strings.
 *
 * core._httpresponse(bytes, ishead, maxbody) -> 0 while the head is not
 * whole; nil, why for a response that cannot be used; else headlen,
 * status, reason, headers (lower-case names, repeats joined with ", "),
 * framing ("none", "length", "chunked" or "close"), content_length,
 * keepalive, minor, fields (the fields as sent: {name, value} in order,
 * case kept). Interim 1xx heads are skipped (headlen covers them).
 *
 * core._httpdechunk(bytes, maxbody) -> 0 while the chunked body at the
 * start of bytes is not whole; nil, why if it is bad; else its encoded
 * length and the decoded body. Stateless, like the server's: an
 * unfinished body is decoded again from its start at the next call.
 *=====================================================================*/

static rd_http_limits_t client_limits(lua_State *L, int arg)
{
    rd_http_limits_t lim = rd_http_default_limits;
    lua_Integer max = luaL_optinteger(L, arg, (lua_Integer)lim.max_body);
    if (max < 0) luaL_argerror(L, arg, "maxBody must be >= 0");
    lim.max_body = (uint64_t)max;
    return lim;
}

int rdL_httpresponse(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    int head = lua_toboolean(L, 2);
    rd_http_limits_t lim = client_limits(L, 3);
    rd_http_header_t hs[RDL_HTTP_MAXHEADERS];
    rd_http_resp_t r = {.headers = hs, .cap = RDL_HTTP_MAXHEADERS};
    long h = rd_http_parse_response(p, n, &r, &lim, head ? RD_HTTP_RESP_HEAD : 0);
    if (h == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (h < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, r.why ? r.why : "bad response");
        return 2;
    }
    lua_pushinteger(L, h);
    lua_pushinteger(L, r.status);
    lua_pushlstring(L, r.reason.p, r.reason.n);
    lua_createtable(L, 0, (int)r.nheaders);
    for (size_t i = 0; i < r.nheaders; i++) {
        luaL_Buffer b;
        char *d = luaL_buffinitsize(L, &b, hs[i].name.n);
        for (size_t k = 0; k < hs[i].name.n; k++) {
            unsigned char c = (unsigned char)hs[i].name.p[k];
            d[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        luaL_pushresultsize(&b, hs[i].name.n);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) { /* a repeat: "a, b" */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, hs[i].value.p, hs[i].value.n);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, hs[i].value.p, hs[i].value.n);
        }
        lua_rawset(L, -3);
    }
    static const char *const framing[] = {"none", "length", "chunked", "close"};
    lua_pushstring(L, framing[r.body]);
    lua_pushinteger(L, (lua_Integer)r.content_length);
    lua_pushboolean(L, r.keep_alive);
    lua_pushinteger(L, r.minor);
    lua_createtable(L, (int)r.nheaders, 0); /* the fields as sent: {name, value}, in order */
    for (size_t i = 0; i < r.nheaders; i++) {
        lua_createtable(L, 2, 0);
        lua_pushlstring(L, hs[i].name.p, hs[i].name.n);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, hs[i].value.p, hs[i].value.n);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 9;
}

int rdL_httpdechunk(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    rd_http_limits_t lim = client_limits(L, 2);
    long used = chunked(p, n, &lim, NULL);
    if (used == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (used < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, used == -413 ? "chunked body above maxBody" : "bad chunked body");
        return 2;
    }
    lua_pushinteger(L, used);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    chunked(p, (size_t)used, &lim, &b);
    luaL_pushresult(&b);
    return 2;
}
