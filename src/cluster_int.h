/*
 * cluster_int.h - what cluster.c (the session, the snapshot, elections)
 * and cluster_ns.c (the namespace operations) share.
 */
#ifndef TFS_CLUSTER_INT_H
#define TFS_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cluster.h"
#include "etcd.h"
#include "meta.h"

#define MAX_NODES 64

/* A topic of the snapshot with what this node made of it. */
struct ctopic {
	struct tfs_topic_rec rec;
	int64_t mod_rev;
	struct tfs_part_view *views;	/* rec.npart */
	int64_t *leaderless_since;	/* mono ms, 0: has a leader */
};

struct tfs_cluster {
	/* set at start, then read-only */
	struct tfs_store *store;
	struct tfs_etcd *etcd;
	const struct tfs_conf *conf;
	char prefix[256];
	char advertise[256];
	uint32_t me;
	int64_t ttl_ms;
	int64_t started;		/* mono ms */
	bool unclean;
	tfs_cluster_role_fn role;
	void (*gone)(void *arg, uint32_t topic);
	void *role_arg, *gone_arg;

	/* Held from changing a view until the role hook has heard of it
	 * (taken before lock), so the hook hears views in the order they
	 * were installed: a set_isr that announced after a newer reconcile
	 * would hand replication a stale view. */
	pthread_mutex_t announce_lock;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* kicked, or stop */
	bool kicked, stop;		/* (lock) */
	int64_t lease;			/* (lock) */
	struct ctopic *topics;		/* (lock) sorted by id */
	size_t ntopics;			/* (lock) */
	struct tfs_node_rec nodes[MAX_NODES];	/* (lock) alive, by id */
	uint32_t nnodes;		/* (lock) */

	_Atomic int64_t lease_until;	/* boot ms: surely alive before */
	atomic_bool etcd_ok;
	atomic_ullong elections_won, elections_lost, isr_shrinks, isr_expands;

	pthread_t control, keepalive;
	struct tfs_etcd_watch *watch;
};

/* Notes whether etcd answered (rc is not TFS_EUNAVAIL); returns rc. */
int cluster_etcd_seen(struct tfs_cluster *c, int rc);

/* Drops topic name (id) from the store and tells the gone hook. */
void cluster_drop_topic(struct tfs_cluster *c, const char *name, uint32_t id);

/* Makes the local topic match rec (created, grown, settings, owners). */
int cluster_apply_topic(struct tfs_cluster *c, const struct tfs_topic_rec *rec,
			struct tfs_topic **out);

#endif
