/*
 * lcall.c: every call from the loop into Lua goes through rdL_pcall. The
 * loop calls us from libev callbacks, where a Lua error (or a memory error
 * from a mere lua_pushstring) must never longjmp, so the whole of each
 * callback runs inside one lua_pcall of a C trampoline. On error: one log
 * record with file:line and a traceback (lua.c's msghandler), and the caller
 * decides what to close. The host never dies of a script's error.
 */
#include <errno.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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
 * A count hook fires every RDL_WATCH_COUNT VM instructions and compares the
 * monotonic clock with the callback's deadline. Once tripped it re-arms
 * itself for every instruction and raises again, so a `pcall` in the script
 * cannot swallow it (Redis's lesson): the error reaches our lua_pcall.
 *=====================================================================*/

#define RDL_WATCH_COUNT 100000

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void watchdog(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    lreactor *lr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!lr || lr->depth == 0) return; /* not inside a callback */
    if (!lr->tripped) {
        if (mono() < lr->deadline) return;
        lr->tripped = 1;
        lua_sethook(L, watchdog, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "script timeout: a callback ran longer than %f s", lr->budget);
}

void rdL_watchdog(lua_State *L, lreactor *lr, int on)
{
    if (on && lr->budget > 0)
        lua_sethook(L, watchdog, LUA_MASKCOUNT, RDL_WATCH_COUNT);
    else
        lua_sethook(L, NULL, 0, 0);
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
    if (lr->depth++ == 0 && lr->budget > 0) lr->deadline = mono() + lr->budget;
    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, a);
    lua_pushlightuserdata(L, b);
    int status = lua_pcall(L, 2, 0, top + 1);
    if (--lr->depth == 0 && lr->tripped) { /* unwound: back to the light hook */
        lr->tripped = 0;
        rdL_watchdog(L, lr, 1);
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
