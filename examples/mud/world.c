/* world.c: the world's map and its state, and the C functions game.lua
 * calls (registered as world.*). Every function checks its arguments and
 * raises a Lua error naming itself, as a library function does. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "world.h"

struct exit_ {
    const char *dir;
    int to;
};
struct room {
    const char *name, *desc;
    struct exit_ exits[4];
};

static const struct room rooms[] = {
    {"Great Hall", "A vaulted hall. Torches flicker on the walls.", {{"north", 1}, {"east", 2}}},
    {"Library", "Shelves of dusty books reach the ceiling.", {{"south", 0}}},
    {"Garden", "Roses climb an old stone wall. Steps lead down.", {{"west", 0}, {"down", 3}}},
    {"Cellar", "Damp and dark. Something drips.", {{"up", 2}}},
};
enum { NROOMS = sizeof rooms / sizeof rooms[0] };

static const struct {
    const char *name;
    int room;
} items[] = {{"lamp", 0}, {"book", 1}, {"rose", 2}, {"key", 3}, {"coin", 3}};
enum { NITEMS = sizeof items / sizeof items[0] };

int world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    w->item_loc = malloc(NITEMS * sizeof *w->item_loc);
    if (!w->item_loc) return -1;
    for (int i = 0; i < NITEMS; i++)
        w->item_loc[i] = items[i].room;
    return 0;
}

void world_free(struct world *w)
{
    free(w->item_loc);
    w->item_loc = NULL;
}

static struct player *player_arg(lua_State *L, struct world *w, int idx)
{
    lua_Integer id = luaL_checkinteger(L, idx);
    if (id < 1 || id > MUD_MAX_PLAYERS || !w->players[id - 1].used)
        luaL_argerror(L, idx, "no such player (joined with world.join?)");
    return &w->players[id - 1];
}

static int item_named(const char *name)
{
    for (int i = 0; i < NITEMS; i++)
        if (strcmp(items[i].name, name) == 0) return i;
    return -1;
}

/* world.join(name) -> id | nil, why */
static int w_join(lua_State *L, void *ud)
{
    struct world *w = ud;
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    if (n == 0 || n > MUD_NAME) return luaL_argerror(L, 1, "a name is 1 to 24 bytes");
    int free_slot = -1;
    for (int i = 0; i < MUD_MAX_PLAYERS; i++) {
        if (w->players[i].used && strcmp(w->players[i].name, name) == 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "that name is taken");
            return 2;
        }
        if (!w->players[i].used && free_slot < 0) free_slot = i;
    }
    if (free_slot < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "the world is full");
        return 2;
    }
    struct player *p = &w->players[free_slot];
    p->used = 1;
    p->room = 0;
    memcpy(p->name, name, n + 1);
    lua_pushinteger(L, free_slot + 1);
    return 1;
}

/* world.leave(id): what the player carried stays in the room */
static int w_leave(lua_State *L, void *ud)
{
    struct world *w = ud;
    struct player *p = player_arg(L, w, 1);
    long carrier = -1 - (long)(p - w->players);
    for (int i = 0; i < NITEMS; i++)
        if (w->item_loc[i] == carrier) w->item_loc[i] = p->room;
    p->used = 0;
    return 0;
}

static void push_names_in(lua_State *L, struct world *w, int room, const struct player *except)
{
    lua_newtable(L);
    int n = 0;
    for (int i = 0; i < MUD_MAX_PLAYERS; i++)
        if (w->players[i].used && w->players[i].room == room && &w->players[i] != except) {
            lua_pushstring(L, w->players[i].name);
            lua_rawseti(L, -2, ++n);
        }
}

/* world.look(id) -> {name=, desc=, exits={...}, items={...}, players={...}} */
static int w_look(lua_State *L, void *ud)
{
    struct world *w = ud;
    struct player *p = player_arg(L, w, 1);
    const struct room *rm = &rooms[p->room];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, rm->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, rm->desc);
    lua_setfield(L, -2, "desc");
    lua_newtable(L);
    for (int i = 0; i < 4 && rm->exits[i].dir; i++) {
        lua_pushstring(L, rm->exits[i].dir);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "exits");
    lua_newtable(L);
    int n = 0;
    for (int i = 0; i < NITEMS; i++)
        if (w->item_loc[i] == p->room) {
            lua_pushstring(L, items[i].name);
            lua_rawseti(L, -2, ++n);
        }
    lua_setfield(L, -2, "items");
    push_names_in(L, w, p->room, p);
    lua_setfield(L, -2, "players");
    return 1;
}

/* world.go(id, exit) -> the new room's name | nil, why */
static int w_go(lua_State *L, void *ud)
{
    struct world *w = ud;
    struct player *p = player_arg(L, w, 1);
    const char *dir = luaL_checkstring(L, 2);
    const struct room *rm = &rooms[p->room];
    for (int i = 0; i < 4 && rm->exits[i].dir; i++)
        if (strcmp(rm->exits[i].dir, dir) == 0) {
            p->room = rm->exits[i].to;
            lua_pushstring(L, rooms[p->room].name);
            return 1;
        }
    lua_pushnil(L);
    lua_pushliteral(L, "you cannot go that way");
    return 2;
}

/* world.take(id, item) / world.drop(id, item) -> true | nil, why */
static int move_item(lua_State *L, struct world *w, int take)
{
    struct player *p = player_arg(L, w, 1);
    int it = item_named(luaL_checkstring(L, 2));
    long carrier = -1 - (long)(p - w->players);
    long from = take ? p->room : carrier, to = take ? carrier : p->room;
    if (it < 0 || w->item_loc[it] != from) {
        lua_pushnil(L);
        lua_pushstring(L, take ? "there is no such thing here" : "you do not carry that");
        return 2;
    }
    w->item_loc[it] = to;
    lua_pushboolean(L, 1);
    return 1;
}

static int w_take(lua_State *L, void *ud)
{
    return move_item(L, ud, 1);
}

static int w_drop(lua_State *L, void *ud)
{
    return move_item(L, ud, 0);
}

/* world.inventory(id) -> {item names} */
static int w_inventory(lua_State *L, void *ud)
{
    struct world *w = ud;
    struct player *p = player_arg(L, w, 1);
    long carrier = -1 - (long)(p - w->players);
    lua_newtable(L);
    int n = 0;
    for (int i = 0; i < NITEMS; i++)
        if (w->item_loc[i] == carrier) {
            lua_pushstring(L, items[i].name);
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

/* world.who() -> {{name=, room=}, ...} in join order of slots */
static int w_who(lua_State *L, void *ud)
{
    struct world *w = ud;
    lua_newtable(L);
    int n = 0;
    for (int i = 0; i < MUD_MAX_PLAYERS; i++)
        if (w->players[i].used) {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, w->players[i].name);
            lua_setfield(L, -2, "name");
            lua_pushstring(L, rooms[w->players[i].room].name);
            lua_setfield(L, -2, "room");
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

/* world.roommates(id) -> {ids of the others in the same room} */
static int w_roommates(lua_State *L, void *ud)
{
    struct world *w = ud;
    struct player *p = player_arg(L, w, 1);
    lua_newtable(L);
    int n = 0;
    for (int i = 0; i < MUD_MAX_PLAYERS; i++)
        if (w->players[i].used && w->players[i].room == p->room && &w->players[i] != p) {
            lua_pushinteger(L, i + 1);
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

/* world.ticks() -> world ticks since the start (10 a second) */
static int w_ticks(lua_State *L, void *ud)
{
    const struct world *w = ud;
    lua_pushinteger(L, (lua_Integer)w->ticks);
    return 1;
}

int world_register(rd_reactor *r, struct world *w)
{
    static const struct {
        const char *name;
        rd_cfunction fn;
    } fns[] = {
        {"world.join", w_join},
        {"world.leave", w_leave},
        {"world.look", w_look},
        {"world.go", w_go},
        {"world.take", w_take},
        {"world.drop", w_drop},
        {"world.who", w_who},
        {"world.inventory", w_inventory},
        {"world.roommates", w_roommates},
        {"world.ticks", w_ticks},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (rd_register(r, fns[i].name, fns[i].fn, w) != 0) return -1;
    return 0;
}
