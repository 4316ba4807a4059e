/* install_host.c: the smallest host, built by install_test.sh against an
 * installed reactord with nothing but pkg-config's flags. It serves an echo
 * protocol on a free port, talks to it through the reactor itself, and
 * prints what came back. */
#include <reactord.h>
#include <stdio.h>

int main(void)
{
    char err[256];
    rd_reactor *r = rd_new(NULL, err, sizeof err);
    if (!r) return fprintf(stderr, "host: %s\n", err), 1;
    if (rd_dostring(
            r,
            "local E = { dataReceived = function(s, d) s.transport:write('echo:' .. d) end }\n"
            "local port = reactor.listenTCP(0, E):getHost().port\n"
            "reactor.connectTCP('127.0.0.1', port, {\n"
            "  connectionMade = function(s) s.transport:write('hi') end,\n"
            "  dataReceived = function(s, d) got = d; s.transport:loseConnection() end })\n",
            "=host") != 0)
        return fprintf(stderr, "host: %s\n", rd_error(r)), 1;
    lua_State *L = rd_lua(r);
    for (int i = 0; i < 1000; i++) { /* bounded: each step waits up to 1 s for an event */
        if (rd_step(r, 1) < 0) return fprintf(stderr, "host: %s\n", rd_error(r)), 1;
        lua_getglobal(L, "got");
        int done = lua_isstring(L, -1);
        if (done) printf("%s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        if (done) break;
    }
    rd_free(r);
    return 0;
}
