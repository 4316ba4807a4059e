/*
 * ludp.c: reactor.listenUDP(port, protocol [, interface]) -> UDP transport
 * (Twisted's DatagramProtocol). The protocol is an object, not a factory:
 * one per socket. It gets startProtocol(), datagramReceived(data, host,
 * port), connectionRefused() (connected sockets) and stopProtocol().
 */
#include <errno.h>
#include <string.h>

#include "rdlua.h"

#define RDL_UDP "reactor.UDPPort"

typedef struct ludp {
    rd_udp_t u;
    int ref; /* pinned while open */
} ludp;

struct datagram {
    const char *p;
    size_t n;
    const rd_addr_t *from;
};

static ludp *checkudp(lua_State *L)
{
    return luaL_checkudata(L, 1, RDL_UDP);
}

/* Push protocol[name]; 0 (nothing pushed) when absent. */
static int pushmethod(lua_State *L, ludp *lu, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lu->ref);
    lua_getiuservalue(L, -1, 1);
    if (lua_getfield(L, -1, name) == LUA_TNIL) {
        lua_pop(L, 3);
        return 0;
    }
    lua_insert(L, -2); /* udata, method, protocol */
    return 1;
}

static int tramp_datagram(lua_State *L)
{
    rdL_call *call = rdL_thiscall(L);
    ludp *lu = call->a;
    const struct datagram *d = call->b;
    if (!pushmethod(L, lu, "datagramReceived")) return 0;
    lua_pushlstring(L, d->p, d->n);
    char host[64];
    int port = rd_addr_host(d->from, host, sizeof host);
    lua_pushstring(L, host);
    lua_pushinteger(L, port);
    lua_call(L, 4, 0);
    return 0;
}

static void on_datagram(rd_udp_t *u, const char *data, size_t len, const rd_addr_t *from)
{
    lreactor *lr = u->loop->data;
    struct datagram d = {data, len, from};
    rdL_call call = {
        .fn = tramp_datagram, .a = rd__container(u, ludp, u), .b = &d, .what = "datagramReceived"};
    rdL_pcall(lr, &call);
}

static int tramp_refused(lua_State *L)
{
    ludp *lu = rdL_thiscall(L)->a;
    if (pushmethod(L, lu, "connectionRefused")) lua_call(L, 1, 0);
    return 0;
}

static void on_error(rd_udp_t *u, int err)
{
    lreactor *lr = u->loop->data;
    if (err != -ECONNREFUSED) return; /* others are transient for UDP */
    rdL_call call = {
        .fn = tramp_refused, .a = rd__container(u, ludp, u), .what = "connectionRefused"};
    rdL_pcall(lr, &call);
}

static int udp_close(lua_State *L, ludp *lu, int notify)
{
    if (lu->u.fd < 0) return 0;
    rd_udp_close(&lu->u);
    if (notify && lu->ref != LUA_NOREF && pushmethod(L, lu, "stopProtocol")) lua_call(L, 1, 0);
    if (lu->ref != LUA_NOREF) {
        rdL_unpin(L, &lu->ref);
        ((lreactor *)lu->u.loop->data)->nudps--;
    }
    return 1;
}

static int tramp_stop(lua_State *L)
{
    ludp *lu = rdL_thiscall(L)->a;
    if (pushmethod(L, lu, "stopProtocol")) lua_call(L, 1, 0);
    return 0;
}

/* reactor.stop()'s shutdown (lreactor.c): close, then stopProtocol() as a
 * callback of its own, protected and logged like any other, before the
 * port is unpinned. L is the thread run() was called on. */
void rdL_udp_close(lua_State *L, rd_udp_t *u)
{
    ludp *lu = rd__container(u, ludp, u);
    if (lu->u.fd < 0) return;
    rd_udp_close(&lu->u);
    if (lu->ref == LUA_NOREF) return;
    lreactor *lr = u->loop->data;
    rdL_call call = {.fn = tramp_stop, .a = lu, .what = "stopProtocol"};
    rdL_pcall(lr, &call);
    rdL_unpin(L, &lu->ref);
    lr->nudps--;
}

static int udp_stop(lua_State *L)
{
    lua_pushboolean(L, udp_close(L, checkudp(L), 1));
    return 1;
}

static void checkaddr(lua_State *L, int idx, rd_addr_t *a)
{
    const char *host = luaL_checkstring(L, idx);
    lua_Integer port = luaL_checkinteger(L, idx + 1);
    luaL_argcheck(L, port > 0 && port <= 65535, idx + 1, "port must be 1..65535");
    if (rd_addr_parse(a, host, (int)port) < 0)
        luaL_argerror(L, idx, "UDP needs a numeric IPv4 or IPv6 address");
}

/* write(data [, host, port]): to host:port, or to the connected peer. */
static int udp_write(lua_State *L)
{
    ludp *lu = checkudp(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    rd_addr_t to;
    int r;
    if (lua_isnoneornil(L, 3)) {
        if (!lu->u.connected)
            return luaL_error(L, "write: no address, and the socket is not connected");
        r = rd_udp_send(&lu->u, s, len, NULL);
    } else {
        checkaddr(L, 3, &to);
        r = rd_udp_send(&lu->u, s, len, &to);
    }
    if (r < 0 && r != RD_ECLOSED) return rdL_pushfail(L, r, NULL);
    lua_pushboolean(L, r == 0);
    return 1;
}

static int udp_connect(lua_State *L)
{
    ludp *lu = checkudp(L);
    rd_addr_t to;
    checkaddr(L, 2, &to);
    int r = rd_udp_connect(&lu->u, &to);
    if (r < 0) return rdL_pushfail(L, r, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int udp_gethost(lua_State *L)
{
    rdL_pushaddr(L, &checkudp(L)->u.addr);
    lua_pushliteral(L, "UDP");
    lua_setfield(L, -2, "type");
    return 1;
}

static int udp_gc(lua_State *L)
{
    rd_udp_close(&checkudp(L)->u);
    return 0;
}

static int udp_tostring(lua_State *L)
{
    ludp *lu = checkudp(L);
    return rdL_pushsocketname(L, "UDPPort", lu->u.fd, &lu->u.addr);
}

/* listenUDP(port, protocol [, interface]) -> port, or nil, msg, code */
int rdL_listenudp(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    lua_Integer port = luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *host = luaL_optstring(L, 3, "127.0.0.1");
    luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be 0..65535");
    ludp *lu = lua_newuserdatauv(L, sizeof *lu, 1);
    memset(lu, 0, sizeof *lu);
    lu->u.fd = -1;
    lu->ref = LUA_NOREF;
    if (luaL_newmetatable(L, RDL_UDP)) {
        static const luaL_Reg methods[] = {
            {"write", udp_write},
            {"connect", udp_connect},
            {"getHost", udp_gethost},
            {"stopListening", udp_stop},
            {NULL, NULL},
        };
        lua_pushcfunction(L, udp_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, udp_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    int r = rd_udp_open(&lu->u, &lr->loop, host, (int)port);
    if (r < 0) return rdL_pushfail(L, r, lua_pushfstring(L, "%s:%d", host, (int)port));
    lu->u.on_datagram = on_datagram;
    lu->u.on_error = on_error;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    rdL_pin(L, -1, &lu->ref);
    lr->nudps++;
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, "transport"); /* Twisted's makeConnection */
    int port_idx = lua_gettop(L);
    if (lua_getfield(L, 2, "startProtocol") == LUA_TFUNCTION) {
        /* protected: a failing startProtocol must not leave the port open
         * and pinned; the caller gets the error, at its own line */
        lua_pushcfunction(L, rdL_traceback);
        lua_insert(L, -2);
        lua_pushvalue(L, 2);
        if (lua_pcall(L, 1, 0, port_idx + 1) != LUA_OK) {
            const char *msg = rdL_pushmessage(L, -1);
            udp_close(L, lu, 0);
            return luaL_error(L, "startProtocol failed: %s", msg); /* at the caller's line */
        }
    }
    lua_settop(L, port_idx);
    return 1;
}
