/*
 * mud.c: a small multi-player text adventure, Twisted Reality's way round:
 * this C host owns the world (world.c) and its 10 Hz tick in its own
 * ppoll() loop; reactord, linked through reactord.h, serves the players;
 * the game's logic is game.lua, reloaded whenever the file changes (or on
 * SIGHUP) with every player, room and inventory kept.
 *
 *   mud [-p PORT] [-g game.lua] [HOST]    (PORT 0 = any free; default 4000)
 *   mud ... -t TICKS                      run TICKS ticks, then print the
 *                                         tick jitter (bench/embed.sh)
 *   mud ... -s MS                         sleep only until MS milliseconds
 *                                         before a tick, then poll (default
 *                                         2; 0 = sleep to the tick itself)
 *
 * Its first stdout line is "mud listening on HOST:PORT".
 */
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "reactord.h"
#include "world.h"

#ifndef MUD_GAME
#define MUD_GAME "game.lua"
#endif

#define TICK 0.1 /* seconds: 10 ticks a second */
/* A sleeping process wakes late: on a shared VM ppoll() overshoots its
 * timeout by up to ~3 ms at the 99th percentile, whatever the timer slack.
 * So the host sleeps until SPIN before its tick, then keeps serving the
 * players with non-blocking steps until the tick is due: the tick is on
 * time to a few microseconds for about 2 % of one core. */
#define SPIN_DEFAULT 0.002

static volatile sig_atomic_t got_hup, got_term;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void log_line(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "mud: %s\n", line);
}

/* The part that is never reloaded: the listener and the sessions table.
 * Each connection's handlers look up the global `game` at every event, so
 * a reloaded game.lua takes over at the players' next line. */
static const char boot[] =
    "local basic = require 'reactor.basic'\n"
    "local Player = basic.LineReceiver:extend { delimiter = '\\n', MAX_LENGTH = 1024 }\n"
    "function Player:connectionMade() game.connected(self) end\n"
    "function Player:lineReceived(line) game.line(self, line) end\n"
    "function Player:connectionLost(reason) game.lost(self, reason) end\n"
    "local l = assert(reactor.listenTCP(mud_port, Player, mud_host))\n"
    "local a = l:getHost()\n"
    "mud_banner = ('mud listening on %s:%d'):format(a.host, a.port)\n";

static int mtime_of(const char *path, struct timespec *t, off_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *t = st.st_mtim;
    *size = st.st_size;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long port = 4000, ticks_to_run = 0;
    double spin = SPIN_DEFAULT;
    const char *game = MUD_GAME, *host = "127.0.0.1";
    int ch;
    while ((ch = getopt(argc, argv, "p:g:t:s:h")) != -1) {
        char *end;
        switch (ch) {
        case 'p':
            port = strtol(optarg, &end, 10);
            if (!*optarg || *end || port < 0 || port > 65535) {
                fprintf(stderr, "mud: bad port '%s': expected 0..65535\n", optarg);
                return 2;
            }
            break;
        case 'g':
            game = optarg;
            break;
        case 't':
            ticks_to_run = strtol(optarg, &end, 10);
            if (!*optarg || *end || ticks_to_run < 0) {
                fprintf(stderr, "mud: bad tick count '%s': expected an integer >= 0\n", optarg);
                return 2;
            }
            break;
        case 's':
            spin = strtod(optarg, &end) / 1e3;
            if (!*optarg || *end || !(spin >= 0 && spin < TICK)) {
                fprintf(stderr, "mud: bad spin '%s': expected milliseconds 0..99\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: mud [-p PORT] [-g game.lua] [-t TICKS] [-s SPIN_MS] [HOST]\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind < argc) host = argv[optind];
    signal(SIGPIPE, SIG_IGN);
    /* wake at the tick, not up to 50 us later (the default timer slack) */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct world w;
    if (world_init(&w) != 0) return fprintf(stderr, "mud: not enough memory\n"), 1;
    char err[512];
    rd_options o = {.log = log_line, .script_timeout = 1, .max_memory = 256u << 20};
    rd_reactor *r = rd_new(&o, err, sizeof err);
    if (!r) return fprintf(stderr, "mud: %s\n", err), 1;
    lua_State *L = rd_lua(r);
    lua_pushinteger(L, port);
    lua_setglobal(L, "mud_port");
    lua_pushstring(L, host);
    lua_setglobal(L, "mud_host");
    int code = 1;
    if (world_register(r, &w) != 0 || rd_dostring(r, "sessions = {}", "=mud") != 0 ||
        rd_load(r, game) != 0 || rd_dostring(r, boot, "=mud") != 0) {
        fprintf(stderr, "mud: %s\n", rd_error(r));
        goto out;
    }
    lua_getglobal(L, "mud_banner");
    printf("%s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    fflush(stdout);

    struct timespec seen;
    off_t seen_size = 0;
    mtime_of(game, &seen, &seen_size);
    int fd = rd_fd(r);
    if (fd < 0) {
        fprintf(stderr, "mud: %s\n", rd_error(r));
        goto out;
    }
    double *jitter = ticks_to_run > 0 ? calloc((size_t)ticks_to_run, sizeof *jitter) : NULL;
    double next = now() + TICK;
    code = 0;
    while (!got_term) {
        /* sleep until SPIN before the next tick or the reactor's next
         * deadline, whichever is first; inside SPIN, poll without sleeping */
        double wait = next - spin - now(), dl = rd_next_deadline(r);
        if (dl >= 0 && dl < wait) wait = dl;
        if (wait < 0) wait = 0;
        struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ppoll(&p, 1, &ts, NULL);
        /* the tick first, then the players: its time is the world's, not theirs */
        double t = now();
        int tick = t >= next;
        if (tick) {
            if (jitter && w.ticks < (unsigned long)ticks_to_run) jitter[w.ticks] = t - next;
            w.ticks++;
            next += TICK;
            if (next < t) next = t + TICK; /* far behind (a stopped process): no burst of ticks */
        }
        if (rd_step(r, 0) != 0) break; /* a script called reactor.stop() */
        if (!tick) continue;
        if (jitter && w.ticks >= (unsigned long)ticks_to_run) break;
        struct timespec m;
        off_t size;
        int changed = mtime_of(game, &m, &size) == 0 &&
                      (m.tv_sec != seen.tv_sec || m.tv_nsec != seen.tv_nsec || size != seen_size);
        if (changed || got_hup) {
            got_hup = 0;
            seen = m;
            seen_size = size;
            if (rd_reload(r, game) == 0)
                printf("mud: reloaded %s\n", game);
            else
                printf("mud: %s (the old game logic goes on)\n", rd_error(r));
            fflush(stdout);
        }
    }
    if (jitter) {
        size_t n = w.ticks < (unsigned long)ticks_to_run ? w.ticks : (size_t)ticks_to_run;
        qsort(jitter, n, sizeof *jitter, cmp_double);
        if (n)
            printf("ticks %zu jitter p50 %.3f ms p99 %.3f ms max %.3f ms\n", n, jitter[n / 2] * 1e3,
                   jitter[(size_t)((double)n * 0.99)] * 1e3, jitter[n - 1] * 1e3);
        free(jitter);
    }
out:
    rd_free(r);
    world_free(&w);
    return code;
}
