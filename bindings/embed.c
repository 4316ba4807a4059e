/*
 * embed.c: reactord.h, the library API for host programs, over the runtime's
 * own host interface (reactor.h). A reactor is a Lua state with a counting
 * allocator, the runtime opened in it, and (unless the host gives its own)
 * a libev loop of its own. Every entry into Lua is protected; the message of
 * a failure is kept in r->err for rd_error.
 *
 * The pollable fd (rd_fd) is an epoll set of two: libev's own epoll fd and a
 * timerfd armed to the next deadline. libev applies watcher changes to its
 * epoll set only at the start of its next iteration (as libuv does: the
 * cause of libuv/help#184), so after every call that ran Lua a "sync" pass
 * runs one non-blocking iteration with callback invocation switched off: it
 * applies the changes and leaves any event it found pending for the next
 * rd_step (rd_next_deadline is then 0).
 */
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "rdlua.h"
#include "reactord.h"

struct rd_reactor {
    lua_State *L;
    struct ev_loop *ev;    /* the loop it runs on */
    int own_ev;            /* ev is ours to destroy, after lua_close */
    int ev_fd;             /* libev's epoll fd, or -1 (not epoll, or the host's loop) */
    int poll_fd, timer_fd; /* rd_fd's epoll set and its timerfd, -1 until asked for */
    int syncing;           /* inside sync(): libev must not invoke callbacks */
    double armed;          /* the timerfd's deadline (on ev_now), or -1: disarmed */
    size_t mem_used, mem_limit;
    rd_options opts;
    char *script; /* the last rd_load's path, for rd_reload(r, NULL) */
    char err[512];
};

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    rd_reactor *r = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        r->mem_used -= old;
        return NULL;
    }
    if (r->mem_limit && nsize > old && r->mem_used + (nsize - old) > r->mem_limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) r->mem_used = r->mem_used - old + nsize;
    return p;
}

static void drop_log(void *ud, const char *line)
{
    (void)ud, (void)line;
}

static int fail(rd_reactor *r, const char *fmt, const char *arg)
{
    snprintf(r->err, sizeof r->err, fmt, arg ? arg : "");
    return -1;
}

/* Take the error at the top of L's stack into r->err (popped). */
static int lua_fail(rd_reactor *r)
{
    const char *m = lua_tostring(r->L, -1);
    snprintf(r->err, sizeof r->err, "%s", m ? m : "(error object is not a string)");
    lua_pop(r->L, 1);
    return -1;
}

/*{====================================================================
 * The pollable fd
 *=====================================================================*/

/* The eventpoll fds open now, as a bit set over fd numbers < 1024. */
static void eventpoll_fds(unsigned char set[128])
{
    memset(set, 0, 128);
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    struct dirent *e;
    char path[64], link[64];
    // cppcheck-suppress readdirCalled ; one thread reads this DIR
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd <= 0 || fd >= 1024) continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0) continue;
        link[n] = '\0';
        if (strcmp(link, "anon_inode:[eventpoll]") == 0)
            set[fd / 8] |= (unsigned char)(1 << (fd % 8));
    }
    closedir(d);
}

/* libev has no accessor for its backend fd (ev.h 4.33): it is the one
 * eventpoll fd that ev_loop_new opened. */
static struct ev_loop *new_epoll_loop(int *fd)
{
    unsigned char before[128], after[128];
    eventpoll_fds(before);
    struct ev_loop *ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!ev) {
        *fd = -1;
        return ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    }
    eventpoll_fds(after);
    *fd = -1;
    for (int i = 0; i < 1024; i++)
        if ((after[i / 8] & ~before[i / 8]) & (1 << (i % 8))) {
            if (*fd >= 0) { /* another thread made one too: cannot tell */
                *fd = -1;
                break;
            }
            *fd = i;
        }
    return ev;
}

/* libev's invoke hook: no callbacks while sync() only applies changes */
static void invoke_pending(struct ev_loop *ev)
{
    rd_reactor *r = ev_userdata(ev);
    if (!r->syncing) ev_invoke_pending(ev);
}

/* Bring rd_fd up to date: watcher changes applied, timerfd at the deadline. */
static void sync_fd(rd_reactor *r)
{
    if (r->poll_fd < 0) return;
    lua_getfield(r->L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    lreactor *lr = lua_touserdata(r->L, -1);
    lua_pop(r->L, 1);
    /* the settle hook is no event: kept out of the pass, or it would stay
     * pending (ev_pending_count would never be 0 again) */
    ev_ref(r->ev); /* it is an unref'd watcher (rd_loop_init) */
    ev_prepare_stop(r->ev, &lr->loop.prepare);
    r->syncing = 1;
    ev_run(r->ev, EVRUN_NOWAIT);
    r->syncing = 0;
    ev_prepare_start(r->ev, &lr->loop.prepare);
    ev_unref(r->ev);
    double d = rd_next_deadline(r);
    /* the same deadline, still ahead: the armed timerfd is right (a
     * timerfd_settime per step would be a system call per frame) */
    double at = d < 0 ? -1 : ev_now(r->ev) + d;
    if (d > 0 && r->armed >= 0 && fabs(at - r->armed) < 1e-6 && r->armed > ev_now(r->ev)) return;
    if (d < 0 && r->armed < 0) return;
    r->armed = at;
    struct itimerspec ts;
    memset(&ts, 0, sizeof ts);
    if (d >= 0) {
        if (d < 1e-9) d = 1e-9; /* 0 would disarm it */
        ts.it_value.tv_sec = (time_t)d;
        ts.it_value.tv_nsec = (long)((d - (double)ts.it_value.tv_sec) * 1e9);
        if (ts.it_value.tv_sec == 0 && ts.it_value.tv_nsec == 0) ts.it_value.tv_nsec = 1;
    }
    timerfd_settime(r->timer_fd, 0, &ts, NULL);
}

int rd_fd(rd_reactor *r)
{
    if (r->poll_fd >= 0) return r->poll_fd;
    if (!r->own_ev)
        return fail(r,
                    "rd_fd: this reactor runs on the host's libev loop (options.loop): poll that "
                    "loop instead%s",
                    NULL);
    if (r->ev_fd < 0)
        return fail(r,
                    "rd_fd: libev's epoll fd could not be found (no epoll backend, or another "
                    "thread made a loop at the same time)%s",
                    NULL);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tf = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN};
    if (ep < 0 || tf < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, r->ev_fd, &e) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, tf, &e) < 0) {
        int en = errno;
        if (ep >= 0) close(ep);
        if (tf >= 0) close(tf);
        return fail(r, "rd_fd: %s", strerror(en));
    }
    r->poll_fd = ep;
    r->timer_fd = tf;
    sync_fd(r);
    return ep;
}

double rd_next_deadline(rd_reactor *r)
{
    lua_getfield(r->L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    lreactor *lr = lua_touserdata(r->L, -1);
    lua_pop(r->L, 1);
    if (!lr) return -1;
    rd_loop_t *loop = &lr->loop;
    if (ev_pending_count(r->ev) || rd_loop_has_ready(loop)) return 0;
    return rd_loop_next_deadline(loop);
}

/*{====================================================================
 * Life
 *=====================================================================*/

static void set_path(lua_State *L, const char *dirs)
{
    lua_getglobal(L, "package");
    lua_pushstring(L, dirs);
    lua_pushliteral(L, ";");
    lua_getfield(L, -3, "path");
    lua_concat(L, 3);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

static int popen_runtime(lua_State *L)
{
    rd_reactor *r = lua_touserdata(L, 1);
    luaL_openlibs(L);
    reactor_preload(L);
    if (r->opts.script_path) set_path(L, r->opts.script_path);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "reactor");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "reactor");
    lua_getfield(L, -1, "core");
    lua_getfield(L, -1, "setLimits");
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, r->opts.script_timeout);
    lua_setfield(L, -2, "scriptTimeout");
    lua_pushinteger(L, (lua_Integer)r->opts.max_connections);
    lua_setfield(L, -2, "maxConnections");
    lua_call(L, 1, 0);
    return 0;
}

rd_reactor *rd_new(const rd_options *opts, char *err, size_t errlen)
{
    rd_reactor *r = calloc(1, sizeof *r);
    if (!r) {
        if (err && errlen) snprintf(err, errlen, "rd_new: not enough memory");
        return NULL;
    }
    if (opts) r->opts = *opts;
    r->ev_fd = r->poll_fd = r->timer_fd = -1;
    r->armed = -1;
    r->mem_limit = r->opts.max_memory;
    const char *why = NULL;
    if (r->opts.loop) {
        r->ev = r->opts.loop;
    } else {
        r->ev = new_epoll_loop(&r->ev_fd);
        r->own_ev = 1;
        if (!r->ev)
            why = "rd_new: libev cannot create a loop";
        else {
            ev_set_userdata(r->ev, r);
            ev_set_invoke_pending_cb(r->ev, invoke_pending);
        }
    }
    if (!why && !(r->L = lua_newstate(limited_alloc, r))) why = "rd_new: not enough memory for Lua";
    if (why) {
        if (err && errlen) snprintf(err, errlen, "%s", why);
        rd_free(r);
        return NULL;
    }
    reactor_set_loop(r->L, r->ev);
    reactor_set_log(r->L, r->opts.log ? r->opts.log : drop_log, r->opts.log_ud);
    if (r->opts.on_error) reactor_set_error(r->L, r->opts.on_error, r->opts.error_ud);
    lua_pushcfunction(r->L, popen_runtime);
    lua_pushlightuserdata(r->L, r);
    if (lua_pcall(r->L, 1, 0, 0) != LUA_OK) {
        lua_fail(r);
        if (err && errlen) snprintf(err, errlen, "rd_new: %s", r->err);
        rd_free(r);
        return NULL;
    }
    return r;
}

void rd_free(rd_reactor *r)
{
    if (!r) return;
    if (r->L) lua_close(r->L); /* closes every connection, listener and timer */
    if (r->own_ev && r->ev) ev_loop_destroy(r->ev);
    if (r->poll_fd >= 0) close(r->poll_fd);
    if (r->timer_fd >= 0) close(r->timer_fd);
    free(r->script);
    free(r);
}

const char *rd_error(const rd_reactor *r)
{
    return r->err;
}

lua_State *rd_lua(rd_reactor *r)
{
    return r->L;
}

/*{====================================================================
 * Scripts and C functions
 *=====================================================================*/

static int run_loaded(rd_reactor *r, int status)
{
    if (status == LUA_OK) {
        lua_pushcfunction(r->L, rdL_traceback);
        lua_insert(r->L, -2);
        status = lua_pcall(r->L, 0, 0, -2);
        lua_remove(r->L, status == LUA_OK ? -1 : -2);
    }
    int ret = status == LUA_OK ? 0 : lua_fail(r);
    sync_fd(r);
    return ret;
}

int rd_load(rd_reactor *r, const char *path)
{
    if (!path) return fail(r, "rd_load: no path given%s", NULL);
    char *copy = strdup(path);
    if (!copy) return fail(r, "rd_load: not enough memory%s", NULL);
    free(r->script);
    r->script = copy;
    return run_loaded(r, luaL_loadfilex(r->L, path, "t"));
}

int rd_dostring(rd_reactor *r, const char *src, const char *name)
{
    return run_loaded(r, luaL_loadbufferx(r->L, src, strlen(src), name ? name : "=host", "t"));
}

int rd_reload(rd_reactor *r, const char *path)
{
    if (!path) path = r->script;
    if (!path) return fail(r, "rd_reload: nothing loaded yet: call rd_load first%s", NULL);
    /* loaded first: a file that does not compile changes nothing */
    return run_loaded(r, luaL_loadfilex(r->L, path, "t"));
}

struct registered {
    rd_cfunction fn;
    void *ud;
};

static int call_registered(lua_State *L)
{
    const struct registered *g = lua_touserdata(L, lua_upvalueindex(1));
    return g->fn(L, g->ud);
}

static int pregister(lua_State *L)
{
    const char *name = lua_touserdata(L, 1);
    const struct registered *in = lua_touserdata(L, 2);
    lua_pushglobaltable(L);
    const char *dot;
    while ((dot = strchr(name, '.'))) {
        lua_pushlstring(L, name, (size_t)(dot - name));
        lua_pushvalue(L, -1);
        int t = lua_gettable(L, -3);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_settable(L, -5);
        } else if (t != LUA_TTABLE) {
            return luaL_error(L, "rd_register: '%s' is a %s, not a table", lua_tostring(L, -2),
                              lua_typename(L, t));
        }
        lua_remove(L, -2);
        lua_remove(L, -2);
        name = dot + 1;
    }
    if (!*name) return luaL_error(L, "rd_register: the name ends with '.'");
    struct registered *g = lua_newuserdatauv(L, sizeof *g, 0);
    *g = *in;
    lua_pushcclosure(L, call_registered, 1);
    lua_setfield(L, -2, name);
    return 0;
}

int rd_register(rd_reactor *r, const char *name, rd_cfunction fn, void *ud)
{
    if (!name || !*name || !fn)
        return fail(r, "rd_register: a name and a function are needed%s", NULL);
    struct registered g = {fn, ud};
    lua_pushcfunction(r->L, pregister);
    lua_pushlightuserdata(r->L, (void *)name);
    lua_pushlightuserdata(r->L, &g);
    return lua_pcall(r->L, 2, 0, 0) == LUA_OK ? 0 : lua_fail(r);
}

/*{====================================================================
 * Driving it
 *=====================================================================*/

static int call_reactor(rd_reactor *r, const char *fn)
{
    lua_getglobal(r->L, "reactor");
    if (!lua_istable(r->L, -1)) {
        lua_pop(r->L, 1);
        return fail(r, "the global 'reactor' was replaced: cannot call reactor.%s", fn);
    }
    lua_getfield(r->L, -1, fn);
    lua_remove(r->L, -2);
    int ret = lua_pcall(r->L, 0, 0, 0) == LUA_OK ? 0 : lua_fail(r);
    sync_fd(r);
    return ret;
}

int rd_run(rd_reactor *r)
{
    return call_reactor(r, "run");
}

int rd_stop(rd_reactor *r)
{
    return call_reactor(r, "stop");
}

static int pstep(lua_State *L)
{
    lua_pushinteger(L, reactor_iterate(L, lua_tonumber(L, 1)));
    return 1;
}

int rd_step(rd_reactor *r, double timeout)
{
    /* events a sync pass left pending are this step's work: no waiting */
    if (timeout != 0 && ev_pending_count(r->ev)) timeout = 0;
    lua_State *L = r->L;
    lua_pushcfunction(L, pstep); /* shutting down after a stop() runs Lua too */
    lua_pushnumber(L, timeout);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return lua_fail(r);
    int s = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (s < 0)
        return fail(r, "rd_step: the reactor is already running (called from a callback?)%s", NULL);
    sync_fd(r);
    return s;
}
