/*
 * master.c: see master.h. One thread, one poll loop over a signalfd, the
 * workers' links and the control socket; every state lives in struct master
 * (on main's stack), nothing global.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "link.h"

#define BEAT_LIMIT 2.0    /* seconds without a heartbeat: killed */
#define START_LIMIT 10.0  /* seconds to the first heartbeat */
#define BACKOFF_FIRST 0.1 /* seconds before the first restart ... */
#define BACKOFF_MAX 10.0  /* ... doubling up to this */
#define PARK_EXITS 5      /* more exits than this ... */
#define PARK_WINDOW 10.0  /* ... within this many seconds park the slot */
#define CHECK_LIMIT 10    /* seconds a reload's --check may take */

enum state { IDLE, STARTING, UP, PARKED };

struct slot {
    int id; /* 1..N */
    enum state state;
    pid_t pid; /* 0 when no worker runs */
    int link;  /* the master's end, -1 when none */
    double started, last_beat, restart_at, backoff;
    double exits[PARK_EXITS + 1]; /* the latest exits, a ring */
    int nexits;
    int killed;         /* SIGKILL sent: no second one */
    int reload_pending; /* SIGHUP sent, no answer yet */
    long long open, reads, memory, generation;
    char why[96]; /* the last exit, for --status of a parked slot */
};

/* A listening socket, by the worker's key for it (role|kind|host|port). */
struct group {
    char *key;
    char name[80];                /* "127.0.0.1:1060", as reactord prints it */
    struct sockaddr_storage addr; /* bound (the real port) */
    socklen_t alen;
    int backlog;
    int shared;           /* the one socket in shared mode, else -1 */
    int *fds;             /* per slot: its SO_REUSEPORT socket, or -1 */
    unsigned char *holds; /* per slot: its worker holds the socket */
};

struct retired {
    pid_t pid;
    int id;
};

struct master {
    const struct master_opts *o;
    char exe[PATH_MAX];
    pid_t self;
    struct slot *slots;
    struct group *groups;
    int ngroups;
    struct retired *retired;
    int nretired;
    int sigfd, control;
    sigset_t oldmask;
    int up_once;   /* a worker has served: before that, a failed start is fatal */
    int stopping;  /* SIGTERM/SIGINT seen */
    int exitcode;  /* what master_run returns */
    int reloading; /* answers still due */
    int reload_ok;
    double born;
    char *held; /* log lines held until the first listening lines are out */
    size_t nheld;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One "reactord: ..." line on stderr (held back until the first worker serves,
 * so the first line out is still the listening line). */
static void mlog(struct master *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mlog(struct master *m, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    line[n] = '\0';
    if (!m->up_once) {
        char *p = realloc(m->held, m->nheld + (size_t)n + 11);
        if (!p) return;
        m->held = p;
        memcpy(p + m->nheld, "reactord: ", 10);
        memcpy(p + m->nheld + 10, line, (size_t)n);
        m->nheld += (size_t)n + 10;
        return;
    }
    fprintf(stderr, "reactord: %s", line);
    fflush(stderr);
}

static void release_log(struct master *m)
{
    m->up_once = 1;
    if (m->held) {
        fwrite(m->held, 1, m->nheld, stderr);
        fflush(stderr);
        free(m->held);
        m->held = NULL;
        m->nheld = 0;
    }
}

static const char *signame(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"}, {SIGSEGV, "SIGSEGV"},
                 {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
                 {SIGILL, "SIGILL"},   {SIGINT, "SIGINT"},   {SIGHUP, "SIGHUP"},
                 {SIGPIPE, "SIGPIPE"}, {SIGQUIT, "SIGQUIT"}, {SIGUSR1, "SIGUSR1"},
                 {SIGUSR2, "SIGUSR2"}, {SIGALRM, "SIGALRM"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig) return names[i].name;
    return NULL;
}

static void describe(int status, char *buf, size_t n)
{
    if (WIFEXITED(status)) {
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        const char *name = signame(WTERMSIG(status));
        if (name)
            snprintf(buf, n, "killed by %s", name);
        else
            snprintf(buf, n, "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(buf, n, "ended (status 0x%x)", (unsigned)status);
    }
}

/*{====================================================================
 * Listening sockets
 *=====================================================================*/

static int open_socket(const struct sockaddr *sa, socklen_t len, int reuseport, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, sa, len) < 0 || listen(fd, backlog > 0 ? backlog : 511) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static void name_of(struct group *g)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo((struct sockaddr *)&g->addr, g->alen, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(g->name, sizeof g->name, "?");
        return;
    }
    snprintf(g->name, sizeof g->name, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, serv);
}

static struct group *find_group(struct master *m, const char *key)
{
    for (int i = 0; i < m->ngroups; i++)
        if (strcmp(m->groups[i].key, key) == 0) return &m->groups[i];
    return NULL;
}

/* The first IPv4 address of host, else the first IPv6 one (as rd_listener_open). */
static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen)
{
    char h[256], serv[16];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
    } else {
        snprintf(h, sizeof h, "%s", host);
    }
    snprintf(serv, sizeof serv, "%d", port);
    struct addrinfo hints, *res, *pick = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int r = getaddrinfo(h, serv, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "%s", gai_strerror(r));
        return -1;
    }
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    if (!pick)
        for (struct addrinfo *a = res; a; a = a->ai_next)
            if (a->ai_family == AF_INET6) {
                pick = a;
                break;
            }
    if (!pick) {
        freeaddrinfo(res);
        snprintf(err, errlen, "no IPv4 or IPv6 address");
        return -1;
    }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A new group for key, bound on host:port: its listening line goes out now.
 * In reuseport mode a probe bind without SO_REUSEPORT comes first, so a
 * port another process holds is refused, not silently shared. */
static struct group *new_group(struct master *m, const char *key, const char *host, int port,
                               int backlog, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(host, port, &ss, &len, err, errlen) < 0) return NULL;
    int fd = open_socket((struct sockaddr *)&ss, len, 0, backlog);
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(-fd));
        return NULL;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len); /* the real port when 0 was asked */
    if (!m->o->shared) {
        close(fd);
        fd = -1;
    }
    int n = m->o->workers;
    struct group *gs = realloc(m->groups, sizeof *gs * (size_t)(m->ngroups + 1));
    int *fds = malloc(sizeof *fds * (size_t)n);
    unsigned char *holds = calloc((size_t)n, 1);
    char *k = strdup(key);
    if (gs) m->groups = gs;
    if (!gs || !fds || !holds || !k) {
        free(fds);
        free(holds);
        free(k);
        if (fd >= 0) close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct group *g = &m->groups[m->ngroups++];
    memset(g, 0, sizeof *g);
    g->key = k;
    g->addr = ss;
    g->alen = len;
    g->backlog = backlog;
    g->shared = fd;
    g->fds = fds;
    g->holds = holds;
    for (int i = 0; i < n; i++)
        fds[i] = -1;
    name_of(g);
    return g;
}

/* The socket slot s accepts on in g, made on its first ask. -errno. */
static int slot_socket(struct master *m, struct group *g, int s)
{
    if (g->shared >= 0) return g->shared;
    if (g->fds[s] < 0) {
        int fd = open_socket((struct sockaddr *)&g->addr, g->alen, 1, g->backlog);
        if (fd < 0) return fd;
        g->fds[s] = fd;
    }
    (void)m;
    return g->fds[s];
}

static void free_group(struct master *m, int i)
{
    struct group *g = &m->groups[i];
    for (int s = 0; s < m->o->workers; s++)
        if (g->fds[s] >= 0) close(g->fds[s]);
    if (g->shared >= 0) close(g->shared);
    free(g->fds);
    free(g->holds);
    free(g->key);
    m->groups[i] = m->groups[--m->ngroups];
}

/* Slot s no longer holds g: its socket closes (connections queued in it
 * are reset); a group nobody holds goes, and a later ask makes it anew. */
static void release(struct master *m, int gi, int s)
{
    struct group *g = &m->groups[gi];
    g->holds[s] = 0;
    if (g->fds[s] >= 0) {
        close(g->fds[s]);
        g->fds[s] = -1;
    }
    for (int i = 0; i < m->o->workers; i++)
        if (g->holds[i]) return;
    free_group(m, gi);
}

static void release_slot(struct master *m, int s)
{
    for (int gi = m->ngroups - 1; gi >= 0; gi--)
        if (m->groups[gi].holds[s]) release(m, gi, s);
}

/* "L key\thost\tport\tbacklog" from slot s: answer with its socket. */
static void on_listen(struct master *m, struct slot *sl, char *msg)
{
    char *key = msg + 2, *host = NULL, *port = NULL, *backlog = NULL;
    if ((host = strchr(key, '\t'))) *host++ = '\0';
    if (host && (port = strchr(host, '\t'))) *port++ = '\0';
    if (port && (backlog = strchr(port, '\t'))) *backlog++ = '\0';
    char err[256] = "bad request";
    int s = sl->id - 1, fd = -1;
    if (backlog) {
        struct group *g = find_group(m, key);
        int fresh = !g;
        if (!g) g = new_group(m, key, host, atoi(port), atoi(backlog), err, sizeof err);
        if (g) {
            fd = slot_socket(m, g, s);
            if (fd < 0) {
                snprintf(err, sizeof err, "%s", strerror(-fd));
                if (fresh) free_group(m, (int)(g - m->groups));
            } else {
                g->holds[s] = 1;
                if (fresh) { /* it accepts (into its queue) from now on */
                    printf("reactord: listening on %s\n", g->name);
                    fflush(stdout);
                }
            }
        }
    }
    char answer[300];
    int n = fd >= 0 ? snprintf(answer, sizeof answer, "l")
                    : snprintf(answer, sizeof answer, "e %s", err);
    link_send(sl->link, answer, (size_t)n, fd, 1);
}

/* "K key\nkey..." after a reload: what slot s holds now; the rest goes. */
static void on_keys(struct master *m, struct slot *sl, char *msg)
{
    int s = sl->id - 1;
    for (int gi = m->ngroups - 1; gi >= 0; gi--) {
        struct group *g = &m->groups[gi];
        if (!g->holds[s]) continue;
        int found = 0;
        for (char *k = msg + 2; *k && !found;) {
            char *end = strchr(k, '\n');
            size_t len = end ? (size_t)(end - k) : strlen(k);
            found = strlen(g->key) == len && strncmp(k, g->key, len) == 0;
            k += len + (end ? 1 : 0);
        }
        if (!found) release(m, gi, s);
    }
}

/*{====================================================================
 * Workers
 *=====================================================================*/

static void start(struct master *m, struct slot *sl)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        mlog(m, "worker %d: cannot make its link (%s); trying again in 1 s", sl->id,
             strerror(errno));
        sl->restart_at = now() + 1;
        return;
    }
    char linkarg[96];
    snprintf(linkarg, sizeof linkarg, "%d:%d:%d:%ld", sv[1], sl->id, m->o->workers, (long)m->self);
    int argc = m->o->argc;
    char **argv = calloc((size_t)argc + 3, sizeof *argv);
    if (!argv) {
        close(sv[0]);
        close(sv[1]);
        sl->restart_at = now() + 1;
        return;
    }
    argv[0] = m->o->argv[0];
    argv[1] = "--worker-link";
    argv[2] = linkarg;
    for (int i = 1; i < argc; i++)
        argv[i + 2] = m->o->argv[i];
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* the child: only async-signal-safe calls until exec */
        sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
        setpgid(0, 0); /* a terminal's ^C reaches the master, which drains them all once */
        prctl(PR_SET_PDEATHSIG, SIGTERM);   /* it drains when the master dies */
        if (getppid() != m->self) _exit(1); /* the master died before that */
        fcntl(sv[1], F_SETFD, 0);
        execv(m->exe, argv);
        _exit(127);
    }
    free(argv);
    close(sv[1]);
    if (pid < 0) {
        mlog(m, "worker %d: cannot fork (%s); trying again in 1 s", sl->id, strerror(errno));
        close(sv[0]);
        sl->restart_at = now() + 1;
        return;
    }
    sl->pid = pid;
    sl->link = sv[0];
    sl->state = STARTING;
    sl->started = sl->last_beat = now();
    sl->killed = sl->reload_pending = 0;
    sl->open = sl->reads = sl->memory = 0;
    sl->generation = 1;
}

static int children(const struct master *m)
{
    int n = m->nretired;
    for (int i = 0; i < m->o->workers; i++)
        n += m->slots[i].pid > 0;
    return n;
}

static void close_link(struct slot *sl)
{
    if (sl->link >= 0) close(sl->link);
    sl->link = -1;
}

static void stop_all(struct master *m, int code)
{
    if (!m->stopping) {
        m->stopping = 1;
        m->exitcode = code;
        /* the master's copies go: the last worker to close a socket closes it */
        while (m->ngroups)
            free_group(m, m->ngroups - 1);
    }
    for (int i = 0; i < m->o->workers; i++)
        if (m->slots[i].pid > 0) kill(m->slots[i].pid, SIGTERM);
    for (int i = 0; i < m->nretired; i++)
        kill(m->retired[i].pid, SIGTERM);
}

static void all_parked_check(struct master *m)
{
    for (int i = 0; i < m->o->workers; i++)
        if (m->slots[i].state != PARKED) return;
    mlog(m, "every worker slot is parked: the master exits (fix the script, then start again)");
    stop_all(m, 1);
}

static void reload_answered(struct master *m, struct slot *sl, int ok);

static void on_exit_slot(struct master *m, struct slot *sl, int status)
{
    char how[80];
    describe(status, how, sizeof how);
    pid_t pid = sl->pid;
    sl->pid = 0;
    close_link(sl);
    int was_up = sl->state == UP;
    sl->state = IDLE;
    if (sl->reload_pending) reload_answered(m, sl, 0);
    snprintf(sl->why, sizeof sl->why, "%s", how);
    if (m->stopping) {
        mlog(m, "worker %d (pid %ld) %s", sl->id, (long)pid, how);
        return;
    }
    if (!m->up_once) { /* the first worker never served: the script, not bad luck */
        mlog(m, "worker %d (pid %ld) %s before it served: the master exits", sl->id, (long)pid,
             how);
        stop_all(m, WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
        return;
    }
    double t = now();
    sl->exits[sl->nexits++ % (PARK_EXITS + 1)] = t;
    int recent = 0;
    for (int i = 0; i < PARK_EXITS + 1 && i < sl->nexits; i++)
        recent += t - sl->exits[i] < PARK_WINDOW;
    if (recent > PARK_EXITS) {
        sl->state = PARKED;
        release_slot(m, sl->id - 1); /* so the kernel routes nothing more to it */
        mlog(m,
             "worker %d (pid %ld) %s; slot %d parked: %d exits in %.0f s (the other workers go on "
             "serving; fix the script and reload, or restart reactord)",
             sl->id, (long)pid, how, sl->id, recent, PARK_WINDOW);
        all_parked_check(m);
        return;
    }
    if (was_up && t - sl->started >= PARK_WINDOW) sl->backoff = 0; /* it ran a good while */
    double delay = sl->backoff > 0 ? sl->backoff : BACKOFF_FIRST;
    sl->backoff = delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : delay * 2;
    sl->restart_at = t + delay;
    mlog(m, "worker %d (pid %ld) %s; restarting in %.1f s", sl->id, (long)pid, how, delay);
}

static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int found = 0;
        for (int i = 0; i < m->o->workers && !found; i++)
            if (m->slots[i].pid == pid) {
                found = 1;
                on_exit_slot(m, &m->slots[i], status);
            }
        for (int i = 0; i < m->nretired && !found; i++)
            if (m->retired[i].pid == pid) {
                found = 1;
                char how[80];
                describe(status, how, sizeof how);
                mlog(m, "retired worker %d (pid %ld) %s", m->retired[i].id, (long)pid, how);
                m->retired[i] = m->retired[--m->nretired];
            }
    }
}

/* Slot sl's worker goes (SIGTERM: it drains on what it runs) and a new one
 * takes the slot at once, on the same sockets. */
static void retire(struct master *m, struct slot *sl)
{
    struct retired *r = realloc(m->retired, sizeof *r * (size_t)(m->nretired + 1));
    if (!r) {
        kill(sl->pid, SIGKILL); /* reaped as a crash: replaced after backoff */
        return;
    }
    m->retired = r;
    r[m->nretired].pid = sl->pid;
    r[m->nretired].id = sl->id;
    m->nretired++;
    kill(sl->pid, SIGTERM);
    close_link(sl);
    sl->pid = 0;
    sl->state = IDLE;
    start(m, sl);
}

/*{====================================================================
 * Reload
 *=====================================================================*/

/* `reactord --check SCRIPT` in a child: 0 when it passes, else its output
 * (the file:line message) in out. */
static int check(struct master *m, char *out, size_t cap)
{
    int p[2];
    out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(out, cap, "cannot run --check: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {m->o->argv[0], "--check", (char *)m->o->script, NULL};
        sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
        dup2(p[1], 1);
        dup2(p[1], 2);
        execv(m->exe, argv);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        snprintf(out, cap, "cannot run --check: %s", strerror(errno));
        return -1;
    }
    size_t n = 0;
    double deadline = now() + CHECK_LIMIT;
    int timedout = 0;
    for (;;) {
        double left = deadline - now();
        if (left <= 0) {
            timedout = 1;
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int k = poll(&pf, 1, (int)(left * 1000) + 1);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) continue;
        char buf[1024];
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t take = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
        memcpy(out + n, buf, take);
        n += take;
    }
    out[n] = '\0';
    close(p[0]);
    if (timedout) kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timedout) {
        snprintf(out, cap, "%s: --check did not finish in %d s", m->o->script, CHECK_LIMIT);
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* what --check printed, as one message: the "reactord: " prefixes go */
static void tidy(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (strncmp(r, "reactord: ", 10) == 0 && (r == s || r[-1] == '\n')) r += 10;
        *w++ = *r++;
    }
    *w = '\0';
    while (w > s && w[-1] == '\n')
        *--w = '\0';
}

static void reload(struct master *m)
{
    if (m->stopping) return;
    if (m->reloading) {
        mlog(m, "reload: the last one is still under way; SIGHUP ignored (send it again later)");
        return;
    }
    char out[2048];
    int failed = check(m, out, sizeof out) != 0;
    /* the master read no heartbeat while --check ran (up to 10 s): not the
     * workers' fault, so their clocks restart now */
    double t = now();
    for (int i = 0; i < m->o->workers; i++)
        if (m->slots[i].pid > 0) m->slots[i].last_beat = t;
    if (failed) {
        tidy(out);
        mlog(m, "reload failed, nothing changed in any worker: %s", out);
        return;
    }
    m->reload_ok = 0;
    for (int i = 0; i < m->o->workers; i++) {
        struct slot *sl = &m->slots[i];
        if (sl->state == PARKED) { /* a script that checks out may serve now */
            mlog(m, "reload: slot %d unparked: a worker starts on the new script", sl->id);
            sl->state = IDLE;
            sl->nexits = 0;
            sl->backoff = 0;
            sl->restart_at = 0;
            continue;
        }
        if (sl->state == UP && sl->pid > 0) {
            sl->reload_pending = 1;
            m->reloading++;
            kill(sl->pid, SIGHUP);
        }
    }
    if (!m->reloading) mlog(m, "reload: the script checks out, and no worker serves to reload");
}

static void reload_answered(struct master *m, struct slot *sl, int ok)
{
    sl->reload_pending = 0;
    m->reload_ok += ok;
    if (--m->reloading == 0)
        mlog(m, "reload done: %d of %d workers reloaded in place", m->reload_ok, m->o->workers);
}

/* "r 1 generation" | "r 0 message" */
static void on_reloaded(struct master *m, struct slot *sl, const char *msg)
{
    if (!sl->reload_pending) return;
    if (msg[2] == '1') {
        sl->generation = atoll(msg + 4);
        mlog(m, "worker %d (pid %ld) reloaded in place (generation %lld)", sl->id, (long)sl->pid,
             sl->generation);
        reload_answered(m, sl, 1);
        return;
    }
    mlog(m,
         "worker %d (pid %ld) failed to reload: %s; retiring it (it drains its connections on "
         "the old script) and starting a new worker on the new one",
         sl->id, (long)sl->pid, msg[3] ? msg + 4 : "?");
    reload_answered(m, sl, 0);
    retire(m, sl);
}

/*{====================================================================
 * Status
 *=====================================================================*/

static void answer_status(struct master *m, int client)
{
    size_t cap = 256 + 256 * (size_t)m->o->workers, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        control_answer(client, "out of memory\n", 14);
        return;
    }
    double t = now();
    n += (size_t)snprintf(buf + n, cap - n, "master: pid %ld, %d worker%s, up %.1f s%s\n",
                          (long)m->self, m->o->workers, m->o->workers == 1 ? "" : "s", t - m->born,
                          m->stopping ? ", stopping" : "");
    for (int i = 0; i < m->o->workers && n < cap; i++) {
        struct slot *sl = &m->slots[i];
        if (sl->state == UP)
            n += (size_t)snprintf(
                buf + n, cap - n,
                "worker %d: pid %ld, %lld connections, %lld requests, %lld KiB Lua "
                "memory, up %.1f s, generation %lld\n",
                sl->id, (long)sl->pid, sl->open, sl->reads, sl->memory / 1024, t - sl->started,
                sl->generation);
        else if (sl->state == PARKED)
            n += (size_t)snprintf(buf + n, cap - n, "worker %d: parked (last: %s)\n", sl->id,
                                  sl->why);
        else if (sl->state == STARTING)
            n += (size_t)snprintf(buf + n, cap - n, "worker %d: pid %ld, starting\n", sl->id,
                                  (long)sl->pid);
        else
            n += (size_t)snprintf(buf + n, cap - n, "worker %d: restarting in %.1f s (last: %s)\n",
                                  sl->id, sl->restart_at > t ? sl->restart_at - t : 0, sl->why);
    }
    control_answer(client, buf, n < cap ? n : cap - 1);
    free(buf);
}

/*{====================================================================
 * The loop
 *=====================================================================*/

static void on_message(struct master *m, struct slot *sl)
{
    char msg[LINK_MAX];
    int fd;
    ssize_t r = link_recv(sl->link, msg, sizeof msg, &fd);
    if (fd >= 0) close(fd);
    if (r == -EAGAIN) return;
    if (r <= 0) { /* EOF: the worker is going; SIGCHLD says how */
        close_link(sl);
        return;
    }
    switch (msg[0]) {
    case 'L':
        on_listen(m, sl, msg);
        break;
    case 'U':
        if (sl->state == STARTING) {
            sl->state = UP;
            sl->last_beat = now();
            int first = !m->up_once;
            release_log(m);
            mlog(m, "worker %d (pid %ld) started", sl->id, (long)sl->pid);
            if (first)
                for (int i = 0; i < m->o->workers; i++)
                    if (m->slots[i].state == IDLE && m->slots[i].pid == 0) start(m, &m->slots[i]);
        }
        break;
    case 'H':
        sl->last_beat = now();
        sscanf(msg + 1, "%lld %lld %lld %lld", &sl->open, &sl->reads, &sl->memory, &sl->generation);
        break;
    case 'K':
        on_keys(m, sl, msg);
        break;
    case 'r':
        on_reloaded(m, sl, msg);
        break;
    default:
        break;
    }
}

static void timers(struct master *m)
{
    double t = now();
    for (int i = 0; i < m->o->workers; i++) {
        struct slot *sl = &m->slots[i];
        if (sl->pid > 0 && !sl->killed) {
            double limit = sl->state == STARTING ? START_LIMIT : BEAT_LIMIT;
            if (t - sl->last_beat > limit) {
                mlog(m, "worker %d (pid %ld) sent no heartbeat for %.0f s: killing it (SIGKILL)",
                     sl->id, (long)sl->pid, limit);
                kill(sl->pid, SIGKILL);
                sl->killed = 1;
            }
        } else if (sl->pid == 0 && sl->state == IDLE && !m->stopping && m->up_once &&
                   t >= sl->restart_at) {
            start(m, sl);
        }
    }
}

static void on_signal(struct master *m)
{
    struct signalfd_siginfo si;
    while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(m);
            break;
        case SIGHUP:
            reload(m);
            break;
        default: /* SIGTERM, SIGINT: drain; a second one stops the workers at once */
            stop_all(m, 0);
            break;
        }
    }
}

static int run(struct master *m)
{
    int n = m->o->workers;
    struct pollfd *pf = calloc((size_t)n + 2, sizeof *pf);
    struct slot **who = calloc((size_t)n + 2, sizeof *who);
    if (!pf || !who) {
        free(pf);
        free(who);
        fprintf(stderr, "reactord: not enough memory\n");
        return 1;
    }
    start(m, &m->slots[0]);
    while (!m->stopping || children(m) > 0) {
        int k = 0;
        pf[k].fd = m->sigfd;
        pf[k++].events = POLLIN;
        if (m->control >= 0) {
            pf[k].fd = m->control;
            who[k] = NULL;
            pf[k++].events = POLLIN;
        }
        int first = k;
        for (int i = 0; i < n; i++)
            if (m->slots[i].link >= 0) {
                pf[k].fd = m->slots[i].link;
                pf[k].events = POLLIN;
                who[k++] = &m->slots[i];
            }
        int r = poll(pf, (nfds_t)k, 50);
        if (r > 0) {
            for (int i = first; i < k; i++)
                if (pf[i].revents && who[i]->link == pf[i].fd) on_message(m, who[i]);
            if (m->control >= 0 && first == 2 && (pf[1].revents & POLLIN)) {
                char req[64];
                int c = control_accept(m->control, req, sizeof req);
                if (c >= 0) answer_status(m, c);
            }
            if (pf[0].revents & POLLIN) on_signal(m);
        }
        timers(m);
    }
    free(pf);
    free(who);
    return m->exitcode;
}

int master_run(const struct master_opts *o)
{
    struct master m;
    memset(&m, 0, sizeof m);
    m.o = o;
    m.self = getpid();
    m.control = -1;
    m.born = now();
    ssize_t len = readlink("/proc/self/exe", m.exe, sizeof m.exe - 1);
    if (len <= 0) {
        fprintf(stderr, "reactord: --workers: cannot find this program (/proc/self/exe: %s)\n",
                strerror(errno));
        return 1;
    }
    m.exe[len] = '\0';
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &m.oldmask);
    m.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m.sigfd < 0) {
        fprintf(stderr, "reactord: --workers: signalfd: %s\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &m.oldmask, NULL);
        return 1;
    }
    if (o->control) {
        char err[512];
        m.control = control_listen(o->control, err, sizeof err);
        if (m.control < 0) {
            fprintf(stderr, "reactord: %s\n", err);
            close(m.sigfd);
            sigprocmask(SIG_SETMASK, &m.oldmask, NULL);
            return 1;
        }
    }
    m.slots = calloc((size_t)o->workers, sizeof *m.slots);
    if (!m.slots) {
        fprintf(stderr, "reactord: not enough memory\n");
        return 1;
    }
    for (int i = 0; i < o->workers; i++) {
        m.slots[i].id = i + 1;
        m.slots[i].link = -1;
    }
    int code = run(&m);
    release_log(&m);
    if (code == 0) mlog(&m, "stopped");
    while (m.ngroups)
        free_group(&m, m.ngroups - 1);
    for (int i = 0; i < o->workers; i++)
        close_link(&m.slots[i]);
    free(m.slots);
    free(m.groups);
    free(m.retired);
    if (m.control >= 0) {
        close(m.control);
        unlink(o->control);
    }
    close(m.sigfd);
    sigprocmask(SIG_SETMASK, &m.oldmask, NULL);
    return code;
}
