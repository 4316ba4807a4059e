/* embed_step.c: what rd_step(r, 0) costs a host's frame (reactord.h), per
 * call: with nothing to do, then with 1,000 idle connections open; each
 * with rd_fd unused and in use (the fd keeps libev's epoll set in step with
 * one more non-blocking pass per call), and rd_next_deadline's cost.
 *   embed_step [CALLS]    (default 1,000,000) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>

#include "reactord.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void measure(rd_reactor *r, const char *what, long calls)
{
    double t0 = now(), c0 = cpu();
    for (long i = 0; i < calls; i++)
        if (rd_step(r, 0) != 0) {
            fprintf(stderr, "embed_step: %s\n", rd_error(r));
            exit(1);
        }
    double t = now() - t0, c = cpu() - c0;
    printf("%-44s %8.3f us/call wall, %8.3f us/call CPU\n", what, t / (double)calls * 1e6,
           c / (double)calls * 1e6);
}

static void measure_deadline(rd_reactor *r, const char *what, long calls)
{
    double t0 = now(), sum = 0;
    for (long i = 0; i < calls; i++)
        sum += rd_next_deadline(r);
    double t = now() - t0;
    printf("%-44s %8.3f us/call wall (%g)\n", what, t / (double)calls * 1e6, sum > 0 ? 1.0 : 0.0);
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 1000000;
    char err[256];
    rd_reactor *r = rd_new(NULL, err, sizeof err);
    if (!r) return fprintf(stderr, "embed_step: %s\n", err), 1;
    if (rd_dostring(r,
                    "accepted = 0\n"
                    "local P = { connectionMade = function() accepted = accepted + 1 end }\n"
                    "port = assert(reactor.listenTCP(0, P)):getHost().port\n"
                    "reactor.callLater(3600, function() end)\n",
                    "=bench") != 0)
        return fprintf(stderr, "embed_step: %s\n", rd_error(r)), 1;
    measure(r, "step(0), idle (a listener, a timer)", calls);
    measure_deadline(r, "next_deadline, idle", calls);

    lua_State *L = rd_lua(r);
    lua_getglobal(L, "port");
    int port = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    enum { N = 1000 };
    static int fds[N];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0)
            return perror("embed_step: connect"), 1;
        if (i % 64 == 63) rd_step(r, 0); /* accept as we go: the backlog is finite */
    }
    for (int i = 0; i < 10000; i++) {
        lua_getglobal(L, "accepted");
        int n = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (n == N) break;
        rd_step(r, 0.01);
    }
    measure(r, "step(0), 1,000 idle connections", calls);
    measure_deadline(r, "next_deadline, 1,000 idle connections", calls / 10);
    if (rd_fd(r) < 0) return fprintf(stderr, "embed_step: %s\n", rd_error(r)), 1;
    measure(r, "step(0), 1,000 idle connections, rd_fd in use", calls);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    for (int i = 0; i < 100; i++)
        rd_step(r, 0.001);
    measure(r, "step(0), idle, rd_fd in use", calls);
    rd_free(r);
    return 0;
}
