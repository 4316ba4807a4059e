/* world.h: the MUD's world, owned by the C host: rooms, items and where
 * each item and player is. Lua's game logic sees it only through the
 * functions world_register gives it, so a reload of the logic keeps it. */
#ifndef MUD_WORLD_H
#define MUD_WORLD_H

#include "reactord.h"

enum { MUD_MAX_PLAYERS = 512, MUD_NAME = 24 };

struct player {
    int used;
    int room;
    char name[MUD_NAME + 1];
};

struct world {
    struct player players[MUD_MAX_PLAYERS];
    long *item_loc; /* per item: a room (>= 0) or -1 - the player carrying it */
    unsigned long ticks;
};

int world_init(struct world *w);
void world_free(struct world *w);
/* world.join, world.look, ... as rd_register'ed C functions over w */
int world_register(rd_reactor *r, struct world *w);

#endif
