/*
 * timer.c - the deadline thread (timer.h).
 *
 * A binary min-heap of armed timers ordered by time, under one mutex; the
 * thread sleeps on a condition variable (monotonic clock) until the
 * earliest is due or the heap changes.  A due timer is taken off the heap
 * and its fn runs with the lock released; `running` names it meanwhile so
 * that a disarm from another thread can wait for fn to return, which is
 * what lets owners free themselves right after a disarm.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "timer.h"
#include "util.h"
#include "banned.h"

struct tfs_timers {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* the heap changed, or stop */
	pthread_cond_t idle;		/* running changed */
	struct tfs_timer **heap;	/* (lock) heap[0] is the earliest */
	size_t n, cap;			/* (lock) */
	struct tfs_timer *running;	/* (lock) whose fn runs now */
	bool stop;			/* (lock) */
	pthread_t thread;
	char name[16];
};

static void place(struct tfs_timers *ts, size_t i, struct tfs_timer *t)
{
	ts->heap[i] = t;
	t->slot = i + 1;
}

static void sift_up(struct tfs_timers *ts, size_t i)
{
	struct tfs_timer *t = ts->heap[i];

	while (i > 0) {
		size_t up = (i - 1) / 2;

		if (ts->heap[up]->when <= t->when)
			break;
		place(ts, i, ts->heap[up]);
		i = up;
	}
	place(ts, i, t);
}

static void sift_down(struct tfs_timers *ts, size_t i)
{
	struct tfs_timer *t = ts->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= ts->n)
			break;
		if (c + 1 < ts->n && ts->heap[c + 1]->when < ts->heap[c]->when)
			c++;
		if (t->when <= ts->heap[c]->when)
			break;
		place(ts, i, ts->heap[c]);
		i = c;
	}
	place(ts, i, t);
}

/* Takes t off the heap.  Lock held, t armed. */
static void heap_remove(struct tfs_timers *ts, struct tfs_timer *t)
{
	size_t i = t->slot - 1;
	struct tfs_timer *last = ts->heap[--ts->n];

	t->slot = 0;
	if (last == t)
		return;
	place(ts, i, last);
	sift_down(ts, i);
	sift_up(ts, last->slot - 1);
}

static void deadline_ts(int64_t mono_ms, struct timespec *out)
{
	out->tv_sec = (time_t)(mono_ms / 1000);
	out->tv_nsec = (long)(mono_ms % 1000) * 1000000;
}

static void *timer_main(void *arg)
{
	struct tfs_timers *ts = arg;

	pthread_setname_np(pthread_self(), ts->name);
	pthread_mutex_lock(&ts->lock);
	while (!ts->stop) {
		if (ts->n == 0) {
			pthread_cond_wait(&ts->cond, &ts->lock);
			continue;
		}
		struct tfs_timer *t = ts->heap[0];
		int64_t now = tfs_mono_ms();

		if (t->when > now) {
			struct timespec until;

			deadline_ts(t->when, &until);
			pthread_cond_timedwait(&ts->cond, &ts->lock, &until);
			continue;
		}
		heap_remove(ts, t);
		ts->running = t;
		pthread_mutex_unlock(&ts->lock);
		t->fn(t);	/* t may be gone (freed) from here on */
		pthread_mutex_lock(&ts->lock);
		ts->running = NULL;
		pthread_cond_broadcast(&ts->idle);
	}
	pthread_mutex_unlock(&ts->lock);
	return NULL;
}

int tfs_timers_start(const char *name, struct tfs_timers **out)
{
	struct tfs_timers *ts = tfs_calloc(1, sizeof(*ts));
	pthread_condattr_t ca;
	int rc;

	snprintf(ts->name, sizeof(ts->name), "%s", name);
	pthread_mutex_init(&ts->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ts->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&ts->idle, NULL);
	rc = pthread_create(&ts->thread, NULL, timer_main, ts);
	if (rc) {
		pthread_cond_destroy(&ts->idle);
		pthread_cond_destroy(&ts->cond);
		pthread_mutex_destroy(&ts->lock);
		free(ts);
		return -rc;
	}
	*out = ts;
	return 0;
}

void tfs_timers_stop(struct tfs_timers *ts)
{
	if (!ts)
		return;
	pthread_mutex_lock(&ts->lock);
	ts->stop = true;
	pthread_cond_signal(&ts->cond);
	pthread_mutex_unlock(&ts->lock);
	pthread_join(ts->thread, NULL);
	for (size_t i = 0; i < ts->n; i++)
		ts->heap[i]->slot = 0;
	free(ts->heap);
	pthread_cond_destroy(&ts->idle);
	pthread_cond_destroy(&ts->cond);
	pthread_mutex_destroy(&ts->lock);
	free(ts);
}

void tfs_timer_arm(struct tfs_timers *ts, struct tfs_timer *t, int64_t when)
{
	pthread_mutex_lock(&ts->lock);
	if (t->slot)
		heap_remove(ts, t);
	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? 2 * ts->cap : 64;
		ts->heap = tfs_realloc(ts->heap, ts->cap * sizeof(*ts->heap));
	}
	t->when = when;
	place(ts, ts->n++, t);
	sift_up(ts, ts->n - 1);
	/* Only a new earliest changes how long the thread sleeps. */
	if (ts->heap[0] == t)
		pthread_cond_signal(&ts->cond);
	pthread_mutex_unlock(&ts->lock);
}

bool tfs_timer_disarm(struct tfs_timers *ts, struct tfs_timer *t)
{
	bool armed;

	pthread_mutex_lock(&ts->lock);
	armed = t->slot != 0;
	if (armed) {
		heap_remove(ts, t);
	} else if (!pthread_equal(pthread_self(), ts->thread)) {
		while (ts->running == t)
			pthread_cond_wait(&ts->idle, &ts->lock);
	}
	pthread_mutex_unlock(&ts->lock);
	return armed;
}
