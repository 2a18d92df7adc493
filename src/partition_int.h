/*
 * partition_int.h - the partition's private structure and the helpers its
 * files share:
 *
 *   partition.c          the sequencer: appends, roles, the committed end,
 *                        waiting, the sync job, truncation
 *   partition_open.c     opening: the checkpoint and epoch-history files,
 *                        crash recovery
 *   partition_read.c     reads, whole-batch reads, lookups, snapshots
 *   partition_retain.c   retention, sealing by age, compression (the
 *                        compactor thread)
 *   partition_check.c    damage at rest: the damaged ranges, the
 *                        scrubber's pass, repair
 *
 * Nothing outside these files includes this header.
 */
#ifndef TFS_PARTITION_INT_H
#define TFS_PARTITION_INT_H

#include "partition.h"
#include "producers.h"

struct tfs_partition {
	atomic_int refs;
	uint32_t id;
	char *name;			/* "topic/3" */
	int dirfd;
	struct tfs_settings *settings;
	struct tfs_workers *syncer;
	struct tfs_workers *fsyncer;
	struct tfs_timers *timers;

	pthread_mutex_t lock;
	pthread_mutex_t maint;
	struct tfs_segment **segs;	/* (lock) oldest first */
	size_t nsegs, segs_cap;		/* (lock) */
	uint64_t end, end_record;	/* (lock) */
	uint64_t hw, hw_record;		/* (lock) */
	uint64_t durable, durable_record; /* (lock) */
	int64_t last_ts;		/* (lock) newest batch timestamp */
	enum tfs_role role;		/* (lock) */
	uint32_t epoch;			/* (lock) current leader epoch */
	struct tfs_epoch *epochs;	/* (lock) history, oldest first */
	size_t nepochs;
	struct tfs_list waiters;	/* (lock) sorted by offset */
	uint64_t nwaiters;		/* (lock) */
	struct tfs_list end_waiters;	/* (lock) on the log end, by offset */
	uint64_t rdurable;		/* (lock) a leader's ISR durable end */
	int waits_ended;		/* (lock) tfs_partition_end_waits */
	struct tfs_list syncs;		/* (lock) sorted by target */
	struct tfs_list commits;	/* (lock) a leader's appends waiting for
					 * hw, sorted by target */
	struct tfs_producers producers;	/* (lock) last batch per producer */
	bool dir_dirty;			/* (lock) a segment file was created */
	bool ckpt_wanted;		/* (lock) next sync writes a checkpoint */
	int failed;			/* (lock) */
	int gone;			/* (lock) TFS_ESHUTDOWN / TFS_EDELETED */
	uint64_t ckpt_end;		/* (maint) end in the last checkpoint */
	struct tfs_job sync_job;
	/* Damage found at rest and not repaired yet, in the order found
	 * (partition_check.c); a segment that leaves the list takes its
	 * damage with it. */
	struct tfs_damage *damage;	/* (lock) */
	size_t ndamage, damage_cap;	/* (lock) */

	/* counters: atomics, read without the lock */
	atomic_ullong appends, append_bytes, append_records;
	atomic_ullong fsyncs, reads, read_bytes;
	_Atomic int64_t last_retention;
	atomic_llong last_disk_warning;	/* mono ms, for rate limiting */
	atomic_ullong deleted_bytes, deleted_segments, compressions;
	atomic_ullong repaired_batches;
};

/* What the checkpoint file holds. */
struct partition_checkpoint {
	uint64_t rp, rp_record;		/* recovery point: all durable below */
	uint64_t hw, hw_record;
	bool found;
};

/*
 * Position of the segment holding byte offset v (by_record false) or
 * record v (true): the last one whose base is <= v, or 0.  Lock held.
 */
static inline size_t partition_find_segment(const struct tfs_partition *p,
					    uint64_t v, bool by_record)
{
	size_t lo = 0, hi = p->nsegs;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		const struct tfs_segment *s = p->segs[mid];

		if ((by_record ? s->base_record : s->base) <= v)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Position of s in the segment list, or -1.  Lock held. */
static inline ssize_t partition_segment_index(const struct tfs_partition *p,
					      const struct tfs_segment *s)
{
	for (size_t i = p->nsegs; i-- > 0;)
		if (p->segs[i] == s)
			return (ssize_t)i;
	return -1;
}

/* partition_open.c */
int partition_write_checkpoint(struct tfs_partition *p,
			       const struct partition_checkpoint *ck);
/* Writes the epoch history; maint held, lock not held. */
int partition_write_epochs(struct tfs_partition *p);
/* Logs a disk problem at most once every 10 s. */
void partition_disk_warning(struct tfs_partition *p, const char *what,
			    int rc);
void partition_push_segment(struct tfs_partition *p, struct tfs_segment *s);

/* partition.c */
void partition_sync_job(struct tfs_job *job);
/* Seals the active segment and starts an empty one.  Lock held. */
int partition_roll(struct tfs_partition *p);
/* Rebuilds the producer table from the newest index entries (open,
 * truncate).  Lock held. */
void partition_rebuild_producers(struct tfs_partition *p);

/* partition_check.c */
/*
 * Records damage d found in s by a check made on a snapshot taken when s
 * had been cut `cuts` times, and logs it the first time.  Nothing is
 * recorded when s left the partition or was cut back since (the check
 * then failed on bytes that went away, which is not damage).  Lock not
 * held; any thread.
 */
void partition_note_damage(struct tfs_partition *p, struct tfs_segment *s,
			   uint64_t cuts, const struct tfs_damage *d);
/* Forgets the damage of segment base at or past offset from (the segment
 * went or was cut back).  Lock held. */
void partition_forget_damage(struct tfs_partition *p, uint64_t base,
			     uint64_t from);
/* Damaged batches known in segment base, or in all segments for
 * UINT64_MAX.  Lock held. */
uint64_t partition_damaged_batches(const struct tfs_partition *p,
				   uint64_t base);

#endif
