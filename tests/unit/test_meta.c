/*
 * Unit tests for the cluster's metadata (meta.h): keys, records and their
 * JSON, the replica assignment, who may be elected and with which ISR,
 * and the transactions' conditions.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "meta.h"

static void test_keys(void)
{
	char p[64], k[256];
	uint32_t t, part;

	TEST("keys live under /topicfs/<cluster>/");
	tfs_meta_prefix("prod", p, sizeof(p));
	CHECK(!strcmp(p, "/topicfs/prod/"));
	tfs_meta_node_key(p, 3, k, sizeof(k));
	CHECK(!strcmp(k, "/topicfs/prod/nodes/3"));
	tfs_meta_topic_key(p, "tweets", k, sizeof(k));
	CHECK(!strcmp(k, "/topicfs/prod/topics/tweets"));
	tfs_meta_state_key(p, 7, 12, k, sizeof(k));
	CHECK(!strcmp(k, "/topicfs/prod/state/7/12"));
	tfs_meta_leader_key(p, 7, 12, k, sizeof(k));
	CHECK(!strcmp(k, "/topicfs/prod/leader/7/12"));

	TEST("partition keys parse back; anything else is refused");
	CHECK_EQ(tfs_meta_parse_part_key("7/12", &t, &part), 0);
	CHECK(t == 7 && part == 12);
	CHECK_EQ(tfs_meta_parse_part_key("0/0", &t, &part), 0);
	const char *bad[] = { "", "7", "7/", "/7", "07/1", "7/01", "7/1/2",
			      "a/1", "7/1x", "4294967296/0", "-1/0", "+1/0" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(tfs_meta_parse_part_key(bad[i], &t, &part) == -EINVAL,
		       "'%s'", bad[i]);
}

static void test_records(void)
{
	struct tfs_node_rec n = { .id = 2, .pid = 4242,
				  .started = 1700000000000 },
			    n2;
	char *j;

	TEST("node, topic and state records round-trip through JSON");
	snprintf(n.address, sizeof(n.address), "http://10.0.0.2:7092");
	snprintf(n.host, sizeof(n.host), "node-b");
	j = tfs_node_rec_json(&n);
	CHECK_EQ(tfs_node_rec_parse(j, &n2), 0);
	CHECK(n2.id == 2 && n2.pid == 4242 && n2.started == n.started &&
	      !strcmp(n2.address, n.address) && !strcmp(n2.host, "node-b"));
	free(j);

	char *cfg[] = { "retention.ms", "86400000", "acks", "1", NULL };
	struct tfs_idset reps[2] = { { 3, { 1, 2, 3 } }, { 3, { 2, 3, 1 } } };
	struct tfs_topic_rec t = { .id = 9, .created = 1700000000001,
				   .npart = 2, .replicas = reps,
				   .config = cfg, .nconfig = 2 },
			     t2;
	snprintf(t.name, sizeof(t.name), "tweets");
	j = tfs_topic_rec_json(&t);
	CHECK_EQ(tfs_topic_rec_parse(j, &t2), 0);
	CHECK(t2.id == 9 && !strcmp(t2.name, "tweets") && t2.npart == 2 &&
	      t2.created == t.created && t2.nconfig == 2);
	CHECK(t2.replicas[1].n == 3 && t2.replicas[1].id[0] == 2);
	CHECK(!strcmp(t2.config[0], "retention.ms") &&
	      !strcmp(t2.config[3], "1") && t2.config[4] == NULL);
	CHECK(!t2.has_perms);	/* none written, none read */
	tfs_topic_rec_release(&t2);
	free(j);

	TEST("a topic's owners and modes round-trip, overrides in order");
	struct tfs_perm_override over[1] = { { 1, { 7, 8, 0600 } } };
	t.has_perms = true;
	t.perms = (struct tfs_topic_perms){ .dir = { 1000, 100, 03775 },
					    .parts = { 1000, 100, 0664 },
					    .overrides = over,
					    .noverrides = 1 };
	j = tfs_topic_rec_json(&t);
	CHECK(strstr(j, "\"mode\":\"3775\"") != NULL);
	CHECK_EQ(tfs_topic_rec_parse(j, &t2), 0);
	CHECK(t2.has_perms && t2.perms.dir.uid == 1000 &&
	      t2.perms.dir.mode == 03775 && t2.perms.parts.mode == 0664 &&
	      t2.perms.noverrides == 1);
	CHECK(t2.perms.noverrides == 1 &&
	      t2.perms.overrides[0].partition == 1 &&
	      t2.perms.overrides[0].perm.uid == 7 &&
	      t2.perms.overrides[0].perm.mode == 0600);
	tfs_topic_rec_release(&t2);
	CHECK(t2.perms.overrides == NULL && !t2.has_perms);
	free(j);

	struct tfs_pstate s = { .leader = 3, .epoch = 17,
				.isr = { 2, { 3, 1 } } },
			  s2;
	j = tfs_pstate_json(&s);
	CHECK_EQ(tfs_pstate_parse(j, &s2), 0);
	CHECK(s2.leader == 3 && s2.epoch == 17 && s2.isr.n == 2 &&
	      s2.isr.id[0] == 3 && s2.isr.id[1] == 1);
	free(j);
	char buf[32];
	tfs_idset_format(&s.isr, buf, sizeof(buf));
	CHECK(!strcmp(buf, "3,1"));

	TEST("malformed records are refused");
	const char *bad_states[] = {
		"", "{", "[]", "{\"leader\":1,\"epoch\":2}",
		"{\"leader\":-1,\"epoch\":2,\"isr\":[]}",
		"{\"leader\":1,\"epoch\":2,\"isr\":[1,1]}",
		"{\"leader\":1,\"epoch\":2,\"isr\":[0]}",
		"{\"leader\":1,\"epoch\":\"2\",\"isr\":[1]}",
		"{\"leader\":1,\"epoch\":4294967296,\"isr\":[1]}",
	};
	for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++)
		CHECKF(tfs_pstate_parse(bad_states[i], &s2) == TFS_EPROTO,
		       "'%s'", bad_states[i]);
	const char *bad_topics[] = {
		"{\"id\":1,\"name\":\"t\",\"created\":1,\"replicas\":[],"
		"\"config\":{}}",
		"{\"id\":0,\"name\":\"t\",\"created\":1,\"replicas\":[[1]],"
		"\"config\":{}}",
		"{\"id\":1,\"name\":\"t\",\"created\":1,\"replicas\":[[]],"
		"\"config\":{}}",
		"{\"id\":1,\"name\":\"t\",\"created\":1,\"replicas\":[[1]],"
		"\"config\":{\"a\":1}}",
		"{\"id\":1,\"name\":\"t\",\"created\":1,\"replicas\":[[1]]}",
#define PT(perm) "{\"id\":1,\"name\":\"t\",\"created\":1,"      \
		 "\"replicas\":[[1],[1]],\"config\":{},\"perm\":" perm "}"
#define O(u, g, m) "{\"uid\":" #u ",\"gid\":" #g ",\"mode\":\"" m "\"}"
		PT("{}"),
		PT("{\"dir\":" O(1, 1, "0755") ",\"parts\":" O(1, 1, "0644") "}"),
		PT("{\"dir\":" O(1, 1, "4755") ",\"parts\":" O(1, 1, "0644")
		   ",\"overrides\":[]}"),
		PT("{\"dir\":" O(1, 1, "0755") ",\"parts\":" O(1, 1, "1644")
		   ",\"overrides\":[]}"),
		PT("{\"dir\":" O(1, 1, "0755") ",\"parts\":" O(1, 1, "0x1")
		   ",\"overrides\":[]}"),
		PT("{\"dir\":" O(-1, 1, "0755") ",\"parts\":" O(1, 1, "0644")
		   ",\"overrides\":[]}"),
		PT("{\"dir\":" O(4294967295, 1, "0755") ",\"parts\":"
		   O(1, 1, "0644") ",\"overrides\":[]}"),
		PT("{\"dir\":" O(1, 1, "0755") ",\"parts\":" O(1, 1, "0644")
		   ",\"overrides\":[{\"partition\":2,\"uid\":1,\"gid\":1,"
		   "\"mode\":\"0600\"}]}"),
		PT("{\"dir\":" O(1, 1, "0755") ",\"parts\":" O(1, 1, "0644")
		   ",\"overrides\":[{\"partition\":1,\"uid\":1,\"gid\":1,"
		   "\"mode\":\"0600\"},{\"partition\":1,\"uid\":1,"
		   "\"gid\":1,\"mode\":\"0600\"}]}"),
#undef PT
#undef O
	};
	for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++)
		CHECKF(tfs_topic_rec_parse(bad_topics[i], &t2) == TFS_EPROTO,
		       "'%s'", bad_topics[i]);
	CHECK_EQ(tfs_node_rec_parse("{\"id\":1}", &n2), TFS_EPROTO);
}

static void test_assign(void)
{
	uint32_t nodes[] = { 1, 2, 3, 4, 5 };
	struct tfs_idset out[60];
	int leaders[6] = { 0 }, seconds[6] = { 0 };

	TEST("assignment: distinct replicas, leaders and followers spread");
	CHECK_EQ(tfs_meta_assign(7, nodes, 5, 3, 0, 60, out), 0);
	for (int p = 0; p < 60; p++) {
		CHECK_EQ(out[p].n, 3);
		CHECK(out[p].id[0] != out[p].id[1] &&
		      out[p].id[0] != out[p].id[2] &&
		      out[p].id[1] != out[p].id[2]);
		leaders[out[p].id[0]]++;
		seconds[out[p].id[1]]++;
	}
	for (int i = 1; i <= 5; i++) {
		CHECK_EQ(leaders[i], 12);
		CHECKF(seconds[i] >= 8 && seconds[i] <= 16, "node %d: %d", i,
		       seconds[i]);
	}

	TEST("assignment: topics start on different nodes; deterministic");
	struct tfs_idset a[1] = { 0 }, b[1] = { 0 }, c[1] = { 0 };
	CHECK_EQ(tfs_meta_assign(1, nodes, 5, 2, 0, 1, a), 0);
	CHECK_EQ(tfs_meta_assign(2, nodes, 5, 2, 0, 1, b), 0);
	CHECK(a[0].id[0] != b[0].id[0]);
	CHECK_EQ(tfs_meta_assign(1, nodes, 5, 2, 0, 1, c), 0);
	CHECK(!memcmp(a, c, sizeof(a)));

	TEST("assignment: growing keeps the old partitions' replicas");
	struct tfs_idset g[8];
	CHECK_EQ(tfs_meta_assign(7, nodes, 5, 3, 0, 4, g), 0);
	struct tfs_idset keep[4];
	memcpy(keep, g, sizeof(keep));
	CHECK_EQ(tfs_meta_assign(7, nodes, 5, 3, 4, 8, g), 0);
	CHECK(!memcmp(keep, g, sizeof(keep)));

	TEST("assignment: a factor above the nodes, or 0, is refused");
	CHECK_EQ(tfs_meta_assign(7, nodes, 2, 3, 0, 1, out), -EINVAL);
	CHECK_EQ(tfs_meta_assign(7, nodes, 2, 0, 0, 1, out), -EINVAL);
	CHECK_EQ(tfs_meta_assign(7, nodes, 1, 1, 0, 3, out), 0);
	CHECK(out[2].n == 1 && out[2].id[0] == 1);
}

static void test_elect(void)
{
	struct tfs_pstate cur = { .leader = 1, .epoch = 4,
				  .isr = { 3, { 1, 2, 3 } } },
			  next;
	struct tfs_idset alive = { 2, { 2, 3 } };

	TEST("election: an ISR member leads at the next epoch; dead ones go");
	CHECK_EQ(tfs_meta_elect_state(&cur, 2, &alive, false, &next), 0);
	CHECK(next.leader == 2 && next.epoch == 5 && next.isr.n == 2 &&
	      tfs_idset_has(&next.isr, 2) && tfs_idset_has(&next.isr, 3) &&
	      !tfs_idset_has(&next.isr, 1));

	TEST("election: outside the ISR, no, unless unclean and none alive");
	cur.isr = (struct tfs_idset){ 1, { 1 } };
	CHECK_EQ(tfs_meta_elect_state(&cur, 2, &alive, false, &next),
		 TFS_ENOTLEADER);
	CHECK_EQ(tfs_meta_elect_state(&cur, 2, &alive, true, &next), 0);
	CHECK(next.leader == 2 && next.isr.n == 1 && next.isr.id[0] == 2);
	struct tfs_idset all = { 3, { 1, 2, 3 } };
	CHECK_EQ(tfs_meta_elect_state(&cur, 2, &all, true, &next),
		 TFS_ENOTLEADER);
}

/* The compares and operations of a txn, as etcd's gateway gets them. */
static json_t *txn_of(struct tfs_txn *t)
{
	char *s = tfs_txn_json(t);
	json_t *o = json_loads(s, 0, NULL);

	free(s);
	tfs_txn_free(t);
	return o;
}

static void test_txns(void)
{
	struct tfs_pstate next = { .leader = 2, .epoch = 5,
				   .isr = { 2, { 2, 3 } } };
	json_t *o;

	TEST("an election compares the state's revision and the leader key's "
	     "absence, and puts the leader key under the lease");
	o = txn_of(tfs_meta_txn_elect("/topicfs/c/", 7, 1, 1234, 2, 99,
				      &next));
	CHECK(o != NULL);
	json_t *cmp = json_object_get(o, "compare");
	CHECK_EQ(json_array_size(cmp), 2);
	char *dumped = json_dumps(o, JSON_COMPACT);
	CHECK(strstr(dumped, "\"MOD\"") && strstr(dumped, "\"CREATE\""));
	CHECK(strstr(dumped, "\"1234\""));
	CHECK(strstr(dumped, "\"lease\""));
	CHECK_EQ(json_array_size(json_object_get(o, "success")), 2);
	CHECK_EQ(json_array_size(json_object_get(o, "failure")), 2);
	free(dumped);
	json_decref(o);

	TEST("an ISR change also checks the leader key is still its own");
	o = txn_of(tfs_meta_txn_set_isr("/topicfs/c/", 7, 1, 1300, 1250,
					&next));
	dumped = json_dumps(o, JSON_COMPACT);
	CHECK_EQ(json_array_size(json_object_get(o, "compare")), 2);
	CHECK(strstr(dumped, "\"1300\"") && strstr(dumped, "\"1250\""));
	free(dumped);
	json_decref(o);

	TEST("creating a topic puts it only if absent, with a state each");
	struct tfs_idset reps[3] = { { 2, { 1, 2 } }, { 2, { 2, 3 } },
				     { 2, { 3, 1 } } };
	struct tfs_topic_rec t = { .id = 4, .npart = 3, .replicas = reps };
	snprintf(t.name, sizeof(t.name), "logs");
	o = txn_of(tfs_meta_txn_create_topic("/topicfs/c/", &t));
	CHECK_EQ(json_array_size(json_object_get(o, "compare")), 1);
	CHECK_EQ(json_array_size(json_object_get(o, "success")), 4);
	json_decref(o);

	TEST("growing a topic puts the new partitions' states only");
	o = txn_of(tfs_meta_txn_update_topic("/topicfs/c/", &t, 2, 77));
	CHECK_EQ(json_array_size(json_object_get(o, "success")), 2);
	json_decref(o);

	TEST("deleting a topic removes its key, states and leaders");
	o = txn_of(tfs_meta_txn_delete_topic("/topicfs/c/", &t, 80));
	CHECK_EQ(json_array_size(json_object_get(o, "success")), 3);
	json_decref(o);
}

int main(void)
{
	test_keys();
	test_records();
	test_assign();
	test_elect();
	test_txns();
	return check_done();
}
