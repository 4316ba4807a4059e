/*
 * lcall.c: every call from the loop into Lua goes through rdL_pcall. The
 * loop calls us from libev callbacks, where a Lua error (or a memory error
 * from a mere lua_pushstring) must never longjmp, so the whole of each
 * callback runs inside one lua_pcall of a C trampoline (a batch of reads
 * shares one: ldispatch.c, rdL_run_reads). On error: one log record with
 * the callback's name, its connection, file:line and a traceback of the
 * user's frames; the connection it ran for fails. The host never dies of a
 * script's error.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rdlua.h"

#define TRACEBACK "\nstack traceback:"
#define MAX_FRAMES 20

/*{====================================================================
 * Error text
 *=====================================================================*/

/* A table raised as an error, without __tostring: its fields, so that
 * error({code = 42}) says something. */
static void pushfields(lua_State *L, int t)
{
    char buf[512];
    size_t len = (size_t)snprintf(buf, sizeof buf, "error object {");
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, t) && len < sizeof buf - 8) {
        char key[64], val[160];
        if (lua_type(L, -2) == LUA_TSTRING)
            snprintf(key, sizeof key, "%s", lua_tostring(L, -2));
        else if (lua_type(L, -2) == LUA_TNUMBER) {
            lua_pushvalue(L, -2); /* a copy: lua_tostring on the key would confuse lua_next */
            snprintf(key, sizeof key, "[%s]", lua_tostring(L, -1));
            lua_pop(L, 1);
        } else
            snprintf(key, sizeof key, "[%s]", luaL_typename(L, -2));
        int vt = lua_type(L, -1);
        if (vt == LUA_TSTRING)
            snprintf(val, sizeof val, "\"%s\"", lua_tostring(L, -1));
        else if (vt == LUA_TNUMBER || vt == LUA_TBOOLEAN) {
            snprintf(val, sizeof val, "%s", luaL_tolstring(L, -1, NULL));
            lua_pop(L, 1);
        } else
            snprintf(val, sizeof val, "%s", luaL_typename(L, -1));
        len +=
            (size_t)snprintf(buf + len, sizeof buf - len, "%s%s = %s", n++ ? ", " : "", key, val);
        lua_pop(L, 1);
    }
    if (len >= sizeof buf - 8) {
        lua_pop(L, 1); /* the key lua_next left */
        len = sizeof buf - 8;
        len += (size_t)snprintf(buf + len, sizeof buf - len, ", ...");
    }
    snprintf(buf + len, sizeof buf - len, "}");
    lua_pushstring(L, buf);
}

/* The text of any error value: a string as is, else by __tostring, else a
 * table's fields, else its type. */
static const char *pushtext(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        return lua_tostring(L, -1);
    }
    if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
        return lua_tostring(L, -1);
    if (t == LUA_TTABLE) {
        pushfields(L, idx);
        return lua_tostring(L, -1);
    }
    return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}

const char *rdL_pushmessage(lua_State *L, int idx)
{
    size_t n;
    const char *m = pushtext(L, idx);
    const char *tb = strstr(m, TRACEBACK);
    if (!tb) return m;
    n = (size_t)(tb - m);
    m = lua_pushlstring(L, m, n);
    lua_remove(L, -2);
    return m;
}

int rdL_errormessage(lua_State *L)
{
    rdL_pushmessage(L, 1);
    return 1;
}

/*{====================================================================
 * Tracebacks of the user's frames
 *
 * luaL_traceback shows everything down to the C entry: the trampoline, then
 * reactor.run, the daemon's own Lua and "[C]: in ?". A script's author
 * needs their own frames only, so the walk stops at the trampoline of the
 * call in progress, and the runtime's own frames below the user's last one
 * are dropped (unless there are no user frames at all: a runtime bug).
 *=====================================================================*/

static int is_runtime(const lua_Debug *ar)
{
    return *ar->what == 'C' || strncmp(ar->source, "@reactor/", 9) == 0;
}

static void addframe(luaL_Buffer *b, lua_State *L, lua_Debug *ar)
{
    if (*ar->what == 'C')
        lua_pushliteral(L, "\n\t[C]: in ");
    else if (ar->currentline > 0)
        lua_pushfstring(L, "\n\t%s:%d: in ", ar->short_src, ar->currentline);
    else
        lua_pushfstring(L, "\n\t%s: in ", ar->short_src);
    luaL_addvalue(b);
    if (*ar->namewhat)
        lua_pushfstring(L, "%s '%s'",
                        strcmp(ar->namewhat, "global") == 0 ? "function" : ar->namewhat, ar->name);
    else if (*ar->what == 'm')
        lua_pushliteral(L, "main chunk");
    else if (*ar->what != 'C')
        lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
    else
        lua_pushliteral(L, "?");
    luaL_addvalue(b);
    if (ar->istailcall) luaL_addstring(b, "\n\t(...tail calls...)");
}

/* Push msg and the traceback of L's frames from level 1 up to (not
 * including) the frame running `stop` (or all of them). */
static void pushtraceback(lua_State *L, const char *msg, lua_CFunction stop, const char *what)
{
    lua_Debug ar;
    int last_user = 0, cut = 0, stopped = 0;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sf", &ar);
        lua_CFunction f = lua_tocfunction(L, -1);
        lua_pop(L, 1);
        if (stop && f == stop) {
            stopped = level;
            break;
        }
        cut = level;
        if (!is_runtime(&ar)) last_user = level;
    }
    if (last_user) cut = last_user;
    /* the frame the trampoline called has no name Lua knows (C called it):
     * it is the callback the record names */
    int named = stopped && cut == stopped - 1 ? cut : 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, msg);
    luaL_addstring(&b, TRACEBACK);
    for (int level = 1; level <= cut; level++) {
        if (level > MAX_FRAMES && level < cut - 2) { /* the top and bottom say the most */
            if (level == MAX_FRAMES + 1) luaL_addstring(&b, "\n\t...");
            continue;
        }
        lua_getstack(L, level, &ar);
        lua_getinfo(L, "Slnt", &ar);
        addframe(&b, L, &ar);
        if (level == named && what && !*ar.namewhat && *ar.what == 'L') {
            lua_pushfstring(L, " (%s)", what);
            luaL_addvalue(&b);
        }
    }
    luaL_pushresult(&b);
}

static lreactor *reactor_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, RDL_LOOP_KEY);
    lreactor *lr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return lr;
}

/* The message handler of every call, and core.traceback for xpcall. */
int rdL_traceback(lua_State *L)
{
    const char *msg = pushtext(L, 1);
    if (strstr(msg, TRACEBACK)) return 1; /* raised again with its traceback */
    lreactor *lr = reactor_of(L);
    rdL_call *call = lr ? lr->call : NULL;
    pushtraceback(L, msg, call ? call->fn : NULL, call ? call->what : NULL);
    return 1;
}

/*{====================================================================
 * The protected call
 *=====================================================================*/

/* "Listener (127.0.0.1:1060)", or "Listener (closed)": __tostring of the
 * userdata that own a socket (listeners, UDP ports). */
int rdL_pushsocketname(lua_State *L, const char *kind, int fd, const rd_addr_t *addr)
{
    if (fd < 0) {
        lua_pushfstring(L, "%s (closed)", kind);
        return 1;
    }
    char host[64];
    int port = rd_addr_host(addr, host, sizeof host);
    lua_pushfstring(L, strchr(host, ':') ? "%s ([%s]:%d)" : "%s (%s:%d)", kind, host, port);
    return 1;
}

const char *rdL_peername(const rd_conn_t *c, char *buf, size_t size)
{
    if (c->stream) {
        snprintf(buf, size, "stdio");
    } else if (c->peer.sa.sa_family == AF_UNIX) {
        snprintf(buf, size, "unix socket");
    } else {
        char host[64];
        int port = rd_addr_host(&c->peer, host, sizeof host);
        snprintf(buf, size, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    }
    return buf;
}

/* Where a callback that ran out of memory was defined: LUA_ERRMEM runs no
 * message handler, so this is the file:line there is. Runs protected. */
static int tramp_defined(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, call->t->ref);
    lua_getiuservalue(L, -1, RDL_UV_PROTOCOL);
    if (lua_getfield(L, -1, call->what) != LUA_TFUNCTION) return 0;
    lua_Debug ar;
    lua_getinfo(L, ">S", &ar);
    if (*ar.what == 'C') return 0;
    lua_pushfstring(L, "%s:%d", ar.short_src, ar.linedefined);
    return 1;
}

/* Log the failed call's record: "error in WHAT: MESSAGE (peer HOST:PORT)",
 * then the traceback. The message is at the top of the stack. */
static void report(lreactor *lr, rdL_call *call)
{
    lua_State *L = lr->L;
    const char *m = lua_tostring(L, -1);
    if (!m) m = "(no message)";
    char peer[96] = "";
    if (call->t) {
        char name[80];
        snprintf(peer, sizeof peer, " (peer %s)", rdL_peername(&call->t->conn, name, sizeof name));
    }
    const char *what = call->what ? call->what : "callback";
    const char *tb = strstr(m, TRACEBACK);
    int head = tb ? (int)(tb - m) : (int)strlen(m);
    if (call->status == LUA_ERRMEM) {
        const char *at = NULL;
        if (call->t && call->t->made && call->t->ref != LUA_NOREF && what[0]) {
            rdL_call where = {.fn = tramp_defined, .t = call->t, .what = what};
            lua_pushcfunction(L, tramp_defined);
            lua_pushlightuserdata(L, &where);
            if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isstring(L, -1)) at = lua_tostring(L, -1);
        }
        rdL_log_error(lr, "error in %s: not enough memory%s%s%s", what,
                      at ? ", in the callback defined at " : "", at ? at : "", peer);
        return;
    }
    rdL_log_error(lr, "error in %s: %.*s%s%s", what, head, m, peer, tb ? tb : "");
}

int rdL_pcall(lreactor *lr, rdL_call *call)
{
    lua_State *L = lr->L;
    int top = lua_gettop(L);
    call->outer = lr->call;
    lr->call = call;
    if (!call->outer) rdL_watchdog_enter(lr);
    lua_pushcfunction(L, rdL_traceback);
    lua_pushcfunction(L, call->fn);
    lua_pushlightuserdata(L, call);
    call->status = lua_pcall(L, 1, 0, top + 1);
    lr->call = call->outer;
    if (!call->outer) rdL_watchdog_leave(lr);
    if (call->status != LUA_OK) {
        if (call->status == LUA_ERRMEM) lua_gc(L, LUA_GCCOLLECT); /* give it back now */
        report(lr, call);
        lua_settop(L, top + 2);
        if (call->t) rdL_fail(L, call->t); /* pops the message */
    }
    lua_settop(L, top);
    return call->status;
}

/*{====================================================================
 * Small helpers every binding file uses
 *=====================================================================*/

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
