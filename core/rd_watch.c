/*
 * rd_watch.c: reload-on-save. inotify watches each file's directory (not the
 * file: an editor's rename-over replaces the inode a file watch would hold),
 * and any create/write/move/delete of a watched base name restarts a short
 * timer; the callback runs when the directory has been quiet that long, so a
 * burst of saves is one reload. (ev_stat compares mtimes in whole seconds
 * and would miss two same-size saves within one second.)
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "rd.h"

#define EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)

static const char *base_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void quiet_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    (void)revents;
    rd_watch_t *w = rd__container(t, rd_watch_t, quiet);
    rd_loop_t *loop = w->loop;
    ev_timer_stop(ev, t); /* once per burst: the next change arms it again */
    w->cb(w);
    rd_loop_settle(loop); /* w may be freed from here on */
}

static void inotify_cb(struct ev_loop *ev, ev_io *io, int revents)
{
    (void)revents;
    rd_watch_t *w = rd__container(io, rd_watch_t, io);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int hit = 0;
    for (;;) {
        ssize_t len = read(w->fd, buf, sizeof buf);
        if (len <= 0) break;
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            for (size_t i = 0; i < w->n && !hit; i++)
                if (w->wds[i] == e->wd && e->len && strcmp(e->name, base_of(w->names[i])) == 0)
                    hit = 1;
            p += sizeof *e + e->len;
        }
    }
    if (hit) ev_timer_again(ev, &w->quiet); /* restarts the quiet period */
}

int rd_watch_start(rd_watch_t *w, rd_loop_t *loop, const char *const *paths, size_t n, double quiet,
                   rd_watch_cb cb)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->cb = cb;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) return -errno;
    w->names = calloc(n ? n : 1, sizeof *w->names);
    w->wds = calloc(n ? n : 1, sizeof *w->wds);
    if (!w->names || !w->wds) {
        rd_watch_stop(w);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char dir[PATH_MAX];
        const char *slash = strrchr(paths[i], '/');
        size_t dlen = slash ? (size_t)(slash - paths[i]) : 0;
        if (dlen >= sizeof dir) {
            rd_watch_stop(w);
            return -ENAMETOOLONG;
        }
        if (slash) {
            memcpy(dir, paths[i], dlen ? dlen : 1); /* "/x" lives in "/" */
            dir[dlen ? dlen : 1] = '\0';
        } else {
            strcpy(dir, ".");
        }
        w->names[i] = strdup(paths[i]);
        w->n = i + 1;
        int wd = inotify_add_watch(w->fd, dir, EVENTS); /* same dir: same wd */
        if (!w->names[i] || wd < 0) {
            int err = w->names[i] ? -errno : -ENOMEM;
            rd_watch_stop(w);
            return err;
        }
        w->wds[i] = wd;
    }
    ev_init(&w->quiet, quiet_cb);
    w->quiet.repeat = quiet > 0 ? quiet : 0.05;
    ev_io_init(&w->io, inotify_cb, w->fd, EV_READ);
    ev_io_start(loop->ev, &w->io);
    ev_unref(loop->ev); /* watching alone does not keep the loop running */
    return 0;
}

void rd_watch_stop(rd_watch_t *w)
{
    if (w->fd < 0 && !w->names) return;
    if (ev_is_active(&w->io)) {
        ev_ref(w->loop->ev);
        ev_io_stop(w->loop->ev, &w->io);
    }
    ev_timer_stop(w->loop->ev, &w->quiet);
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    for (size_t i = 0; i < w->n; i++)
        free(w->names[i]);
    free(w->names);
    free(w->wds);
    w->names = NULL;
    w->wds = NULL;
    w->n = 0;
}
