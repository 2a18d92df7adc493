/*
 * meta.c - the cluster's records in etcd, their JSON, the replica
 * assignment and the transactions that change them (meta.h).
 *
 * The JSON is written with jansson in a fixed key order; 64-bit numbers
 * are written as numbers (they stay far below 2^53); parsers accept only
 * what the writers produce, with every field checked.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "meta.h"
#include "banned.h"

bool tfs_idset_has(const struct tfs_idset *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->id[i] == id)
			return true;
	return false;
}

int tfs_idset_format(const struct tfs_idset *s, char *buf, size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (uint32_t i = 0; i < s->n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%" PRIu32,
				 i ? "," : "", s->id[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	return (int)TFS_MIN(used, len ? len - 1 : 0);
}

void tfs_topic_rec_release(struct tfs_topic_rec *t)
{
	free(t->replicas);
	for (size_t i = 0; t->config && t->config[i]; i++)
		free(t->config[i]);
	free(t->config);
	t->replicas = NULL;
	t->config = NULL;
	t->npart = 0;
	t->nconfig = 0;
}

/* --- keys --------------------------------------------------------------- */

void tfs_meta_prefix(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "/topicfs/%s/", name);
}

void tfs_meta_node_key(const char *prefix, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%snodes/%" PRIu32, prefix, id);
}

void tfs_meta_topic_key(const char *prefix, const char *name, char *buf,
			size_t len)
{
	snprintf(buf, len, "%stopics/%s", prefix, name);
}

void tfs_meta_state_key(const char *prefix, uint32_t topic, uint32_t part,
			char *buf, size_t len)
{
	snprintf(buf, len, "%sstate/%" PRIu32 "/%" PRIu32, prefix, topic, part);
}

void tfs_meta_leader_key(const char *prefix, uint32_t topic, uint32_t part,
			 char *buf, size_t len)
{
	snprintf(buf, len, "%sleader/%" PRIu32 "/%" PRIu32, prefix, topic,
		 part);
}

/* A canonical decimal uint32 ("0", "12", not "012", "+1", " 1"). */
static int parse_u32(const char *s, const char **end, uint32_t *out)
{
	uint64_t v = 0;
	const char *c = s;

	if (*c < '0' || *c > '9' || (c[0] == '0' && c[1] >= '0' && c[1] <= '9'))
		return -EINVAL;
	for (; *c >= '0' && *c <= '9'; c++) {
		v = v * 10 + (uint64_t)(*c - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	*out = (uint32_t)v;
	*end = c;
	return 0;
}

int tfs_meta_parse_part_key(const char *rest, uint32_t *topic, uint32_t *part)
{
	const char *c;

	if (parse_u32(rest, &c, topic) || *c != '/' ||
	    parse_u32(c + 1, &c, part) || *c)
		return -EINVAL;
	return 0;
}

/* --- records -------------------------------------------------------------- */

static char *dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(o);
	if (!s)
		abort();	/* out of memory */
	return s;
}

static json_t *idset_json(const struct tfs_idset *s)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < s->n; i++)
		json_array_append_new(a, json_integer(s->id[i]));
	return a;
}

/* A list of distinct node ids (1..2^31-1), at most TFS_MAX_RF. */
static int idset_parse(json_t *a, struct tfs_idset *s)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) > TFS_MAX_RF)
		return TFS_EPROTO;
	s->n = 0;
	json_array_foreach(a, i, v) {
		json_int_t id = json_is_integer(v) ? json_integer_value(v) : 0;

		if (id < 1 || id > INT32_MAX || tfs_idset_has(s, (uint32_t)id))
			return TFS_EPROTO;
		s->id[s->n++] = (uint32_t)id;
	}
	return 0;
}

char *tfs_node_rec_json(const struct tfs_node_rec *n)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(n->id));
	json_object_set_new(o, "address", json_string(n->address));
	json_object_set_new(o, "host", json_string(n->host));
	json_object_set_new(o, "pid", json_integer(n->pid));
	json_object_set_new(o, "started", json_integer(n->started));
	return dump(o);
}

int tfs_node_rec_parse(const char *json, struct tfs_node_rec *n)
{
	json_t *o = json_loads(json, 0, NULL);
	json_int_t id, pid, started;
	const char *address, *host;
	int rc = TFS_EPROTO;

	memset(n, 0, sizeof(*n));
	if (o && !json_unpack(o, "{s:I, s:s, s:s, s:I, s:I}", "id", &id,
			      "address", &address, "host", &host, "pid", &pid,
			      "started", &started) &&
	    id >= 1 && id <= INT32_MAX && strlen(address) < sizeof(n->address) &&
	    strlen(host) < sizeof(n->host)) {
		n->id = (uint32_t)id;
		snprintf(n->address, sizeof(n->address), "%s", address);
		snprintf(n->host, sizeof(n->host), "%s", host);
		n->pid = pid;
		n->started = started;
		rc = 0;
	}
	json_decref(o);
	return rc;
}

char *tfs_topic_rec_json(const struct tfs_topic_rec *t)
{
	json_t *o = json_object(), *reps = json_array(), *cfg = json_object();

	for (uint32_t p = 0; p < t->npart; p++)
		json_array_append_new(reps, idset_json(&t->replicas[p]));
	for (size_t i = 0; t->config && t->config[2 * i]; i++)
		json_object_set_new(cfg, t->config[2 * i],
				    json_string(t->config[2 * i + 1]));
	json_object_set_new(o, "id", json_integer(t->id));
	json_object_set_new(o, "name", json_string(t->name));
	json_object_set_new(o, "created", json_integer(t->created));
	json_object_set_new(o, "replicas", reps);
	json_object_set_new(o, "config", cfg);
	return dump(o);
}

/* The "config" object as key, value pairs then NULL. */
static int config_parse(json_t *cfg, struct tfs_topic_rec *t)
{
	const char *key;
	json_t *v;
	size_t i = 0;

	if (!json_is_object(cfg))
		return TFS_EPROTO;
	t->nconfig = json_object_size(cfg);
	t->config = tfs_calloc(2 * t->nconfig + 1, sizeof(*t->config));
	json_object_foreach(cfg, key, v) {
		if (!json_is_string(v))
			return TFS_EPROTO;
		t->config[i++] = tfs_strdup(key);
		t->config[i++] = tfs_strdup(json_string_value(v));
	}
	return 0;
}

int tfs_topic_rec_parse(const char *json, struct tfs_topic_rec *t)
{
	json_t *o = json_loads(json, 0, NULL), *reps = NULL, *cfg = NULL;
	json_int_t id = 0, created = 0;
	const char *name = NULL;
	int rc = TFS_EPROTO;

	memset(t, 0, sizeof(*t));
	if (!o || json_unpack(o, "{s:I, s:s, s:I, s:o, s:o}", "id", &id,
			      "name", &name, "created", &created, "replicas",
			      &reps, "config", &cfg) ||
	    id < 1 || id > UINT32_MAX || strlen(name) >= sizeof(t->name) ||
	    !json_is_array(reps) || json_array_size(reps) < 1 ||
	    json_array_size(reps) > (1u << 20))
		goto out;
	t->id = (uint32_t)id;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->created = created;
	t->npart = (uint32_t)json_array_size(reps);
	t->replicas = tfs_calloc(t->npart, sizeof(*t->replicas));
	for (uint32_t p = 0; p < t->npart; p++)
		if (idset_parse(json_array_get(reps, p), &t->replicas[p]) ||
		    t->replicas[p].n == 0)
			goto out;
	rc = config_parse(cfg, t);
out:
	if (rc)
		tfs_topic_rec_release(t);
	json_decref(o);
	return rc;
}

char *tfs_pstate_json(const struct tfs_pstate *s)
{
	json_t *o = json_object();

	json_object_set_new(o, "leader", json_integer(s->leader));
	json_object_set_new(o, "epoch", json_integer(s->epoch));
	json_object_set_new(o, "isr", idset_json(&s->isr));
	return dump(o);
}

int tfs_pstate_parse(const char *json, struct tfs_pstate *s)
{
	json_t *o = json_loads(json, 0, NULL), *isr = NULL;
	json_int_t leader, epoch;
	int rc = TFS_EPROTO;

	memset(s, 0, sizeof(*s));
	if (o && !json_unpack(o, "{s:I, s:I, s:o}", "leader", &leader, "epoch",
			      &epoch, "isr", &isr) &&
	    leader >= 0 && leader <= INT32_MAX && epoch >= 0 &&
	    epoch <= UINT32_MAX && !idset_parse(isr, &s->isr)) {
		s->leader = (uint32_t)leader;
		s->epoch = (uint32_t)epoch;
		rc = 0;
	}
	json_decref(o);
	return rc;
}

/* --- assignment ------------------------------------------------------------- */

int tfs_meta_assign(uint32_t topic, const uint32_t *nodes, uint32_t n,
		    uint32_t rf, uint32_t from, uint32_t to,
		    struct tfs_idset *out)
{
	if (rf == 0 || rf > n || rf > TFS_MAX_RF)
		return -EINVAL;
	uint32_t start = topic % n;
	uint32_t shift = (topic / n) % n;

	for (uint32_t p = from; p < to; p++) {
		/* Kafka's replicaIndex: every n partitions the second
		 * replica moves one further, so followers spread too. */
		uint32_t s = shift + p / n;
		uint32_t first = (p + start) % n;
		struct tfs_idset *r = &out[p];

		r->n = 0;
		r->id[r->n++] = nodes[first];
		for (uint32_t j = 0; j + 1 < rf; j++) {
			uint32_t off = 1 + (s + j) % (n - 1);

			r->id[r->n++] = nodes[(first + off) % n];
		}
	}
	return 0;
}

/* --- transactions ---------------------------------------------------------- */

static void put_state(struct tfs_txn *t, const char *prefix, uint32_t topic,
		      uint32_t part, const struct tfs_pstate *s)
{
	char key[512], *json = tfs_pstate_json(s);

	tfs_meta_state_key(prefix, topic, part, key, sizeof(key));
	tfs_txn_put(t, true, key, json, 0);
	free(json);
}

/* A state key per partition [from, to): no leader, ISR = replicas. */
static void put_new_states(struct tfs_txn *t, const char *prefix,
			   const struct tfs_topic_rec *rec, uint32_t from)
{
	for (uint32_t p = from; p < rec->npart; p++) {
		struct tfs_pstate s = { .leader = 0, .epoch = 0,
					.isr = rec->replicas[p] };

		put_state(t, prefix, rec->id, p, &s);
	}
}

struct tfs_txn *tfs_meta_txn_create_topic(const char *prefix,
					  const struct tfs_topic_rec *rec)
{
	struct tfs_txn *t = tfs_txn_new();
	char key[512], *json = tfs_topic_rec_json(rec);

	tfs_meta_topic_key(prefix, rec->name, key, sizeof(key));
	tfs_txn_cmp(t, key, TFS_CMP_CREATE, TFS_CMP_EQ, 0, NULL);
	tfs_txn_put(t, true, key, json, 0);
	tfs_txn_get(t, false, key, false);
	put_new_states(t, prefix, rec, 0);
	free(json);
	return t;
}

struct tfs_txn *tfs_meta_txn_delete_topic(const char *prefix,
					  const struct tfs_topic_rec *rec,
					  int64_t rev)
{
	struct tfs_txn *t = tfs_txn_new();
	char key[512];

	tfs_meta_topic_key(prefix, rec->name, key, sizeof(key));
	tfs_txn_cmp(t, key, TFS_CMP_MOD, TFS_CMP_EQ, rev, NULL);
	tfs_txn_del(t, true, key, false);
	snprintf(key, sizeof(key), "%sstate/%" PRIu32 "/", prefix, rec->id);
	tfs_txn_del(t, true, key, true);
	snprintf(key, sizeof(key), "%sleader/%" PRIu32 "/", prefix, rec->id);
	tfs_txn_del(t, true, key, true);
	return t;
}

struct tfs_txn *tfs_meta_txn_update_topic(const char *prefix,
					  const struct tfs_topic_rec *rec,
					  uint32_t old_npart, int64_t rev)
{
	struct tfs_txn *t = tfs_txn_new();
	char key[512], *json = tfs_topic_rec_json(rec);

	tfs_meta_topic_key(prefix, rec->name, key, sizeof(key));
	tfs_txn_cmp(t, key, TFS_CMP_MOD, TFS_CMP_EQ, rev, NULL);
	tfs_txn_put(t, true, key, json, 0);
	tfs_txn_get(t, false, key, false);
	put_new_states(t, prefix, rec, old_npart);
	free(json);
	return t;
}

struct tfs_txn *tfs_meta_txn_elect(const char *prefix, uint32_t topic,
				   uint32_t part, int64_t rev, uint32_t me,
				   int64_t lease,
				   const struct tfs_pstate *next)
{
	struct tfs_txn *t = tfs_txn_new();
	char skey[512], lkey[512], id[16];

	tfs_meta_state_key(prefix, topic, part, skey, sizeof(skey));
	tfs_meta_leader_key(prefix, topic, part, lkey, sizeof(lkey));
	snprintf(id, sizeof(id), "%" PRIu32, me);
	tfs_txn_cmp(t, skey, TFS_CMP_MOD, TFS_CMP_EQ, rev, NULL);
	tfs_txn_cmp(t, lkey, TFS_CMP_CREATE, TFS_CMP_EQ, 0, NULL);
	tfs_txn_put(t, true, lkey, id, lease);
	put_state(t, prefix, topic, part, next);
	tfs_txn_get(t, false, skey, false);
	tfs_txn_get(t, false, lkey, false);
	return t;
}

struct tfs_txn *tfs_meta_txn_set_isr(const char *prefix, uint32_t topic,
				     uint32_t part, int64_t rev,
				     int64_t leader_rev,
				     const struct tfs_pstate *next)
{
	struct tfs_txn *t = tfs_txn_new();
	char skey[512], lkey[512];

	tfs_meta_state_key(prefix, topic, part, skey, sizeof(skey));
	tfs_meta_leader_key(prefix, topic, part, lkey, sizeof(lkey));
	tfs_txn_cmp(t, skey, TFS_CMP_MOD, TFS_CMP_EQ, rev, NULL);
	tfs_txn_cmp(t, lkey, TFS_CMP_CREATE, TFS_CMP_EQ, leader_rev, NULL);
	put_state(t, prefix, topic, part, next);
	tfs_txn_get(t, false, skey, false);
	return t;
}

int tfs_meta_elect_state(const struct tfs_pstate *cur, uint32_t me,
			 const struct tfs_idset *alive, bool unclean,
			 struct tfs_pstate *next)
{
	bool any_alive = false;

	next->leader = me;
	next->epoch = cur->epoch + 1;
	next->isr.n = 0;
	for (uint32_t i = 0; i < cur->isr.n; i++) {
		uint32_t id = cur->isr.id[i];

		if (id == me || tfs_idset_has(alive, id)) {
			next->isr.id[next->isr.n++] = id;
			any_alive = true;
		}
	}
	if (tfs_idset_has(&cur->isr, me))
		return 0;
	if (!unclean || any_alive)
		return TFS_ENOTLEADER;
	/* Unclean: the ISR is gone; the new one is this node alone. */
	next->isr.n = 0;
	next->isr.id[next->isr.n++] = me;
	return 0;
}
