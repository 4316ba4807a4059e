/* test_api.c: reactord.h (the library API) as a host program uses it. */
#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reactord.h"
#include "test.h"

static rd_reactor *make(const rd_options *o)
{
    char err[256] = "";
    rd_reactor *r = rd_new(o, err, sizeof err);
    if (!r) fprintf(stderr, "rd_new: %s\n", err);
    CHECK(r != NULL);
    return r;
}

static void ok(rd_reactor *r, const char *src)
{
    if (rd_dostring(r, src, "=test") != 0) {
        fprintf(stderr, "lua: %s\n", rd_error(r));
        CHECK(!"the Lua chunk failed");
    }
}

static lua_Integer global_int(rd_reactor *r, const char *name)
{
    lua_State *L = rd_lua(r);
    lua_getglobal(L, name);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *global_str(rd_reactor *r, const char *name, char *buf, size_t n)
{
    lua_State *L = rd_lua(r);
    lua_getglobal(L, name);
    const char *s = lua_tostring(L, -1);
    snprintf(buf, n, "%s", s ? s : "");
    lua_pop(L, 1);
    return s ? buf : NULL;
}

/* A blocking loopback client of port (the listen backlog completes it). */
static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static const char echo_server[] =
    "local P = { dataReceived = function(self, d) self.transport:write('echo:' .. d) end }\n"
    "port = assert(reactor.listenTCP(0, P)):getHost().port\n";

TEST(api_create_and_free)
{
    rd_free(make(NULL));
    rd_options o = {.max_memory = 64 << 20, .script_timeout = 1, .max_connections = 10};
    rd_reactor *r = make(&o);
    ok(r, "assert(type(reactor.listenTCP) == 'function')");
    ok(r, echo_server); /* an open listener and a timer at free: all released */
    ok(r, "reactor.callLater(3600, function() end)");
    rd_free(r);
    rd_free(NULL);
}

/* Two reactors in one process: b's client talks to a's server, each on its
 * own loop, each stepped by the host. */
TEST(api_two_reactors_at_once)
{
    rd_reactor *a = make(NULL), *b = make(NULL);
    ok(a, echo_server);
    lua_pushinteger(rd_lua(b), global_int(a, "port"));
    lua_setglobal(rd_lua(b), "port");
    ok(b, "local C = { connectionMade = function(self) self.transport:write('hi') end,\n"
          "  dataReceived = function(self, d) got = d; self.transport:loseConnection() end }\n"
          "reactor.connectTCP('127.0.0.1', port, C)\n");
    struct pollfd p[2] = {{.fd = rd_fd(a), .events = POLLIN}, {.fd = rd_fd(b), .events = POLLIN}};
    CHECK(p[0].fd >= 0 && p[1].fd >= 0 && p[0].fd != p[1].fd);
    char buf[64];
    for (int i = 0; i < 1000 && !global_str(b, "got", buf, sizeof buf); i++) {
        poll(p, 2, 1000);
        CHECK(rd_step(a, 0) == 0);
        CHECK(rd_step(b, 0) == 0);
    }
    CHECK(strcmp(global_str(b, "got", buf, sizeof buf), "echo:hi") == 0);
    ok(a, "assert(reactor.core._stats().listeners == 1)");
    ok(b, "assert(reactor.core._stats().listeners == 0)");
    rd_free(a);
    rd_free(b);
}

/* Nothing due for an hour and a listener open: step(0) returns at once, every
 * time (one that blocked would hang here until the runner's alarm). */
TEST(api_step0_never_blocks)
{
    rd_reactor *r = make(NULL);
    ok(r, echo_server);
    ok(r, "fired = 0; reactor.callLater(3600, function() fired = 1 end)");
    for (int i = 0; i < 10000; i++)
        CHECK_EQ(rd_step(r, 0), 0);
    CHECK_EQ(global_int(r, "fired"), 0);
    double d = rd_next_deadline(r);
    CHECK(d > 3000 && d <= 3600);
    /* with a timeout, a step waits for the timer that is due within it */
    ok(r, "reactor.callLater(0.01, function() fired = 2 end)");
    for (int i = 0; i < 1000 && global_int(r, "fired") != 2; i++)
        CHECK_EQ(rd_step(r, 10), 0);
    CHECK_EQ(global_int(r, "fired"), 2);
    rd_free(r);
}

static void host_tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)revents;
    int *ticks = w->data;
    if (++*ticks == 3) ev_break(ev, EVBREAK_ALL);
}

TEST(api_on_the_hosts_libev_loop)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    rd_options o = {.loop = ev};
    rd_reactor *r = make(&o);
    CHECK_EQ(rd_fd(r), -1); /* the host polls its own loop */
    CHECK(strstr(rd_error(r), "host's libev loop") != NULL);
    ok(r, "fired = 0; reactor.callLater(0, function() fired = fired + 1 end)");
    int ticks = 0;
    ev_timer tick;
    ev_timer_init(&tick, host_tick, 0.001, 0.001);
    tick.data = &ticks;
    ev_timer_start(ev, &tick);
    ev_run(ev, 0); /* the host's loop runs the reactor's timer beside its own */
    CHECK_EQ(ticks, 3);
    CHECK_EQ(global_int(r, "fired"), 1);
    ev_timer_stop(ev, &tick);
    rd_free(r);
    ev_loop_destroy(ev); /* the host's, after rd_free */
}

/* The host's own poll() loop sleeps on rd_fd alone: the listener the script
 * opened before any step, the connection accepted in a callback and a timer
 * started in another each wake it. */
TEST(api_fd_in_the_hosts_poll_loop)
{
    rd_reactor *r = make(NULL);
    int fd = rd_fd(r);
    CHECK(fd >= 0);
    ok(r, "local P = { dataReceived = function(self, d)\n"
          "  self.transport:write('echo:' .. d)\n"
          "  reactor.callLater(0.02, function() timed = 1 end) end }\n"
          "port = assert(reactor.listenTCP(0, P)):getHost().port\n");
    CHECK_EQ(rd_next_deadline(r), -1);
    int c = client((int)global_int(r, "port"));
    CHECK_EQ(write(c, "ping", 4), 4);
    char buf[32];
    ssize_t n = 0;
    fcntl(c, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 100 && n <= 0; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 5000), 1); /* never a timeout: it is readable when work is due */
        CHECK(rd_step(r, 0) >= 0);
        n = read(c, buf, sizeof buf);
    }
    CHECK_EQ(n, 9);
    CHECK(memcmp(buf, "echo:ping", 9) == 0);
    for (int i = 0; i < 100 && global_int(r, "timed") != 1; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 5000), 1); /* the timer's deadline wakes it */
        CHECK(rd_step(r, 0) >= 0);
    }
    CHECK_EQ(global_int(r, "timed"), 1);
    close(c);
    rd_free(r);
}

/* stdout and stderr go to a file while the reactor fails every way it can */
TEST(api_errors_are_returned_not_printed)
{
    char path[] = "/tmp/rd_api_outXXXXXX";
    int out = mkstemp(path);
    CHECK(out >= 0);
    unlink(path);
    int saved1 = dup(1), saved2 = dup(2);
    dup2(out, 1);
    dup2(out, 2);
    rd_reactor *r = make(NULL); /* no log callback: records are dropped */
    int e1 = rd_dostring(r, "this is not Lua", "=host");
    char m1[512];
    snprintf(m1, sizeof m1, "%s", rd_error(r));
    int e2 = rd_load(r, "/nonexistent/game.lua");
    char m2[512];
    snprintf(m2, sizeof m2, "%s", rd_error(r));
    int e3 = rd_dostring(r, "error('thrown by the script')", "=host");
    char m3[512];
    snprintf(m3, sizeof m3, "%s", rd_error(r));
    int e4 = rd_reload(r, "/nonexistent/game.lua");
    ok(r,
       "reactor.core.log('a record'); reactor.callLater(0, function() error('in a callback') end)");
    rd_step(r, 0);
    rd_free(r);
    fflush(stdout);
    fflush(stderr);
    dup2(saved1, 1);
    dup2(saved2, 2);
    close(saved1);
    close(saved2);
    CHECK_EQ(lseek(out, 0, SEEK_END), 0); /* nothing was printed */
    close(out);
    CHECK_EQ(e1, -1);
    CHECK(strstr(m1, "host:1:") == m1);
    CHECK_EQ(e2, -1);
    CHECK(strstr(m2, "/nonexistent/game.lua") != NULL);
    CHECK_EQ(e3, -1);
    CHECK(strstr(m3, "host:1: thrown by the script") == m3);
    CHECK(strstr(m3, "traceback") != NULL);
    CHECK_EQ(e4, -1);
}

static char reported[2][512];
static int nreported;

/* the signature is rd_error_fn's */
// cppcheck-suppress constParameter
static void on_error(void *ud, const char *msg)
{
    CHECK(ud == (void *)reported);
    if (nreported < 2) snprintf(reported[nreported], sizeof reported[0], "%s", msg);
    nreported++;
}

static int nlogged;
static void on_log(void *ud, const char *line)
{
    (void)ud, (void)line;
    nlogged++;
}

TEST(api_lua_error_reaches_the_error_callback)
{
    rd_options o = {.on_error = on_error, .error_ud = reported, .log = on_log};
    rd_reactor *r = make(&o);
    ok(r, "reactor.callLater(0, function() error('boom') end)\n"
          "local P = { dataReceived = function(self, d) error('bad ' .. d) end,\n"
          "  connectionLost = function() lost = 1 end }\n"
          "port = assert(reactor.listenTCP(0, P)):getHost().port\n");
    CHECK_EQ(rd_step(r, 0), 0);
    CHECK_EQ(nreported, 1);
    CHECK(strstr(reported[0], "error in callLater: ") == reported[0]);
    CHECK(strstr(reported[0], "boom") != NULL);
    int c = client((int)global_int(r, "port"));
    CHECK_EQ(write(c, "input", 5), 5);
    for (int i = 0; i < 1000 && global_int(r, "lost") != 1; i++)
        CHECK(rd_step(r, 1) >= 0);
    CHECK_EQ(nreported, 2); /* the connection's error too, and it was closed */
    CHECK(strstr(reported[1], "error in dataReceived: ") == reported[1]);
    CHECK(strstr(reported[1], "bad input") != NULL);
    CHECK_EQ(nlogged, 0);
    close(c);
    rd_free(r);
}

static int add(lua_State *L, void *ud)
{
    int *calls = ud;
    ++*calls;
    lua_pushinteger(L, luaL_checkinteger(L, 1) + luaL_checkinteger(L, 2));
    return 1;
}

TEST(api_register_c_function)
{
    rd_reactor *r = make(NULL);
    int calls = 0;
    CHECK_EQ(rd_register(r, "world.math.add", add, &calls), 0);
    CHECK_EQ(rd_register(r, "add", add, &calls), 0);
    ok(r, "sum = world.math.add(2, 3) + add(10, 20)");
    CHECK_EQ(global_int(r, "sum"), 35);
    CHECK_EQ(calls, 2);
    CHECK_EQ(rd_dostring(r, "world.math.add('x', 1)", "=host"), -1);
    CHECK(strstr(rd_error(r), "bad argument #1 to 'add'") != NULL);
    ok(r, "notatable = 1");
    CHECK_EQ(rd_register(r, "notatable.f", add, &calls), -1);
    CHECK(strstr(rd_error(r), "'notatable' is a number") != NULL);
    rd_free(r);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(api_reload_keeps_state)
{
    char dir[] = "/tmp/rd_apiXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/game.lua", dir);
    write_file(path, "state = state or { n = 0 }\n"
                     "function greet() state.n = state.n + 1; return 'v1 ' .. state.n end\n");
    rd_reactor *r = make(NULL);
    CHECK_EQ(rd_load(r, path), 0);
    ok(r, "out = greet()");
    write_file(path, "state = state or { n = 0 }\n"
                     "function greet() state.n = state.n + 1; return 'v2 ' .. state.n end\n");
    CHECK_EQ(rd_reload(r, NULL), 0);
    ok(r, "out = greet()");
    char buf[32];
    CHECK(strcmp(global_str(r, "out", buf, sizeof buf), "v2 2") == 0);
    write_file(path, "function greet( broken\n");
    CHECK_EQ(rd_reload(r, NULL), -1);
    CHECK(strstr(rd_error(r), "game.lua:2:") != NULL);
    ok(r, "out = greet()"); /* the old one still runs */
    CHECK(strcmp(global_str(r, "out", buf, sizeof buf), "v2 3") == 0);
    rd_free(r);
    unlink(path);
    rmdir(dir);
}

/* reactor.iterate() from a Lua main loop: one iteration, listeners stay. */
TEST(api_iterate_from_lua_keeps_listeners)
{
    rd_reactor *r = make(NULL);
    ok(r, echo_server);
    ok(r, "fired = 0; reactor.callLater(0, function() fired = 1 end)\n"
          "for _ = 1, 100 do assert(reactor.iterate(0) == false) end\n"
          "assert(reactor.core._stats().listeners == 1)\n"
          "reactor.callLater(0, function()\n"
          "  local ok, err = pcall(reactor.iterate)\n"
          "  nested = err end)\n"
          "reactor.iterate(0)\n"
          "reactor.callLater(0, reactor.stop)\n"
          "stopped = reactor.iterate(1)\n"
          "assert(reactor.core._stats().listeners == 0)\n");
    CHECK_EQ(global_int(r, "fired"), 1);
    char buf[256];
    CHECK(strstr(global_str(r, "nested", buf, sizeof buf), "already running") != NULL);
    lua_getglobal(rd_lua(r), "stopped");
    CHECK(lua_toboolean(rd_lua(r), -1));
    lua_pop(rd_lua(r), 1);
    rd_free(r);
}
