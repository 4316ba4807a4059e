/*
 * module.c: reactor.so, for require "reactor" from lua5.4. Its whole
 * content is the reactor_runtime library (linked whole): Lua's all-in-one C
 * searcher finds luaopen_reactor and luaopen_reactor_core in it.
 */
#include "reactor.h"

/* a reference that keeps the linker from dropping the runtime */
lua_CFunction reactor_module_entry = luaopen_reactor;
