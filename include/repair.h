/*
 * repair.h - damaged batches mended from a healthy replica.
 *
 * A batch whose bytes or index entry fail their checks (a read, a fetch,
 * the scrubber: partition.h, DAMAGE AT REST) is never handed out: reads
 * fail with EIO there, and a leader answers a fetch that reaches it with
 * TFS_FETCH_CORRUPT rather than serve it.  In a cluster every other
 * replica that holds the batch committed has a good copy.  This module
 * fetches it and writes it back in place (tfs_partition_repair, which
 * checks the copy against the local entry or its neighbours first):
 *
 *   - every node serves GET /v1/batches?topic=T&partition=P&offset=O&max=M:
 *     the whole, checked, committed batches from O (at most M bytes, at
 *     least one batch), as their index entries (64 bytes each, format
 *     2, CRC'd) followed by their bytes; the header X-Topicfs-Batches
 *     says how many.  A damaged batch there is never served (422).
 *   - a ticker looks at every local partition's damage list once a
 *     second and asks, for each damaged range below its committed end,
 *     the leader first (on a follower) and then the other in-sync
 *     replicas, until one has a good copy.
 *
 * Damage in a compressed segment is not repaired (its frames are written
 * once): it stays EIO to readers, reported in status, until retention
 * removes it.  Damage above the committed end waits: until the batch is
 * committed nobody else is known to hold the same bytes.
 */
#ifndef TFS_REPAIR_H
#define TFS_REPAIR_H

#include <stdint.h>

#include "auth.h"
#include "cluster.h"
#include "conf.h"
#include "httpc.h"
#include "httpd.h"
#include "store.h"

struct tfs_repair;

struct tfs_repair_config {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	struct tfs_cluster *cluster;
	struct tfs_httpd *httpd;	/* the route is added to it */
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	int64_t period_ms;		/* between looks at the damage lists */
};

/* Adds the route and starts the ticker.  Returns 0 or -errno. */
int tfs_repair_start(const struct tfs_repair_config *cfg,
		     struct tfs_repair **out);

/* Stops the ticker (waits for a repair in progress).  NULL is fine.  The
 * route stays until the HTTP server stops: quiesce it first. */
void tfs_repair_stop(struct tfs_repair *rp);

struct tfs_repair_stats {
	uint64_t served;		/* batches given to other replicas */
	uint64_t repaired;		/* batches mended here */
	uint64_t failed;		/* attempts that found no good copy */
};

void tfs_repair_stats(struct tfs_repair *rp, struct tfs_repair_stats *st);

#endif
