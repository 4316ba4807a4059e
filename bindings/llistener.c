/*
 * llistener.c: listenTCP and listenUNIX, and the Listener userdata they
 * return (Twisted's IListeningPort). A listener embeds its rd_listener_t,
 * is pinned while it listens, and holds its factory in uservalue 1; each
 * accepted connection becomes a transport with that factory.
 */
#include <limits.h>
#include <string.h>

#include "rdlua.h"

/*{====================================================================
 * Accepting
 *=====================================================================*/

/* The transport of a new connection: runs protected, since making a
 * userdata may fail (memory). Its one uservalue is the protocol; the
 * factory is the listener's, reached through conn.data (rdL_pushfactory):
 * no uservalue for it, 16 bytes a connection less (issue 12). The listener
 * stays pinned while it has connections not yet lost (ls->open), so the
 * pointer stays good until on_lost drops it. */
static int tramp_alloc(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    llistener *ls = call->a;
    ltransport *t = rdL_newtransport(L, ls->listener.loop->data, 1);
    t->conn.data = ls;
    t->accepted = 1;
    ls->open++;
    call->b = t;
    return 0;
}

static rd_conn_t *listener_alloc(rd_listener_t *l)
{
    llistener *ls = rd__container(l, llistener, listener);
    rdL_call call = {.fn = tramp_alloc, .a = ls, .what = "accept"};
    if (rdL_pcall(l->loop->data, &call) != LUA_OK) return NULL;
    ltransport *t = call.b;
    rdL_transport_setup(t);
    return &t->conn;
}

static void listener_accept(rd_listener_t *l, rd_conn_t *c)
{
    (void)l;
    rdL_made(rd__container(c, ltransport, conn));
}

/*{====================================================================
 * Listener userdata
 *=====================================================================*/

static llistener *checklistener(lua_State *L)
{
    return luaL_checkudata(L, 1, RDL_LISTENER);
}

static int listener_close(lua_State *L, llistener *ls)
{
    if (ls->listener.fd < 0) return 0;
    lreactor *lr = ls->listener.loop->data;
    rd_listener_close(&ls->listener);
    if (ls->ref != LUA_NOREF) {
        /* its open connections still reach it (conn.data): the last one's
         * on_lost unpins it then (rdL_listener_release) */
        if (ls->open == 0) rdL_unpin(L, &ls->ref);
        lr->nlisteners--;
    }
    return 1;
}

void rdL_listener_release(lua_State *L, llistener *ls)
{
    if (--ls->open == 0 && ls->listener.fd < 0) rdL_unpin(L, &ls->ref);
}

void rdL_listener_close(lua_State *L, rd_listener_t *l)
{
    listener_close(L, rd__container(l, llistener, listener));
}

static int listener_stop(lua_State *L)
{
    lua_pushboolean(L, listener_close(L, checklistener(L)));
    return 1;
}

static int listener_gethost(lua_State *L)
{
    llistener *ls = checklistener(L);
    rdL_pushaddr(L, &ls->listener.addr);
    if (ls->listener.path) {
        lua_pushstring(L, ls->listener.path);
        lua_setfield(L, -2, "name");
    }
    return 1;
}

/* stats() -> {connections = open ones it accepted (also once it stopped
 * listening), refused = turned away} */
static int listener_stats(lua_State *L)
{
    llistener *ls = checklistener(L);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)ls->open);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, (lua_Integer)ls->listener.refused);
    lua_setfield(L, -2, "refused");
    return 1;
}

static int listener_gc(lua_State *L)
{
    llistener *ls = checklistener(L);
    if (ls->listener.fd >= 0) rd_listener_close(&ls->listener);
    return 0;
}

static int listener_tostring(lua_State *L)
{
    llistener *ls = checklistener(L);
    return rdL_pushsocketname(L, "Listener", ls->listener.fd, &ls->listener.addr);
}

static void listener_options(lua_State *L, int idx, rd_listener_t *l)
{
    if (lua_type(L, idx) != LUA_TTABLE) return;
    if (lua_getfield(L, idx, "maxConnections") != LUA_TNIL)
        l->max_conns = (unsigned)luaL_checkinteger(L, -1);
    if (lua_getfield(L, idx, "idleTimeout") != LUA_TNIL) l->idle = luaL_checknumber(L, -1);
    if (lua_getfield(L, idx, "highWater") != LUA_TNIL) l->high = (size_t)luaL_checkinteger(L, -1);
    if (lua_getfield(L, idx, "lowWater") != LUA_TNIL) l->low = (size_t)luaL_checkinteger(L, -1);
    if (lua_getfield(L, idx, "maxOutput") != LUA_TNIL)
        l->max_out = (size_t)luaL_checkinteger(L, -1);
    lua_pop(L, 5);
    if (l->low > l->high) l->low = l->high;
}

static llistener *newlistener(lua_State *L)
{
    llistener *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->listener.fd = -1;
    ls->ref = LUA_NOREF;
    luaL_setmetatable(L, RDL_LISTENER);
    return ls;
}

static void adopt(lua_State *L, lreactor *lr, llistener *ls, int factory, int opts)
{
    ls->listener.alloc = listener_alloc;
    ls->listener.on_accept = listener_accept;
    listener_options(L, opts, &ls->listener);
    lua_pushvalue(L, factory);
    lua_setiuservalue(L, -2, 1);
    rdL_pin(L, -1, &ls->ref);
    lr->nlisteners++;
}

/* listenUNIX(path, factory [, {backlog=, maxConnections=, ...}]) */
int rdL_listenunix(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int backlog = 511;
    if (lua_type(L, 3) == LUA_TTABLE && lua_getfield(L, 3, "backlog") == LUA_TNUMBER)
        backlog = (int)lua_tointeger(L, -1);
    lua_settop(L, 3);
    llistener *ls = newlistener(L);
    int r = rd_listener_open_unix(&ls->listener, &lr->loop, path, backlog);
    if (r < 0) return rdL_pushfail(L, r, path);
    adopt(L, lr, ls, 2, 3);
    return 1;
}

/* listenTCP(port, factory [, interface | {interface=, backlog=}]) */
int rdL_listen(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_Integer port = luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *host = "127.0.0.1";
    int backlog = 511;
    lua_settop(L, 3); /* the options' index, and the new listener's at 4, either way */
    if (lua_type(L, 3) == LUA_TSTRING) {
        host = lua_tostring(L, 3);
    } else if (lua_type(L, 3) == LUA_TTABLE) {
        if (lua_getfield(L, 3, "interface") == LUA_TSTRING) host = lua_tostring(L, -1);
        if (lua_getfield(L, 3, "backlog") == LUA_TNUMBER) backlog = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
    } else {
        luaL_argexpected(L, lua_isnoneornil(L, 3), 3, "interface string or options table");
    }
    luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be 0..65535");
    llistener *ls = newlistener(L);
    int r = rd_listener_open(&ls->listener, &lr->loop, host, (int)port, backlog);
    if (r < 0) {
        const char *where = strchr(host, ':') ? lua_pushfstring(L, "[%s]:%d", host, (int)port)
                                              : lua_pushfstring(L, "%s:%d", host, (int)port);
        return rdL_pushfail(L, r, where);
    }
    adopt(L, lr, ls, 2, 3);
    return 1;
}

/* adoptTCP(fd, factory [, {maxConnections=, ...}]): accept on a socket
 * that listens already (the daemon's master passed it to this worker); the
 * listener owns fd from here on. */
int rdL_adopttcp(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "not a descriptor");
    lua_settop(L, 3);
    llistener *ls = newlistener(L);
    int r = rd_listener_adopt(&ls->listener, &lr->loop, (int)fd);
    if (r < 0) return rdL_pushfail(L, r, lua_pushfstring(L, "fd %d", (int)fd));
    adopt(L, lr, ls, 2, 3);
    return 1;
}

void rdL_open_listener(lua_State *L)
{
    static const luaL_Reg lmethods[] = {
        {"getHost", listener_gethost},
        {"stopListening", listener_stop},
        {"stats", listener_stats},
        {NULL, NULL},
    };
    static const luaL_Reg lmeta[] = {
        {"__gc", listener_gc},
        {"__close", listener_stop},
        {"__tostring", listener_tostring},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, RDL_LISTENER)) {
        luaL_setfuncs(L, lmeta, 0);
        luaL_newlib(L, lmethods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
