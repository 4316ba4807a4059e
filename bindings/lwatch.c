/*
 * lwatch.c: core.watch(paths, fn [, settle]) -> Watcher. fn() runs from the
 * loop once the watched files have been quiet for `settle` seconds after a
 * change. Pinned until :close() (or lua_close).
 */
#include <stdlib.h>
#include <string.h>

#include "rdlua.h"

#define RDL_WATCHER "reactor.Watcher"

typedef struct lwatcher {
    rd_watch_t w;
    int ref;
} lwatcher;

static int tramp_changed(lua_State *L)
{
    lwatcher *lw = rdL_thiscall(L)->a;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lw->ref);
    lua_getiuservalue(L, -1, 1);
    lua_call(L, 0, 0);
    return 0;
}

static void changed(rd_watch_t *w)
{
    rdL_call call = {
        .fn = tramp_changed, .a = rd__container(w, lwatcher, w), .what = "watch callback"};
    rdL_pcall(w->loop->data, &call);
}

static int watcher_close(lua_State *L)
{
    lwatcher *lw = luaL_checkudata(L, 1, RDL_WATCHER);
    int was = lw->w.fd >= 0;
    rd_watch_stop(&lw->w);
    rdL_unpin(L, &lw->ref);
    lua_pushboolean(L, was);
    return 1;
}

static int watcher_gc(lua_State *L)
{
    rd_watch_stop(&((lwatcher *)luaL_checkudata(L, 1, RDL_WATCHER))->w);
    return 0;
}

int rdL_watch(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    double settle = luaL_optnumber(L, 3, 0.05);
    size_t n = (size_t)luaL_len(L, 1);
    const char **paths = lua_newuserdatauv(L, (n ? n : 1) * sizeof *paths, 0);
    for (size_t i = 0; i < n; i++) {
        lua_geti(L, 1, (lua_Integer)i + 1);
        paths[i] = luaL_checkstring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    lwatcher *lw = lua_newuserdatauv(L, sizeof *lw, 1);
    memset(lw, 0, sizeof *lw);
    lw->w.fd = -1;
    lw->ref = LUA_NOREF;
    if (luaL_newmetatable(L, RDL_WATCHER)) {
        lua_pushcfunction(L, watcher_gc);
        lua_setfield(L, -2, "__gc");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, watcher_close);
        lua_setfield(L, -2, "close");
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    int r = rd_watch_start(&lw->w, &lr->loop, paths, n, settle, changed);
    if (r < 0) return rdL_pushfail(L, r, "watch");
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    rdL_pin(L, -1, &lw->ref);
    return 1;
}
