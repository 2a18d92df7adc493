/*
 * producers.h - duplicate detection for forwarded batches (Kafka's
 * idempotent producer, KIP-98), per partition.
 *
 * A node that writes to a partition it does not lead forwards whole lines
 * to the leader; a forward may be retried after a timeout or a failover,
 * so each batch carries (producer id, sequence number): the producer id
 * names one writer stream (a node's incarnation), the sequence counts its
 * batches to this partition from 0.  The leader keeps, per producer, the
 * last batch it holds; the ids and sequences are stored in the index with
 * the batch and replicated, so followers keep the same table and a new
 * leader has it at election, and a restart rebuilds it from the log.
 *
 * The rule for a batch from producer P with sequence S, the last batch of
 * P in the log having sequence L:
 *   P unknown           append (a new producer, or one forgotten)
 *   S == L + 1          append
 *   S == L              a retry of the last batch: answer with its place
 *                       in the log, append nothing
 *   S < L or S > L + 1  refuse (TFS_ESEQUENCE): an old retry, or a gap
 *                       (a batch was lost between the two); never a
 *                       silent append
 *
 * Not thread-safe: the partition lock protects its table.
 */
#ifndef TFS_PRODUCERS_H
#define TFS_PRODUCERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"

/* The producers remembered per partition; the least recent go first. */
#define TFS_PRODUCERS_MAX 256

struct tfs_producer_state {
	uint64_t producer;
	uint32_t sequence;		/* of its last batch in the log */
	uint64_t offset;		/* that batch's byte offset */
	uint64_t record;		/* its first record */
	uint32_t count, length;
};

struct tfs_producers {
	struct tfs_producer_state *v;
	size_t n, cap;
};

void tfs_producers_init(struct tfs_producers *t);
void tfs_producers_release(struct tfs_producers *t);
/* Forgets everything (before a rebuild). */
void tfs_producers_reset(struct tfs_producers *t);

enum tfs_producer_verdict {
	TFS_PRODUCE_NEW,		/* append it */
	TFS_PRODUCE_DUPLICATE,		/* *last is the batch it repeats */
	TFS_PRODUCE_OUT_OF_ORDER,	/* refuse: TFS_ESEQUENCE */
};

/* Judges a batch from producer (not 0) with sequence. */
enum tfs_producer_verdict tfs_producers_check(const struct tfs_producers *t,
					      uint64_t producer,
					      uint32_t sequence,
					      struct tfs_producer_state *last);

/* Records a batch now in the log (entries with producer 0 are ignored). */
void tfs_producers_record(struct tfs_producers *t,
			  const struct tfs_index_entry *e);

#endif
