/*
 * workers.h - a small pool of background threads running jobs (Redis's
 * bio.c, generalised): the partitions' fsync jobs run here so no FUSE
 * thread ever waits for a disk flush.
 *
 * A job is embedded in its owner.  Submitting a job that is already queued
 * does nothing; submitting one that is running makes it run once more after
 * it returns.  A job never runs on two threads at once.
 */
#ifndef TFS_WORKERS_H
#define TFS_WORKERS_H

#include "util.h"

struct tfs_job {
	struct tfs_list link;
	void (*fn)(struct tfs_job *job);
	int state;		/* pool lock; see workers.c */
};

struct tfs_workers;

/* Starts n threads named name.  Returns 0 or -errno. */
int tfs_workers_start(unsigned n, const char *name, struct tfs_workers **out);

static inline void tfs_job_init(struct tfs_job *job,
				void (*fn)(struct tfs_job *job))
{
	tfs_list_init(&job->link);
	job->fn = fn;
	job->state = 0;
}

/* Queues job (see above).  Any thread. */
void tfs_workers_submit(struct tfs_workers *w, struct tfs_job *job);

/*
 * Makes sure job is neither queued nor running when this returns (waits
 * for a running one).  Must not be called from the job itself.
 */
void tfs_workers_forget(struct tfs_workers *w, struct tfs_job *job);

/* Waits until job is neither queued nor running (it may be submitted
 * again meanwhile by others; this waits for a moment of idleness). */
void tfs_workers_wait(struct tfs_workers *w, struct tfs_job *job);

/* Runs every queued job, then stops and frees the pool. */
void tfs_workers_stop(struct tfs_workers *w);

/*
 * A ticker: one thread that calls fn(arg) every period_ms (monotonic
 * clock), or at once when kicked, until stopped.  The flusher and the
 * compactor are tickers.  fn may poll tfs_ticker_stopping() to cut long
 * work short.
 */
struct tfs_ticker;

/* Starts the thread.  Returns 0 or -errno.  *out is set before the thread
 * starts, so fn may read it (e.g. from a struct that arg points to) from
 * its first call on; it is NULL after a failure. */
int tfs_ticker_start(const char *name, int64_t period_ms,
		     void (*fn)(void *arg), void *arg, struct tfs_ticker **out);
/* Makes the next call happen now. */
void tfs_ticker_kick(struct tfs_ticker *t);
/* True once tfs_ticker_stop() was called (for fn, from its thread). */
bool tfs_ticker_stopping(struct tfs_ticker *t);
/* Stops the thread (waits for a call in progress) and frees t.  NULL is
 * fine. */
void tfs_ticker_stop(struct tfs_ticker *t);

#endif
