/*
 * compactor.c - retention, time-based rolls and compression, in the
 * background.
 *
 * One thread wakes every retention.check.interval.ms (or at once when
 * stopped) and makes a pass over a snapshot of the partitions.  The work
 * per partition is in partition.c (tfs_partition_roll_old, _retain,
 * _compress_next); this file only schedules it and reads each topic's
 * settings at the time of the pass.  Compression goes one segment at a
 * time and checks for a stop request between segments, so shutdown waits
 * for at most one segment.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compactor.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct tfs_compactor {
	struct tfs_store *store;
	int64_t interval;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;		/* (lock) */
};

static bool stopping(struct tfs_compactor *c)
{
	bool s;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	s = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return s;
}

struct pass {
	struct tfs_compactor *c;	/* NULL when run by hand */
	int64_t now;
};

static void visit(struct tfs_topic *t, struct tfs_partition *p, void *arg)
{
	struct pass *ps = arg;
	struct tfs_settings *st = t->settings;

	if (stopping(ps->c))
		return;
	tfs_partition_roll_old(p, ps->now,
			       tfs_settings_get(st, TFS_CONF_SEGMENT_MS));
	tfs_partition_retain(p, ps->now,
			     tfs_settings_get(st, TFS_CONF_RETENTION_MS),
			     tfs_settings_get(st, TFS_CONF_RETENTION_BYTES));
	if (tfs_settings_get(st, TFS_CONF_COMPRESSION) != TFS_COMPRESSION_ZSTD)
		return;
	int level = (int)tfs_settings_get(st, TFS_CONF_COMPRESSION_LEVEL);
	size_t frame = (size_t)tfs_settings_get(
		st, TFS_CONF_COMPRESSION_FRAME_BYTES);
	while (!stopping(ps->c) &&
	       tfs_partition_compress_next(p, level, frame) == 1)
		;
}

static void run_pass(struct tfs_store *store, struct tfs_compactor *c)
{
	struct pass ps = { c, tfs_now_ms() };

	tfs_store_foreach_partition(store, visit, &ps);
}

void tfs_compactor_pass(struct tfs_store *store)
{
	run_pass(store, NULL);
}

static void *compactor_main(void *arg)
{
	struct tfs_compactor *c = arg;

	pthread_setname_np(pthread_self(), "tfs-compact");
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += c->interval / 1000;
		ts.tv_nsec += (c->interval % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->lock);
		run_pass(c->store, c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int tfs_compactor_start(struct tfs_store *store, int64_t interval_ms,
			struct tfs_compactor **out)
{
	struct tfs_compactor *c = tfs_calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	int rc;

	c->store = store;
	c->interval = interval_ms;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&c->thread, NULL, compactor_main, c);
	if (rc) {
		tfs_err("cannot start the compactor: %s", strerror(rc));
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -rc;
	}
	*out = c;
	return 0;
}

void tfs_compactor_stop(struct tfs_compactor *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
