/*
 * repl.h - replication: Kafka-style pull between a partition's leader and
 * its followers (design section 2, "Replication protocol" and
 * "Replication rules").
 *
 * Leader side.  POST /v1/fetch (one long poll per follower node covering
 * every partition it follows here): the leader records each follower's
 * log end and durable end, moves the high watermark to the smallest log
 * end over the in-sync replicas (only while there are at least
 * min.insync.replicas of them and its lease is surely alive) and the
 * replicated durable end likewise, answers with whole batches from the
 * follower's end, or parks the request until there is something new for
 * one of its partitions (a batch, a new watermark, a new epoch) or
 * replica.fetch.wait.max.ms passed.  A ticker shrinks the ISR of
 * followers that fell behind (or whose node left) and expands it with
 * those that caught up, by compare-and-swap transactions (cluster.h).
 *
 * Follower side.  One fetcher thread per leader node asks for every
 * partition this node follows there, appends the batches unchanged,
 * takes the watermark (never past its own end), truncates first when
 * its last epoch diverged (KIP-101/279), and restarts its log at the
 * leader's start when it fell below it.
 *
 * Threads: HTTP threads run the fetch handler; waits end on appenders and
 * the timer thread, which hand the answer to the "tfs-fetch" workers;
 * fetcher threads; the ISR ticker.  The role hook (tfs_repl_role) runs on
 * the cluster's control thread.
 */
#ifndef TFS_REPL_H
#define TFS_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "cluster.h"
#include "conf.h"
#include "httpc.h"
#include "httpd.h"
#include "partition.h"
#include "store.h"

struct tfs_repl;

struct tfs_repl_config {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	struct tfs_httpd *httpd;	/* routes are added: before it listens */
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	struct tfs_timers *timers;
	uint32_t me;			/* this node's id */
};

/* Makes the replication layer; registers POST /v1/fetch. */
int tfs_repl_new(const struct tfs_repl_config *cfg, struct tfs_repl **out);

/* Starts fetching and the ISR ticker, once the cluster runs. */
int tfs_repl_start(struct tfs_repl *r, struct tfs_cluster *c);

/*
 * Stops the fetchers and the ticker, answers parked fetches (503), gives
 * every partition the role none (appends waiting for commit fail with
 * TFS_ENOTLEADER) and frees r.  Call after the HTTP server quiesced and
 * before the cluster stops.  NULL is fine.
 */
void tfs_repl_stop(struct tfs_repl *r);

/* The cluster's role hook (cluster.h): arg is the tfs_repl. */
void tfs_repl_role(void *arg, struct tfs_partition *p,
		   const struct tfs_part_view *v);

/* The cluster's gone hook: topic was deleted; its partitions leave the
 * replication table (and are freed once no fetch or fetcher uses them). */
void tfs_repl_forget_topic(void *arg, uint32_t topic);

/*
 * Whether this node may take a write for the partition now, as its
 * leader: it leads it, its lease is surely alive, and (unless the write
 * asks only for the leader's acknowledgement, acks=1, as in Kafka) its
 * ISR has at least min.insync.replicas members.  Returns 0,
 * TFS_ENOTLEADER or TFS_ENOISR (nothing should be appended then: Kafka's
 * NotEnoughReplicas).
 */
int tfs_repl_can_lead(struct tfs_repl *r, uint32_t topic, uint32_t part,
		      bool ack_leader);

/*
 * Tells the replication layer this node appended to a partition it leads:
 * with no follower to wait for (an ISR of one), the watermark moves now.
 */
void tfs_repl_appended(struct tfs_repl *r, uint32_t topic, uint32_t part);

/* One follower's place as its leader sees it (for status). */
struct tfs_replica_lag {
	uint32_t node;
	uint64_t lag_bytes;		/* leader's log end - its log end */
	int64_t lag_ms;			/* since it last caught up */
	bool in_sync;
};

/*
 * The followers of a partition this node leads: fills up to max and
 * returns how many (0 when it does not lead it).
 */
int tfs_repl_lags(struct tfs_repl *r, uint32_t topic, uint32_t part,
		  struct tfs_replica_lag *out, int max);

struct tfs_repl_stats {
	uint64_t fetches_served, fetches_sent;
	uint64_t bytes_served, bytes_fetched;
	uint64_t truncations, resets;
};

void tfs_repl_stats(struct tfs_repl *r, struct tfs_repl_stats *st);

#endif
