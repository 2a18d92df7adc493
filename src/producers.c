/*
 * producers.c - the per-partition table of producers' last batches
 * (producers.h), one entry per stream (a producer id without its epoch).
 * A small array, searched linearly: a partition sees a handful of streams
 * (one per node incarnation and partition that wrote to it), and
 * the least recently written one goes when the table is full.
 */
#include <stdlib.h>
#include <string.h>

#include "producers.h"
#include "util.h"
#include "banned.h"

void tfs_producers_init(struct tfs_producers *t)
{
	memset(t, 0, sizeof(*t));
}

void tfs_producers_release(struct tfs_producers *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

void tfs_producers_reset(struct tfs_producers *t)
{
	t->n = 0;
}

/* The entry of producer's stream, whatever its epoch. */
static struct tfs_producer_state *find(const struct tfs_producers *t,
				       uint64_t producer)
{
	uint64_t stream = tfs_producer_stream(producer);

	for (size_t i = 0; i < t->n; i++)
		if (tfs_producer_stream(t->v[i].producer) == stream)
			return &t->v[i];
	return NULL;
}

/* a's epoch minus b's, as 16-bit serial numbers: < 0 when a is older. */
static int epoch_cmp(uint64_t a, uint64_t b)
{
	return (int16_t)(uint16_t)((a - b) & TFS_PRODUCER_EPOCH_MASK);
}

enum tfs_producer_verdict tfs_producers_check(const struct tfs_producers *t,
					      uint64_t producer,
					      uint32_t sequence,
					      struct tfs_producer_state *last)
{
	const struct tfs_producer_state *p = find(t, producer);

	if (!p)
		return TFS_PRODUCE_NEW;
	*last = *p;
	int ec = epoch_cmp(producer, p->producer);
	if (ec < 0)
		return TFS_PRODUCE_OUT_OF_ORDER;	/* fenced */
	if (ec > 0)
		return TFS_PRODUCE_NEW;
	if (sequence == p->sequence + 1)
		return TFS_PRODUCE_NEW;
	if (sequence == p->sequence)
		return TFS_PRODUCE_DUPLICATE;
	return TFS_PRODUCE_OUT_OF_ORDER;
}

void tfs_producers_record(struct tfs_producers *t,
			  const struct tfs_index_entry *e)
{
	struct tfs_producer_state *p;

	if (e->producer == 0)
		return;
	p = find(t, e->producer);
	if (p && epoch_cmp(e->producer, p->producer) < 0)
		return;		/* an older epoch never replaces a newer */
	if (!p && t->n == TFS_PRODUCERS_MAX) {
		/* The one whose last batch is oldest goes. */
		p = &t->v[0];
		for (size_t i = 1; i < t->n; i++)
			if (t->v[i].offset < p->offset)
				p = &t->v[i];
	} else if (!p) {
		if (t->n == t->cap) {
			t->cap = t->cap ? 2 * t->cap : 4;
			t->v = tfs_realloc(t->v, t->cap * sizeof(*t->v));
		}
		p = &t->v[t->n++];
	}
	*p = (struct tfs_producer_state){
		.producer = e->producer,
		.sequence = e->sequence,
		.offset = e->offset,
		.record = e->record,
		.count = e->count,
		.length = e->length,
	};
}
