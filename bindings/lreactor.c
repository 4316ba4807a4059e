/*
 * lreactor.c: reactor.core, the C half of the Lua module. One loop per
 * lua_State, kept in the registry so that nothing else (not even the module
 * table) has to outlive it; created before any object that refers to it, so
 * at lua_close it is finalized last.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rdlua.h"

static const struct {
    const char *name;
    int signum;
} signals[RDL_NSIGNALS] = {
    {"SIGINT", SIGINT},   {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGQUIT", SIGQUIT},
};

lreactor *rdL_reactor(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int loop_gc(lua_State *L)
{
    lreactor *lr = luaL_checkudata(L, 1, RDL_LOOP);
    rdL_watchdog_stop(lr); /* joined first: the thread reads lr until then */
    if (lr->loop.ev) ev_timer_stop(lr->loop.ev, &lr->step_timer);
    for (int i = 0; i < RDL_NSIGNALS; i++)
        rd_signal_stop(&lr->signals[i]);
    rd_loop_destroy(&lr->loop);
    return 0;
}

/*{====================================================================
 * run / stop
 *=====================================================================*/

/* reactor.stop(): every listener closes, every connection flushes what it
 * can and gets connectionLost, every pending call is cancelled, so the next
 * run() starts clean. */
static void shutdown_all(lua_State *L, lreactor *lr)
{
    rd_loop_t *loop = &lr->loop;
    for (int round = 0; round < 8; round++) { /* lost handlers may schedule more */
        while (loop->listeners.next != &loop->listeners)
            rdL_listener_close(L, rd__container(loop->listeners.next, rd_listener_t, link));
        while (loop->udps.next != &loop->udps)
            rdL_udp_close(L, rd__container(loop->udps.next, rd_udp_t, link));
        while (loop->conns.next != &loop->conns)
            rd_conn_finish(rd__container(loop->conns.next, rd_conn_t, link));
        rd_loop_settle(loop);
        while (loop->timers.next != &loop->timers)
            rdL_timer_cancel(L, rd__container(loop->timers.next, rd_timer_t, link));
        if (loop->nconns == 0 && loop->nlisteners == 0 && loop->nudps == 0) break;
    }
}

static int l_run(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    if (lr->running) return luaL_error(L, "reactor is already running");
    lua_State *outer = lr->L;
    lr->L = L; /* callbacks run on the thread that called run() */
    lr->running = 1;
    lr->stopping = 0;
    rdL_watchdog_start(lr, L);
    rd_loop_run(&lr->loop);
    if (lr->stopping) shutdown_all(L, lr);
    lr->running = 0;
    lr->stopping = 0;
    lr->L = outer;
    return 0;
}

/* the step timer only wakes the loop */
static void step_timeout(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)w, (void)revents;
}

/* One iteration (reactor.iterate, rd_step): callbacks run on L, as under
 * run(); a stop() from one of them shuts down as run's does. */
static int iterate(lua_State *L, lreactor *lr, double timeout)
{
    if (lr->running) return -1;
    lua_State *outer = lr->L;
    lr->L = L;
    lr->running = 1;
    lr->stopping = 0;
    rdL_watchdog_start(lr, L);
    if (timeout > 0) { /* EVRUN_ONCE waits for one event: this is one */
        ev_timer_set(&lr->step_timer, timeout, 0.);
        ev_timer_start(lr->loop.ev, &lr->step_timer);
    }
    rd_loop_step(&lr->loop, timeout != 0);
    if (timeout > 0) ev_timer_stop(lr->loop.ev, &lr->step_timer);
    int stopped = lr->stopping;
    if (stopped) shutdown_all(L, lr);
    lr->running = 0;
    lr->stopping = 0;
    lr->L = outer;
    return stopped;
}

int reactor_iterate(lua_State *L, double timeout)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    lreactor *lr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return lr ? iterate(L, lr, timeout) : -1;
}

/* iterate([timeout]) -> stopped: one loop iteration for a host whose main
 * loop is Lua (a game's frame); waits at most timeout seconds (default 0:
 * never blocks; a negative one waits for an event). Listeners and
 * connections stay open, unlike run() with callLater(0, stop). */
static int l_iterate(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    double timeout = luaL_optnumber(L, 1, 0);
    int r = iterate(L, lr, timeout);
    if (r < 0)
        return luaL_error(L, "reactor.iterate: the reactor is already running (call it from the "
                             "main loop, not from a callback)");
    lua_pushboolean(L, r);
    return 1;
}

/* setLimits{scriptTimeout = s, maxConnections = n}: for every callback and
 * every listener of this reactor. */
static int l_setlimits(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "scriptTimeout") != LUA_TNIL) {
        double budget = luaL_checknumber(L, -1);
        if (budget != lr->budget) rdL_watchdog_stop(lr); /* restarts with the new budget */
        lr->budget = budget;
        if (lr->running) rdL_watchdog_start(lr, lr->L);
    }
    if (lua_getfield(L, 1, "maxConnections") != LUA_TNIL)
        lr->loop.max_conns = (size_t)luaL_checkinteger(L, -1);
    return 0;
}

/* connections() -> the protocol instances of every open connection */
static int l_connections(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_createtable(L, (int)lr->loop.nconns, 0);
    int n = 0;
    for (rd_link_t *l = lr->loop.conns.next; l != &lr->loop.conns; l = l->next) {
        ltransport *t = rd__container(rd__container(l, rd_conn_t, link), ltransport, conn);
        if (!t->made || t->ref == LUA_NOREF) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
        lua_getiuservalue(L, -1, RDL_UV_PROTOCOL);
        lua_rawseti(L, -3, ++n);
        lua_pop(L, 1);
    }
    return 1;
}

/* abortAll(): close every connection now (reason "aborted"). */
static int l_abortall(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    while (lr->loop.conns.next != &lr->loop.conns)
        rd_conn_close(rd__container(lr->loop.conns.next, rd_conn_t, link), RD_ABORTED, 0);
    rd_loop_settle(&lr->loop);
    return 0;
}

static int l_stop(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    if (!lr->running) return 0;
    lr->stopping = 1;
    rd_loop_break(&lr->loop);
    return 0;
}

static int l_running(lua_State *L)
{
    lua_pushboolean(L, rdL_reactor(L)->running);
    return 1;
}

/* _logerror(msg) -> taken: the report of a callback's error, to the host's
 * error callback if it set one (true); else false, and reactor.log sends
 * it to core.log (which a program may have replaced). */
static int l_logerror(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *msg = luaL_checkstring(L, 1);
    if (lr->on_error) lr->on_error(lr->error_ud, msg);
    lua_pushboolean(L, lr->on_error != NULL);
    return 1;
}

/* getpid(): this process's id (the seed's pid echo server prints it). */
static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* log(msg): one record through the reactor's logger, as C's own are. */
static int l_log(lua_State *L)
{
    rdL_log(rdL_reactor(L), "%s", luaL_checkstring(L, 1));
    return 0;
}

static int l_now(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    ev_now_update(lr->loop.ev);
    lua_pushnumber(L, rd_now(&lr->loop));
    return 1;
}

/* _stats(): live objects; each must come back to zero once released. */
static int l_stats(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, (lua_Integer)lr->ntransports);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)lr->ntimers);
    lua_setfield(L, -2, "timers");
    lua_pushinteger(L, (lua_Integer)lr->nlisteners);
    lua_setfield(L, -2, "listeners");
    lua_pushinteger(L, (lua_Integer)lr->nudps);
    lua_setfield(L, -2, "udp");
    lua_pushinteger(L, (lua_Integer)lr->nborrowed);
    lua_setfield(L, -2, "borrowed");
    lua_pushinteger(L, (lua_Integer)lr->loop.nconns);
    lua_setfield(L, -2, "open");
    lua_pushinteger(L, (lua_Integer)lr->loop.refused);
    lua_setfield(L, -2, "refused");
    lua_pushinteger(L, (lua_Integer)lua_gc(L, LUA_GCCOUNT) * 1024 + lua_gc(L, LUA_GCCOUNTB));
    lua_setfield(L, -2, "memory");
    lua_pushinteger(L, (lua_Integer)lr->reads);
    lua_setfield(L, -2, "reads");
    return 1;
}

/*{====================================================================
 * Signals: the handler runs from the loop, never in signal context
 *=====================================================================*/

static int tramp_signal(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    lreactor *lr = call->a;
    int i = (int)(intptr_t)call->b;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->signal_refs[i]);
    lua_pushstring(L, signals[i].name);
    lua_call(L, 1, 0);
    return 0;
}

static void on_signal(rd_signal_t *s)
{
    lreactor *lr = s->loop->data;
    int i = (int)(s - lr->signals);
    rdL_call call = {
        .fn = tramp_signal, .a = lr, .b = (void *)(intptr_t)i, .what = "signal handler"};
    rdL_pcall(lr, &call);
}

/* onSignal(name, fn|nil): fn(name) runs from the loop when the signal arrives. */
static int l_onsignal(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *name = luaL_checkstring(L, 1);
    int i;
    for (i = 0; i < RDL_NSIGNALS; i++)
        if (strcmp(name, signals[i].name) == 0 || strcmp(name, signals[i].name + 3) == 0) break;
    if (i == RDL_NSIGNALS) return luaL_argerror(L, 1, "unsupported signal name");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    rdL_unpin(L, &lr->signal_refs[i]);
    rd_signal_stop(&lr->signals[i]);
    if (!lua_isnoneornil(L, 2)) {
        rdL_pin(L, 2, &lr->signal_refs[i]);
        rd_signal_start(&lr->signals[i], &lr->loop, signals[i].signum, on_signal);
    }
    return 0;
}

/*{====================================================================
 * What a host sets before opening (reactor.h)
 *=====================================================================*/

static struct rdl_config *config(lua_State *L)
{
    struct rdl_config *cfg;
    if (lua_getfield(L, LUA_REGISTRYINDEX, RDL_CONFIG_KEY) == LUA_TUSERDATA) {
        cfg = lua_touserdata(L, -1);
    } else {
        cfg = lua_newuserdatauv(L, sizeof *cfg, 0);
        memset(cfg, 0, sizeof *cfg);
        lua_setfield(L, LUA_REGISTRYINDEX, RDL_CONFIG_KEY);
    }
    lua_pop(L, 1);
    return cfg;
}

void reactor_set_loop(lua_State *L, struct ev_loop *loop)
{
    config(L)->ev = loop;
}

void reactor_set_error(lua_State *L, reactor_log_fn fn, void *ud)
{
    struct rdl_config *cfg = config(L);
    cfg->on_error = fn;
    cfg->error_ud = ud;
    lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY); /* already open: takes effect now */
    lreactor *lr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (lr) {
        lr->on_error = fn;
        lr->error_ud = ud;
    }
}

void reactor_set_log(lua_State *L, reactor_log_fn fn, void *ud)
{
    struct rdl_config *cfg = config(L);
    cfg->log = fn;
    cfg->log_ud = ud;
    lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY); /* already open: takes effect now */
    lreactor *lr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (lr) {
        lr->log = fn;
        lr->log_ud = ud;
    }
}

int luaopen_reactor_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"listenTCP", rdL_listen},
        {"adoptTCP", rdL_adopttcp},
        {"connectTCP", rdL_connect},
        {"callLater", rdL_calllater},
        {"run", l_run},
        {"stop", l_stop},
        {"iterate", l_iterate},
        {"_logerror", l_logerror},
        {"running", l_running},
        {"now", l_now},
        {"log", l_log},
        {"getpid", l_getpid},
        {"traceback", rdL_traceback},
        {"errorMessage", rdL_errormessage},
        {"onSignal", l_onsignal},
        {"resolve", rdL_resolve},
        {"listenUDP", rdL_listenudp},
        {"listenUNIX", rdL_listenunix},
        {"stdio", rdL_stdio},
        {"connectUNIX", rdL_connectunix},
        {"watch", rdL_watch},
        {"failConnection", rdL_failconnection},
        {"setLimits", l_setlimits},
        {"connections", l_connections},
        {"abortAll", l_abortall},
        {"_stats", l_stats},
        {"_resume", rdL_resume},
        {"_streamfast", rdL_streamfast},
        {"_streambind", rdL_streambind},
        {"_streamset", rdL_streamset},
        {"_streamwait", rdL_streamwait},
        {"_streamwaiter", rdL_streamwaiter},
        {"_taskinit", rdL_taskinit},
        {"_untail", rdL_untail},
        {"_pull", rdL_transport_pull},
        {"_sendstring", rdL_sendstring},
        {"broadcast", rdL_broadcast},
        {"_addrless", rdL_addrless},
        {"_noops", rdL_noops},
        {"_testing", rdL_testing},
        {"_httplimits", rdL_httplimits},
        {"_httpheaders", rdL_httpheaders},
        {"_httpbuild", rdL_httpbuild},
        {"_httpresponse", rdL_httpresponse},
        {"_httpdechunk", rdL_httpdechunk},
        {NULL, NULL},
    };
    if (lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        struct rdl_config *cfg = config(L);
        lreactor *lr = lua_newuserdatauv(L, sizeof *lr, 0);
        memset(lr, 0, sizeof *lr);
        if (rd_loop_init(&lr->loop, cfg->ev) < 0)
            return luaL_error(L, "reactor: cannot create a loop");
        lr->log = cfg->log;
        lr->log_ud = cfg->log_ud;
        lr->on_error = cfg->on_error;
        lr->error_ud = cfg->error_ud;
        ev_timer_init(&lr->step_timer, step_timeout, 0., 0.);
        lr->loop.data = lr;
        lr->loop.run_reads = rdL_run_reads;
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
        lr->L = lua_tothread(L, -1);
        lua_pop(L, 1);
        for (int i = 0; i < RDL_NSIGNALS; i++) {
            lr->signal_refs[i] = LUA_NOREF;
            ev_init(&lr->signals[i].w, NULL);
        }
        static const char *const keys[RDL_NKEYS] = {
            "dataReceived",       "delimiter",       "lineReceived",   "MAX_LENGTH",
            "lineLengthExceeded", "rawDataReceived", "stringReceived", "lengthLimitExceeded",
            "readReady",          "requestReceived", "_httplimits",    "buildProtocol",
            "connectionMade",     "connectionLost",
        };
        for (int i = 0; i < RDL_NKEYS; i++) {
            lua_pushstring(L, keys[i]);
            lr->keys[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        luaL_newmetatable(L, RDL_LOOP);
        lua_pushcfunction(L, loop_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    }
    rdL_open_transport(L);
    rdL_open_listener(L);
    rdL_open_timer(L);
    luaL_newlibtable(L, funcs);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 1);
    /* the framings a protocol may name in `delimiter` (reactor.basic's string receivers) */
    lua_createtable(L, 0, 4);
    lua_pushlightuserdata(L, (void *)&rd_frame_u8);
    lua_setfield(L, -2, "u8");
    lua_pushlightuserdata(L, (void *)&rd_frame_u16);
    lua_setfield(L, -2, "u16");
    lua_pushlightuserdata(L, (void *)&rd_frame_u32);
    lua_setfield(L, -2, "u32");
    lua_pushlightuserdata(L, (void *)&rd_frame_netstring);
    lua_setfield(L, -2, "netstring");
    lua_pushlightuserdata(L, (void *)&rdL_stream_framing);
    lua_setfield(L, -2, "stream");
    lua_pushlightuserdata(L, (void *)&rdL_http_framing);
    lua_setfield(L, -2, "http");
    lua_setfield(L, -2, "framing");
    lua_pushliteral(L, REACTOR_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
