/*
 * partition.h - a partition: the sequencer, the segments, the committed
 * end, waiters and group commit.  This is the "partition API" of the
 * design: the FUSE module, and later the HTTP server and the replication
 * client, all go through these calls, so the single-node path and the
 * cluster path are one code path.
 *
 * Offsets.  Every position is a byte offset; record offsets (0, 1, 2...)
 * exist alongside and are looked up.  A partition keeps:
 *   start    first retained byte (the first segment's base)
 *   end      log end: every appended byte, committed or not
 *   hw       committed end (high watermark): what readers may see; the
 *            file size.  A standalone partition commits on append, so
 *            hw == end; in a cluster the replication code moves hw.
 *   durable  fsynced end: everything below it is on stable storage.
 *
 * Roles.  A partition is standalone (no cluster: an append commits at
 * once), the leader of its replicas (appends are stamped with the leader
 * epoch and commit when the replication code moves hw past them), a
 * follower (only batches copied from the leader are appended), or has no
 * role yet (nothing is appended).  The role and the epoch change together,
 * under the partition lock (tfs_partition_set_role).
 *
 * Threads and locks.  `lock` (a mutex) protects the segment list, the
 * offsets, the role, the waiter lists and the counters; it is held only
 * for short in-memory work and page-cache writes, never across an fsync.
 * `maint` serialises the slow paths that rewrite files (checkpoint,
 * truncate, epoch history, retention, compaction); lock order: maint, then
 * lock.  Callbacks (append done, waiter wake, sync done) always run
 * without either lock, on the thread that completed the work.  The
 * structure is private to the partition module (src/partition_int.h).
 */
#ifndef TFS_PARTITION_H
#define TFS_PARTITION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "conf.h"
#include "segment.h"
#include "timer.h"
#include "util.h"
#include "workers.h"

struct tfs_partition;

/*
 * Topic-level settings, shared by a topic and its partitions and changed
 * at run time (an xattr write): each value is read atomically on use.
 */
struct tfs_settings {
	atomic_int refs;
	_Atomic int64_t v[TFS_CONF__COUNT];
};

struct tfs_settings *tfs_settings_new(const struct tfs_conf *defaults);
struct tfs_settings *tfs_settings_ref(struct tfs_settings *s);
void tfs_settings_unref(struct tfs_settings *s);

static inline int64_t tfs_settings_get(struct tfs_settings *s,
				       enum tfs_conf_key k)
{
	return atomic_load_explicit(&s->v[k], memory_order_relaxed);
}

enum tfs_role {
	TFS_ROLE_STANDALONE,	/* no cluster: an append commits at once */
	TFS_ROLE_LEADER,	/* appends at the leader epoch; hw moved by
				 * replication */
	TFS_ROLE_FOLLOWER,	/* only tfs_partition_append_batches */
	TFS_ROLE_NONE,		/* no role (yet): nothing is appended */
};

/* "standalone", "leader", "follower", "none". */
const char *tfs_role_name(enum tfs_role role);

/* Everything a partition needs from its store. */
struct tfs_partition_env {
	struct tfs_workers *syncer;	/* runs the sync jobs */
	struct tfs_workers *fsyncer;	/* index fsyncs beside them, or NULL */
	struct tfs_timers *timers;	/* deadlines of waits, or NULL */
	struct tfs_settings *settings;	/* the topic's; the partition refs it */
	const char *name;		/* "topic/3", for the log */
	enum tfs_role role;		/* the role it opens with */
};

/* An fsync waiting for the durable end to pass target. */
struct tfs_syncreq {
	struct tfs_list link;
	uint64_t target;
	/* in: tfs_mono_ms() time past which it does not start waiting (done
	 * with -ETIMEDOUT instead); 0: none.  Waiting past it is ended by
	 * its owner's timer with tfs_partition_cancel_sync. */
	int64_t deadline;
	void (*done)(struct tfs_syncreq *r, int status);
};

/* Completion of an append (embed it in the request). */
struct tfs_append {
	/* in */
	const struct iovec *iov;	/* whole records, up to 4 vectors */
	int iovcnt;
	unsigned flags;			/* TFS_APPEND_SYNC */
	/* The writer stream and its sequence number (producers.h), or 0, 0
	 * for a local write that is never retried. */
	uint64_t producer;
	uint32_t sequence;
	/* tfs_mono_ms() time past which a leader does not park it for its
	 * commit (done with -ETIMEDOUT, the batch appended); 0: none.  As
	 * for tfs_syncreq, a parked one is ended by its owner's timer. */
	int64_t deadline;
	void (*done)(struct tfs_append *a, int status);
	/* out: where the batch landed */
	uint64_t offset;
	uint64_t record;
	uint32_t records;
	bool duplicate;			/* a retry: the batch was there */
	/* out, with TFS_APPEND_DEFER_WAKE: readers the append woke */
	struct tfs_list woken;
	/* private */
	struct tfs_syncreq sync;
};

enum {
	TFS_APPEND_SYNC = 1 << 0,	/* done only once durable */
	/* A leader answers once the batch is in its own log (acks=1), not
	 * once the in-sync replicas have it (acks=all, the default). */
	TFS_APPEND_ACK_LEADER = 1 << 2,
	/* Leave the readers this append woke in a->woken for the caller to
	 * wake with tfs_partition_wake_list() once it has answered its own
	 * writer: a producer is not made to wait for its consumers. */
	TFS_APPEND_DEFER_WAKE = 1 << 1,
};

/*
 * A reader waiting for data: wake(w, 0) runs once the committed end passes
 * w->offset; wake(w, TFS_ESHUTDOWN) or wake(w, TFS_EDELETED) when the
 * partition closes or is deleted first.  The low-level form; most callers
 * want struct tfs_wait below.
 */
struct tfs_waiter {
	struct tfs_list link;
	uint64_t offset;
	void (*wake)(struct tfs_waiter *w, int status);
	bool parked;		/* partition lock */
};

/*
 * A wait for data with one completion, a cancel and a deadline: what a
 * .follow read, a poll, a long-poll fetch and an HTTP consumer park on.
 * Zero it, set offset, deadline and done, and start it.  It ends exactly
 * once: either done(w, status) runs, with
 *   0                 the committed end (the log end with on_end) passed
 *                     w->offset
 *   -ETIMEDOUT        w->deadline came first
 *   TFS_ESHUTDOWN     the partition closed, or its waits were ended
 *   TFS_EDELETED      the topic was deleted
 *   a cancel status   tfs_wait_cancel came before the wait parked
 * or tfs_wait_cancel returns true and done never runs.  done runs on the
 * thread that ended the wait: the caller of tfs_wait_start (before it
 * returns), an appender, the timer thread; never with a partition lock
 * held.  w must stay valid until done ran or a cancel returned true; done
 * may free it.
 */
struct tfs_wait {
	/* in */
	uint64_t offset;
	int64_t deadline;		/* tfs_mono_ms() time; 0: none */
	/* Wait for the log end, not the committed end, to pass offset (a
	 * leader's fetches wait for batches not yet committed). */
	bool on_end;
	void (*done)(struct tfs_wait *w, int status);
	/* private */
	struct tfs_partition *p;	/* a reference, until it ends */
	struct tfs_waiter waiter;
	struct tfs_timer timer;
	atomic_int cancel;		/* a status asked for before parking */
};

/*
 * Starts w on p (see struct tfs_wait).  A deadline needs the timers of
 * the partition's env.
 */
void tfs_wait_start(struct tfs_partition *p, struct tfs_wait *w);

/*
 * Ends w with status (non-zero, e.g. -EINTR).  Returns true if the wait
 * was parked and this call ended it: done will not run, the caller owns
 * the end.  Returns false if it already ended (done ran or runs) or had
 * not parked yet: then, if it ends with no other cause first, done runs
 * with this status as soon as tfs_wait_start gets to it.  p is the
 * partition given to tfs_wait_start (w->p may not be set yet).  The caller
 * must know w is alive (fsops clears its interrupt callback in done,
 * which waits for a running one).
 */
bool tfs_wait_cancel(struct tfs_partition *p, struct tfs_wait *w, int status);

#define TFS_READ_MAX_EXTENTS 32

/*
 * A piece of a read: bytes in memory that passed their checks, either
 * read from a raw segment (rbuf) or a decompressed frame of a compressed
 * one (zbuf).  Each holds a reference on what keeps mem alive.
 */
struct tfs_extent {
	struct tfs_rbuf *rbuf;		/* checked bytes of a raw segment */
	struct tfs_zbuf *zbuf;		/* a checked decompressed frame */
	const char *mem;
	size_t len;
};

struct tfs_readv {
	int n;
	size_t len;			/* sum of the extents' lengths */
	struct tfs_extent ext[TFS_READ_MAX_EXTENTS];
};

/*
 * A reader's read-ahead (one per open file): a read covers whole batches,
 * so it ends inside the last one it returns; the checked rest of that
 * batch is kept here for the next read, which then neither reads nor
 * checks it again.  Zero it to start; release it when the reader goes.
 * Readers of one read-ahead may run at once (it is swapped atomically:
 * at worst one of them reads the batch again).
 */
struct tfs_readahead {
	_Atomic(struct tfs_rbuf *) keep;
};
void tfs_readahead_release(struct tfs_readahead *ra);

/* A consistent snapshot for status, metrics and xattrs. */
struct tfs_partition_info {
	uint64_t start, start_record;
	uint64_t end, end_record;
	uint64_t hw, hw_record;
	uint64_t durable;
	uint64_t segments;
	uint64_t compressed_segments;
	uint64_t logical_bytes;		/* end - start */
	uint64_t data_bytes;		/* .log and .zst files */
	uint64_t disk_bytes;		/* all segment files, with indexes */
	int64_t first_ts, last_ts;	/* of retained batches; 0 if none */
	uint32_t epoch;
	int failed;			/* 0, or why writes are refused */
	uint64_t appends, append_bytes, append_records;
	uint64_t fsyncs, reads, read_bytes;
	uint64_t waiters;
	int64_t last_retention;		/* ms of the last retention run, 0 */
	uint64_t deleted_bytes, deleted_segments;
	uint64_t compressions;		/* segments compressed */
	uint64_t corrupt_batches;	/* damaged batches known, not repaired */
	uint64_t repaired_batches;	/* repaired since the partition opened */
};

struct tfs_epoch {
	uint32_t epoch;
	uint64_t start;		/* byte offset of the epoch's first batch */
};

/*
 * Opens the partition in parent/<id>/ (create: make the directory and an
 * empty first segment if missing), recovering from a crash as
 * segment.h describes, then fsyncs what recovery kept and writes a fresh
 * checkpoint.  Returns 0, -errno or TFS_ECORRUPT (logged with the file).
 * *out has one reference.
 */
int tfs_partition_open(int parent_dirfd, uint32_t id,
		       const struct tfs_partition_env *env, bool create,
		       struct tfs_partition **out);

struct tfs_partition *tfs_partition_ref(struct tfs_partition *p);
void tfs_partition_unref(struct tfs_partition *p);

/* "topic/3": the name the partition logs with (valid while referenced). */
const char *tfs_partition_name(struct tfs_partition *p);

/*
 * Sets the role and the leader epoch together.  Becoming leader at epoch
 * E starts E at the log end in the epoch history (persisted before this
 * returns) unless the log is already at E.  Leaving the leader role fails
 * the appends still waiting to commit with TFS_ENOTLEADER (their batches
 * stay in the log: a retry with the same producer sequence is recognised
 * by the next leader).  Returns 0, TFS_ESTALEEPOCH when a leader's or a
 * follower's epoch is older than the partition's (the role none takes
 * any), or -errno when the epoch history cannot be written (the role is
 * then unchanged).
 */
int tfs_partition_set_role(struct tfs_partition *p, enum tfs_role role,
			   uint32_t epoch);

/* The role and epoch now. */
enum tfs_role tfs_partition_role(struct tfs_partition *p, uint32_t *epoch);

/*
 * Shuts the partition down: syncs everything and writes a checkpoint,
 * answers sync waiters, wakes readers with `why` (TFS_ESHUTDOWN or
 * TFS_EDELETED), and refuses appends from then on.  Call once, from a
 * thread that holds a reference, before the owner drops its reference.
 */
void tfs_partition_close(struct tfs_partition *p, int why);

/*
 * Appends a batch of whole records: the produce rules every caller gets
 * are checked here.  Returns < 0 when refused, and then done is not
 * called: -EINVAL for an empty batch or one whose last byte is not '\n',
 * -EFBIG when a record is longer than max.record.bytes, -EIO when the
 * partition failed, -ENOSPC with nothing stored, TFS_ENOTLEADER when the
 * role is neither standalone nor leader,
 * TFS_ESEQUENCE for a producer sequence out of order (producers.h),
 * TFS_ESHUTDOWN or TFS_EDELETED.  A retry of a producer's last batch is
 * accepted without appending anything: a->duplicate is set and the
 * offsets are the original's, and it completes as the original would
 * (once committed, or durable).  Returns 0 when accepted: done(a, status)
 * runs exactly once, on this thread before the call returns or later on
 * the thread that completes it: the sync worker for TFS_APPEND_SYNC, the
 * caller of tfs_partition_set_hw for a leader's batch (status 0), or of
 * tfs_partition_set_role when leadership is lost first (TFS_ENOTLEADER).
 * Woken readers run after done.  a must stay valid until both this call
 * returned and done ran (done may run on another thread before the call
 * returns).  The topic's durability=sync makes every append wait for
 * durability as TFS_APPEND_SYNC does.
 */
int tfs_partition_append(struct tfs_partition *p, struct tfs_append *a);

/*
 * Appends batches received from a leader, keeping their offsets, records,
 * epochs and timestamps; a batch of a newer epoch extends the epoch
 * history (persisted before the call returns).  entries[0].offset must
 * equal the log end, the batches must be contiguous and data must hold
 * their bytes back to back.  Does not move hw.  Returns 0;
 * TFS_ENOTLEADER unless the role is follower; TFS_ENOTBOUNDARY when the
 * first batch does not start at the log end or the batches are not
 * contiguous; TFS_ECORRUPT when a batch fails its CRC or newline check
 * (nothing of that call is appended in either case); or -errno (-ENOSPC,
 * -EIO) with the batches before the failing one appended.
 */
int tfs_partition_append_batches(struct tfs_partition *p,
				 const struct tfs_index_entry *entries,
				 size_t n, const void *data);

/*
 * Reads committed bytes at off, up to max: fills rv with extents of
 * checked bytes (each holding a reference; release with
 * tfs_readv_release).  Every batch the read touches is checked against
 * its index entry first (CRC-32C; segment.h, DAMAGE AT REST), and so is
 * every entry it uses.  A read that reaches a damaged batch returns the
 * bytes before it; one that starts in it fails with TFS_ECORRUPT; the
 * damage is recorded (tfs_partition_damage) and logged once.  ra (or
 * NULL) is the reader's read-ahead.  rv->len is 0 at or past hw.
 * Returns 0, TFS_EBELOWSTART, TFS_ECORRUPT or -errno (an I/O error with
 * nothing read).  No lock held; any thread.
 */
int tfs_partition_read(struct tfs_partition *p, uint64_t off, size_t max,
		       struct tfs_readv *rv);
int tfs_partition_read_ahead(struct tfs_partition *p, struct tfs_readahead *ra,
			     uint64_t off, size_t max, struct tfs_readv *rv);
void tfs_readv_release(struct tfs_readv *rv);

/*
 * Copies up to len bytes of rv's extents, from byte `skip` of the read on,
 * into buf.  Returns the bytes copied.
 */
ssize_t tfs_readv_copy(const struct tfs_readv *rv, size_t skip, void *buf,
		       size_t len);

/*
 * Reads whole batches from off (a batch start, below end): up to max
 * bytes, at least one batch.  Fills entries (malloc'd, *n of them) and rv.
 * upto_hw limits to committed data.  For replication fetches: every batch
 * is checked as tfs_partition_read checks it, so a leader never serves a
 * damaged batch; the batches before one are returned.  *n is 0 at the
 * limit.  Returns 0, TFS_EBELOWSTART, TFS_ENOTBOUNDARY when off is not a
 * batch start, TFS_ECORRUPT (the batch at off, or its index entry, is
 * damaged) or -errno.
 */
int tfs_partition_read_batches(struct tfs_partition *p, uint64_t off,
			       size_t max, bool upto_hw,
			       struct tfs_index_entry **entries, size_t *n,
			       struct tfs_readv *rv);

/*
 * Parks w until the committed end passes w->offset.  Returns 1 if it
 * already has (w is not parked and wake will not run), 0 if parked, or
 * the reason the partition is gone (TFS_ESHUTDOWN, TFS_EDELETED).
 */
int tfs_partition_wait(struct tfs_partition *p, struct tfs_waiter *w);

/* Wakes the waiters an append left in a->woken (TFS_APPEND_DEFER_WAKE). */
void tfs_partition_wake_list(struct tfs_list *woken);

/* Wakes every parked waiter with status (the partition stays open). */
void tfs_partition_wake_all(struct tfs_partition *p, int status);

/*
 * Ends every wait now and from now on with status: parked waiters are
 * woken with it and later waits fail with it at once (a lazily unmounted
 * file system whose readers must finish).  Appends go on.
 */
void tfs_partition_end_waits(struct tfs_partition *p, int status);

/* Unparks w.  True if it was parked (its wake will not run). */
bool tfs_partition_wait_cancel(struct tfs_partition *p, struct tfs_waiter *w);

/*
 * Waits until everything appended before the call is durable: sets
 * r->target to the current end.  Returns 1 if it already is (done not
 * called), 0 if parked (done runs on a sync worker, or on whatever moves
 * a leader's replicated durable end), or < 0 (-ETIMEDOUT: r->deadline
 * passed).
 */
int tfs_partition_sync(struct tfs_partition *p, struct tfs_syncreq *r);

/*
 * Gives up waiting: takes r (a parked append's a->sync, or a parked
 * tfs_partition_sync request) off the lists it waits on.  True if it was
 * still parked: its done will not run, and the bytes stay appended (they
 * may still commit).  False if its done runs or ran.
 */
bool tfs_partition_cancel_sync(struct tfs_partition *p, struct tfs_syncreq *r);

/* Asks for a background fsync and checkpoint (the flush.ms timer). */
void tfs_partition_flush(struct tfs_partition *p);

/* The target of the oldest fsync still waiting on a leader for its
 * replicas (0 when none): what the followers should fsync up to. */
uint64_t tfs_partition_sync_wanted(struct tfs_partition *p);

/* Waits until no sync job of p is queued or running (tests). */
void tfs_partition_quiesce(struct tfs_partition *p);

/*
 * Cuts the log back to off (a batch boundary >= start): for a follower
 * whose tail diverged from its leader.  hw and durable move back with it,
 * the checkpoint is rewritten first if it claimed bytes past off, and
 * epochs that start at or past off leave the history.  fsyncs waiting for
 * bytes past off fail with -EIO.  Returns 0, TFS_ENOTBOUNDARY (off is not
 * a batch start, or past the end), TFS_EBELOWSTART, TFS_ECORRUPT or
 * -errno (logged).
 */
int tfs_partition_truncate(struct tfs_partition *p, uint64_t off);

/*
 * A leader's durable end over its in-sync replicas (the smallest durable
 * end they report; UINT64_MAX when the leader is alone in its ISR): an
 * fsync or a durability=sync append on a leader completes once its own
 * durable end, this one and the committed end all pass its target.  It
 * may move back (a member joined the ISR): fsyncs that started before
 * and completed stay completed; later ones wait for the new member too.
 */
void tfs_partition_set_replicated_durable(struct tfs_partition *p,
					  uint64_t durable);

/*
 * A follower whose log end is below its leader's start (retention there
 * deleted what it lacks): drops every segment and starts the log empty at
 * start (a record offset start_record), epoch history from there.  Readers
 * below the new start get TFS_EBELOWSTART.  Returns 0 or -errno.
 */
int tfs_partition_reset(struct tfs_partition *p, uint64_t start,
			uint64_t start_record, uint32_t epoch);

/*
 * Moves the committed end (cluster) forward to hw, clamped to the log end:
 * wakes the readers it reaches and answers the leader's appends it
 * commits.  A value at or below the current hw, or one that is not a
 * batch boundary (logged), changes nothing.
 */
void tfs_partition_set_hw(struct tfs_partition *p, uint64_t hw);

/*
 * Starts leader epoch `epoch` at the current log end and persists the
 * epoch history (an epoch that wrote nothing is replaced, not kept).
 * tfs_partition_set_role calls it for a new leader.  Returns 0 (also when
 * epoch is the current one: nothing changes), TFS_ESTALEEPOCH when epoch
 * is older than the current one, or -errno when the history file cannot
 * be written (the epoch is changed in memory all the same: the next write
 * of the history carries it).
 */
int tfs_partition_begin_epoch(struct tfs_partition *p, uint32_t epoch);

/*
 * The end of `epoch` in this log: the start of the first later epoch, or
 * the log end if epoch is the latest (Kafka's OffsetsForLeaderEpoch).
 * Sets *found_epoch to the largest epoch <= epoch that this log has.
 * Returns 0, or -ENOENT when the log has no epoch <= epoch.
 */
int tfs_partition_epoch_end(struct tfs_partition *p, uint32_t epoch,
			    uint32_t *found_epoch, uint64_t *end);

/*
 * Byte offset of record `record`.  Returns 0, TFS_EBELOWSTART when it was
 * deleted by retention, -ENXIO past the committed end.  The committed
 * record count itself gives the committed end.
 */
int tfs_partition_offset_of_record(struct tfs_partition *p, uint64_t record,
				   uint64_t *off);

/*
 * Byte offset of the first committed record whose commit time is >= ms
 * (Kafka's offsetsForTimes); the committed end when there is none.
 */
int tfs_partition_offset_of_time(struct tfs_partition *p, int64_t ms,
				 uint64_t *off);

void tfs_partition_info(struct tfs_partition *p,
			struct tfs_partition_info *info);

/* The bounds readers see, without the per-segment totals of
 * tfs_partition_info (for polls, seeks and xattrs). */
struct tfs_bounds {
	uint64_t start;		/* first retained byte */
	uint64_t start_record;	/* the record offset there */
	uint64_t hw;		/* committed end */
	uint64_t hw_record;	/* records committed */
	uint64_t end;		/* log end */
	uint64_t durable;	/* fsynced end */
	uint32_t epoch;		/* epoch of the newest batch or leadership */
	uint32_t last_batch_epoch;	/* epoch of the newest batch, 0 if none:
					 * what a follower fetches with */
	enum tfs_role role;
};
void tfs_partition_bounds(struct tfs_partition *p, struct tfs_bounds *b);

/*
 * Retention (the compactor's): deletes whole sealed segments, oldest
 * first, whose newest batch is older than retention_ms (-1: never), and
 * while the partition's data stays at or above retention_bytes without
 * them (-1: no limit).  Never the active segment.  Readers holding a
 * deleted segment keep reading it; new reads below the start get
 * TFS_EBELOWSTART.  Returns the number of segments deleted, or < 0.
 */
int tfs_partition_retain(struct tfs_partition *p, int64_t now,
			 int64_t retention_ms, int64_t retention_bytes);

/* Seals the active segment if it holds data older than segment_ms. */
int tfs_partition_roll_old(struct tfs_partition *p, int64_t now,
			   int64_t segment_ms);

/*
 * Compresses the oldest sealed raw segment that lies wholly below the
 * checkpoint and the committed end, and swaps it in.  No partition lock
 * is held during the I/O.  Returns 1 if one was compressed, 0 if none is
 * left, or < 0.
 */
int tfs_partition_compress_next(struct tfs_partition *p, int level,
				size_t frame_bytes);

/* Marks the partition failed: appends and syncs get -EIO from now on. */
void tfs_partition_fail(struct tfs_partition *p, int why);

/*
 * DAMAGE AT REST AND REPAIR.  A batch whose bytes fail their CRC-32C, an
 * index entry that fails its own, a compressed frame that does not
 * decompress: each is found by a read, a lookup, the compactor or the
 * scrubber (segment.h describes the checks), recorded here as a struct
 * tfs_damage, logged once with the partition, the file and the byte
 * offset, and counted (corrupt_batches).  Reads and lookups that need it
 * fail with TFS_ECORRUPT (EIO); the rest of the partition is served, and
 * appends go on.  The compactor leaves a damaged segment raw.  A record
 * leaves the list when the range is repaired, or when its segment goes
 * (retention, truncation).  Nothing is persisted: after a restart damage
 * is found again by whatever reads it first.
 */

/*
 * Copies the damaged ranges known now, in the order found, into *out
 * (malloc'd; NULL when there are none).  Returns how many.  Any thread.
 */
size_t tfs_partition_damage(struct tfs_partition *p, struct tfs_damage **out);

/*
 * Repairs a damaged batch with a good copy from a healthy replica: e is
 * the replica's index entry for it, bytes its e->length bytes (or NULL
 * to keep the bytes on disk and rewrite only the entry).  e must be
 * exactly the damaged batch's place: for damaged bytes, the partition's
 * own entry at that offset must describe the same batch (offset, record,
 * count, length, CRC); for a damaged entry, e must start where the good
 * entry before it ends, continue its record numbers, and end where the
 * next good entry starts (or before the next damaged one).  The bytes (the given
 * ones, or those on disk) must match e: CRC-32C, length and newline
 * count.  The batch and/or its entry are rewritten in place, fdatasynced
 * and read back through the checks; the range then leaves the damage
 * list and repaired_batches counts it.
 *
 * A compressed segment is not repaired (-EOPNOTSUPP): its frames are
 * written once and rewriting one means rewriting the file.  The damage
 * stays (reads there fail with EIO) until retention removes the segment
 * (repair.h).
 *
 * Returns 0; -ENOENT when no damaged range is at e->offset; -EINVAL when
 * the damaged bytes are to be rewritten but bytes is NULL;
 * TFS_ENOTBOUNDARY when e is not exactly the damaged batch's place;
 * TFS_ECORRUPT when the bytes do not match e (or still fail when read
 * back); -EOPNOTSUPP (compressed segment, or an entry of a version 1
 * index); TFS_EBELOWSTART; -errno from the writes.  Logged.  Takes
 * maint, then the lock for short moments; the file I/O runs without the
 * lock.  Any thread.
 */
int tfs_partition_repair(struct tfs_partition *p,
			 const struct tfs_index_entry *e, const void *bytes);

/*
 * The scrubber's pass over the partition's sealed segments (segment.h,
 * tfs_segment_scrub): damage found is recorded and logged as reads
 * record it.  Reads about `chunk` bytes at a time, and after each calls
 * pace(arg, bytes read), which sleeps to keep the scrubber to its budget
 * and returns false to stop the pass.  Returns the bytes read, or < 0 if
 * stopped.  Runs on the scrubber's thread; no lock held during the I/O.
 */
int64_t tfs_partition_scrub(struct tfs_partition *p, size_t chunk,
			    bool (*pace)(void *arg, size_t bytes), void *arg);

#endif
