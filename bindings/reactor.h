/*
 * reactor.h: the public C interface of reactord's Lua runtime, for a host
 * that opens it in a lua_State of its own (the reactord daemon is one such
 * host; a game is another).
 *
 * The runtime keeps everything in the lua_State's registry, so two states
 * are two independent reactors. The setters below are called on a state
 * BEFORE the module is opened there (as luv's luv_set_loop is): opening
 * reads them once, when it creates the state's reactor.
 */
#ifndef REACTOR_H
#define REACTOR_H

#include <lua.h>

#define REACTOR_VERSION "0.1.0"

struct ev_loop;

/* Where log records go: one call per record, without a trailing newline
 * and without a prefix (the default writes "reactor: LINE\n" to stderr). */
typedef void (*reactor_log_fn)(void *ud, const char *line);

/* require "reactor" and require "reactor.core": open the module (the Lua
 * half over the C half) and push it. lua5.4 finds them in reactor.so. */
int luaopen_reactor(lua_State *L);
int luaopen_reactor_core(lua_State *L);
/* Put reactor, reactor.core and the embedded scripts (scripts/reactor/) into
 * package.preload, so that require finds them without reactor.so; the
 * environment variable REACTOR_SCRIPTS=DIR loads the scripts from DIR. */
void reactor_preload(lua_State *L);
/* Run the reactor on the host's libev loop instead of a loop of its own
 * (the host keeps ownership; it must outlive L). Before opening. */
void reactor_set_loop(lua_State *L, struct ev_loop *loop);
/* Send log records to fn(ud, line). Before opening. */
void reactor_set_log(lua_State *L, reactor_log_fn fn, void *ud);
/* Send the report of a Lua error in a callback to fn(ud, message) instead
 * of the log. Before or after opening. */
void reactor_set_error(lua_State *L, reactor_log_fn fn, void *ud);
/* reactor.iterate(timeout) from C: one loop iteration on L's reactor (opened
 * already), waiting at most timeout seconds (0 never blocks, < 0 until an
 * event). 1 = a callback called reactor.stop(), 0 = not, -1 = the reactor is
 * already running (called from inside a callback). */
int reactor_iterate(lua_State *L, double timeout);

#endif
