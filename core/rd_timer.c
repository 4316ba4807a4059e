/* rd_timer.c: one-shot and repeating timers on libev's monotonic clock. */
#include "rd.h"

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    rd_timer_t *t = rd__container(w, rd_timer_t, w);
    rd_loop_t *loop = t->loop;
    if (!ev_is_active(w)) { /* a one-shot is done before its callback runs */
        rd__link_del(&t->link);
        loop->ntimers--;
    }
    t->cb(t);
    rd_loop_settle(loop); /* t may be freed from here on */
}

void rd_timer_init(rd_timer_t *t, rd_loop_t *loop, rd_timer_cb cb)
{
    t->loop = loop;
    t->cb = cb;
    t->data = NULL;
    rd__link_init(&t->link);
    ev_init(&t->w, timer_cb);
}

void rd_timer_start(rd_timer_t *t, double after, double repeat)
{
    rd_timer_stop(t);
    ev_timer_set(&t->w, after < 0 ? 0 : after, repeat > 0 ? repeat : 0);
    ev_timer_start(t->loop->ev, &t->w);
    rd__link_add(&t->loop->timers, &t->link);
    t->loop->ntimers++;
}

void rd_timer_stop(rd_timer_t *t)
{
    if (!ev_is_active(&t->w)) return;
    ev_timer_stop(t->loop->ev, &t->w);
    rd__link_del(&t->link);
    t->loop->ntimers--;
}

int rd_timer_active(const rd_timer_t *t)
{
    return ev_is_active(&t->w);
}

double rd_timer_remaining(const rd_timer_t *t)
{
    return ev_is_active(&t->w) ? ev_timer_remaining(t->loop->ev, (ev_timer *)&t->w) : 0.;
}
