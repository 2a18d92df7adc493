/*
 * store.c - the data directory: topics, partitions, the flusher thread.
 *
 * LAYOUT
 *
 *   DATA_DIR/.lock                 flock()ed by the daemon that owns it
 *   DATA_DIR/meta                  "topicfs-store 1\nnext_topic_id N\n..."
 *   DATA_DIR/topics/<name>/topic.json
 *   DATA_DIR/topics/<name>/<p>/    one partition (see partition.c)
 *   DATA_DIR/topics/.new-<name>/   a topic being created
 *   DATA_DIR/trash/<id>-<name>/    a deleted topic being removed
 *
 * topic.json (jansson), written temp -> fsync -> rename -> fsync dir:
 *   {"version": 1, "id": 3, "name": "tweets", "partitions": 4,
 *    "created": 1732233600000, "config": {"retention.ms": "86400000"},
 *    "perm": {"dir": {"uid": 0, "gid": 0, "mode": "0755"},
 *             "partitions": {"uid": 0, "gid": 0, "mode": "0644"},
 *             "overrides": {"2": {"uid": 33, "gid": 4, "mode": "0640"}}}}
 * "config" holds only the keys set on the topic; the others follow the
 * daemon's configuration, as in Kafka.  "perm" holds the directory's
 * owner, group and mode (octal, as a string), the partitions' default and
 * the partitions that differ from it; a file without it (written before
 * permissions existed) gets the defaults (store.h, PERMISSIONS).
 *
 * meta: "topicfs-store 1", then "key value" lines: next_topic_id, and
 * root.uid, root.gid, root.mode (octal) when the mount root's differ from
 * their defaults.  Unknown keys are ignored with a warning.
 *
 * Topic ids are never reused (next_topic_id is persisted before a topic
 * directory is made) because FUSE inode numbers are built from them: a
 * stale inode can never name a newer topic.
 *
 * CRASH SAFETY of the namespace operations:
 *   create   the topic is built in .new-<name> and renamed into place, so
 *            a crash leaves it whole or absent (.new-* is removed at start);
 *   grow     new partition directories are made first, then topic.json is
 *            rewritten; directories past the recorded count are removed
 *            at start;
 *   delete   one rename into trash/, emptied in the background and at
 *            start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compress.h"
#include "err.h"
#include "log.h"
#include "store_int.h"
#include "sysio.h"
#include "banned.h"

bool tfs_topic_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > TFS_TOPIC_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Removes a directory tree below dirfd (best effort, logged). */
static void rm_tree(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0) {
		tfs_sys_unlinkat(dirfd, name, 0);
		return;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR)
			rm_tree(fd, de->d_name);
		else if (tfs_sys_unlinkat(fd, de->d_name, 0) == -EISDIR)
			rm_tree(fd, de->d_name);
	}
	closedir(d);
	int rc = tfs_sys_unlinkat(dirfd, name, AT_REMOVEDIR);
	if (rc && rc != -ENOENT)
		tfs_warn("cannot remove %s: %s", name, tfs_strerror(rc));
}

/* --- store metadata ------------------------------------------------------ */

bool store_parse_u32(const char *s, int base, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

static struct tfs_perm root_default(struct tfs_store *s)
{
	return (struct tfs_perm){ s->def_uid, s->def_gid, 0755 };
}

/* Applies one "key value" line of meta.  Returns false if it is bad. */
static bool meta_line(struct tfs_store *s, const char *key, const char *val)
{
	if (!strcmp(key, "next_topic_id"))
		return store_parse_u32(val, 10, UINT32_MAX, &s->next_id) &&
		       s->next_id != 0;
	if (!strcmp(key, "root.uid"))
		return store_parse_u32(val, 10, TFS_PERM_ID_MAX, &s->root.uid);
	if (!strcmp(key, "root.gid"))
		return store_parse_u32(val, 10, TFS_PERM_ID_MAX, &s->root.gid);
	if (!strcmp(key, "root.mode"))
		return store_parse_u32(val, 8, TFS_PERM_DIR_BITS, &s->root.mode);
	tfs_warn("%s/meta: ignoring unknown key '%s'", s->dir, key);
	return true;
}

/* Reads meta into next_id and root (already set to their defaults). */
static int read_meta(struct tfs_store *s)
{
	char *text = NULL, *save = NULL, *line;
	int rc = tfs_sys_read_file(s->dirfd, "meta", 4096, &text, NULL);
	bool ok;

	s->next_id = 0;
	if (rc == -ENOENT) {
		s->next_id = 1;
		return 0;
	}
	if (rc)
		return rc;
	line = strtok_r(text, "\n", &save);
	ok = line && !strcmp(line, "topicfs-store 1");
	while (ok && (line = strtok_r(NULL, "\n", &save))) {
		char *sp = strchr(line, ' ');

		if (!sp) {
			ok = false;
			break;
		}
		*sp = '\0';
		ok = meta_line(s, line, sp + 1);
		*sp = ' ';
	}
	if (!ok || s->next_id == 0) {
		tfs_err("%s/meta: not a topicfs store meta file%s%s%s", s->dir,
			line ? ": bad line '" : "", line ? line : "",
			line ? "'" : "");
		free(text);
		return TFS_ECORRUPT;
	}
	free(text);
	return 0;
}

/* Writes meta with next_topic_id next.  create_lock held. */
static int write_meta(struct tfs_store *s, uint32_t next)
{
	struct tfs_perm def = root_default(s);
	struct tfs_buf b = TFS_BUF_INIT;
	int rc;

	tfs_buf_addf(&b, "topicfs-store 1\nnext_topic_id %u\n", next);
	pthread_mutex_lock(&s->perm_lock);
	if (s->root.uid != def.uid)
		tfs_buf_addf(&b, "root.uid %u\n", s->root.uid);
	if (s->root.gid != def.gid)
		tfs_buf_addf(&b, "root.gid %u\n", s->root.gid);
	if (s->root.mode != def.mode)
		tfs_buf_addf(&b, "root.mode %04o\n", s->root.mode);
	pthread_mutex_unlock(&s->perm_lock);
	rc = tfs_sys_write_atomic(s->dirfd, "meta", b.data, b.len);
	tfs_buf_release(&b);
	return rc;
}

void tfs_store_root_perm(struct tfs_store *s, struct tfs_perm *out)
{
	pthread_mutex_lock(&s->perm_lock);
	*out = s->root;
	pthread_mutex_unlock(&s->perm_lock);
}

int tfs_store_set_root_perm(struct tfs_store *s, const struct tfs_perm *perm)
{
	struct tfs_perm old;
	int rc;

	if (!tfs_perm_valid(perm, TFS_PERM_DIR_BITS))
		return -EINVAL;
	pthread_mutex_lock(&s->create_lock);
	pthread_mutex_lock(&s->perm_lock);
	old = s->root;
	s->root = *perm;
	pthread_mutex_unlock(&s->perm_lock);
	rc = write_meta(s, s->next_id);
	if (rc) {
		pthread_mutex_lock(&s->perm_lock);
		s->root = old;
		pthread_mutex_unlock(&s->perm_lock);
		tfs_err("%s/meta: cannot save the root's permissions: %s",
			s->dir, tfs_strerror(rc));
	} else {
		tfs_info("root: owner %u, group %u, mode %04o", perm->uid,
			 perm->gid, perm->mode);
	}
	pthread_mutex_unlock(&s->create_lock);
	return rc;
}

void tfs_store_new_topic_perms(struct tfs_store *s, uint32_t uid, uint32_t gid,
			       uint32_t mode, struct tfs_topic_perms *out)
{
	if (uid == 0) {
		uid = s->def_uid;
		gid = s->def_gid;
	}
	memset(out, 0, sizeof(*out));
	out->dir = (struct tfs_perm){ uid, gid,
				      mode & ~s->umask & TFS_PERM_DIR_BITS };
	out->parts = (struct tfs_perm){ uid, gid, 0666 & ~s->umask };
}

/* --- partitions of a topic ------------------------------------------------ */

static int open_partition(struct tfs_topic *t, uint32_t i, bool create,
			  struct tfs_partition **out)
{
	char name[TFS_TOPIC_NAME_MAX + 16];
	struct tfs_partition_env env = {
		.syncer = t->store->syncer,
		.fsyncer = t->store->fsyncer,
		.timers = t->store->timers,
		.settings = t->settings,
		.name = name,
		/* In a cluster a partition waits for the cluster to say
		 * whether it leads, follows or has no replica here. */
		.role = *tfs_conf_str(&t->store->conf, TFS_CONF_CLUSTER_ETCD)
				? TFS_ROLE_NONE
				: TFS_ROLE_STANDALONE,
	};

	snprintf(name, sizeof(name), "%s/%" PRIu32, t->name, i);
	return tfs_partition_open(t->dirfd, i, &env, create, out);
}

/* Opens partitions [from, to) into t->parts; *bad is the one that could
 * not open.  Topic lock or exclusive. */
static int open_partitions(struct tfs_topic *t, uint32_t from, uint32_t to,
			   bool create, uint32_t *bad)
{
	t->parts = tfs_realloc(t->parts, to * sizeof(*t->parts));
	for (uint32_t i = from; i < to; i++) {
		int rc = open_partition(t, i, create, &t->parts[i]);

		if (rc) {
			if (bad)
				*bad = i;
			while (i-- > from) {
				tfs_partition_close(t->parts[i], TFS_ESHUTDOWN);
				tfs_partition_unref(t->parts[i]);
			}
			return rc;
		}
	}
	return 0;
}

/* Removes partition directories at or past n (an interrupted grow). */
static void remove_extra_partitions(struct tfs_topic *t, uint32_t n)
{
	for (uint32_t i = n;; i++) {
		char dname[16];
		struct stat st;

		snprintf(dname, sizeof(dname), "%" PRIu32, i);
		if (fstatat(t->dirfd, dname, &st, 0) < 0)
			break;
		tfs_warn("topic %s: removing partition %u beyond the %u "
			 "recorded (an interrupted grow)",
			 t->name, i, n);
		rm_tree(t->dirfd, dname);
	}
}

/* --- the topic table ------------------------------------------------------- */

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, (*(struct tfs_topic *const *)elem)->name);
}

static int cmp_id(const void *key, const void *elem)
{
	uint32_t a = *(const uint32_t *)key;
	uint32_t b = (*(struct tfs_topic *const *)elem)->id;

	return a < b ? -1 : a > b;
}

/* Position where name is or would be in by_name.  Lock held. */
static size_t name_pos(struct tfs_store *s, const char *name, bool *found)
{
	size_t lo = 0, hi = s->ntopics;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, s->by_name[mid]->name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static size_t id_pos(struct tfs_store *s, uint32_t id)
{
	size_t lo = 0, hi = s->ntopics;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->by_id[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Inserts t (the table takes the caller's reference).  Write lock held. */
static void table_insert(struct tfs_store *s, struct tfs_topic *t)
{
	bool found;
	size_t np = name_pos(s, t->name, &found);
	size_t ip = id_pos(s, t->id);

	s->by_name = tfs_realloc(s->by_name,
				 (s->ntopics + 1) * sizeof(*s->by_name));
	s->by_id = tfs_realloc(s->by_id, (s->ntopics + 1) * sizeof(*s->by_id));
	memmove(&s->by_name[np + 1], &s->by_name[np],
		(s->ntopics - np) * sizeof(*s->by_name));
	memmove(&s->by_id[ip + 1], &s->by_id[ip],
		(s->ntopics - ip) * sizeof(*s->by_id));
	s->by_name[np] = t;
	s->by_id[ip] = t;
	s->ntopics++;
}

/* Removes t; returns the table's reference.  Write lock held. */
static void table_remove(struct tfs_store *s, struct tfs_topic *t)
{
	bool found;
	size_t np = name_pos(s, t->name, &found);
	size_t ip = id_pos(s, t->id);

	memmove(&s->by_name[np], &s->by_name[np + 1],
		(s->ntopics - np - 1) * sizeof(*s->by_name));
	memmove(&s->by_id[ip], &s->by_id[ip + 1],
		(s->ntopics - ip - 1) * sizeof(*s->by_id));
	s->ntopics--;
}

struct tfs_topic *tfs_store_find_topic(struct tfs_store *s, const char *name)
{
	struct tfs_topic **hit, *t = NULL;

	pthread_rwlock_rdlock(&s->lock);
	hit = s->ntopics ? bsearch(name, s->by_name, s->ntopics,
				   sizeof(*s->by_name), cmp_name)
			 : NULL;
	if (hit)
		t = tfs_topic_ref(*hit);
	pthread_rwlock_unlock(&s->lock);
	return t;
}

struct tfs_topic *tfs_store_topic_by_id(struct tfs_store *s, uint32_t id)
{
	struct tfs_topic **hit, *t = NULL;

	pthread_rwlock_rdlock(&s->lock);
	hit = s->ntopics ? bsearch(&id, s->by_id, s->ntopics, sizeof(*s->by_id),
				   cmp_id)
			 : NULL;
	if (hit)
		t = tfs_topic_ref(*hit);
	pthread_rwlock_unlock(&s->lock);
	return t;
}

struct tfs_topic **tfs_store_topics(struct tfs_store *s, size_t *n)
{
	struct tfs_topic **v;

	pthread_rwlock_rdlock(&s->lock);
	v = tfs_malloc((s->ntopics ? s->ntopics : 1) * sizeof(*v));
	for (size_t i = 0; i < s->ntopics; i++)
		v[i] = tfs_topic_ref(s->by_name[i]);
	*n = s->ntopics;
	pthread_rwlock_unlock(&s->lock);
	return v;
}

void tfs_store_topics_free(struct tfs_topic **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tfs_topic_unref(v[i]);
	free(v);
}

uint32_t tfs_topic_partitions(struct tfs_topic *t)
{
	uint32_t n;

	pthread_mutex_lock(&t->lock);
	n = t->deleted ? 0 : t->nparts;
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct tfs_partition *tfs_topic_partition(struct tfs_topic *t, uint32_t i)
{
	struct tfs_partition *p = NULL;

	pthread_mutex_lock(&t->lock);
	if (!t->deleted && i < t->nparts)
		p = tfs_partition_ref(t->parts[i]);
	pthread_mutex_unlock(&t->lock);
	return p;
}

void tfs_store_foreach_partition(struct tfs_store *s,
				 void (*fn)(struct tfs_topic *t,
					    struct tfs_partition *p, void *arg),
				 void *arg)
{
	size_t n;
	struct tfs_topic **topics = tfs_store_topics(s, &n);

	for (size_t i = 0; i < n; i++) {
		uint32_t np = tfs_topic_partitions(topics[i]);

		for (uint32_t j = 0; j < np; j++) {
			struct tfs_partition *p =
				tfs_topic_partition(topics[i], j);

			if (!p)
				break;
			fn(topics[i], p, arg);
			tfs_partition_unref(p);
		}
	}
	tfs_store_topics_free(topics, n);
}

/* --- loading --------------------------------------------------------------- */

/* Loads topic name; why gets the reason it cannot. */
static int load_topic(struct tfs_store *s, const char *name, char *why,
		      size_t whylen)
{
	struct tfs_topic *t;
	uint32_t nparts = 0, bad = 0;
	char *text = NULL;
	json_error_t jerr;
	json_t *root;
	json_int_t id = 0;
	int rc, fd;

	fd = tfs_sys_openat(s->topics_fd, name, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open its directory: %s",
			 tfs_strerror(fd));
		return fd;
	}
	/* The id is needed before the object: peek at topic.json. */
	rc = tfs_sys_read_file(fd, TOPIC_META, TOPIC_META_MAX, &text, NULL);
	root = rc ? NULL : json_loads(text, 0, &jerr);
	free(text);
	if (!root || json_unpack(root, "{s:I}", "id", &id) || id <= 0 ||
	    id > UINT32_MAX) {
		const char *detail = rc ? tfs_strerror(rc)
				     : !root ? jerr.text
					     : "no valid \"id\"";

		json_decref(root);
		tfs_sys_close(fd);
		tfs_err("topic %s: %s missing or invalid: %s", name, TOPIC_META,
			detail);
		snprintf(why, whylen, "%s is missing or not valid: %s",
			 TOPIC_META, detail);
		return TFS_ECORRUPT;
	}
	json_decref(root);
	t = store_topic_alloc(s, (uint32_t)id, name);
	t->dirfd = fd;
	rc = store_read_topic_json(t, &nparts, why, whylen);
	if (rc == 0) {
		remove_extra_partitions(t, nparts);
		rc = open_partitions(t, 0, nparts, true, &bad);
		if (rc)
			snprintf(why, whylen, "partition %" PRIu32
				 " cannot be opened: %s",
				 bad, tfs_strerror(rc));
	}
	if (rc) {
		tfs_topic_unref(t);
		return rc;
	}
	t->nparts = nparts;
	if (t->id >= s->next_id) {
		tfs_warn("topic %s: id %u is not below next_topic_id %u",
			 name, t->id, s->next_id);
		s->next_id = t->id + 1;
	}
	table_insert(s, t);
	return 0;
}

static void add_failure(struct tfs_store *s, const char *name,
			const char *why)
{
	struct tfs_topic_failure *f;

	s->failed = tfs_realloc(s->failed, (s->nfailed + 1) * sizeof(*f));
	f = &s->failed[s->nfailed++];
	/* Valid topic names fit (tfs_topic_name_valid). */
	snprintf(f->name, sizeof(f->name), "%.*s", TFS_TOPIC_NAME_MAX, name);
	snprintf(f->error, sizeof(f->error), "%s", why);
}

static int cmp_failure(const void *a, const void *b)
{
	return strcmp(((const struct tfs_topic_failure *)a)->name,
		      ((const struct tfs_topic_failure *)b)->name);
}

size_t tfs_store_failed_topics(struct tfs_store *s,
			       struct tfs_topic_failure **out)
{
	*out = NULL;
	if (!s->nfailed)
		return 0;
	*out = tfs_malloc(s->nfailed * sizeof(**out));
	memcpy(*out, s->failed, s->nfailed * sizeof(**out));
	return s->nfailed;
}

static int load_topics(struct tfs_store *s)
{
	int fd = dup(s->topics_fd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	int rc, bad = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	/* A topic that cannot be loaded is left alone, not the node: the
	 * others keep serving, and nothing of it is touched or lost. */
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!strncmp(de->d_name, ".new-", 5)) {
			tfs_info("removing %s (a topic creation that did not "
				 "finish)", de->d_name);
			rm_tree(s->topics_fd, de->d_name);
			continue;
		}
		if (!tfs_topic_name_valid(de->d_name)) {
			tfs_warn("ignoring %s/topics/%s: not a topic name",
				 s->dir, de->d_name);
			continue;
		}
		char why[256] = "";

		rc = load_topic(s, de->d_name, why, sizeof(why));
		if (rc) {
			tfs_err("topic %s cannot be loaded (%s); its files "
				"are left untouched in %s/topics/%s",
				de->d_name, why[0] ? why : tfs_strerror(rc),
				s->dir, de->d_name);
			add_failure(s, de->d_name, why[0] ? why
							  : tfs_strerror(rc));
			bad++;
		}
	}
	closedir(d);
	if (s->nfailed > 1)
		qsort(s->failed, s->nfailed, sizeof(*s->failed), cmp_failure);
	if (bad)
		tfs_err("%d topic(s) unavailable: see the errors above", bad);
	return 0;
}

static void empty_trash(struct tfs_store *s)
{
	int fd = dup(s->trash_fd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* The dup shares trash_fd's position, left at the end by the last
	 * pass: without the rewind no later pass sees anything. */
	rewinddir(d);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rm_tree(s->trash_fd, de->d_name);
	}
	closedir(d);
}

/* --- background flusher ---------------------------------------------------- */

static void flush_one(struct tfs_topic *t, struct tfs_partition *p, void *arg)
{
	tfs_partition_flush(p);
}

/* Every flush.ms: fsyncs and checkpoints, and empties the trash. */
static void flush_tick(void *arg)
{
	struct tfs_store *s = arg;

	tfs_store_foreach_partition(s, flush_one, NULL);
	empty_trash(s);
}

/* --- open and close ------------------------------------------------------- */

static int open_subdir(int dirfd, const char *name)
{
	int rc = tfs_sys_mkdirat(dirfd, name, 0755);

	if (rc && rc != -EEXIST)
		return rc;
	return tfs_sys_openat(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
}

static int lock_dir(struct tfs_store *s)
{
	char pid[32];
	int n;

	s->lock_fd = tfs_sys_openat(s->dirfd, ".lock", O_RDWR | O_CREAT, 0644);
	if (s->lock_fd < 0)
		return s->lock_fd;
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		ssize_t r = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);

		pid[r > 0 ? r : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		tfs_err("%s is in use by another topicfs (pid %s)", s->dir,
			*pid ? pid : "unknown");
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(s->lock_fd, 0) < 0 ||
	    pwrite(s->lock_fd, pid, (size_t)n, 0) < 0)
		tfs_warn("%s/.lock: cannot record pid: %s", s->dir,
			 strerror(errno));
	return 0;
}

/* Segment files stay open: make room for many partitions. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void store_free(struct tfs_store *s)
{
	for (size_t i = 0; i < s->ntopics; i++)
		tfs_topic_unref(s->by_name[i]);
	free(s->by_name);
	free(s->by_id);
	free(s->failed);
	tfs_workers_stop(s->syncer);
	tfs_workers_stop(s->fsyncer);
	tfs_timers_stop(s->timers);
	tfs_sys_close(s->topics_fd);
	tfs_sys_close(s->trash_fd);
	tfs_sys_close(s->lock_fd);
	tfs_sys_close(s->dirfd);
	tfs_conf_release(&s->conf);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->create_lock);
	pthread_mutex_destroy(&s->perm_lock);
	free(s->dir);
	free(s);
}

int tfs_store_open(const char *dir, const struct tfs_conf *conf,
		   struct tfs_store **out)
{
	struct tfs_store *s = tfs_calloc(1, sizeof(*s));
	int rc;

	s->dir = tfs_strdup(dir);
	s->dirfd = s->topics_fd = s->trash_fd = s->lock_fd = -1;
	tfs_conf_copy(&s->conf, conf);
	s->started = tfs_mono_ms();
	pthread_rwlock_init(&s->lock, NULL);
	pthread_mutex_init(&s->create_lock, NULL);
	pthread_mutex_init(&s->perm_lock, NULL);
	s->def_uid = tfs_conf_get(conf, TFS_CONF_UID) < 0
			     ? (uint32_t)geteuid()
			     : (uint32_t)tfs_conf_get(conf, TFS_CONF_UID);
	s->def_gid = tfs_conf_get(conf, TFS_CONF_GID) < 0
			     ? (uint32_t)getegid()
			     : (uint32_t)tfs_conf_get(conf, TFS_CONF_GID);
	s->umask = (uint32_t)tfs_conf_get(conf, TFS_CONF_UMASK) & 0777;
	s->root = root_default(s);
	raise_fd_limit();

	rc = mkdir(dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
	if (rc == 0) {
		s->dirfd = tfs_sys_openat(AT_FDCWD, dir,
					  O_RDONLY | O_DIRECTORY, 0);
		rc = s->dirfd < 0 ? s->dirfd : 0;
	}
	if (rc) {
		tfs_err("data directory %s: %s", dir, tfs_strerror(rc));
		goto out_free;
	}
	rc = lock_dir(s);
	if (rc == 0)
		rc = read_meta(s);
	if (rc == 0 && (s->topics_fd = open_subdir(s->dirfd, "topics")) < 0)
		rc = s->topics_fd;
	if (rc == 0 && (s->trash_fd = open_subdir(s->dirfd, "trash")) < 0)
		rc = s->trash_fd;
	unsigned nsync = (unsigned)tfs_conf_get(conf, TFS_CONF_SYNC_THREADS);
	if (rc == 0)
		rc = tfs_workers_start(nsync, "tfs-sync", &s->syncer);
	/* One companion per sync worker: the index fsync of the segment the
	 * worker is syncing.  It never waits on anything, so no deadlock. */
	if (rc == 0)
		rc = tfs_workers_start(nsync, "tfs-fsync", &s->fsyncer);
	if (rc == 0)
		rc = tfs_timers_start("tfs-timer", &s->timers);
	if (rc)
		goto out_free;
	empty_trash(s);
	rc = load_topics(s);
	if (rc)
		goto out_close;
	rc = tfs_ticker_start("tfs-flush",
			      tfs_conf_get(conf, TFS_CONF_FLUSH_MS), flush_tick,
			      s, &s->flusher);
	if (rc)
		goto out_close;
	tfs_zcache_set_capacity((size_t)tfs_conf_get(
		conf, TFS_CONF_COMPRESSION_CACHE_BYTES));
	*out = s;
	return 0;

out_close:
	for (size_t i = 0; i < s->ntopics; i++) {
		struct tfs_topic *t = s->by_name[i];

		for (uint32_t j = 0; j < t->nparts; j++)
			tfs_partition_close(t->parts[j], TFS_ESHUTDOWN);
	}
out_free:
	store_free(s);
	return rc;
}

void tfs_store_shutdown_readers(struct tfs_store *s)
{
	size_t n;
	struct tfs_topic **topics = tfs_store_topics(s, &n);

	for (size_t i = 0; i < n; i++) {
		struct tfs_topic *t = topics[i];

		pthread_mutex_lock(&t->lock);
		for (uint32_t j = 0; j < t->nparts; j++)
			tfs_partition_close(t->parts[j], TFS_ESHUTDOWN);
		pthread_mutex_unlock(&t->lock);
	}
	tfs_store_topics_free(topics, n);
}

static void end_waits(struct tfs_topic *t, struct tfs_partition *p, void *arg)
{
	tfs_partition_end_waits(p, *(int *)arg);
}

void tfs_store_end_waits(struct tfs_store *s, int status)
{
	tfs_store_foreach_partition(s, end_waits, &status);
}

void tfs_store_close(struct tfs_store *s)
{
	if (!s)
		return;
	tfs_ticker_stop(s->flusher);
	tfs_store_shutdown_readers(s);
	store_free(s);
}

const struct tfs_conf *tfs_store_conf(struct tfs_store *s)
{
	return &s->conf;
}

const char *tfs_store_dir(struct tfs_store *s)
{
	return s->dir;
}

int64_t tfs_store_started(struct tfs_store *s)
{
	return s->started;
}

struct tfs_timers *tfs_store_timers(struct tfs_store *s)
{
	return s->timers;
}

/* --- create, delete, grow, configure ------------------------------------- */

/*
 * Parses spec's settings into v/set (the daemon's defaults elsewhere).
 * Returns 0 or TFS_EBADCONF (logged).
 */
static int parse_spec_config(struct tfs_store *s,
			     const struct tfs_topic_spec *spec,
			     int64_t v[TFS_CONF__COUNT],
			     bool set[TFS_CONF__COUNT])
{
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		v[k] = tfs_conf_get(&s->conf, k);
		set[k] = false;
	}
	for (const char *const *c = spec->config; c && c[0]; c += 2) {
		int k = tfs_conf_find(c[0]);
		char err[256];

		if (!c[1] || k < 0 ||
		    tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC) {
			tfs_err("topic %s: unknown topic setting '%s'",
				spec->name, c[0]);
			return TFS_EBADCONF;
		}
		if (tfs_conf_parse(k, c[1], &v[k], err, sizeof(err))) {
			tfs_err("topic %s: %s", spec->name, err);
			return TFS_EBADCONF;
		}
		set[k] = true;
	}
	return 0;
}

/* Sets t's settings to v/set.  Topic lock held (or t unpublished). */
static void put_settings(struct tfs_topic *t, const int64_t v[TFS_CONF__COUNT],
			 const bool set[TFS_CONF__COUNT])
{
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		if (tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC)
			continue;
		atomic_store(&t->settings->v[k], v[k]);
		t->explicit[k] = set[k];
	}
}

/* Gives an unpublished t of nparts partitions perms, or the defaults. */
static int set_new_perms(struct tfs_topic *t,
			 const struct tfs_topic_perms *perms, uint32_t nparts)
{
	struct tfs_topic_perms def;
	int rc;

	if (!perms) {
		tfs_store_new_topic_perms(t->store, 0, 0, 0777, &def);
		perms = &def;
	}
	rc = store_perms_array(perms, nparts, &t->pperm);
	if (rc) {
		tfs_err("topic %s: invalid permissions", t->name);
		return rc;
	}
	t->dir_perm = perms->dir;
	t->part_perm = perms->parts;
	return 0;
}

/* Builds a topic in .new-<name>; returns it without publishing it. */
static int build_topic(struct tfs_store *s, const struct tfs_topic_spec *spec,
		       uint32_t id, const char *tmpname, struct tfs_topic **out)
{
	uint32_t nparts = spec->partitions ? spec->partitions
					   : (uint32_t)tfs_conf_get(
						     &s->conf,
						     TFS_CONF_NUM_PARTITIONS);
	struct tfs_topic *t = store_topic_alloc(s, id, spec->name);
	int64_t v[TFS_CONF__COUNT];
	bool set[TFS_CONF__COUNT];
	int rc;

	if (nparts > MAX_PARTITIONS) {
		tfs_topic_unref(t);
		return -EINVAL;
	}
	rc = parse_spec_config(s, spec, v, set);
	if (rc == 0)
		rc = set_new_perms(t, spec->perms, nparts);
	if (rc) {
		tfs_topic_unref(t);
		return rc;
	}
	put_settings(t, v, set);
	t->created = spec->created ? spec->created : tfs_now_ms();
	rc = tfs_sys_mkdirat(s->topics_fd, tmpname, 0755);
	if (rc == 0) {
		t->dirfd = tfs_sys_openat(s->topics_fd, tmpname,
					  O_RDONLY | O_DIRECTORY, 0);
		rc = t->dirfd < 0 ? t->dirfd : 0;
	}
	if (rc == 0)
		rc = open_partitions(t, 0, nparts, true, NULL);
	if (rc)
		goto out_free;
	t->nparts = nparts;
	rc = store_write_topic_json(t, nparts);
	if (rc == 0)
		rc = tfs_sys_fsync(t->dirfd);
	if (rc)
		goto out_free;
	*out = t;
	return 0;

out_free:
	for (uint32_t i = 0; i < t->nparts; i++)
		tfs_partition_close(t->parts[i], TFS_EDELETED);
	tfs_topic_unref(t);
	rm_tree(s->topics_fd, tmpname);
	return rc;
}

/* Whether a topic of this id is loaded.  Lock not held. */
static bool id_taken(struct tfs_store *s, uint32_t id)
{
	struct tfs_topic *t = tfs_store_topic_by_id(s, id);

	tfs_topic_unref(t);
	return t != NULL;
}

/* Creates and publishes a topic.  create_lock held. */
static int create_locked(struct tfs_store *s, const struct tfs_topic_spec *spec,
			 struct tfs_topic **out)
{
	char tmpname[TFS_TOPIC_NAME_MAX + 8];
	const char *name = spec->name;
	struct tfs_topic *t = NULL, *old;
	uint32_t id = spec->id ? spec->id : s->next_id;
	int rc;

	old = tfs_store_find_topic(s, name);
	if (old || faccessat(s->topics_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) ==
			   0 || id_taken(s, id)) {
		/* A topic that failed to load still owns its name. */
		tfs_topic_unref(old);
		return -EEXIST;
	}
	/* Ids are never reused, also those given by the cluster. */
	if (id >= s->next_id) {
		rc = write_meta(s, id + 1);
		if (rc)
			return rc;
		s->next_id = id + 1;
	}
	snprintf(tmpname, sizeof(tmpname), ".new-%s", name);
	rm_tree(s->topics_fd, tmpname);
	rc = build_topic(s, spec, id, tmpname, &t);
	if (rc)
		return rc;
	rc = tfs_sys_renameat(s->topics_fd, tmpname, s->topics_fd, name);
	if (rc == 0)
		rc = tfs_sys_fsync(s->topics_fd);
	if (rc) {
		for (uint32_t i = 0; i < t->nparts; i++)
			tfs_partition_close(t->parts[i], TFS_EDELETED);
		tfs_topic_unref(t);
		rm_tree(s->topics_fd, tmpname);
		return rc;
	}
	pthread_rwlock_wrlock(&s->lock);
	table_insert(s, t);
	if (out)
		*out = tfs_topic_ref(t);
	pthread_rwlock_unlock(&s->lock);
	tfs_info("created topic %s (id %u) with %u partition(s)", name, id,
		 t->nparts);
	return 0;
}

int tfs_store_create_topic(struct tfs_store *s,
			   const struct tfs_topic_spec *spec,
			   struct tfs_topic **out)
{
	int rc;

	if (!tfs_topic_name_valid(spec->name))
		return -EINVAL;
	pthread_mutex_lock(&s->create_lock);
	rc = create_locked(s, spec, out);
	pthread_mutex_unlock(&s->create_lock);
	if (rc)
		tfs_warn("cannot create topic %s: %s", spec->name,
			 tfs_strerror(rc));
	return rc;
}

static int delete_locked(struct tfs_store *s, struct tfs_topic *t);

/* Sets every topic setting of t to spec's in one write of topic.json. */
static int apply_config(struct tfs_topic *t, const struct tfs_topic_spec *spec)
{
	int64_t v[TFS_CONF__COUNT], oldv[TFS_CONF__COUNT];
	bool set[TFS_CONF__COUNT], oldset[TFS_CONF__COUNT];
	int rc = parse_spec_config(t->store, spec, v, set);

	if (rc)
		return rc;
	pthread_mutex_lock(&t->lock);
	bool same = true;
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		oldv[k] = tfs_settings_get(t->settings, k);
		oldset[k] = t->explicit[k];
		if (tfs_conf_desc(k)->scope == TFS_SCOPE_TOPIC &&
		    (oldv[k] != v[k] || oldset[k] != set[k]))
			same = false;
	}
	if (!same && !t->deleted) {
		put_settings(t, v, set);
		rc = store_write_topic_json(t, t->nparts);
		if (rc)
			put_settings(t, oldv, oldset);
		else
			tfs_info("topic %s: settings applied from the cluster",
				 t->name);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tfs_topic_set_perms(struct tfs_topic *t,
			const struct tfs_topic_perms *perms)
{
	struct tfs_perm *a = NULL, old_dir, old_parts, *old_a;
	int rc;

	pthread_mutex_lock(&t->lock);
	if (t->deleted) {
		rc = -ENOENT;
		goto out_unlock;
	}
	rc = store_perms_array(perms, t->nparts, &a);
	if (rc) {
		tfs_err("topic %s: invalid permissions", t->name);
		goto out_unlock;
	}
	if (tfs_perm_eq(&perms->dir, &t->dir_perm) &&
	    tfs_perm_eq(&perms->parts, &t->part_perm) &&
	    !memcmp(a, t->pperm, t->nparts * sizeof(*a))) {
		free(a);
		goto out_unlock;
	}
	old_dir = t->dir_perm;
	old_parts = t->part_perm;
	old_a = t->pperm;
	t->dir_perm = perms->dir;
	t->part_perm = perms->parts;
	t->pperm = a;
	rc = store_write_topic_json(t, t->nparts);
	if (rc) {
		t->dir_perm = old_dir;
		t->part_perm = old_parts;
		t->pperm = old_a;
		free(a);
	} else {
		free(old_a);
		tfs_info("topic %s: permissions set (directory %u:%u %04o, "
			 "partitions %u:%u %04o)",
			 t->name, perms->dir.uid, perms->dir.gid,
			 perms->dir.mode, perms->parts.uid, perms->parts.gid,
			 perms->parts.mode);
	}
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tfs_store_apply_topic(struct tfs_store *s,
			  const struct tfs_topic_spec *spec,
			  struct tfs_topic **out)
{
	struct tfs_topic *t;
	int rc = 0;

	if (!tfs_topic_name_valid(spec->name) || spec->id == 0)
		return -EINVAL;
	pthread_mutex_lock(&s->create_lock);
	t = tfs_store_find_topic(s, spec->name);
	if (t && t->id != spec->id) {
		tfs_info("topic %s: id %u here, %u in the cluster: the local "
			 "one was deleted elsewhere; removing it",
			 spec->name, t->id, spec->id);
		rc = delete_locked(s, t);	/* takes our reference */
		t = NULL;
	}
	if (rc == 0 && !t)
		rc = create_locked(s, spec, &t);
	pthread_mutex_unlock(&s->create_lock);
	if (rc == 0 && spec->partitions)
		rc = tfs_topic_set_partitions(t, spec->partitions);
	if (rc == 0)
		rc = apply_config(t, spec);
	if (rc == 0 && spec->perms)
		rc = tfs_topic_set_perms(t, spec->perms);
	if (rc == 0 && out)
		*out = tfs_topic_ref(t);
	tfs_topic_unref(t);
	if (rc)
		tfs_warn("cannot apply topic %s: %s", spec->name,
			 tfs_strerror(rc));
	return rc;
}

/*
 * Moves t to the trash and closes it; takes the caller's reference.
 * create_lock held.
 */
static int delete_locked(struct tfs_store *s, struct tfs_topic *t)
{
	char trash[TFS_TOPIC_NAME_MAX + 16];
	int rc;

	snprintf(trash, sizeof(trash), "%u-%s", t->id, t->name);
	/* The id alone keeps it unique; the name is for people looking,
	 * and a long one would not fit a directory entry. */
	trash[NAME_MAX] = '\0';
	rc = tfs_sys_renameat(s->topics_fd, t->name, s->trash_fd, trash);
	if (rc == 0)
		rc = tfs_sys_fsync(s->topics_fd);
	if (rc) {
		tfs_err("cannot delete topic %s: %s", t->name,
			tfs_strerror(rc));
		tfs_topic_unref(t);
		return rc;
	}
	pthread_rwlock_wrlock(&s->lock);
	table_remove(s, t);
	pthread_rwlock_unlock(&s->lock);

	pthread_mutex_lock(&t->lock);
	t->deleted = true;
	for (uint32_t i = 0; i < t->nparts; i++)
		tfs_partition_close(t->parts[i], TFS_EDELETED);
	pthread_mutex_unlock(&t->lock);
	tfs_info("deleted topic %s", t->name);
	tfs_topic_unref(t);	/* the caller's */
	tfs_topic_unref(t);	/* the table's */
	tfs_ticker_kick(s->flusher);	/* empty the trash now */
	return 0;
}

int tfs_store_drop_topic(struct tfs_store *s, const char *name)
{
	struct tfs_topic *t;
	int rc;

	pthread_mutex_lock(&s->create_lock);
	t = tfs_store_find_topic(s, name);
	rc = t ? delete_locked(s, t) : -ENOENT;
	pthread_mutex_unlock(&s->create_lock);
	return rc;
}

int tfs_store_delete_topic(struct tfs_store *s, const char *name)
{
	struct tfs_topic *t;
	int rc;

	if (!tfs_conf_get(&s->conf, TFS_CONF_DELETE_TOPIC_ENABLE))
		return -EPERM;
	pthread_mutex_lock(&s->create_lock);
	t = tfs_store_find_topic(s, name);
	rc = t ? delete_locked(s, t) : -ENOENT;
	pthread_mutex_unlock(&s->create_lock);
	return rc;
}

int tfs_topic_set_partitions(struct tfs_topic *t, uint32_t n)
{
	int rc;

	pthread_mutex_lock(&t->lock);
	if (t->deleted) {
		rc = -ENOENT;
	} else if (n < t->nparts || n > MAX_PARTITIONS) {
		rc = -EINVAL;
	} else if (n == t->nparts) {
		rc = 0;
	} else {
		uint32_t old = t->nparts;
		struct tfs_perm np = { t->dir_perm.uid, t->dir_perm.gid,
				       0666 & ~t->store->umask };

		/* Before the partitions: a failed grow leaves the extra
		 * entries unused, and the next grow fills them again. */
		t->pperm = tfs_realloc(t->pperm, n * sizeof(*t->pperm));
		for (uint32_t i = old; i < n; i++)
			t->pperm[i] = np;
		rc = open_partitions(t, old, n, true, NULL);
		if (rc) {
			/* open_partitions closed what it had opened. */
			remove_extra_partitions(t, old);
		} else if ((rc = store_write_topic_json(t, n)) != 0) {
			for (uint32_t i = old; i < n; i++) {
				tfs_partition_close(t->parts[i], TFS_EDELETED);
				tfs_partition_unref(t->parts[i]);
			}
			remove_extra_partitions(t, old);
		} else {
			t->nparts = n;
			tfs_info("topic %s: %u partitions", t->name, n);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tfs_topic_set_config(struct tfs_topic *t, const char *key,
			 const char *value, char *err, size_t errlen)
{
	int k = tfs_conf_find(key);
	int64_t v, oldv;
	bool oldset;
	int rc;

	if (k < 0 || tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC)
		return -ENOENT;
	rc = tfs_conf_parse(k, value, &v, err, errlen);
	if (rc)
		return rc;
	pthread_mutex_lock(&t->lock);
	if (t->deleted) {
		pthread_mutex_unlock(&t->lock);
		return -ENOENT;
	}
	oldv = tfs_settings_get(t->settings, k);
	oldset = t->explicit[k];
	atomic_store(&t->settings->v[k], v);
	t->explicit[k] = true;
	rc = store_write_topic_json(t, t->nparts);
	if (rc) {
		atomic_store(&t->settings->v[k], oldv);
		t->explicit[k] = oldset;
		snprintf(err, errlen, "cannot save %s: %s", TOPIC_META,
			 tfs_strerror(rc));
	} else {
		tfs_info("topic %s: %s = %s", t->name, key, value);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tfs_topic_get_config(struct tfs_topic *t, enum tfs_conf_key key,
			 char *buf, size_t len)
{
	return tfs_conf_format(key, tfs_settings_get(t->settings, key), buf,
			       len);
}
