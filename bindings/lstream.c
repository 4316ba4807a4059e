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
    if (d != f->delim) rdL_keepdelim(L, t, argidx); /* the framer will point at it */
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
    int r = rd_framer_until(f, f->delim, f->dlen, t->stream_limit, s);
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
 * The one resume of a task, and the reader's wait and wake in C
 *
 * task.lua's step (enter, resume through the watchdog, settle) costs
 * several Lua calls at every wake of a stream's reader; here it is one C
 * function that keeps task.lua's bookkeeping (R[1], the current task; the
 * in-flight list) itself for the common outcome, a task that waits again
 * (yields WAIT, no cancel pending), and hands every other outcome to the
 * Lua settle (done, failed, cancel, a bare yield). Every resume of a task,
 * from Lua (task.wake, spawn, reactor.http's task._step) or from a read
 * (read_stream), goes through it. A resume the watchdog stops raises from
 * here with the task left in the in-flight list, as the Lua step did, so
 * reap() still finishes it.
 *=====================================================================*/

enum { RDL_R_CURRENT = 1 }; /* task.lua's R[CURRENT]: the running task */

static void tk_push(lua_State *L, lreactor *lr, int i)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->task_refs[i]);
}

/* the watchdog stopped the task at *ud: it goes on the in-flight list, for
 * reap() to finish (its joiners wake, its streams close); R.current stays
 * it, which tells reap there is something to do; the list is empty but
 * for these, so a step looks at it only after a trip (task_stale) */
struct stopped_ud {
    lreactor *lr;
    int tidx;
};

static void stopped(lua_State *L, void *ud)
{
    lreactor *lr = ((struct stopped_ud *)ud)->lr;
    tk_push(L, lr, RDL_TK_INFLIGHT);
    /* outermost last, as reap finishes them from the end: the error meets
     * the innermost first, so each one goes in front */
    for (lua_Integer i = (lua_Integer)lua_rawlen(L, -1); i > 0; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, ((struct stopped_ud *)ud)->tidx);
    lua_rawseti(L, -2, 1);
    lua_pop(L, 1);
    lr->task_stale = 1;
}

void rdL_taskstep(lua_State *L, lreactor *lr, int tidx, int nargs)
{
    tidx = lua_absindex(L, tidx);
    luaL_checkstack(L, 10, NULL);
    int a = lua_gettop(L) - nargs + 1; /* the first argument */
    int R = a, prev = a + 1, coidx = a + 2;
    if (lr->task_stale) { /* enter's reap: tasks a watchdog trip left behind */
        tk_push(L, lr, RDL_TK_INFLIGHT);
        if (lua_rawlen(L, -1) > 0) {
            tk_push(L, lr, RDL_TK_REAP);
            lua_call(L, 0, 0);
        }
        lr->task_stale = lua_rawlen(L, -1) > 0; /* (reap leaves them inside a coroutine) */
        lua_pop(L, 1);
    }
    tk_push(L, lr, RDL_TK_R);
    lua_rawgeti(L, -1, RDL_R_CURRENT);
    lua_rawgeti(L, tidx, RDL_T_CO); /* held here while it runs */
    lua_rotate(L, a, 3);            /* R, prev, co, the arguments */
    lua_pushvalue(L, tidx);
    lua_rawseti(L, R, RDL_R_CURRENT);
    lua_State *co = lua_tothread(L, coidx);
    int status = co ? lua_status(co) : LUA_ERRRUN, nres = 0, ok, nv;
    if (!co || (status != LUA_OK && status != LUA_YIELD) ||
        (status == LUA_OK && lua_gettop(co) == 0) || !lua_checkstack(co, nargs)) {
        lua_settop(L, coidx); /* what core._resume says */
        lua_pushliteral(L, "cannot resume dead coroutine");
        ok = 0, nv = 1;
    } else {
        struct stopped_ud ud = {lr, tidx};
        status = rdL_coresume(lr, L, co, nargs, &nres, stopped, &ud);
        if (status == LUA_YIELD && nres == 1 && lua_topointer(co, -1) == lr->task_wait) {
            lua_rawgeti(L, tidx, RDL_T_CANCELPENDING);
            int cp = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (!cp) { /* it waits again: settle's common case, here, WAIT left in co */
                lua_pop(co, 1);
                lua_pushvalue(L, prev);
                lua_rawseti(L, R, RDL_R_CURRENT);
                lua_settop(L, a - 1);
                return;
            }
        }
        ok = status == LUA_OK || status == LUA_YIELD;
        nv = ok ? nres : 1;
        if (!lua_checkstack(L, nv + 6)) {
            lua_pop(co, nv);
            lua_pushliteral(L, "too many results to resume");
            ok = 0, nv = 1;
        } else {
            lua_xmove(co, L, nv);
        }
    }
    /* settle(t, prev, ok, ...): every other outcome, a wait with a cancel pending too */
    tk_push(L, lr, RDL_TK_SETTLE);
    lua_pushvalue(L, tidx);
    lua_pushvalue(L, prev);
    lua_pushboolean(L, ok);
    lua_rotate(L, coidx + 1, 4);
    lua_call(L, 3 + nv, 0);
    lua_settop(L, a - 1);
}

/* step(t, ...): upvalue 1, the loop */
static int l_taskstep(lua_State *L)
{
    lreactor *lr = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    rdL_taskstep(L, lr, 1, lua_gettop(L) - 1);
    return 0;
}

/* core._taskinit(R, inflight, WAIT, settle, reap) -> step(t, ...) */
int rdL_taskinit(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE); /* WAIT: told by its address (task_wait) */
    luaL_checktype(L, 4, LUA_TFUNCTION);
    luaL_checktype(L, 5, LUA_TFUNCTION);
    for (int i = 0; i < RDL_NTK; i++) {
        if (lr->task_ready) luaL_unref(L, LUA_REGISTRYINDEX, lr->task_refs[i]);
        lua_pushvalue(L, i + 1);
        lr->task_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lr->task_ready = 1;
    lr->task_wait = lua_topointer(L, 3); /* (kept alive by its ref) */
    lua_pushlightuserdata(L, lr);
    lua_pushcclosure(L, l_taskstep, 1);
    return 1;
}

/* Begin t's C wait (a reader of the framer's separator, line or not):
 * -> its wait number, for task.waiting */
static lua_Integer cwait_begin(lreactor *lr, ltransport *t, int line)
{
    if (++lr->wait_seq == 0) lr->wait_seq = 1; /* 0 is "no wait" */
    t->in.user = lr->wait_seq;
    t->stream_wline = line ? 1 : 0;
    t->stream_reader = line ? RDL_READER_LINE : RDL_READER_UNTIL;
    return RDL_CWAIT_BASE + t->in.user;
}

/* The reader's wait, in C: stream.lua's waitnow, when Lua allows it
 * (stream_rfast: open, no EOF, no timeout, not paused, not stopping) and
 * L is the current task's own coroutine; self at 1. The wait's number, op
 * and separator stay in t (in.user, the framer's spare word; the framer holds the separator), so
 * of the stream's fields only its reader (s[RTASK]) is set.
 * -> 1 with WAIT pushed (the caller yields it), 0 if Lua must wait. The
 * wake's values are the read's results (no continuation). */
static int cwait(lua_State *L, ltransport *t, int line)
{
    lreactor *lr = t->conn.loop->data;
    if (!t->stream_rfast || !lr->task_ready || t->conn.state != RD_OPEN ||
        lua_type(L, 1) != LUA_TTABLE)
        return 0;
    int top = lua_gettop(L);
    tk_push(L, lr, RDL_TK_R);
    int task = top + 2;
    if (lua_rawgeti(L, top + 1, RDL_R_CURRENT) != LUA_TTABLE) goto no;
    lua_rawgeti(L, task, RDL_T_CO);
    if (lua_tothread(L, -1) != L) goto no;
    /* (the stream's reader is false: stream_reader is clear, which b_readuntil checked) */
    lua_settop(L, task);
    lua_pushinteger(L, cwait_begin(lr, t, line));
    lua_rawseti(L, task, RDL_T_WAITING);
    lua_pushvalue(L, task);
    lua_rawseti(L, 1, RDL_S_RTASK);
    /* a cancel's release: the C wake leaves it set (stream.lua's releasereader
     * checks that the task is still the reader), so the next wait on this
     * stream usually finds it there */
    lua_rawgeti(L, task, RDL_T_CLEANOBJ);
    lua_rawgeti(L, task, RDL_T_CLEANUP);
    if (!lua_rawequal(L, -2, 1) || !lua_rawequal(L, -1, lua_upvalueindex(3))) {
        lua_pushvalue(L, lua_upvalueindex(3)); /* releasereader */
        lua_rawseti(L, task, RDL_T_CLEANUP);
        lua_pushvalue(L, 1);
        lua_rawseti(L, task, RDL_T_CLEANOBJ);
    }
    lua_settop(L, top);
    tk_push(L, lr, RDL_TK_WAIT);
    return 1;
no:
    lua_settop(L, top);
    return 0;
}

int rdL_stream_wakereader(lua_State *L, lreactor *lr, ltransport *t, int self)
{
    if (!lr->task_ready || !t->in.user) return 0;
    int top = lua_gettop(L); /* the frame */
    int task = top + 1;
    if (lua_rawgeti(L, self, RDL_S_RTASK) != LUA_TTABLE) goto no;
    int isnum;
    lua_Integer w = (lua_rawgeti(L, task, RDL_T_WAITING), lua_tointegerx(L, -1, &isnum));
    if (!isnum || w != RDL_CWAIT_BASE + t->in.user) goto no;
    /* not suspended: it runs (task.lua's active), and Lua's early wake keeps the frame */
    lua_rawgeti(L, task, RDL_T_CO);
    lua_State *co = lua_tothread(L, -1);
    if (!co || lua_status(co) != LUA_YIELD) goto no;
    lua_settop(L, task);
    /* readReady's wake and task.wake1, to the one resume */
    t->in.user = 0;
    lua_pushboolean(L, 0);
    lua_rawseti(L, self, RDL_S_RTASK);
    lua_pushboolean(L, 0);
    lua_rawseti(L, task, RDL_T_WAITING); /* (cleanup stays: see cwait) */
    lua_insert(L, top);                  /* task, frame */
    rdL_taskstep(L, lr, top, 1);
    lua_settop(L, top - 1);
    return 1;
no:
    lua_settop(L, top);
    return 0;
}

/* core._streamwait(transport, line) -> n: stream.lua's waitnow begins a
 * C wait (the read takes the frame in C) and sets task.waiting to n */
int rdL_streamwait(lua_State *L)
{
    ltransport *t = rdL_totransport(L, 1);
    luaL_argexpected(L, t, 1, "transport");
    lua_pushinteger(L, cwait_begin(t->conn.loop->data, t, lua_toboolean(L, 2)));
    return 1;
}

/* core._streamwaiter(transport) -> n, op, separator of the C wait, or
 * nothing: what stream.lua keeps in rn, rop and rarg for a wait of its own */
int rdL_streamwaiter(lua_State *L)
{
    ltransport *t = rdL_totransport(L, 1);
    luaL_argexpected(L, t, 1, "transport");
    if (!t->in.user) return 0;
    lua_pushinteger(L, RDL_CWAIT_BASE + t->in.user);
    if (t->stream_wline) {
        lua_pushliteral(L, "line");
        lua_pushliteral(L, "\n");
    } else {
        lua_pushliteral(L, "until");
        lua_pushlstring(L, t->in.delim, t->in.dlen);
    }
    return 3;
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

/* upvalues: 1 the Lua version (see slow), 2 the transport, 3 (reads)
 * stream.lua's releasereader, a C-waiting reader's cleanup on cancel */
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
        if (r == 0) { /* not there yet: wait here, or in the Lua version */
            if (cwait(L, t, 0)) return lua_yield(L, 1);
            lua_pushnil(L);
            return slow(L);
        }
        rdL_stream_pull(L, t, RDL_PULL_UNTIL, 2, t->stream_limit);
        if (lua_type(L, -1) == LUA_TSTRING) return 1;
        if (lua_isnil(L, -1) && cwait(L, t, 0)) return lua_yield(L, 1);
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
        if (lua_isnil(L, -1) && cwait(L, t, 1)) return lua_yield(L, 1);
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
            if (rdL_conn_writestring(L, &t->conn, 2, p, n) == -ENOMEM)
                return luaL_error(L, "not enough memory");
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    return slow(L);
}

/* core._streambind(transport, readuntil, readline, readexactly, write,
 * releasereader) -> the four methods of the stream on that transport */
int rdL_streambind(lua_State *L)
{
    static const lua_CFunction fast[] = {b_readuntil, b_readline, b_readexactly, b_write};
    ltransport *t = rdL_totransport(L, 1);
    luaL_argexpected(L, t, 1, "transport");
    luaL_checktype(L, 6, LUA_TFUNCTION);
    for (int i = 0; i < 4; i++) {
        luaL_checktype(L, i + 2, LUA_TFUNCTION);
        lua_pushvalue(L, i + 2);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 6);
        lua_pushcclosure(L, fast[i], 3);
    }
    return 4;
}

/* core._streamset(transport, limit | nil, wfast | nil, reader | nil,
 * rfast | nil): reader, a boolean, is a wait of Lua's own (true) or none
 * (false), and either ends a C wait (a wait whose frame is taken in C
 * begins in cwait_begin); rfast: may a readuntil/readline wait in C (cwait) */
int rdL_streamset(lua_State *L)
{
    ltransport *t = rdL_totransport(L, 1);
    luaL_argexpected(L, t, 1, "transport");
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer n = luaL_checkinteger(L, 2);
        t->stream_limit = n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    if (!lua_isnoneornil(L, 3)) t->stream_wfast = (unsigned char)lua_toboolean(L, 3);
    if (!lua_isnoneornil(L, 4)) {
        t->stream_reader = lua_toboolean(L, 4) ? RDL_READER_BUSY : RDL_READER_NONE;
        t->in.user = 0;
    }
    if (!lua_isnoneornil(L, 5)) t->stream_rfast = lua_toboolean(L, 5) ? 1 : 0;
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
