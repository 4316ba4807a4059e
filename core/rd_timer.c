/* rd_timer.c: one-shot and repeating timers on libev's monotonic clock, or
 * on a virtual one (rd_clock.c) while a test installs it. */
#include "rd.h"

/* After a fire: a one-shot is done before its callback runs. */
static void fired(rd_timer_t *t)
{
    rd_loop_t *loop = t->loop;
    if (!loop->clock) rd__dl_sync(loop, &t->dl); /* libev rescheduled or stopped it */
    if (!ev_is_active(&t->w)) { /* on either clock: tw.slot lies where w.active does */
        rd__link_del(&t->link);
        loop->ntimers--;
    }
    t->cb(t);
    rd_loop_settle(loop); /* t may be freed from here on */
}

static void timer_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev, (void)revents;
    fired(rd__container(w, rd_timer_t, w));
}

static void vtimer_cb(rd__tw_t *e)
{
    fired(rd__container(e, rd_timer_t, tw));
}

void rd_timer_init(rd_timer_t *t, rd_loop_t *loop, rd_timer_cb cb)
{
    t->loop = loop;
    t->cb = cb;
    t->data = NULL;
    rd__link_init(&t->link);
    t->dl.w = &t->w;
    t->dl.slot = 0;
    ev_init(&t->w, timer_cb);
}

int rd_timer_start(rd_timer_t *t, double after, double repeat)
{
    rd_timer_stop(t);
    after = after < 0 ? 0 : after;
    repeat = repeat > 0 ? repeat : 0;
    rd_loop_t *loop = t->loop;
    if (loop->clock) {
        int r = rd__tw_start(loop->clock, &t->tw, after, repeat, vtimer_cb);
        if (r < 0) return r;
    } else {
        ev_init(&t->w, timer_cb); /* the union may hold a virtual timer's bytes */
        ev_timer_set(&t->w, after, repeat);
        ev_timer_start(loop->ev, &t->w);
        rd__dl_sync(loop, &t->dl);
    }
    rd__link_add(&loop->timers, &t->link);
    loop->ntimers++;
    return 0;
}

void rd_timer_stop(rd_timer_t *t)
{
    rd__dl_del(t->loop, &t->dl); /* even inactive: a fired one-shot whose callback is pending */
    if (!ev_is_active(&t->w)) {
        /* a one-shot that fired in this pass, stopped by a callback before
         * its own ran (two due at once): libev would still call it, after
         * the owner took the stop as final and maybe freed it */
        if (!t->loop->clock && ev_is_pending(&t->w)) {
            ev_clear_pending(t->loop->ev, &t->w);
            rd__link_del(&t->link);
            t->loop->ntimers--;
        }
        return;
    }
    if (t->loop->clock)
        rd__tw_stop(t->loop->clock, &t->tw);
    else
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
    if (!ev_is_active(&t->w)) return 0.;
    if (t->loop->clock) return rd__tw_remaining(t->loop->clock, &t->tw);
    return ev_timer_remaining(t->loop->ev, (ev_timer *)&t->w);
}

/* A started timer moves to the other clock with the time it has left; its
 * place in loop->timers stays. */
void rd__timer_switch(rd_timer_t *t, rd_clock_t *from, rd_clock_t *to)
{
    if (!ev_is_active(&t->w)) return;
    struct ev_loop *ev = t->loop->ev;
    double left, repeat;
    if (from) {
        left = rd__tw_remaining(from, &t->tw);
        repeat = t->tw.repeat;
        rd__tw_stop(from, &t->tw);
    } else {
        left = ev_timer_remaining(ev, &t->w);
        repeat = t->w.repeat;
        ev_timer_stop(ev, &t->w);
        rd__dl_del(t->loop, &t->dl);
    }
    if (left < 0) left = 0;
    if (to) {
        rd__tw_start(to, &t->tw, left, repeat, vtimer_cb); /* the heap was reserved */
    } else {
        ev_init(&t->w, timer_cb);
        ev_timer_set(&t->w, left, repeat);
        ev_timer_start(ev, &t->w);
        rd__dl_sync(t->loop, &t->dl);
    }
}
