/*
 * cluster.h - this node's membership of a cluster: its etcd session
 * (lease, registration, watch), the metadata it keeps in step with etcd
 * (nodes, topics, assignments, each partition's leader, epoch and ISR),
 * leader elections, and the namespace operations that act cluster-wide
 * (mkdir, rmdir, topic settings, partition growth).  The only module that
 * uses etcd.h; the rules it follows are in docs/CLUSTER.md and the
 * design's "Replication rules".
 *
 * Keeping in step.  A control thread re-reads the metadata (linearizable
 * ranges) whenever the watch hints at a change, and every second anyway;
 * it applies topics to the local store (create, grow, settings, delete),
 * computes this node's role for every partition and hands it to the
 * replication layer through the role hook, and runs elections for
 * partitions without a leader where this node may lead.
 *
 * Fencing.  A leader holds its leader keys under its node lease.  The
 * lease is "surely alive" until the time the last successful keepalive
 * was sent plus the TTL minus a margin (on CLOCK_BOOTTIME, which also
 * counts a suspended machine's sleep): past that,
 * tfs_cluster_lease_ok() is false and the replication layer stops
 * acknowledging.  A lease found expired makes every leadership of this
 * node void at once (the role hook says so) before the node registers
 * again.
 *
 * Threads: the control thread, the keepalive thread, the etcd watch
 * thread.  The role hook runs on the control thread (or the keepalive
 * thread when the lease is lost) with no cluster lock held.  The other
 * functions may be called from any thread; the namespace operations block
 * for etcd round trips (bounded by its timeout).
 */
#ifndef TFS_CLUSTER_H
#define TFS_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "meta.h"
#include "partition.h"
#include "store.h"

struct tfs_cluster;

/* What this node knows of one partition. */
struct tfs_part_view {
	uint32_t topic, part;
	enum tfs_role role;		/* this node's */
	uint32_t leader;		/* 0: none now */
	uint32_t epoch;			/* the state's leader epoch */
	struct tfs_idset replicas;
	struct tfs_idset isr;
	int64_t state_rev;		/* mod revision of the state key */
	int64_t leader_rev;		/* create revision of the leader key */
	uint32_t min_isr;		/* min.insync.replicas, capped at RF */
};

/*
 * Called when this node's role in a partition, its leader, epoch or ISR
 * changed (and once for every partition at start).  p is the local
 * partition (referenced for the call).
 */
typedef void (*tfs_cluster_role_fn)(void *arg, struct tfs_partition *p,
				    const struct tfs_part_view *v);

struct tfs_cluster_config {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	const char *advertise;		/* this node's base URL */
	tfs_cluster_role_fn role;
	void *role_arg;
	/* Called (with gone_arg) once a topic was deleted here, by this
	 * node or from the metadata; may be NULL. */
	void (*gone)(void *arg, uint32_t topic);
	void *gone_arg;
};

/*
 * Joins the cluster: opens etcd, refuses (-EADDRINUSE, logged) when a live
 * node already has this node.id at another address, grants the lease,
 * registers, revokes the lease of this node's previous life (its
 * leaderships end and are elected again), reads the metadata, makes the
 * local store match it (topics created or grown elsewhere appear, topics
 * deleted meanwhile go to the trash), and starts the threads.  A data
 * directory that holds topics but never belonged to this cluster is
 * refused (-EEXIST, logged): they would be deleted.  Returns 0,
 * TFS_EUNAVAIL (etcd unreachable), -EINVAL (a bad setting) or -errno.
 */
int tfs_cluster_start(const struct tfs_cluster_config *cfg,
		      struct tfs_cluster **out);

/*
 * Leaves: gives up this node's leaderships (their leader keys go, so the
 * others elect at once instead of after the session timeout), stops the
 * threads and revokes the lease.  The role hook is not called from then
 * on.  The other calls stay valid until tfs_cluster_free (the lease is no
 * longer ok; transactions that need it fail), so replication can stop
 * after the cluster.  NULL is fine.
 */
void tfs_cluster_stop(struct tfs_cluster *c);

/* Frees a stopped cluster.  NULL is fine. */
void tfs_cluster_free(struct tfs_cluster *c);

uint32_t tfs_cluster_node_id(struct tfs_cluster *c);

/* Whether this node's lease is surely alive now (see Fencing above). */
bool tfs_cluster_lease_ok(struct tfs_cluster *c);

/* The view of a partition.  0, or -ENOENT when it is not known. */
int tfs_cluster_view(struct tfs_cluster *c, uint32_t topic, uint32_t part,
		     struct tfs_part_view *out);

/* A node's base URL into buf.  0, or -ENOENT when it is not alive. */
int tfs_cluster_node_address(struct tfs_cluster *c, uint32_t node, char *buf,
			     size_t len);

/* Asks the control thread to re-read the metadata now (something
 * changed: a fetch saw a newer epoch, a leader is unreachable). */
void tfs_cluster_kick(struct tfs_cluster *c);

/*
 * A leader's ISR change (shrink or expand), run as a transaction that
 * holds only if the state key is still at v->state_rev and the leader key
 * is still the one this leadership created.  Blocks for the round trip.
 * Returns 0 (the view is updated and the hook called), TFS_ESTALEEPOCH
 * (the state moved on: this node no longer leads at that epoch; the
 * control thread re-reads), TFS_EUNKNOWN or TFS_EUNAVAIL.
 */
int tfs_cluster_set_isr(struct tfs_cluster *c, const struct tfs_part_view *v,
			const struct tfs_idset *isr);

/* --- the namespace, cluster-wide ---------------------------------------- */

/*
 * Creates topic name in the cluster with num.partitions partitions and
 * default.replication.factor replicas each, owned as perms says (its
 * overrides are ignored; NULL: each node's defaults), then here.  Returns
 * 0 (a reference in *out if not NULL), -EINVAL (bad name, or a
 * replication factor above the live nodes, logged), -EEXIST, TFS_EUNAVAIL
 * or TFS_EUNKNOWN (etcd did not answer: it may exist).
 */
int tfs_cluster_create_topic(struct tfs_cluster *c, const char *name,
			     const struct tfs_topic_perms *perms,
			     struct tfs_topic **out);

/* Deletes topic name everywhere.  0, -ENOENT, -EPERM
 * (delete.topic.enable off), TFS_EUNAVAIL or TFS_EUNKNOWN. */
int tfs_cluster_delete_topic(struct tfs_cluster *c, const char *name);

/*
 * Sets a topic-scoped setting cluster-wide (validated first: TFS_EBADCONF
 * with a message in err), or grows the partitions (key "partitions":
 * -EINVAL when it would shrink).  Applied here before it returns, on the
 * other nodes within about a second.  0, -ENOENT, TFS_EUNAVAIL...
 */
int tfs_cluster_set_topic(struct tfs_cluster *c, const char *name,
			  const char *key, const char *value, char *err,
			  size_t errlen);

/*
 * Sets the owner, group and mode of topic name's directory (part -1) or
 * of one partition cluster-wide, as tfs_cluster_set_topic sets a setting.
 * 0, -EINVAL (ids or bits out of range), -ENOENT, TFS_EUNAVAIL...
 */
int tfs_cluster_set_perm(struct tfs_cluster *c, const char *name,
			 int64_t part, const struct tfs_perm *perm);

/* A topic's replication factor (from its assignment), 0 if unknown. */
uint32_t tfs_cluster_replication_factor(struct tfs_cluster *c,
					uint32_t topic);

/* --- for status --------------------------------------------------------- */

struct tfs_cluster_status {
	char name[128];			/* cluster.name */
	bool etcd_ok;			/* the last etcd request got through */
	bool lease_ok;
	uint32_t nnodes;
	struct tfs_node_rec nodes[64];	/* the live ones, by id */
	uint64_t elections_won, elections_lost;
	uint64_t isr_shrinks, isr_expands;
};

void tfs_cluster_status(struct tfs_cluster *c, struct tfs_cluster_status *st);

#endif
