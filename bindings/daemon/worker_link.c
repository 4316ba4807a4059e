/* worker_link.c: see worker_link.h. */
#include "worker_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "link.h"

int worker_link_parse(struct worker_link *w, const char *arg)
{
    int fd, id, count;
    long master;
    char end;
    if (sscanf(arg, "%d:%d:%d:%ld%c", &fd, &id, &count, &master, &end) != 4) return -1;
    if (fd < 0 || id < 1 || count < id || master < 1) return -1;
    w->fd = fd;
    w->id = id;
    w->count = count;
    w->master = (pid_t)master;
    fcntl(fd, F_SETFD, FD_CLOEXEC); /* a script's child processes do not hold it */
    return 0;
}

static struct worker_link *self(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* listen(key, host, port, backlog) -> fd, or nil and the master's message.
 * Blocks until the master answers (it answers at once; 10 s at most). */
static int l_listen(lua_State *L)
{
    struct worker_link *w = self(L);
    const char *key = luaL_checkstring(L, 1);
    const char *host = luaL_checkstring(L, 2);
    lua_Integer port = luaL_checkinteger(L, 3);
    lua_Integer backlog = luaL_optinteger(L, 4, 511);
    char msg[LINK_MAX];
    int n = snprintf(msg, sizeof msg, "L %s\t%s\t%lld\t%lld", key, host, (long long)port,
                     (long long)backlog);
    if (n < 0 || (size_t)n >= sizeof msg) return luaL_error(L, "listener key too long");
    int r = link_send(w->fd, msg, (size_t)n, -1, 0);
    if (r < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "the master is gone (%s)", strerror(-r));
        return 2;
    }
    for (;;) {
        struct pollfd p = {.fd = w->fd, .events = POLLIN};
        int k = poll(&p, 1, 10000);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "the master did not answer in 10 s");
            return 2;
        }
        int fd;
        ssize_t got = link_recv(w->fd, msg, sizeof msg, &fd);
        if (got == -EAGAIN) continue;
        if (got <= 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "the master is gone");
            return 2;
        }
        if (msg[0] == 'l' && fd >= 0) {
            lua_pushinteger(L, fd);
            return 1;
        }
        if (fd >= 0) close(fd);
        lua_pushnil(L);
        lua_pushstring(L,
                       msg[0] == 'e' && msg[1] == ' ' ? msg + 2 : "the master answered nonsense");
        return 2;
    }
}

/* send(msg) -> true, or nil and why (never blocks: a full link drops it) */
static int l_send(lua_State *L)
{
    size_t n;
    const char *msg = luaL_checklstring(L, 1, &n);
    int r = link_send(self(L)->fd, msg, n < LINK_MAX ? n : LINK_MAX - 1, -1, 1);
    if (r < 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(-r));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* orphaned() -> true once the master is gone (this process was re-parented) */
static int l_orphaned(lua_State *L)
{
    lua_pushboolean(L, getppid() != self(L)->master);
    return 1;
}

void worker_link_push(lua_State *L, struct worker_link *w)
{
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, w->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, w->count);
    lua_setfield(L, -2, "count");
    static const struct {
        const char *name;
        lua_CFunction fn;
    } fns[] = {{"listen", l_listen}, {"send", l_send}, {"orphaned", l_orphaned}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        lua_pushlightuserdata(L, w);
        lua_pushcclosure(L, fns[i].fn, 1);
        lua_setfield(L, -2, fns[i].name);
    }
}
