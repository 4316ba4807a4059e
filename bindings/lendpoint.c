/*
 * lendpoint.c: connections we make (Twisted's endpoints): connectTCP,
 * connectUNIX, and stdio, a transport over stdin and stdout. The Lua half
 * (reactor.endpoints) wraps the first two in a Connector.
 */
#include <errno.h>
#include <string.h>

#include "rdlua.h"

/* A transport for an outgoing connection, pushed: factory and connector
 * at stack indexes f and k. */
static ltransport *newoutgoing(lua_State *L, lreactor *lr, int f, int k)
{
    ltransport *t = rdL_newtransport(L, lr, 3);
    lua_pushvalue(L, f);
    lua_setiuservalue(L, -2, RDL_UV_FACTORY);
    lua_pushvalue(L, k);
    lua_setiuservalue(L, -2, RDL_UV_CONNECTOR);
    t->outgoing = 1;
    rdL_transport_setup(t);
    return t;
}

/* connectUNIX(path, factory, connector [, timeout]) -> transport */
int rdL_connectunix(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    double timeout = luaL_optnumber(L, 4, 30.0);
    ltransport *t = newoutgoing(L, lr, 2, 3);
    int r = rd_conn_connect_unix(&t->conn, &lr->loop, path, timeout);
    if (r < 0) {
        rdL_transport_unpin(L, t);
        return rdL_pushfail(L, r, path);
    }
    return 1;
}

/* stdio(factory) -> transport over stdin/stdout (Twisted's StandardIO).
 * connectionMade runs now, from this call; stdin's EOF is connectionLost
 * (or readConnectionLost, which leaves stdout writable). */
int rdL_stdio(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    ltransport *t = rdL_newtransport(L, lr, 2);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, RDL_UV_FACTORY);
    rdL_transport_setup(t);
    int r = rd_conn_init_stream(&t->conn, &lr->loop, 0, 1);
    if (r < 0) {
        rdL_transport_unpin(L, t);
        return rdL_pushfail(L, r, "stdio");
    }
    /* protected like every connection's: an error fails this transport
     * (logged, connectionLost) instead of leaving it open and pinned */
    if (rdL_made(t) == LUA_OK && t->conn.state == RD_OPEN) rd_conn_start(&t->conn);
    return 1;
}

/* core.connectTCP(host, port, factory, connector [, timeout]) -> transport */
int rdL_connect(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    double timeout = luaL_optnumber(L, 5, 30.0);
    luaL_argcheck(L, port > 0 && port <= 65535, 2, "port must be 1..65535");
    rd_addr_t to;
    int r = rd_addr_parse(&to, host, (int)port);
    if (r < 0) return rdL_pushfail(L, r, host);
    ltransport *t = newoutgoing(L, lr, 3, 4);
    r = rd_conn_connect(&t->conn, &lr->loop, &to, timeout);
    if (r < 0) {
        rdL_transport_unpin(L, t);
        return rdL_pushfail(L, r, lua_pushfstring(L, "%s:%d", host, (int)port));
    }
    return 1;
}
