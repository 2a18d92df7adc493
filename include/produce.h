/*
 * produce.h - writes and fsyncs in a cluster: a batch written on any node
 * reaches its partition's leader (appended there if this node leads it,
 * else forwarded over HTTP) and is answered once committed, retried
 * through failovers until request.timeout.ms, never appended twice.
 *
 * Each node writes to each partition as one producer stream (a random
 * 64-bit producer id and a sequence number per batch, kept in the log
 * with the batch: producers.h), one batch at a time in the order written,
 * so a retry after a timeout or a failover is recognised by whichever
 * leader gets it.  A stream whose batch failed with an unknown outcome
 * starts again under a new producer id, so a lost batch is never taken
 * for a gap.  After a forwarded write is answered, it also waits until
 * this node's own replica shows it, so a read here right after write()
 * returned sees the data.
 *
 * The leader's side: POST /v1/append?topic=&partition=&epoch=&producer=
 * &seq=&acks= with the batch as body (200 with where it landed; 409 not
 * the leader at that epoch; 503 too few in-sync replicas or no surely
 * live lease; 400, 413, 422, 507 for a bad batch, one too big, a sequence
 * out of order, no space), and POST /v1/sync?topic=&partition= (200 once
 * everything the leader holds is on stable storage on every in-sync
 * replica).
 *
 * Threads: any thread submits; completions run on the thread that ends
 * the write (an appender, the replication layer, the HTTP client, the
 * timer thread), never with a lock held.
 */
#ifndef TFS_PRODUCE_H
#define TFS_PRODUCE_H

#include <stdint.h>
#include <sys/uio.h>

#include "auth.h"
#include "cluster.h"
#include "httpc.h"
#include "httpd.h"
#include "partition.h"
#include "repl.h"
#include "timer.h"

struct tfs_produce;

struct tfs_produce_config {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	struct tfs_cluster *cluster;
	struct tfs_repl *repl;
	struct tfs_httpd *httpd;	/* routes are added: before it listens */
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	struct tfs_timers *timers;
};

int tfs_produce_new(const struct tfs_produce_config *cfg,
		    struct tfs_produce **out);

/*
 * Stopping is two steps around the replication layer's stop.
 * tfs_produce_stop fails every write still queued (-EIO) and makes those
 * in flight fail at their next attempt; call it after the HTTP server
 * quiesced.  tfs_produce_free waits until the writes in flight ended
 * (the replication layer's stop fails those waiting for a commit, the HTTP
 * client's stop those forwarded) and frees pr.  NULL is fine.
 */
void tfs_produce_stop(struct tfs_produce *pr);
void tfs_produce_free(struct tfs_produce *pr);

/* A write of one batch of whole records. */
struct tfs_write {
	/* in */
	struct tfs_partition *p;	/* the local partition */
	uint32_t topic, part;
	const struct iovec *iov;	/* copied by submit */
	int iovcnt;
	bool is_sync;			/* an fsync, not a write: no bytes */
	void (*done)(struct tfs_write *w, int status);
	/* private */
	struct tfs_produce *pr;
	struct tfs_list link;
	struct pstream *stream;
	char *bytes;
	size_t len;
	int64_t deadline;
	uint32_t seq;
	uint64_t producer;
	uint64_t end;			/* where it ended, on the leader */
	struct tfs_append a;
	struct tfs_syncreq sr;
	struct tfs_wait visible;
	struct tfs_http_req http;
	struct tfs_timer retry;
	struct tfs_buf url;
	char *headers[8];
	int tries;
};

/*
 * Writes w's batch (or, with is_sync, waits until what the partition's
 * leader holds is durable on its ISR).  done(w, status) runs exactly
 * once: 0 once committed (and visible here), or -errno: EIO when no
 * leader took it within request.timeout.ms (the outcome is unknown), the
 * produce rules' EINVAL and EFBIG, ENOSPC.  w must stay valid until done.
 */
void tfs_produce_submit(struct tfs_produce *pr, struct tfs_write *w);

struct tfs_produce_stats {
	uint64_t local, forwarded, retries, duplicates, failed;
	uint64_t streams;	/* (topic, partition) writer streams held */
};

void tfs_produce_stats(struct tfs_produce *pr, struct tfs_produce_stats *st);

/*
 * The topic with this id was deleted: its writer streams go (at once when
 * idle, otherwise when their last queued write has ended).  The cluster's
 * gone hook calls it.
 */
void tfs_produce_forget_topic(struct tfs_produce *pr, uint32_t topic);

#endif
