/*
 * lcall.c: every call from the loop into Lua goes through rdL_pcall. The
 * loop calls us from libev callbacks, where a Lua error (or a memory error
 * from a mere lua_pushstring) must never longjmp, so the whole of each
 * callback runs inside one lua_pcall of a C trampoline (a batch of reads
 * shares one: ltransport.c, rdL_run_reads). On error: one log
 * record with file:line and a traceback (lua.c's msghandler), and the caller
 * decides what to close. The host never dies of a script's error.
 */
#include <errno.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "rdlua.h"

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* core.traceback(err): the message handler every callback runs under, for
 * xpcall in the Lua half, so its errors read like C's. */
int rdL_traceback(lua_State *L)
{
    return msghandler(L);
}

/* core.errorMessage(err): err as text, without its traceback. */
int rdL_errormessage(lua_State *L)
{
    size_t n;
    const char *m = luaL_tolstring(L, 1, &n);
    const char *tb = strstr(m, "\nstack traceback:");
    lua_pushlstring(L, m, tb ? (size_t)(tb - m) : n);
    return 1;
}

void rdL_log(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "reactord: %s\n", line);
    fflush(stderr);
}

/*{====================================================================
 * The watchdog: a callback that runs too long is stopped
 *
 * Any Lua hook, even a count hook that fires rarely, sends every VM
 * instruction through luaG_traceexec, so none is installed while things are
 * well. Instead each callback bumps an epoch (one relaxed atomic store); a
 * thread per reactor wakes every budget/10 and, when one epoch has been
 * current for longer than the budget, installs a count hook on the loop's
 * thread asynchronously, as lua.c does from its SIGINT handler (lua_sethook
 * is meant to be callable so). The hook raises, and keeps raising at every
 * instruction until the callback has unwound, so a `pcall` in the script
 * cannot swallow it (Redis's lesson).
 *
 * The hook goes on the loop's thread and, when a callback has resumed a
 * coroutine through core._resume (the daemon makes that coroutine.resume
 * and wrap), on that coroutine too, which is where such a callback spins.
 *=====================================================================*/

struct rdL_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                    /* under mu */
    _Atomic unsigned long epoch; /* of the callback running now */
    _Atomic int busy;            /* a callback is running */
    _Atomic unsigned long fired; /* the epoch the thread found stuck */
    lua_State *_Atomic L;        /* where callbacks run */
    lua_State *_Atomic co;       /* the coroutine resumed from a callback, if any */
    double budget;               /* lr->budget when started (a new budget restarts the thread) */
    unsigned long next;          /* main thread only */
};

static void timeout_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    lreactor *lr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    struct rdL_watchdog *wd = lr ? lr->wd : NULL;
    if (!wd || !atomic_load(&wd->busy) || atomic_load(&wd->fired) != atomic_load(&wd->epoch)) {
        lua_sethook(L, NULL, 0, 0); /* a late shot at a callback that has finished */
        return;
    }
    lr->tripped = 1;
    /* no position prefix: the same text wherever it lands (a coroutine or
     * the callback); the traceback in the log says where */
    lua_pushfstring(L, "script timeout: a callback ran longer than %f s", lr->budget);
    lua_error(L);
}

static void *watch_thread(void *arg)
{
    struct rdL_watchdog *wd = arg;
    double budget = wd->budget;
    double tick = budget / 10;
    if (tick < 0.005) tick = 0.005;
    if (tick > 0.1) tick = 0.1;
    unsigned long seen = 0;
    double stuck = 0;
    pthread_mutex_lock(&wd->mu);
    while (!wd->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)(tick * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&wd->cv, &wd->mu, &ts);
        if (wd->stop) break;
        unsigned long e = atomic_load(&wd->epoch);
        if (!atomic_load(&wd->busy) || e != seen) {
            seen = e;
            stuck = 0;
            continue;
        }
        stuck += tick;
        if (stuck >= budget && atomic_load(&wd->fired) != e) {
            atomic_store(&wd->fired, e);
            lua_State *co = atomic_load(&wd->co);
            if (co) lua_sethook(co, timeout_hook, LUA_MASKCOUNT, 1); /* where it spins */
            lua_sethook(atomic_load(&wd->L), timeout_hook, LUA_MASKCOUNT, 1);
        }
    }
    pthread_mutex_unlock(&wd->mu);
    return NULL;
}

void rdL_watchdog_tick(lreactor *lr)
{
    struct rdL_watchdog *wd = lr->wd;
    if (wd && lr->depth == 1) /* not from a nested call: that would reset the outer's clock */
        atomic_store_explicit(&wd->epoch, ++wd->next, memory_order_relaxed);
}

void rdL_watchdog_start(lreactor *lr, lua_State *L)
{
    if (lr->budget <= 0) return;
    if (lr->wd) {
        atomic_store(&lr->wd->L, L);
        return;
    }
    struct rdL_watchdog *wd = calloc(1, sizeof *wd);
    if (!wd) return; /* no watchdog is better than no reactor */
    pthread_mutex_init(&wd->mu, NULL);
    pthread_cond_init(&wd->cv, NULL);
    wd->budget = lr->budget;
    atomic_store(&wd->L, L);
    if (pthread_create(&wd->thread, NULL, watch_thread, wd) != 0) {
        pthread_cond_destroy(&wd->cv);
        pthread_mutex_destroy(&wd->mu);
        free(wd);
        return;
    }
    lr->wd = wd;
}

void rdL_watchdog_stop(lreactor *lr)
{
    struct rdL_watchdog *wd = lr->wd;
    if (!wd) return;
    pthread_mutex_lock(&wd->mu);
    wd->stop = 1;
    pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cv);
    pthread_mutex_destroy(&wd->mu);
    free(wd);
    lr->wd = NULL;
}

/* core._resume(co, ...): coroutine.resume, telling the watchdog which
 * coroutine runs, so a callback stuck inside one can be stopped too. The
 * daemon installs it as coroutine.resume (and a wrap on top of it). */
int rdL_resume(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    struct rdL_watchdog *wd = lr->wd;
    lua_State *prev = wd ? atomic_exchange(&wd->co, co) : NULL;
    int narg = lua_gettop(L) - 1;
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume dead coroutine");
    } else if (status == LUA_OK && lua_gettop(co) == 0) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume dead coroutine");
    } else if (!lua_checkstack(co, narg)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too many arguments to resume");
    } else {
        lua_xmove(L, co, narg);
        int nres;
        status = lua_resume(co, L, narg, &nres);
        if (status == LUA_OK || status == LUA_YIELD) {
            if (!lua_checkstack(L, nres + 1)) {
                lua_pop(co, nres);
                lua_pushboolean(L, 0);
                lua_pushliteral(L, "too many results to resume");
            } else {
                lua_pushboolean(L, 1);
                lua_xmove(co, L, nres);
            }
        } else {
            lua_pushboolean(L, 0);
            lua_xmove(co, L, 1); /* the error */
        }
    }
    if (wd) atomic_store(&wd->co, prev);
    return lua_gettop(L) - narg - 1;
}

/* Keep the reason a script sees: the message without the traceback. Runs
 * protected, since it allocates (and memory may be what ran out). */
static int keep_message(lua_State *L)
{
    const char *m = lua_tostring(L, 1);
    const char *tb = m ? strstr(m, "\nstack traceback:") : NULL;
    if (!m) m = "(no message)";
    lua_pushlstring(L, m, tb ? (size_t)(tb - m) : strlen(m));
    int *ref = lua_touserdata(L, 2);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int rdL_pcall(lreactor *lr, lua_CFunction fn, void *a, void *b, int *msg_ref)
{
    lua_State *L = lr->L;
    int top = lua_gettop(L);
    struct rdL_watchdog *wd = lr->wd;
    if (lr->depth++ == 0 && wd) {
        atomic_store_explicit(&wd->epoch, ++wd->next, memory_order_relaxed);
        atomic_store_explicit(&wd->busy, 1, memory_order_relaxed);
    }
    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, a);
    lua_pushlightuserdata(L, b);
    int status = lua_pcall(L, 2, 0, top + 1);
    if (--lr->depth == 0 && wd) {
        atomic_store_explicit(&wd->busy, 0, memory_order_relaxed);
        if (lr->tripped) { /* unwound: the hook has done its job */
            lr->tripped = 0;
            lua_sethook(L, NULL, 0, 0);
        }
    }
    if (status != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        if (!m) m = "(no message)";
        rdL_log("error in %s: %s", lr->where ? lr->where : "callback", m);
        if (msg_ref) {
            *msg_ref = LUA_NOREF;
            lua_pushcfunction(L, keep_message);
            lua_insert(L, -2);
            lua_pushlightuserdata(L, msg_ref);
            if (lua_pcall(L, 2, 0, 0) != LUA_OK) *msg_ref = LUA_NOREF;
        }
        if (status == LUA_ERRMEM) lua_gc(L, LUA_GCCOLLECT); /* give it back now */
    }
    lua_settop(L, top);
    return status;
}

const char *rdL_pusherror(lua_State *L, int err)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s", rd_strerror(err));
    if (msg[0] >= 'A' && msg[0] <= 'Z' && !(msg[1] >= 'A' && msg[1] <= 'Z'))
        msg[0] = (char)(msg[0] - 'A' + 'a'); /* strerror capitalises; we do not */
    return lua_pushfstring(L, "%s: %s", rd_err_name(err), msg);
}

int rdL_pushfail(lua_State *L, int err, const char *where)
{
    lua_pushnil(L);
    rdL_pusherror(L, err);
    if (where) {
        lua_pushfstring(L, " (%s)", where);
        lua_concat(L, 2);
    }
    lua_pushstring(L, rd_err_name(err));
    return 3;
}

void rdL_pushaddr(lua_State *L, const rd_addr_t *a)
{
    if (a->sa.sa_family == AF_UNIX) {
        lua_createtable(L, 0, 2);
        lua_pushliteral(L, "UNIX");
        lua_setfield(L, -2, "type");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "name");
        return;
    }
    char host[64];
    int port = rd_addr_host(a, host, sizeof host);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "TCP");
    lua_setfield(L, -2, "type");
    lua_pushstring(L, host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "port");
}

void rdL_pin(lua_State *L, int idx, int *ref)
{
    if (*ref != LUA_NOREF) return;
    lua_pushvalue(L, idx);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void rdL_unpin(lua_State *L, int *ref)
{
    if (*ref == LUA_NOREF) return;
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}
