/*
 * Unit tests for the background workers and tickers (workers.h): a job
 * submitted twice while queued runs once; submitted while running, it
 * runs once more afterwards and never on two threads at once; forget
 * drops a queued job, waits for a running one and cancels its rerun;
 * stop runs every queued job; a ticker calls every period, at once when
 * kicked, again after a kick during a call, and tells a call in progress
 * that it is stopping.
 *
 * Jobs block on gates the test opens, so every ordering is forced rather
 * than hoped for; every wait has a deadline.  The only timed waits check
 * that something does NOT happen while a job is held (a second run,
 * forget or stop returning): they can miss a bug on a very slow machine,
 * never report a false failure.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "testlib.h"
#include "util.h"
#include "workers.h"

#define DEADLINE_MS 20000	/* for things that must happen */
#define QUIET_MS 200		/* for things that must not */

/* A counter threads wait on: gate_wait(g, v) returns once it is >= v. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int value;
};

static void gate_init(struct gate *g)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	g->value = 0;
}

static void gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static void gate_set(struct gate *g, int v)
{
	pthread_mutex_lock(&g->lock);
	if (v > g->value)
		g->value = v;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static int gate_get(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	int v = g->value;
	pthread_mutex_unlock(&g->lock);
	return v;
}

/* True once the gate reaches v; false if ms passed first. */
static bool gate_wait_ms(struct gate *g, int v, int64_t ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (g->value < v &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &ts) != ETIMEDOUT)
		;
	ok = g->value >= v;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

static bool gate_wait(struct gate *g, int v)
{
	return gate_wait_ms(g, v, DEADLINE_MS);
}

/*
 * A job that counts its runs.  With hold set, run n waits until hold
 * reaches n.  inside/max_inside catch two threads running it at once;
 * done_at_start[n] is how many runs had finished when run n started.
 */
struct tjob {
	struct tfs_job job;
	struct gate *hold;
	struct gate started;	/* runs started */
	atomic_int done;	/* runs finished */
	atomic_int inside, max_inside;
	atomic_int done_at_start[8];
	atomic_int stuck;	/* a hold that never opened */
};

static void tjob_fn(struct tfs_job *job)
{
	struct tjob *t = tfs_container_of(job, struct tjob, job);
	int in = atomic_fetch_add(&t->inside, 1) + 1;
	int max = atomic_load(&t->max_inside);

	while (in > max &&
	       !atomic_compare_exchange_weak(&t->max_inside, &max, in))
		;
	int n = gate_get(&t->started) + 1;
	if (n < (int)TFS_ARRAY_SIZE(t->done_at_start))
		atomic_store(&t->done_at_start[n], atomic_load(&t->done));
	gate_set(&t->started, n);
	if (t->hold && !gate_wait(t->hold, n))
		atomic_fetch_add(&t->stuck, 1);
	atomic_fetch_sub(&t->inside, 1);
	atomic_fetch_add(&t->done, 1);
}

static void tjob_init(struct tjob *t, struct gate *hold)
{
	memset(t, 0, sizeof(*t));
	tfs_job_init(&t->job, tjob_fn);
	gate_init(&t->started);
	t->hold = hold;
}

static int runs(struct tjob *t)
{
	return gate_get(&t->started);
}

static void tjob_destroy(struct tjob *t)
{
	CHECK_EQ(atomic_load(&t->stuck), 0);
	gate_destroy(&t->started);
}

static void test_queued_twice(void)
{
	TEST("workers: a job submitted twice while queued runs once");
	struct tfs_workers *w;
	struct gate hold;
	struct tjob blocker, x;

	gate_init(&hold);
	tjob_init(&blocker, &hold);
	tjob_init(&x, NULL);
	CHECK_EQ(tfs_workers_start(1, "t-queued", &w), 0);
	tfs_workers_submit(w, &blocker.job);
	CHECK(gate_wait(&blocker.started, 1));
	/* The only thread is held: x stays queued. */
	tfs_workers_submit(w, &x.job);
	tfs_workers_submit(w, &x.job);
	CHECK_EQ(runs(&x), 0);
	gate_set(&hold, 1);
	tfs_workers_wait(w, &x.job);
	CHECK_EQ(runs(&x), 1);
	tfs_workers_stop(w);
	CHECK_EQ(runs(&x), 1);
	CHECK_EQ(runs(&blocker), 1);
	tjob_destroy(&blocker);
	tjob_destroy(&x);
	gate_destroy(&hold);
}

static void test_resubmit_running(void)
{
	TEST("workers: resubmitted while running runs once more, after, "
	     "never on two threads");
	struct tfs_workers *w;
	struct gate hold;
	struct tjob y;

	gate_init(&hold);
	tjob_init(&y, &hold);
	/* Two threads: the second is free to run y too if it were requeued
	 * while running. */
	CHECK_EQ(tfs_workers_start(2, "t-again", &w), 0);
	tfs_workers_submit(w, &y.job);
	CHECK(gate_wait(&y.started, 1));
	tfs_workers_submit(w, &y.job);
	tfs_workers_submit(w, &y.job);
	/* The other thread is idle: it must not start y meanwhile. */
	CHECK(!gate_wait_ms(&y.started, 2, QUIET_MS));
	gate_set(&hold, 1);
	CHECK(gate_wait(&y.started, 2));
	CHECK_EQ(atomic_load(&y.done_at_start[2]), 1);
	gate_set(&hold, 2);
	tfs_workers_wait(w, &y.job);
	CHECK_EQ(runs(&y), 2);
	CHECK_EQ(atomic_load(&y.done), 2);
	CHECK_EQ(atomic_load(&y.max_inside), 1);

	/* Idle again: one submission, one run. */
	gate_set(&hold, 3);
	tfs_workers_submit(w, &y.job);
	tfs_workers_wait(w, &y.job);
	CHECK_EQ(runs(&y), 3);
	tfs_workers_stop(w);
	CHECK_EQ(runs(&y), 3);
	tjob_destroy(&y);
	gate_destroy(&hold);
}

struct forgetter {
	struct tfs_workers *w;
	struct tjob *job;
	struct gate returned;
	int done_when_returned;
};

static void *forget_main(void *arg)
{
	struct forgetter *f = arg;

	tfs_workers_forget(f->w, &f->job->job);
	f->done_when_returned = atomic_load(&f->job->done);
	gate_set(&f->returned, 1);
	return NULL;
}

static void test_forget(void)
{
	struct tfs_workers *w;
	struct gate hold;
	struct tjob blocker, q, z;

	TEST("workers: forget drops a queued job");
	gate_init(&hold);
	tjob_init(&blocker, &hold);
	tjob_init(&q, NULL);
	CHECK_EQ(tfs_workers_start(1, "t-forget", &w), 0);
	tfs_workers_submit(w, &blocker.job);
	CHECK(gate_wait(&blocker.started, 1));
	tfs_workers_submit(w, &q.job);
	tfs_workers_forget(w, &q.job);	/* queued: returns at once */
	gate_set(&hold, 1);
	tfs_workers_wait(w, &blocker.job);
	tfs_workers_wait(w, &q.job);
	CHECK_EQ(runs(&q), 0);
	/* Forgotten is not dead: it can be submitted again. */
	tfs_workers_submit(w, &q.job);
	tfs_workers_wait(w, &q.job);
	CHECK_EQ(runs(&q), 1);

	TEST("workers: forget waits for a running job and cancels its rerun");
	struct gate hold2;
	struct forgetter f = { .w = w, .job = &z, .done_when_returned = -1 };
	pthread_t th;

	gate_init(&hold2);
	gate_init(&f.returned);
	tjob_init(&z, &hold2);
	tfs_workers_submit(w, &z.job);
	CHECK(gate_wait(&z.started, 1));
	tfs_workers_submit(w, &z.job);	/* running: would run again */
	CHECK_EQ(pthread_create(&th, NULL, forget_main, &f), 0);
	/* z is held: forget must not return meanwhile. */
	CHECK(!gate_wait_ms(&f.returned, 1, QUIET_MS));
	gate_set(&hold2, 1);
	CHECK(gate_wait(&f.returned, 1));
	pthread_join(th, NULL);
	CHECK_EQ(f.done_when_returned, 1);
	tfs_workers_wait(w, &z.job);
	tfs_workers_stop(w);
	CHECK_EQ(runs(&z), 1);

	tjob_destroy(&blocker);
	tjob_destroy(&q);
	tjob_destroy(&z);
	gate_destroy(&f.returned);
	gate_destroy(&hold);
	gate_destroy(&hold2);
}

struct stopper {
	struct tfs_workers *w;
	struct gate returned;
};

static void *stop_main(void *arg)
{
	struct stopper *s = arg;

	tfs_workers_stop(s->w);
	gate_set(&s->returned, 1);
	return NULL;
}

static void test_stop_runs_queued(void)
{
	TEST("workers: stop runs every queued job, then returns");
	struct stopper s;
	struct gate hold;
	struct tjob blocker, jobs[3];
	pthread_t th;

	gate_init(&hold);
	gate_init(&s.returned);
	tjob_init(&blocker, &hold);
	for (int i = 0; i < 3; i++)
		tjob_init(&jobs[i], NULL);
	CHECK_EQ(tfs_workers_start(1, "t-stop", &s.w), 0);
	tfs_workers_submit(s.w, &blocker.job);
	CHECK(gate_wait(&blocker.started, 1));
	for (int i = 0; i < 3; i++)
		tfs_workers_submit(s.w, &jobs[i].job);
	CHECK_EQ(pthread_create(&th, NULL, stop_main, &s), 0);
	CHECK(!gate_wait_ms(&s.returned, 1, QUIET_MS));
	gate_set(&hold, 1);
	CHECK(gate_wait(&s.returned, 1));
	pthread_join(th, NULL);
	CHECK_EQ(runs(&blocker), 1);
	for (int i = 0; i < 3; i++) {
		CHECKF(runs(&jobs[i]) == 1 && atomic_load(&jobs[i].done) == 1,
		       "job %d ran %d times", i, runs(&jobs[i]));
		tjob_destroy(&jobs[i]);
	}
	tjob_destroy(&blocker);
	gate_destroy(&s.returned);
	gate_destroy(&hold);

	TEST("workers: stop of an idle pool, of NULL");
	struct tfs_workers *w;
	CHECK_EQ(tfs_workers_start(3, "t-idle", &w), 0);
	tfs_workers_stop(w);
	tfs_workers_stop(NULL);
}

/* --- tickers ------------------------------------------------------------- */

struct tick {
	struct tfs_ticker *t;	/* tfs_ticker_start's out: set before call 1 */
	struct tfs_ticker *seen_first;	/* t as the first call saw it */
	struct gate calls;	/* calls started */
	struct gate *hold;	/* call n waits until it reaches n */
	atomic_int returned;
	atomic_int stopping_at_start, stopping_seen;
	atomic_int stuck;
	bool wait_for_stop;	/* poll tfs_ticker_stopping() until true */
};

static void tick_fn(void *arg)
{
	struct tick *k = arg;
	struct tfs_ticker *t = k->t;
	int n = gate_get(&k->calls) + 1;

	if (n == 1)
		k->seen_first = t;

	if (t && tfs_ticker_stopping(t))
		atomic_fetch_add(&k->stopping_at_start, 1);
	gate_set(&k->calls, n);
	if (k->hold && !gate_wait(k->hold, n))
		atomic_fetch_add(&k->stuck, 1);
	if (k->wait_for_stop) {
		int64_t end = tfs_mono_ms() + DEADLINE_MS;

		while (!tfs_ticker_stopping(t) && tfs_mono_ms() < end) {
			struct timespec ms = { 0, 1000000 };
			nanosleep(&ms, NULL);
		}
		if (tfs_ticker_stopping(t))
			atomic_fetch_add(&k->stopping_seen, 1);
		else
			atomic_fetch_add(&k->stuck, 1);
	}
	atomic_fetch_add(&k->returned, 1);
}

static void tick_init(struct tick *k, struct gate *hold)
{
	memset(k, 0, sizeof(*k));
	gate_init(&k->calls);
	k->hold = hold;
}

/* Starts a ticker calling tick_fn(k); returns it, or NULL. */
static struct tfs_ticker *tick_start(struct tick *k, const char *name,
				     int64_t period)
{
	if (tfs_ticker_start(name, period, tick_fn, k, &k->t))
		return NULL;
	return k->t;
}

static void tick_destroy(struct tick *k)
{
	CHECK_EQ(atomic_load(&k->stuck), 0);
	CHECK_EQ(atomic_load(&k->stopping_at_start), 0);
	gate_destroy(&k->calls);
}

#define HOUR_MS 3600000	/* a period that never elapses in a test */

static void test_ticker(void)
{
	struct tfs_ticker *t;
	struct tick k;
	struct gate hold;

	TEST("ticker: calls fn every period without a kick; fn can read "
	     "its ticker from the first call");
	/* 10 calls of 1 ms take 10 ms, far below the deadline. */
	tick_init(&k, NULL);
	t = tick_start(&k, "t-period", 1);
	CHECK(t != NULL);
	if (!t)
		return;
	CHECK(gate_wait(&k.calls, 10));
	tfs_ticker_stop(t);
	int calls = gate_get(&k.calls);
	CHECK_EQ(atomic_load(&k.returned), calls);	/* none in progress */
	/* The compactor reads its ticker this way (TSan found the store
	 * to it racing with the first call before it came first). */
	CHECK(k.seen_first == t);
	tick_destroy(&k);

	TEST("ticker: a kick calls at once; a kick during a call calls again");
	gate_init(&hold);
	tick_init(&k, &hold);
	t = tick_start(&k, "t-kick", HOUR_MS);
	CHECK(t != NULL);
	if (!t)
		return;
	CHECK_EQ(gate_get(&k.calls), 0);
	tfs_ticker_kick(t);
	CHECK(gate_wait(&k.calls, 1));
	tfs_ticker_kick(t);	/* during call 1 */
	gate_set(&hold, 1);
	CHECK(gate_wait(&k.calls, 2));
	gate_set(&hold, 2);
	tfs_ticker_stop(t);
	CHECK_EQ(gate_get(&k.calls), 2);
	CHECK_EQ(atomic_load(&k.returned), 2);
	tick_destroy(&k);
	gate_destroy(&hold);

	TEST("ticker: stop sets the stopping flag for a call in progress "
	     "and waits for it");
	tick_init(&k, NULL);
	k.wait_for_stop = true;
	t = tick_start(&k, "t-stopping", HOUR_MS);
	CHECK(t != NULL);
	if (!t)
		return;
	CHECK(!tfs_ticker_stopping(t));
	tfs_ticker_kick(t);
	CHECK(gate_wait(&k.calls, 1));
	CHECK(!tfs_ticker_stopping(t));
	tfs_ticker_stop(t);	/* returns after the call saw the flag */
	CHECK_EQ(atomic_load(&k.stopping_seen), 1);
	CHECK_EQ(atomic_load(&k.returned), 1);
	CHECK_EQ(gate_get(&k.calls), 1);
	tick_destroy(&k);

	TEST("ticker: stop before any call; NULL");
	tick_init(&k, NULL);
	t = tick_start(&k, "t-never", HOUR_MS);
	CHECK(t != NULL);
	if (!t)
		return;
	tfs_ticker_stop(t);
	CHECK_EQ(gate_get(&k.calls), 0);
	tick_destroy(&k);
	CHECK(!tfs_ticker_stopping(NULL));
	tfs_ticker_stop(NULL);
}

int main(void)
{
	tl_quiet_log();
	test_queued_twice();
	test_resubmit_running();
	test_forget();
	test_stop_runs_queued();
	test_ticker();
	return check_done();
}
