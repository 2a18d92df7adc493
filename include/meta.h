/*
 * meta.h - the cluster's metadata as it lives in etcd: the key layout,
 * the JSON of each record, the replica assignment, and the transactions
 * that change them.  Pure: no I/O, no threads, so every rule that decides
 * is unit-tested alone; cluster.c runs the transactions through etcd.h.
 *
 * KEYS, under P = "/topicfs/<cluster.name>/":
 *
 *   P nodes/<id>             {"id","address","host","pid","started"}
 *                            under the node's lease: gone means dead
 *   P topic-seq              the last topic id given out (decimal)
 *   P topics/<name>          {"id","name","created","replicas":[[...]],
 *                            "config":{key:value},"perm":{"dir":O,
 *                            "parts":O,"overrides":[{"partition",O}]}}
 *                            with O = {"uid","gid","mode":"0755"}
 *   P state/<id>/<p>         {"leader","epoch","isr":[...]}, persistent
 *   P leader/<id>/<p>        the leader's node id, under its lease
 *
 * Topic ids are cluster-wide and never reused, so the state of a topic
 * deleted and made again under the same name never mixes with the old.
 * Every change is a compare-and-swap transaction (design: "Replication
 * rules"): a state key changes only if its mod revision is the one the
 * writer last read; an election also requires the leader key to be absent
 * (create revision 0) and puts it with the winner's lease in the same
 * transaction, whose revision is the fencing token that orders leaders.
 */
#ifndef TFS_META_H
#define TFS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd.h"
#include "perm.h"
#include "util.h"

/* The largest replication factor: a copy more than this many is no use
 * to a log that waits for every in-sync replica, and the sets stay small
 * (ten thousand partitions a node keep them all in memory). */
#define TFS_MAX_RF 16

/* A live node, from P nodes/<id>. */
struct tfs_node_rec {
	uint32_t id;
	char address[256];		/* "http://10.0.0.3:7092" */
	char host[64];
	int64_t pid;
	int64_t started;		/* ms since the epoch */
	int64_t lease;			/* the lease it lives under */
};

/* A set of node ids (a replica list or an ISR), in order. */
struct tfs_idset {
	uint32_t n;
	uint32_t id[TFS_MAX_RF];
};

bool tfs_idset_has(const struct tfs_idset *s, uint32_t id);
/* Formats "1,2,3" into buf; returns the length. */
int tfs_idset_format(const struct tfs_idset *s, char *buf, size_t len);

/* A topic, from P topics/<name>. */
struct tfs_topic_rec {
	uint32_t id;
	char name[256];
	int64_t created;
	uint32_t npart;
	struct tfs_idset *replicas;	/* npart, malloc'd */
	/* The topic's own settings: "key", "value", ... NULL (malloc'd,
	 * usable as tfs_topic_spec.config). */
	char **config;
	size_t nconfig;			/* pairs */
	/* Owners and modes; a record written before they were carried has
	 * none (each node keeps its own then). */
	bool has_perms;
	struct tfs_topic_perms perms;	/* overrides malloc'd */
};

void tfs_topic_rec_release(struct tfs_topic_rec *t);

/* A partition's state, from P state/<id>/<p>. */
struct tfs_pstate {
	uint32_t leader;		/* 0: none */
	uint32_t epoch;
	struct tfs_idset isr;
};

/* --- keys --------------------------------------------------------------- */

/* The prefix of cluster `name` ("/topicfs/<name>/") into buf. */
void tfs_meta_prefix(const char *name, char *buf, size_t len);
/* The keys of a record, given the prefix. */
void tfs_meta_node_key(const char *prefix, uint32_t id, char *buf,
		       size_t len);
void tfs_meta_topic_key(const char *prefix, const char *name, char *buf,
			size_t len);
void tfs_meta_state_key(const char *prefix, uint32_t topic, uint32_t part,
			char *buf, size_t len);
void tfs_meta_leader_key(const char *prefix, uint32_t topic, uint32_t part,
			 char *buf, size_t len);
/* Parses "<id>/<p>" at the end of a state or leader key (after its
 * prefix).  0 or -EINVAL. */
int tfs_meta_parse_part_key(const char *rest, uint32_t *topic,
			    uint32_t *part);

/* --- records (JSON text, malloc'd; parsers return 0 or TFS_EPROTO) ------ */

char *tfs_node_rec_json(const struct tfs_node_rec *n);
int tfs_node_rec_parse(const char *json, struct tfs_node_rec *n);

char *tfs_topic_rec_json(const struct tfs_topic_rec *t);
int tfs_topic_rec_parse(const char *json, struct tfs_topic_rec *t);

char *tfs_pstate_json(const struct tfs_pstate *s);
int tfs_pstate_parse(const char *json, struct tfs_pstate *s);

/* --- assignment ---------------------------------------------------------- */

/*
 * Assigns rf replicas to partitions [from, to) of topic `topic` over the
 * nodes (sorted ids), as Kafka's rack-unaware assignment does: the first
 * replica of partition p is nodes[(p + start) % n] and the others follow
 * with a shift that grows every n partitions, so leaders and replicas
 * spread evenly; start and shift come from the topic id, so topics spread
 * too and the result is deterministic.  Fills out[from..to).  Returns 0,
 * or -EINVAL when rf is 0 or above the number of nodes.
 */
int tfs_meta_assign(uint32_t topic, const uint32_t *nodes, uint32_t n,
		    uint32_t rf, uint32_t from, uint32_t to,
		    struct tfs_idset *out);

/* --- transactions ---------------------------------------------------------- */

/*
 * Creating topic t: if its key does not exist, put it and a state key per
 * partition (no leader, epoch 0, the ISR = the replicas: all empty, all in
 * sync); the preferred replica then elects itself.
 */
struct tfs_txn *tfs_meta_txn_create_topic(const char *prefix,
					  const struct tfs_topic_rec *t);

/* Deleting a topic: its key (at mod revision rev), states and leaders. */
struct tfs_txn *tfs_meta_txn_delete_topic(const char *prefix,
					  const struct tfs_topic_rec *t,
					  int64_t rev);

/*
 * Changing a topic's record (settings, or more partitions: then the new
 * partitions' state keys too, from old_npart on): if its key is still at
 * mod revision rev.
 */
struct tfs_txn *tfs_meta_txn_update_topic(const char *prefix,
					  const struct tfs_topic_rec *t,
					  uint32_t old_npart, int64_t rev);

/*
 * An election: if the state key is at rev and the leader key is absent,
 * put the leader key (me, under lease) and the new state (me, epoch + 1,
 * the ISR given).  The failure branch reads both keys back.
 */
struct tfs_txn *tfs_meta_txn_elect(const char *prefix, uint32_t topic,
				   uint32_t part, int64_t rev, uint32_t me,
				   int64_t lease,
				   const struct tfs_pstate *next);

/*
 * A leader's ISR change: if the state key is at rev and the leader key is
 * still its own (created at leader_rev), put the new state.
 */
struct tfs_txn *tfs_meta_txn_set_isr(const char *prefix, uint32_t topic,
				     uint32_t part, int64_t rev,
				     int64_t leader_rev,
				     const struct tfs_pstate *next);

/*
 * The state an election gives: me as leader at epoch + 1, the ISR kept
 * minus the nodes that are not alive (they cannot acknowledge; they
 * rejoin once caught up), me included.  Returns 0, or TFS_ENOTLEADER when
 * me may not lead: not in the ISR (unless unclean is true and no ISR
 * member is alive).
 */
int tfs_meta_elect_state(const struct tfs_pstate *cur, uint32_t me,
			 const struct tfs_idset *alive, bool unclean,
			 struct tfs_pstate *next);

#endif
