/*
 * segment_int.h - what the two files of the segment module share:
 *
 *   segment.c          the files: create, open and recovery, append,
 *                      truncate, compression, listing a directory
 *   segment_check.c    checks at rest: the entry walker, lookups that
 *                      step around damaged entries, checked reads, frame
 *                      checks, the scrubber's pass, repair
 *
 * Nothing outside these files includes this header.
 */
#ifndef TFS_SEGMENT_INT_H
#define TFS_SEGMENT_INT_H

#include <sys/types.h>

#include "segment.h"

static inline off_t segment_entry_pos(const struct tfs_segment *s, uint64_t i)
{
	return (off_t)(TFS_INDEX_HEADER_SIZE + i * s->esize);
}

/*
 * Reads index entries of s in chunks, so a walk over thousands of small
 * batches costs a few system calls: the first chunk is small (a read of
 * big batches needs a handful of entries), the next ones WALK_CHUNK.
 */
#define WALK_FIRST 16
#define WALK_CHUNK 256

struct seg_walk {
	struct tfs_segment *s;
	uint64_t n;		/* entries [0, n) exist */
	uint64_t first;		/* entry number of buf[0] */
	size_t have;		/* entries in buf */
	size_t chunk;		/* entries the next pread asks for */
	unsigned char buf[WALK_CHUNK * TFS_INDEX_ENTRY_SIZE];
};

void seg_walk_init(struct seg_walk *w, struct tfs_segment *s, uint64_t n);

/* Entry i (< n).  0, TFS_ECORRUPT (it fails its CRC, or the .index is
 * shorter than n entries) or -errno. */
int seg_walk_entry(struct seg_walk *w, uint64_t i, struct tfs_index_entry *e);

/*
 * Describes damaged entry j, whose batch starts at lo (the end of the
 * good entry before it, or the segment's base): the range runs to the
 * next good entry (or, with length 0, to the segment's end).
 */
void seg_entry_damage(struct seg_walk *w, uint64_t j, uint64_t lo,
		      const char *why, struct tfs_damage *d);

/* Describes the damaged batch of entry e (index entry i). */
void seg_batch_damage(struct tfs_segment *s, const struct tfs_index_entry *e,
		      uint64_t i, const char *why, struct tfs_damage *d);

/* Whether e follows prev (offset and record), or is the first entry of s
 * when prev is NULL. */
bool seg_entry_follows(const struct tfs_segment *s,
		       const struct tfs_index_entry *prev,
		       const struct tfs_index_entry *e);

#endif
