/*
 * partition.c - the sequencer of one partition.
 *
 * DESIGN
 *
 * Appends are sequenced under the partition lock: the batch gets the next
 * byte and record offsets and a commit timestamp (never lower than the
 * previous one, so lookups by time can binary-search), its bytes go to the
 * active segment's .log and its entry to the .index, both in the page
 * cache.  Nothing waits for the disk under the lock.  The CRC and the
 * newline count are computed before the lock is taken.
 *
 * Durability is the sync job's: one job per partition on the shared
 * worker pool fdatasyncs every segment with unsynced bytes (and the
 * directory after a roll), then moves the durable end and answers every
 * fsync and every durability=sync append whose target it passed.  Appends
 * that arrive while an fsync runs are covered by the next one, so
 * concurrent writers share fsyncs (group commit).  A failed fsync is not
 * retried: the partition is marked failed and refuses writes until the
 * daemon restarts and recovers from what is on disk.
 *
 * The same job writes the checkpoint when asked (every flush.ms and at
 * close): the durable end, which recovery trusts without reading.
 *
 * Readers waiting at the end (.follow reads, poll, replication fetches)
 * are parked on a list sorted by offset; whoever moves the committed end
 * wakes exactly those whose offset it passed, after dropping the lock.
 *
 * Roles: a standalone partition commits an append at once; a leader
 * stamps it with its epoch and parks its completion on `commits` until the
 * replication code moves hw past it (acks=all), or completes it at once
 * (acks=1); a follower takes only batches copied from its leader.
 *
 * The files besides the segments, and recovery, are in partition_open.c;
 * reads and lookups in partition_read.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "partition_int.h"
#include "sysio.h"
#include "banned.h"

struct tfs_settings *tfs_settings_new(const struct tfs_conf *defaults)
{
	struct tfs_settings *s = tfs_calloc(1, sizeof(*s));

	tfs_ref_init(&s->refs, 1);
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		atomic_init(&s->v[k], defaults->v[k]);
	return s;
}

struct tfs_settings *tfs_settings_ref(struct tfs_settings *s)
{
	tfs_ref_get(&s->refs);
	return s;
}

void tfs_settings_unref(struct tfs_settings *s)
{
	if (s && tfs_ref_put(&s->refs))
		free(s);
}

struct tfs_partition *tfs_partition_ref(struct tfs_partition *p)
{
	tfs_ref_get(&p->refs);
	return p;
}

void tfs_partition_unref(struct tfs_partition *p)
{
	if (!p || !tfs_ref_put(&p->refs))
		return;
	for (size_t i = 0; i < p->nsegs; i++)
		tfs_segment_unref(p->segs[i]);
	free(p->segs);
	free(p->epochs);
	free(p->damage);
	tfs_producers_release(&p->producers);
	tfs_sys_close(p->dirfd);
	tfs_settings_unref(p->settings);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->maint);
	free(p->name);
	free(p);
}

const char *tfs_partition_name(struct tfs_partition *p)
{
	return p->name;
}

const char *tfs_role_name(enum tfs_role role)
{
	switch (role) {
	case TFS_ROLE_STANDALONE:
		return "standalone";
	case TFS_ROLE_LEADER:
		return "leader";
	case TFS_ROLE_FOLLOWER:
		return "follower";
	case TFS_ROLE_NONE:
		break;
	}
	return "none";
}

enum tfs_role tfs_partition_role(struct tfs_partition *p, uint32_t *epoch)
{
	enum tfs_role r;

	pthread_mutex_lock(&p->lock);
	r = p->role;
	if (epoch)
		*epoch = p->epoch;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* --- waking -------------------------------------------------------------- */

/* Moves the waiters of list that `upto` has passed onto `out`.  Lock
 * held. */
static void collect_list(struct tfs_partition *p, struct tfs_list *list,
			 uint64_t upto, struct tfs_list *out)
{
	while (!tfs_list_empty(list)) {
		struct tfs_waiter *w =
			tfs_container_of(list->next, struct tfs_waiter, link);

		if (w->offset >= upto)
			break;
		tfs_list_del(&w->link);
		w->parked = false;
		p->nwaiters--;
		tfs_list_add_tail(out, &w->link);
	}
}

/* Moves waiters the committed end has passed onto `out`.  Lock held. */
static void collect_waiters(struct tfs_partition *p, struct tfs_list *out)
{
	collect_list(p, &p->waiters, p->hw, out);
}

/* What an fsync on this partition waits for: its durable end, and on a
 * leader the in-sync replicas' too.  Lock held. */
static uint64_t sync_end(const struct tfs_partition *p)
{
	/* A leader's sync is also a commit: durable on every in-sync
	 * replica, and the ISR large enough to commit at all. */
	if (p->role == TFS_ROLE_LEADER)
		return TFS_MIN(TFS_MIN(p->durable, p->rdurable), p->hw);
	return p->durable;
}

static void wake_waiters(struct tfs_list *list, int status)
{
	while (!tfs_list_empty(list)) {
		struct tfs_waiter *w =
			tfs_container_of(list->next, struct tfs_waiter, link);

		tfs_list_del(&w->link);
		w->wake(w, status);
	}
}

/* Moves sync requests whose target is durable onto `out`.  Lock held. */
static void collect_syncs(struct tfs_partition *p, uint64_t upto,
			  struct tfs_list *out)
{
	while (!tfs_list_empty(&p->syncs)) {
		struct tfs_syncreq *r = tfs_container_of(
			p->syncs.next, struct tfs_syncreq, link);

		if (r->target > upto)
			break;
		tfs_list_del(&r->link);
		tfs_list_add_tail(out, &r->link);
	}
}

static void finish_syncs(struct tfs_list *list, int status)
{
	while (!tfs_list_empty(list)) {
		struct tfs_syncreq *r =
			tfs_container_of(list->next, struct tfs_syncreq, link);

		tfs_list_del(&r->link);
		r->done(r, status);
	}
}

/* Moves the committed end forward.  Lock held. */
static void advance_hw(struct tfs_partition *p, uint64_t hw, uint64_t hw_rec,
		       struct tfs_list *woken, struct tfs_list *committed)
{
	if (hw <= p->hw)
		return;
	p->hw = hw;
	p->hw_record = hw_rec;
	collect_waiters(p, woken);
	if (committed) {
		/* The commits list is sorted by target like the syncs. */
		while (!tfs_list_empty(&p->commits)) {
			struct tfs_syncreq *r = tfs_container_of(
				p->commits.next, struct tfs_syncreq, link);

			if (r->target > hw)
				break;
			tfs_list_del(&r->link);
			tfs_list_add_tail(committed, &r->link);
		}
	}
}

void tfs_partition_fail(struct tfs_partition *p, int why)
{
	struct tfs_list failed;

	tfs_list_init(&failed);
	pthread_mutex_lock(&p->lock);
	if (!p->failed) {
		p->failed = why ? why : -EIO;
		tfs_err("%s: refusing writes until restart: %s", p->name,
			tfs_strerror(p->failed));
	}
	tfs_list_splice_tail(&failed, &p->syncs);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&failed, -EIO);
}

/* --- the sync job ---------------------------------------------------------- */

struct seg_snap {
	struct tfs_segment *s;
	uint64_t size, entries;
};

/* Snapshots the segments with unsynced bytes, newest first.  Lock held. */
static size_t snap_unsynced(struct tfs_partition *p, struct seg_snap **out)
{
	struct seg_snap *v = NULL;
	size_t n = 0;

	for (size_t i = p->nsegs; i-- > 0;) {
		struct tfs_segment *s = p->segs[i];

		if (s->synced_size == s->size &&
		    s->synced_entries == s->entries)
			break;
		v = tfs_realloc(v, (n + 1) * sizeof(*v));
		v[n++] = (struct seg_snap){ tfs_segment_ref(s), s->size,
					    s->entries };
	}
	*out = v;
	return n;
}

/* An fdatasync run on the auxiliary pool. */
struct fsync_task {
	struct tfs_job job;
	int fd;
	int rc;
};

static void fsync_task_fn(struct tfs_job *job)
{
	struct fsync_task *t = tfs_container_of(job, struct fsync_task, job);

	t->rc = tfs_sys_fdatasync(t->fd);
}

/*
 * fdatasyncs a segment's two files at the same time: each call keeps its
 * full meaning, and the device flushes they end with overlap (measured:
 * fsync every 1 MiB went from 0.60 to 0.68 of the native file system).
 */
static int sync_segment(struct tfs_partition *p, struct tfs_segment *s)
{
	struct fsync_task t = { .fd = s->idx_fd };
	int rc;

	if (!p->fsyncer)
		return tfs_segment_sync(s);
	tfs_job_init(&t.job, fsync_task_fn);
	tfs_workers_submit(p->fsyncer, &t.job);
	rc = tfs_sys_fdatasync(s->log_fd);
	/* Waits until the pool let go of the job, not only until it ran. */
	tfs_workers_wait(p->fsyncer, &t.job);
	return rc ? rc : t.rc;
}

static void checkpoint(struct tfs_partition *p)
{
	struct partition_checkpoint ck;

	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	ck.rp = p->durable;
	ck.rp_record = p->durable_record;
	ck.hw = p->hw;
	ck.hw_record = p->hw_record;
	bool due = ck.rp != p->ckpt_end;
	pthread_mutex_unlock(&p->lock);
	if (due && partition_write_checkpoint(p, &ck) == 0) {
		pthread_mutex_lock(&p->lock);
		p->ckpt_end = ck.rp;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&p->maint);
}

void partition_sync_job(struct tfs_job *job)
{
	struct tfs_partition *p =
		tfs_container_of(job, struct tfs_partition, sync_job);
	struct tfs_list done;
	struct seg_snap *snaps;
	uint64_t target, target_rec;
	bool need_dir, want_ckpt;
	size_t n;
	int rc = 0;

	tfs_list_init(&done);
	pthread_mutex_lock(&p->lock);
	if (p->failed) {
		pthread_mutex_unlock(&p->lock);
		tfs_partition_fail(p, p->failed);
		return;
	}
	target = p->end;
	target_rec = p->end_record;
	n = snap_unsynced(p, &snaps);
	need_dir = p->dir_dirty;
	p->dir_dirty = false;
	want_ckpt = p->ckpt_wanted;
	p->ckpt_wanted = false;
	pthread_mutex_unlock(&p->lock);

	for (size_t i = 0; i < n && !rc; i++)
		rc = sync_segment(p, snaps[i].s);
	if (!rc && need_dir)
		rc = tfs_sys_fsync(p->dirfd);
	if (rc) {
		tfs_err("%s: fsync failed: %s", p->name, tfs_strerror(rc));
		tfs_partition_fail(p, rc);
		goto out_unref;
	}

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		struct tfs_segment *s = snaps[i].s;

		s->synced_size = TFS_MAX(s->synced_size,
					 TFS_MIN(snaps[i].size, s->size));
		s->synced_entries =
			TFS_MAX(s->synced_entries,
				TFS_MIN(snaps[i].entries, s->entries));
	}
	/* A truncate meanwhile may have cut below target. */
	if (target > p->durable && target <= p->end) {
		p->durable = target;
		p->durable_record = target_rec;
	}
	collect_syncs(p, sync_end(p), &done);
	if (n)
		atomic_fetch_add(&p->fsyncs, 1);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&done, 0);
	if (want_ckpt)
		checkpoint(p);
out_unref:
	for (size_t i = 0; i < n; i++)
		tfs_segment_unref(snaps[i].s);
	free(snaps);
}

int tfs_partition_sync(struct tfs_partition *p, struct tfs_syncreq *r)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	if (p->failed) {
		rc = -EIO;
	} else if (sync_end(p) >= p->end) {
		rc = 1;
	} else if (p->gone) {
		rc = p->gone;
	} else if (r->deadline && tfs_mono_ms() >= r->deadline) {
		rc = -ETIMEDOUT;	/* its timer may have fired already */
	} else {
		r->target = p->end;
		tfs_list_add_tail(&p->syncs, &r->link);
		rc = 0;
	}
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		tfs_workers_submit(p->syncer, &p->sync_job);
	return rc;
}

/* Whether r is on list.  Lock held. */
static bool on_list(struct tfs_list *list, struct tfs_syncreq *r)
{
	for (struct tfs_list *l = list->next; l != list; l = l->next)
		if (l == &r->link)
			return true;
	return false;
}

bool tfs_partition_cancel_sync(struct tfs_partition *p, struct tfs_syncreq *r)
{
	bool parked;

	pthread_mutex_lock(&p->lock);
	/* Rare (a deadline passed): a walk of the waiting lists does. */
	parked = on_list(&p->commits, r) || on_list(&p->syncs, r);
	if (parked)
		tfs_list_del(&r->link);
	pthread_mutex_unlock(&p->lock);
	return parked;
}

void tfs_partition_flush(struct tfs_partition *p)
{
	bool due;

	pthread_mutex_lock(&p->lock);
	due = !p->gone && !p->failed &&
	      (p->end > p->durable || p->ckpt_end != p->durable);
	if (due)
		p->ckpt_wanted = true;
	pthread_mutex_unlock(&p->lock);
	if (due)
		tfs_workers_submit(p->syncer, &p->sync_job);
}

uint64_t tfs_partition_sync_wanted(struct tfs_partition *p)
{
	uint64_t t = 0;

	pthread_mutex_lock(&p->lock);
	if (!tfs_list_empty(&p->syncs))
		t = tfs_container_of(p->syncs.next, struct tfs_syncreq, link)
			    ->target;
	pthread_mutex_unlock(&p->lock);
	return t;
}

void tfs_partition_quiesce(struct tfs_partition *p)
{
	tfs_workers_wait(p->syncer, &p->sync_job);
}

void tfs_partition_close(struct tfs_partition *p, int why)
{
	struct tfs_list syncs;

	tfs_list_init(&syncs);
	tfs_workers_forget(p->syncer, &p->sync_job);
	pthread_mutex_lock(&p->lock);
	p->gone = why;
	p->ckpt_wanted = true;
	pthread_mutex_unlock(&p->lock);
	/* Run the job here: whatever was appended becomes durable and
	 * checkpointed, so the next start has nothing to check. */
	if (why != TFS_EDELETED)
		partition_sync_job(&p->sync_job);
	pthread_mutex_lock(&p->lock);
	tfs_segment_trim(p->segs[p->nsegs - 1]);
	tfs_list_splice_tail(&syncs, &p->syncs);
	tfs_list_splice_tail(&syncs, &p->commits);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&syncs, why);
	tfs_partition_wake_all(p, why);
}

/* --- appending ------------------------------------------------------------ */

/* Starts a new segment when the active one is full or old.  Lock held. */
static int maybe_roll(struct tfs_partition *p, size_t len, int64_t now)
{
	struct tfs_segment *active = p->segs[p->nsegs - 1];
	int64_t seg_bytes = tfs_settings_get(p->settings, TFS_CONF_SEGMENT_BYTES);
	int64_t seg_ms = tfs_settings_get(p->settings, TFS_CONF_SEGMENT_MS);

	if (active->size == 0)
		return 0;
	if (active->size + len <= (uint64_t)seg_bytes &&
	    !(seg_ms > 0 && now - active->first_ts >= seg_ms))
		return 0;
	return partition_roll(p);
}

/* Seals the active segment and starts an empty one.  Lock held. */
int partition_roll(struct tfs_partition *p)
{
	struct tfs_segment *active = p->segs[p->nsegs - 1], *s;
	int rc = tfs_segment_create(p->dirfd, p->end, p->end_record, &s);

	if (rc) {
		partition_disk_warning(p, "cannot start a new segment", rc);
		return rc;
	}
	active->sealed = true;
	/* Its preallocated index tail goes; a crash before that reaches the
	 * disk leaves zeros that the next open trims. */
	tfs_segment_trim(active);
	partition_push_segment(p, s);
	p->dir_dirty = true;
	return 0;
}

static void append_synced(struct tfs_syncreq *r, int status)
{
	struct tfs_append *a = tfs_container_of(r, struct tfs_append, sync);

	a->done(a, status);
}

/* Checks a refused state.  Lock held. */
static int writable(struct tfs_partition *p)
{
	if (p->gone)
		return p->gone;
	if (p->failed)
		return -EIO;
	return 0;
}

/*
 * The produce rules every caller gets: a batch is one or more whole
 * records (its last byte is '\n') and none is longer than
 * max.record.bytes.  Computes the batch's CRC, length and record count on
 * the way.  Returns 0, -EINVAL or -EFBIG.
 */
static int check_records(struct tfs_partition *p, const struct iovec *iov,
			 int iovcnt, size_t *len, uint32_t *records,
			 uint32_t *crc)
{
	size_t max = (size_t)tfs_settings_get(p->settings,
					      TFS_CONF_MAX_RECORD_BYTES);
	size_t line = 0, n = 0, count = 0;
	char last = 0;

	*crc = 0;
	for (int i = 0; i < iovcnt; i++) {
		const char *b = iov[i].iov_base, *end = b + iov[i].iov_len;

		if (iov[i].iov_len == 0)
			continue;
		*crc = tfs_crc32c(*crc, b, iov[i].iov_len);
		n += iov[i].iov_len;
		last = end[-1];
		if (line + iov[i].iov_len <= max) {
			/* No record here can be too long: count only. */
			size_t k = tfs_count_newlines(b, iov[i].iov_len);
			const char *nl = k ? memrchr(b, '\n', iov[i].iov_len)
					   : NULL;

			count += k;
			line = nl ? (size_t)(end - nl - 1)
				  : line + iov[i].iov_len;
			continue;
		}
		for (const char *q = b; q < end;) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));
			size_t piece = nl ? (size_t)(nl + 1 - q)
					  : (size_t)(end - q);

			if (line + piece > max)
				return -EFBIG;
			if (!nl) {
				line += piece;
				break;
			}
			count++;
			line = 0;
			q = nl + 1;
		}
	}
	if (n == 0 || last != '\n')
		return -EINVAL;
	if (n > UINT32_MAX || count > UINT32_MAX)
		return -EFBIG;
	*len = n;
	*records = (uint32_t)count;
	return 0;
}

/* How a leader's append waits (the syncs or commits list), if at all. */
static struct tfs_list *completion_list(struct tfs_partition *p, bool sync,
					bool ack_leader)
{
	if (sync)
		return &p->syncs;
	if (p->role == TFS_ROLE_LEADER && !ack_leader)
		return &p->commits;
	return NULL;
}

/* Inserts r in a list kept sorted by target (from the tail: most are
 * the newest).  Lock held. */
static void add_by_target(struct tfs_list *list, struct tfs_syncreq *r)
{
	struct tfs_list *pos = list->prev;

	while (pos != list &&
	       tfs_container_of(pos, struct tfs_syncreq, link)->target >
		       r->target)
		pos = pos->prev;
	tfs_list_insert_after(pos, &r->link);
}

/*
 * Parks a's completion until the end of its batch, `target`, is durable
 * or committed, as its flags and the role ask.  Returns 1 if parked, 0
 * when it need not wait, -ETIMEDOUT when it would but its deadline passed
 * (the caller completes it with that).  Lock held.
 */
static int park_append(struct tfs_partition *p, struct tfs_append *a,
		       bool sync, uint64_t target)
{
	struct tfs_list *wait = completion_list(p, sync,
						a->flags & TFS_APPEND_ACK_LEADER);

	if (!wait || (wait == &p->commits && p->hw >= target))
		return 0;
	/* A timer that fired before this could not end the wait. */
	if (a->deadline && tfs_mono_ms() >= a->deadline)
		return -ETIMEDOUT;
	a->sync.target = target;
	a->sync.deadline = a->deadline;
	a->sync.done = append_synced;
	add_by_target(wait, &a->sync);
	return 1;
}

/*
 * Checks a's producer sequence.  Returns 0 to append it, 1 for a retry of
 * the producer's last batch (a's offsets set to the original's, *dup_end
 * to the original's end), or TFS_ESEQUENCE.  Lock held.
 */
static int check_sequence(struct tfs_partition *p, struct tfs_append *a,
			  uint64_t *dup_end)
{
	struct tfs_producer_state last;

	if (!a->producer)
		return 0;
	switch (tfs_producers_check(&p->producers, a->producer, a->sequence,
				    &last)) {
	case TFS_PRODUCE_NEW:
		return 0;
	case TFS_PRODUCE_DUPLICATE:
		a->offset = last.offset;
		a->record = last.record;
		a->records = last.count;
		a->duplicate = true;
		*dup_end = last.offset + last.length;
		return 1;
	case TFS_PRODUCE_OUT_OF_ORDER:
		break;
	}
	tfs_warn("%s: producer %016" PRIx64 " sent sequence %" PRIu32
		 " after %" PRIu32 ": refused",
		 p->name, a->producer, a->sequence, last.sequence);
	return TFS_ESEQUENCE;
}

int tfs_partition_append(struct tfs_partition *p, struct tfs_append *a)
{
	struct tfs_index_entry e = { 0 };
	struct tfs_list woken;
	size_t len = 0;
	uint32_t crc = 0, records = 0;
	bool sync = (a->flags & TFS_APPEND_SYNC) ||
		    tfs_settings_get(p->settings, TFS_CONF_DURABILITY) ==
			    TFS_DURABILITY_SYNC;
	/* Once parked, a may complete on another thread and be freed: what
	 * is needed of it afterwards is read now. */
	bool defer = a->flags & TFS_APPEND_DEFER_WAKE;
	uint64_t dup_end = 0;
	struct tfs_list fetchers;
	int parked;
	int rc;

	a->duplicate = false;
	tfs_list_init(&fetchers);
	rc = check_records(p, a->iov, a->iovcnt, &len, &records, &crc);
	if (rc)
		return rc;
	tfs_list_init(&woken);
	int64_t now = tfs_now_ms();

	pthread_mutex_lock(&p->lock);
	rc = writable(p);
	if (rc == 0 && p->role != TFS_ROLE_STANDALONE &&
	    p->role != TFS_ROLE_LEADER)
		rc = TFS_ENOTLEADER;
	if (rc == 0)
		rc = check_sequence(p, a, &dup_end);
	if (rc == 1) {
		/* Nothing to append: answer as the original would be. */
		parked = park_append(p, a, sync, dup_end);
		pthread_mutex_unlock(&p->lock);
		goto out_done;
	}
	if (rc == 0)
		rc = maybe_roll(p, len, now);
	if (rc)
		goto out_unlock;
	e.offset = p->end;
	e.record = p->end_record;
	e.count = records;
	e.length = (uint32_t)len;
	e.epoch = p->epoch;
	e.timestamp = TFS_MAX(now, p->last_ts);
	e.producer = a->producer;
	e.sequence = a->sequence;
	e.crc = crc;
	struct tfs_segment *active = p->segs[p->nsegs - 1];
	rc = tfs_segment_append(active, &e, a->iov, a->iovcnt);
	if (rc) {
		if (active->broken)
			p->failed = -EIO;
		else
			partition_disk_warning(
				p, "write refused, nothing of it stored", rc);
		goto out_unlock;
	}
	p->end += len;
	p->end_record += records;
	p->last_ts = e.timestamp;
	tfs_producers_record(&p->producers, &e);
	collect_list(p, &p->end_waiters, p->end, &fetchers);
	a->offset = e.offset;
	a->record = e.record;
	a->records = records;
	atomic_fetch_add_explicit(&p->appends, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->append_bytes, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->append_records, records,
				  memory_order_relaxed);
	if (p->role == TFS_ROLE_STANDALONE)
		advance_hw(p, p->end, p->end_record, &woken, NULL);
	parked = park_append(p, a, sync, p->end);
	pthread_mutex_unlock(&p->lock);
	/* Followers first: on a leader the write commits only once they
	 * have fetched it. */
	wake_waiters(&fetchers, 0);

out_done:
	if (parked == 1 && sync)
		tfs_workers_submit(p->syncer, &p->sync_job);
	else if (parked <= 0)
		a->done(a, parked);
	if (defer) {	/* the caller keeps a until it has woken these */
		tfs_list_init(&a->woken);
		tfs_list_splice_tail(&a->woken, &woken);
	} else {
		wake_waiters(&woken, 0);
	}
	return 0;

out_unlock:
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Checks received batches before taking the lock. */
static int check_batches(const struct tfs_index_entry *entries, size_t n,
			 const unsigned char *data)
{
	size_t pos = 0;

	for (size_t i = 0; i < n; i++) {
		const struct tfs_index_entry *e = &entries[i];

		if (i > 0 && (e->offset != entries[i - 1].offset +
						   entries[i - 1].length ||
			      e->record != entries[i - 1].record +
						   entries[i - 1].count ||
			      e->timestamp < entries[i - 1].timestamp))
			return TFS_ENOTBOUNDARY;
		if (e->length == 0 || tfs_batch_verify(e, data + pos))
			return TFS_ECORRUPT;
		pos += e->length;
	}
	return 0;
}

int tfs_partition_append_batches(struct tfs_partition *p,
				 const struct tfs_index_entry *entries,
				 size_t n, const void *data)
{
	const unsigned char *d = data;
	bool new_epoch = false;
	int rc;

	if (n == 0)
		return 0;
	rc = check_batches(entries, n, d);
	if (rc)
		return rc;
	pthread_mutex_lock(&p->lock);
	rc = writable(p);
	if (rc == 0 && p->role != TFS_ROLE_FOLLOWER)
		rc = TFS_ENOTLEADER;
	if (rc == 0 && (entries[0].offset != p->end ||
			entries[0].record != p->end_record))
		rc = TFS_ENOTBOUNDARY;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct tfs_index_entry *e = &entries[i];
		struct iovec iov = { (void *)d, e->length };

		rc = maybe_roll(p, e->length, e->timestamp);
		if (rc)
			break;
		struct tfs_segment *active = p->segs[p->nsegs - 1];
		rc = tfs_segment_append(active, e, &iov, 1);
		if (rc) {
			if (active->broken)
				p->failed = -EIO;
			break;
		}
		if (e->epoch > p->epoch) {
			p->epochs = tfs_realloc(p->epochs, (p->nepochs + 1) *
							   sizeof(*p->epochs));
			p->epochs[p->nepochs++] =
				(struct tfs_epoch){ e->epoch, e->offset };
			p->epoch = e->epoch;
			new_epoch = true;
		}
		p->end += e->length;
		p->end_record += e->count;
		p->last_ts = TFS_MAX(p->last_ts, e->timestamp);
		tfs_producers_record(&p->producers, e);
		d += e->length;
		atomic_fetch_add(&p->appends, 1);
		atomic_fetch_add(&p->append_bytes, e->length);
		atomic_fetch_add(&p->append_records, e->count);
	}
	pthread_mutex_unlock(&p->lock);
	if (new_epoch) {
		pthread_mutex_lock(&p->maint);
		int erc = partition_write_epochs(p);
		pthread_mutex_unlock(&p->maint);
		if (!rc)
			rc = erc;
	}
	return rc;
}

/* --- producers ------------------------------------------------------------ */

/*
 * How far back a rebuild looks: a retry only ever repeats a producer's
 * last batch, sent within request.timeout.ms, so the newest batches are
 * what matters; a producer whose last batch is older reads as new.
 */
#define PRODUCER_SCAN_ENTRIES 16384

void partition_rebuild_producers(struct tfs_partition *p)
{
	struct tfs_index_entry *v = NULL;
	size_t left = PRODUCER_SCAN_ENTRIES, i = p->nsegs;

	tfs_producers_reset(&p->producers);
	/* Find where the scan starts, then record oldest first. */
	while (i > 0 && left > 0) {
		struct tfs_segment *s = p->segs[i - 1];

		if (s->entries >= left)
			break;
		left -= s->entries;
		i--;
	}
	if (i == 0)
		i = 1;
	for (size_t k = i - 1; k < p->nsegs; k++) {
		struct tfs_segment *s = p->segs[k];
		uint64_t from = k == i - 1 && s->entries > left
					? s->entries - left
					: 0;
		size_t n = (size_t)(s->entries - from);

		if (n == 0)
			continue;
		v = tfs_realloc(v, n * sizeof(*v));
		if (tfs_segment_entries(s, from, n, v)) {
			tfs_warn("%s: cannot read the index of segment "
				 "%020" PRIu64 " to find producers",
				 p->name, s->base);
			continue;
		}
		for (size_t j = 0; j < n; j++)
			tfs_producers_record(&p->producers, &v[j]);
	}
	free(v);
}

/* --- waiting -------------------------------------------------------------- */

/* Parks w in offset order on list.  Lock held. */
static void park(struct tfs_partition *p, struct tfs_list *list,
		 struct tfs_waiter *w)
{
	/* Most waiters wait at the end: insert from the tail. */
	struct tfs_list *pos = list->prev;

	while (pos != list &&
	       tfs_container_of(pos, struct tfs_waiter, link)->offset >
		       w->offset)
		pos = pos->prev;
	tfs_list_insert_after(pos, &w->link);
	w->parked = true;
	p->nwaiters++;
}

/* Unparks w if it is parked.  Lock held. */
static bool unpark(struct tfs_partition *p, struct tfs_waiter *w)
{
	if (!w->parked)
		return false;
	tfs_list_del(&w->link);
	w->parked = false;
	p->nwaiters--;
	return true;
}

/* Why a wait at offset would not park: 1 (data there), a status, or 0.
 * on_end: the log end, not the committed end.  Lock held. */
static int wait_outcome(struct tfs_partition *p, uint64_t offset, bool on_end)
{
	if ((on_end ? p->end : p->hw) > offset)
		return 1;
	if (p->gone)
		return p->gone;
	return p->waits_ended;
}

int tfs_partition_wait(struct tfs_partition *p, struct tfs_waiter *w)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	rc = wait_outcome(p, w->offset, false);
	if (rc == 0)
		park(p, &p->waiters, w);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void tfs_partition_wake_list(struct tfs_list *woken)
{
	wake_waiters(woken, 0);
}

void tfs_partition_wake_all(struct tfs_partition *p, int status)
{
	struct tfs_list woken;

	tfs_list_init(&woken);
	pthread_mutex_lock(&p->lock);
	tfs_list_splice_tail(&woken, &p->waiters);
	tfs_list_splice_tail(&woken, &p->end_waiters);
	for (struct tfs_list *l = woken.next; l != &woken; l = l->next)
		tfs_container_of(l, struct tfs_waiter, link)->parked = false;
	p->nwaiters = 0;
	pthread_mutex_unlock(&p->lock);
	wake_waiters(&woken, status);
}

void tfs_partition_end_waits(struct tfs_partition *p, int status)
{
	pthread_mutex_lock(&p->lock);
	p->waits_ended = status;
	pthread_mutex_unlock(&p->lock);
	tfs_partition_wake_all(p, status);
}

bool tfs_partition_wait_cancel(struct tfs_partition *p, struct tfs_waiter *w)
{
	bool was;

	pthread_mutex_lock(&p->lock);
	was = unpark(p, w);
	pthread_mutex_unlock(&p->lock);
	return was;
}

/*
 * struct tfs_wait.  Every way a wait ends goes through unparking its
 * waiter under the partition lock, so exactly one thread owns the end:
 * the appender that moved hw (wait_woken), the timer (wait_expired), a
 * canceller (tfs_wait_cancel), or the starter when the wait never parked.
 * The timer is armed before parking, because after parking the starter
 * may not touch w any more; whoever ends a wait disarms the timer first
 * (waiting for a running wait_expired), so the timer never touches a
 * finished wait.
 */
static void wait_finish(struct tfs_wait *w, int status)
{
	struct tfs_partition *p = w->p;

	w->done(w, status);	/* may free w */
	tfs_partition_unref(p);
}

static void wait_woken(struct tfs_waiter *wt, int status)
{
	struct tfs_wait *w = tfs_container_of(wt, struct tfs_wait, waiter);

	if (w->deadline)
		tfs_timer_disarm(w->p->timers, &w->timer);
	wait_finish(w, status);
}

static void wait_expired(struct tfs_timer *t)
{
	struct tfs_wait *w = tfs_container_of(t, struct tfs_wait, timer);

	if (tfs_partition_wait_cancel(w->p, &w->waiter))
		wait_finish(w, -ETIMEDOUT);
}

void tfs_wait_start(struct tfs_partition *p, struct tfs_wait *w)
{
	int rc;

	/* w is zeroed: waiter.parked is false for a canceller that looks
	 * before the wait parks. */
	w->p = tfs_partition_ref(p);
	w->waiter.offset = w->offset;
	w->waiter.wake = wait_woken;
	if (w->deadline) {
		w->timer.fn = wait_expired;
		tfs_timer_arm(p->timers, &w->timer, w->deadline);
	}
	pthread_mutex_lock(&p->lock);
	rc = wait_outcome(p, w->offset, w->on_end);
	if (rc == 0)
		rc = atomic_load(&w->cancel);
	/* A timer that fired before the wait parked could not end it. */
	if (rc == 0 && w->deadline && tfs_mono_ms() >= w->deadline)
		rc = -ETIMEDOUT;
	if (rc == 0)
		park(p, w->on_end ? &p->end_waiters : &p->waiters, &w->waiter);
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		return;	/* w belongs to whoever unparks it */
	if (w->deadline)
		tfs_timer_disarm(p->timers, &w->timer);
	wait_finish(w, rc == 1 ? 0 : rc);
}

bool tfs_wait_cancel(struct tfs_partition *p, struct tfs_wait *w, int status)
{
	bool won;

	pthread_mutex_lock(&p->lock);
	won = unpark(p, &w->waiter);
	if (!won)
		atomic_store(&w->cancel, status);
	pthread_mutex_unlock(&p->lock);
	if (!won)
		return false;
	if (w->deadline)
		tfs_timer_disarm(p->timers, &w->timer);
	tfs_partition_unref(w->p);
	return true;
}

/* --- truncation, epochs, the committed end -------------------------------- */

/* Drops segments from index i on, keeping their files for readers. */
static void drop_segments_from(struct tfs_partition *p, size_t i)
{
	while (p->nsegs > i) {
		struct tfs_segment *s = p->segs[--p->nsegs];

		partition_forget_damage(p, s->base, 0);
		tfs_segment_unlink(s);
		tfs_segment_unref(s);
	}
}

/* Cuts the in-memory state and the files to off.  Both locks held. */
static int cut_to(struct tfs_partition *p, uint64_t off, struct tfs_list *lost)
{
	size_t i = partition_find_segment(p, off, false);
	int rc;

	if (i > 0 && p->segs[i]->base == off)
		i--;	/* keep the previous one whole as the active segment */
	/* Cutting this one first also checks that off is a batch start;
	 * a crash before the drop leaves a gap that recovery removes. */
	struct tfs_segment *s = p->segs[i];
	rc = tfs_segment_truncate(s, off);
	if (rc)
		return rc;
	partition_forget_damage(p, s->base, off);
	drop_segments_from(p, i + 1);
	s->sealed = false;
	p->end = off;
	p->end_record = s->base_record + s->records;
	p->last_ts = s->last_ts;
	for (size_t j = i; j-- > 0 && !p->last_ts;)
		p->last_ts = p->segs[j]->last_ts;
	if (p->hw > off) {
		p->hw = off;
		p->hw_record = p->end_record;
	}
	if (p->durable > off) {
		p->durable = off;
		p->durable_record = p->end_record;
	}
	while (p->nepochs > 1 && p->epochs[p->nepochs - 1].start >= off)
		p->nepochs--;
	p->epoch = p->epochs[p->nepochs - 1].epoch;
	p->dir_dirty = true;
	partition_rebuild_producers(p);
	/* Appends waiting for a sync of bytes that are gone will not get it. */
	while (!tfs_list_empty(&p->syncs)) {
		struct tfs_list *l = p->syncs.prev;

		if (tfs_container_of(l, struct tfs_syncreq, link)->target <=
		    off)
			break;
		tfs_list_del(l);
		tfs_list_add_tail(lost, l);
	}
	return 0;
}

/* The record offset of the batch that starts at off (< end).  0,
 * TFS_ENOTBOUNDARY or TFS_ECORRUPT.  Lock held. */
static int record_at(struct tfs_partition *p, uint64_t off, uint64_t *rec)
{
	struct tfs_segment *s = p->segs[partition_find_segment(p, off, false)];
	struct tfs_index_entry e;
	uint64_t pos;
	int rc = tfs_segment_find(s, s->entries, TFS_FIND_OFFSET, off, &pos,
				  NULL);

	if (rc == 0 && pos == UINT64_MAX)
		rc = TFS_ENOTBOUNDARY;
	if (rc == 0)
		rc = tfs_segment_entry(s, pos, &e);
	if (rc == 0 && e.offset != off)
		rc = TFS_ENOTBOUNDARY;
	if (rc == 0)
		*rec = e.record;
	return rc;
}

int tfs_partition_truncate(struct tfs_partition *p, uint64_t off)
{
	struct tfs_list lost;
	int rc = 0;

	tfs_list_init(&lost);
	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	if (off < p->segs[0]->base)
		rc = TFS_EBELOWSTART;
	else if (off > p->end)
		rc = TFS_ENOTBOUNDARY;
	bool nothing = off == p->end;
	uint64_t ckpt_end = p->ckpt_end;
	struct partition_checkpoint ck = { .rp = off, .hw = TFS_MIN(p->hw, off) };
	pthread_mutex_unlock(&p->lock);
	if (rc || nothing)
		goto out;

	/* The checkpoint must never claim bytes that are about to go. */
	if (ckpt_end > off) {
		/* The record offset at off, from the index alone: a
		 * follower cutting below a damaged batch needs no bytes. */
		pthread_mutex_lock(&p->lock);
		rc = record_at(p, off, &ck.rp_record);
		pthread_mutex_unlock(&p->lock);
		if (rc)
			goto out;
		ck.hw_record = ck.rp_record;
		rc = partition_write_checkpoint(p, &ck);
		if (rc)
			goto out;
		p->ckpt_end = off;
	}
	pthread_mutex_lock(&p->lock);
	rc = cut_to(p, off, &lost);
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		rc = partition_write_epochs(p);
	if (rc)
		tfs_err("%s: truncate to %" PRIu64 " failed: %s", p->name, off,
			tfs_strerror(rc));
out:
	pthread_mutex_unlock(&p->maint);
	finish_syncs(&lost, -EIO);
	return rc;
}

void tfs_partition_set_hw(struct tfs_partition *p, uint64_t hw)
{
	struct tfs_list woken, committed;
	uint64_t rec;

	tfs_list_init(&woken);
	tfs_list_init(&committed);
	pthread_mutex_lock(&p->lock);
	hw = TFS_MIN(hw, p->end);
	if (hw <= p->hw) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (hw == p->end) {
		rec = p->end_record;
	} else {
		struct tfs_segment *s = p->segs[partition_find_segment(p, hw, false)];
		struct tfs_index_entry e;
		uint64_t pos;

		if (tfs_segment_find(s, s->entries, TFS_FIND_OFFSET, hw,
				     &pos, NULL) ||
		    pos == UINT64_MAX || tfs_segment_entry(s, pos, &e) ||
		    e.offset != hw) {
			tfs_warn("%s: high watermark %" PRIu64
				 " is not a batch boundary",
				 p->name, hw);
			pthread_mutex_unlock(&p->lock);
			return;
		}
		rec = e.record;
	}
	advance_hw(p, hw, rec, &woken, &committed);
	if (p->role == TFS_ROLE_LEADER)
		collect_syncs(p, sync_end(p), &committed);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&committed, 0);
	wake_waiters(&woken, 0);
}

/*
 * Starts epoch at the log end in the in-memory history.  Returns 1 if the
 * history changed (the caller writes it), 0 if epoch is the current one,
 * TFS_ESTALEEPOCH if it is older.  Lock held.
 */
static int start_epoch(struct tfs_partition *p, uint32_t epoch)
{
	struct tfs_epoch *last = &p->epochs[p->nepochs - 1];

	if (epoch < p->epoch)
		return TFS_ESTALEEPOCH;
	if (epoch == p->epoch)
		return 0;
	if (last->start == p->end) {
		/* The previous epoch wrote nothing: replace it. */
		last->epoch = epoch;
	} else {
		p->epochs = tfs_realloc(p->epochs,
					(p->nepochs + 1) * sizeof(*p->epochs));
		p->epochs[p->nepochs++] = (struct tfs_epoch){ epoch, p->end };
	}
	p->epoch = epoch;
	return 1;
}

void tfs_partition_set_replicated_durable(struct tfs_partition *p,
					  uint64_t durable)
{
	struct tfs_list done;

	tfs_list_init(&done);
	pthread_mutex_lock(&p->lock);
	if (durable != p->rdurable) {
		p->rdurable = durable;
		collect_syncs(p, sync_end(p), &done);
	}
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&done, 0);
}

int tfs_partition_reset(struct tfs_partition *p, uint64_t start,
			uint64_t start_record, uint32_t epoch)
{
	struct partition_checkpoint ck = { .rp = start, .rp_record = start_record,
					   .hw = start,
					   .hw_record = start_record };
	struct tfs_list lost, woken;
	struct tfs_segment *s;
	int rc;

	tfs_list_init(&lost);
	tfs_list_init(&woken);
	pthread_mutex_lock(&p->maint);
	/* The new first segment, and the checkpoint that points at it,
	 * before the old segments go: a crash leaves one or the other. */
	rc = tfs_segment_create(p->dirfd, start, start_record, &s);
	if (rc == 0)
		rc = tfs_sys_fsync(p->dirfd);
	if (rc == 0)
		rc = partition_write_checkpoint(p, &ck);
	if (rc) {
		pthread_mutex_unlock(&p->maint);
		tfs_err("%s: cannot restart the log at %" PRIu64 ": %s",
			p->name, start, tfs_strerror(rc));
		return rc;
	}
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->nsegs; i++) {
		/* A segment already at start was just made again. */
		if (p->segs[i]->base != start)
			tfs_segment_unlink(p->segs[i]);
		tfs_segment_unref(p->segs[i]);
	}
	p->nsegs = 0;
	partition_push_segment(p, s);
	p->end = p->hw = p->durable = start;
	p->end_record = p->hw_record = p->durable_record = start_record;
	p->ckpt_end = start;
	p->nepochs = 1;
	p->epochs[0] = (struct tfs_epoch){ epoch, start };
	p->epoch = epoch;
	tfs_producers_reset(&p->producers);
	tfs_list_splice_tail(&lost, &p->syncs);
	tfs_list_splice_tail(&lost, &p->commits);
	/* Readers below the new start: their reads now fail at once. */
	collect_waiters(p, &woken);
	pthread_mutex_unlock(&p->lock);
	rc = partition_write_epochs(p);
	pthread_mutex_unlock(&p->maint);
	tfs_warn("%s: the log restarts empty at %" PRIu64
		 ": the leader no longer holds what came before",
		 p->name, start);
	finish_syncs(&lost, -EIO);
	wake_waiters(&woken, 0);
	return rc;
}

int tfs_partition_begin_epoch(struct tfs_partition *p, uint32_t epoch)
{
	int rc;

	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	rc = start_epoch(p, epoch);
	pthread_mutex_unlock(&p->lock);
	if (rc == 1)
		rc = partition_write_epochs(p);
	pthread_mutex_unlock(&p->maint);
	return rc;
}

int tfs_partition_set_role(struct tfs_partition *p, enum tfs_role role,
			   uint32_t epoch)
{
	struct tfs_list lost;
	int rc = 0;

	tfs_list_init(&lost);
	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	struct tfs_epoch old_last = p->epochs[p->nepochs - 1];
	size_t old_n = p->nepochs;
	uint32_t old_epoch = p->epoch;

	if (role == TFS_ROLE_LEADER)
		rc = start_epoch(p, epoch);
	else if (role == TFS_ROLE_FOLLOWER && epoch < p->epoch)
		/* A follower may follow a leader that has not written yet
		 * (its epoch is newer than the log's), never an older one. */
		rc = TFS_ESTALEEPOCH;
	pthread_mutex_unlock(&p->lock);
	if (rc == 1) {
		rc = partition_write_epochs(p);
		if (rc) {
			/* Nobody may lead an epoch its history does not
			 * record: undo it (the file is unchanged). */
			pthread_mutex_lock(&p->lock);
			p->nepochs = old_n;
			p->epochs[old_n - 1] = old_last;
			p->epoch = old_epoch;
			pthread_mutex_unlock(&p->lock);
		}
	}
	if (rc == 0) {
		pthread_mutex_lock(&p->lock);
		/* Appends of an earlier leadership cannot commit here any
		 * more: their producers retry on the new leader. */
		if (p->role == TFS_ROLE_LEADER)
			tfs_list_splice_tail(&lost, &p->commits);
		/* A new leadership learns its replicas' durable ends from
		 * their fetches. */
		if (role == TFS_ROLE_LEADER && p->role != TFS_ROLE_LEADER)
			p->rdurable = 0;
		p->role = role;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&p->maint);
	finish_syncs(&lost, TFS_ENOTLEADER);
	return rc;
}

int tfs_partition_epoch_end(struct tfs_partition *p, uint32_t epoch,
			    uint32_t *found_epoch, uint64_t *end)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&p->lock);
	for (size_t i = p->nepochs; i-- > 0;) {
		if (p->epochs[i].epoch <= epoch) {
			*found_epoch = p->epochs[i].epoch;
			*end = i + 1 < p->nepochs ? p->epochs[i + 1].start
						  : p->end;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}
