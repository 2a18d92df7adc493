/*
 * repl.c - pull replication between leaders and followers (repl.h).
 *
 * DESIGN
 *
 * State.  One `rpart` per partition this node has heard of from the
 * cluster, in a table sorted by (topic, partition) under the table's
 * rwlock; entries live as long as the replication layer.  An rpart's
 * mutex guards its view (cluster.h), and, when this node leads, its
 * followers' positions and the ISR used for the high watermark.
 *
 * The high watermark (leader).  The smallest log end over the in-sync
 * replicas, the leader's own included, as their fetches report it.  It
 * moves only forward, only while the ISR has min.insync.replicas members
 * (KIP-966) and only while this node's lease is surely alive: a leader cut
 * off from etcd stops committing, hence acknowledging, before another can
 * be elected.  An ISR expansion counts at once (KIP-497: a bigger ISR
 * can only hold the watermark back); a shrink counts once its transaction
 * succeeded.  The replicated durable end is the smallest durable end over
 * the followers in the ISR, and completes fsyncs on the leader.
 *
 * A fetch (leader).  Answered at once when one of its partitions has
 * something for the follower: batches past its end, a watermark above
 * what it knows, an fsync to do, a divergence or an epoch to tell.
 * Otherwise it parks: two waits per partition (its log end passing the
 * follower's end, its watermark passing the follower's) and one timer for
 * the whole session.  Whichever fires first claims the session (an atomic
 * state) and hands the answer to a worker, so an appender is never made to
 * build answers; the other waits are cancelled.  A session holds a
 * reference for each of its waits and its timer, and is freed by the last.
 *
 * A fetcher (follower).  One thread per leader node, fetching for every
 * partition this node follows there, one request at a time: the next
 * fetch is the acknowledgement of the last, so the loop goes round again
 * at once.  Each answer's batches are appended unchanged; the watermark
 * taken is min(leader's, own end).  A divergence is resolved as in
 * KIP-279: truncate to the smaller of the leader's end of the epoch it
 * names and this log's end of that epoch, both batch boundaries of the
 * batches the two logs share; then fetch again.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "err.h"
#include "log.h"
#include "repl.h"
#include "util.h"
#include "wire.h"
#include "workers.h"
#include "banned.h"

#define ISR_TICK_MS 200
#define FETCH_SLACK_MS 5000		/* a fetch's timeout beyond its wait */
#define MAX_FETCHERS 64
#define COMPRESS_MIN 4096		/* smaller answers travel as they are */
#define MAX_ANSWER (512u << 20)		/* a decompressed answer, at most */

struct follower {
	uint32_t node;
	uint64_t end, durable;
	int64_t last_fetch;		/* mono ms */
	int64_t caught_up;		/* mono ms it last reached our end */
	uint64_t end_answered;		/* our log end when last answered */
	/* Its last fetch came from below the committed end: it lost what
	 * it had acknowledged (a restart on an empty or cut disk), so it
	 * leaves the ISR at once (KIP-966). */
	bool below_hw;
};

struct rpart {
	uint32_t topic, part;
	struct tfs_partition *p;	/* a reference */
	/* The table's reference and one per user (a lookup, a snapshot, a
	 * fetcher's list): a deleted topic's entries leave the table and
	 * go with their last user. */
	atomic_int refs;
	bool gone;			/* (mu) its topic was deleted */

	pthread_mutex_t mu;
	struct tfs_part_view view;	/* (mu) */
	/* leading (mu): */
	bool leading;			/* at view.epoch, role set */
	uint64_t epoch_start;		/* log end when the leadership began */
	int64_t lead_since;		/* mono ms it began */
	struct follower fol[TFS_MAX_RF];
	uint32_t nfol;
	struct tfs_idset isr;		/* the ISR the watermark uses */
	/* Members of isr not yet in a committed ISR: followers that caught
	 * up (KIP-497: they count at once; the ticker commits them). */
	struct tfs_idset expanding;
	bool isr_busy;			/* an ISR transaction in flight */
};

struct fetcher {
	struct tfs_repl *r;
	uint32_t leader;
	pthread_t thread;
	bool kicked;			/* (r->flock) */
	uint32_t turn;			/* (its thread) which partition first */
	struct tfs_buf body, unpacked;
};

struct tfs_repl {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	struct tfs_timers *timers;
	struct tfs_cluster *cluster;
	uint32_t me;
	int64_t wait_max_ms, lag_max_ms;
	uint32_t fetch_max_bytes;
	bool zstd;

	pthread_rwlock_t lock;
	struct rpart **parts;		/* (lock) sorted by topic, part */
	size_t nparts, cap;

	pthread_mutex_t flock;
	pthread_cond_t fcond;
	struct fetcher *fetchers[MAX_FETCHERS];	/* (flock) */
	size_t nfetchers;
	bool stopping;			/* (flock) */

	struct tfs_workers *answerers;	/* build parked fetches' answers */
	struct tfs_ticker *ticker;	/* the ISR */

	atomic_ullong fetches_served, fetches_sent, bytes_served;
	atomic_ullong bytes_fetched, truncations, resets;
};

/* --- the table -------------------------------------------------------------- */

static int cmp_key(uint32_t t1, uint32_t p1, uint32_t t2, uint32_t p2)
{
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	return p1 < p2 ? -1 : p1 > p2;
}

/* Position of (topic, part) or where it would go.  Lock held. */
static size_t table_pos(struct tfs_repl *r, uint32_t topic, uint32_t part,
			bool *found)
{
	size_t lo = 0, hi = r->nparts;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_key(topic, part, r->parts[mid]->topic,
				r->parts[mid]->part);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void rpart_put(struct rpart *rp)
{
	if (!rp || !tfs_ref_put(&rp->refs))
		return;
	tfs_partition_unref(rp->p);
	pthread_mutex_destroy(&rp->mu);
	free(rp);
}

/* (topic, part)'s entry, referenced (rpart_put), or NULL. */
static struct rpart *lookup(struct tfs_repl *r, uint32_t topic, uint32_t part)
{
	struct rpart *rp = NULL;
	bool found;

	pthread_rwlock_rdlock(&r->lock);
	size_t i = table_pos(r, topic, part, &found);
	if (found) {
		rp = r->parts[i];
		tfs_ref_get(&rp->refs);
	}
	pthread_rwlock_unlock(&r->lock);
	return rp;
}

static struct rpart *get_or_add(struct tfs_repl *r, uint32_t topic,
				uint32_t part, struct tfs_partition *p)
{
	struct rpart *rp;
	bool found;

	pthread_rwlock_wrlock(&r->lock);
	size_t i = table_pos(r, topic, part, &found);
	if (found) {
		rp = r->parts[i];
		tfs_ref_get(&rp->refs);
		pthread_rwlock_unlock(&r->lock);
		return rp;
	}
	rp = tfs_calloc(1, sizeof(*rp));
	rp->topic = topic;
	rp->part = part;
	rp->p = tfs_partition_ref(p);
	tfs_ref_init(&rp->refs, 2);	/* the table's and the caller's */
	pthread_mutex_init(&rp->mu, NULL);
	if (r->nparts == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->parts = tfs_realloc(r->parts, r->cap * sizeof(*r->parts));
	}
	memmove(&r->parts[i + 1], &r->parts[i],
		(r->nparts - i) * sizeof(*r->parts));
	r->parts[i] = rp;
	r->nparts++;
	pthread_rwlock_unlock(&r->lock);
	return rp;
}

/* A snapshot of the table's entries, each referenced (snapshot_free). */
static struct rpart **table_snapshot(struct tfs_repl *r, size_t *n)
{
	struct rpart **v;

	pthread_rwlock_rdlock(&r->lock);
	v = tfs_malloc((r->nparts ? r->nparts : 1) * sizeof(*v));
	for (size_t i = 0; i < r->nparts; i++) {
		v[i] = r->parts[i];
		tfs_ref_get(&v[i]->refs);
	}
	*n = r->nparts;
	pthread_rwlock_unlock(&r->lock);
	return v;
}

static void snapshot_free(struct rpart **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rpart_put(v[i]);
	free(v);
}

/* --- the leader's bookkeeping --------------------------------------------------- */

static struct follower *follower_of(struct rpart *rp, uint32_t node)
{
	for (uint32_t i = 0; i < rp->nfol; i++)
		if (rp->fol[i].node == node)
			return &rp->fol[i];
	if (rp->nfol == TFS_MAX_RF)
		return NULL;
	rp->fol[rp->nfol] = (struct follower){ .node = node };
	return &rp->fol[rp->nfol++];
}

static void idset_add(struct tfs_idset *s, uint32_t id)
{
	if (!tfs_idset_has(s, id) && s->n < TFS_MAX_RF)
		s->id[s->n++] = id;
}

static void idset_del(struct tfs_idset *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->id[i] == id) {
			memmove(&s->id[i], &s->id[i + 1],
				(s->n - i - 1) * sizeof(s->id[0]));
			s->n--;
			return;
		}
	}
}

/*
 * The ISR the watermark uses from the committed one: the committed
 * members plus the pending expansions still replicas (those committed
 * meanwhile stop pending).  A member the committed ISR dropped is never
 * added back.  rp->mu held.
 */
static void effective_isr(struct rpart *rp, const struct tfs_idset *committed)
{
	struct tfs_idset pending = rp->expanding;

	rp->isr = *committed;
	for (uint32_t i = 0; i < pending.n; i++) {
		uint32_t id = pending.id[i];

		if (tfs_idset_has(committed, id) ||
		    !tfs_idset_has(&rp->view.replicas, id))
			idset_del(&rp->expanding, id);
		else
			idset_add(&rp->isr, id);
	}
}

/* How far the watermark and the replicated durable end may move. */
struct advance {
	struct tfs_partition *p;	/* a reference; NULL: nothing to do */
	uint64_t hw;			/* 0: the watermark stays */
	uint64_t durable;
};

/*
 * Works out how far the watermark and the replicated durable end may move
 * as the ISR stands.  rp->mu held; the moves themselves (apply_advance)
 * happen after it is dropped: they complete writes, whose callbacks may
 * start the next write and come back here.
 */
static void compute_advance(struct tfs_repl *r, struct rpart *rp,
			    struct advance *adv)
{
	struct tfs_bounds b;
	uint64_t hw, dur = UINT64_MAX;

	adv->p = NULL;
	if (!rp->leading)
		return;
	tfs_partition_bounds(rp->p, &b);
	hw = b.end;
	for (uint32_t i = 0; i < rp->isr.n; i++) {
		uint32_t id = rp->isr.id[i];
		struct follower *f = NULL;

		if (id == r->me)
			continue;
		for (uint32_t j = 0; j < rp->nfol && !f; j++)
			if (rp->fol[j].node == id)
				f = &rp->fol[j];
		/* A member not heard from since this leadership began
		 * holds the watermark where it is. */
		hw = TFS_MIN(hw, f ? f->end : b.hw);
		dur = TFS_MIN(dur, f ? f->durable : 0);
	}
	adv->p = tfs_partition_ref(rp->p);
	adv->durable = dur;
	adv->hw = 0;
	if (rp->isr.n >= rp->view.min_isr && tfs_idset_has(&rp->isr, r->me) &&
	    tfs_cluster_lease_ok(r->cluster) && hw > b.hw)
		adv->hw = hw;
}

static void apply_advance(struct advance *adv)
{
	if (!adv->p)
		return;
	tfs_partition_set_replicated_durable(adv->p, adv->durable);
	if (adv->hw)
		tfs_partition_set_hw(adv->p, adv->hw);
	tfs_partition_unref(adv->p);
	adv->p = NULL;
}

void tfs_repl_appended(struct tfs_repl *r, uint32_t topic, uint32_t part)
{
	struct rpart *rp = lookup(r, topic, part);
	struct advance adv;

	if (!rp)
		return;
	pthread_mutex_lock(&rp->mu);
	compute_advance(r, rp, &adv);
	pthread_mutex_unlock(&rp->mu);
	apply_advance(&adv);
	rpart_put(rp);
}

int tfs_repl_can_lead(struct tfs_repl *r, uint32_t topic, uint32_t part,
		      bool ack_leader)
{
	struct rpart *rp = lookup(r, topic, part);
	int rc = 0;

	if (!rp)
		return TFS_ENOTLEADER;
	pthread_mutex_lock(&rp->mu);
	if (!rp->leading || !tfs_cluster_lease_ok(r->cluster))
		rc = TFS_ENOTLEADER;
	else if (!ack_leader && rp->isr.n < rp->view.min_isr)
		rc = TFS_ENOISR;
	pthread_mutex_unlock(&rp->mu);
	rpart_put(rp);
	return rc;
}

int tfs_repl_lags(struct tfs_repl *r, uint32_t topic, uint32_t part,
		  struct tfs_replica_lag *out, int max)
{
	struct rpart *rp = lookup(r, topic, part);
	struct tfs_bounds b;
	int n = 0;

	if (!rp)
		return 0;
	tfs_partition_bounds(rp->p, &b);
	int64_t now = tfs_mono_ms();
	pthread_mutex_lock(&rp->mu);
	for (uint32_t i = 0; rp->leading && i < rp->view.replicas.n && n < max;
	     i++) {
		uint32_t id = rp->view.replicas.id[i];
		struct follower *f = NULL;

		if (id == r->me)
			continue;
		for (uint32_t j = 0; j < rp->nfol && !f; j++)
			if (rp->fol[j].node == id)
				f = &rp->fol[j];
		out[n++] = (struct tfs_replica_lag){
			.node = id,
			.lag_bytes = f && f->end < b.end ? b.end - f->end
						 : (f ? 0 : b.end),
			.lag_ms = f && f->caught_up ? now - f->caught_up : -1,
			.in_sync = tfs_idset_has(&rp->isr, id),
		};
	}
	pthread_mutex_unlock(&rp->mu);
	rpart_put(rp);
	return n;
}

/* --- answering fetches ------------------------------------------------------------- */

/*
 * Fills res for one partition of a fetch and appends its batches to out
 * (within *budget bytes).  Returns true when it has news for the
 * follower (anything but "nothing new").
 */
static bool serve_part(struct tfs_repl *r, uint32_t follower,
		       const struct tfs_fetch_part *f, size_t *budget,
		       struct tfs_buf *out)
{
	struct tfs_fetch_result res = { .topic = f->topic,
					.partition = f->partition };
	struct rpart *rp = lookup(r, f->topic, f->partition);
	struct tfs_index_entry *e = NULL;
	struct tfs_readv rv = { 0 };
	struct tfs_bounds b;
	struct advance adv = { 0 };
	size_t n = 0;
	bool kick = false;

	if (!rp) {
		res.err = TFS_FETCH_UNKNOWN;
		tfs_fetch_result_encode(&res, out);
		return true;
	}
	pthread_mutex_lock(&rp->mu);
	res.leader_epoch = rp->view.epoch;
	if (!rp->leading) {
		res.err = TFS_FETCH_NOT_LEADER;
	} else if (f->leader_epoch < rp->view.epoch) {
		res.err = TFS_FETCH_OLD_EPOCH;
	} else if (f->leader_epoch > rp->view.epoch) {
		/* The follower knows a newer leadership: this one is over. */
		res.err = TFS_FETCH_NEW_EPOCH;
		kick = true;
	}
	tfs_partition_bounds(rp->p, &b);
	res.start = b.start;
	res.start_record = b.start_record;
	res.log_end = b.end;
	res.hw = b.hw;
	if (res.err == 0 && f->end < b.start) {
		res.err = TFS_FETCH_BELOW_START;
	} else if (res.err == 0 && f->end > b.start) {
		uint32_t found = 0;
		uint64_t end = b.start;

		if (tfs_partition_epoch_end(rp->p, f->last_epoch, &found,
					    &end) ||
		    found != f->last_epoch || end < f->end) {
			res.err = TFS_FETCH_DIVERGED;
			res.diverged_epoch = found;
			res.diverged_end = TFS_MAX(end, b.start);
		}
	}
	if (res.err == 0) {
		struct follower *fo = follower_of(rp, follower);
		int64_t now = tfs_mono_ms();

		if (fo) {
			fo->end = f->end;
			fo->durable = f->durable;
			fo->below_hw = f->end < b.hw;
			fo->last_fetch = now;
			if (f->end >= fo->end_answered)
				fo->caught_up = now;
			fo->end_answered = b.end;
		}
		/* Caught up with the watermark and this epoch: in sync
		 * (counts at once; the ticker makes it official). */
		if (!tfs_idset_has(&rp->isr, follower) &&
		    tfs_idset_has(&rp->view.replicas, follower) &&
		    f->end >= b.hw && f->end >= rp->epoch_start) {
			idset_add(&rp->isr, follower);
			idset_add(&rp->expanding, follower);
		}
		compute_advance(r, rp, &adv);
	}
	pthread_mutex_unlock(&rp->mu);
	if (kick)
		tfs_cluster_kick(r->cluster);
	if (res.err == 0) {
		apply_advance(&adv);
		tfs_partition_bounds(rp->p, &b);
		res.hw = b.hw;
		res.log_end = b.end;
		uint64_t want = tfs_partition_sync_wanted(rp->p);
		if (want > f->durable)
			res.sync_to = TFS_MIN(want, f->end);
	}

	if (res.err == 0 && f->end < res.log_end && *budget > 0) {
		int rc = tfs_partition_read_batches(rp->p, f->end, *budget,
						    false, &e, &n, &rv);
		if (rc == TFS_ECORRUPT) {
			res.err = TFS_FETCH_CORRUPT;
		} else if (rc == 0) {
			res.nbatches = (uint32_t)n;
			res.entries = e;
			res.data_len = rv.len;
		}
	}
	tfs_fetch_result_encode(&res, out);
	if (res.data_len) {
		size_t at = out->len;

		tfs_buf_grow(out, res.data_len);
		ssize_t got = tfs_readv_copy(&rv, 0, out->data + at,
					     res.data_len);
		if (got != (ssize_t)res.data_len) {
			/* The bytes went (a truncation or retention
			 * meanwhile): answer this partition with nothing. */
			out->len = at - 80 - (size_t)n * TFS_INDEX_ENTRY_SIZE;
			res.nbatches = 0;
			res.data_len = 0;
			tfs_fetch_result_encode(&res, out);
		} else {
			out->len += res.data_len;
			*budget -= TFS_MIN(*budget, res.data_len);
		}
	}
	tfs_readv_release(&rv);
	free(e);
	rpart_put(rp);
	return res.err != 0 || res.nbatches > 0 || res.hw > f->hw ||
	       res.sync_to > f->durable;
}

/* Builds the whole answer; returns whether it has news. */
static bool build_answer(struct tfs_repl *r, const struct tfs_fetch_req *fr,
			 struct tfs_buf *out)
{
	size_t budget = TFS_MIN(fr->max_bytes, r->fetch_max_bytes);
	bool news = false;

	tfs_buf_reset(out);
	tfs_fetch_resp_begin(r->me, fr->n, out);
	for (uint32_t i = 0; i < fr->n; i++)
		news |= serve_part(r, fr->follower, &fr->parts[i], &budget,
				   out);
	atomic_fetch_add(&r->fetches_served, 1);
	return news;
}

static void reply_answer(struct tfs_repl *r, struct tfs_httpd_req *req,
			 struct tfs_buf *body)
{
	const char *ae = tfs_httpd_header(req, "Accept-Encoding");
	struct tfs_buf z = TFS_BUF_INIT;

	atomic_fetch_add(&r->bytes_served, body->len);
	if (r->zstd && body->len >= COMPRESS_MIN && ae && strstr(ae, "zstd") &&
	    tfs_zstd_pack(body->data, body->len, 1, &z) == 0 &&
	    z.len < body->len) {
		tfs_httpd_add_header(req, "Content-Encoding", "zstd");
		tfs_httpd_reply(req, 200, "application/octet-stream", z.data,
				z.len);
	} else {
		tfs_httpd_reply(req, 200, "application/octet-stream",
				body->data, body->len);
	}
	tfs_buf_release(&z);
}

/* A fetch parked until one of its partitions has news. */
struct session;

struct swait {
	struct tfs_wait w;
	struct session *s;
	struct tfs_partition *p;
};

struct session {
	struct tfs_repl *r;
	struct tfs_httpd_req *req;
	struct tfs_fetch_req fr;
	atomic_int refs;
	atomic_int claimed;
	struct swait *waits;
	int nwaits;
	struct tfs_timer timer;
	struct tfs_job job;
};

static void session_unref(struct session *s)
{
	if (!tfs_ref_put(&s->refs))
		return;
	for (int i = 0; i < s->nwaits; i++)
		tfs_partition_unref(s->waits[i].p);
	free(s->waits);
	tfs_fetch_req_release(&s->fr);
	free(s);
}

/* The first to claim the session has its answer built on a worker. */
static void claim(struct session *s)
{
	int expect = 0;

	if (atomic_compare_exchange_strong(&s->claimed, &expect, 1)) {
		tfs_ref_get(&s->refs);
		tfs_workers_submit_oneshot(s->r->answerers, &s->job);
	}
}

static void swait_done(struct tfs_wait *w, int status)
{
	struct swait *sw = tfs_container_of(w, struct swait, w);
	struct session *s = sw->s;

	claim(s);
	session_unref(s);
}

static void session_expired(struct tfs_timer *t)
{
	struct session *s = tfs_container_of(t, struct session, timer);

	claim(s);
	session_unref(s);
}

static void answer_job(struct tfs_job *job)
{
	struct session *s = tfs_container_of(job, struct session, job);
	struct tfs_buf body = TFS_BUF_INIT;

	if (tfs_timer_disarm(s->r->timers, &s->timer))
		session_unref(s);
	for (int i = 0; i < s->nwaits; i++)
		if (tfs_wait_cancel(s->waits[i].p, &s->waits[i].w,
				    -ECANCELED))
			session_unref(s);
	build_answer(s->r, &s->fr, &body);
	reply_answer(s->r, s->req, &body);
	tfs_buf_release(&body);
	session_unref(s);
}

/* Parks a fetch with nothing to say.  Takes fr. */
static void park_fetch(struct tfs_repl *r, struct tfs_httpd_req *req,
		       struct tfs_fetch_req *fr)
{
	struct session *s = tfs_calloc(1, sizeof(*s));
	int64_t wait = TFS_MIN((int64_t)fr->max_wait_ms, r->wait_max_ms);

	s->r = r;
	s->req = req;
	s->fr = *fr;
	tfs_job_init(&s->job, answer_job);
	s->waits = tfs_calloc(2 * (size_t)(fr->n ? fr->n : 1),
			      sizeof(*s->waits));
	for (uint32_t i = 0; i < fr->n; i++) {
		const struct tfs_fetch_part *f = &fr->parts[i];
		struct rpart *rp = lookup(r, f->topic, f->partition);

		if (!rp)
			continue;
		for (int k = 0; k < 2; k++) {
			struct swait *sw = &s->waits[s->nwaits++];

			sw->s = s;
			sw->p = tfs_partition_ref(rp->p);
			sw->w.on_end = k == 0;
			sw->w.offset = k == 0 ? f->end : f->hw;
			sw->w.done = swait_done;
		}
		rpart_put(rp);
	}
	/* One reference for this thread, one per wait, one for the timer. */
	tfs_ref_init(&s->refs, 2 + s->nwaits);
	s->timer.fn = session_expired;
	tfs_timer_arm(r->timers, &s->timer, tfs_mono_ms() + wait);
	for (int i = 0; i < s->nwaits; i++)
		tfs_wait_start(s->waits[i].p, &s->waits[i].w);
	session_unref(s);
}

static void fetch_handler(struct tfs_httpd_req *req, void *arg)
{
	struct tfs_repl *r = arg;
	struct tfs_fetch_req fr;
	struct tfs_buf body = TFS_BUF_INIT;
	const char *node = tfs_httpd_header(req, "X-Topicfs-Node");
	size_t len;
	const void *data = tfs_httpd_body(req, &len);

	if (tfs_fetch_req_decode(data, len, &fr)) {
		tfs_httpd_reply_text(req, 400, "malformed fetch");
		return;
	}
	if (!node || strtoul(node, NULL, 10) != fr.follower) {
		tfs_fetch_req_release(&fr);
		tfs_httpd_reply_text(req, 400, "fetch for another node");
		return;
	}
	if (build_answer(r, &fr, &body) || fr.max_wait_ms == 0) {
		reply_answer(r, req, &body);
		tfs_fetch_req_release(&fr);
	} else {
		park_fetch(r, req, &fr);
	}
	tfs_buf_release(&body);
}

/* --- the ISR ticker ------------------------------------------------------------------- */

/*
 * The ISR rp's leadership wants now: its members minus the followers
 * whose node left the cluster, that have not caught up for the lag time
 * (counted from the start of the leadership for one not heard from), or
 * that fetched from below the committed end.  Pending expansions it does
 * not want leave rp->isr here (*dropped set).  Returns true when it
 * differs from the committed one.  rp->mu held.
 */
static bool wanted_isr(struct tfs_repl *r, struct rpart *rp, int64_t now,
		       struct tfs_idset *want, bool *dropped)
{
	char addr[300];

	want->n = 0;
	for (uint32_t i = 0; i < rp->isr.n; i++) {
		uint32_t id = rp->isr.id[i];
		struct follower *f = NULL;
		int64_t since = rp->lead_since;

		if (id != r->me) {
			for (uint32_t j = 0; j < rp->nfol && !f; j++)
				if (rp->fol[j].node == id)
					f = &rp->fol[j];
			if (f && f->caught_up)
				since = f->caught_up;
			if (tfs_cluster_node_address(r->cluster, id, addr,
						     sizeof(addr)) == -ENOENT ||
			    now - since > r->lag_max_ms ||
			    (f && f->below_hw))
				continue;
		}
		want->id[want->n++] = id;
	}
	/* A pending member it no longer wants was never committed: it just
	 * stops counting (the watermark may move now). */
	for (uint32_t i = 0; i < rp->expanding.n;) {
		uint32_t id = rp->expanding.id[i];

		if (tfs_idset_has(want, id)) {
			i++;
			continue;
		}
		idset_del(&rp->expanding, id);
		idset_del(&rp->isr, id);
		*dropped = true;
	}
	if (want->n != rp->view.isr.n)
		return true;
	for (uint32_t i = 0; i < want->n; i++)
		if (!tfs_idset_has(&rp->view.isr, want->id[i]))
			return true;
	return false;
}

static void isr_tick(void *arg)
{
	struct tfs_repl *r = arg;
	size_t n;
	struct rpart **v = table_snapshot(r, &n);
	int64_t now = tfs_mono_ms();

	for (size_t i = 0; i < n; i++) {
		struct rpart *rp = v[i];
		struct tfs_part_view view;
		struct tfs_idset want;
		struct advance pending = { 0 };
		bool change, dropped = false;

		pthread_mutex_lock(&rp->mu);
		change = rp->leading && !rp->isr_busy &&
			 tfs_cluster_lease_ok(r->cluster) &&
			 wanted_isr(r, rp, now, &want, &dropped);
		if (change) {
			rp->isr_busy = true;
			view = rp->view;
		}
		if (dropped)
			compute_advance(r, rp, &pending);
		pthread_mutex_unlock(&rp->mu);
		apply_advance(&pending);
		if (!change)
			continue;
		int rc = tfs_cluster_set_isr(r->cluster, &view, &want);
		char was[64], now_isr[64];
		tfs_idset_format(&view.isr, was, sizeof(was));
		tfs_idset_format(&want, now_isr, sizeof(now_isr));
		if (rc == 0)
			tfs_info("%s: in-sync replicas %s -> %s",
				 tfs_partition_name(rp->p), was, now_isr);
		else
			tfs_warn("%s: cannot change the in-sync replicas %s "
				 "-> %s: %s",
				 tfs_partition_name(rp->p), was, now_isr,
				 tfs_strerror(rc));
		struct advance adv = { 0 };
		pthread_mutex_lock(&rp->mu);
		rp->isr_busy = false;
		if (rc == 0 && rp->leading && rp->view.epoch == view.epoch) {
			/* Committed: it counts now, before the watch brings
			 * it back (a shrink may let the watermark move).
			 * What the change dropped stops pending too. */
			for (uint32_t j = 0; j < view.isr.n; j++)
				if (!tfs_idset_has(&want, view.isr.id[j]))
					idset_del(&rp->expanding,
						  view.isr.id[j]);
			rp->view.isr = want;
			effective_isr(rp, &want);
			compute_advance(r, rp, &adv);
		}
		pthread_mutex_unlock(&rp->mu);
		apply_advance(&adv);
	}
	snapshot_free(v, n);
}

/* --- roles ---------------------------------------------------------------------------- */

static void kick_fetcher(struct tfs_repl *r, uint32_t leader);

void tfs_repl_role(void *arg, struct tfs_partition *p,
		   const struct tfs_part_view *v)
{
	struct tfs_repl *r = arg;
	struct rpart *rp = get_or_add(r, v->topic, v->part, p);
	struct advance adv = { 0 };
	bool begin = false, was_leading;
	int rc = 0;

	pthread_mutex_lock(&rp->mu);
	was_leading = rp->leading;
	begin = v->role == TFS_ROLE_LEADER &&
		!(rp->leading && rp->view.epoch == v->epoch);
	if (v->role != TFS_ROLE_LEADER)
		rp->leading = false;
	pthread_mutex_unlock(&rp->mu);

	/* The partition's role changes outside rp->mu: losing leadership
	 * fails waiting writes, whose callbacks may come back here. */
	if (v->role == TFS_ROLE_LEADER) {
		if (begin)
			rc = tfs_partition_set_role(p, TFS_ROLE_LEADER,
						    v->epoch);
	} else {
		rc = tfs_partition_set_role(p, v->role, v->epoch);
	}
	if (rc)
		tfs_err("%s: cannot take role %s at epoch %" PRIu32 ": %s",
			tfs_partition_name(p), tfs_role_name(v->role),
			v->epoch, tfs_strerror(rc));

	pthread_mutex_lock(&rp->mu);
	rp->view = *v;
	if (v->role == TFS_ROLE_LEADER && rc == 0) {
		struct tfs_bounds b;

		if (begin) {
			tfs_partition_bounds(p, &b);
			rp->epoch_start = b.end;
			rp->lead_since = tfs_mono_ms();
			rp->nfol = 0;
			rp->leading = true;
			tfs_info("%s: leading at epoch %" PRIu32
				 " from offset %" PRIu64,
				 tfs_partition_name(p), v->epoch, b.end);
		}
		/* The committed ISR, plus those that caught up since
		 * (their expansion is on its way). */
		if (begin)
			rp->expanding.n = 0;
		effective_isr(rp, &v->isr);
		compute_advance(r, rp, &adv);
	}
	pthread_mutex_unlock(&rp->mu);
	apply_advance(&adv);
	if (was_leading && v->role != TFS_ROLE_LEADER)
		tfs_info("%s: no longer leading (now %s, leader %" PRIu32
			 ", epoch %" PRIu32 ")",
			 tfs_partition_name(p), tfs_role_name(v->role),
			 v->leader, v->epoch);
	if (v->role == TFS_ROLE_FOLLOWER && v->leader && v->leader != r->me)
		kick_fetcher(r, v->leader);
	rpart_put(rp);
}

void tfs_repl_forget_topic(void *arg, uint32_t topic)
{
	struct tfs_repl *r = arg;
	struct rpart **gone;
	size_t n = 0, kept = 0;

	pthread_rwlock_wrlock(&r->lock);
	gone = tfs_malloc((r->nparts ? r->nparts : 1) * sizeof(*gone));
	for (size_t i = 0; i < r->nparts; i++) {
		if (r->parts[i]->topic == topic)
			gone[n++] = r->parts[i];	/* the table's ref */
		else
			r->parts[kept++] = r->parts[i];
	}
	r->nparts = kept;
	pthread_rwlock_unlock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&gone[i]->mu);
		gone[i]->gone = true;
		gone[i]->leading = false;
		pthread_mutex_unlock(&gone[i]->mu);
		rpart_put(gone[i]);
	}
	free(gone);
}

/* --- fetchers ---------------------------------------------------------------------------- */

static void *fetcher_main(void *arg);

/* Wakes (or starts) the fetcher of leader. */
static void kick_fetcher(struct tfs_repl *r, uint32_t leader)
{
	struct fetcher *f = NULL;

	pthread_mutex_lock(&r->flock);
	if (r->stopping || !r->cluster) {
		pthread_mutex_unlock(&r->flock);
		return;
	}
	for (size_t i = 0; i < r->nfetchers && !f; i++)
		if (r->fetchers[i]->leader == leader)
			f = r->fetchers[i];
	if (!f && r->nfetchers < MAX_FETCHERS) {
		f = tfs_calloc(1, sizeof(*f));
		f->r = r;
		f->leader = leader;
		if (pthread_create(&f->thread, NULL, fetcher_main, f)) {
			tfs_err("cannot start a fetcher for node %" PRIu32,
				leader);
			free(f);
			f = NULL;
		} else {
			r->fetchers[r->nfetchers++] = f;
		}
	}
	if (f)
		f->kicked = true;
	pthread_cond_broadcast(&r->fcond);
	pthread_mutex_unlock(&r->flock);
}

/* Waits up to ms unless kicked or stopping; returns false when stopping. */
static bool fetcher_wait(struct fetcher *f, int64_t ms)
{
	struct tfs_repl *r = f->r;
	struct timespec ts;
	bool go;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&r->flock);
	if (!f->kicked && !r->stopping)
		pthread_cond_timedwait(&r->fcond, &r->flock, &ts);
	f->kicked = false;
	go = !r->stopping;
	pthread_mutex_unlock(&r->flock);
	return go;
}

/* The partitions this node follows at f's leader, as a request. */
static struct rpart **fetch_list(struct fetcher *f, struct tfs_fetch_req *req)
{
	struct tfs_repl *r = f->r;
	size_t n;
	struct rpart **all = table_snapshot(r, &n), **mine;

	mine = tfs_malloc((n ? n : 1) * sizeof(*mine));
	memset(req, 0, sizeof(*req));
	req->parts = tfs_calloc(n ? n : 1, sizeof(*req->parts));
	for (size_t i = 0; i < n; i++) {
		struct rpart *rp = all[i];
		struct tfs_bounds b;
		bool follow;
		uint32_t epoch;

		pthread_mutex_lock(&rp->mu);
		follow = !rp->gone && rp->view.role == TFS_ROLE_FOLLOWER &&
			 rp->view.leader == f->leader;
		epoch = rp->view.epoch;
		pthread_mutex_unlock(&rp->mu);
		if (!follow)
			continue;
		tfs_partition_bounds(rp->p, &b);
		if (b.role != TFS_ROLE_FOLLOWER)
			continue;
		tfs_ref_get(&rp->refs);
		mine[req->n] = rp;
		req->parts[req->n++] = (struct tfs_fetch_part){
			.topic = rp->topic,
			.partition = rp->part,
			.leader_epoch = epoch,
			/* The epoch of its last batch, not of a leadership
			 * that wrote nothing (KIP-101). */
			.last_epoch = b.last_batch_epoch,
			.end = b.end,
			.durable = b.durable,
			.hw = b.hw,
		};
	}
	snapshot_free(all, n);
	/* The leader fills an answer's byte budget in the request's order:
	 * start one partition further each time, so that one with a long
	 * backlog cannot take every answer while the others wait. */
	if (req->n > 1) {
		uint32_t k = f->turn++ % req->n;
		struct tfs_fetch_part *parts = tfs_malloc(req->n *
							  sizeof(*parts));
		struct rpart **rps = tfs_malloc(req->n * sizeof(*rps));

		for (uint32_t i = 0; i < req->n; i++) {
			parts[i] = req->parts[(k + i) % req->n];
			rps[i] = mine[(k + i) % req->n];
		}
		memcpy(req->parts, parts, req->n * sizeof(*parts));
		memcpy(mine, rps, req->n * sizeof(*rps));
		free(parts);
		free(rps);
	}
	return mine;
}

/* Resolves a divergence (KIP-279).  False when it cannot (the two logs
 * disagree on what diverged: the fetcher backs off). */
static bool truncate_diverged(struct tfs_repl *r, struct rpart *rp,
			      const struct tfs_fetch_result *res)
{
	struct tfs_bounds b;
	uint32_t found;
	uint64_t own = 0, to;

	tfs_partition_bounds(rp->p, &b);
	if (tfs_partition_epoch_end(rp->p, res->diverged_epoch, &found, &own))
		own = b.start;
	to = TFS_MIN(TFS_MIN(res->diverged_end, own), b.end);
	to = TFS_MAX(to, b.start);
	if (to >= b.end) {
		tfs_warn("%s: the leader says this log diverged at epoch "
			 "%" PRIu32 " (its end %" PRIu64 "), but nothing here "
			 "is past it (end %" PRIu64 ")",
			 tfs_partition_name(rp->p), res->diverged_epoch,
			 res->diverged_end, b.end);
		return false;
	}
	tfs_warn("%s: diverged from the leader at epoch %" PRIu32
		 ": truncating %" PRIu64 " -> %" PRIu64,
		 tfs_partition_name(rp->p), res->diverged_epoch, b.end, to);
	if (tfs_partition_truncate(rp->p, to))
		return false;
	atomic_fetch_add(&r->truncations, 1);
	return true;
}

/* An fsync waited for by a fetcher (the leader asked for one). */
struct fsync_wait {
	struct tfs_syncreq req;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
};

static void fsync_waited(struct tfs_syncreq *sr, int status)
{
	struct fsync_wait *fw = tfs_container_of(sr, struct fsync_wait, req);

	pthread_mutex_lock(&fw->mu);
	fw->done = true;
	pthread_cond_signal(&fw->cond);
	pthread_mutex_unlock(&fw->mu);
}

static void fsync_now(struct tfs_partition *p)
{
	struct fsync_wait fw = { .req.done = fsync_waited };

	pthread_mutex_init(&fw.mu, NULL);
	pthread_cond_init(&fw.cond, NULL);
	if (tfs_partition_sync(p, &fw.req) == 0) {
		pthread_mutex_lock(&fw.mu);
		while (!fw.done)
			pthread_cond_wait(&fw.cond, &fw.mu);
		pthread_mutex_unlock(&fw.mu);
	}
	pthread_cond_destroy(&fw.cond);
	pthread_mutex_destroy(&fw.mu);
}

/* Takes one partition's answer.  Returns true when it needs an fsync;
 * *stall when it could not move on (the fetcher backs off). */
static bool take_result(struct fetcher *f, struct rpart *rp,
			const struct tfs_fetch_result *res, bool *kick,
			bool *stall)
{
	struct tfs_repl *r = f->r;
	struct tfs_bounds b;
	int rc;

	switch (res->err) {
	case TFS_FETCH_OK:
		break;
	case TFS_FETCH_DIVERGED:
		if (!truncate_diverged(r, rp, res))
			*stall = true;
		return false;
	case TFS_FETCH_BELOW_START:
		if (tfs_partition_reset(rp->p, res->start, res->start_record,
					0) == 0)
			atomic_fetch_add(&r->resets, 1);
		return false;
	case TFS_FETCH_CORRUPT:
		tfs_warn("%s: the leader holds a damaged batch where this "
			 "replica must continue; waiting",
			 tfs_partition_name(rp->p));
		*stall = true;
		return false;
	default:
		*kick = true;	/* a leadership changed: read it */
		return false;
	}
	if (res->nbatches) {
		rc = tfs_partition_append_batches(rp->p, res->entries,
						  res->nbatches, res->data);
		if (rc) {
			tfs_warn("%s: cannot append %" PRIu32 " batches from "
				 "the leader at %" PRIu64 ": %s",
				 tfs_partition_name(rp->p), res->nbatches,
				 res->entries[0].offset, tfs_strerror(rc));
			*stall = true;	/* a full disk: back off */
			return false;
		}
		atomic_fetch_add(&r->bytes_fetched, res->data_len);
	}
	tfs_partition_bounds(rp->p, &b);
	tfs_partition_set_hw(rp->p, TFS_MIN(res->hw, b.end));
	return res->sync_to > b.durable;
}

/* One fetch round trip to f's leader.  Returns 0, or < 0 to back off. */
static int fetch_once(struct fetcher *f, struct rpart **mine,
		      struct tfs_fetch_req *req, const char *base)
{
	struct tfs_repl *r = f->r;
	struct tfs_auth_headers ah;
	struct tfs_fetch_resp resp;
	struct tfs_http_req hr = { 0 };
	const char *headers[7];
	char url[400], enc[32];
	bool kick = false, stall = false;
	int rc;

	snprintf(url, sizeof(url), "%s/v1/fetch", base);
	tfs_buf_reset(&f->body);
	tfs_fetch_req_encode(req, &f->body);
	tfs_auth_sign(r->auth, "POST", "/v1/fetch", f->body.data, f->body.len,
		      tfs_now_ms(), &ah);
	for (int i = 0; i < 4; i++)
		headers[i] = ah.lines[i];
	headers[4] = "Accept-Encoding: zstd";
	headers[5] = "Content-Type: application/octet-stream";
	headers[6] = NULL;
	hr.method = "POST";
	hr.url = url;
	hr.headers = headers;
	hr.body = f->body.data;
	hr.body_len = f->body.len;
	hr.timeout_ms = req->max_wait_ms + FETCH_SLACK_MS;
	hr.resp_max = MAX_ANSWER;
	rc = tfs_httpc_do(r->httpc, &hr);
	atomic_fetch_add(&r->fetches_sent, 1);
	if (rc == 0 && hr.status != 200) {
		/* The body is one line of text; its newline stays out. */
		int len = hr.resp.data ? (int)strcspn(hr.resp.data, "\n") : 0;

		tfs_warn("fetch from node %" PRIu32 ": HTTP %ld: %.*s",
			 f->leader, hr.status, TFS_MIN(len, 200),
			 hr.resp.data ? hr.resp.data : "");
		rc = TFS_EPROTO;
	}
	const char *data = hr.resp.data;
	size_t len = hr.resp.len;
	if (rc == 0 && tfs_http_resp_header(&hr, "Content-Encoding", enc,
					    sizeof(enc)) >= 0 &&
	    !strcmp(enc, "zstd")) {
		rc = tfs_zstd_unpack(hr.resp.data, hr.resp.len, MAX_ANSWER,
				     &f->unpacked);
		data = f->unpacked.data;
		len = f->unpacked.len;
	}
	if (rc == 0)
		rc = tfs_fetch_resp_decode(data, len, &resp);
	if (rc) {
		tfs_http_req_release(&hr);
		return rc;
	}
	bool need_sync[req->n ? req->n : 1];
	if (resp.n > req->n)
		rc = TFS_EPROTO;	/* answers for partitions not asked for */
	for (uint32_t i = 0; rc == 0 && i < resp.n; i++) {
		const struct tfs_fetch_result *res = &resp.results[i];

		need_sync[i] = false;
		if (res->topic != mine[i]->topic ||
		    res->partition != mine[i]->part) {
			rc = TFS_EPROTO;
			break;
		}
		need_sync[i] = take_result(f, mine[i], res, &kick, &stall);
	}
	for (uint32_t i = 0; rc == 0 && i < resp.n; i++)
		if (need_sync[i])
			fsync_now(mine[i]->p);
	tfs_fetch_resp_release(&resp);
	tfs_http_req_release(&hr);
	if (kick)
		tfs_cluster_kick(r->cluster);
	return rc ? rc : (stall || kick) ? -EAGAIN : 0;
}

static void *fetcher_main(void *arg)
{
	struct fetcher *f = arg;
	struct tfs_repl *r = f->r;
	int64_t backoff = 50;

	pthread_setname_np(pthread_self(), "tfs-fetcher");
	for (;;) {
		struct tfs_fetch_req req;
		struct rpart **mine = fetch_list(f, &req);
		char base[300];
		int rc = -ENOENT;

		req.follower = r->me;
		req.max_wait_ms = (uint32_t)r->wait_max_ms;
		req.max_bytes = r->fetch_max_bytes;
		if (req.n && tfs_cluster_node_address(r->cluster, f->leader,
						      base, sizeof(base)) == 0)
			rc = fetch_once(f, mine, &req, base);
		snapshot_free(mine, req.n);
		free(req.parts);
		if (rc == 0) {
			backoff = 50;
			pthread_mutex_lock(&r->flock);
			bool stop = r->stopping;
			pthread_mutex_unlock(&r->flock);
			if (stop)
				break;
			continue;
		}
		if (req.n == 0) {
			if (!fetcher_wait(f, 1000))
				break;
			continue;
		}
		/* The leader is unreachable or refused: maybe it is gone;
		 * the cluster says who leads now. */
		tfs_cluster_kick(r->cluster);
		if (!fetcher_wait(f, backoff))
			break;
		backoff = TFS_MIN(backoff * 2, 1000);
	}
	tfs_buf_release(&f->body);
	tfs_buf_release(&f->unpacked);
	return NULL;
}

/* --- life ---------------------------------------------------------------------------------- */

int tfs_repl_new(const struct tfs_repl_config *cfg, struct tfs_repl **out)
{
	struct tfs_repl *r = tfs_calloc(1, sizeof(*r));
	pthread_condattr_t ca;
	int rc;

	r->conf = cfg->conf;
	r->store = cfg->store;
	r->httpc = cfg->httpc;
	r->auth = cfg->auth;
	r->timers = cfg->timers;
	r->me = cfg->me;
	r->wait_max_ms = tfs_conf_get(cfg->conf,
				      TFS_CONF_REPLICA_FETCH_WAIT_MAX_MS);
	r->lag_max_ms = tfs_conf_get(cfg->conf,
				     TFS_CONF_REPLICA_LAG_TIME_MAX_MS);
	r->fetch_max_bytes = (uint32_t)tfs_conf_get(
		cfg->conf, TFS_CONF_REPLICA_FETCH_MAX_BYTES);
	r->zstd = tfs_conf_get(cfg->conf, TFS_CONF_REPLICATION_COMPRESSION) ==
		  TFS_COMPRESSION_ZSTD;
	pthread_rwlock_init(&r->lock, NULL);
	pthread_mutex_init(&r->flock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->fcond, &ca);
	pthread_condattr_destroy(&ca);
	rc = tfs_workers_start(2, "tfs-fetch", &r->answerers);
	if (rc) {
		free(r);
		return rc;
	}
	tfs_httpd_route(cfg->httpd, "POST", "/v1/fetch", fetch_handler, r);
	*out = r;
	return 0;
}

int tfs_repl_start(struct tfs_repl *r, struct tfs_cluster *c)
{
	size_t n;
	struct rpart **v;

	pthread_mutex_lock(&r->flock);
	r->cluster = c;
	pthread_mutex_unlock(&r->flock);
	/* Roles came before the fetchers could start: start them now. */
	v = table_snapshot(r, &n);
	for (size_t i = 0; i < n; i++) {
		uint32_t leader = 0;

		pthread_mutex_lock(&v[i]->mu);
		if (v[i]->view.role == TFS_ROLE_FOLLOWER)
			leader = v[i]->view.leader;
		pthread_mutex_unlock(&v[i]->mu);
		if (leader && leader != r->me)
			kick_fetcher(r, leader);
	}
	snapshot_free(v, n);
	return tfs_ticker_start("tfs-isr", ISR_TICK_MS, isr_tick, r,
				&r->ticker);
}

void tfs_repl_stop(struct tfs_repl *r)
{
	size_t n;
	struct rpart **v;

	if (!r)
		return;
	tfs_ticker_stop(r->ticker);
	pthread_mutex_lock(&r->flock);
	r->stopping = true;
	pthread_cond_broadcast(&r->fcond);
	pthread_mutex_unlock(&r->flock);
	for (size_t i = 0; i < r->nfetchers; i++) {
		/* A fetch in flight ends within its timeout; the HTTP
		 * client's stop cancels it sooner. */
		pthread_join(r->fetchers[i]->thread, NULL);
		free(r->fetchers[i]);
	}
	v = table_snapshot(r, &n);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&v[i]->mu);
		v[i]->leading = false;
		pthread_mutex_unlock(&v[i]->mu);
		/* Parked fetches wake (their waits end) and answer. */
		tfs_partition_set_role(v[i]->p, TFS_ROLE_NONE, 0);
		tfs_partition_wake_all(v[i]->p, TFS_ESHUTDOWN);
	}
	tfs_workers_stop(r->answerers);
	snapshot_free(v, n);
	/* Nothing else runs now: the table's references go last. */
	for (size_t i = 0; i < r->nparts; i++)
		rpart_put(r->parts[i]);
	free(r->parts);
	pthread_cond_destroy(&r->fcond);
	pthread_mutex_destroy(&r->flock);
	pthread_rwlock_destroy(&r->lock);
	free(r);
}

void tfs_repl_stats(struct tfs_repl *r, struct tfs_repl_stats *st)
{
	st->fetches_served = atomic_load(&r->fetches_served);
	st->fetches_sent = atomic_load(&r->fetches_sent);
	st->bytes_served = atomic_load(&r->bytes_served);
	st->bytes_fetched = atomic_load(&r->bytes_fetched);
	st->truncations = atomic_load(&r->truncations);
	st->resets = atomic_load(&r->resets);
}
