/*
 * cluster.c - this node in its cluster (cluster.h): the etcd session,
 * the metadata kept in step with etcd and elections (the namespace
 * operations that act cluster-wide are in cluster_ns.c).
 *
 * DESIGN
 *
 * Source of truth.  etcd holds the metadata (meta.h); this module keeps
 * a snapshot of it, taken by one linearizable range of the cluster's
 * whole prefix (one revision, so nodes, topics, states and leader keys
 * agree with each other).  The watch only says "something changed"; the
 * control thread then re-reads (and re-reads every second anyway: a
 * missed event costs at most a second).  Decisions (roles, elections)
 * are taken on the snapshot and made effective only by compare-and-swap
 * transactions.
 *
 * Roles.  This node leads a partition when the leader key exists, holds
 * this node's id and lives under this node's current lease, and the
 * state names this node at that epoch.  It follows when it is one of the
 * partition's replicas; otherwise it has no role (reads and writes go to
 * the leader).  Every change of a partition's view is handed to the role
 * hook (the replication layer), which changes the partition's role.
 *
 * Elections.  A partition whose leader key is absent (its leader's lease
 * ran out, or it resigned) is elected by the first alive ISR member at
 * once, by the others only if it stays leaderless for a while (their
 * rank in the ISR times ELECT_STEP_MS): one transaction decides, so two
 * leaders can never both win an epoch.  A node that has just started
 * abstains for ABSTAIN_FACTOR session timeouts while another ISR member
 * is alive: after a crash its log may be shorter than what it
 * acknowledged before (a power loss), and an ISR member that did not
 * crash should lead (KIP-966's concern).
 *
 * Lease.  The keepalive thread renews the lease every third of its TTL.
 * The lease is surely alive until the time the last successful renewal
 * was sent plus the TTL minus a margin; a renewal that finds the lease
 * gone ends every leadership of this node at once (through the hook)
 * before the node registers again under a new lease.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster_int.h"
#include "err.h"
#include "log.h"
#include "sysio.h"
#include "util.h"
#include "banned.h"

#define MARKER "cluster"		/* in the data directory */
#define RECONCILE_MS 1000		/* re-read at least this often */
#define ELECT_STEP_MS 300		/* per rank in the ISR */
#define ABSTAIN_FACTOR 2		/* session timeouts after a start */

/* --- small helpers ---------------------------------------------------------- */

uint32_t tfs_cluster_node_id(struct tfs_cluster *c)
{
	return c->me;
}

bool tfs_cluster_lease_ok(struct tfs_cluster *c)
{
	return tfs_boot_ms() < atomic_load(&c->lease_until);
}

void tfs_cluster_kick(struct tfs_cluster *c)
{
	pthread_mutex_lock(&c->lock);
	c->kicked = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Notes whether etcd answered (any outcome but "unreachable"). */
int cluster_etcd_seen(struct tfs_cluster *c, int rc)
{
	atomic_store(&c->etcd_ok, rc != TFS_EUNAVAIL && rc != TFS_EUNKNOWN);
	return rc;
}

static struct ctopic *find_topic(struct tfs_cluster *c, uint32_t id)
{
	size_t lo = 0, hi = c->ntopics;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->topics[mid].rec.id == id)
			return &c->topics[mid];
		if (c->topics[mid].rec.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void ctopic_release(struct ctopic *t)
{
	tfs_topic_rec_release(&t->rec);
	free(t->views);
	free(t->leaderless_since);
}

static void topics_free(struct ctopic *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ctopic_release(&v[i]);
	free(v);
}

int tfs_cluster_view(struct tfs_cluster *c, uint32_t topic, uint32_t part,
		     struct tfs_part_view *out)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	struct ctopic *t = find_topic(c, topic);
	if (t && part < t->rec.npart) {
		*out = t->views[part];
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

uint32_t tfs_cluster_replication_factor(struct tfs_cluster *c, uint32_t topic)
{
	uint32_t rf = 0;

	pthread_mutex_lock(&c->lock);
	struct ctopic *t = find_topic(c, topic);
	if (t)
		rf = t->rec.replicas[0].n;
	pthread_mutex_unlock(&c->lock);
	return rf;
}

int tfs_cluster_node_address(struct tfs_cluster *c, uint32_t node, char *buf,
			     size_t len)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < c->nnodes; i++) {
		if (c->nodes[i].id == node) {
			snprintf(buf, len, "%s", c->nodes[i].address);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void tfs_cluster_status(struct tfs_cluster *c, struct tfs_cluster_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s",
		 tfs_conf_str(c->conf, TFS_CONF_CLUSTER_NAME));
	pthread_mutex_lock(&c->lock);
	st->nnodes = c->nnodes;
	memcpy(st->nodes, c->nodes, c->nnodes * sizeof(c->nodes[0]));
	pthread_mutex_unlock(&c->lock);
	st->etcd_ok = atomic_load(&c->etcd_ok);
	st->lease_ok = tfs_cluster_lease_ok(c);
	st->elections_won = atomic_load(&c->elections_won);
	st->elections_lost = atomic_load(&c->elections_lost);
	st->isr_shrinks = atomic_load(&c->isr_shrinks);
	st->isr_expands = atomic_load(&c->isr_expands);
}

/* --- the snapshot ----------------------------------------------------------- */

/* What one range of the prefix holds, parsed. */
struct snapshot {
	struct tfs_node_rec nodes[MAX_NODES];
	uint32_t nnodes;
	struct ctopic *topics;		/* sorted by id */
	size_t ntopics;
	int64_t revision;
};

/* A state or leader key's kv, found by partition.  NULL if absent. */
struct part_keys {
	uint32_t topic, part;
	const struct tfs_kv *state, *leader;
};

static int cmp_node(const void *a, const void *b)
{
	uint32_t x = ((const struct tfs_node_rec *)a)->id;
	uint32_t y = ((const struct tfs_node_rec *)b)->id;

	return x < y ? -1 : x > y;
}

static int cmp_ctopic(const void *a, const void *b)
{
	uint32_t x = ((const struct ctopic *)a)->rec.id;
	uint32_t y = ((const struct ctopic *)b)->rec.id;

	return x < y ? -1 : x > y;
}

static int cmp_part_keys(const void *a, const void *b)
{
	const struct part_keys *x = a, *y = b;

	if (x->topic != y->topic)
		return x->topic < y->topic ? -1 : 1;
	return x->part < y->part ? -1 : x->part > y->part;
}

static struct part_keys *keys_find(struct part_keys *v, size_t n,
				   uint32_t topic, uint32_t part)
{
	struct part_keys k = { .topic = topic, .part = part };

	return n ? bsearch(&k, v, n, sizeof(*v), cmp_part_keys) : NULL;
}

/* Collects state and leader keys by partition (sorted). */
static struct part_keys *collect_part_keys(struct tfs_cluster *c,
					   const struct tfs_kvs *kvs,
					   size_t *n)
{
	size_t plen = strlen(c->prefix), cnt = 0;
	struct part_keys *v = tfs_calloc(kvs->n ? kvs->n : 1, sizeof(*v));

	for (size_t i = 0; i < kvs->n; i++) {
		const char *rest = kvs->v[i].key + plen;
		bool state = !strncmp(rest, "state/", 6);
		bool leader = !strncmp(rest, "leader/", 7);
		uint32_t t, p;

		if ((!state && !leader) ||
		    tfs_meta_parse_part_key(rest + (state ? 6 : 7), &t, &p))
			continue;
		struct part_keys *k = keys_find(v, cnt, t, p);
		if (!k) {
			k = &v[cnt++];
			*k = (struct part_keys){ .topic = t, .part = p };
			qsort(v, cnt, sizeof(*v), cmp_part_keys);
			k = keys_find(v, cnt, t, p);
		}
		if (state)
			k->state = &kvs->v[i];
		else
			k->leader = &kvs->v[i];
	}
	*n = cnt;
	return v;
}

/* min.insync.replicas of a topic as this node's store has it. */
static uint32_t min_isr_of(struct tfs_cluster *c, uint32_t topic, uint32_t rf)
{
	struct tfs_topic *t = tfs_store_topic_by_id(c->store, topic);
	int64_t v = 2;

	if (t) {
		v = tfs_settings_get(tfs_topic_settings(t),
				     TFS_CONF_MIN_INSYNC_REPLICAS);
		tfs_topic_unref(t);
	}
	return (uint32_t)TFS_MIN((int64_t)rf, TFS_MAX(v, 1));
}

/* Computes this node's view of partition p of t from its keys. */
static void make_view(struct tfs_cluster *c, const struct snapshot *sn,
		      struct ctopic *t, uint32_t p, const struct part_keys *k,
		      int64_t lease)
{
	struct tfs_part_view *v = &t->views[p];
	struct tfs_pstate st = { 0 };

	memset(v, 0, sizeof(*v));
	v->topic = t->rec.id;
	v->part = p;
	v->replicas = t->rec.replicas[p];
	v->min_isr = min_isr_of(c, t->rec.id, v->replicas.n);
	if (k && k->state && !tfs_pstate_parse(k->state->value, &st)) {
		v->epoch = st.epoch;
		v->isr = st.isr;
		v->state_rev = k->state->mod_rev;
	}
	if (k && k->leader) {
		uint32_t id = (uint32_t)strtoul(k->leader->value, NULL, 10);

		/* The state names the leader the election made; the key
		 * says it is still alive. */
		if (id && id == st.leader) {
			v->leader = id;
			v->leader_rev = k->leader->create_rev;
		}
		if (id == c->me && id == st.leader && k->leader->lease == lease)
			v->role = TFS_ROLE_LEADER;
	}
	if (v->role != TFS_ROLE_LEADER)
		v->role = tfs_idset_has(&v->replicas, c->me) ? TFS_ROLE_FOLLOWER
							     : TFS_ROLE_NONE;
	(void)sn;
}

/* Parses a range of the prefix into sn (topics with their views). */
static int parse_snapshot(struct tfs_cluster *c, const struct tfs_kvs *kvs,
			  int64_t lease, struct snapshot *sn)
{
	size_t plen = strlen(c->prefix), nkeys;
	struct part_keys *keys = collect_part_keys(c, kvs, &nkeys);

	memset(sn, 0, sizeof(*sn));
	sn->revision = kvs->revision;
	for (size_t i = 0; i < kvs->n; i++) {
		const struct tfs_kv *kv = &kvs->v[i];
		const char *rest = kv->key + plen;

		if (!strncmp(rest, "nodes/", 6) && sn->nnodes < MAX_NODES) {
			struct tfs_node_rec *n = &sn->nodes[sn->nnodes];

			if (!tfs_node_rec_parse(kv->value, n)) {
				n->lease = kv->lease;
				sn->nnodes++;
			}
		} else if (!strncmp(rest, "topics/", 7)) {
			struct ctopic t = { .mod_rev = kv->mod_rev };

			if (tfs_topic_rec_parse(kv->value, &t.rec)) {
				tfs_warn("cluster: ignoring malformed %s",
					 kv->key);
				continue;
			}
			sn->topics = tfs_realloc(sn->topics,
						 (sn->ntopics + 1) *
							 sizeof(*sn->topics));
			sn->topics[sn->ntopics++] = t;
		}
	}
	qsort(sn->nodes, sn->nnodes, sizeof(sn->nodes[0]), cmp_node);
	if (sn->ntopics)
		qsort(sn->topics, sn->ntopics, sizeof(*sn->topics), cmp_ctopic);
	for (size_t i = 0; i < sn->ntopics; i++) {
		struct ctopic *t = &sn->topics[i];

		t->views = tfs_calloc(t->rec.npart, sizeof(*t->views));
		t->leaderless_since =
			tfs_calloc(t->rec.npart, sizeof(*t->leaderless_since));
		for (uint32_t p = 0; p < t->rec.npart; p++)
			make_view(c, sn, t, p,
				  keys_find(keys, nkeys, t->rec.id, p), lease);
	}
	free(keys);
	return 0;
}

/* Reads the whole prefix. */
static int read_snapshot(struct tfs_cluster *c, int64_t lease,
			 struct snapshot *sn)
{
	struct tfs_kvs kvs;
	int rc = cluster_etcd_seen(c, tfs_etcd_range(c->etcd, c->prefix, &kvs));

	if (rc)
		return rc;
	rc = parse_snapshot(c, &kvs, lease, sn);
	tfs_kvs_release(&kvs);
	return rc;
}

/* --- keeping the store in step ------------------------------------------------- */

/* Makes the local topic match rec (created, grown, settings). */
int cluster_apply_topic(struct tfs_cluster *c, const struct tfs_topic_rec *rec,
			struct tfs_topic **out)
{
	struct tfs_topic_spec spec = {
		.name = rec->name,
		.id = rec->id,
		.partitions = rec->npart,
		.config = (const char *const *)rec->config,
		.created = rec->created,
		.perms = rec->has_perms ? &rec->perms : NULL,
	};

	return tfs_store_apply_topic(c->store, &spec, out);
}

void cluster_drop_topic(struct tfs_cluster *c, const char *name, uint32_t id)
{
	int rc = tfs_store_drop_topic(c->store, name);

	/* The next reconcile tries again: the topic is gone in etcd. */
	if (rc && rc != -ENOENT)
		tfs_warn("cluster: cannot remove topic %s here: %s", name,
			 tfs_strerror(rc));
	if (c->gone)
		c->gone(c->gone_arg, id);
}

/* Applies the topics that changed since old, drops the local ones gone. */
static void apply_store(struct tfs_cluster *c, const struct snapshot *sn,
			const struct ctopic *old, size_t nold)
{
	size_t n;
	struct tfs_topic **local;

	for (size_t i = 0; i < sn->ntopics; i++) {
		const struct ctopic *t = &sn->topics[i];
		const struct ctopic *o = NULL;
		struct tfs_topic *lt = tfs_store_topic_by_id(c->store,
							     t->rec.id);

		for (size_t j = 0; j < nold && !o; j++)
			if (old[j].rec.id == t->rec.id)
				o = &old[j];
		if (!lt || !o || o->mod_rev != t->mod_rev)
			cluster_apply_topic(c, &t->rec, NULL);
		tfs_topic_unref(lt);
	}
	local = tfs_store_topics(c->store, &n);
	for (size_t i = 0; i < n; i++) {
		uint32_t id = tfs_topic_id(local[i]);
		bool found = false;

		for (size_t j = 0; j < sn->ntopics && !found; j++)
			found = sn->topics[j].rec.id == id;
		if (!found) {
			tfs_info("cluster: topic %s was deleted in the "
				 "cluster; moving it to the trash",
				 tfs_topic_name(local[i]));
			cluster_drop_topic(c, tfs_topic_name(local[i]), id);
		}
	}
	tfs_store_topics_free(local, n);
}

/* --- roles ---------------------------------------------------------------------- */

static bool same_view(const struct tfs_part_view *a,
		      const struct tfs_part_view *b)
{
	return a->role == b->role && a->leader == b->leader &&
	       a->epoch == b->epoch && a->state_rev == b->state_rev &&
	       a->leader_rev == b->leader_rev && a->min_isr == b->min_isr &&
	       a->isr.n == b->isr.n &&
	       !memcmp(a->isr.id, b->isr.id, a->isr.n * sizeof(a->isr.id[0])) &&
	       a->replicas.n == b->replicas.n &&
	       !memcmp(a->replicas.id, b->replicas.id,
		       a->replicas.n * sizeof(a->replicas.id[0]));
}

/* Calls the role hook for v (no cluster lock held). */
static void announce(struct tfs_cluster *c, const struct tfs_part_view *v)
{
	struct tfs_topic *t = tfs_store_topic_by_id(c->store, v->topic);
	struct tfs_partition *p = t ? tfs_topic_partition(t, v->part) : NULL;

	if (p && c->role)
		c->role(c->role_arg, p, v);
	tfs_partition_unref(p);
	tfs_topic_unref(t);
}

/* A list of views to announce, gathered under the lock. */
struct announcements {
	struct tfs_part_view *v;
	size_t n, cap;
};

static void note(struct announcements *a, const struct tfs_part_view *v)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 16;
		a->v = tfs_realloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = *v;
}

static void announce_all(struct tfs_cluster *c, struct announcements *a)
{
	for (size_t i = 0; i < a->n; i++)
		announce(c, &a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/*
 * Swaps the snapshot in, carrying over how long partitions have been
 * without a leader, and notes the views that changed.  Lock held.
 */
static void install(struct tfs_cluster *c, struct snapshot *sn,
		    struct announcements *ann, bool all)
{
	int64_t now = tfs_mono_ms();

	for (size_t i = 0; i < sn->ntopics; i++) {
		struct ctopic *t = &sn->topics[i];
		struct ctopic *o = find_topic(c, t->rec.id);

		for (uint32_t p = 0; p < t->rec.npart; p++) {
			const struct tfs_part_view *v = &t->views[p];
			bool had = o && p < o->rec.npart;

			if (v->leader == 0)
				t->leaderless_since[p] =
					had && o->leaderless_since[p]
						? o->leaderless_since[p]
						: now;
			if (all || !had || !same_view(&o->views[p], v))
				note(ann, v);
		}
	}
	topics_free(c->topics, c->ntopics);
	c->topics = sn->topics;
	c->ntopics = sn->ntopics;
	memcpy(c->nodes, sn->nodes, sizeof(sn->nodes));
	c->nnodes = sn->nnodes;
	sn->topics = NULL;
	sn->ntopics = 0;
}

/* --- elections --------------------------------------------------------------------- */

/* An election to try: the state read and when to try. */
struct candidate {
	uint32_t topic, part;
	struct tfs_pstate state;
	int64_t state_rev;
	struct tfs_idset alive;		/* its replicas alive now */
};

/* Whether node id is alive.  Lock held. */
static bool node_alive(struct tfs_cluster *c, uint32_t id)
{
	for (uint32_t j = 0; j < c->nnodes; j++)
		if (c->nodes[j].id == id)
			return true;
	return false;
}

/* This node's rank among the alive ISR members, or -1 when not in it. */
static int isr_rank(struct tfs_cluster *c, const struct tfs_part_view *v)
{
	int rank = 0;

	for (uint32_t i = 0; i < v->isr.n; i++) {
		uint32_t id = v->isr.id[i];
		bool up = false;

		if (id == c->me)
			return rank;
		for (uint32_t j = 0; j < c->nnodes && !up; j++)
			up = c->nodes[j].id == id;
		rank += up;
	}
	return -1;
}

/* Whether another member of v's ISR is alive.  Lock held. */
static bool other_isr_alive(struct tfs_cluster *c,
			    const struct tfs_part_view *v)
{
	for (uint32_t i = 0; i < v->isr.n; i++)
		if (v->isr.id[i] != c->me && node_alive(c, v->isr.id[i]))
			return true;
	return false;
}

/* Whether this node should try to elect itself now.  Lock held. */
static bool should_elect(struct tfs_cluster *c, const struct ctopic *t,
			 uint32_t p, int64_t now)
{
	const struct tfs_part_view *v = &t->views[p];
	int rank;

	if (v->leader || !tfs_idset_has(&v->replicas, c->me) ||
	    v->state_rev == 0)
		return false;
	rank = isr_rank(c, v);
	if (rank < 0) {
		/* Unclean: only when no ISR member is alive, last. */
		if (!tfs_conf_get(c->conf, TFS_CONF_UNCLEAN_LEADER_ELECTION) ||
		    other_isr_alive(c, v))
			return false;
		rank = (int)v->replicas.n;
	}
	/* Just started: the ISR members that did not crash lead first (a
	 * partition that never had a leader has nothing to lose). */
	if (v->epoch > 0 && now - c->started < ABSTAIN_FACTOR * c->ttl_ms &&
	    other_isr_alive(c, v))
		return false;
	return now - t->leaderless_since[p] >= (int64_t)rank * ELECT_STEP_MS;
}

/* Tries one election.  Returns 1 won, 0 lost, < 0 etcd trouble. */
static int elect(struct tfs_cluster *c, const struct candidate *cand,
		 int64_t lease, struct tfs_pstate *won)
{
	struct tfs_txn_result res;
	struct tfs_txn *t;
	int rc;

	rc = tfs_meta_elect_state(&cand->state, c->me, &cand->alive,
				  tfs_conf_get(c->conf,
					       TFS_CONF_UNCLEAN_LEADER_ELECTION),
				  won);
	if (rc)
		return 0;
	t = tfs_meta_txn_elect(c->prefix, cand->topic, cand->part,
			       cand->state_rev, c->me, lease, won);
	rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
	tfs_txn_free(t);
	if (rc)
		return rc;
	rc = res.succeeded ? 1 : 0;
	tfs_txn_result_release(&res);
	if (rc) {
		atomic_fetch_add(&c->elections_won, 1);
		tfs_info("cluster: elected leader of topic %" PRIu32
			 " partition %" PRIu32 " at epoch %" PRIu32
			 " (isr %" PRIu32 " nodes)",
			 cand->topic, cand->part, won->epoch, won->isr.n);
	} else {
		atomic_fetch_add(&c->elections_lost, 1);
	}
	return rc;
}

/* Runs the elections this node should try; returns how many it won. */
static int run_elections(struct tfs_cluster *c)
{
	struct candidate *cands = NULL;
	size_t n = 0;
	int64_t now = tfs_mono_ms(), lease;
	int won = 0;

	pthread_mutex_lock(&c->lock);
	lease = c->lease;
	for (size_t i = 0; i < c->ntopics; i++) {
		struct ctopic *t = &c->topics[i];

		for (uint32_t p = 0; p < t->rec.npart; p++) {
			if (!should_elect(c, t, p, now))
				continue;
			cands = tfs_realloc(cands, (n + 1) * sizeof(*cands));
			cands[n++] = (struct candidate){
				.topic = t->rec.id,
				.part = p,
				.state = { .leader = t->views[p].leader,
					   .epoch = t->views[p].epoch,
					   .isr = t->views[p].isr },
				.state_rev = t->views[p].state_rev,
			};
			/* Only replicas can lead; at most TFS_MAX_RF. */
			const struct tfs_idset *reps = &t->views[p].replicas;
			for (uint32_t k = 0; k < reps->n; k++)
				if (node_alive(c, reps->id[k]))
					cands[n - 1].alive.id
						[cands[n - 1].alive.n++] =
						reps->id[k];
		}
	}
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		struct tfs_pstate st;

		if (!tfs_cluster_lease_ok(c))
			break;
		int rc = elect(c, &cands[i], lease, &st);
		if (rc < 0)
			break;
		won += rc;
	}
	free(cands);
	return won;
}

/* --- the control thread -------------------------------------------------------- */

/* Re-reads the metadata and makes this node follow it. */
static int reconcile(struct tfs_cluster *c, bool all)
{
	struct announcements ann = { 0 };
	struct snapshot sn;
	int64_t lease;
	int rc;

	pthread_mutex_lock(&c->lock);
	lease = c->lease;
	pthread_mutex_unlock(&c->lock);
	rc = read_snapshot(c, lease, &sn);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	struct ctopic *old = c->topics;
	size_t nold = c->ntopics;
	pthread_mutex_unlock(&c->lock);
	/* The store is changed outside the lock.  Only this thread replaces
	 * the table, and the records and revisions apply_store reads in it
	 * never change (set_isr changes views only). */
	apply_store(c, &sn, old, nold);
	pthread_mutex_lock(&c->announce_lock);
	pthread_mutex_lock(&c->lock);
	install(c, &sn, &ann, all);
	pthread_mutex_unlock(&c->lock);
	announce_all(c, &ann);
	pthread_mutex_unlock(&c->announce_lock);
	return 0;
}

static void *control_main(void *arg)
{
	struct tfs_cluster *c = arg;
	bool first = true;

	pthread_setname_np(pthread_self(), "tfs-cluster");
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (!c->kicked && !c->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)RECONCILE_MS % 1000 * 1000000;
			ts.tv_sec += RECONCILE_MS / 1000 +
				     ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		}
		bool stop = c->stop;
		c->kicked = false;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		if (reconcile(c, first) == 0) {
			first = false;
			/* A won election shows in the next read. */
			if (run_elections(c) > 0)
				tfs_cluster_kick(c);
		}
	}
	return NULL;
}

static void watch_fn(void *arg, const struct tfs_etcd_event *ev, size_t n,
		     int64_t revision, bool resync)
{
	tfs_cluster_kick(arg);
}

/* --- the lease -------------------------------------------------------------------- */

/* The margin kept before a lease's TTL runs out. */
static int64_t lease_margin(struct tfs_cluster *c)
{
	return TFS_MAX(c->ttl_ms / 5, 300);
}

/* Registers this node under a new lease.  Returns 0 or an error. */
static int register_node(struct tfs_cluster *c, int64_t *lease_out)
{
	struct tfs_node_rec rec = { .id = c->me, .pid = getpid(),
				    .started = tfs_now_ms() };
	struct tfs_txn_result res;
	char key[512], *json;
	int64_t lease, granted, sent = tfs_boot_ms();
	int rc;

	rc = cluster_etcd_seen(c, tfs_etcd_lease_grant(c->etcd, c->ttl_ms / 1000,
					       &lease, &granted));
	if (rc)
		return rc;
	snprintf(rec.address, sizeof(rec.address), "%s", c->advertise);
	gethostname(rec.host, sizeof(rec.host) - 1);
	json = tfs_node_rec_json(&rec);
	tfs_meta_node_key(c->prefix, c->me, key, sizeof(key));

	struct tfs_txn *t = tfs_txn_new();
	tfs_txn_cmp(t, key, TFS_CMP_CREATE, TFS_CMP_EQ, 0, NULL);
	tfs_txn_put(t, true, key, json, lease);
	tfs_txn_get(t, false, key, false);
	rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
	tfs_txn_free(t);
	free(json);
	if (rc == 0 && !res.succeeded) {
		tfs_err("cluster: node.id %" PRIu32 " is registered by a live "
			"node (%s); give every node its own node.id",
			c->me, key);
		rc = -EADDRINUSE;
	}
	if (rc == 0)
		tfs_txn_result_release(&res);
	if (rc) {
		tfs_etcd_lease_revoke(c->etcd, lease);
		return rc;
	}
	atomic_store(&c->lease_until, sent + granted * 1000 - lease_margin(c));
	*lease_out = lease;
	return 0;
}

/*
 * Ends this node's previous life: if its node key is still there (a
 * crash less than a session ago) under the same address, revoke that
 * lease, so its leader keys go and partitions are elected again.
 */
static int end_previous_life(struct tfs_cluster *c)
{
	struct tfs_node_rec rec;
	struct tfs_kvs kvs;
	char key[512];
	int rc;

	tfs_meta_node_key(c->prefix, c->me, key, sizeof(key));
	rc = cluster_etcd_seen(c, tfs_etcd_get(c->etcd, key, &kvs));
	if (rc)
		return rc;
	if (kvs.n == 1 && !tfs_node_rec_parse(kvs.v[0].value, &rec)) {
		if (strcmp(rec.address, c->advertise)) {
			tfs_err("cluster: node.id %" PRIu32 " is in use by "
				"the node at %s; give every node its own "
				"node.id",
				c->me, rec.address);
			rc = -EADDRINUSE;
		} else {
			tfs_info("cluster: ending this node's previous "
				 "session (pid %" PRId64 ")",
				 rec.pid);
			rc = tfs_etcd_lease_revoke(c->etcd, kvs.v[0].lease);
			if (rc == -ENOENT)
				rc = 0;
		}
	}
	tfs_kvs_release(&kvs);
	return rc;
}

/* Every leadership of this node ends now (its lease is gone). */
static void lose_leaderships(struct tfs_cluster *c)
{
	struct announcements ann = { 0 };

	pthread_mutex_lock(&c->announce_lock);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->ntopics; i++) {
		struct ctopic *t = &c->topics[i];

		for (uint32_t p = 0; p < t->rec.npart; p++) {
			struct tfs_part_view *v = &t->views[p];

			if (v->role != TFS_ROLE_LEADER)
				continue;
			v->role = TFS_ROLE_FOLLOWER;
			v->leader = 0;
			note(&ann, v);
		}
	}
	pthread_mutex_unlock(&c->lock);
	announce_all(c, &ann);
	pthread_mutex_unlock(&c->announce_lock);
}

static bool sleep_unless_stopped(struct tfs_cluster *c, int64_t ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&c->lock);
	if (!c->stop)
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	return !stop;
}

static void *keepalive_main(void *arg)
{
	struct tfs_cluster *c = arg;
	int64_t wait = c->ttl_ms / 3;

	pthread_setname_np(pthread_self(), "tfs-lease");
	while (sleep_unless_stopped(c, wait)) {
		int64_t lease, ttl, sent = tfs_boot_ms();
		int rc;

		pthread_mutex_lock(&c->lock);
		lease = c->lease;
		pthread_mutex_unlock(&c->lock);
		rc = cluster_etcd_seen(c,
			       tfs_etcd_lease_keepalive(c->etcd, lease, &ttl));
		if (rc == 0) {
			atomic_store(&c->lease_until,
				     sent + ttl * 1000 - lease_margin(c));
			wait = c->ttl_ms / 3;
			continue;
		}
		if (rc != -ENOENT) {
			/* etcd unreachable: try again soon; the lease
			 * deadline runs on meanwhile. */
			wait = TFS_MIN(500, c->ttl_ms / 3);
			continue;
		}
		tfs_warn("cluster: this node's lease expired: its "
			 "leaderships end; registering again");
		atomic_store(&c->lease_until, 0);
		lose_leaderships(c);
		int64_t fresh;
		rc = register_node(c, &fresh);
		if (rc == 0) {
			pthread_mutex_lock(&c->lock);
			c->lease = fresh;
			pthread_mutex_unlock(&c->lock);
			tfs_cluster_kick(c);
			wait = c->ttl_ms / 3;
		} else {
			wait = TFS_MIN(500, c->ttl_ms / 3);
		}
	}
	return NULL;
}

/* --- start and stop ------------------------------------------------------------- */

/*
 * The data directory's marker of the cluster it belongs to: a store that
 * holds topics from before it joined must not have them deleted as
 * "deleted in the cluster".
 */
static int check_marker(struct tfs_cluster *c)
{
	const char *dir = tfs_store_dir(c->store);
	const char *name = tfs_conf_str(c->conf, TFS_CONF_CLUSTER_NAME);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *text = NULL;
	size_t len;
	int rc;

	if (dfd < 0)
		return -errno;
	rc = tfs_sys_read_file(dfd, MARKER, 4096, &text, &len);
	if (rc == 0) {
		while (len && text[len - 1] == '\n')
			text[--len] = '\0';
		if (strcmp(text, name)) {
			tfs_err("cluster: %s belongs to cluster '%s', not "
				"'%s'",
				dir, text, name);
			rc = -EEXIST;
		}
	} else if (rc == -ENOENT) {
		size_t n;
		struct tfs_topic **v = tfs_store_topics(c->store, &n);

		tfs_store_topics_free(v, n);
		if (n) {
			tfs_err("cluster: %s holds %zu topic(s) from outside "
				"the cluster '%s'; they would be deleted as "
				"unknown to it: use an empty data directory "
				"(see docs/CLUSTER.md)",
				dir, n, name);
			rc = -EEXIST;
		} else {
			char buf[300];
			int w = snprintf(buf, sizeof(buf), "%s\n", name);

			rc = tfs_sys_write_atomic(dfd, MARKER, buf, (size_t)w);
		}
	}
	free(text);
	close(dfd);
	return rc;
}

static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
		      *s == '-'))
			return 0;
	return 1;
}

static void cluster_free(struct tfs_cluster *c)
{
	topics_free(c->topics, c->ntopics);
	tfs_etcd_close(c->etcd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->announce_lock);
	free(c);
}

int tfs_cluster_start(const struct tfs_cluster_config *cfg,
		      struct tfs_cluster **out)
{
	const struct tfs_conf *conf = cfg->conf;
	struct tfs_cluster *c = tfs_calloc(1, sizeof(*c));
	const char *name = tfs_conf_str(conf, TFS_CONF_CLUSTER_NAME);
	pthread_condattr_t ca;
	int rc;

	c->store = cfg->store;
	c->conf = conf;
	c->role = cfg->role;
	c->gone = cfg->gone;
	c->role_arg = cfg->role_arg;
	c->gone_arg = cfg->gone_arg;
	c->me = (uint32_t)tfs_conf_get(conf, TFS_CONF_NODE_ID);
	c->ttl_ms = (tfs_conf_get(conf, TFS_CONF_SESSION_TIMEOUT_MS) + 999) /
		    1000 * 1000;
	c->started = tfs_mono_ms();
	snprintf(c->advertise, sizeof(c->advertise), "%s", cfg->advertise);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->announce_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (c->me == 0 || !valid_name(name)) {
		tfs_err("cluster: node.id must be set (1 or more) and "
			"cluster.name made of letters, digits, '.', '_', '-'");
		cluster_free(c);
		return -EINVAL;
	}
	tfs_meta_prefix(name, c->prefix, sizeof(c->prefix));
	rc = tfs_etcd_open(tfs_conf_str(conf, TFS_CONF_CLUSTER_ETCD),
			   TFS_MIN(5000, c->ttl_ms), &c->etcd);
	if (rc == 0)
		rc = check_marker(c);
	if (rc == 0)
		rc = end_previous_life(c);
	if (rc == 0)
		rc = register_node(c, &c->lease);
	if (rc == 0)
		rc = reconcile(c, true);
	if (rc == 0)
		rc = tfs_etcd_watch_start(c->etcd, c->prefix, 0, watch_fn, c,
					  &c->watch);
	if (rc) {
		tfs_err("cluster: cannot join through etcd %s: %s",
			tfs_conf_str(conf, TFS_CONF_CLUSTER_ETCD),
			tfs_strerror(rc));
		if (c->lease)
			tfs_etcd_lease_revoke(c->etcd, c->lease);
		cluster_free(c);
		return rc;
	}
	if (pthread_create(&c->control, NULL, control_main, c) ||
	    pthread_create(&c->keepalive, NULL, keepalive_main, c))
		abort();	/* no threads: nothing works anyway */
	tfs_info("cluster: node %" PRIu32 " joined cluster '%s' at %s "
		 "(session %" PRId64 " ms)",
		 c->me, name, c->advertise, c->ttl_ms);
	tfs_cluster_kick(c);
	*out = c;
	return 0;
}

void tfs_cluster_stop(struct tfs_cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	tfs_etcd_watch_stop(c->watch);
	pthread_join(c->control, NULL);
	pthread_join(c->keepalive, NULL);
	atomic_store(&c->lease_until, 0);
	/* The revoke deletes this node's key and exactly the leader keys
	 * it holds (they live under its lease), at once: the others elect
	 * and shrink their ISRs without waiting for the session timeout. */
	tfs_etcd_lease_revoke(c->etcd, c->lease);
	tfs_info("cluster: node %" PRIu32 " left", c->me);
}

void tfs_cluster_free(struct tfs_cluster *c)
{
	if (c)
		cluster_free(c);
}

int tfs_cluster_set_isr(struct tfs_cluster *c, const struct tfs_part_view *v,
			const struct tfs_idset *isr)
{
	struct tfs_pstate next = { .leader = c->me, .epoch = v->epoch,
				   .isr = *isr };
	struct tfs_txn_result res;
	struct tfs_txn *t;
	int rc;

	t = tfs_meta_txn_set_isr(c->prefix, v->topic, v->part, v->state_rev,
				 v->leader_rev, &next);
	rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
	tfs_txn_free(t);
	if (rc)
		return rc;
	bool ok = res.succeeded;
	int64_t rev = res.revision;
	tfs_txn_result_release(&res);
	if (!ok) {
		tfs_cluster_kick(c);
		return TFS_ESTALEEPOCH;
	}
	if (isr->n < v->isr.n)
		atomic_fetch_add(&c->isr_shrinks, 1);
	else
		atomic_fetch_add(&c->isr_expands, 1);

	struct tfs_part_view nv;
	bool changed = false;
	pthread_mutex_lock(&c->announce_lock);
	pthread_mutex_lock(&c->lock);
	struct ctopic *ct = find_topic(c, v->topic);
	if (ct && v->part < ct->rec.npart &&
	    ct->views[v->part].state_rev == v->state_rev) {
		ct->views[v->part].isr = *isr;
		ct->views[v->part].state_rev = rev;
		nv = ct->views[v->part];
		changed = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (changed)
		announce(c, &nv);
	pthread_mutex_unlock(&c->announce_lock);
	return 0;
}
