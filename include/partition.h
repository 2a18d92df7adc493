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
 * Threads and locks.  `lock` (a mutex) protects the segment list, the
 * offsets, the waiter lists and the counters; it is held only for short
 * in-memory work and page-cache writes, never across an fsync.  `maint`
 * serialises the slow paths that rewrite files (checkpoint, truncate,
 * retention, compaction); lock order: maint, then lock.  Callbacks
 * (append done, waiter wake, sync done) always run without either lock,
 * on the thread that completed the work.
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
#include "util.h"
#include "workers.h"

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

/* Everything a partition needs from its store. */
struct tfs_partition_env {
	struct tfs_workers *syncer;	/* runs the sync jobs */
	struct tfs_workers *fsyncer;	/* index fsyncs beside them, or NULL */
	struct tfs_settings *settings;	/* the topic's; the partition refs it */
	const char *name;		/* "topic/3", for the log */
	bool standalone;		/* commit on append (no replication) */
};

/* An fsync waiting for the durable end to pass target. */
struct tfs_syncreq {
	struct tfs_list link;
	uint64_t target;
	void (*done)(struct tfs_syncreq *r, int status);
};

/* Completion of an append (embed it in the request). */
struct tfs_append {
	/* in */
	const struct iovec *iov;	/* whole records, up to 4 vectors */
	int iovcnt;
	unsigned flags;			/* TFS_APPEND_SYNC */
	void (*done)(struct tfs_append *a, int status);
	/* out: where the batch landed */
	uint64_t offset;
	uint64_t record;
	uint32_t records;
	/* out, with TFS_APPEND_DEFER_WAKE: readers the append woke */
	struct tfs_list woken;
	/* private */
	struct tfs_syncreq sync;
};

enum {
	TFS_APPEND_SYNC = 1 << 0,	/* done only once durable */
	/* Leave the readers this append woke in a->woken for the caller to
	 * wake with tfs_partition_wake_list() once it has answered its own
	 * writer: a producer is not made to wait for its consumers. */
	TFS_APPEND_DEFER_WAKE = 1 << 1,
};

/*
 * A reader waiting for data: wake(w, 0) runs once the committed end passes
 * w->offset; wake(w, TFS_ESHUTDOWN) or wake(w, TFS_EDELETED) when the
 * partition closes or is deleted first.
 */
struct tfs_waiter {
	struct tfs_list link;
	uint64_t offset;
	void (*wake)(struct tfs_waiter *w, int status);
	bool parked;		/* partition lock */
};

#define TFS_READ_MAX_EXTENTS 32

/*
 * A piece of a read: a file range (seg != NULL: fd, pos) or decompressed
 * memory (zbuf != NULL: mem).  Each holds a reference.
 */
struct tfs_extent {
	struct tfs_segment *seg;	/* keeps fd open */
	int fd;
	uint64_t pos;			/* file position of the bytes */
	struct tfs_zbuf *zbuf;		/* keeps mem alive */
	const char *mem;
	size_t len;
};

struct tfs_readv {
	int n;
	size_t len;			/* sum of the extents' lengths */
	struct tfs_extent ext[TFS_READ_MAX_EXTENTS];
};

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
};

struct tfs_epoch {
	uint32_t epoch;
	uint64_t start;		/* byte offset of the epoch's first batch */
};

struct tfs_partition {
	atomic_int refs;
	uint32_t id;
	char *name;			/* "topic/3" */
	int dirfd;
	struct tfs_settings *settings;
	struct tfs_workers *syncer;
	struct tfs_workers *fsyncer;
	bool standalone;

	pthread_mutex_t lock;
	pthread_mutex_t maint;
	struct tfs_segment **segs;	/* (lock) oldest first */
	size_t nsegs, segs_cap;		/* (lock) */
	uint64_t end, end_record;	/* (lock) */
	uint64_t hw, hw_record;		/* (lock) */
	uint64_t durable, durable_record; /* (lock) */
	int64_t last_ts;		/* (lock) newest batch timestamp */
	uint32_t epoch;			/* (lock) current leader epoch */
	struct tfs_epoch *epochs;	/* (lock) history, oldest first */
	size_t nepochs;
	struct tfs_list waiters;	/* (lock) sorted by offset */
	uint64_t nwaiters;		/* (lock) */
	struct tfs_list syncs;		/* (lock) sorted by target */
	bool dir_dirty;			/* (lock) a segment file was created */
	bool ckpt_wanted;		/* (lock) next sync writes a checkpoint */
	bool closing;			/* (lock) */
	int failed;			/* (lock) */
	int gone;			/* (lock) TFS_ESHUTDOWN / TFS_EDELETED */
	uint64_t ckpt_end;		/* (maint) end in the last checkpoint */
	struct tfs_job sync_job;

	/* counters: atomics, read without the lock */
	atomic_ullong appends, append_bytes, append_records;
	atomic_ullong fsyncs, reads, read_bytes;
	_Atomic int64_t last_retention;
	_Atomic int64_t last_disk_warning;	/* mono ms, for rate limiting */
	atomic_ullong deleted_bytes, deleted_segments, compressions;
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

/*
 * Shuts the partition down: syncs everything and writes a checkpoint,
 * answers sync waiters, wakes readers with `why` (TFS_ESHUTDOWN or
 * TFS_EDELETED), and refuses appends from then on.  Call once, from a
 * thread that holds a reference, before the owner drops its reference.
 */
void tfs_partition_close(struct tfs_partition *p, int why);

/*
 * Appends a batch of whole records (the bytes must end with '\n').
 * Returns < 0 when refused (-EIO when the partition failed, -ENOSPC with
 * nothing stored, TFS_ESHUTDOWN...); then done is not called.  Returns 0
 * when accepted: done(a, status) runs exactly once, on this thread before
 * the call returns or later on the thread that completes it (the sync
 * worker for TFS_APPEND_SYNC).  Woken readers run after done.
 */
int tfs_partition_append(struct tfs_partition *p, struct tfs_append *a);

/*
 * Appends batches received from a leader, keeping their offsets, records,
 * epochs and timestamps.  entries[0].offset must equal the log end, the
 * batches must be contiguous and data must hold their bytes back to back.
 * Does not move hw.  Returns 0, -errno, TFS_ENOTBOUNDARY or TFS_ECORRUPT.
 */
int tfs_partition_append_batches(struct tfs_partition *p,
				 const struct tfs_index_entry *entries,
				 size_t n, const void *data);

/*
 * Reads committed bytes at off, up to max: fills rv with extents (each
 * holding a segment reference; release with tfs_readv_release).  rv->len
 * is 0 at or past hw.  Returns 0 or TFS_EBELOWSTART.
 */
int tfs_partition_read(struct tfs_partition *p, uint64_t off, size_t max,
		       struct tfs_readv *rv);
void tfs_readv_release(struct tfs_readv *rv);

/*
 * Reads whole batches from off (a batch start, below end): up to max
 * bytes, at least one batch.  Fills entries (malloc'd, *n of them) and rv.
 * upto_hw limits to committed data.  For replication fetches.
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

/* Unparks w.  True if it was parked (its wake will not run). */
bool tfs_partition_wait_cancel(struct tfs_partition *p, struct tfs_waiter *w);

/*
 * Waits until everything appended before the call is durable: sets
 * r->target to the current end.  Returns 1 if it already is (done not
 * called), 0 if parked (done runs on a sync worker), or < 0.
 */
int tfs_partition_sync(struct tfs_partition *p, struct tfs_syncreq *r);

/* Asks for a background fsync and checkpoint (the flush.ms timer). */
void tfs_partition_flush(struct tfs_partition *p);

/*
 * Cuts the log back to off (a batch boundary >= start): for a follower
 * whose tail diverged from its leader.  hw and durable move back with it.
 * Returns 0, TFS_ENOTBOUNDARY, TFS_EBELOWSTART or -errno.
 */
int tfs_partition_truncate(struct tfs_partition *p, uint64_t off);

/* Moves the committed end (cluster); clamped to the log end. */
void tfs_partition_set_hw(struct tfs_partition *p, uint64_t hw);

/*
 * Starts leader epoch `epoch` at the current log end and persists the
 * epoch history.  epoch must not be lower than the current one.
 */
int tfs_partition_begin_epoch(struct tfs_partition *p, uint32_t epoch);

/*
 * The end of `epoch` in this log: the start of the first later epoch, or
 * the log end if epoch is the latest (Kafka's OffsetsForLeaderEpoch).
 * Sets *found_epoch to the largest epoch <= epoch that this log has.
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
	uint64_t hw;		/* committed end */
	uint64_t hw_record;	/* records committed */
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

#endif
