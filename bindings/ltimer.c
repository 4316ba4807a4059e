/*
 * ltimer.c: reactor.callLater and the DelayedCall it returns (Twisted's
 * IDelayedCall). The userdata embeds its rd_timer_t and is pinned while
 * active; uservalue 1 holds what to call.
 *
 * callLater(delay, fn, ...) keeps fn itself. callLater(delay, obj, "name",
 * ...) looks obj[name] up when it fires, so a timer scheduled by a protocol
 * runs that protocol's current code after a hot reload.
 */
#include <string.h>

#include "rdlua.h"

static ltimer *checktimer(lua_State *L)
{
    return luaL_checkudata(L, 1, RDL_TIMER);
}

static void unpin(lua_State *L, ltimer *t)
{
    if (t->ref == LUA_NOREF) return;
    rdL_unpin(L, &t->ref);
    ((lreactor *)t->timer.loop->data)->ntimers--;
}

void rdL_timer_cancel(lua_State *L, rd_timer_t *rt)
{
    ltimer *t = rd__container(rt, ltimer, timer);
    rd_timer_stop(rt);
    unpin(L, t);
}

static int tramp_fire(lua_State *L)
{
    ltimer *t = rdL_thiscall(L)->a;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref); /* stays on the stack for the call */
    unpin(L, t);                               /* one-shot: done, and cancel() now returns false */
    lua_getiuservalue(L, -1, 1);
    int call = lua_gettop(L);
    lua_getfield(L, call, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 2, "too many arguments");
    int late = lua_getfield(L, call, "late") == LUA_TBOOLEAN;
    lua_pop(L, 1);
    int first = 1;
    if (late) { /* obj[name](obj, ...) resolved now */
        lua_geti(L, call, 1);
        lua_geti(L, call, 2);
        lua_gettable(L, -2);
        if (lua_isnil(L, -1)) { /* say where it was scheduled, and on what */
            lua_getfield(L, call, "site");
            lua_geti(L, call, 2);
            const char *obj = luaL_tolstring(L, call + 1, NULL);
            if (lua_getfield(L, call + 1, "transport") == LUA_TUSERDATA) {
                lua_pushfstring(L, "%s of %s", obj, luaL_tolstring(L, -1, NULL));
                obj = lua_tostring(L, -1);
            }
            /* call + 1: obj, + 2: the nil it gave, + 3: site, + 4: name */
            return luaL_error(L, "%scallLater(delay, obj, '%s'): obj (%s) has no method '%s'",
                              lua_tostring(L, call + 3), lua_tostring(L, call + 4), obj,
                              lua_tostring(L, call + 4));
        }
        lua_insert(L, -2); /* method, obj */
        first = 3;
    } else {
        lua_geti(L, call, 1);
        first = 2;
    }
    for (int i = first; i <= n; i++)
        lua_geti(L, call, i);
    lua_call(L, n - first + 1 + (late ? 1 : 0), 0);
    return 0;
}

static void fire(rd_timer_t *rt)
{
    rdL_call call = {.fn = tramp_fire, .a = rd__container(rt, ltimer, timer), .what = "callLater"};
    rdL_pcall(rt->loop->data, &call);
}

/* callLater(delay, fn, ...) or callLater(delay, obj, "method", ...) */
int rdL_calllater(lua_State *L)
{
    lreactor *lr = rdL_reactor(L);
    double delay = luaL_checknumber(L, 1);
    int n = lua_gettop(L) - 1;
    int late = lua_istable(L, 2) && lua_type(L, 3) == LUA_TSTRING;
    if (!late && !lua_isfunction(L, 2)) {
        if (!luaL_getmetafield(L, 2, "__call"))
            return luaL_typeerror(L, 2, "function or (object, method name)");
        lua_pop(L, 1);
    }
    ltimer *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    t->ref = LUA_NOREF;
    rd_timer_init(&t->timer, &lr->loop, fire);
    luaL_setmetatable(L, RDL_TIMER);
    lua_createtable(L, n, 2);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i + 1);
        lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    if (late) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "late");
        luaL_where(L, 1); /* "file:line: " of the caller, for a method that is not there */
        lua_setfield(L, -2, "site");
    }
    lua_setiuservalue(L, -2, 1);
    /* fails only under a virtual clock whose heap cannot grow */
    if (rd_timer_start(&t->timer, delay, 0) < 0) return luaL_error(L, "not enough memory");
    rdL_pin(L, -1, &t->ref);
    lr->ntimers++;
    return 1;
}

static int timer_cancel(lua_State *L)
{
    ltimer *t = checktimer(L);
    int was = rd_timer_active(&t->timer);
    rdL_timer_cancel(L, &t->timer);
    lua_pushboolean(L, was);
    return 1;
}

static int timer_active(lua_State *L)
{
    lua_pushboolean(L, rd_timer_active(&checktimer(L)->timer));
    return 1;
}

/* reset(delay): fire `delay` seconds from now instead; false if no longer active. */
static int timer_reset(lua_State *L)
{
    ltimer *t = checktimer(L);
    double delay = luaL_checknumber(L, 2);
    if (!rd_timer_active(&t->timer)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (rd_timer_start(&t->timer, delay, 0) < 0) return luaL_error(L, "not enough memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* getTime(): when it will fire, on reactor.now()'s clock. */
static int timer_gettime(lua_State *L)
{
    ltimer *t = checktimer(L);
    lua_pushnumber(L, rd_now(t->timer.loop) + rd_timer_remaining(&t->timer));
    return 1;
}

static int timer_gc(lua_State *L)
{
    rd_timer_stop(&checktimer(L)->timer);
    return 0;
}

static int timer_tostring(lua_State *L)
{
    ltimer *t = checktimer(L);
    if (rd_timer_active(&t->timer))
        lua_pushfstring(L, "DelayedCall (in %f s)", rd_timer_remaining(&t->timer));
    else
        lua_pushliteral(L, "DelayedCall (done)");
    return 1;
}

void rdL_open_timer(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"cancel", timer_cancel},
        {"active", timer_active},
        {"reset", timer_reset},
        {"getTime", timer_gettime},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", timer_gc},
        {"__close", timer_cancel},
        {"__tostring", timer_tostring},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, RDL_TIMER)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
