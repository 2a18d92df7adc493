/*
 * status.h - the two read-only files under MNT/.topicfs/: `status`, a JSON
 * document describing the node, its topics and partitions, and `metrics`,
 * the same counters in the Prometheus text exposition format (v0.0.4).
 * Both are rendered on demand from a snapshot of the store (one
 * tfs_partition_info per partition); the field-by-field reference is
 * docs/STATUS.md.
 *
 * Threads and locks.  Any thread may call these functions, holding no
 * store, topic or partition lock: they take the store lock, each topic's
 * lock and each partition's lock briefly, one at a time, in the store's
 * lock order.  The snapshot is consistent per partition, not across
 * partitions.
 */
#ifndef TFS_STATUS_H
#define TFS_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "produce.h"
#include "repl.h"
#include "store.h"
#include "util.h"

/* What the store does not know about the node: filled in by the caller. */
struct tfs_node_info {
	const char *version;		/* "0.1.0" */
	const char *node;		/* node name (hostname) */
	const char *mountpoint;
	const char *data_dir;
	/* tfs_mono_ms() at start: uptime = now - this */
	int64_t started_mono_ms;
	uint64_t open_handles;		/* open files on the mount */
	uint64_t parked_reads;		/* .follow reads waiting (may be 0) */
	/* In a cluster (NULL standalone): shown in "cluster", and per
	 * partition its role, leader, epoch, replicas, ISR and lags. */
	struct tfs_cluster *cluster;
	struct tfs_repl *repl;
	struct tfs_repair *repair;
	struct tfs_produce *produce;
	uint64_t peer_refused;		/* peer requests refused (401) */
};

/*
 * The JSON document of MNT/.topicfs/status: pretty-printed (two-space
 * indent), keys in a fixed order, topics sorted by name, ending with '\n'.
 * Returns a malloc'd, NUL-terminated string the caller frees, and its
 * length (without the NUL) in *len if len is not NULL.  Never fails (out
 * of memory aborts).  The strings in n are copied; n is not kept.
 */
char *tfs_status_json(struct tfs_store *s, const struct tfs_node_info *n,
		      size_t *len);

/*
 * The Prometheus text exposition (format 0.0.4) of MNT/.topicfs/metrics:
 * for each metric family a `# HELP` and a `# TYPE` line, then all its
 * samples.  Returns a malloc'd, NUL-terminated string the caller frees,
 * and its length in *len if len is not NULL.  Never fails.
 */
char *tfs_status_metrics(struct tfs_store *s, const struct tfs_node_info *n,
			 size_t *len);

/*
 * Appends s to b as the inside of a Prometheus label value: backslash,
 * double quote and newline become \\, \" and \n; every other byte is
 * copied as is.  The quotes around the value are the caller's.  Exported
 * for the unit test.
 */
void tfs_status_escape_label(struct tfs_buf *b, const char *s);

#endif
