/*
 * cluster_ns.c - the namespace, cluster-wide (cluster.h): topics made,
 * deleted, set and grown, and their owners changed, each by a
 * compare-and-swap transaction on the topic's record, then applied to
 * this node's store at once (the others apply it from their snapshot).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "err.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* Gives out the next topic id (a CAS loop on topic-seq). */
static int next_topic_id(struct tfs_cluster *c, uint32_t *id)
{
	char key[512];

	snprintf(key, sizeof(key), "%stopic-seq", c->prefix);
	for (int tries = 0; tries < 20; tries++) {
		struct tfs_kvs kvs;
		struct tfs_txn_result res;
		uint64_t last = 0;
		int64_t rev = 0;
		char val[32];
		int rc = cluster_etcd_seen(c, tfs_etcd_get(c->etcd, key, &kvs));

		if (rc)
			return rc;
		if (kvs.n == 1) {
			last = strtoull(kvs.v[0].value, NULL, 10);
			rev = kvs.v[0].mod_rev;
		}
		tfs_kvs_release(&kvs);
		if (last >= UINT32_MAX)
			return -ENOSPC;
		snprintf(val, sizeof(val), "%" PRIu64, last + 1);
		struct tfs_txn *t = tfs_txn_new();
		tfs_txn_cmp(t, key, TFS_CMP_MOD, TFS_CMP_EQ, rev, NULL);
		tfs_txn_put(t, true, key, val, 0);
		rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
		tfs_txn_free(t);
		if (rc)
			return rc;
		bool ok = res.succeeded;
		tfs_txn_result_release(&res);
		if (ok) {
			*id = (uint32_t)(last + 1);
			return 0;
		}
	}
	return TFS_EUNAVAIL;
}

/* Reads topic name: its record and mod revision.  -ENOENT if absent. */
static int read_topic(struct tfs_cluster *c, const char *name,
		      struct tfs_topic_rec *rec, int64_t *rev)
{
	struct tfs_kvs kvs;
	char key[512];
	int rc;

	tfs_meta_topic_key(c->prefix, name, key, sizeof(key));
	rc = cluster_etcd_seen(c, tfs_etcd_get(c->etcd, key, &kvs));
	if (rc)
		return rc;
	rc = kvs.n == 1 ? tfs_topic_rec_parse(kvs.v[0].value, rec) : -ENOENT;
	if (rc == 0)
		*rev = kvs.v[0].mod_rev;
	tfs_kvs_release(&kvs);
	return rc;
}

/* The ids of the alive nodes now (a fresh read), sorted. */
static int alive_nodes(struct tfs_cluster *c, uint32_t *ids, uint32_t *n)
{
	struct tfs_kvs kvs;
	char prefix[300];
	int rc;

	snprintf(prefix, sizeof(prefix), "%snodes/", c->prefix);
	rc = cluster_etcd_seen(c, tfs_etcd_range(c->etcd, prefix, &kvs));
	if (rc)
		return rc;
	*n = 0;
	for (size_t i = 0; i < kvs.n && *n < MAX_NODES; i++) {
		struct tfs_node_rec r;

		if (!tfs_node_rec_parse(kvs.v[i].value, &r))
			ids[(*n)++] = r.id;
	}
	tfs_kvs_release(&kvs);
	for (uint32_t i = 1; i < *n; i++)	/* few: insertion sort */
		for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint32_t x = ids[j];

			ids[j] = ids[j - 1];
			ids[j - 1] = x;
		}
	return 0;
}

int tfs_cluster_create_topic(struct tfs_cluster *c, const char *name,
			     const struct tfs_topic_perms *perms,
			     struct tfs_topic **out)
{
	uint32_t ids[MAX_NODES], n, rf, np;
	struct tfs_topic_rec rec = { 0 };
	struct tfs_txn_result res;
	int rc;

	if (!tfs_topic_name_valid(name))
		return -EINVAL;
	rc = alive_nodes(c, ids, &n);
	if (rc)
		return rc;
	rf = (uint32_t)tfs_conf_get(c->conf, TFS_CONF_DEFAULT_REPLICATION_FACTOR);
	np = (uint32_t)tfs_conf_get(c->conf, TFS_CONF_NUM_PARTITIONS);
	if (rf > n) {
		tfs_info("mkdir %s: replication factor %" PRIu32 " is above "
			 "the %" PRIu32 " live node(s)",
			 name, rf, n);
		return -EINVAL;
	}
	rc = next_topic_id(c, &rec.id);
	if (rc)
		return rc;
	snprintf(rec.name, sizeof(rec.name), "%s", name);
	rec.created = tfs_now_ms();
	rec.npart = np;
	rec.replicas = tfs_calloc(np, sizeof(*rec.replicas));
	tfs_meta_assign(rec.id, ids, n, rf, 0, np, rec.replicas);
	rec.config = tfs_calloc(1, sizeof(*rec.config));
	if (perms) {
		rec.has_perms = true;
		rec.perms = *perms;
		rec.perms.overrides = NULL;	/* a new topic has none */
		rec.perms.noverrides = 0;
	}
	struct tfs_txn *t = tfs_meta_txn_create_topic(c->prefix, &rec);
	rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
	tfs_txn_free(t);
	if (rc == 0) {
		bool ok = res.succeeded;

		tfs_txn_result_release(&res);
		rc = ok ? 0 : -EEXIST;
	}
	if (rc == 0) {
		tfs_info("cluster: created topic %s (id %" PRIu32 ", %" PRIu32
			 " partition(s), %" PRIu32 " replicas each)",
			 name, rec.id, np, rf);
		rc = cluster_apply_topic(c, &rec, out);
		tfs_cluster_kick(c);
	}
	tfs_topic_rec_release(&rec);
	return rc;
}

int tfs_cluster_delete_topic(struct tfs_cluster *c, const char *name)
{
	struct tfs_topic_rec rec;
	struct tfs_txn_result res;
	int64_t rev;
	int rc;

	if (!tfs_conf_get(c->conf, TFS_CONF_DELETE_TOPIC_ENABLE))
		return -EPERM;
	rc = read_topic(c, name, &rec, &rev);
	if (rc)
		return rc;
	struct tfs_txn *t = tfs_meta_txn_delete_topic(c->prefix, &rec, rev);
	uint32_t id = rec.id;
	rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
	tfs_txn_free(t);
	tfs_topic_rec_release(&rec);
	if (rc)
		return rc;
	bool ok = res.succeeded;
	tfs_txn_result_release(&res);
	if (!ok)
		return -ENOENT;	/* changed meanwhile: deleted, or made anew */
	tfs_info("cluster: deleted topic %s", name);
	cluster_drop_topic(c, name, id);
	tfs_cluster_kick(c);
	return 0;
}

/* Sets key=value in rec's settings (replacing or adding). */
static void rec_set(struct tfs_topic_rec *rec, const char *key,
		    const char *value)
{
	for (size_t i = 0; i < rec->nconfig; i++) {
		if (!strcmp(rec->config[2 * i], key)) {
			free(rec->config[2 * i + 1]);
			rec->config[2 * i + 1] = tfs_strdup(value);
			return;
		}
	}
	rec->config = tfs_realloc(rec->config,
				  (2 * rec->nconfig + 3) * sizeof(*rec->config));
	rec->config[2 * rec->nconfig] = tfs_strdup(key);
	rec->config[2 * rec->nconfig + 1] = tfs_strdup(value);
	rec->nconfig++;
	rec->config[2 * rec->nconfig] = NULL;
}

/* Grows rec to n partitions over the live nodes. */
static int rec_grow(struct tfs_cluster *c, struct tfs_topic_rec *rec,
		    uint32_t n)
{
	uint32_t ids[MAX_NODES], nn, rf = rec->replicas[0].n;
	int rc;

	if (n < rec->npart || n > (1u << 20))
		return -EINVAL;
	rc = alive_nodes(c, ids, &nn);
	if (rc)
		return rc;
	if (rf > nn)
		return -EINVAL;
	rec->replicas = tfs_realloc(rec->replicas, n * sizeof(*rec->replicas));
	tfs_meta_assign(rec->id, ids, nn, rf, rec->npart, n, rec->replicas);
	rec->npart = n;
	return 0;
}

/*
 * Changes topic name's record with edit (which returns 0 or an error that
 * ends the update) by compare-and-swap, reading it again when another node
 * changed it meanwhile, then applies it here.  0, what edit returned,
 * -ENOENT, TFS_EUNAVAIL...
 */
static int update_topic(struct tfs_cluster *c, const char *name,
			int (*edit)(struct tfs_cluster *c,
				    struct tfs_topic_rec *rec, void *arg),
			void *arg)
{
	int rc;

	for (int tries = 0; tries < 10; tries++) {
		struct tfs_topic_rec rec;
		struct tfs_txn_result res;
		int64_t rev;
		uint32_t old;

		rc = read_topic(c, name, &rec, &rev);
		if (rc)
			return rc;
		old = rec.npart;
		rc = edit(c, &rec, arg);
		if (rc == 0) {
			struct tfs_txn *t = tfs_meta_txn_update_topic(
				c->prefix, &rec, old, rev);

			rc = cluster_etcd_seen(c, tfs_etcd_txn(c->etcd, t, &res));
			tfs_txn_free(t);
		}
		if (rc) {
			tfs_topic_rec_release(&rec);
			return rc;
		}
		bool ok = res.succeeded;
		tfs_txn_result_release(&res);
		if (ok) {
			rc = cluster_apply_topic(c, &rec, NULL);
			tfs_topic_rec_release(&rec);
			tfs_cluster_kick(c);
			return rc;
		}
		tfs_topic_rec_release(&rec);	/* raced: read again */
	}
	return TFS_EUNAVAIL;
}

struct setting {
	const char *key, *value;
};

static int edit_setting(struct tfs_cluster *c, struct tfs_topic_rec *rec,
			void *arg)
{
	const struct setting *set = arg;
	char *end;
	unsigned long n;

	if (strcmp(set->key, "partitions")) {
		rec_set(rec, set->key, set->value);
		return 0;
	}
	n = strtoul(set->value, &end, 10);
	return *set->value && !*end && n <= UINT32_MAX
		       ? rec_grow(c, rec, (uint32_t)n)
		       : -EINVAL;
}

int tfs_cluster_set_topic(struct tfs_cluster *c, const char *name,
			  const char *key, const char *value, char *err,
			  size_t errlen)
{
	struct setting set = { key, value };

	if (strcmp(key, "partitions")) {
		int k = tfs_conf_find(key);
		int64_t v;
		int rc;

		if (k < 0 || tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC)
			return -ENOENT;
		rc = tfs_conf_parse(k, value, &v, err, errlen);
		if (rc)
			return rc;
	}
	return update_topic(c, name, edit_setting, &set);
}

struct perm_change {
	int64_t part;			/* -1: the directory */
	const struct tfs_perm *perm;
};

/* Sets one partition's permissions in p: an override unless equal to the
 * partitions' default; overrides stay sorted. */
static void perms_set_part(struct tfs_topic_perms *p, uint32_t part,
			   const struct tfs_perm *perm)
{
	size_t i = 0;
	bool is_default = tfs_perm_eq(perm, &p->parts);

	while (i < p->noverrides && p->overrides[i].partition < part)
		i++;
	if (i < p->noverrides && p->overrides[i].partition == part) {
		if (!is_default) {
			p->overrides[i].perm = *perm;
			return;
		}
		memmove(&p->overrides[i], &p->overrides[i + 1],
			(p->noverrides - i - 1) * sizeof(*p->overrides));
		p->noverrides--;
		return;
	}
	if (is_default)
		return;
	p->overrides = tfs_realloc(p->overrides, (p->noverrides + 1) *
						      sizeof(*p->overrides));
	memmove(&p->overrides[i + 1], &p->overrides[i],
		(p->noverrides - i) * sizeof(*p->overrides));
	p->overrides[i] = (struct tfs_perm_override){ part, *perm };
	p->noverrides++;
}

static int edit_perm(struct tfs_cluster *c, struct tfs_topic_rec *rec,
		     void *arg)
{
	const struct perm_change *ch = arg;

	if (ch->part >= (int64_t)rec->npart)
		return -ENOENT;
	if (!rec->has_perms) {
		/* A record from before owners were carried: start from what
		 * this node has. */
		struct tfs_topic *t = tfs_store_topic_by_id(c->store, rec->id);

		if (!t)
			return -ENOENT;
		tfs_topic_get_perms(t, &rec->perms);
		tfs_topic_unref(t);
		rec->has_perms = true;
	}
	if (ch->part < 0)
		rec->perms.dir = *ch->perm;
	else
		perms_set_part(&rec->perms, (uint32_t)ch->part, ch->perm);
	return 0;
}

int tfs_cluster_set_perm(struct tfs_cluster *c, const char *name,
			 int64_t part, const struct tfs_perm *perm)
{
	struct perm_change ch = { part, perm };

	if (!tfs_perm_valid(perm, part < 0 ? TFS_PERM_DIR_BITS
					   : TFS_PERM_FILE_BITS))
		return -EINVAL;
	return update_topic(c, name, edit_perm, &ch);
}
