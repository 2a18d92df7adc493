/*
 * compactor.c - retention, time-based rolls and compression, in the
 * background.
 *
 * A ticker (workers.h) wakes every retention.check.interval.ms and makes
 * a pass over a snapshot of the partitions.  The work
 * per partition is in partition.c (tfs_partition_roll_old, _retain,
 * _compress_next); this file only schedules it and reads each topic's
 * settings at the time of the pass.  Compression goes one segment at a
 * time and checks for a stop request between segments, so shutdown waits
 * for at most one segment.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "compactor.h"
#include "store.h"
#include "util.h"
#include "workers.h"
#include "banned.h"

struct tfs_compactor {
	struct tfs_store *store;
	struct tfs_ticker *ticker;
};

struct pass {
	struct tfs_compactor *c;
	int64_t now;
};

static bool stopping(struct tfs_compactor *c)
{
	return tfs_ticker_stopping(c->ticker);
}

static void visit(struct tfs_topic *t, struct tfs_partition *p, void *arg)
{
	struct pass *ps = arg;
	struct tfs_settings *st = tfs_topic_settings(t);

	if (stopping(ps->c))
		return;
	tfs_partition_roll_old(p, ps->now,
			       tfs_settings_get(st, TFS_CONF_SEGMENT_MS));
	tfs_partition_retain(p, ps->now,
			     tfs_settings_get(st, TFS_CONF_RETENTION_MS),
			     tfs_settings_get(st, TFS_CONF_RETENTION_BYTES));
	if (tfs_settings_get(st, TFS_CONF_COMPRESSION) != TFS_COMPRESSION_ZSTD)
		return;
	int level = (int)tfs_settings_get(st, TFS_CONF_COMPRESSION_LEVEL);
	size_t frame = (size_t)tfs_settings_get(
		st, TFS_CONF_COMPRESSION_FRAME_BYTES);
	while (!stopping(ps->c) &&
	       tfs_partition_compress_next(p, level, frame) == 1)
		;
}

/* One pass over a snapshot of the partitions. */
static void tick(void *arg)
{
	struct tfs_compactor *c = arg;
	struct pass ps = { c, tfs_now_ms() };

	tfs_store_foreach_partition(c->store, visit, &ps);
}

int tfs_compactor_start(struct tfs_store *store, int64_t interval_ms,
			struct tfs_compactor **out)
{
	struct tfs_compactor *c = tfs_calloc(1, sizeof(*c));
	int rc;

	c->store = store;
	rc = tfs_ticker_start("tfs-compact", interval_ms, tick, c, &c->ticker);
	if (rc) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void tfs_compactor_stop(struct tfs_compactor *c)
{
	if (!c)
		return;
	tfs_ticker_stop(c->ticker);
	free(c);
}
