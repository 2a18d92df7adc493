/*
 * store_topic.c - topic objects, their topic.json (the format is in
 * store.c's header) and their owners and modes (store.h, PERMISSIONS).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "store_int.h"
#include "sysio.h"
#include "banned.h"

/* --- topic objects and topic.json ---------------------------------------- */

struct tfs_topic *store_topic_alloc(struct tfs_store *s, uint32_t id,
				     const char *name)
{
	struct tfs_topic *t = tfs_calloc(1, sizeof(*t));

	tfs_ref_init(&t->refs, 1);
	t->id = id;
	t->name = tfs_strdup(name);
	t->dirfd = -1;
	t->store = s;
	t->settings = tfs_settings_new(&s->conf);
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

struct tfs_topic *tfs_topic_ref(struct tfs_topic *t)
{
	tfs_ref_get(&t->refs);
	return t;
}

void tfs_topic_unref(struct tfs_topic *t)
{
	if (!t || !tfs_ref_put(&t->refs))
		return;
	for (uint32_t i = 0; i < t->nparts; i++)
		tfs_partition_unref(t->parts[i]);
	free(t->parts);
	free(t->pperm);
	tfs_settings_unref(t->settings);
	tfs_sys_close(t->dirfd);
	pthread_mutex_destroy(&t->lock);
	free(t->name);
	free(t);
}

const char *tfs_topic_name(struct tfs_topic *t)
{
	return t->name;
}

uint32_t tfs_topic_id(struct tfs_topic *t)
{
	return t->id;
}

int64_t tfs_topic_created(struct tfs_topic *t)
{
	return t->created;
}

struct tfs_settings *tfs_topic_settings(struct tfs_topic *t)
{
	return t->settings;
}

void tfs_topic_explicit(struct tfs_topic *t, bool out[TFS_CONF__COUNT])
{
	pthread_mutex_lock(&t->lock);
	memcpy(out, t->explicit, sizeof(t->explicit));
	pthread_mutex_unlock(&t->lock);
}

static json_t *perm_json(const struct tfs_perm *p)
{
	char mode[16];

	snprintf(mode, sizeof(mode), "%04o", p->mode);
	return json_pack("{s:I, s:I, s:s}", "uid", (json_int_t)p->uid, "gid",
			 (json_int_t)p->gid, "mode", mode);
}

/* The "perm" object of topic.json for nparts partitions.  Topic lock. */
static json_t *perms_json(struct tfs_topic *t, uint32_t nparts)
{
	json_t *over = json_object();

	for (uint32_t i = 0; i < nparts; i++) {
		char key[16];

		if (tfs_perm_eq(&t->pperm[i], &t->part_perm))
			continue;
		snprintf(key, sizeof(key), "%" PRIu32, i);
		json_object_set_new(over, key, perm_json(&t->pperm[i]));
	}
	return json_pack("{s:o, s:o, s:o}", "dir", perm_json(&t->dir_perm),
			 "partitions", perm_json(&t->part_perm), "overrides",
			 over);
}

/* Serialises the topic's metadata with nparts partitions.  Topic lock. */
static char *topic_json(struct tfs_topic *t, uint32_t nparts)
{
	json_t *cfg = json_object(), *root;
	char *text;

	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		char buf[64];

		if (!t->explicit[k])
			continue;
		tfs_conf_format(k, tfs_settings_get(t->settings, k), buf,
				sizeof(buf));
		json_object_set_new(cfg, tfs_conf_desc(k)->name,
				    json_string(buf));
	}
	root = json_pack("{s:i, s:I, s:s, s:I, s:I, s:o, s:o}", "version", 1,
			 "id", (json_int_t)t->id, "name", t->name, "partitions",
			 (json_int_t)nparts, "created", (json_int_t)t->created,
			 "config", cfg, "perm", perms_json(t, nparts));
	text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	return text;
}

int store_write_topic_json(struct tfs_topic *t, uint32_t nparts)
{
	char *text = topic_json(t, nparts);
	size_t len = strlen(text);
	int rc;

	text = tfs_realloc(text, len + 2);
	text[len++] = '\n';
	rc = tfs_sys_write_atomic(t->dirfd, TOPIC_META, text, len);
	free(text);
	return rc;
}

/* Applies the "config" object of topic.json; why gets the reason it
 * cannot. */
static int load_topic_config(struct tfs_topic *t, json_t *cfg, char *why,
			     size_t whylen)
{
	const char *key;
	json_t *val;

	json_object_foreach(cfg, key, val) {
		int k = tfs_conf_find(key);
		int64_t v;
		char err[256];

		if (k < 0 || tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC ||
		    !json_is_string(val) ||
		    tfs_conf_parse(k, json_string_value(val), &v, err,
				   sizeof(err))) {
			tfs_err("topic %s: %s: bad setting '%s'", t->name,
				TOPIC_META, key);
			snprintf(why, whylen, "%s: bad setting '%s'",
				 TOPIC_META, key);
			return TFS_ECORRUPT;
		}
		atomic_store(&t->settings->v[k], v);
		t->explicit[k] = true;
	}
	return 0;
}

/*
 * Makes the per-partition array of perms for nparts partitions (the
 * default, then the overrides).  Returns 0 or -EINVAL when something is
 * out of range or an override is given twice.
 */
int store_perms_array(const struct tfs_topic_perms *perms, uint32_t nparts,
		       struct tfs_perm **out)
{
	struct tfs_perm *a;
	unsigned char *seen;
	int rc = 0;

	if (!tfs_perm_valid(&perms->dir, TFS_PERM_DIR_BITS) ||
	    !tfs_perm_valid(&perms->parts, TFS_PERM_FILE_BITS))
		return -EINVAL;
	a = tfs_malloc((nparts ? nparts : 1) * sizeof(*a));
	seen = tfs_calloc(nparts / 8 + 1, 1);
	for (uint32_t i = 0; i < nparts; i++)
		a[i] = perms->parts;
	for (size_t j = 0; j < perms->noverrides; j++) {
		const struct tfs_perm_override *o = &perms->overrides[j];
		unsigned char bit = (unsigned char)(1u << (o->partition % 8));

		if (o->partition >= nparts || (seen[o->partition / 8] & bit) ||
		    !tfs_perm_valid(&o->perm, TFS_PERM_FILE_BITS)) {
			rc = -EINVAL;
			break;
		}
		seen[o->partition / 8] |= bit;
		a[o->partition] = o->perm;
	}
	free(seen);
	if (rc) {
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

/* Parses {"uid": N, "gid": N, "mode": "0644"}; the caller checks the
 * mode's bits. */
static bool perm_from_json(json_t *j, struct tfs_perm *p)
{
	json_int_t uid, gid;
	const char *mode;

	if (!j || json_unpack(j, "{s:I, s:I, s:s}", "uid", &uid, "gid", &gid,
			      "mode", &mode) ||
	    uid < 0 || uid > TFS_PERM_ID_MAX || gid < 0 ||
	    gid > TFS_PERM_ID_MAX ||
	    !store_parse_u32(mode, 8, TFS_PERM_DIR_BITS, &p->mode))
		return false;
	p->uid = (uint32_t)uid;
	p->gid = (uint32_t)gid;
	return true;
}

/* Whether key is a partition number written canonically ("7", not "07"). */
static bool parse_part_key(const char *key, uint32_t *out)
{
	char canon[16];

	if (!store_parse_u32(key, 10, UINT32_MAX, out))
		return false;
	snprintf(canon, sizeof(canon), "%" PRIu32, *out);
	return !strcmp(canon, key);
}

/* Sets t's permissions from topic.json's "perm" (NULL: the defaults). */
static int load_topic_perms(struct tfs_topic *t, json_t *j, uint32_t nparts)
{
	struct tfs_topic_perms perms;
	json_t *dir = NULL, *parts = NULL, *over = NULL, *val;
	const char *key;
	int rc;

	tfs_store_new_topic_perms(t->store, 0, 0, 0777, &perms);
	if (j && (json_unpack(j, "{s:o, s:o, s?o}", "dir", &dir, "partitions",
			      &parts, "overrides", &over) ||
		  !perm_from_json(dir, &perms.dir) ||
		  !perm_from_json(parts, &perms.parts) ||
		  (over && !json_is_object(over))))
		goto out_bad;
	if (over) {
		perms.overrides = tfs_calloc(json_object_size(over) + 1,
					     sizeof(*perms.overrides));
		json_object_foreach(over, key, val) {
			struct tfs_perm_override *o =
				&perms.overrides[perms.noverrides++];

			if (!parse_part_key(key, &o->partition) ||
			    !perm_from_json(val, &o->perm))
				goto out_bad;
		}
	}
	rc = store_perms_array(&perms, nparts, &t->pperm);
	if (rc)
		goto out_bad;
	t->dir_perm = perms.dir;
	t->part_perm = perms.parts;
	free(perms.overrides);
	return 0;

out_bad:
	tfs_err("topic %s: %s: bad \"perm\"", t->name, TOPIC_META);
	free(perms.overrides);
	return TFS_ECORRUPT;
}

int store_read_topic_json(struct tfs_topic *t, uint32_t *nparts, char *why,
			   size_t whylen)
{
	char *text = NULL;
	json_error_t jerr;
	json_t *root, *cfg = NULL, *perm = NULL;
	json_int_t id, parts, created;
	const char *name;
	int version, rc;

	rc = tfs_sys_read_file(t->dirfd, TOPIC_META, TOPIC_META_MAX, &text,
			       NULL);
	if (rc) {
		snprintf(why, whylen, "cannot read %s: %s", TOPIC_META,
			 tfs_strerror(rc));
		return rc;
	}
	root = json_loads(text, 0, &jerr);
	free(text);
	if (!root || json_unpack(root, "{s:i, s:I, s:s, s:I, s:I, s?o, s?o}",
				 "version", &version, "id", &id, "name", &name,
				 "partitions", &parts, "created", &created,
				 "config", &cfg, "perm", &perm) ||
	    version != 1 || parts < 1 || parts > MAX_PARTITIONS ||
	    id != t->id || strcmp(name, t->name)) {
		tfs_err("topic %s: %s is not valid%s%s", t->name, TOPIC_META,
			root ? "" : ": ", root ? "" : jerr.text);
		snprintf(why, whylen, "%s is not valid%s%s", TOPIC_META,
			 root ? "" : ": ", root ? "" : jerr.text);
		json_decref(root);
		return TFS_ECORRUPT;
	}
	t->created = created;
	*nparts = (uint32_t)parts;
	rc = cfg ? load_topic_config(t, cfg, why, whylen) : 0;
	if (rc == 0) {
		rc = load_topic_perms(t, perm, *nparts);
		if (rc)
			snprintf(why, whylen, "%s: bad \"perm\"", TOPIC_META);
	}
	json_decref(root);
	return rc;
}

/* --- permissions ------------------------------------------------------- */

void tfs_topic_get_perm(struct tfs_topic *t, struct tfs_perm *out)
{
	pthread_mutex_lock(&t->lock);
	*out = t->dir_perm;
	pthread_mutex_unlock(&t->lock);
}

int tfs_topic_set_perm(struct tfs_topic *t, const struct tfs_perm *perm)
{
	struct tfs_perm old;
	int rc;

	if (!tfs_perm_valid(perm, TFS_PERM_DIR_BITS))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (t->deleted) {
		pthread_mutex_unlock(&t->lock);
		return -ENOENT;
	}
	old = t->dir_perm;
	t->dir_perm = *perm;
	rc = store_write_topic_json(t, t->nparts);
	if (rc) {
		t->dir_perm = old;
		tfs_err("topic %s: cannot save %s: %s", t->name, TOPIC_META,
			tfs_strerror(rc));
	} else {
		tfs_info("topic %s: owner %u, group %u, mode %04o", t->name,
			 perm->uid, perm->gid, perm->mode);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tfs_topic_get_part_perm(struct tfs_topic *t, uint32_t i,
			    struct tfs_perm *out)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	if (i < t->nparts) {
		*out = t->pperm[i];
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tfs_topic_set_part_perm(struct tfs_topic *t, uint32_t i,
			    const struct tfs_perm *perm)
{
	struct tfs_perm old;
	int rc;

	if (!tfs_perm_valid(perm, TFS_PERM_FILE_BITS))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (t->deleted || i >= t->nparts) {
		pthread_mutex_unlock(&t->lock);
		return -ENOENT;
	}
	old = t->pperm[i];
	t->pperm[i] = *perm;
	rc = store_write_topic_json(t, t->nparts);
	if (rc) {
		t->pperm[i] = old;
		tfs_err("topic %s: cannot save %s: %s", t->name, TOPIC_META,
			tfs_strerror(rc));
	} else {
		tfs_info("topic %s/%u: owner %u, group %u, mode %04o", t->name,
			 i, perm->uid, perm->gid, perm->mode);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void tfs_topic_get_perms(struct tfs_topic *t, struct tfs_topic_perms *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->lock);
	out->dir = t->dir_perm;
	out->parts = t->part_perm;
	for (uint32_t i = 0; i < t->nparts; i++) {
		if (tfs_perm_eq(&t->pperm[i], &t->part_perm))
			continue;
		out->overrides = tfs_realloc(out->overrides,
					     (out->noverrides + 1) *
						     sizeof(*out->overrides));
		out->overrides[out->noverrides++] =
			(struct tfs_perm_override){ i, t->pperm[i] };
	}
	pthread_mutex_unlock(&t->lock);
}

