/*
 * produce.c - writes and fsyncs in a cluster (produce.h).
 *
 * DESIGN
 *
 * Streams.  Every (topic, partition) this node writes to has one stream:
 * a producer id, the next sequence number and a queue of writes.  Only
 * the head of the queue is in flight, so sequences reach the leader in
 * order and a retry always repeats the leader's last batch of this
 * producer, which it recognises (producers.h).  The head keeps its
 * (producer, sequence) through every retry; when it ends in failure the
 * stream goes on at its producer id's next epoch, from sequence 0, so a
 * batch that never arrived cannot look like a gap to the leader, one that
 * did arrive (a timeout after the append) is not taken for the next
 * write's, and a request of it still travelling (a socket curl closed
 * still delivers what it had sent) is refused once the next epoch has
 * reached the leader: a failed write never lands after a later one.
 *
 * An attempt.  The cluster's view says who leads.  Here: if the
 * replication layer says this node may lead (lease surely alive, enough
 * in-sync replicas), append with the producer fields and complete when the
 * partition commits the batch.  Elsewhere: POST it to the leader and, once
 * it answers, wait until the local replica's watermark covers it (so a
 * read here sees it).  Anything that can pass (no leader yet, an epoch
 * change, too few in-sync replicas, an unreachable leader) is retried on
 * the timer thread after a short delay, until request.timeout.ms; a
 * refusal that cannot pass (a bad batch, no space) ends the write.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "produce.h"
#include "producers.h"
#include "util.h"
#include "banned.h"

#define RETRY_MS 50		/* after a leadership change */
#define RETRY_SLOW_MS 200	/* too few replicas, no leader, unreachable */

struct pstream {
	uint32_t topic, part;
	uint64_t producer;
	uint32_t next_seq;
	bool gone;			/* (pr->lock) its topic was deleted */
	struct tfs_list queue;		/* (pr->lock) head in flight */
};

struct tfs_produce {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	struct tfs_cluster *cluster;
	struct tfs_repl *repl;
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	struct tfs_timers *timers;
	uint32_t me;
	int64_t timeout_ms;
	int64_t attempt_ms;		/* one forward, at most */

	pthread_mutex_t lock;
	pthread_cond_t idle;		/* busy went to 0 */
	struct pstream **streams;	/* (lock) sorted by topic, part */
	size_t nstreams, cap;
	size_t busy;			/* (lock) writes in flight */
	bool stopping;			/* (lock) */

	atomic_ullong local, forwarded, retries, duplicates, failed;
	atomic_ullong timeouts;		/* failed at the deadline */
	atomic_llong warned;		/* mono ms of the last timeout logged */
	atomic_llong warned_401;	/* of the last refusal logged */
};

/* A new stream at epoch 0 (producers.h). */
static uint64_t new_producer_id(void)
{
	uint64_t id = 0;

	while (tfs_producer_stream(id) == 0) {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint64_t)tfs_mono_ns() ^ ((uint64_t)getpid() << 40);
		id &= ~TFS_PRODUCER_EPOCH_MASK;
	}
	return id;
}

/* The stream of (topic, part), made if missing.  Lock held. */
static struct pstream *stream_of(struct tfs_produce *pr, uint32_t topic,
				 uint32_t part)
{
	size_t lo = 0, hi = pr->nstreams;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct pstream *s = pr->streams[mid];

		if (s->topic == topic && s->part == part)
			return s;
		if (s->topic < topic || (s->topic == topic && s->part < part))
			lo = mid + 1;
		else
			hi = mid;
	}
	struct pstream *s = tfs_calloc(1, sizeof(*s));

	s->topic = topic;
	s->part = part;
	s->producer = new_producer_id();
	tfs_list_init(&s->queue);
	if (pr->nstreams == pr->cap) {
		pr->cap = pr->cap ? 2 * pr->cap : 16;
		pr->streams = tfs_realloc(pr->streams,
					  pr->cap * sizeof(*pr->streams));
	}
	memmove(&pr->streams[lo + 1], &pr->streams[lo],
		(pr->nstreams - lo) * sizeof(*pr->streams));
	pr->streams[lo] = s;
	pr->nstreams++;
	return s;
}

static void attempt(struct tfs_produce *pr, struct tfs_write *w);

/* Drops s from the table (it must be idle).  Lock held. */
static void stream_drop(struct tfs_produce *pr, struct pstream *s)
{
	for (size_t i = 0; i < pr->nstreams; i++) {
		if (pr->streams[i] != s)
			continue;
		memmove(&pr->streams[i], &pr->streams[i + 1],
			(pr->nstreams - i - 1) * sizeof(*pr->streams));
		pr->nstreams--;
		break;
	}
	free(s);
}

/* Starts the head of s, if any.  Lock held. */
static struct tfs_write *take_head(struct tfs_produce *pr, struct pstream *s)
{
	struct tfs_write *w;

	if (tfs_list_empty(&s->queue))
		return NULL;
	w = tfs_container_of(s->queue.next, struct tfs_write, link);
	w->producer = s->producer;
	/* An fsync appends nothing: it must not take a sequence, or the
	 * next write would leave a gap the leader refuses (422). */
	w->seq = w->is_sync ? s->next_seq : s->next_seq++;
	w->deadline = tfs_mono_ms() + pr->timeout_ms;
	pr->busy++;
	return w;
}

/* Ends w with status and starts the next write of its stream. */
static void finish(struct tfs_produce *pr, struct tfs_write *w, int status)
{
	struct pstream *s = w->stream;
	struct tfs_write *next;

	pthread_mutex_lock(&pr->lock);
	tfs_list_del(&w->link);
	if (status && !w->is_sync) {
		/* Appended or not, nobody knows: the stream's next epoch from
		 * here, so neither case is taken for the next batch, and a
		 * request of this one that reaches the leader after the next
		 * one is refused there (fenced), never appended after it. */
		s->producer = tfs_producer_next_epoch(s->producer);
		s->next_seq = 0;
	}
	pr->busy--;
	next = take_head(pr, s);
	if (!next && s->gone && tfs_list_empty(&s->queue))
		stream_drop(pr, s);
	if (pr->busy == 0)
		pthread_cond_broadcast(&pr->idle);
	pthread_mutex_unlock(&pr->lock);
	if (status)
		atomic_fetch_add(&pr->failed, 1);
	tfs_http_req_release(&w->http);
	tfs_buf_release(&w->url);
	for (int i = 0; w->headers[i]; i++) {
		free(w->headers[i]);
		w->headers[i] = NULL;
	}
	free(w->bytes);
	w->bytes = NULL;
	w->done(w, status);
	if (next)
		attempt(pr, next);
}

static void retry_fired(struct tfs_timer *t)
{
	struct tfs_write *w = tfs_container_of(t, struct tfs_write, retry);

	attempt(w->pr, w);
}

/* Logs why w failed at its deadline, at most once per 10 s. */
static void warn_timeout(struct tfs_produce *pr, struct tfs_write *w,
			 const char *why)
{
	atomic_fetch_add(&pr->timeouts, 1);
	if (!tfs_log_due(&pr->warned, 10000))
		return;
	tfs_warn("%s: a %s %s within request.timeout.ms (%" PRId64 " ms), "
		 "failed with EIO (%" PRIu64 " so far; repeats for 10 s are "
		 "counted, not logged)",
		 tfs_partition_name(w->p), w->is_sync ? "fsync" : "write", why,
		 pr->timeout_ms, (uint64_t)atomic_load(&pr->timeouts));
}

/* Tries w again after ms, or fails it past its deadline. */
static void retry(struct tfs_produce *pr, struct tfs_write *w, int64_t ms)
{
	int64_t now = tfs_mono_ms();

	if (now + ms >= w->deadline) {
		warn_timeout(pr, w, "was not committed by a leader");
		finish(pr, w, -EIO);
		return;
	}
	atomic_fetch_add(&pr->retries, 1);
	w->retry.fn = retry_fired;
	tfs_timer_arm(pr->timers, &w->retry, now + ms);
}

/* --- on this node, as leader ---------------------------------------------- */

/*
 * A local append or fsync waits for its commit at most until the write's
 * deadline: the timer (w->retry, free while the write is parked here)
 * takes it off the partition's lists.  If the partition got to it first,
 * its done runs instead, which disarms the timer before anything else
 * (waiting for a running local_expired, which then touches nothing).
 */
static void local_expired(struct tfs_timer *t)
{
	struct tfs_write *w = tfs_container_of(t, struct tfs_write, retry);

	if (!tfs_partition_cancel_sync(w->p, w->is_sync ? &w->sr : &w->a.sync))
		return;	/* its done runs */
	warn_timeout(w->pr, w, "was not committed by the in-sync replicas");
	finish(w->pr, w, -EIO);
}

static void local_appended(struct tfs_append *a, int status)
{
	struct tfs_write *w = tfs_container_of(a, struct tfs_write, a);

	tfs_timer_disarm(w->pr->timers, &w->retry);
	if (status == -ETIMEDOUT) {
		warn_timeout(w->pr, w,
			     "was not committed by the in-sync replicas");
		finish(w->pr, w, -EIO);
		return;
	}
	if (status == TFS_ENOTLEADER || status == TFS_ESHUTDOWN) {
		/* Lost leadership before it committed: the next leader
		 * has it or not; the same sequence tells. */
		retry(w->pr, w, RETRY_MS);
		return;
	}
	if (status == 0 && a->duplicate)
		atomic_fetch_add(&w->pr->duplicates, 1);
	finish(w->pr, w, status);
}

static void local_synced(struct tfs_syncreq *sr, int status)
{
	struct tfs_write *w = tfs_container_of(sr, struct tfs_write, sr);

	tfs_timer_disarm(w->pr->timers, &w->retry);
	if (status == TFS_ENOTLEADER) {
		retry(w->pr, w, RETRY_MS);
		return;
	}
	if (status == -ETIMEDOUT)
		warn_timeout(w->pr, w, "was not made durable by the in-sync "
				       "replicas");
	finish(w->pr, w, status == -ETIMEDOUT ? -EIO : status);
}

static bool acks_leader(struct tfs_produce *pr, uint32_t topic)
{
	struct tfs_topic *t = tfs_store_topic_by_id(pr->store, topic);
	bool one = false;

	if (t) {
		one = tfs_settings_get(tfs_topic_settings(t), TFS_CONF_ACKS) ==
		      TFS_ACKS_LEADER;
		tfs_topic_unref(t);
	}
	return one;
}

static void attempt_local(struct tfs_produce *pr, struct tfs_write *w)
{
	int rc;

	atomic_fetch_add(&pr->local, 1);
	/* Armed before the write can park: after that it is not ours. */
	w->retry.fn = local_expired;
	tfs_timer_arm(pr->timers, &w->retry, w->deadline);
	if (w->is_sync) {
		memset(&w->sr, 0, sizeof(w->sr));
		w->sr.deadline = w->deadline;
		w->sr.done = local_synced;
		rc = tfs_partition_sync(w->p, &w->sr);
		if (rc == 1 || rc < 0) {
			tfs_timer_disarm(pr->timers, &w->retry);
			if (rc == -ETIMEDOUT)
				warn_timeout(pr, w, "was not made durable by "
						    "the in-sync replicas");
			finish(pr, w, rc == 1 ? 0 : rc == -ETIMEDOUT ? -EIO : rc);
		}
		return;
	}
	struct iovec iov = { w->bytes, w->len };

	memset(&w->a, 0, sizeof(w->a));
	w->a.iov = &iov;
	w->a.iovcnt = 1;
	w->a.producer = w->producer;
	w->a.sequence = w->seq;
	w->a.flags = acks_leader(pr, w->topic) ? TFS_APPEND_ACK_LEADER : 0;
	w->a.deadline = w->deadline;
	w->a.done = local_appended;
	uint32_t topic = w->topic, part = w->part;

	rc = tfs_partition_append(w->p, &w->a);
	if (rc)
		tfs_timer_disarm(pr->timers, &w->retry);
	if (rc == TFS_ENOTLEADER)
		retry(pr, w, RETRY_MS);
	else if (rc)
		finish(pr, w, rc == TFS_ESEQUENCE ? -EIO : rc);
	else
		/* w may be done and gone: only the ids are used. */
		tfs_repl_appended(pr->repl, topic, part);
}

/* --- forwarded to the leader ------------------------------------------------ */

static void visible(struct tfs_wait *wt, int status)
{
	struct tfs_write *w = tfs_container_of(wt, struct tfs_write, visible);

	/* Committed on the leader whatever happens here: a slow local
	 * replica delays the answer, never fails it. */
	finish(w->pr, w, 0);
}

/* The leader took it: once this node's replica shows it, done. */
static void forwarded_ok(struct tfs_produce *pr, struct tfs_write *w)
{
	struct tfs_bounds b;

	atomic_fetch_add(&pr->forwarded, 1);
	tfs_partition_bounds(w->p, &b);
	if (w->is_sync || b.role != TFS_ROLE_FOLLOWER || w->end == 0 ||
	    b.hw >= w->end) {
		finish(pr, w, 0);
		return;
	}
	memset(&w->visible, 0, sizeof(w->visible));
	w->visible.offset = w->end - 1;
	w->visible.deadline = TFS_MAX(w->deadline, tfs_mono_ms() + 1000);
	w->visible.done = visible;
	tfs_wait_start(w->p, &w->visible);
}

static void forward_done(struct tfs_http_req *hr, int rc)
{
	struct tfs_write *w = tfs_container_of(hr, struct tfs_write, http);
	struct tfs_produce *pr = w->pr;
	long st = hr->status;

	if (rc) {
		/* Unreachable, reset, timed out: maybe the leader is gone. */
		tfs_cluster_kick(pr->cluster);
		tfs_http_req_release(hr);
		retry(pr, w, RETRY_SLOW_MS);
		return;
	}
	if (st == 200) {
		unsigned long long end = 0;
		int dup = 0;

		if (hr->resp.data && sscanf(hr->resp.data, "end=%llu dup=%d",
					    &end, &dup) >= 1)
			w->end = end;
		if (dup)
			atomic_fetch_add(&pr->duplicates, 1);
		forwarded_ok(pr, w);
		return;
	}
	tfs_http_req_release(hr);
	switch (st) {
	case 409:		/* not the leader at that epoch */
		tfs_cluster_kick(pr->cluster);
		retry(pr, w, RETRY_MS);
		return;
	case 503:		/* too few in-sync replicas, lease unsure */
		retry(pr, w, RETRY_SLOW_MS);
		return;
	case 400:
		finish(pr, w, -EINVAL);
		return;
	case 413:
		finish(pr, w, -EFBIG);
		return;
	case 507:
		finish(pr, w, -ENOSPC);
		return;
	case 401:
		if (tfs_log_due(&pr->warned_401, 10000))
			tfs_err("%s: the leader refused this node's request "
				"(401): is cluster.secret.file the same on "
				"every node, and the clocks within 30 s? "
				"(repeats for 10 s are not logged)",
				tfs_partition_name(w->p));
		retry(pr, w, RETRY_SLOW_MS);
		return;
	default:
		if (st >= 500) {
			retry(pr, w, RETRY_SLOW_MS);
			return;
		}
		finish(pr, w, -EIO);	/* 422, a sequence gap, and the rest */
	}
}

static void attempt_remote(struct tfs_produce *pr, struct tfs_write *w,
			   const struct tfs_part_view *v)
{
	struct tfs_auth_headers ah;
	char base[300], target[256];

	if (tfs_cluster_node_address(pr->cluster, v->leader, base,
				     sizeof(base))) {
		retry(pr, w, RETRY_SLOW_MS);
		return;
	}
	/* One try waits at most a session timeout: a leader that answers
	 * nothing for that long has lost its lease, and the retry (the same
	 * sequence: never appended twice) goes to whoever leads then. */
	int64_t left = TFS_MIN(TFS_MAX(w->deadline - tfs_mono_ms(), 100),
			       pr->attempt_ms);

	if (w->is_sync)
		snprintf(target, sizeof(target),
			 "/v1/sync?topic=%" PRIu32 "&partition=%" PRIu32
			 "&epoch=%" PRIu32 "&timeout_ms=%" PRId64,
			 w->topic, w->part, v->epoch, left);
	else
		snprintf(target, sizeof(target),
			 "/v1/append?topic=%" PRIu32 "&partition=%" PRIu32
			 "&epoch=%" PRIu32 "&producer=%016" PRIx64
			 "&seq=%" PRIu32 "&acks=%s&timeout_ms=%" PRId64,
			 w->topic, w->part, v->epoch, w->producer, w->seq,
			 acks_leader(pr, w->topic) ? "1" : "all", left);
	tfs_buf_reset(&w->url);
	tfs_buf_addf(&w->url, "%s%s", base, target);
	tfs_auth_sign(pr->auth, "POST", target, w->bytes, w->len, tfs_now_ms(),
		      &ah);
	for (int i = 0; i < 4; i++) {
		free(w->headers[i]);
		w->headers[i] = tfs_strdup(ah.lines[i]);
	}
	free(w->headers[4]);
	w->headers[4] = tfs_strdup("Content-Type: text/plain");
	w->headers[5] = NULL;
	memset(&w->http, 0, sizeof(w->http));
	w->http.method = "POST";
	w->http.url = w->url.data;
	w->http.headers = (const char *const *)w->headers;
	w->http.body = w->bytes;
	w->http.body_len = w->len;
	w->http.timeout_ms = left;
	w->http.done = forward_done;
	tfs_httpc_submit(pr->httpc, &w->http);
}

/* One try at getting w to its partition's leader. */
static void attempt(struct tfs_produce *pr, struct tfs_write *w)
{
	struct tfs_part_view v;
	bool stopping;

	pthread_mutex_lock(&pr->lock);
	stopping = pr->stopping;
	pthread_mutex_unlock(&pr->lock);
	if (stopping) {
		finish(pr, w, -EIO);
		return;
	}
	w->tries++;
	if (tfs_cluster_view(pr->cluster, w->topic, w->part, &v)) {
		finish(pr, w, -ENOENT);	/* the topic went */
		return;
	}
	if (v.role == TFS_ROLE_LEADER) {
		int rc = tfs_repl_can_lead(pr->repl, w->topic, w->part,
					   !w->is_sync &&
						   acks_leader(pr, w->topic));

		if (rc == 0)
			attempt_local(pr, w);
		else
			retry(pr, w, rc == TFS_ENOISR ? RETRY_SLOW_MS
						      : RETRY_MS);
	} else if (v.leader && v.leader != tfs_cluster_node_id(pr->cluster)) {
		attempt_remote(pr, w, &v);
	} else {
		tfs_cluster_kick(pr->cluster);
		retry(pr, w, RETRY_SLOW_MS);
	}
}

void tfs_produce_submit(struct tfs_produce *pr, struct tfs_write *w)
{
	struct tfs_write *head;

	w->len = 0;
	for (int i = 0; i < w->iovcnt; i++)
		w->len += w->iov[i].iov_len;
	w->bytes = tfs_malloc(w->len ? w->len : 1);
	for (int i = 0, at = 0; i < w->iovcnt; i++) {
		memcpy(w->bytes + at, w->iov[i].iov_base, w->iov[i].iov_len);
		at += (int)w->iov[i].iov_len;
	}
	w->pr = pr;
	w->tries = 0;
	w->end = 0;
	memset(w->headers, 0, sizeof(w->headers));
	memset(&w->url, 0, sizeof(w->url));
	memset(&w->http, 0, sizeof(w->http));
	pthread_mutex_lock(&pr->lock);
	w->stream = stream_of(pr, w->topic, w->part);
	bool idle = tfs_list_empty(&w->stream->queue);
	tfs_list_add_tail(&w->stream->queue, &w->link);
	head = idle ? take_head(pr, w->stream) : NULL;
	pthread_mutex_unlock(&pr->lock);
	if (head)
		attempt(pr, head);
}

/* --- the leader's endpoints ----------------------------------------------------- */

/* A query argument as an unsigned number; false if absent or bad. */
/* The local partition of a request; replies and returns NULL if none. */
static struct tfs_partition *request_partition(struct tfs_produce *pr,
					       struct tfs_httpd_req *req,
					       uint32_t *topic, uint32_t *part)
{
	uint64_t t, p, epoch;
	struct tfs_part_view v;

	if (!tfs_httpd_query_u64(req, "topic", 10, &t) ||
	    !tfs_httpd_query_u64(req, "partition", 10, &p) ||
	    !tfs_httpd_query_u64(req, "epoch", 10, &epoch) || t > UINT32_MAX ||
	    p > UINT32_MAX) {
		tfs_httpd_reply_text(req, 400, "topic, partition and epoch "
					       "are required");
		return NULL;
	}
	*topic = (uint32_t)t;
	*part = (uint32_t)p;
	if (tfs_cluster_view(pr->cluster, *topic, *part, &v) ||
	    v.role != TFS_ROLE_LEADER || v.epoch != epoch) {
		tfs_httpd_reply_text(req, 409, "not the leader at epoch %" PRIu64,
				     epoch);
		return NULL;
	}
	const char *acks = tfs_httpd_query(req, "acks");
	int rc = tfs_repl_can_lead(pr->repl, *topic, *part,
				   acks && !strcmp(acks, "1"));
	if (rc) {
		tfs_httpd_reply_text(req, rc == TFS_ENOISR ? 503 : 409, "%s",
				     tfs_strerror(rc));
		return NULL;
	}
	struct tfs_topic *tp = tfs_store_topic_by_id(pr->store, *topic);
	struct tfs_partition *part_obj = tp ? tfs_topic_partition(tp, *part)
					    : NULL;
	tfs_topic_unref(tp);
	if (!part_obj)
		tfs_httpd_reply_text(req, 409, "no such partition here");
	return part_obj;
}

static int status_of(int rc)
{
	switch (rc) {
	case -EINVAL:
		return 400;
	case -EFBIG:
		return 413;
	case TFS_ESEQUENCE:
		return 422;
	case -ENOSPC:
	case -EDQUOT:
		return 507;
	case TFS_ENOTLEADER:
	case TFS_ESTALEEPOCH:
		return 409;
	default:
		return 503;
	}
}

/*
 * A forwarded append or fsync in the leader.  It waits for its commit (or
 * durability) at most until the smaller of this node's request.timeout.ms
 * and the time the sender has left (timeout_ms): the timer takes it off
 * the partition's lists and answers 503, as local writes do (see
 * local_expired).  The sender retries the same sequence or gives up.
 */
struct fwd {
	struct tfs_append a;
	struct tfs_syncreq sr;
	bool is_sync;
	struct iovec iov;
	struct tfs_httpd_req *req;
	struct tfs_partition *p;
	struct tfs_produce *pr;
	struct tfs_timer timer;
};

static void fwd_free(struct fwd *f)
{
	tfs_partition_unref(f->p);
	free(f);
}

static void fwd_reply(struct fwd *f, int status)
{
	if (status == -ETIMEDOUT)
		tfs_httpd_reply_text(f->req, 503, "not %s by the in-sync "
				     "replicas in time",
				     f->is_sync ? "made durable" : "committed");
	else if (status)
		tfs_httpd_reply_text(f->req, status_of(status), "%s",
				     tfs_strerror(status));
	else if (f->is_sync)
		tfs_httpd_reply_text(f->req, 200, "synced");
	else
		tfs_httpd_reply_text(f->req, 200, "end=%" PRIu64 " dup=%d",
				     f->a.offset + f->iov.iov_len,
				     f->a.duplicate ? 1 : 0);
	fwd_free(f);
}

static void fwd_expired(struct tfs_timer *t)
{
	struct fwd *f = tfs_container_of(t, struct fwd, timer);

	if (tfs_partition_cancel_sync(f->p, f->is_sync ? &f->sr : &f->a.sync))
		fwd_reply(f, -ETIMEDOUT);
}

static void fwd_appended(struct tfs_append *a, int status)
{
	struct fwd *f = tfs_container_of(a, struct fwd, a);

	tfs_timer_disarm(f->pr->timers, &f->timer);
	fwd_reply(f, status);
}

static void fwd_synced(struct tfs_syncreq *sr, int status)
{
	struct fwd *f = tfs_container_of(sr, struct fwd, sr);

	tfs_timer_disarm(f->pr->timers, &f->timer);
	fwd_reply(f, status);
}

/* Starts a forwarded request: checks the partition, arms the deadline.
 * NULL when it was answered already. */
static struct fwd *fwd_start(struct tfs_produce *pr,
			     struct tfs_httpd_req *req, bool is_sync,
			     uint32_t *topic, uint32_t *part)
{
	struct tfs_partition *p = request_partition(pr, req, topic, part);
	uint64_t left;
	int64_t wait = pr->timeout_ms;

	if (!p)
		return NULL;
	if (tfs_httpd_query_u64(req, "timeout_ms", 10, &left))
		wait = TFS_MIN(wait, (int64_t)TFS_MIN(left, INT32_MAX));
	struct fwd *f = tfs_calloc(1, sizeof(*f));
	f->req = req;
	f->p = p;
	f->pr = pr;
	f->is_sync = is_sync;
	f->timer.fn = fwd_expired;
	/* Armed before the request can park: after that it is not ours. */
	tfs_timer_arm(pr->timers, &f->timer, tfs_mono_ms() + wait);
	f->a.deadline = f->sr.deadline = tfs_mono_ms() + wait;
	return f;
}

static void append_handler(struct tfs_httpd_req *req, void *arg)
{
	struct tfs_produce *pr = arg;
	uint64_t producer, seq;
	uint32_t topic, part;
	size_t len;
	const void *body = tfs_httpd_body(req, &len);
	const char *acks = tfs_httpd_query(req, "acks");
	struct fwd *f;

	if (!tfs_httpd_query_u64(req, "producer", 16, &producer) ||
	    !tfs_httpd_query_u64(req, "seq", 10, &seq) || seq > UINT32_MAX) {
		tfs_httpd_reply_text(req, 400, "producer and seq are required");
		return;
	}
	f = fwd_start(pr, req, false, &topic, &part);
	if (!f)
		return;
	f->iov = (struct iovec){ (void *)body, len };
	f->a.iov = &f->iov;
	f->a.iovcnt = 1;
	f->a.producer = producer;
	f->a.sequence = (uint32_t)seq;
	f->a.flags = acks && !strcmp(acks, "1") ? TFS_APPEND_ACK_LEADER : 0;
	f->a.done = fwd_appended;
	int rc = tfs_partition_append(f->p, &f->a);
	if (rc) {
		tfs_timer_disarm(pr->timers, &f->timer);
		fwd_reply(f, rc);
		return;
	}
	tfs_repl_appended(pr->repl, topic, part);
}

static void sync_handler(struct tfs_httpd_req *req, void *arg)
{
	struct tfs_produce *pr = arg;
	uint32_t topic, part;
	struct fwd *f = fwd_start(pr, req, true, &topic, &part);

	if (!f)
		return;
	f->sr.done = fwd_synced;
	int rc = tfs_partition_sync(f->p, &f->sr);
	if (rc == 1 || rc < 0) {
		tfs_timer_disarm(pr->timers, &f->timer);
		fwd_reply(f, rc == 1 ? 0 : rc);
	}
}

/* --- life ----------------------------------------------------------------------- */

int tfs_produce_new(const struct tfs_produce_config *cfg,
		    struct tfs_produce **out)
{
	struct tfs_produce *pr = tfs_calloc(1, sizeof(*pr));

	pr->conf = cfg->conf;
	pr->store = cfg->store;
	pr->cluster = cfg->cluster;
	pr->repl = cfg->repl;
	pr->httpc = cfg->httpc;
	pr->auth = cfg->auth;
	pr->timers = cfg->timers;
	pr->me = tfs_cluster_node_id(cfg->cluster);
	pr->timeout_ms = tfs_conf_get(cfg->conf, TFS_CONF_REQUEST_TIMEOUT_MS);
	pr->attempt_ms = tfs_conf_get(cfg->conf, TFS_CONF_SESSION_TIMEOUT_MS);
	pthread_mutex_init(&pr->lock, NULL);
	pthread_cond_init(&pr->idle, NULL);
	tfs_httpd_route(cfg->httpd, "POST", "/v1/append", append_handler, pr);
	tfs_httpd_route(cfg->httpd, "POST", "/v1/sync", sync_handler, pr);
	*out = pr;
	return 0;
}

void tfs_produce_stop(struct tfs_produce *pr)
{
	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	pr->stopping = true;
	/* What is only queued fails here; the heads in flight end through
	 * their own paths, which now fail at their next attempt. */
	for (size_t i = 0; i < pr->nstreams; i++) {
		struct pstream *s = pr->streams[i];

		while (!tfs_list_empty(&s->queue) &&
		       s->queue.next->next != &s->queue) {
			struct tfs_write *w = tfs_container_of(
				s->queue.next->next, struct tfs_write, link);

			tfs_list_del(&w->link);
			pthread_mutex_unlock(&pr->lock);
			free(w->bytes);
			w->bytes = NULL;
			w->done(w, -EIO);
			pthread_mutex_lock(&pr->lock);
		}
	}
	pthread_mutex_unlock(&pr->lock);
}

void tfs_produce_free(struct tfs_produce *pr)
{
	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	while (pr->busy)
		pthread_cond_wait(&pr->idle, &pr->lock);
	pthread_mutex_unlock(&pr->lock);
	for (size_t i = 0; i < pr->nstreams; i++)
		free(pr->streams[i]);
	free(pr->streams);
	pthread_cond_destroy(&pr->idle);
	pthread_mutex_destroy(&pr->lock);
	free(pr);
}

void tfs_produce_forget_topic(struct tfs_produce *pr, uint32_t topic)
{
	size_t kept = 0;

	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	for (size_t i = 0; i < pr->nstreams; i++) {
		struct pstream *s = pr->streams[i];

		if (s->topic == topic && tfs_list_empty(&s->queue)) {
			free(s);
			continue;
		}
		if (s->topic == topic)
			s->gone = true;	/* finish() drops it */
		pr->streams[kept++] = s;
	}
	pr->nstreams = kept;
	pthread_mutex_unlock(&pr->lock);
}

void tfs_produce_stats(struct tfs_produce *pr, struct tfs_produce_stats *st)
{
	st->local = atomic_load(&pr->local);
	st->forwarded = atomic_load(&pr->forwarded);
	st->retries = atomic_load(&pr->retries);
	st->duplicates = atomic_load(&pr->duplicates);
	st->failed = atomic_load(&pr->failed);
	pthread_mutex_lock(&pr->lock);
	st->streams = pr->nstreams;
	pthread_mutex_unlock(&pr->lock);
}
