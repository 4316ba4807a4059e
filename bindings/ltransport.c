/*
 * ltransport.c: the Transport userdata (Twisted's ITransport) and the
 * connection callbacks that call the protocol instance.
 *
 * A transport embeds its rd_conn_t. uservalue 1 is the protocol instance
 * (self), 2 the factory, 3 a client's connector. Callback methods are looked
 * up on self at every event, never cached, so replacing a protocol class
 * reaches live connections (hot reload).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "rdlua.h"

#define toltransport(c) rd__container(c, ltransport, conn)

struct span {
    const char *p;
    size_t n;
};

static ltransport *checktransport(lua_State *L)
{
    return luaL_checkudata(L, 1, RDL_TRANSPORT);
}

ltransport *rdL_newtransport(lua_State *L, lreactor *lr)
{
    ltransport *t = lua_newuserdatauv(L, sizeof *t, RDL_TRANSPORT_UVS);
    memset(t, 0, sizeof *t);
    t->conn.state = RD_CLOSED; /* harmless to finalize until core adopts it */
    t->conn.fd = -1;
    t->ref = t->self_ref = t->err_ref = LUA_NOREF;
    t->magic = RDL_TRANSPORT_MAGIC;
    luaL_setmetatable(L, RDL_TRANSPORT);
    rdL_pin(L, -1, &t->ref);
    lr->ntransports++;
    return t;
}

static void unpin(lua_State *L, lreactor *lr, ltransport *t)
{
    if (t->ref == LUA_NOREF) return;
    rdL_unpin(L, &t->ref);
    rdL_unpin(L, &t->self_ref);
    rdL_unpin(L, &t->err_ref);
    lr->ntransports--;
}

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

/*{====================================================================
 * Callbacks from core, each run whole under rdL_pcall
 *=====================================================================*/

/* buildProtocol, then connectionMade: a new connection in or out. */
static int tramp_made(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    lreactor *lr = t->conn.loop->data;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    int ud = lua_gettop(L);
    lua_getiuservalue(L, ud, RDL_UV_FACTORY);
    lr->where = "buildProtocol";
    lua_getfield(L, -1, "buildProtocol");
    lua_insert(L, -2);
    rdL_pushaddr(L, &t->conn.peer);
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) { /* the factory declines (Twisted) */
        rd_conn_close(&t->conn, RD_DONE, 0);
        return 0;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    int self = lua_gettop(L);
    lua_pushvalue(L, ud);
    lua_setfield(L, self, "transport");
    lua_pushvalue(L, self);
    lua_setiuservalue(L, ud, RDL_UV_PROTOCOL);
    rdL_pin(L, self, &t->self_ref);
    t->made = 1;
    lr->where = "connectionMade";
    if (pushmethod(L, self, "connectionMade")) lua_call(L, 1, 0);
    return 0;
}

/*{====================================================================
 * Reading: raw data, or lines framed here in C
 *
 * A protocol whose `delimiter` is a string (Twisted's LineReceiver) gets
 * lineReceived(line) per line, split in C: no Lua string work per message,
 * and the partial line lives in the transport, so it survives a reload byte
 * for byte. `delimiter` is looked up at every read, so a reload (or
 * setRawMode) that changes the framing applies from the next read on.
 *=====================================================================*/

static void in_free(ltransport *t)
{
    free(t->in);
    t->in = NULL;
    t->inlen = t->incap = 0;
}

/* Append n bytes (not from t->in) to the partial line. */
static void in_append(lua_State *L, ltransport *t, const char *p, size_t n)
{
    if (n == 0) return;
    if (t->inlen + n > t->incap) {
        size_t cap = t->incap ? t->incap : 64;
        while (cap < t->inlen + n)
            cap *= 2;
        if (cap > UINT32_MAX) luaL_error(L, "line buffer too large");
        char *in = realloc(t->in, cap);
        if (!in) luaL_error(L, "not enough memory");
        t->in = in;
        t->incap = (uint32_t)cap;
    }
    memcpy(t->in + t->inlen, p, n);
    t->inlen += (uint32_t)n;
}

/* After lines were taken from p[0..pos), keep p[pos..n) as the partial
 * line; p is either t->in or the read buffer. */
static void in_keep(lua_State *L, ltransport *t, const char *p, size_t pos, size_t n)
{
    if (p == t->in) {
        memmove(t->in, t->in + pos, n - pos);
        t->inlen = (uint32_t)(n - pos);
    } else {
        in_append(L, t, p + pos, n - pos);
    }
    if (t->inlen == 0 && t->incap > 1024) in_free(t); /* idle connections hold little */
}

static int reading(const ltransport *t)
{
    return t->conn.state == RD_OPEN; /* not once loseConnection or abort was called */
}

/* Call self[key](self, s, n). */
static void callwith(lua_State *L, lreactor *lr, int self, int key, const char *s, size_t n)
{
    rdL_pushkey(L, lr, key);
    lua_gettable(L, self);
    lua_pushvalue(L, self);
    rdL_pushbytes(L, lr, s, n);
    lua_call(L, 2, 0);
}

static void read_lines(lua_State *L, lreactor *lr, ltransport *t, int self, int delim,
                       const struct span *s)
{
    size_t dlen;
    const char *d = lua_tolstring(L, delim, &dlen);
    if (dlen == 0) luaL_error(L, "delimiter must not be empty");
    rdL_pushkey(L, lr, RDL_K_MAX_LENGTH);
    lua_gettable(L, self);
    int isint;
    lua_Integer max = lua_tointegerx(L, -1, &isint);
    if (!isint) max = 16384;
    lua_pop(L, 1);
    const char *p = s->p;
    size_t n = s->n;
    if (t->inlen) { /* search the partial line and the new bytes as one */
        in_append(L, t, s->p, s->n);
        p = t->in;
        n = t->inlen;
    }
    size_t pos = 0;
    while (reading(t)) {
        const char *hit = dlen == 1 ? memchr(p + pos, d[0], n - pos) /* the common case */
                                    : memmem(p + pos, n - pos, d, dlen);
        if (!hit) break;
        size_t len = (size_t)(hit - (p + pos));
        size_t at = pos;
        pos += len + dlen;
        if ((lua_Integer)len > max) {
            callwith(L, lr, self, RDL_K_LINELENGTHEXCEEDED, p + at, len);
            break;
        }
        callwith(L, lr, self, RDL_K_LINERECEIVED, p + at, len);
        if (t->raw) { /* setRawMode() from that line: the rest is raw data */
            if (pos < n && reading(t)) {
                lua_pushlstring(L, p + pos, n - pos); /* copies: p may be t->in */
                in_free(t);
                rdL_pushkey(L, lr, RDL_K_DATARECEIVED);
                lua_gettable(L, self);
                lua_pushvalue(L, self);
                lua_rotate(L, -3, 2);
                lua_call(L, 2, 0);
            } else {
                in_free(t);
            }
            return;
        }
    }
    if (!reading(t)) {
        in_free(t);
        return;
    }
    in_keep(L, t, p, pos, n);
    if ((lua_Integer)t->inlen > max) { /* a line that never ends */
        size_t len = t->inlen;
        t->inlen = 0;
        callwith(L, lr, self, RDL_K_LINELENGTHEXCEEDED, t->in, len);
        in_free(t);
    }
}

/* Hand the bytes s to t's protocol, above the stack's top; runs protected. */
static void deliver(lua_State *L, lreactor *lr, ltransport *t, const struct span *s)
{
    /* t itself stays pinned (t->ref) until its lost report, after this call */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    int self = lua_gettop(L);
    rdL_pushkey(L, lr, RDL_K_DELIMITER);
    int framed = lua_gettable(L, self) == LUA_TSTRING && !t->raw;
    if (!reading(t)) return; /* that lookup ran a migrate, which failed */
    if (framed) {
        lr->where = "lineReceived";
        read_lines(L, lr, t, self, self + 1, s);
        return;
    }
    lua_pop(L, 1);
    if (t->inlen) { /* left line mode: what was buffered goes first */
        in_append(L, t, s->p, s->n);
        struct span all = {t->in, t->inlen};
        t->inlen = 0;
        lua_pushlstring(L, all.p, all.n);
        in_free(t);
        rdL_pushkey(L, lr, RDL_K_DATARECEIVED);
        lua_gettable(L, self);
        lua_pushvalue(L, self);
        lua_rotate(L, -3, 2); /* method, self, data */
        lua_call(L, 2, 0);
        return;
    }
    rdL_pushkey(L, lr, RDL_K_DATARECEIVED);
    if (lua_gettable(L, self) != LUA_TNIL) {
        lua_pushvalue(L, self);
        rdL_pushbytes(L, lr, s->p, s->n);
        lua_call(L, 2, 0);
    }
}

static int tramp_read(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    deliver(L, t->conn.loop->data, t, lua_touserdata(L, 2));
    return 0;
}

static void pushreason(lua_State *L, ltransport *t)
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
        if (t->err_ref != LUA_NOREF)
            lua_rawgeti(L, LUA_REGISTRYINDEX, t->err_ref);
        else
            lua_pushliteral(L, "handler error");
        break;
    default:
        rdL_pusherror(L, c->err);
    }
    lua_setfield(L, -2, "message");
}

static int tramp_lost(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    lreactor *lr = t->conn.loop->data;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    int ud = lua_gettop(L);
    pushreason(L, t);
    int reason = lua_gettop(L);
    if (t->made) {
        lua_getiuservalue(L, ud, RDL_UV_PROTOCOL);
        lr->where = "connectionLost";
        if (pushmethod(L, lua_gettop(L), "connectionLost")) {
            lua_pushvalue(L, reason);
            lua_call(L, 2, 0);
        }
    }
    if (t->outgoing) { /* Twisted's ClientFactory hears of it too */
        const char *name = t->made ? "clientConnectionLost" : "clientConnectionFailed";
        lua_getiuservalue(L, ud, RDL_UV_FACTORY);
        lr->where = name;
        if (pushmethod(L, lua_gettop(L), name)) {
            lua_getiuservalue(L, ud, RDL_UV_CONNECTOR);
            lua_pushvalue(L, reason);
            lua_call(L, 3, 0);
        }
    }
    return 0;
}

/* A handler failed: that connection only is closed, and says why. */
static void fail(ltransport *t, int msg_ref)
{
    lreactor *lr = t->conn.loop->data;
    if (t->conn.state != RD_CLOSED) {
        rdL_unpin(lr->L, &t->err_ref);
        t->err_ref = msg_ref;
        rd_conn_close(&t->conn, RD_ERROR, 0);
    } else if (msg_ref != LUA_NOREF) {
        luaL_unref(lr->L, LUA_REGISTRYINDEX, msg_ref);
    }
}

static void on_made(rd_conn_t *c)
{
    ltransport *t = toltransport(c);
    int msg = LUA_NOREF;
    if (rdL_pcall(c->loop->data, tramp_made, t, NULL, &msg) != LUA_OK) fail(t, msg);
}

static void on_read(rd_conn_t *c, const char *data, size_t len)
{
    ltransport *t = toltransport(c);
    lreactor *lr = c->loop->data;
    struct span s = {data, len};
    lr->where = "dataReceived";
    if (lr->in_batch) { /* inside run_reads' protected call */
        lua_State *L = lr->L;
        int top = lua_gettop(L);
        rdL_watchdog_tick(lr); /* the time limit is per callback, not per batch */
        lr->reading = t;
        deliver(L, lr, t, &s);
        lr->reading = NULL;
        lua_settop(L, top);
        return;
    }
    int msg = LUA_NOREF;
    if (rdL_pcall(lr, tramp_read, t, &s, &msg) != LUA_OK) fail(t, msg);
}

static int tramp_reads(lua_State *L)
{
    lreactor *lr = lua_touserdata(L, 1);
    rd_loop_read_ready(&lr->loop);
    return 0;
}

/* loop->run_reads: a whole batch of reads under one lua_pcall, which costs
 * as much as a short callback. An error unwinds to here from the read that
 * raised it (lr->reading): that connection fails, as if its own call had
 * been protected, and the batch goes on with the rest. */
void rdL_run_reads(rd_loop_t *loop)
{
    lreactor *lr = loop->data;
    ltransport *outer = lr->reading;
    int was = lr->in_batch;
    while (rd_loop_has_ready(loop)) {
        int msg = LUA_NOREF;
        lr->reading = NULL;
        lr->in_batch = 1;
        int status = rdL_pcall(lr, tramp_reads, lr, NULL, &msg);
        ltransport *t = lr->reading;
        lr->in_batch = was;
        lr->reading = outer;
        if (status == LUA_OK) continue;
        if (t)
            fail(t, msg);
        else if (msg != LUA_NOREF)
            luaL_unref(lr->L, LUA_REGISTRYINDEX, msg);
    }
}

static void on_lost(rd_conn_t *c, int reason, int err)
{
    (void)reason, (void)err;
    ltransport *t = toltransport(c);
    lreactor *lr = c->loop->data;
    in_free(t);
    if (c->err == RD_ETOOBIG) {
        char host[64];
        int port = rd_addr_host(&c->peer, host, sizeof host);
        rdL_log("aborted %s:%d: more than %zu bytes of output queued for a peer that does not read",
                host, port, c->max_out);
    }
    lr->where = "connectionLost";
    rdL_pcall(lr, tramp_lost, t, NULL, NULL);
    unpin(lr->L, lr, t); /* from here t is ordinary garbage */
}

/* failConnection(transport, msg): what a handler error does, for errors
 * found outside a callback (a failed migrate): log is the caller's. */
int rdL_failconnection(lua_State *L)
{
    ltransport *t = checktransport(L);
    luaL_checkstring(L, 2);
    if (t->conn.state == RD_CLOSED) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushvalue(L, 2);
    fail(t, luaL_ref(L, LUA_REGISTRYINDEX));
    lua_pushboolean(L, 1);
    return 1;
}

/*{====================================================================
 * Flow control, half-close, timeouts: Twisted's optional callbacks
 *=====================================================================*/

/* Call self:<name>(); report whether the method exists. */
static int tramp_optional(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    const char *name = lua_touserdata(L, 2);
    lreactor *lr = t->conn.loop->data;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, RDL_UV_PROTOCOL);
    if (!lua_istable(L, -1)) return 0;
    lr->where = name;
    if (pushmethod(L, lua_gettop(L), name)) {
        lua_call(L, 1, 0);
        lr->scratch = 1;
    }
    return 0;
}

/* -1 = failed (conn closed as a handler error), 0 = no such method, 1 = called */
static int call_optional(ltransport *t, const char *name)
{
    lreactor *lr = t->conn.loop->data;
    int msg = LUA_NOREF;
    lr->scratch = 0;
    if (rdL_pcall(lr, tramp_optional, t, (void *)name, &msg) != LUA_OK) {
        fail(t, msg);
        return -1;
    }
    return lr->scratch;
}

static int tramp_flowmode(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    lreactor *lr = t->conn.loop->data;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, RDL_UV_PROTOCOL);
    lr->scratch = lua_istable(L, -1) && lua_getfield(L, -1, "flowControl") == LUA_TSTRING &&
                  strcmp(lua_tostring(L, -1), "manual") == 0;
    return 0;
}

/* Above the high water mark: pauseProducing(), and reading stops unless
 * the protocol says flowControl = "manual" (it pauses what it produces). */
static void on_flow(rd_conn_t *c, int paused)
{
    ltransport *t = toltransport(c);
    lreactor *lr = c->loop->data;
    if (paused) {
        lr->where = "flowControl";
        if (rdL_pcall(lr, tramp_flowmode, t, NULL, NULL) == LUA_OK && lr->scratch) {
            c->pause_reads = 0;
            rd_conn_pause_reading(c, c->user_paused); /* reapply: reading goes on */
        }
    }
    call_optional(t, paused ? "pauseProducing" : "resumeProducing");
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

void rdL_transport_setup(ltransport *t)
{
    t->conn.on_read = on_read;
    t->conn.on_lost = on_lost;
    t->conn.on_connect = on_made;
    t->conn.on_flow = on_flow;
    t->conn.on_eof = on_eof;
    t->conn.on_timeout = on_timeout;
}

/*{====================================================================
 * Accepting
 *=====================================================================*/

static int tramp_alloc(lua_State *L)
{
    llistener *ls = lua_touserdata(L, 1);
    ltransport **out = lua_touserdata(L, 2);
    lreactor *lr = ls->listener.loop->data;
    ltransport *t = rdL_newtransport(L, lr);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ref);
    lua_getiuservalue(L, -1, 1);
    lua_setiuservalue(L, -3, RDL_UV_FACTORY);
    *out = t;
    return 0;
}

static rd_conn_t *listener_alloc(rd_listener_t *l)
{
    llistener *ls = rd__container(l, llistener, listener);
    lreactor *lr = l->loop->data;
    ltransport *t = NULL;
    lr->where = "accept";
    if (rdL_pcall(lr, tramp_alloc, ls, &t, NULL) != LUA_OK) return NULL;
    rdL_transport_setup(t);
    return &t->conn;
}

static void listener_accept(rd_listener_t *l, rd_conn_t *c)
{
    (void)l;
    on_made(c);
}

/*{====================================================================
 * Listener userdata
 *=====================================================================*/

static llistener *checklistener(lua_State *L)
{
    return luaL_checkudata(L, 1, RDL_LISTENER);
}

static int listener_close(lua_State *L, llistener *ls)
{
    if (ls->listener.fd < 0) return 0;
    lreactor *lr = ls->listener.loop->data;
    rd_listener_close(&ls->listener);
    if (ls->ref != LUA_NOREF) {
        rdL_unpin(L, &ls->ref);
        lr->nlisteners--;
    }
    return 1;
}

void rdL_listener_close(lua_State *L, rd_listener_t *l)
{
    listener_close(L, rd__container(l, llistener, listener));
}

static int listener_stop(lua_State *L)
{
    lua_pushboolean(L, listener_close(L, checklistener(L)));
    return 1;
}

static int listener_gethost(lua_State *L)
{
    llistener *ls = checklistener(L);
    rdL_pushaddr(L, &ls->listener.addr);
    if (ls->listener.path) {
        lua_pushstring(L, ls->listener.path);
        lua_setfield(L, -2, "name");
    }
    return 1;
}

/* stats() -> {connections = open ones it accepted, refused = turned away} */
static int listener_stats(lua_State *L)
{
    llistener *ls = checklistener(L);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, ls->listener.nconns);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)ls->listener.refused);
    lua_setfield(L, -2, "refused");
    return 1;
}

static int listener_gc(lua_State *L)
{
    llistener *ls = checklistener(L);
    if (ls->listener.fd >= 0) rd_listener_close(&ls->listener);
    return 0;
}

static int listener_tostring(lua_State *L)
{
    llistener *ls = checklistener(L);
    char host[64];
    int port = rd_addr_host(&ls->listener.addr, host, sizeof host);
    if (ls->listener.fd < 0)
        lua_pushliteral(L, "Listener (closed)");
    else
        lua_pushfstring(L, "Listener (%s:%d)", host, port);
    return 1;
}

static void listener_options(lua_State *L, int idx, rd_listener_t *l)
{
    if (lua_type(L, idx) != LUA_TTABLE) return;
    if (lua_getfield(L, idx, "maxConnections") != LUA_TNIL)
        l->max_conns = (unsigned)luaL_checkinteger(L, -1);
    if (lua_getfield(L, idx, "idleTimeout") != LUA_TNIL) l->idle = luaL_checknumber(L, -1);
    if (lua_getfield(L, idx, "highWater") != LUA_TNIL) l->high = (size_t)luaL_checkinteger(L, -1);
    if (lua_getfield(L, idx, "lowWater") != LUA_TNIL) l->low = (size_t)luaL_checkinteger(L, -1);
    if (lua_getfield(L, idx, "maxOutput") != LUA_TNIL)
        l->max_out = (size_t)luaL_checkinteger(L, -1);
    lua_pop(L, 5);
    if (l->low > l->high) l->low = l->high;
}

static llistener *newlistener(lua_State *L)
{
    llistener *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->listener.fd = -1;
    ls->ref = LUA_NOREF;
    luaL_setmetatable(L, RDL_LISTENER);
    return ls;
}

static void adopt(lua_State *L, lreactor *lr, llistener *ls, int factory, int opts)
{
    ls->listener.alloc = listener_alloc;
    ls->listener.on_accept = listener_accept;
    listener_options(L, opts, &ls->listener);
    lua_pushvalue(L, factory);
    lua_setiuservalue(L, -2, 1);
    rdL_pin(L, -1, &ls->ref);
    lr->nlisteners++;
}

/* listenUNIX(path, factory [, {backlog=, maxConnections=, ...}]) */
int rdL_listenunix(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int backlog = 511;
    if (lua_type(L, 3) == LUA_TTABLE && lua_getfield(L, 3, "backlog") == LUA_TNUMBER)
        backlog = (int)lua_tointeger(L, -1);
    lua_settop(L, 3);
    llistener *ls = newlistener(L);
    int r = rd_listener_open_unix(&ls->listener, &lr->loop, path, backlog);
    if (r < 0) return rdL_pushfail(L, r, path);
    adopt(L, lr, ls, 2, 3);
    return 1;
}

/* A transport for an outgoing connection, pushed: factory and connector
 * at stack indexes f and k. */
static ltransport *newoutgoing(lua_State *L, lreactor *lr, int f, int k)
{
    ltransport *t = rdL_newtransport(L, lr);
    lua_pushvalue(L, f);
    lua_setiuservalue(L, -2, RDL_UV_FACTORY);
    lua_pushvalue(L, k);
    lua_setiuservalue(L, -2, RDL_UV_CONNECTOR);
    t->outgoing = 1;
    rdL_transport_setup(t);
    return t;
}

/* connectUNIX(path, factory, connector [, timeout]) -> transport */
int rdL_connectunix(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    double timeout = luaL_optnumber(L, 4, 30.0);
    ltransport *t = newoutgoing(L, lr, 2, 3);
    int r = rd_conn_connect_unix(&t->conn, &lr->loop, path, timeout);
    if (r < 0) {
        unpin(L, lr, t);
        return rdL_pushfail(L, r, path);
    }
    return 1;
}

/* stdio(factory) -> transport over stdin/stdout (Twisted's StandardIO).
 * connectionMade runs now, from this call; stdin's EOF is connectionLost
 * (or readConnectionLost, which leaves stdout writable). */
int rdL_stdio(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    ltransport *t = rdL_newtransport(L, lr);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, RDL_UV_FACTORY);
    rdL_transport_setup(t);
    int r = rd_conn_init_stream(&t->conn, &lr->loop, 0, 1);
    if (r < 0) {
        unpin(L, lr, t);
        return rdL_pushfail(L, r, "stdio");
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error to report, not a death */
    lua_pushcfunction(L, tramp_made);
    lua_pushlightuserdata(L, t);
    lua_call(L, 1, 0);
    rd_conn_start(&t->conn);
    return 1;
}

/* listenTCP(port, factory [, interface | {interface=, backlog=}]) */
int rdL_listen(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_Integer port = luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *host = "127.0.0.1";
    int backlog = 511;
    if (lua_type(L, 3) == LUA_TSTRING) {
        host = lua_tostring(L, 3);
    } else if (lua_type(L, 3) == LUA_TTABLE) {
        if (lua_getfield(L, 3, "interface") == LUA_TSTRING) host = lua_tostring(L, -1);
        if (lua_getfield(L, 3, "backlog") == LUA_TNUMBER) backlog = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
    } else {
        luaL_argexpected(L, lua_isnoneornil(L, 3), 3, "interface string or options table");
    }
    luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be 0..65535");
    llistener *ls = newlistener(L);
    int r = rd_listener_open(&ls->listener, &lr->loop, host, (int)port, backlog);
    if (r < 0) {
        const char *where = strchr(host, ':') ? lua_pushfstring(L, "[%s]:%d", host, (int)port)
                                              : lua_pushfstring(L, "%s:%d", host, (int)port);
        return rdL_pushfail(L, r, where);
    }
    adopt(L, lr, ls, 2, 3);
    return 1;
}

/*{====================================================================
 * Transport methods
 *=====================================================================*/

/* The hot-path check (luaL_checkudata looks the metatable up in the registry
 * and compares): a full userdata of our exact size carrying our magic. */
static ltransport *fastcheck(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    if (t && lua_type(L, 1) == LUA_TUSERDATA && lua_rawlen(L, 1) == sizeof *t &&
        t->magic == RDL_TRANSPORT_MAGIC)
        return t;
    return checktransport(L); /* raises the usual type error */
}

static void write1(lua_State *L, ltransport *t, int idx)
{
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    int st = t->conn.state;
    if (st != RD_OPEN && st != RD_CONNECTING) return; /* closed: a no-op (Twisted) */
    int r = rd_conn_write(&t->conn, s, len);
    if (r == -ENOMEM) luaL_error(L, "not enough memory");
    /* RD_ETOOBIG: the conn is aborted; connectionLost will say why */
}

static int transport_write(lua_State *L)
{
    write1(L, fastcheck(L), 2);
    return 0;
}

static int transport_writesequence(lua_State *L)
{
    ltransport *t = checktransport(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        write1(L, t, -1);
        lua_pop(L, 1);
    }
    return 0;
}

static int transport_lose(lua_State *L)
{
    lua_pushboolean(L, rd_conn_lose(&checktransport(L)->conn) == 0);
    return 1;
}

static int transport_abort(lua_State *L)
{
    lua_pushboolean(L, rd_conn_close(&checktransport(L)->conn, RD_ABORTED, 0) == 0);
    return 1;
}

/* setRawMode(raw): LineReceiver's switch, kept here so the per-line check
 * costs nothing; lines resume with setRawMode(false). */
static int transport_setrawmode(lua_State *L)
{
    ltransport *t = checktransport(L);
    t->raw = lua_isnone(L, 2) || lua_toboolean(L, 2);
    return 0;
}

static int transport_pausereading(lua_State *L)
{
    rd_conn_pause_reading(&checktransport(L)->conn, 1);
    return 0;
}

static int transport_resumereading(lua_State *L)
{
    rd_conn_pause_reading(&checktransport(L)->conn, 0);
    return 0;
}

static int transport_losewrite(lua_State *L)
{
    lua_pushboolean(L, rd_conn_shutdown_write(&checktransport(L)->conn) == 0);
    return 1;
}

/* setTimeout(seconds | nil) -> the previous timeout (nil if none) */
static int transport_settimeout(lua_State *L)
{
    ltransport *t = checktransport(L);
    double secs = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, secs >= 0, 2, "timeout must be >= 0");
    double old = t->conn.timeout;
    rd_conn_set_timeout(&t->conn, secs);
    if (old > 0)
        lua_pushnumber(L, old);
    else
        lua_pushnil(L);
    return 1;
}

/* setWriteLimits{high=, low=, max=}: flow control marks and the hard cap */
static int transport_setlimits(lua_State *L)
{
    ltransport *t = checktransport(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    rd_conn_t *c = &t->conn;
    size_t high = c->high, low = c->low, max = c->max_out;
    if (lua_getfield(L, 2, "high") != LUA_TNIL) high = (size_t)luaL_checkinteger(L, -1);
    if (lua_getfield(L, 2, "low") != LUA_TNIL) low = (size_t)luaL_checkinteger(L, -1);
    if (lua_getfield(L, 2, "max") != LUA_TNIL) max = (size_t)luaL_checkinteger(L, -1);
    luaL_argcheck(L, low <= high, 2, "low must not exceed high");
    c->high = high;
    c->low = low;
    c->max_out = max;
    return 0;
}

/* bufferSize() -> bytes queued, not yet written */
static int transport_buffersize(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)rd_conn_pending(&checktransport(L)->conn));
    return 1;
}

static int transport_getpeer(lua_State *L)
{
    rdL_pushaddr(L, &checktransport(L)->conn.peer);
    return 1;
}

static int transport_gethost(lua_State *L)
{
    rdL_pushaddr(L, &checktransport(L)->conn.host);
    return 1;
}

static int transport_tostring(lua_State *L)
{
    ltransport *t = checktransport(L);
    if (t->conn.state == RD_CLOSED) {
        lua_pushliteral(L, "Transport (closed)");
    } else {
        char host[64];
        int port = rd_addr_host(&t->conn.peer, host, sizeof host);
        lua_pushfstring(L, "Transport (%s:%d)", host, port);
    }
    return 1;
}

/* Only reached once nothing pins it (closed and reported), or at lua_close:
 * then detach without calling Lua. */
static int transport_gc(lua_State *L)
{
    ltransport *t = checktransport(L);
    rd_conn_detach(&t->conn);
    in_free(t);
    return 0;
}

void rdL_open_transport(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"write", transport_write},
        {"writeSequence", transport_writesequence},
        {"loseConnection", transport_lose},
        {"abortConnection", transport_abort},
        {"pauseReading", transport_pausereading},
        {"setRawMode", transport_setrawmode},
        {"resumeReading", transport_resumereading},
        {"loseWriteConnection", transport_losewrite},
        {"setTimeout", transport_settimeout},
        {"setWriteLimits", transport_setlimits},
        {"bufferSize", transport_buffersize},
        {"getPeer", transport_getpeer},
        {"getHost", transport_gethost},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", transport_gc},
        {"__close", transport_abort},
        {"__tostring", transport_tostring},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, RDL_TRANSPORT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    static const luaL_Reg lmethods[] = {
        {"getHost", listener_gethost},
        {"stopListening", listener_stop},
        {"stats", listener_stats},
        {NULL, NULL},
    };
    static const luaL_Reg lmeta[] = {
        {"__gc", listener_gc},
        {"__close", listener_stop},
        {"__tostring", listener_tostring},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, RDL_LISTENER)) {
        luaL_setfuncs(L, lmeta, 0);
        luaL_newlib(L, lmethods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/*{====================================================================
 * Outgoing connections
 *=====================================================================*/

/* core.connectTCP(host, port, factory, connector [, timeout]) -> transport */
int rdL_connect(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    double timeout = luaL_optnumber(L, 5, 30.0);
    luaL_argcheck(L, port > 0 && port <= 65535, 2, "port must be 1..65535");
    rd_addr_t to;
    int r = rd_addr_parse(&to, host, (int)port);
    if (r < 0) return rdL_pushfail(L, r, host);
    ltransport *t = newoutgoing(L, lr, 3, 4);
    r = rd_conn_connect(&t->conn, &lr->loop, &to, timeout);
    if (r < 0) {
        unpin(L, lr, t);
        return rdL_pushfail(L, r, lua_pushfstring(L, "%s:%d", host, (int)port));
    }
    return 1;
}
