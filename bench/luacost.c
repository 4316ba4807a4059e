/*
 * luacost.c: what Lua 5.4 itself charges for the pieces of reactord's hot
 * path, in instructions, so a profile of reactord can be read against a
 * floor. Run each mode under callgrind and subtract mode 9 (start-up only):
 *
 *   valgrind --tool=callgrind ./luacost N     (N as below; 200,000 iterations)
 *
 * 0  lua_pcall of an empty C function            (the per-callback protection)
 * 1  getfield + pushlstring + lua_call of zen's lineReceived with a no-op write
 * 3  the same with an empty Lua method           (the call itself)
 * 4  one lua_getfield through one __index level  (a method lookup on self)
 * 9  nothing: start-up cost to subtract
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>

enum { ITERATIONS = 200000 };

static int nop(lua_State *L)
{
    (void)L;
    return 0;
}

static int fake_write(lua_State *L)
{
    size_t n;
    luaL_checklstring(L, 2, &n);
    return 0;
}

static void call_method(lua_State *L, int self, const char *name)
{
    lua_getfield(L, self, name);
    lua_pushvalue(L, self);
    lua_pushlstring(L, "Beautiful is better than", 24);
    lua_call(L, 2, 0);
}

int main(int argc, char **argv)
{
    int mode = argc > 1 ? atoi(argv[1]) : 9;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "A = {['Beautiful is better than'] = 'Ugly.'}\n"
                         "Z = {}\n"
                         "function Z:lineReceived(q) self.transport:write(A[q] or 'Error') end\n"
                         "function Z:empty(q) end\n"
                         "self = setmetatable({factory = {}}, {__index = Z})\n") != LUA_OK)
        return 1;
    lua_getglobal(L, "self");
    int self = lua_gettop(L);
    lua_newuserdatauv(L, 8, 1); /* a transport whose write does nothing */
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, fake_write);
    lua_setfield(L, -2, "write");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, self, "transport");
    for (int i = 0; mode != 9 && i < ITERATIONS; i++) {
        switch (mode) {
        case 0:
            lua_pushcfunction(L, nop);
            lua_pcall(L, 0, 0, 0);
            break;
        case 1:
            call_method(L, self, "lineReceived");
            break;
        case 3:
            call_method(L, self, "empty");
            break;
        case 4:
            lua_getfield(L, self, "lineReceived");
            lua_pop(L, 1);
            break;
        }
    }
    lua_close(L);
    return 0;
}
