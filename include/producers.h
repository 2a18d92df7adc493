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
 * A producer id is a stream (its upper 48 bits: one writer stream of one
 * node incarnation) and an epoch (its lower 16 bits).  A sender whose
 * write failed (its outcome unknown) goes on under the next epoch from
 * sequence 0, and the epoch fences the old one: a request of the failed
 * write that reaches the leader late (TCP still delivers what a closed
 * socket had sent) must not land after the writes that came after it
 * (Kafka bumps the producer epoch for the same reason, KIP-360).
 *
 * The rule for a batch from producer P (stream X, epoch e) with sequence
 * S, the last batch of X in the log having epoch E and sequence L:
 *   X unknown           append (a new producer, or one forgotten)
 *   e older than E      refuse (TFS_ESEQUENCE): a fenced, failed write
 *   e newer than E      append (the stream's next epoch)
 *   S == L + 1          append
 *   S == L              a retry of the last batch: answer with its place
 *                       in the log, append nothing
 *   S < L or S > L + 1  refuse (TFS_ESEQUENCE): an old retry, or a gap
 *                       (a batch was lost between the two); never a
 *                       silent append
 * Epochs compare as 16-bit serial numbers (RFC 1982): a stream may fail
 * 32,767 times between two batches the leader sees and still be ordered.
 *
 * Not thread-safe: the partition lock protects its table.
 */
#ifndef TFS_PRODUCERS_H
#define TFS_PRODUCERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"

#define TFS_PRODUCER_EPOCH_BITS 16
#define TFS_PRODUCER_EPOCH_MASK ((UINT64_C(1) << TFS_PRODUCER_EPOCH_BITS) - 1)

/* The stream and epoch of a producer id. */
static inline uint64_t tfs_producer_stream(uint64_t producer)
{
	return producer >> TFS_PRODUCER_EPOCH_BITS;
}

/* The same stream at its next epoch (what a sender uses after a failed
 * write). */
static inline uint64_t tfs_producer_next_epoch(uint64_t producer)
{
	return (producer & ~TFS_PRODUCER_EPOCH_MASK) |
	       ((producer + 1) & TFS_PRODUCER_EPOCH_MASK);
}

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
