/*
 * ltesting.c: reactor.core._testing(), the C half of reactor.testing. Not a
 * Lua imitation of a transport: a test's connection is the real Transport
 * (rd_conn_t, ldispatch.c's callbacks, the framers, flow control) on one
 * end of a socketpair, and the other end is either another Transport
 * (testing.pair) or a Socket the kit reads and writes itself
 * (testing.connect). Time is core's virtual clock (core/rd_clock.c).
 *
 * Every function that runs the loop (flush, wait, Clock:advance, adopt)
 * runs callbacks on the calling thread, as reactor.run() does, and refuses
 * to run inside reactor.run().
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rdlua.h"

#define RDL_TSOCKET "reactor.testing.Socket"
#define RDL_TCLOCK "reactor.testing.Clock"

/* Callbacks run on L while the kit runs the loop (lr->L is the thread
 * they run on, as in l_run); back to the previous one after. */
typedef struct {
    lreactor *lr;
    lua_State *outer;
} running;

static running enter(lua_State *L, lreactor *lr, const char *what)
{
    if (lr->running)
        luaL_error(L, "reactor.testing: %s runs the loop itself: not from inside reactor.run()",
                   what);
    running r = {lr, lr->L};
    lr->L = L;
    return r;
}

static void leave(running r)
{
    r.lr->L = r.outer;
}

/*{====================================================================
 * Socket: the test's end of a socketpair
 *=====================================================================*/

typedef struct {
    int fd; /* -1 once closed or given to a transport */
} tsocket;

static tsocket *checksock(lua_State *L, int i)
{
    return luaL_checkudata(L, i, RDL_TSOCKET);
}

static tsocket *newsock(lua_State *L, int fd)
{
    tsocket *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->fd = fd;
    luaL_setmetatable(L, RDL_TSOCKET);
    return s;
}

/* socketpair() -> two Sockets (AF_UNIX stream, non-blocking) */
static int t_socketpair(lua_State *L)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return rdL_pushfail(L, -errno, "socketpair");
    newsock(L, sv[0]);
    newsock(L, sv[1]);
    return 2;
}

/* send(bytes [, from]) -> bytes written from `from` on (0 when the buffer
 * is full) | nil, "EPIPE: ...", "EPIPE" */
static int sock_send(lua_State *L)
{
    tsocket *s = checksock(L, 1);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    lua_Integer from = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, from >= 1 && (size_t)from <= len + 1, 3, "out of range");
    if (s->fd < 0) return rdL_pushfail(L, RD_ECLOSED, "testing socket");
    size_t off = (size_t)from - 1, sent = 0;
    while (off + sent < len) {
        ssize_t n = send(s->fd, p + off + sent, len - off - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return rdL_pushfail(L, -errno, "testing socket");
        }
        sent += (size_t)n;
    }
    lua_pushinteger(L, (lua_Integer)sent);
    return 1;
}

/* recv() -> every byte waiting (maybe ""), and whether the peer has gone
 * (its FIN, or an error such as a reset: then its name third) */
static int sock_recv(lua_State *L)
{
    tsocket *s = checksock(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int gone = s->fd < 0, err = 0;
    while (!gone) {
        char *p = luaL_prepbuffsize(&b, 65536);
        ssize_t n = recv(s->fd, p, 65536, 0);
        if (n > 0) {
            luaL_addsize(&b, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) err = -errno;
        gone = 1;
    }
    luaL_pushresult(&b);
    lua_pushboolean(L, gone);
    if (err) {
        lua_pushstring(L, rd_err_name(err));
        return 3;
    }
    return 2;
}

/* shutdown(): our FIN (the transport's peer half-closes) */
static int sock_shutdown(lua_State *L)
{
    tsocket *s = checksock(L, 1);
    lua_pushboolean(L, s->fd >= 0 && shutdown(s->fd, SHUT_WR) == 0);
    return 1;
}

/* close([reset]): hang up; with reset, an RST instead of a FIN where the
 * socket can give one (a Unix socket cannot: the transport sees a FIN) */
static int sock_close(lua_State *L)
{
    tsocket *s = checksock(L, 1);
    if (s->fd < 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    close(s->fd);
    s->fd = -1;
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_closed(lua_State *L)
{
    lua_pushboolean(L, checksock(L, 1)->fd < 0);
    return 1;
}

static int sock_gc(lua_State *L)
{
    tsocket *s = checksock(L, 1);
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    return 0;
}

/*{====================================================================
 * Transports over a socketpair
 *=====================================================================*/

static void checkaddr(lua_State *L, int i, rd_addr_t *a)
{
    const char *host = luaL_checkstring(L, i);
    lua_Integer port = luaL_checkinteger(L, i + 1);
    luaL_argcheck(L, port >= 0 && port <= 65535, i + 1, "port must be 0..65535");
    if (rd_addr_parse(a, host, (int)port) < 0) luaL_argerror(L, i, "a numeric address");
}

static size_t optsize(lua_State *L, int opts, const char *name, size_t def)
{
    if (lua_type(L, opts) != LUA_TTABLE) return def;
    lua_getfield(L, opts, name);
    lua_Integer v = lua_isnil(L, -1) ? (lua_Integer)def : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v < 0 ? def : (size_t)v;
}

/* adopt(socket, factory, peerhost, peerport, host, port [, connector [, opts]])
 * -> transport, protocol | nil: the socket's fd becomes a connection of
 * factory's, as if accepted (or connected, with a connector: then a
 * ClientFactory's clientConnectionLost hears of its end). opts: highWater,
 * lowWater, maxOutput, idleTimeout, as a listener gives them. */
static int t_adopt(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    tsocket *s = checksock(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    rd_addr_t peer, host;
    checkaddr(L, 3, &peer);
    checkaddr(L, 5, &host);
    int outgoing = !lua_isnoneornil(L, 7);
    lua_settop(L, 8);
    if (s->fd < 0) return luaL_argerror(L, 1, "the socket is closed");
    size_t high = optsize(L, 8, "highWater", RD_HIGH_WATER);
    size_t low = optsize(L, 8, "lowWater", RD_LOW_WATER);
    size_t max_out = optsize(L, 8, "maxOutput", RD_MAX_OUTPUT);
    double idle = 0;
    if (lua_type(L, 8) == LUA_TTABLE && lua_getfield(L, 8, "idleTimeout") != LUA_TNIL)
        idle = luaL_checknumber(L, -1);
    lua_settop(L, 8);
    running run = enter(L, lr, "testing.connect");
    ltransport *t = rdL_newtransport(L, lr, outgoing ? 3 : 2); /* at 9 */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 9, RDL_UV_FACTORY);
    if (outgoing) {
        lua_pushvalue(L, 7);
        lua_setiuservalue(L, 9, RDL_UV_CONNECTOR);
        t->outgoing = 1;
    }
    /* the socketpair's own name says nothing: getHost answers this */
    rdL_weakkeys(L, RDL_FAKEHOST_KEY);
    lua_pushvalue(L, 9);
    *(rd_addr_t *)lua_newuserdatauv(L, sizeof host, 0) = host;
    lua_rawset(L, -3);
    lua_pop(L, 1);
    t->fakehost = 1;
    rdL_transport_setup(t);
    rd_conn_init(&t->conn, &lr->loop, s->fd, &peer);
    s->fd = -1;
    rd_conn_marks(&t->conn, high, low > high ? high : low, max_out);
    int timed = idle > 0 ? rd_conn_set_timeout(&t->conn, idle) : 0;
    rdL_made(t);
    if (timed < 0 && t->conn.state == RD_OPEN) rd_conn_close(&t->conn, RD_LOST, timed);
    if (t->conn.state == RD_OPEN) rd_conn_start(&t->conn);
    leave(run);
    if (t->made)
        lua_getiuservalue(L, 9, RDL_UV_PROTOCOL);
    else
        lua_pushnil(L);
    return 2;
}

static const char *const states[] = {"", "connecting", "open", "closing", "closed"};

/* state(transport) -> "open" | "closing" | "closed" | "connecting",
 * paused by the protocol, paused by flow control, the peer's FIN seen,
 * bytes queued */
static int t_state(lua_State *L)
{
    /* by its size and callbacks: a closing transport may wear another metatable */
    ltransport *t = rdL_totransport(L, 1);
    if (!t) return luaL_typeerror(L, 1, RDL_TRANSPORT);
    const rd_conn_t *c = &t->conn;
    lua_pushstring(L, c->state >= RD_CONNECTING && c->state <= RD_CLOSED ? states[c->state] : "?");
    lua_pushboolean(L, c->user_paused);
    lua_pushboolean(L, c->flow_paused);
    lua_pushboolean(L, c->eof);
    lua_pushinteger(L, (lua_Integer)c->out.size);
    return 5;
}

/*{====================================================================
 * Running the loop
 *=====================================================================*/

/* What a clock's heap top is, when it is a callLater's: "the function at
 * FILE:LINE" (or "obj:method scheduled at FILE:LINE"), for an error that
 * names a runaway. Pushes nil otherwise. */
static void pushnext(lua_State *L, lreactor *lr)
{
    rd_loop_t *loop = &lr->loop;
    ltimer *t = NULL;
    if (loop->clock)
        for (rd_link_t *l = loop->timers.next; l != &loop->timers; l = l->next) {
            rd_timer_t *rt = rd__container(l, rd_timer_t, link);
            if (rt->tw.slot == 1) { /* the heap's top */
                t = rd__container(rt, ltimer, timer);
                break;
            }
        }
    if (!t || t->ref == LUA_NOREF) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, 1);
    if (lua_getfield(L, -1, "site") == LUA_TSTRING) { /* callLater(delay, obj, "name") */
        lua_geti(L, -2, 2);
        lua_pushfstring(L, "method '%s' scheduled at %s", lua_tostring(L, -1), lua_tostring(L, -2));
    } else {
        lua_geti(L, -2, 1);
        lua_Debug ar;
        if (lua_isfunction(L, -1)) {
            lua_pushvalue(L, -1);
            lua_getinfo(L, ">S", &ar);
            if (ar.linedefined > 0)
                lua_pushfstring(L, "the function at %s:%d", ar.short_src, ar.linedefined);
            else
                lua_pushfstring(L, "a %s function", ar.what);
        } else {
            lua_pushliteral(L, "a callable object");
        }
    }
    lua_replace(L, -5); /* ud, call, site, fn|name, text: the text in ud's place */
    lua_pop(L, 3);
}

/* nil, "timers" | "io", what is due next: RD_ETOOBIG's account */
static int pushstuck(lua_State *L, lreactor *lr)
{
    rd_clock_t *k = lr->loop.clock;
    lua_pushnil(L);
    lua_pushstring(L, k && k->stuck == 1 ? "timers" : "io");
    pushnext(L, lr);
    return 3;
}

/* flush([max]) -> true | nil, "timers" | "io", next: run without waiting
 * until quiet (rd_loop_flush) */
static int t_flush(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_Integer max = luaL_optinteger(L, 1, 10000);
    running run = enter(L, lr, "pump:flush");
    int r = rd_loop_flush(&lr->loop, max > 0 ? (unsigned)max : 1);
    leave(run);
    if (r < 0) return pushstuck(L, lr);
    lua_pushboolean(L, 1);
    return 1;
}

static void wait_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)w, (void)revents;
}

/* wait(seconds): one iteration of the loop that waits for an event, at
 * most `seconds` of real time (on libev's clock) */
static int t_wait(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    double secs = luaL_checknumber(L, 1);
    running run = enter(L, lr, "testing.run_until");
    ev_timer guard;
    ev_timer_init(&guard, wait_cb, secs > 0 ? secs : 0, 0.);
    ev_timer_start(lr->loop.ev, &guard);
    rd_loop_step(&lr->loop, 1);
    ev_timer_stop(lr->loop.ev, &guard);
    leave(run);
    return 0;
}

/* realtime() -> libev's clock, whatever clock timers run on */
static int t_realtime(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    ev_now_update(lr->loop.ev);
    lua_pushnumber(L, ev_now(lr->loop.ev));
    return 1;
}

/*{====================================================================
 * Clock: core's virtual clock as a userdata, pinned while installed
 *=====================================================================*/

typedef struct {
    rd_clock_t k;
    int ref;
} tclock;

static tclock *checkclock(lua_State *L)
{
    return luaL_checkudata(L, 1, RDL_TCLOCK);
}

/* clock([start]) -> a Clock at start seconds (0), not installed */
static int t_clock(lua_State *L)
{
    double start = luaL_optnumber(L, 1, 0);
    tclock *c = lua_newuserdatauv(L, sizeof *c, 0);
    rd_clock_init(&c->k, start);
    c->ref = LUA_NOREF;
    luaL_setmetatable(L, RDL_TCLOCK);
    return 1;
}

/* installed() -> the Clock timers run on now, or nil */
static int t_installed(lua_State *L)
{
    rd_clock_t *k = rdL_reactor(L)->loop.clock;
    if (!k) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, rd__container(k, tclock, k)->ref);
    return 1;
}

static int clock_install(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    tclock *c = checkclock(L);
    int r = rd_loop_set_clock(&lr->loop, &c->k);
    if (r < 0) return rdL_pushfail(L, r, "virtual clock");
    rdL_pin(L, 1, &c->ref);
    lua_pushboolean(L, 1);
    return 1;
}

static int clock_uninstall(lua_State *L)
{
    tclock *c = checkclock(L);
    int was = c->k.loop != NULL;
    if (was) rd_loop_set_clock(c->k.loop, NULL);
    rdL_unpin(L, &c->ref);
    lua_pushboolean(L, was);
    return 1;
}

/* advance_to(t) -> true | nil, "timers" | "io", next */
static int clock_advance_to(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    tclock *c = checkclock(L);
    double at = luaL_checknumber(L, 2);
    if (!c->k.loop) return luaL_error(L, "reactor.testing: the clock is not installed");
    running run = enter(L, lr, "clock:advance");
    int r = rd_clock_advance_to(&c->k, at);
    leave(run);
    if (r < 0) return pushstuck(L, lr);
    lua_pushboolean(L, 1);
    return 1;
}

static int clock_now(lua_State *L)
{
    lua_pushnumber(L, checkclock(L)->k.now);
    return 1;
}

/* next() -> the next deadline, or nil when no timer is started */
static int clock_next(lua_State *L)
{
    double at = rd_clock_next(&checkclock(L)->k);
    if (isinf(at)) return 0;
    lua_pushnumber(L, at);
    return 1;
}

static int clock_pending(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)checkclock(L)->k.n);
    return 1;
}

static int clock_fired(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)checkclock(L)->k.fired);
    return 1;
}

static int clock_autojump(lua_State *L)
{
    tclock *c = checkclock(L);
    rd_clock_autojump(&c->k, lua_isnone(L, 2) || lua_toboolean(L, 2));
    return 0;
}

static int clock_gc(lua_State *L)
{
    rd_clock_destroy(&checkclock(L)->k); /* back to libev's clock first, if installed */
    return 0;
}

/*{====================================================================
 * Log records into a table (a test reads them in order with its own output)
 *=====================================================================*/

#define RDL_TLOG_KEY "reactor.testing.log" /* registry: the capture, while on */

typedef struct {
    lreactor *lr;
    reactor_log_fn log; /* what it replaced */
    void *log_ud;
    int ref; /* the table records go to */
} tcapture;

static void capture_log(void *ud, const char *line)
{
    tcapture *c = ud;
    lua_State *L = c->lr->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    lua_pushstring(L, line);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* _log(t | nil): the reactor's log records (C's and core.log's) go to the
 * end of table t as strings, without a prefix, instead of where they went;
 * nil puts the previous logger back. */
static int t_log(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, RDL_TLOG_KEY) == LUA_TUSERDATA) {
        tcapture *old = lua_touserdata(L, -1);
        lr->log = old->log;
        lr->log_ud = old->log_ud;
        luaL_unref(L, LUA_REGISTRYINDEX, old->ref);
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, RDL_TLOG_KEY);
    }
    if (lua_isnoneornil(L, 1)) return 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    tcapture *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->lr = lr;
    c->log = lr->log;
    c->log_ud = lr->log_ud;
    lua_pushvalue(L, 1);
    c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_setfield(L, LUA_REGISTRYINDEX, RDL_TLOG_KEY);
    lr->log = capture_log;
    lr->log_ud = c;
    return 0;
}

/*{====================================================================
 * reactor.core._testing()
 *=====================================================================*/

int rdL_testing(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"_socketpair", t_socketpair},
        {"_adopt", t_adopt},
        {"_state", t_state},
        {"flush", t_flush},
        {"_wait", t_wait},
        {"_realtime", t_realtime},
        {"clock", t_clock},
        {"_installed", t_installed},
        {"_log", t_log},
        {NULL, NULL},
    };
    static const luaL_Reg smethods[] = {
        {"_send", sock_send},   {"_recv", sock_recv},     {"_shutdown", sock_shutdown},
        {"_close", sock_close}, {"_closed", sock_closed}, {NULL, NULL},
    };
    static const luaL_Reg cmethods[] = {
        {"_install", clock_install},
        {"uninstall", clock_uninstall},
        {"_advance_to", clock_advance_to},
        {"now", clock_now},
        {"next", clock_next},
        {"pending", clock_pending},
        {"_fired", clock_fired},
        {"autojump", clock_autojump},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, RDL_TSOCKET)) {
        lua_pushcfunction(L, sock_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, smethods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, RDL_TCLOCK)) {
        lua_pushcfunction(L, clock_gc);
        lua_setfield(L, -2, "__gc");
        luaL_newlibtable(L, cmethods);
        lua_pushvalue(L, lua_upvalueindex(1));
        luaL_setfuncs(L, cmethods, 1); /* install and advance need the loop */
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlibtable(L, funcs);
    lua_pushvalue(L, lua_upvalueindex(1));
    luaL_setfuncs(L, funcs, 1);
    return 1;
}
