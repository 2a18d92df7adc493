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
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "workers.h"

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
