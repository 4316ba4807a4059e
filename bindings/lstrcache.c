/*
 * lstrcache.c: the short strings the read path hands to Lua, remembered.
 *
 * Line protocols see the same short messages over and over (commands,
 * header lines, zen's three questions). To push one, lua_pushlstring hashes
 * every byte and walks the string table: ~300 instructions for 24 bytes, a
 * tenth of a whole zen request. This direct-mapped cache keeps the last
 * string seen in each of its slots pinned in the registry and gives it back
 * for a memcmp. Scripts cannot tell: Lua interns short strings, so the cached
 * one is the very object lua_pushlstring would have returned.
 *
 * A miss costs the probe and one registry store: ~50 instructions more per
 * line than no cache at all (callgrind, every line missing).
 */
#include <string.h>

#include "rdlua.h"

/* Lua 5.4 interns strings up to LUAI_MAXSHORTLEN (40) bytes; longer ones are
 * copied without hashing, so caching them would save little. */
#define RDL_SHORT_MAX 40

static unsigned slot_of(const char *p, size_t n)
{
    unsigned h = (unsigned)n;
    h = h * 31u + (unsigned char)p[0];
    h = h * 31u + (unsigned char)p[n >> 1];
    h = h * 31u + (unsigned char)p[n - 1];
    h ^= h >> 7;
    return h & (RDL_STRCACHE - 1);
}

void rdL_pushbytes(lua_State *L, lreactor *lr, const char *p, size_t n)
{
    if (n == 0 || n > RDL_SHORT_MAX) {
        rd_loop_copied(&lr->loop, p, lua_pushlstring(L, p, n), n);
        return;
    }
    struct rdl_strcache *c = &lr->strcache;
    unsigned i = slot_of(p, n);
    if (c->len[i] == n && memcmp(c->p[i], p, n) == 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref[i]);
        return;
    }
    const char *s = lua_pushlstring(L, p, n);
    lua_pushvalue(L, -1);
    if (c->ref[i] == 0) {
        c->ref[i] = luaL_ref(L, LUA_REGISTRYINDEX); /* pops */
    } else {
        lua_rawseti(L, LUA_REGISTRYINDEX, c->ref[i]); /* the old string is free to go */
    }
    c->p[i] = s; /* stays valid: the registry keeps the string alive */
    c->len[i] = (unsigned char)n;
}
