/*
 * lwatchdog.c: a callback that runs too long is stopped.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "rdlua.h"

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
    _Atomic int hooking;         /* the thread reads co and hooks it (see set_co) */
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
            /* co is alive while it is wd->co (core._resume holds it on
             * its stack), and set_co does not return while we hook: a
             * coroutine that just ended is never hooked after it is gone */
            atomic_store(&wd->hooking, 1);
            lua_State *co = atomic_load(&wd->co);
            if (co) lua_sethook(co, timeout_hook, LUA_MASKCOUNT, 1); /* where it spins */
            atomic_store(&wd->hooking, 0);
            lua_sethook(atomic_load(&wd->L), timeout_hook, LUA_MASKCOUNT, 1);
        }
    }
    pthread_mutex_unlock(&wd->mu);
    return NULL;
}

void rdL_watchdog_tick(lreactor *lr)
{
    struct rdL_watchdog *wd = lr->wd;
    /* not from a nested call: that would reset the outer's clock */
    if (wd && lr->call && !lr->call->outer)
        atomic_store_explicit(&wd->epoch, ++wd->next, memory_order_relaxed);
}

void rdL_watchdog_enter(lreactor *lr)
{
    struct rdL_watchdog *wd = lr->wd;
    if (!wd) return;
    atomic_store_explicit(&wd->epoch, ++wd->next, memory_order_relaxed);
    atomic_store_explicit(&wd->busy, 1, memory_order_relaxed);
}

void rdL_watchdog_leave(lreactor *lr)
{
    struct rdL_watchdog *wd = lr->wd;
    if (!wd) return;
    atomic_store_explicit(&wd->busy, 0, memory_order_relaxed);
    if (lr->tripped) { /* unwound: the hook has done its job */
        lr->tripped = 0;
        lua_sethook(lr->L, NULL, 0, 0);
    }
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

/* Tell the thread which coroutine runs now; -> the one before. Lock-free
 * (a mutex pair cost ~110 instructions at every resume of a task): both
 * sides are sequentially consistent, so if the thread read the old co
 * (its hooking = 1 came first), we see hooking set and wait the few
 * instructions of its lua_sethook before the old co may end. */
static lua_State *set_co(struct rdL_watchdog *wd, lua_State *co)
{
    if (!wd) return NULL;
    lua_State *prev = atomic_exchange(&wd->co, co);
    while (atomic_load(&wd->hooking))
        sched_yield(); /* only while a script is being stopped */
    return prev;
}

int rdL_coresume(lreactor *lr, lua_State *L, lua_State *co, int narg, int *nres,
                 void (*stopped)(lua_State *L, void *ud), void *ud)
{
    lua_xmove(L, co, narg);
    struct rdL_watchdog *wd = lr->wd;
    lua_State *prev = set_co(wd, co);
    int status = lua_resume(co, L, narg, nres);
    set_co(wd, prev);
    if (status != LUA_OK && status != LUA_YIELD && lr->tripped && lua_type(co, -1) == LUA_TSTRING) {
        /* the watchdog stopped it: the callback stops too, and its log
         * record shows where the coroutine spun, not where it was resumed */
        if (stopped) stopped(L, ud);
        luaL_traceback(L, co, lua_tostring(co, -1), 0);
        lua_error(L);
    }
    return status;
}

/* core._resume(co, ...): coroutine.resume, telling the watchdog which
 * coroutine runs, so a callback stuck inside one can be stopped too. The
 * daemon installs it as coroutine.resume (and a wrap on top of it). Its
 * results are coroutine.resume's: true and what co yielded or returned, or
 * false and the error. */
int rdL_resume(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    int narg = lua_gettop(L) - 1;
    int status = lua_status(co);
    if ((status != LUA_OK && status != LUA_YIELD) || (status == LUA_OK && lua_gettop(co) == 0)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume dead coroutine");
        return 2;
    }
    if (!lua_checkstack(co, narg)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too many arguments to resume");
        return 2;
    }
    int nres; /* L holds co below the arguments: it stays alive while it runs */
    status = rdL_coresume(lr, L, co, narg, &nres, NULL, NULL);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_xmove(co, L, 1); /* the error */
        return 2;
    }
    if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too many results to resume");
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres + 1;
}
