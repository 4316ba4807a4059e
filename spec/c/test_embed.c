/* test_embed.c: reactor.h as a host program uses it. The host owns the
 * lua_State and, here, the libev loop; it sets both up before opening the
 * module, as luv's luv_set_loop is used. */
#include <ev.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <string.h>

#include "reactor.h"
#include "test.h"

static lua_State *host_state(void)
{
    lua_State *L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    reactor_preload(L);
    return L;
}

/* Run Lua source in L; fail the test with Lua's message on error. */
static void run(lua_State *L, const char *src)
{
    if (luaL_dostring(L, src) != LUA_OK) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        CHECK(!"the Lua chunk failed");
    }
}

static lua_Integer global_int(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

TEST(embed_runs_on_the_hosts_loop)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    lua_State *L = host_state();
    reactor_set_loop(L, ev);
    run(L, "reactor = require 'reactor'\n"
           "fired = 0\n"
           "reactor.callLater(0, function() fired = fired + 1 end)\n");
    CHECK_EQ(global_int(L, "fired"), 0);
    ev_run(ev, 0); /* the host's loop, not reactor.run: the timer is on it */
    CHECK_EQ(global_int(L, "fired"), 1);
    lua_close(L);
    ev_loop_destroy(ev); /* the host's to destroy, after lua_close */
}

/* Two reactors (two states, no shared state) on one host loop, as a game
 * with two worlds would run them: a's client talks to b's server. */
TEST(embed_two_reactors_in_one_process)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    lua_State *a = host_state(), *b = host_state();
    reactor_set_loop(a, ev);
    reactor_set_loop(b, ev);
    run(b,
        "reactor = require 'reactor'\n"
        "local P = { dataReceived = function(self, d) self.transport:write(d .. 'from b') end }\n"
        "port = assert(reactor.listenTCP(0, P)):getHost().port\n");
    lua_pushinteger(a, global_int(b, "port"));
    lua_setglobal(a, "port");
    run(a, "reactor = require 'reactor'\n"
           "local C = { connectionMade = function(self) self.transport:write('hi ') end,\n"
           "            dataReceived = function(self, d) got = d; self.transport:loseConnection() "
           "end }\n"
           "reactor.connectTCP('127.0.0.1', port, C)\n");
    int done = 0;
    for (int i = 0; i < 10000 && !done; i++) { /* bounded: each turn waits for an event */
        ev_run(ev, EVRUN_ONCE);
        lua_getglobal(a, "got");
        done = lua_isstring(a, -1);
        lua_pop(a, 1);
    }
    CHECK(done);
    lua_getglobal(a, "got");
    CHECK(strcmp(lua_tostring(a, -1), "hi from b") == 0);
    lua_pop(a, 1);
    /* each state counts only its own objects */
    run(a, "assert(reactor.core._stats().listeners == 0)");
    run(b, "assert(reactor.core._stats().listeners == 1)");
    lua_close(a);
    lua_close(b);
    ev_loop_destroy(ev);
}

static char logged[4][256];
static int nlogged;

/* the signature is reactor_log_fn's */
// cppcheck-suppress constParameter
static void host_log(void *ud, const char *line)
{
    CHECK(ud == (void *)logged);
    if (nlogged < 4) snprintf(logged[nlogged++], sizeof logged[0], "%s", line);
}

TEST(embed_log_goes_to_the_hosts_function)
{
    lua_State *L = host_state();
    reactor_set_log(L, host_log, logged);
    run(L, "reactor = require 'reactor'\n"
           "reactor.core.log('from Lua')\n"
           "reactor.callLater(0, function() error('from a callback') end)\n"
           "reactor.callLater(0.01, reactor.stop)\n"
           "reactor.run()\n");
    CHECK_EQ(nlogged, 2);
    CHECK(strcmp(logged[0], "from Lua") == 0); /* no prefix: the host adds its own */
    CHECK(strstr(logged[1], "error in callLater: ") == logged[1]);
    CHECK(strstr(logged[1], "from a callback") != NULL);
    lua_close(L);
}

TEST(embed_preload_needs_no_reactor_so)
{
    lua_State *L = host_state();
    run(L, "package.cpath = ''\n" /* nothing to find on disk */
           "local reactor = require 'reactor'\n"
           "assert(reactor.core == require 'reactor.core')\n"
           "assert(type(reactor.listenTCP) == 'function')\n");
    lua_close(L);
}
