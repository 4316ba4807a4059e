/*
 * ltransport.c: the Transport userdata (Twisted's ITransport) and its
 * methods. A transport embeds its rd_conn_t; uservalue 1 is the protocol
 * instance (self), 2 the factory, 3 a client's connector. What core calls
 * on it is in ldispatch.c; who makes one, in llistener.c and lendpoint.c.
 *
 * After close it is a harmless shell: writes are no-ops, close and abort
 * return false, getPeer/getHost give the cached addresses.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rdlua.h"

/* Every method's check, the hot path's too: by size and callback table
 * (rdL_totransport), not by metatable (luaL_checkudata looks it up in the
 * registry by name, and a closing transport wears another: two probes,
 * ~550 instructions) */
static ltransport *checktransport(lua_State *L)
{
    ltransport *t = rdL_totransport(L, 1);
    if (!t) luaL_typeerror(L, 1, RDL_TRANSPORT);
    return t;
}

void rdL_transport_closing(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_getmetatable(L, RDL_TRANSPORT_CLOSING);
    lua_setmetatable(L, idx);
}

ltransport *rdL_newtransport(lua_State *L, lreactor *lr, int nuv)
{
    ltransport *t = lua_newuserdatauv(L, sizeof *t, nuv);
    memset(t, 0, sizeof *t);
    t->conn.state = RD_CLOSED; /* harmless to finalize until core adopts it */
    t->conn.fd = -1;
    t->ref = LUA_NOREF;
    t->conn.ops = &rdL_transport_ops; /* what rdL_totransport knows it by */
    rd_framer_init(&t->in);
    /* its "\r\n" as the transport's own copy, which needs no keeping alive
     * (rdL_keepdelim is then for a long delimiter or a stream's separator) */
    memcpy(t->delim, t->in.delim, t->in.dlen);
    t->in.delim = t->delim;
    luaL_setmetatable(L, RDL_TRANSPORT);
    rdL_pin(L, -1, &t->ref);
    lr->ntransports++;
    return t;
}

void rdL_pushfactory(lua_State *L, const ltransport *t, int ud)
{
    if (!t->accepted) {
        lua_getiuservalue(L, ud, RDL_UV_FACTORY);
        return;
    }
    const llistener *ls = t->conn.data; /* the listener's first uservalue */
    if (!ls) {                          /* lost: it let go of the listener */
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ref);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
}

void rdL_transport_unpin(lua_State *L, ltransport *t)
{
    lreactor *lr = t->conn.loop ? t->conn.loop->data : rdL_reactor(L);
    if (t->ref == LUA_NOREF) return;
    rdL_unpin(L, &t->ref); /* its delimiter's string goes with it (weak keys) */
    lr->ntransports--;
}

void rdL_keepdelim(lua_State *L, ltransport *t, int idx)
{
    if (t->ref == LUA_NOREF) return; /* lost: its framer frames nothing more */
    idx = idx ? lua_absindex(L, idx) : 0;
    rdL_weakkeys(L, RDL_DELIM_KEY);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    if (idx)
        lua_pushvalue(L, idx);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
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
    rdL_fail(L, t);
    lua_pushboolean(L, 1);
    return 1;
}

/*{====================================================================
 * Transport methods
 *=====================================================================*/

void rdL_weakkeys(lua_State *L, const char *key)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
}

/* A borrowed string's release: the queue is done with it (sent, or dropped
 * by a close, in a __gc at lua_close too). luaL_unref only stores into
 * registry slots that exist, so it allocates nothing and cannot raise. It
 * runs on lr->L, which may be suspended under a running coroutine: one
 * stack slot is all it takes (without it the string stays pinned until
 * lua_close, which is all that can go wrong). */
static void unpin_string(void *ud, uintptr_t ref)
{
    lreactor *lr = ud;
    lr->nborrowed--;
    if (lua_checkstack(lr->L, 1)) luaL_unref(lr->L, LUA_REGISTRYINDEX, (int)ref);
}

int rdL_conn_writeborrowed(lua_State *L, rd_conn_t *c, int idx, const char *s, size_t len)
{
    lreactor *lr = c->loop->data;
    lua_pushvalue(L, idx);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX); /* may raise: nothing is queued yet */
    lr->nborrowed++;
    int r = rd_conn_write_borrowed(c, s, len, unpin_string, lr, (uintptr_t)ref);
    if (r != 0) unpin_string(lr, (uintptr_t)ref);
    return r;
}

void rdL_transport_write1(lua_State *L, ltransport *t, int idx)
{
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    int st = t->conn.state;
    if (st != RD_OPEN && st != RD_CONNECTING) return; /* closed: a no-op (Twisted) */
    int r = rdL_conn_writestring(L, &t->conn, idx, s, len);
    if (r == -ENOMEM) luaL_error(L, "not enough memory");
    /* RD_ETOOBIG: the conn is aborted; connectionLost will say why */
}

static int transport_write(lua_State *L)
{
    rdL_transport_write1(L, checktransport(L), 2);
    return 0;
}

static int transport_writesequence(lua_State *L)
{
    ltransport *t = checktransport(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        rdL_transport_write1(L, t, -1);
        lua_pop(L, 1);
    }
    return 0;
}

static int transport_lose(lua_State *L)
{
    ltransport *t = checktransport(L);
    lua_pushboolean(L, rd_conn_lose(&t->conn) == 0);
    if (t->conn.state == RD_CLOSING || t->conn.state == RD_CLOSED) rdL_transport_closing(L, 1);
    return 1;
}

static int transport_abort(lua_State *L)
{
    ltransport *t = checktransport(L);
    lua_pushboolean(L, rd_conn_close(&t->conn, RD_ABORTED, 0) == 0);
    if (t->conn.state == RD_CLOSED) rdL_transport_closing(L, 1);
    return 1;
}

/* setRawMode(raw): LineReceiver's switch, kept here so the per-line check
 * costs nothing; lines resume with setRawMode(false). */
/* setRawMode(raw [, extra]): LineReceiver's switch, kept here so the
 * per-line check costs nothing. Back to lines (raw false), `extra` is
 * framed first: bytes a raw-mode protocol read past its own end (HTTP's
 * body, SMTP's DATA) go back to line framing, from the next batch. */
static int transport_setrawmode(lua_State *L)
{
    ltransport *t = checktransport(L);
    int raw = lua_isnone(L, 2) || lua_toboolean(L, 2);
    size_t n = 0;
    const char *extra = raw ? NULL : luaL_optlstring(L, 3, NULL, &n);
    t->raw = (unsigned char)raw;
    if (extra && n && t->conn.state == RD_OPEN) {
        if (t->in.in) /* lines are being framed from a read right now */
            return luaL_error(L, "setLineMode(extra): not while lines are being delivered");
        if (rd_framer_feed(&t->in, extra, n) < 0 || rd_framer_keep(&t->in) < 0)
            return luaL_error(L, "not enough memory");
        rd_conn_redeliver(&t->conn);
    }
    return 0;
}

/* clearBuffer() -> the bytes the framer holds (of an unfinished frame, and
 * the rest of the read being framed), which it then forgets: Twisted's
 * clearLineBuffer. */
static int transport_clearbuffer(lua_State *L)
{
    ltransport *t = checktransport(L);
    int between = t->in.in == NULL; /* mid-read, the read's own keep ends it */
    rd_span_t rest = rd_framer_take(&t->in);
    lua_pushlstring(L, rest.p, rest.n);
    if (between) rd_framer_keep(&t->in); /* nothing is left to keep */
    return 1;
}

/* _pull(op, arg [, limit]): a coroutine stream's read (lstream.c); also
 * reactor.core._pull(transport, ...) */
int rdL_transport_pull(lua_State *L)
{
    ltransport *t = checktransport(L);
    rdL_stream_pull(L, t, (int)luaL_checkinteger(L, 2), 3, luaL_optinteger(L, 4, RD_FRAME_MAX));
    return 1;
}

/* The prefix of an n-byte string in head (24 bytes): 1, 2 or 4 bytes big
 * endian, or a netstring's "n:" (bytes 0); an error at the caller's line
 * (upvalue 2 names the class) if n does not fit. -> its length */
static size_t framehead(lua_State *L, const char *fname, int bytes, size_t n, char *head)
{
    if (!bytes) return (size_t)snprintf(head, 24, "%zu:", n);
    uint64_t limit = (1ull << (8 * bytes)) - 1;
    if ((uint64_t)n > limit)
        luaL_error(L, "%s: %I bytes do not fit %s's %d-byte length prefix (at most %I)", fname,
                   (lua_Integer)n, lua_tostring(L, lua_upvalueindex(2)), bytes, (lua_Integer)limit);
    for (int i = 0; i < bytes; i++)
        head[i] = (char)(n >> (8 * (bytes - 1 - i)));
    return (size_t)bytes;
}

/* The string receivers' sendString(self, s) (scripts/reactor/basic.lua), in
 * C: the prefix (1, 2 or 4 bytes big-endian, or a netstring's "len:" and
 * ",") goes into the connection's buffer beside s, with no Lua string made
 * for it. Upvalues: the prefix's size (0: a netstring), the class's name.
 * Errors are the caller's (level 1: the line that called sendString). */
static int sendstring(lua_State *L)
{
    int bytes = (int)lua_tointeger(L, lua_upvalueindex(1));
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "bad argument #1 to 'sendString' (string expected, got %s)",
                          luaL_typename(L, 2));
    size_t n;
    const char *p = lua_tolstring(L, 2, &n);
    char head[24];
    size_t hlen = framehead(L, "sendString", bytes, n, head);
    lua_getfield(L, 1, "transport");
    ltransport *t = rdL_totransport(L, -1);
    if (!t) { /* a stand-in (a test's): its own write, per piece */
        int tr = lua_gettop(L);
        const char *piece[3] = {head, p, ","};
        size_t len[3] = {hlen, n, 1};
        for (int i = 0; i < (bytes ? 2 : 3); i++) {
            lua_getfield(L, tr, "write");
            lua_pushvalue(L, tr);
            lua_pushlstring(L, piece[i], len[i]);
            lua_call(L, 2, 0);
        }
        return 0;
    }
    int st = t->conn.state;
    if (st != RD_OPEN && st != RD_CONNECTING) return 0; /* closed: a no-op, as write */
    if (rd_conn_write(&t->conn, head, hlen) == -ENOMEM ||
        rd_conn_write(&t->conn, p, n) == -ENOMEM ||
        (!bytes && rd_conn_write(&t->conn, ",", 1) == -ENOMEM))
        return luaL_error(L, "not enough memory");
    return 0;
}

/* Write the bytes p[0..n) to every transport in the list at idx (protocol
 * instances, through their `transport` field, or transports) but the one
 * at except: one C loop for a room's fan-out. -> how many it reached. */
static lua_Integer fanout(lua_State *L, int list, int except, const char *p, size_t n)
{
    luaL_checktype(L, list, LUA_TTABLE);
    lua_Integer len = (lua_Integer)lua_rawlen(L, list), reached = 0;
    lua_pushliteral(L, "transport"); /* the key, interned once */
    int key = lua_gettop(L);
    for (lua_Integer i = 1; i <= len; i++) {
        int top = lua_gettop(L);
        int kind = lua_rawgeti(L, list, i);
        if (lua_rawequal(L, -1, except)) {
            lua_settop(L, top);
            continue;
        }
        if (kind == LUA_TTABLE) {
            lua_pushvalue(L, key);
            lua_gettable(L, -2);
        }
        ltransport *t = rdL_totransport(L, -1);
        if (!t)
            luaL_error(L,
                       "broadcast: entry %I of the list is neither a connected protocol nor a "
                       "transport",
                       i);
        int st = t->conn.state;
        if (st == RD_OPEN || st == RD_CONNECTING) {
            if (rd_conn_write(&t->conn, p, n) == -ENOMEM) luaL_error(L, "not enough memory");
            reached++;
        }
        lua_settop(L, top);
    }
    lua_settop(L, key - 1);
    return reached;
}

/* The string receivers' broadcastString(list, s [, except]): s framed once,
 * written to each. Upvalues as sendstring's. */
static int broadcaststring(lua_State *L)
{
    int bytes = (int)lua_tointeger(L, lua_upvalueindex(1));
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "bad argument #2 to 'broadcastString' (string expected, got %s)",
                          luaL_typename(L, 2));
    lua_settop(L, 3);
    size_t n;
    const char *p = lua_tolstring(L, 2, &n);
    char head[24];
    size_t hlen = framehead(L, "broadcastString", bytes, n, head);
    /* the frame once (a Lua buffer: freed with the call, even on error) */
    luaL_Buffer b;
    char *frame = luaL_buffinitsize(L, &b, hlen + n + 1);
    memcpy(frame, head, hlen);
    memcpy(frame + hlen, p, n);
    size_t flen = hlen + n;
    if (!bytes) frame[flen++] = ',';
    lua_Integer reached = fanout(L, 1, 3, frame, flen);
    lua_pushinteger(L, reached);
    return 1;
}

/* reactor.broadcast(list, data [, except]) -> how many it reached */
int rdL_broadcast(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    lua_settop(L, 3);
    lua_pushinteger(L, fanout(L, 1, 3, p, n));
    return 1;
}

/* core._sendstring(bytes, name) -> sendString, broadcastString for that framing */
int rdL_sendstring(lua_State *L)
{
    luaL_checkinteger(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sendstring, 2);
    lua_insert(L, 1);
    lua_pushcclosure(L, broadcaststring, 2);
    return 2;
}

/* _pending() -> how many bytes a stream's reads could take now */
static int transport_pending(lua_State *L)
{
    ltransport *t = checktransport(L);
    rd_framer_t *f = &t->in;
    lua_pushinteger(L, (lua_Integer)(f->in ? rd_framer_peek(f).n : rd_framer_pending(f)));
    return 1;
}

static int transport_pausereading(lua_State *L)
{
    rd_conn_pause_reading(&checktransport(L)->conn, 1);
    return 0;
}

/* Frames left in the framer when reading paused are delivered again from
 * the next batch, before anything new is read (Twisted's resumeProducing). */
static int transport_resumereading(lua_State *L)
{
    ltransport *t = checktransport(L);
    rd_conn_pause_reading(&t->conn, 0);
    if (rd_framer_pending(&t->in) && !t->in.in) rd_conn_redeliver(&t->conn);
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
    double old = rd_conn_timeout(&t->conn);
    if (rd_conn_set_timeout(&t->conn, secs) < 0) return luaL_error(L, "not enough memory");
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
    rd_conn_marks(c, high, low, max);
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

/* getHost() -> the local address, nil once closed: asked of the socket each
 * time, since a conn keeps no copy (28 bytes each) */
static int transport_gethost(lua_State *L)
{
    ltransport *t = checktransport(L);
    rd_addr_t a;
    if (rd_conn_host(&t->conn, &a) == RD_ECLOSED) {
        lua_pushnil(L);
    } else if (t->fakehost) {
        lua_getfield(L, LUA_REGISTRYINDEX, RDL_FAKEHOST_KEY);
        lua_pushvalue(L, 1);
        lua_rawget(L, -2);
        const rd_addr_t *fake = lua_touserdata(L, -1);
        if (fake)
            rdL_pushaddr(L, fake);
        else
            lua_pushnil(L);
    } else {
        rdL_pushaddr(L, &a);
    }
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
    rd_framer_destroy(&t->in);
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
        {"clearBuffer", transport_clearbuffer},
        {"resumeReading", transport_resumereading},
        {"loseWriteConnection", transport_losewrite},
        {"setTimeout", transport_settimeout},
        {"setWriteLimits", transport_setlimits},
        {"bufferSize", transport_buffersize},
        {"getPeer", transport_getpeer},
        {"getHost", transport_gethost},
        {"_pull", rdL_transport_pull},
        {"_pending", transport_pending},
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
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "disconnecting");
        lua_setfield(L, -2, "__index");
    }
    if (luaL_newmetatable(L, RDL_TRANSPORT_CLOSING)) {
        luaL_setfuncs(L, meta, 0);
        lua_pushliteral(L, RDL_TRANSPORT); /* its type, in error messages */
        lua_setfield(L, -2, "__name");
        luaL_newlib(L, methods);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "disconnecting");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 2);
}
