/*
 * lresolve.c: core.resolve(host, fn) -> Lookup. fn({addresses...}) or
 * fn(nil, "ENOTFOUND: name not found (host)", "ENOTFOUND") runs from the
 * loop; the loop never waits for a name server. Pinned while in flight;
 * lookup:cancel() (or finalizing it) means fn is never called.
 */
#include <string.h>

#include "rdlua.h"

#define RDL_LOOKUP "reactor.Lookup"

typedef struct llookup {
    rd_resolve_t r;
    int ref;
    int status;
    size_t n;
    const rd_addr_t *addrs;
} llookup;

static int tramp_resolved(lua_State *L)
{
    llookup *lk = rdL_thiscall(L)->a;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lk->ref);
    rdL_unpin(L, &lk->ref);
    lua_getiuservalue(L, -1, 1); /* fn */
    lua_getiuservalue(L, -2, 2); /* host */
    const char *host = lua_tostring(L, -1);
    int nargs;
    if (lk->status == 0) {
        lua_createtable(L, (int)lk->n, 0);
        for (size_t i = 0; i < lk->n; i++) {
            char buf[64];
            rd_addr_host(&lk->addrs[i], buf, sizeof buf);
            lua_pushstring(L, buf);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_remove(L, -2); /* host */
        nargs = 1;
    } else {
        rdL_pushfail(L, lk->status, host);
        lua_remove(L, -4); /* host */
        nargs = 3;
    }
    lua_call(L, nargs, 0);
    return 0;
}

static void resolved(rd_resolve_t *r, int status, const rd_addr_t *addrs, size_t n)
{
    llookup *lk = rd__container(r, llookup, r);
    lreactor *lr = r->loop->data;
    lk->status = status;
    lk->addrs = addrs;
    lk->n = n;
    rdL_call call = {.fn = tramp_resolved, .a = lk, .what = "name lookup callback"};
    rdL_pcall(lr, &call);
}

static int lookup_cancel(lua_State *L)
{
    llookup *lk = luaL_checkudata(L, 1, RDL_LOOKUP);
    int was = lk->r.job != NULL;
    rd_resolve_cancel(&lk->r);
    rdL_unpin(L, &lk->ref);
    lua_pushboolean(L, was);
    return 1;
}

static int lookup_gc(lua_State *L)
{
    rd_resolve_cancel(&((llookup *)luaL_checkudata(L, 1, RDL_LOOKUP))->r);
    return 0;
}

int rdL_resolve(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    llookup *lk = lua_newuserdatauv(L, sizeof *lk, 2);
    memset(lk, 0, sizeof *lk);
    lk->ref = LUA_NOREF;
    if (luaL_newmetatable(L, RDL_LOOKUP)) {
        lua_pushcfunction(L, lookup_gc);
        lua_setfield(L, -2, "__gc");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, lookup_cancel);
        lua_setfield(L, -2, "cancel");
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 2);
    int r = rd_resolve_start(&lk->r, &lr->loop, lua_tostring(L, 1), resolved);
    if (r < 0) return rdL_pushfail(L, r, lua_tostring(L, 1));
    rdL_pin(L, -1, &lk->ref);
    return 1;
}
