/* hold.c: see hold.h. */
#include "hold.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* stdout is gone: nothing to tell */
        p += w;
        n -= (size_t)w;
    }
}

/* Hold fd 1 in a temporary file; a second hold is a no-op. If no file can
 * be made, output is simply not held. */
static void hold_start(struct hold *h)
{
    if (h->saved >= 0) return;
    fflush(stdout);
    char path[] = "/tmp/reactord-stdout-XXXXXX";
    int tmp = mkstemp(path);
    if (tmp < 0) return;
    unlink(path);
    int saved = dup(1);
    if (saved < 0 || dup2(tmp, 1) < 0) {
        if (saved >= 0) close(saved);
        close(tmp);
        return;
    }
    h->saved = saved;
    h->tmp = tmp;
}

void hold_release(struct hold *h, const char *lines, size_t n)
{
    if (h->saved < 0) {
        if (n) {
            fflush(stdout);
            write_all(1, lines, n);
        }
        return;
    }
    fflush(stdout);
    dup2(h->saved, 1);
    close(h->saved);
    h->saved = -1;
    write_all(1, lines, n);
    off_t end = lseek(h->tmp, 0, SEEK_CUR);
    if (end > 0 && lseek(h->tmp, 0, SEEK_SET) == 0) {
        char buf[65536];
        ssize_t r;
        while ((r = read(h->tmp, buf, sizeof buf)) > 0)
            write_all(1, buf, (size_t)r);
    }
    close(h->tmp);
    h->tmp = -1;
}

static int l_hold(lua_State *L)
{
    hold_start(lua_touserdata(L, lua_upvalueindex(1)));
    return 0;
}

static int l_release(lua_State *L)
{
    size_t n = 0;
    const char *lines = luaL_optlstring(L, 1, "", &n);
    hold_release(lua_touserdata(L, lua_upvalueindex(1)), lines, n);
    return 0;
}

void hold_push(lua_State *L, struct hold *h)
{
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, l_hold, 1);
    lua_setfield(L, -2, "hold");
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, l_release, 1);
    lua_setfield(L, -2, "release");
}
