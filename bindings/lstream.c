/*
 * lstream.c: the C half of reactor.stream (coroutine streams): a read taken
 * from the bytes the connection's framer holds, and the hot path of the
 * stream's reads and writes.
 *
 * A stream's protocol names reactor.core.framing.stream as its delimiter,
 * so each read is fed to the framer (ldispatch.c, read_stream) and stays
 * there until a read takes it; what is left when the read's callback
 * returns is copied into the framer's buffer once. A separator search
 * resumes where the last one stopped (f->scanned), so a line that arrives
 * a byte at a time costs O(length).
 *
 * The methods readuntil, readline, readexactly and write are C closures
 * over their Lua versions (scripts/reactor/stream.lua): when the bytes are
 * there (or the write can go straight out) the closure answers without
 * entering Lua; otherwise it calls the Lua version, yieldably, which
 * checks the arguments, waits, and reports errors at the caller's line.
 */
#include <errno.h>
#include <string.h>

#include "rdlua.h"

/*{====================================================================
 * Taking bytes from the framer
 *=====================================================================*/

static void pull_until(lua_State *L, ltransport *t, int op, int argidx, lua_Integer limit)
{
    rd_framer_t *f = &t->in;
    size_t dlen;
    const char *d = luaL_checklstring(L, argidx, &dlen);
    if (dlen == 0) luaL_argerror(L, argidx, "empty separator");
    if (d != f->delim) { /* the framer will point at it: keep it alive */
        rdL_unpin(L, &t->delim_ref);
        rdL_pin(L, argidx, &t->delim_ref);
    }
    rd_span_t s;
    int r = rd_framer_until(f, d, dlen, limit < 0 ? 0 : (size_t)limit, &s);
    if (r == 1) {
        if (op == RDL_PULL_LINE && s.n && s.p[s.n - 1] == '\r') s.n--;
        rdL_pushbytes(L, t->conn.loop->data, s.p, s.n);
    } else if (r == 0) {
        lua_pushnil(L);
    } else {
        lua_pushboolean(L, 0);
    }
}

int rdL_stream_next(ltransport *t, int line, rd_span_t *s)
{
    rd_framer_t *f = &t->in;
    if (!f->delim || (line && !(f->dlen == 1 && *f->delim == '\n'))) return -1;
    int r =
        rd_framer_until(f, f->delim, f->dlen, t->stream_limit < 0 ? 0 : (size_t)t->stream_limit, s);
    if (r == 1 && line && s->n && s->p[s->n - 1] == '\r') s->n--;
    return r;
}

void rdL_stream_pull(lua_State *L, ltransport *t, int op, int argidx, lua_Integer limit)
{
    rd_framer_t *f = &t->in;
    int held = f->in == NULL; /* between reads: take from what was kept */
    if (held) {
        if (rd_framer_pending(f) == 0) {
            lua_pushnil(L);
            return;
        }
        if (rd_framer_feed(f, "", 0) < 0) luaL_error(L, "not enough memory");
    }
    rd_span_t s = rd_framer_peek(f);
    if (op == RDL_PULL_UNTIL || op == RDL_PULL_LINE) {
        pull_until(L, t, op, argidx, limit);
    } else if (op == RDL_PULL_EXACT || op == RDL_PULL_SOME) {
        lua_Integer n = luaL_checkinteger(L, argidx);
        if (n < 0) luaL_argerror(L, argidx, "negative count");
        if (s.n == 0 || (op == RDL_PULL_EXACT && (lua_Integer)s.n < n)) {
            lua_pushnil(L);
        } else {
            size_t m = (lua_Integer)s.n < n ? s.n : (size_t)n;
            rdL_pushbytes(L, t->conn.loop->data, s.p, m);
            rd_framer_skip(f, m);
        }
    } else if (op == RDL_PULL_ALL) {
        lua_pushlstring(L, s.p, s.n);
        rd_framer_skip(f, s.n);
    } else {
        luaL_argerror(L, 2, "unknown operation");
    }
    if (held && rd_framer_keep(f) < 0) luaL_error(L, "not enough memory");
}

/*{====================================================================
 * The Lua versions, called yieldably
 *=====================================================================*/

static int slow_done(lua_State *L, int status, lua_KContext ctx)
{
    (void)status, (void)ctx;
    return lua_gettop(L);
}

/* Hand every argument to the Lua version (upvalue 1) and return what it
 * returns; it may wait (yield), hence the continuation. A read's closure
 * passes what its pull gave (nil: not there yet; false: too long) as one
 * more argument. */
static int slow(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_callk(L, n, LUA_MULTRET, 0, slow_done);
    return slow_done(L, LUA_OK, 0);
}

/*{====================================================================
 * The fast paths of one stream: closures over its transport
 *
 * Once a stream is connected, its own fields readuntil, readline,
 * readexactly and write are these (core._streambind): the transport is an
 * upvalue, the limit and "may write" flag are in it (core._streamset), and
 * a separator already checked is recognised by the framer holding it (its
 * address), so a read that the bytes satisfy touches no Lua table at all.
 *=====================================================================*/

/* upvalues: 1 the Lua version (see slow), 2 the transport */
static ltransport *bound(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(2));
}

/* Hand a read over without pulling: its Lua version gets pulled = true and
 * looks at the bytes held itself before it waits (the framer may hold
 * another separator, after a readline). */
static int unpulled_readuntil(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushboolean(L, 1);
    return slow(L);
}

static int unpulled_readline(lua_State *L)
{
    lua_settop(L, 1);
    lua_pushboolean(L, 1);
    return slow(L);
}

static int b_readuntil(lua_State *L)
{
    ltransport *t = bound(L);
    size_t dlen;
    /* the separator the framer holds is one the Lua version checked */
    if (!t->stream_reader && lua_isyieldable(L) && lua_gettop(L) == 2 &&
        lua_type(L, 2) == LUA_TSTRING && lua_tolstring(L, 2, &dlen) == t->in.delim &&
        dlen == t->in.dlen) {
        rd_span_t s;
        /* inside the read's delivery (the common case), straight from the framer */
        int r = t->in.in ? rdL_stream_next(t, 0, &s) : -2;
        if (r == 1) {
            rdL_pushbytes(L, t->conn.loop->data, s.p, s.n);
            return 1;
        }
        if (r == 0) { /* not there yet: the Lua version waits */
            lua_pushnil(L);
            return slow(L);
        }
        rdL_stream_pull(L, t, RDL_PULL_UNTIL, 2, t->stream_limit);
        if (lua_type(L, -1) == LUA_TSTRING) return 1;
        return slow(L); /* self, sep, what the pull gave */
    }
    return unpulled_readuntil(L);
}

static int b_readline(lua_State *L)
{
    ltransport *t = bound(L);
    if (!t->stream_reader && lua_isyieldable(L) && lua_gettop(L) == 1) {
        lua_pushliteral(L, "\n");
        rdL_stream_pull(L, t, RDL_PULL_LINE, 2, t->stream_limit);
        if (lua_type(L, -1) == LUA_TSTRING) return 1;
        lua_remove(L, 2);
        return slow(L); /* self, what the pull gave */
    }
    return unpulled_readline(L);
}

static int b_readexactly(lua_State *L)
{
    ltransport *t = bound(L);
    if (!t->stream_reader && lua_isyieldable(L) && lua_gettop(L) == 2 && lua_isinteger(L, 2) &&
        lua_tointeger(L, 2) >= 0) {
        rdL_stream_pull(L, t, RDL_PULL_EXACT, 2, 0);
        if (lua_type(L, -1) == LUA_TSTRING) return 1;
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    return slow(L);
}

static int b_write(lua_State *L)
{
    ltransport *t = bound(L);
    if (t->stream_wfast && t->conn.state == RD_OPEN && lua_type(L, 2) == LUA_TSTRING &&
        lua_gettop(L) == 2) {
        size_t n;
        const char *p = lua_tolstring(L, 2, &n);
        if (t->conn.out.size + n <= t->conn.high) { /* a write that crosses it must wait: Lua's */
            /* RD_ETOOBIG aborts it, and connectionLost says why */
            if (rd_conn_write(&t->conn, p, n) == -ENOMEM) return luaL_error(L, "not enough memory");
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    return slow(L);
}

/* core._streambind(transport, readuntil, readline, readexactly, write) ->
 * the four methods of the stream on that transport */
int rdL_streambind(lua_State *L)
{
    static const lua_CFunction fast[] = {b_readuntil, b_readline, b_readexactly, b_write};
    ltransport *t = lua_touserdata(L, 1);
    luaL_argexpected(L, t && lua_rawlen(L, 1) == sizeof *t && t->magic == RDL_TRANSPORT_MAGIC, 1,
                     "transport");
    for (int i = 0; i < 4; i++) {
        luaL_checktype(L, i + 2, LUA_TFUNCTION);
        lua_pushvalue(L, i + 2);
        lua_pushvalue(L, 1);
        lua_pushcclosure(L, fast[i], 2);
    }
    return 4;
}

/* core._streamset(transport, limit | nil, wfast | nil, reader | nil): reader
 * is a boolean, or the RDL_READER_UNTIL / _LINE of a task that waits for the
 * next frame at the framer's own separator */
int rdL_streamset(lua_State *L)
{
    ltransport *t = lua_touserdata(L, 1);
    luaL_argexpected(L, t && lua_rawlen(L, 1) == sizeof *t && t->magic == RDL_TRANSPORT_MAGIC, 1,
                     "transport");
    if (!lua_isnoneornil(L, 2)) t->stream_limit = luaL_checkinteger(L, 2);
    if (!lua_isnoneornil(L, 3)) t->stream_wfast = (unsigned char)lua_toboolean(L, 3);
    if (lua_type(L, 4) == LUA_TNUMBER) { /* RDL_READER_UNTIL or _LINE: waits for that frame */
        lua_Integer r = luaL_checkinteger(L, 4);
        luaL_argcheck(L, r == RDL_READER_UNTIL || r == RDL_READER_LINE, 4, "not a reader kind");
        t->stream_reader = (unsigned char)r;
    } else if (!lua_isnoneornil(L, 4))
        t->stream_reader = (unsigned char)lua_toboolean(L, 4);
    return 0;
}

/* core._streamfast(readuntil, readline, readexactly, write): the class's
 * four methods, each a C closure over its Lua version, so the Lua version
 * counts the same levels to its caller as a connected stream's own
 * (core._streambind); these only hand over (a stream that is not connected
 * has nothing to take at once), telling a read's Lua version that nothing
 * was pulled: Stream.readuntil(s, sep) on a connected s (a subclass calling
 * its parent's) must look at the bytes s holds before it waits. */
int rdL_streamfast(lua_State *L)
{
    static const lua_CFunction hand[] = {unpulled_readuntil, unpulled_readline, slow, slow};
    for (int i = 1; i <= 4; i++) {
        luaL_checktype(L, i, LUA_TFUNCTION);
        lua_pushvalue(L, i);
        lua_pushcclosure(L, hand[i - 1], 1);
    }
    return 4;
}

/* core._untail(fn) -> a C function calling fn with its arguments. A call
 * of a C function in a tail position keeps the caller's frame (a Lua
 * function's would replace it), so `return reactor.serve(...)` still has
 * the script's line on the stack for fn's errors (one level further up). */
static int untail(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

int rdL_untail(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushcclosure(L, untail, 1);
    return 1;
}
