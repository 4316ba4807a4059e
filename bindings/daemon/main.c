/*
 * main.c: the reactord daemon. Options are parsed here; everything after
 * (loading the script, listening, signals) is scripts/reactor/daemon.lua,
 * run under lua_pcall like lua.c's pmain, so any failure becomes one
 * "reactord: ..." line and a non-zero exit, never a C stack dump.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "control.h"
#include "hold.h"
#include "master.h"
#include "reactor.h"
#include "worker_link.h"

static const char usage[] =
    "usage: reactord [options] SCRIPT [HOST]\n"
    "\n"
    "Serve the protocol in the Lua script SCRIPT on HOST (default 127.0.0.1).\n"
    "\n"
    "options:\n"
    "  -p, --port PORT   the main port, TCP (UDP for a script with udp = true)\n"
    "                    (default: the script's `port`, else 1060; 0 = any free)\n"
    "      --check       load and validate SCRIPT, then exit (0 = ok, 1 = broken)\n"
    "      --watch       reload SCRIPT (and the modules it requires from its folder)\n"
    "                    whenever one of them changes on disk\n"
    "      --script-timeout SECONDS  stop a callback that runs longer (default 1; 0 = none)\n"
    "      --max-memory MIB  Lua memory limit; an allocation past it fails its\n"
    "                        callback (default 1024; 0 = none)\n"
    "      --max-connections N  refuse connections beyond N open ones (default: no limit)\n"
    "      --idle-timeout SECONDS  close connections that send nothing for that long\n"
    "      --grace SECONDS   on SIGTERM/SIGINT, let connections finish this long (default 5)\n"
    "      --workers N       a master and N worker processes (auto = one per core;\n"
    "                        default 1 = this process serves); see reactord(1)\n"
    "      --shared-socket   with --workers: one listening socket for all workers\n"
    "                        (default: one SO_REUSEPORT socket per worker)\n"
    "      --control PATH    with --workers: answer --status on a Unix socket at PATH\n"
    "      --status PATH     print per-worker figures from the master at PATH\n"
    "  -h, --help        show this help\n"
    "  -V, --version     show the version\n"
    "\n"
    "SIGHUP reloads SCRIPT under the live connections; a broken script changes nothing.\n"
    "SIGINT or SIGTERM stops accepting, calls shutdownRequested(deadline) on every\n"
    "connection, waits up to --grace seconds for them to end, then aborts the rest\n"
    "and exits 0; a second SIGINT or SIGTERM stops at once.\n";

struct options {
    struct hold stdout_hold; /* the first line is the listening line */
    const char *script, *host;
    long port; /* -1 = not given */
    int check, watch;
    double script_timeout, grace, idle; /* seconds */
    long max_memory_mb, max_conns;
    long workers; /* resolved count (auto = cores) */
    int shared;   /* --shared-socket */
    const char *control, *status;
    struct worker_link link; /* fd -1 unless this process is a worker */
};

/* A counting allocator (skynet's lalloc): past the limit an allocation fails,
 * so the callback that asked for it fails with LUA_ERRMEM and its connection
 * is closed, while the server and every other connection go on. */
struct memlimit {
    size_t used, limit; /* bytes; limit 0 = none */
    int hit;            /* an allocation was refused since the last log record */
    char prefix[32];    /* "reactord: ", or "reactord: worker 2: " */
};

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct memlimit *m = ud;
    size_t old = ptr ? osize : 0; /* for a new block osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        m->used -= old;
        return NULL;
    }
    if (m->limit && nsize > old && m->used + (nsize - old) > m->limit) {
        m->hit = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) m->used = m->used - old + nsize;
    return p;
}

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "reactord: unprotected Lua error: %s\n", msg ? msg : "?");
    return 0; /* Lua aborts */
}

/* The daemon's log records: "reactord: " and, after the memory limit
 * refused an allocation, what the operator can do about it. */
static void daemon_log(void *ud, const char *line)
{
    struct memlimit *m = ud;
    if (m->hit && strstr(line, "not enough memory"))
        fprintf(stderr,
                "%s%s (--max-memory is %zu MiB: raise it, or find what holds on to memory)\n",
                m->prefix, line, m->limit / (1024 * 1024));
    else
        fprintf(stderr, "%s%s\n", m->prefix, line);
    m->hit = 0;
    fflush(stderr);
}

/* a non-negative number of seconds, or -1 */
static double parse_seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return (*s && *end == '\0' && v >= 0 && v < 1e9) ? v : -1;
}

static int fail_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "reactord: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see reactord --help)\n");
    return 2;
}

/* 0 = run, -1 = exit 0 (help/version printed), >0 = exit with that code */
static int parse(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"check", no_argument, NULL, 'c'},
        {"watch", no_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"script-timeout", required_argument, NULL, 'T'},
        {"max-memory", required_argument, NULL, 'M'},
        {"grace", required_argument, NULL, 'G'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"max-connections", required_argument, NULL, 'C'},
        {"workers", required_argument, NULL, 'W'},
        {"shared-socket", no_argument, NULL, 'S'},
        {"control", required_argument, NULL, 'K'},
        {"status", required_argument, NULL, 's'},
        {"worker-link", required_argument, NULL, 'L'}, /* the master's, not documented */
        {NULL, 0, NULL, 0},
    };
    o->stdout_hold.saved = o->stdout_hold.tmp = -1;
    o->script = o->host = NULL;
    o->port = -1;
    o->check = o->watch = 0;
    o->script_timeout = 1.0;
    o->grace = 5.0;
    o->idle = 0;
    o->max_memory_mb = 1024;
    o->max_conns = 0;
    o->workers = 1;
    o->shared = 0;
    o->control = o->status = NULL;
    o->link.fd = -1;
    opterr = 0; /* we say it ourselves, in one line */
    int ch;
    while ((ch = getopt_long(argc, argv, ":p:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'T':
            if ((o->script_timeout = parse_seconds(optarg)) < 0)
                return fail_usage("bad --script-timeout '%s': expected seconds (0 = none)", optarg);
            break;
        case 'G':
            if ((o->grace = parse_seconds(optarg)) < 0)
                return fail_usage("bad --grace '%s': expected seconds", optarg);
            break;
        case 'I':
            if ((o->idle = parse_seconds(optarg)) < 0)
                return fail_usage("bad --idle-timeout '%s': expected seconds (0 = none)", optarg);
            break;
        case 'M':
        case 'C': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 0)
                return fail_usage(ch == 'M' ? "bad --max-memory '%s': expected MiB (0 = none)"
                                            : "bad --max-connections '%s': expected a count",
                                  optarg);
            if (ch == 'M')
                o->max_memory_mb = v;
            else
                o->max_conns = v;
            break;
        }
        case 'W': {
            if (strcmp(optarg, "auto") == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                o->workers = n > 0 ? n : 1;
                break;
            }
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 1024)
                return fail_usage(
                    "bad --workers '%s': expected a count 1..1024, or auto (one per core)", optarg);
            o->workers = v;
            break;
        }
        case 'S':
            o->shared = 1;
            break;
        case 'K':
            if (!*optarg) return fail_usage("%s--control needs a path", "");
            o->control = optarg;
            break;
        case 's':
            if (!*optarg) return fail_usage("%s--status needs a path", "");
            o->status = optarg;
            break;
        case 'L':
            if (worker_link_parse(&o->link, optarg) < 0)
                return fail_usage("bad --worker-link '%s' (the master's own option)", optarg);
            break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || p < 0 || p > 65535)
                return fail_usage("bad port '%s': expected 0..65535", optarg);
            o->port = p;
            break;
        }
        case 'c':
            o->check = 1;
            break;
        case 'w':
            o->watch = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        case 'V':
            printf("reactord %s\n", REACTOR_VERSION);
            return -1;
        case ':':
            return fail_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            return fail_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    int rest = argc - optind;
    if (o->status) {
        if (rest > 0) return fail_usage("--status takes no SCRIPT (got '%s')", argv[optind]);
        return 0;
    }
    if (rest < 1) return fail_usage("%smissing SCRIPT", "");
    if (rest > 2) return fail_usage("unexpected argument '%s'", argv[optind + 2]);
    if (o->link.fd < 0 && o->workers > 1 && o->watch)
        return fail_usage("%s--watch serves one process only: with --workers, reload with SIGHUP "
                          "to the master",
                          "");
    o->script = argv[optind];
    if (rest == 2) o->host = argv[optind + 1];
    return 0;
}

/* Runs protected: require "reactor.daemon" and call its main(options). */
static int pmain(lua_State *L)
{
    struct options *o = lua_touserdata(L, 1);
    luaL_openlibs(L);
    reactor_preload(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "reactor.daemon");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, 0, 4);
    lua_pushstring(L, o->script);
    lua_setfield(L, -2, "script");
    if (o->host) {
        lua_pushstring(L, o->host);
        lua_setfield(L, -2, "host");
    }
    if (o->port >= 0) {
        lua_pushinteger(L, o->port);
        lua_setfield(L, -2, "port");
    }
    lua_pushboolean(L, o->check);
    lua_setfield(L, -2, "check");
    lua_pushboolean(L, o->watch);
    lua_setfield(L, -2, "watch");
    lua_pushnumber(L, o->script_timeout);
    lua_setfield(L, -2, "scriptTimeout");
    lua_pushnumber(L, o->grace);
    lua_setfield(L, -2, "grace");
    lua_pushnumber(L, o->idle);
    lua_setfield(L, -2, "idleTimeout");
    lua_pushinteger(L, o->max_conns);
    lua_setfield(L, -2, "maxConnections");
    lua_pushinteger(L, o->workers);
    lua_setfield(L, -2, "workers");
    hold_push(L, &o->stdout_hold);
    lua_setfield(L, -2, "stdout");
    if (o->link.fd >= 0) {
        worker_link_push(L, &o->link);
        lua_setfield(L, -2, "link");
    }
    lua_call(L, 1, 1);
    return 1;
}

int main(int argc, char **argv)
{
    struct options o;
    int r = parse(argc, argv, &o);
    if (r != 0) return r < 0 ? 0 : r;
    if (o.status) return control_status(o.status);
    /* core sends with MSG_NOSIGNAL; this covers scripts' C modules, and a
     * master (or a worker) whose stdout reader has gone */
    signal(SIGPIPE, SIG_IGN);
    if (o.link.fd < 0 && (o.workers > 1 || o.control)) {
        struct master_opts mo = {(int)o.workers, o.shared, o.control, o.script, argc, argv};
        return master_run(&mo);
    }
    struct memlimit mem = {0, (size_t)o.max_memory_mb * 1024 * 1024, 0, "reactord: "};
    if (o.link.fd >= 0) snprintf(mem.prefix, sizeof mem.prefix, "reactord: worker %d: ", o.link.id);
    lua_State *L = lua_newstate(limited_alloc, &mem);
    if (!L) {
        fprintf(stderr, "reactord: not enough memory\n");
        return 1;
    }
    lua_atpanic(L, panic);
    /* Lua's generational collector: what a server allocates per read (the
     * data string, a request's tables) dies young, and the incremental one
     * re-marks the whole heap every few reads of 64 KiB (30 % of the CPU of
     * an echo at 50 connections); a script may switch back with
     * collectgarbage("incremental") */
    lua_gc(L, LUA_GCGEN, 0, 0);
    reactor_set_log(L, daemon_log, &mem);
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &o);
    int status = lua_pcall(L, 1, 1, 0);
    int code;
    if (status != LUA_OK) {
        /* daemon.lua raises user errors as plain "what went wrong" strings */
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s%s\n", mem.prefix, msg ? msg : "(error object is not a string)");
        code = 1;
    } else {
        code = (int)lua_tointeger(L, -1);
    }
    hold_release(&o.stdout_hold, "", 0); /* whatever was held still goes out */
    fflush(stdout);
    lua_close(L);
    return code;
}
