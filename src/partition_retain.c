/*
 * partition_retain.c - retention and compaction of a partition, run by
 * the compactor thread (partition.h): old segments deleted by time and
 * size, segments sealed by age, sealed segments compressed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "partition_int.h"
#include "banned.h"

int tfs_partition_retain(struct tfs_partition *p, int64_t now,
			 int64_t retention_ms, int64_t retention_bytes)
{
	struct tfs_segment **gone;
	uint64_t total = 0, bytes = 0;
	size_t k = 0;

	pthread_mutex_lock(&p->lock);
	if (p->gone) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	for (size_t i = 0; i < p->nsegs; i++)
		total += p->segs[i]->data_size;
	/* Never the active segment: its bytes are the log's end. */
	for (; k + 1 < p->nsegs; k++) {
		struct tfs_segment *s = p->segs[k];
		bool expired = retention_ms >= 0 && s->last_ts < now - retention_ms;
		bool over = retention_bytes >= 0 &&
			    total - s->data_size >= (uint64_t)retention_bytes;

		if (!expired && !over)
			break;
		total -= s->data_size;
		bytes += s->size;
	}
	gone = tfs_malloc((k ? k : 1) * sizeof(*gone));
	memcpy(gone, p->segs, k * sizeof(*gone));
	for (size_t i = 0; i < k; i++)
		partition_forget_damage(p, gone[i]->base, 0);
	memmove(p->segs, p->segs + k, (p->nsegs - k) * sizeof(*p->segs));
	p->nsegs -= k;
	pthread_mutex_unlock(&p->lock);

	/* The start has moved; the files go now, outside the lock.  Readers
	 * holding a segment keep its descriptors until they drop it. */
	for (size_t i = 0; i < k; i++) {
		int rc = tfs_segment_unlink(gone[i]);

		if (rc)
			tfs_warn("%s: cannot remove segment %020" PRIu64 ": %s",
				 p->name, gone[i]->base, tfs_strerror(rc));
		tfs_segment_unref(gone[i]);
	}
	free(gone);
	atomic_store(&p->last_retention, now);
	if (k) {
		atomic_fetch_add(&p->deleted_bytes, bytes);
		atomic_fetch_add(&p->deleted_segments, k);
		tfs_info("%s: retention deleted %zu segment(s), %" PRIu64
			 " bytes",
			 p->name, k, bytes);
	}
	return (int)k;
}

int tfs_partition_roll_old(struct tfs_partition *p, int64_t now,
			   int64_t segment_ms)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	struct tfs_segment *active = p->segs[p->nsegs - 1];
	if (!p->gone && !p->failed && active->entries > 0 && segment_ms > 0 &&
	    now - active->first_ts >= segment_ms)
		rc = partition_roll(p);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/*
 * The oldest sealed raw segment that may be compressed: wholly below what
 * recovery trusts, without damage.  A damaged one is marked to stay raw
 * and returned in *skipped (referenced) the first time, to be logged.
 * Lock held.
 */
static struct tfs_segment *compress_candidate(struct tfs_partition *p,
					      struct tfs_segment **skipped)
{
	/* Only what recovery will never have to check again. */
	uint64_t limit = TFS_MIN(TFS_MIN(p->ckpt_end, p->hw), p->durable);

	*skipped = NULL;
	for (size_t i = 0; i + 1 < p->nsegs && !p->gone; i++) {
		struct tfs_segment *c = p->segs[i];

		if (c->kind != TFS_SEG_RAW || !c->sealed || !c->entries ||
		    c->base + c->size > limit || c->no_compress)
			continue;
		if (partition_damaged_batches(p, c->base)) {
			c->no_compress = true;
			if (!*skipped)
				*skipped = tfs_segment_ref(c);
			continue;
		}
		return tfs_segment_ref(c);
	}
	return NULL;
}

static void log_left_raw(struct tfs_partition *p, struct tfs_segment *s)
{
	tfs_warn("%s: compactor: segment %020" PRIu64 " stays uncompressed: "
		 "it holds damaged data (logged above); it is compressed "
		 "once repaired",
		 p->name, s->base);
}

int tfs_partition_compress_next(struct tfs_partition *p, int level,
				size_t frame_bytes)
{
	struct tfs_segment *s, *z, *skipped;
	struct tfs_damage d;
	uint64_t cuts = 0;
	int rc;

	pthread_mutex_lock(&p->lock);
	s = compress_candidate(p, &skipped);
	if (s)
		cuts = s->cuts;
	pthread_mutex_unlock(&p->lock);
	if (skipped) {
		log_left_raw(p, skipped);
		tfs_segment_unref(skipped);
	}
	if (!s)
		return 0;

	rc = tfs_segment_compress(s, level, frame_bytes, &z, &d);
	if (rc == TFS_ECORRUPT) {
		/* Never baked into a frame: the segment stays raw, damage
		 * and all, and the compactor goes on with the next one. */
		partition_note_damage(p, s, cuts, &d);
		pthread_mutex_lock(&p->lock);
		s->no_compress = true;
		pthread_mutex_unlock(&p->lock);
		if (d.kind == TFS_DAMAGE_NONE)
			tfs_warn("%s: cannot compress segment %020" PRIu64
				 ": %s; it stays uncompressed",
				 p->name, s->base, tfs_strerror(rc));
		else
			log_left_raw(p, s);
		tfs_segment_unref(s);
		return 1;
	}
	if (rc) {
		tfs_warn("%s: cannot compress segment %020" PRIu64 ": %s",
			 p->name, s->base, tfs_strerror(rc));
		tfs_segment_unref(s);
		return rc;
	}
	pthread_mutex_lock(&p->lock);
	ssize_t i = partition_segment_index(p, s);
	if (i >= 0) {
		p->segs[i] = z;
		/* Damage a read found in the raw copy after the compactor
		 * checked it is not in the copy. */
		partition_forget_damage(p, s->base, 0);
	}
	pthread_mutex_unlock(&p->lock);
	if (i < 0) {
		/* Deleted or cut meanwhile: the copy goes too. */
		tfs_segment_unlink(z);
		tfs_segment_unref(z);
		tfs_segment_unref(s);
		return 1;
	}
	rc = tfs_segment_unlink_log(s);
	if (rc)
		tfs_warn("%s: cannot remove %020" PRIu64 ".log: %s", p->name,
			 s->base, tfs_strerror(rc));
	tfs_debug("%s: segment %020" PRIu64 " compressed %" PRIu64 " -> %" PRIu64
		  " bytes",
		  p->name, s->base, s->size, z->data_size);
	atomic_fetch_add(&p->compressions, 1);
	tfs_segment_unref(s);	/* the list's reference */
	tfs_segment_unref(s);	/* ours */
	return 1;
}
