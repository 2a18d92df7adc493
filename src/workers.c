/*
 * workers.c - background job threads.
 *
 * One mutex protects the queue and every job's state:
 *   IDLE     not queued, not running
 *   QUEUED   on the queue
 *   RUNNING  a thread runs it
 *   AGAIN    running, and submitted meanwhile: requeued when it returns
 * A condition variable wakes idle threads; another lets
 * tfs_workers_forget() wait for a running job to finish.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "workers.h"
#include "banned.h"

enum { IDLE, QUEUED, RUNNING, AGAIN };

struct tfs_workers {
	pthread_mutex_t lock;
	pthread_cond_t work;	/* queue became non-empty or stopping */
	pthread_cond_t done;	/* a job finished running */
	struct tfs_list queue;
	bool stopping;
	unsigned n;
	pthread_t *threads;
	char name[16];
};

static void *worker_main(void *arg)
{
	struct tfs_workers *w = arg;

	pthread_setname_np(pthread_self(), w->name);
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (tfs_list_empty(&w->queue) && !w->stopping)
			pthread_cond_wait(&w->work, &w->lock);
		if (tfs_list_empty(&w->queue))
			break;
		struct tfs_job *job =
			tfs_container_of(w->queue.next, struct tfs_job, link);
		tfs_list_del(&job->link);
		job->state = RUNNING;
		pthread_mutex_unlock(&w->lock);

		job->fn(job);

		pthread_mutex_lock(&w->lock);
		if (job->state == AGAIN) {
			job->state = QUEUED;
			tfs_list_add_tail(&w->queue, &job->link);
		} else {
			job->state = IDLE;
		}
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int tfs_workers_start(unsigned n, const char *name, struct tfs_workers **out)
{
	struct tfs_workers *w = tfs_calloc(1, sizeof(*w));

	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	tfs_list_init(&w->queue);
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->threads = tfs_calloc(n, sizeof(*w->threads));
	for (w->n = 0; w->n < n; w->n++) {
		int rc = pthread_create(&w->threads[w->n], NULL, worker_main, w);
		if (rc) {
			tfs_err("cannot start %s thread: %s", name, strerror(rc));
			tfs_workers_stop(w);
			return -rc;
		}
	}
	*out = w;
	return 0;
}

void tfs_workers_submit(struct tfs_workers *w, struct tfs_job *job)
{
	pthread_mutex_lock(&w->lock);
	switch (job->state) {
	case IDLE:
		job->state = QUEUED;
		tfs_list_add_tail(&w->queue, &job->link);
		pthread_cond_signal(&w->work);
		break;
	case RUNNING:
		job->state = AGAIN;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&w->lock);
}

void tfs_workers_forget(struct tfs_workers *w, struct tfs_job *job)
{
	pthread_mutex_lock(&w->lock);
	if (job->state == QUEUED) {
		tfs_list_del(&job->link);
		job->state = IDLE;
	}
	if (job->state == AGAIN)
		job->state = RUNNING;	/* do not requeue */
	while (job->state == RUNNING)
		pthread_cond_wait(&w->done, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void tfs_workers_wait(struct tfs_workers *w, struct tfs_job *job)
{
	pthread_mutex_lock(&w->lock);
	while (job->state != IDLE)
		pthread_cond_wait(&w->done, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void tfs_workers_stop(struct tfs_workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->n; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->done);
	free(w);
}

/* --- tickers ------------------------------------------------------------- */

struct tfs_ticker {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int64_t period;
	void (*fn)(void *arg);
	void *arg;
	bool kicked;		/* (lock) */
	atomic_bool stopping;
	char name[16];
};

static void deadline_after(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *ticker_main(void *arg)
{
	struct tfs_ticker *t = arg;

	pthread_setname_np(pthread_self(), t->name);
	pthread_mutex_lock(&t->lock);
	while (!atomic_load(&t->stopping)) {
		struct timespec ts;

		deadline_after(&ts, t->period);
		while (!t->kicked && !atomic_load(&t->stopping) &&
		       pthread_cond_timedwait(&t->cond, &t->lock, &ts) == 0)
			;
		if (atomic_load(&t->stopping))
			break;
		t->kicked = false;
		pthread_mutex_unlock(&t->lock);
		t->fn(t->arg);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int tfs_ticker_start(const char *name, int64_t period_ms,
		     void (*fn)(void *arg), void *arg, struct tfs_ticker **out)
{
	struct tfs_ticker *t = tfs_calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	int rc;

	t->period = period_ms;
	t->fn = fn;
	t->arg = arg;
	snprintf(t->name, sizeof(t->name), "%s", name);
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* Before the thread exists: fn may read *out (to poll
	 * tfs_ticker_stopping) from its first call on, and pthread_create
	 * orders this store before anything the thread does. */
	*out = t;
	rc = pthread_create(&t->thread, NULL, ticker_main, t);
	if (rc) {
		tfs_err("cannot start %s thread: %s", name, strerror(rc));
		*out = NULL;
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return -rc;
	}
	return 0;
}

void tfs_ticker_kick(struct tfs_ticker *t)
{
	pthread_mutex_lock(&t->lock);
	t->kicked = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

bool tfs_ticker_stopping(struct tfs_ticker *t)
{
	return t && atomic_load(&t->stopping);
}

void tfs_ticker_stop(struct tfs_ticker *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->stopping, true);
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
