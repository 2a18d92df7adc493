/*
 * Module tests for the cluster (cluster.h) against a real etcd the test
 * starts: two nodes in one process, each with its own store, joining one
 * cluster.  A topic made on one appears on the other, its partitions get
 * leaders from their replicas, settings and growth travel, a deletion
 * reaches the other store; a node id in use elsewhere is refused, a data
 * directory with topics from outside is refused, ISR changes hold only
 * for the leadership that made them, and a node whose lease expires
 * loses its leaderships to the other.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "testetcd.h"
#include "testlib.h"
#include "cluster.h"
#include "err.h"
#include "etcd.h"
#include "store.h"

static struct te_etcd etcd;
static char root[64];

/* One node: its store, cluster and the roles the hook heard of. */
struct node {
	uint32_t id;
	struct tfs_conf conf;
	struct tfs_store *store;
	struct tfs_cluster *c;
	char dir[128], addr[64];
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct tfs_part_view last;	/* the latest view of topic/0 */
	int calls;
	/* The next call for topic/0 waits in the hook until released. */
	bool hold_next, held, release;
};

static void on_role(void *arg, struct tfs_partition *p,
		    const struct tfs_part_view *v)
{
	struct node *n = arg;

	pthread_mutex_lock(&n->mu);
	if (v->part == 0 && n->hold_next) {
		/* A slow hook: what a preempted announcer looks like. */
		n->hold_next = false;
		n->held = true;
		pthread_cond_broadcast(&n->cond);
		while (!n->release)
			pthread_cond_wait(&n->cond, &n->mu);
		n->held = false;
	}
	pthread_mutex_unlock(&n->mu);
	/* What the replication layer does with a role, in short. */
	tfs_partition_set_role(p, v->role, v->epoch);
	pthread_mutex_lock(&n->mu);
	if (v->part == 0) {
		n->last = *v;
		n->calls++;
	}
	pthread_mutex_unlock(&n->mu);
}

static int node_start(struct node *n, uint32_t id, const char *extra)
{
	char err[256], v[64];
	struct tfs_cluster_config cc;
	int rc;

	n->id = id;
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->hold_next = n->held = n->release = false;
	if (!n->dir[0])
		snprintf(n->dir, sizeof(n->dir), "%s/node%u", root, id);
	if (!n->addr[0])
		snprintf(n->addr, sizeof(n->addr), "http://127.0.0.1:%u",
			 7000 + id);
	tfs_conf_init(&n->conf);
	snprintf(v, sizeof(v), "%u", id);
	tfs_conf_set(&n->conf, "node.id", v, err, sizeof(err));
	tfs_conf_set(&n->conf, "cluster.etcd", etcd.url, err, sizeof(err));
	tfs_conf_set(&n->conf, "session.timeout.ms", "2000", err, sizeof(err));
	tfs_conf_set(&n->conf, "default.replication.factor", "2", err,
		     sizeof(err));
	if (extra)
		tfs_conf_set(&n->conf, extra, "true", err, sizeof(err));
	rc = tfs_store_open(n->dir, &n->conf, &n->store);
	if (rc)
		return rc;
	cc = (struct tfs_cluster_config){ .conf = &n->conf,
					  .store = n->store,
					  .advertise = n->addr,
					  .role = on_role,
					  .role_arg = n };
	rc = tfs_cluster_start(&cc, &n->c);
	if (rc) {
		tfs_store_close(n->store);
		n->store = NULL;
	}
	return rc;
}

static void node_stop(struct node *n)
{
	tfs_cluster_stop(n->c);
	tfs_cluster_free(n->c);
	tfs_store_close(n->store);
	tfs_conf_release(&n->conf);
	pthread_mutex_destroy(&n->mu);
	pthread_cond_destroy(&n->cond);
	n->c = NULL;
	n->store = NULL;
}

static struct tfs_part_view last_view(struct node *n)
{
	struct tfs_part_view v;

	pthread_mutex_lock(&n->mu);
	v = n->last;
	pthread_mutex_unlock(&n->mu);
	return v;
}

/* Polls cond for up to ms. */
#define WAIT_FOR(ms, cond)                                                 \
	({                                                                 \
		long until_ = te_ms() + (ms);                              \
		while (!(cond) && te_ms() < until_)                        \
			te_sleep_ms(20);                                   \
		(cond);                                                    \
	})

static bool has_topic(struct node *n, const char *name)
{
	struct tfs_topic *t = tfs_store_find_topic(n->store, name);

	tfs_topic_unref(t);
	return t != NULL;
}

/* Whether n's store has logs with 3 partitions and retention 1 h. */
static bool grown(struct node *n)
{
	struct tfs_topic *t = tfs_store_find_topic(n->store, "logs");
	bool ok = t && tfs_topic_partitions(t) == 3 &&
		  tfs_settings_get(tfs_topic_settings(t),
				   TFS_CONF_RETENTION_MS) == 3600000;

	tfs_topic_unref(t);
	return ok;
}

/* Whether topic name's directory (part -1) or partition has want on n. */
static bool perm_is(struct node *n, const char *name, int part,
		    const struct tfs_perm *want)
{
	struct tfs_topic *t = tfs_store_find_topic(n->store, name);
	struct tfs_perm got = { 0 };
	bool ok = t != NULL;

	if (t && part < 0)
		tfs_topic_get_perm(t, &got);
	else if (t)
		ok = tfs_topic_get_part_perm(t, (uint32_t)part, &got) == 0;
	tfs_topic_unref(t);
	ok = ok && !memcmp(&got, want, sizeof(got));
	if (!ok && getenv("TFS_TEST_VERBOSE"))
		fprintf(stderr, "  %s/%d: %u %u %04o\n", name, part, got.uid,
			got.gid, got.mode);
	return ok;
}

static uint32_t leader_of(struct node *n, uint32_t topic, uint32_t part)
{
	struct tfs_part_view v;

	return tfs_cluster_view(n->c, topic, part, &v) ? 0 : v.leader;
}

/* tfs_cluster_set_isr on its own thread (its announcement runs there). */
struct isr_call {
	struct node *n;
	struct tfs_part_view v;
	struct tfs_idset isr;
	int rc;
};

static void *set_isr_main(void *arg)
{
	struct isr_call *c = arg;

	c->rc = tfs_cluster_set_isr(c->n->c, &c->v, &c->isr);
	return NULL;
}

static bool held(struct node *n)
{
	pthread_mutex_lock(&n->mu);
	bool h = n->held;
	pthread_mutex_unlock(&n->mu);
	return h;
}

static void test_two_nodes(void)
{
	struct node a = { 0 }, b = { 0 };
	struct tfs_topic *t = NULL;
	char err[256];

	TEST("two nodes join; a topic made on one appears on the other");
	CHECK_EQ(node_start(&a, 1, NULL), 0);
	CHECK_EQ(node_start(&b, 2, NULL), 0);
	struct tfs_topic_perms made = { .dir = { 1000, 100, 02750 },
					.parts = { 1000, 100, 0640 } };
	CHECK_EQ(tfs_cluster_create_topic(a.c, "logs", &made, &t), 0);
	CHECK(t != NULL);
	uint32_t id = t ? tfs_topic_id(t) : 0;
	tfs_topic_unref(t);
	CHECK(WAIT_FOR(3000, has_topic(&b, "logs")));
	CHECK_EQ(tfs_cluster_create_topic(b.c, "logs", NULL, NULL), -EEXIST);

	TEST("its maker's owner and modes hold on the other node too");
	CHECK(perm_is(&b, "logs", -1, &made.dir));
	CHECK(perm_is(&b, "logs", 0, &made.parts));
	CHECK_EQ(tfs_cluster_replication_factor(b.c, id), 2);

	TEST("its partition gets a leader among its replicas, seen by both");
	CHECK(WAIT_FOR(5000, leader_of(&a, id, 0) && leader_of(&b, id, 0)));
	uint32_t leader = leader_of(&a, id, 0);
	CHECK(leader == 1 || leader == 2);
	CHECK_EQ(leader_of(&b, id, 0), leader);
	struct node *ln = leader == 1 ? &a : &b, *fn = leader == 1 ? &b : &a;
	CHECK(WAIT_FOR(3000, last_view(ln).role == TFS_ROLE_LEADER));
	CHECK(WAIT_FOR(3000, last_view(fn).role == TFS_ROLE_FOLLOWER &&
				     last_view(fn).leader == leader));
	CHECK_EQ(last_view(ln).epoch, 1);
	CHECK_EQ(last_view(ln).isr.n, 2);
	CHECK(tfs_cluster_lease_ok(a.c) && tfs_cluster_lease_ok(b.c));

	TEST("settings and partition growth travel to the other node");
	CHECK_EQ(tfs_cluster_set_topic(a.c, "logs", "retention.ms", "1h", err,
				       sizeof(err)),
		 0);
	CHECK_EQ(tfs_cluster_set_topic(a.c, "logs", "retention.ms", "soon",
				       err, sizeof(err)),
		 TFS_EBADCONF);
	CHECK_EQ(tfs_cluster_set_topic(b.c, "logs", "partitions", "3", err,
				       sizeof(err)),
		 0);
	CHECK_EQ(tfs_cluster_set_topic(b.c, "logs", "partitions", "2", err,
				       sizeof(err)),
		 -EINVAL);
	CHECK(WAIT_FOR(3000, grown(&a) && grown(&b)));
	CHECK(WAIT_FOR(5000, leader_of(&a, id, 2) != 0));

	TEST("chown and chmod travel too; a new partition takes the default");
	struct tfs_perm dir2 = { 1001, 101, 0755 }, p1 = { 1001, 101, 0600 },
			bad = { 1, 1, 04755 };
	CHECK(perm_is(&a, "logs", 2, &made.parts));
	CHECK_EQ(tfs_cluster_set_perm(b.c, "logs", -1, &dir2), 0);
	CHECK_EQ(tfs_cluster_set_perm(b.c, "logs", 1, &p1), 0);
	CHECK_EQ(tfs_cluster_set_perm(b.c, "logs", 1, &bad), -EINVAL);
	CHECK_EQ(tfs_cluster_set_perm(b.c, "logs", 3, &p1), -ENOENT);
	CHECK_EQ(tfs_cluster_set_perm(b.c, "nosuch", 0, &p1), -ENOENT);
	CHECK(WAIT_FOR(3000, perm_is(&a, "logs", -1, &dir2) &&
				     perm_is(&a, "logs", 1, &p1)));
	CHECK(perm_is(&a, "logs", 0, &made.parts));
	CHECK_EQ(tfs_cluster_set_perm(a.c, "logs", 1, &made.parts), 0);
	CHECK(WAIT_FOR(3000, perm_is(&b, "logs", 1, &made.parts)));

	TEST("an ISR change holds only for the leadership that made it");
	struct tfs_part_view v;
	CHECK_EQ(tfs_cluster_view(ln->c, id, 0, &v), 0);
	struct tfs_idset one = { 1, { leader } };
	CHECK_EQ(tfs_cluster_set_isr(ln->c, &v, &one), 0);
	CHECK(WAIT_FOR(3000, last_view(fn).isr.n == 1));
	/* The same view again: its revision is stale now. */
	CHECK_EQ(tfs_cluster_set_isr(ln->c, &v, &v.isr), TFS_ESTALEEPOCH);
	CHECK_EQ(tfs_cluster_view(ln->c, id, 0, &v), 0);
	CHECK_EQ(tfs_cluster_set_isr(ln->c, &v, &v.replicas), 0);

	TEST("the role hook hears views in the order they were installed");
	/* An ISR change whose announcement is slow, and meanwhile a newer
	 * view (min.insync.replicas changed on the other node): the hook
	 * must end with the newer one, never the older after it. */
	struct isr_call call = { .n = ln, .isr = one };
	pthread_t th;
	CHECK(WAIT_FOR(3000, last_view(ln).isr.n == 2));
	CHECK_EQ(tfs_cluster_view(ln->c, id, 0, &call.v), 0);
	pthread_mutex_lock(&ln->mu);
	ln->hold_next = true;
	ln->release = false;
	pthread_mutex_unlock(&ln->mu);
	CHECK_EQ(pthread_create(&th, NULL, set_isr_main, &call), 0);
	CHECK(WAIT_FOR(3000, held(ln)));
	CHECK_EQ(tfs_cluster_set_topic(fn->c, "logs", "min.insync.replicas",
				       "1", err, sizeof(err)),
		 0);
	/* Without the ordering the newer view is heard now, on the control
	 * thread; with it, not before the slow one ended. */
	WAIT_FOR(1500, last_view(ln).min_isr == 1);
	pthread_mutex_lock(&ln->mu);
	ln->release = true;
	pthread_cond_broadcast(&ln->cond);
	pthread_mutex_unlock(&ln->mu);
	pthread_join(th, NULL);
	CHECK_EQ(call.rc, 0);
	CHECK(WAIT_FOR(3000, last_view(ln).min_isr == 1));
	te_sleep_ms(300);	/* nothing older comes after it */
	CHECK_EQ(last_view(ln).min_isr, 1);
	CHECK_EQ(last_view(ln).isr.n, 1);
	CHECK_EQ(tfs_cluster_view(ln->c, id, 0, &v), 0);
	CHECK_EQ(tfs_cluster_set_isr(ln->c, &v, &v.replicas), 0);

	TEST("a node id in use by a live node elsewhere is refused");
	struct node dup = { 0 };
	snprintf(dup.dir, sizeof(dup.dir), "%s/elsewhere", root);
	snprintf(dup.addr, sizeof(dup.addr), "http://127.0.0.1:7999");
	CHECK_EQ(node_start(&dup, 1, NULL), -EADDRINUSE);
	tfs_conf_release(&dup.conf);

	TEST("the leader stopping hands leadership to the other at once");
	uint32_t epoch = last_view(fn).epoch;
	node_stop(ln);
	CHECK(WAIT_FOR(3000, last_view(fn).role == TFS_ROLE_LEADER));
	CHECK(last_view(fn).epoch > epoch);
	CHECK_EQ(last_view(fn).isr.n, 1);	/* the gone one left the ISR */

	TEST("a deletion reaches a node that was down");
	CHECK_EQ(tfs_cluster_delete_topic(fn->c, "logs"), 0);
	CHECK(!has_topic(fn, "logs"));
	CHECK_EQ(node_start(ln, ln->id, NULL), 0);
	CHECK(!has_topic(ln, "logs"));
	node_stop(&a);
	node_stop(&b);
}

static void test_refusals(void)
{
	struct node n = { 0 };
	char dir[128];

	TEST("a data directory holding topics from outside is refused");
	snprintf(dir, sizeof(dir), "%s/node9", root);
	struct tfs_conf c;
	struct tfs_store *s;
	tfs_conf_init(&c);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	CHECK_EQ(tfs_store_create_topic(
			 s, &(struct tfs_topic_spec){ .name = "mine" }, NULL),
		 0);
	tfs_store_close(s);
	tfs_conf_release(&c);
	CHECK_EQ(node_start(&n, 9, NULL), -EEXIST);
	tfs_conf_release(&n.conf);

	TEST("etcd unreachable at start: refused, nothing left running");
	struct node u = { 0 };
	char saved[64];
	snprintf(saved, sizeof(saved), "%s", etcd.url);
	snprintf(etcd.url, sizeof(etcd.url), "http://127.0.0.1:%u",
		 te_free_port());
	CHECK_EQ(node_start(&u, 8, NULL), TFS_EUNAVAIL);
	tfs_conf_release(&u.conf);
	snprintf(etcd.url, sizeof(etcd.url), "%s", saved);
}

int main(void)
{
	if (tl_setup("cluster", root, sizeof(root)))
		return 1;
	if (te_start(&etcd)) {
		CHECKF(false, "cannot start etcd (contrib/install-deps.sh "
			      "installs etcd-server)");
		return check_done();
	}
	test_two_nodes();
	test_refusals();
	te_cleanup(&etcd);
	tl_cleanup(root);
	return check_done();
}
