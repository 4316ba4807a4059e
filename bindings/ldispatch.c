/*
 * ldispatch.c: calls from core into a connection's protocol (Twisted's
 * IProtocol): buildProtocol and connectionMade, the bytes read (raw, or
 * framed into lines), connectionLost and the optional callbacks of flow
 * control, half-close and timeouts.
 *
 * Each runs whole under rdL_pcall with a record naming the callback and
 * its connection; an error fails that connection only, in rdL_pcall.
 * Callback methods are looked up on self at every event, never cached, so
 * replacing a protocol class reaches live connections (hot reload).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rd_framer.h"
#include "rdlua.h"

#define toltransport(c) rd__container(c, ltransport, conn)

/* Push self (the protocol instance) and its method `name`; return 0 when
 * there is no such method (stack unchanged). */
static int pushmethod(lua_State *L, int self, const char *name)
{
    if (lua_getfield(L, self, name) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, self);
    return 1;
}

/* The one path for a handler error: the connection closes with RD_ERROR
 * and its connectionLost gets the message (without the traceback). */
void rdL_fail(lua_State *L, ltransport *t)
{
    if (t->conn.state == RD_CLOSED) {
        lua_pop(L, 1);
        return;
    }
    rdL_pushmessage(L, -1);
    lua_remove(L, -2);
    if (t->ref == LUA_NOREF) { /* not pinned: nothing to key the message on */
        lua_pop(L, 1);
        rd_conn_close(&t->conn, RD_ERROR, 0);
        return;
    }
    rdL_weakkeys(L, RDL_ERRMSG_KEY);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref); /* pinned: not yet CLOSED */
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    t->failed = 1;
    rd_conn_close(&t->conn, RD_ERROR, 0);
}

/*{====================================================================
 * A new connection
 *=====================================================================*/

/* registry[&addrless]: Factory.buildProtocol, which ignores its addr */
static const char addrless;

int rdL_addrless(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &addrless);
    return 0;
}

/* registry[&noop_made], registry[&noop_lost]: Protocol's connectionMade
 * and connectionLost, which do nothing: a protocol that inherits them is
 * not called, and its connection's reason table is not made (two calls and
 * two tables per connection: ~4,000 instructions of a connect-ask-close) */
static const char noop_made, noop_lost;

int rdL_noops(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &noop_lost);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &noop_made);
    return 0;
}

/* self[name] pushed and then self, as pushmethod, unless it is the no-op
 * at registry[key] (or nil): then nothing is pushed and 0 returned */
static int pushcallback(lua_State *L, lreactor *lr, int self, int name, const char *key)
{
    rdL_pushkey(L, lr, name);
    if (lua_gettable(L, self) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    int noop = lua_rawequal(L, -1, -2);
    lua_pop(L, 1 + noop);
    if (noop) return 0;
    lua_pushvalue(L, self);
    return 1;
}

/* buildProtocol, then connectionMade: a new connection in or out. */
static int tramp_made(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    ltransport *t = call->t;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    int ud = lua_gettop(L);
    lreactor *lr = t->conn.loop->data;
    rdL_pushfactory(L, t, ud);
    rdL_pushkey(L, lr, RDL_K_BUILDPROTOCOL);
    lua_gettable(L, -2);
    lua_insert(L, -2);
    /* the default buildProtocol gets nil, not an address table it would
     * drop: that garbage, uncollected at idle, was ~70 bytes of RSS per
     * connection (issue 12) */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &addrless);
    int plain = lua_rawequal(L, -1, -3);
    lua_pop(L, 1);
    if (plain)
        lua_pushnil(L);
    else
        rdL_pushaddr(L, &t->conn.peer);
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) { /* the factory declines (Twisted) */
        rd_conn_close(&t->conn, RD_DONE, 0);
        return 0;
    }
    if (!lua_istable(L, -1))
        return luaL_error(L,
                          "buildProtocol must return a protocol instance (a table) or nil, not %s",
                          luaL_typename(L, -1));
    int self = lua_gettop(L);
    lua_pushvalue(L, ud);
    lua_setfield(L, self, "transport");
    lua_pushvalue(L, self);
    lua_setiuservalue(L, ud, RDL_UV_PROTOCOL);
    t->made = 1;
    call->what = "connectionMade";
    if (pushcallback(L, lr, self, RDL_K_CONNECTIONMADE, &noop_made)) lua_call(L, 1, 0);
    return 0;
}

int rdL_made(ltransport *t)
{
    rdL_call call = {.fn = tramp_made, .t = t, .what = "buildProtocol"};
    return rdL_pcall(t->conn.loop->data, &call);
}

static void on_made(rd_conn_t *c)
{
    rdL_made(toltransport(c));
}

/*{====================================================================
 * Reading: raw data, or lines framed by core's rd_framer
 *
 * A protocol whose `delimiter` is a string (Twisted's LineReceiver) gets
 * lineReceived(line) per line, split in C: no Lua string work per message,
 * and the partial line lives in the transport's framer, so it survives a
 * reload byte for byte. `delimiter` is looked up at every read, so a reload (or
 * setRawMode) that changes the framing applies from the next read on.
 *=====================================================================*/

static int reading(const ltransport *t)
{
    return t->conn.state == RD_OPEN; /* not once loseConnection or abort was called */
}

/* Call self[key](self, s, n), as the call record's callback. */
static inline void callwith(lua_State *L, lreactor *lr, int self, int key, const char *what,
                            const char *s, size_t n)
{
    lr->call->what = what;
    rdL_pushkey(L, lr, key);
    lua_gettable(L, self);
    lua_pushvalue(L, self);
    rdL_pushbytes(L, lr, s, n);
    lua_call(L, 2, 0);
}

/* Call self[key](self, v) for the value v at the top (popped), as the call
 * record's callback. */
static void calltop(lua_State *L, lreactor *lr, int self, int key, const char *what)
{
    lr->call->what = what;
    rdL_pushkey(L, lr, key);
    lua_gettable(L, self);
    lua_pushvalue(L, self);
    lua_rotate(L, -3, 2); /* method, self, v */
    lua_call(L, 2, 0);
}

/* Hand the string at the top to self:dataReceived (popped). */
static void callraw(lua_State *L, lreactor *lr, int self)
{
    calltop(L, lr, self, RDL_K_DATARECEIVED, "dataReceived");
}

/* A line longer than MAX_LENGTH: lineLengthExceeded gets it and everything
 * buffered after it (the span s, which the framer has let go of), so an
 * override that keeps the connection does not parse the rest as lines
 * (Twisted's behaviour). */
static void exceeded(lua_State *L, lreactor *lr, ltransport *t, int self, rd_span_t s)
{
    lua_pushlstring(L, s.p, s.n); /* copies: s may be in the framer's buffer */
    rd_framer_keep(&t->in);       /* ends the read; nothing is left to keep */
    calltop(L, lr, self, RDL_K_LINELENGTHEXCEEDED, "lineLengthExceeded");
}

/* The rest of the read after setRawMode() (or after leaving line mode)
 * goes to dataReceived as one string. */
static void leave_lines(lua_State *L, lreactor *lr, ltransport *t, int self)
{
    rd_span_t rest = rd_framer_take(&t->in);
    lua_pushlstring(L, rest.p, rest.n); /* copies: rest may be in the framer's buffer */
    rd_framer_destroy(&t->in);
    if (rest.n && reading(t))
        callraw(L, lr, self);
    else
        lua_pop(L, 1);
}

/* A few bytes compared inline: memcmp is a call, at every read. */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void read_lines(lua_State *L, lreactor *lr, ltransport *t, int self, int delim,
                       const char *p, size_t n)
{
    size_t dlen;
    const char *d = lua_tolstring(L, delim, &dlen);
    if (dlen == 0) luaL_error(L, "delimiter must not be empty");
    rdL_pushkey(L, lr, RDL_K_MAX_LENGTH);
    lua_gettable(L, self);
    int isint;
    lua_Integer max = lua_tointegerx(L, -1, &isint);
    if (!isint || max < 0) max = 16384;
    lua_pop(L, 1);
    rd_framer_t *f = &t->in;
    if (f->rule != &rd_frame_line) rd_framer_set_rule(f, &rd_frame_line); /* a reload changed it */
    if (dlen <= sizeof t->delim) { /* the usual: a copy of our own, no ref */
        if (f->delim != t->delim || f->dlen != dlen || !same_bytes(t->delim, d, dlen)) {
            if (f->delim != t->delim) rdL_keepdelim(L, t, 0); /* a long one's, or a stream's */
            f->delim = NULL;                                  /* a new one: the rule starts over */
            memcpy(t->delim, d, dlen);
        }
        d = t->delim;
    } else if (d != f->delim) { /* a long one, new (the first read, a reload): keep it alive */
        rdL_keepdelim(L, t, delim);
    }
    rd_framer_set_line(f, d, dlen, (size_t)max);
    if (rd_framer_feed(f, p, n) < 0) luaL_error(L, "not enough memory");
    rd_span_t line;
    int r = 0;
    /* pauseReading() in lineReceived stops the lines still buffered too
     * (Twisted's); resumeReading() has them delivered (rd_conn_redeliver) */
    while (reading(t) && !t->conn.user_paused && (r = rd_framer_next(f, &line)) == 1) {
        callwith(L, lr, self, RDL_K_LINERECEIVED, "lineReceived", line.p, line.n);
        if (t->raw) { /* setRawMode() from that line: the rest is raw data */
            leave_lines(L, lr, t, self);
            return;
        }
    }
    if (!reading(t)) {
        rd_framer_destroy(f);
        return;
    }
    if (r < 0) { /* RD_ETOOBIG: a line too long, or one that never ends */
        exceeded(L, lr, t, self, line);
        return;
    }
    if (rd_framer_keep(f) < 0) luaL_error(L, "not enough memory");
}

/* The rules a protocol may name in `delimiter` instead of a string (the
 * light userdata in reactor.core.framing): Int8/16/32StringReceiver and
 * NetstringReceiver. */
static const rd_frame_rule_t *const string_rules[] = {&rd_frame_u8, &rd_frame_u16, &rd_frame_u32,
                                                      &rd_frame_netstring};

static const rd_frame_rule_t *string_rule(const void *p)
{
    for (size_t i = 0; i < sizeof string_rules / sizeof string_rules[0]; i++)
        if (p == string_rules[i]) return string_rules[i];
    return NULL;
}

/* Length-prefixed strings and netstrings: stringReceived(s) per frame. A
 * length past MAX_LENGTH is lengthLimitExceeded(length), before any of it
 * is buffered; a netstring that is not one closes the connection. */
static void read_strings(lua_State *L, lreactor *lr, ltransport *t, int self,
                         const rd_frame_rule_t *rule, const char *p, size_t n)
{
    rdL_pushkey(L, lr, RDL_K_MAX_LENGTH);
    lua_gettable(L, self);
    int isint;
    lua_Integer max = lua_tointegerx(L, -1, &isint);
    if (!isint || max < 0) max = 99999; /* Twisted's default */
    lua_pop(L, 1);
    rd_framer_t *f = &t->in;
    if (f->rule != rule) rd_framer_set_rule(f, rule);
    f->max = (size_t)max;
    if (rd_framer_feed(f, p, n) < 0) luaL_error(L, "not enough memory");
    rd_span_t s;
    int r = 0;
    while (reading(t) && !t->conn.user_paused && (r = rd_framer_next(f, &s)) == 1)
        callwith(L, lr, self, RDL_K_STRINGRECEIVED, "stringReceived", s.p, s.n);
    if (!reading(t)) {
        rd_framer_destroy(f);
        return;
    }
    if (r == RD_ETOOBIG) {
        lua_Integer declared =
            f->declared > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)f->declared;
        rd_framer_destroy(f); /* what follows a bad length cannot be framed */
        lua_pushinteger(L, declared);
        calltop(L, lr, self, RDL_K_LENGTHLIMITEXCEEDED, "lengthLimitExceeded");
        return;
    }
    if (r < 0) { /* RD_EFRAME: not a netstring (Twisted closes, too) */
        rd_framer_destroy(f);
        char peer[80];
        rdL_log(lr, "%s: malformed %s; closing the connection",
                rdL_peername(&t->conn, peer, sizeof peer), rule->name);
        rd_conn_lose(&t->conn);
        return;
    }
    if (rd_framer_keep(f) < 0) luaL_error(L, "not enough memory");
}

const char rdL_stream_framing = 's';

/* A coroutine stream (reactor.stream): the read goes into the framer, its
 * task takes what it waits for (transport:_pull) when readReady() wakes it,
 * and what it leaves is kept for later, copied only then. A task waiting for
 * the next frame at the framer's separator (the common case) gets it taken
 * here, as readReady(frame); a read that does not complete it stays in C. */
static void read_stream(lua_State *L, lreactor *lr, ltransport *t, int self, const char *p,
                        size_t n)
{
    rd_framer_t *f = &t->in;
    if (rd_framer_feed(f, p, n) < 0) luaL_error(L, "not enough memory");
    int nargs = 0;
    if (t->stream_reader == RDL_READER_UNTIL || t->stream_reader == RDL_READER_LINE) {
        /* a task waits for the next frame: take it here, and hand it to
         * readReady (which wakes the task), or wait on without entering Lua */
        rd_span_t s;
        int r = rdL_stream_next(t, t->stream_reader == RDL_READER_LINE, &s);
        if (r == 0) goto keep;
        if (r == 1) {
            t->stream_reader = RDL_READER_NONE;
            rdL_pushbytes(L, lr, s.p, s.n);
            nargs = 1;
        }
    }
    lr->call->what = "dataReceived"; /* the name a user knows for a read */
    /* the reader waits in C: resumed from here with the frame, or readReady does it */
    if (!nargs || !rdL_stream_wakereader(L, lr, t, self)) {
        rdL_pushkey(L, lr, RDL_K_READREADY);
        lua_gettable(L, self);
        lua_pushvalue(L, self);
        if (nargs) lua_rotate(L, -3, 2); /* readReady, self, frame */
        lua_call(L, 1 + nargs, 0);
    }
    if (t->conn.state == RD_CLOSED) {
        rd_framer_destroy(f);
        return;
    }
keep:
    if (rd_framer_keep(f) < 0) luaL_error(L, "not enough memory");
}

/* Hand one read's bytes to t's protocol; runs inside the batch's call. */
static void deliver(lua_State *L, lreactor *lr, ltransport *t, const char *p, size_t n)
{
    /* t itself stays pinned (t->ref) until its lost report, after this call */
    lr->reads++;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, RDL_UV_PROTOCOL); /* on_read's settop drops both */
    int self = lua_gettop(L);
    rdL_pushkey(L, lr, RDL_K_DELIMITER);
    int kind = lua_gettable(L, self);
    if (!reading(t)) return; /* that lookup ran a migrate, which failed */
    if (kind == LUA_TSTRING && !t->raw) {
        read_lines(L, lr, t, self, self + 1, p, n);
        return;
    }
    if (kind == LUA_TLIGHTUSERDATA && !t->raw) {
        if (lua_touserdata(L, -1) == &rdL_stream_framing) {
            read_stream(L, lr, t, self, p, n);
            return;
        }
        if (lua_touserdata(L, -1) == &rdL_http_framing) {
            rdL_read_http(L, lr, t, self, p, n);
            return;
        }
        if (lua_touserdata(L, -1) == &rdL_httpbody_framing) {
            rdL_read_httpbody(L, lr, t, self, p, n);
            return;
        }
        const rd_frame_rule_t *rule = string_rule(lua_touserdata(L, -1));
        if (!rule) luaL_error(L, "delimiter must be a string or one of reactor.core.framing");
        read_strings(L, lr, t, self, rule, p, n);
        return;
    }
    lua_pop(L, 1);
    if (n == 0 && !rd_framer_pending(&t->in)) return; /* a redelivery with nothing left */
    if (rd_framer_pending(&t->in)) { /* left line mode: what was buffered goes first */
        if (rd_framer_feed(&t->in, p, n) < 0) luaL_error(L, "not enough memory");
        leave_lines(L, lr, t, self);
        return;
    }
    lr->call->what = "dataReceived";
    rdL_pushkey(L, lr, RDL_K_DATARECEIVED);
    if (lua_gettable(L, self) != LUA_TNIL) {
        lua_pushvalue(L, self);
        rdL_pushbytes(L, lr, p, n);
        lua_call(L, 2, 0);
    }
}

/* Core reads only inside rd_loop_read_ready, which the binding runs in the
 * batch's protected call (rdL_run_reads): lr->call is the batch's record.
 * An error here longjmps out of core's rd__conn_read to that lua_pcall. */
static void on_read(rd_conn_t *c, const char *data, size_t len)
{
    ltransport *t = toltransport(c);
    lreactor *lr = c->loop->data;
    lua_State *L = lr->L;
    int top = lua_gettop(L);
    rdL_watchdog_tick(lr); /* the time limit is per callback, not per batch */
    lr->call->t = t;
    deliver(L, lr, t, data, len);
    lr->call->t = NULL;
    lua_settop(L, top);
}

static int tramp_reads(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    rd_loop_read_ready(call->a);
    return 0;
}

/* loop->run_reads: a whole batch of reads under one lua_pcall, which costs
 * as much as a short callback. An error unwinds to it from the read that
 * raised it (call.t): rdL_pcall fails that connection, as if its own call
 * had been protected, and the batch goes on with the rest (each connection
 * left the ready list before it was read). */
void rdL_run_reads(rd_loop_t *loop)
{
    while (rd_loop_has_ready(loop)) {
        rdL_call call = {.fn = tramp_reads, .a = loop, .what = "dataReceived"};
        rdL_pcall(loop->data, &call);
    }
}

/*{====================================================================
 * The end of a connection
 *=====================================================================*/

/* ud: t's stack index */
static void pushreason(lua_State *L, ltransport *t, int ud)
{
    const rd_conn_t *c = &t->conn;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, rd_reason_name(c->reason));
    lua_setfield(L, -2, "type");
    switch (c->reason) {
    case RD_DONE:
        lua_pushliteral(L, "connection was closed cleanly");
        break;
    case RD_ABORTED:
        if (c->err == RD_ETOOBIG)
            lua_pushfstring(
                L, "output buffer limit exceeded (%I bytes queued): the peer does not read",
                (lua_Integer)c->max_out);
        else
            lua_pushliteral(L, "connection was aborted");
        break;
    case RD_TIMEOUT:
        lua_pushliteral(L, "connection timed out");
        break;
    case RD_ERROR:
        if (t->failed && lua_getfield(L, LUA_REGISTRYINDEX, RDL_ERRMSG_KEY) == LUA_TTABLE) {
            lua_pushvalue(L, ud);
            lua_rawget(L, -2);
            lua_remove(L, -2);
        } else {
            if (t->failed) lua_pop(L, 1);
            lua_pushliteral(L, "handler error");
        }
        break;
    default:
        rdL_pusherror(L, c->err);
    }
    lua_setfield(L, -2, "message");
}

static int tramp_lost(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    ltransport *t = call->t;
    lreactor *lr = t->conn.loop->data;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    int ud = lua_gettop(L);
    rdL_transport_closing(L, ud);
    int reason = 0; /* made when someone is told */
    if (t->made) {
        lua_getiuservalue(L, ud, RDL_UV_PROTOCOL);
        if (pushcallback(L, lr, lua_gettop(L), RDL_K_CONNECTIONLOST, &noop_lost)) {
            pushreason(L, t, ud); /* fn, self, reason */
            lua_pushvalue(L, -1); /* kept below fn for a client factory: */
            lua_rotate(L, -4, 1); /* reason, fn, self, reason */
            reason = lua_gettop(L) - 3;
            lua_call(L, 2, 0);
        }
    }
    if (t->outgoing) { /* Twisted's ClientFactory hears of it too */
        const char *name = t->made ? "clientConnectionLost" : "clientConnectionFailed";
        call->what = name;
        rdL_pushfactory(L, t, ud);
        if (pushmethod(L, lua_gettop(L), name)) {
            lua_getiuservalue(L, ud, RDL_UV_CONNECTOR);
            if (reason)
                lua_pushvalue(L, reason);
            else
                pushreason(L, t, ud);
            lua_call(L, 3, 0);
        }
    }
    return 0;
}

static void on_lost(rd_conn_t *c, int reason, int err)
{
    (void)reason, (void)err;
    ltransport *t = toltransport(c);
    lreactor *lr = c->loop->data;
    rd_framer_destroy(&t->in);
    if (c->err == RD_ETOOBIG) {
        char peer[80];
        rdL_log(lr,
                "aborted %s: more than %zu bytes of output queued for a peer that does not read",
                rdL_peername(c, peer, sizeof peer), (size_t)c->max_out);
    }
    if (t->accepted && t->conn.data) { /* the listener's count, until lost (once) */
        rdL_listener_release(lr->L, t->conn.data);
        t->conn.data = NULL; /* which may be collected from here */
    }
    rdL_call call = {.fn = tramp_lost, .t = t, .what = "connectionLost"};
    rdL_pcall(lr, &call);
    rdL_transport_unpin(lr->L, t); /* from here t is ordinary garbage */
}

/*{====================================================================
 * Flow control, half-close, timeouts: Twisted's optional callbacks
 *=====================================================================*/

/* Call self:<what>() if the protocol has it; call->result = 1 if it did. */
static int tramp_optional(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, call->t->ref);
    lua_getiuservalue(L, -1, RDL_UV_PROTOCOL);
    if (!lua_istable(L, -1)) return 0;
    if (pushmethod(L, lua_gettop(L), call->what)) {
        lua_call(L, 1, 0);
        call->result = 1;
    }
    return 0;
}

/* -1 = failed (conn closed as a handler error), 0 = no such method, 1 = called */
static int call_optional(ltransport *t, const char *name)
{
    rdL_call call = {.fn = tramp_optional, .t = t, .what = name};
    if (rdL_pcall(t->conn.loop->data, &call) != LUA_OK) return -1;
    return call.result;
}

static int tramp_flowmode(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, call->t->ref);
    lua_getiuservalue(L, -1, RDL_UV_PROTOCOL);
    call->result = lua_istable(L, -1) && lua_getfield(L, -1, "flowControl") == LUA_TSTRING &&
                   strcmp(lua_tostring(L, -1), "manual") == 0;
    return 0;
}

/* Above the high water mark: pauseProducing(), and reading stops unless
 * the protocol says flowControl = "manual" (it pauses what it produces). */
static void on_flow(rd_conn_t *c, int paused)
{
    ltransport *t = toltransport(c);
    if (paused) {
        rdL_call call = {.fn = tramp_flowmode, .t = t, .what = "flowControl"};
        if (rdL_pcall(c->loop->data, &call) == LUA_OK && call.result) {
            c->pause_reads = 0;
            rd_conn_pause_reading(c, c->user_paused); /* reapply: reading goes on */
        }
    }
    if (c->state != RD_CLOSED) call_optional(t, paused ? "pauseProducing" : "resumeProducing");
}

/* The peer's FIN: readConnectionLost() if the protocol has it (it may go on
 * writing), else the connection finishes (Twisted's IHalfCloseableProtocol). */
static int on_eof(rd_conn_t *c)
{
    return call_optional(toltransport(c), "readConnectionLost") == 1;
}

static void on_timeout(rd_conn_t *c)
{
    ltransport *t = toltransport(c);
    if (call_optional(t, "timeoutConnection") == 0 && c->state != RD_CLOSED)
        rd_conn_close(c, RD_TIMEOUT, -ETIMEDOUT);
}

const rd_conn_ops_t rdL_transport_ops = {
    .on_read = on_read,
    .on_lost = on_lost,
    .on_connect = on_made,
    .on_flow = on_flow,
    .on_eof = on_eof,
    .on_timeout = on_timeout,
};

void rdL_transport_setup(ltransport *t)
{
    t->conn.ops = &rdL_transport_ops;
}
