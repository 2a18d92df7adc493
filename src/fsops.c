/*
 * fsops.c - the FUSE front end: the file contract on libfuse's low-level
 * API.
 *
 * NAMESPACE AND INODES
 *
 * Inode numbers are computed, not allocated, so no table has to track
 * lookups and forgets:
 *
 *   1                      the mount's root (topics)
 *   2, 3, 4                .topicfs/, .topicfs/status, .topicfs/metrics
 *   id << 32 | k << 28 | p  topic id (never reused), kind k, partition p:
 *                          k = 1 topic dir, 2 partition, 3 .follow dir,
 *                          4 .follow/<p>
 *
 * A stale inode of a deleted topic resolves to nothing (ENOENT), never to
 * a newer topic.
 *
 * CACHING
 *
 * Partition files are opened with direct_io: every read and write reaches
 * the daemon, so no reader is ever served a stale page and every O_APPEND
 * write lands at the true end, whatever size the kernel believes.  Their
 * attributes are never cached (attr_timeout 0), so stat() and tail -f
 * always see the committed size.  Directory attributes and entries are
 * cached for a second; the writeback cache and asynchronous direct I/O are
 * turned off (both corrupt appends; see docs/DESIGN.md).
 *
 * WRITES
 *
 * Each open file keeps the trailing partial line of its writes; a write
 * commits the whole lines it completes as one batch and holds the rest,
 * close() commits a held line with '\n' added.  Batches of two writers
 * never interleave inside a record because only whole lines are appended.
 *
 * A record longer than max.record.bytes fails the write that carries it
 * with EFBIG, and none of that write's records is stored; a held partial
 * line it belongs to, or that the write would have completed, is
 * dropped.  Two things make this harder than it looks.  The kernel cuts a
 * write() at max_write and sends the pieces one by one; when a later
 * piece fails, write() returns the short count of the pieces before it,
 * our EFBIG is lost, and the program re-sends the rest.  And buffered
 * writers (stdio, Python, shippers) re-send a buffer whose write failed.
 * So, per open file:
 *
 *  - If the refused record's start had been accepted (held), the rest of
 *    that line is refused too ("dropping"): later writes fail with EFBIG
 *    up to and including the one that carries the line's '\n'.  As the
 *    file's byte stream sees it, a program that gives such a line up
 *    starts its next line inside it.
 *  - The bytes of the last refused write (up to the end of the refused
 *    record) are kept.  A write that starts with them is a re-send: the
 *    first one is refused again (its first piece is refused, so the
 *    program surely gets EFBIG), a later one has them dropped and the rest
 *    of the write stored.  So neither a fragment of a refused record nor a
 *    duplicate is ever stored.
 *
 * PARKED REQUESTS
 *
 * A .follow read at the committed end, an fsync, and a durability=sync
 * write are parked, not blocked: the request is answered later by the
 * thread that completes it (the appender, the sync worker), so a thousand
 * idle followers hold no threads.  A parked read is interruptible; the
 * interrupt and the wake-up race for the request through
 * tfs_partition_wait_cancel(), and the wake-up first clears the interrupt
 * callback (which waits for a running one) before it replies.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "err.h"
#include "fsops.h"
#include "log.h"
#include "status.h"
#include "util.h"

#define INO_META 2
#define INO_STATUS 3
#define INO_METRICS 4
#define XATTR_PREFIX "user.topicfs."
#define BLKSIZE (1 << 20)
#define DIR_TIMEOUT 1.0

enum kind {
	K_NONE,
	K_TOPIC = 1,
	K_PART = 2,
	K_FDIR = 3,
	K_FOLLOW = 4,
	K_ROOT,
	K_META,
	K_STATUS,
	K_METRICS,
};

struct tfs_fs {
	struct tfs_store *store;
	const struct tfs_conf *conf;
	struct fuse_session *se;
	const char *mountpoint;
	const char *version;
	int64_t started_wall;
	uid_t uid;
	gid_t gid;

	pthread_mutex_t lock;
	struct tfs_list handles;	/* (lock) every open file */
	atomic_ullong nhandles;
	atomic_ullong parked_reads;
	atomic_bool detached;		/* lazily unmounted: park no reads */
};

/* What an inode number names, with references held. */
struct node {
	enum kind kind;
	struct tfs_topic *t;
	struct tfs_partition *p;
	uint32_t part;
	fuse_ino_t ino;
};

struct poll_wait;

/* An open file. */
struct handle {
	atomic_int refs;
	enum kind kind;
	struct tfs_fs *fs;
	struct tfs_topic *t;		/* partitions: their topic */
	struct tfs_partition *p;
	bool writable;
	struct tfs_list link;		/* fs->handles */

	pthread_mutex_t mu;
	struct tfs_buf partial;		/* (mu) trailing partial line */
	/* EFBIG state (see WRITES above), all (mu): */
	bool dropping;			/* refuse writes up to a line's end */
	bool skipping;			/* drop a re-sent refused line's rest */
	struct tfs_buf refused;		/* the last refused write's bytes */
	size_t refused_pos;		/* how much of it a re-send matched */
	bool refused_told;		/* the program surely got EFBIG */
	bool refused_line_ends;		/* refused ends with the line's '\n' */
	struct poll_wait *pw;		/* (mu) the registered poll, or NULL */
	_Atomic uint64_t pos;		/* end of the last read */

	char *text;			/* status and metrics snapshots */
	size_t text_len;
};

struct dirent_list {
	size_t n;
	struct {
		char *name;
		fuse_ino_t ino;
		mode_t type;
	} *e;
};

static struct tfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static void reply_code(fuse_req_t req, int code)
{
	fuse_reply_err(req, tfs_err_to_errno(code));
}

/* --- inodes ---------------------------------------------------------------- */

static fuse_ino_t make_ino(uint32_t topic, enum kind k, uint32_t part)
{
	return (fuse_ino_t)topic << 32 | (fuse_ino_t)k << 28 | part;
}

static void node_release(struct node *n)
{
	tfs_partition_unref(n->p);
	tfs_topic_unref(n->t);
	n->p = NULL;
	n->t = NULL;
}

/* Resolves ino.  Returns 0 or -ENOENT. */
static int resolve(struct tfs_fs *fs, fuse_ino_t ino, struct node *n)
{
	memset(n, 0, sizeof(*n));
	n->ino = ino;
	switch (ino) {
	case FUSE_ROOT_ID:
		n->kind = K_ROOT;
		return 0;
	case INO_META:
		n->kind = K_META;
		return 0;
	case INO_STATUS:
		n->kind = K_STATUS;
		return 0;
	case INO_METRICS:
		n->kind = K_METRICS;
		return 0;
	}
	uint32_t id = (uint32_t)(ino >> 32);
	enum kind k = (enum kind)((ino >> 28) & 0xf);

	if (id == 0 || k < K_TOPIC || k > K_FOLLOW)
		return -ENOENT;
	n->kind = k;
	n->part = (uint32_t)(ino & 0x0fffffff);
	n->t = tfs_store_topic_by_id(fs->store, id);
	if (!n->t)
		return -ENOENT;
	if (k == K_PART || k == K_FOLLOW) {
		n->p = tfs_topic_partition(n->t, n->part);
		if (!n->p) {
			node_release(n);
			return -ENOENT;
		}
	}
	return 0;
}

/* Parses a canonical partition number ("0", "12", not "012"). */
static bool parse_partition(const char *name, uint32_t *out)
{
	uint64_t v = 0;

	if (!*name || (name[0] == '0' && name[1]))
		return false;
	for (const char *c = name; *c; c++) {
		if (*c < '0' || *c > '9' || c - name > 9)
			return false;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	if (v >= (1u << 28))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Resolves name in the directory parent.  Returns 0 or -ENOENT. */
static int lookup_child(struct tfs_fs *fs, struct node *parent,
			const char *name, struct node *out)
{
	uint32_t part;
	fuse_ino_t ino = 0;

	switch (parent->kind) {
	case K_ROOT:
		if (!strcmp(name, ".topicfs")) {
			ino = INO_META;
		} else if (tfs_topic_name_valid(name)) {
			struct tfs_topic *t =
				tfs_store_find_topic(fs->store, name);
			if (t) {
				ino = make_ino(t->id, K_TOPIC, 0);
				tfs_topic_unref(t);
			}
		}
		break;
	case K_META:
		if (!strcmp(name, "status"))
			ino = INO_STATUS;
		else if (!strcmp(name, "metrics"))
			ino = INO_METRICS;
		break;
	case K_TOPIC:
		if (!strcmp(name, ".follow"))
			ino = make_ino(parent->t->id, K_FDIR, 0);
		else if (parse_partition(name, &part))
			ino = make_ino(parent->t->id, K_PART, part);
		break;
	case K_FDIR:
		if (parse_partition(name, &part))
			ino = make_ino(parent->t->id, K_FOLLOW, part);
		break;
	default:
		return -ENOTDIR;
	}
	if (!ino)
		return -ENOENT;
	return resolve(fs, ino, out);
}

/* Whether name exists in parent: 0, -ENOENT, -ENOTDIR. */
static int probe_child(struct tfs_fs *fs, fuse_ino_t parent, const char *name)
{
	struct node pn, n;
	int rc = resolve(fs, parent, &pn);

	if (rc)
		return rc;
	rc = lookup_child(fs, &pn, name, &n);
	node_release(&pn);
	if (rc == 0)
		node_release(&n);
	return rc;
}

/* --- attributes ------------------------------------------------------------ */

static void set_time(struct stat *st, int64_t ms)
{
	st->st_mtim.tv_sec = ms / 1000;
	st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void fill_attr(struct tfs_fs *fs, struct node *n, struct stat *st)
{
	struct tfs_partition_info in;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = BLKSIZE;
	switch (n->kind) {
	case K_ROOT: {
		size_t cnt;
		struct tfs_topic **v = tfs_store_topics(fs->store, &cnt);

		tfs_store_topics_free(v, cnt);
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 3 + cnt;
		set_time(st, fs->started_wall);
		break;
	}
	case K_META:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		set_time(st, fs->started_wall);
		break;
	case K_STATUS:
	case K_METRICS:
		/* Generated at open; direct_io reads it to the end. */
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		set_time(st, tfs_now_ms());
		break;
	case K_TOPIC:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 3;
		set_time(st, n->t->created);
		break;
	case K_FDIR:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		set_time(st, n->t->created);
		break;
	case K_PART:
	case K_FOLLOW:
		tfs_partition_info(n->p, &in);
		st->st_mode = S_IFREG | (n->kind == K_PART ? 0644 : 0444);
		st->st_nlink = 1;
		st->st_size = (off_t)in.hw;
		st->st_blocks = (blkcnt_t)((in.disk_bytes + 511) / 512);
		set_time(st, in.last_ts ? in.last_ts : n->t->created);
		break;
	default:
		break;
	}
}

static double attr_timeout(enum kind k)
{
	switch (k) {
	case K_PART:
	case K_FOLLOW:
	case K_STATUS:
	case K_METRICS:
		return 0;	/* the size changes behind the kernel's back */
	default:
		return DIR_TIMEOUT;
	}
}

static void reply_entry(fuse_req_t req, struct tfs_fs *fs, struct node *n)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = n->ino;
	e.attr_timeout = attr_timeout(n->kind);
	e.entry_timeout = DIR_TIMEOUT;
	fill_attr(fs, n, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_fs *fs = fs_of(req);
	struct node pn, n;
	int rc = resolve(fs, parent, &pn);

	if (rc == 0) {
		rc = lookup_child(fs, &pn, name, &n);
		node_release(&pn);
	}
	if (rc) {
		reply_code(req, rc);
		return;
	}
	reply_entry(req, fs, &n);
	node_release(&n);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct node n;
	struct stat st;
	int rc = resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	fill_attr(fs, &n, &st);
	fuse_reply_attr(req, &st, attr_timeout(n.kind));
	node_release(&n);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	/* Sizes, modes and owners are the log's, not the user's; time
	 * updates (touch) are accepted and have no effect. */
	if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE |
		      FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op_getattr(req, ino, fi);
}

/* --- directories ----------------------------------------------------------- */

static void dl_add(struct dirent_list *dl, const char *name, fuse_ino_t ino,
		   mode_t type)
{
	dl->e = tfs_realloc(dl->e, (dl->n + 1) * sizeof(*dl->e));
	dl->e[dl->n].name = tfs_strdup(name);
	dl->e[dl->n].ino = ino;
	dl->e[dl->n].type = type;
	dl->n++;
}

static void dl_free(struct dirent_list *dl)
{
	for (size_t i = 0; i < dl->n; i++)
		free(dl->e[i].name);
	free(dl->e);
	free(dl);
}

/* Lists a directory once, at opendir, so readdir offsets stay stable. */
static struct dirent_list *list_dir(struct tfs_fs *fs, struct node *n,
				    fuse_ino_t parent)
{
	struct dirent_list *dl = tfs_calloc(1, sizeof(*dl));
	char num[16];

	dl_add(dl, ".", n->ino, S_IFDIR);
	dl_add(dl, "..", parent, S_IFDIR);
	if (n->kind == K_ROOT) {
		size_t cnt;
		struct tfs_topic **v = tfs_store_topics(fs->store, &cnt);

		dl_add(dl, ".topicfs", INO_META, S_IFDIR);
		for (size_t i = 0; i < cnt; i++)
			dl_add(dl, v[i]->name, make_ino(v[i]->id, K_TOPIC, 0),
			       S_IFDIR);
		tfs_store_topics_free(v, cnt);
	} else if (n->kind == K_META) {
		dl_add(dl, "status", INO_STATUS, S_IFREG);
		dl_add(dl, "metrics", INO_METRICS, S_IFREG);
	} else {
		uint32_t np = tfs_topic_partitions(n->t);
		enum kind fk = n->kind == K_TOPIC ? K_PART : K_FOLLOW;

		if (n->kind == K_TOPIC)
			dl_add(dl, ".follow", make_ino(n->t->id, K_FDIR, 0),
			       S_IFDIR);
		for (uint32_t i = 0; i < np; i++) {
			snprintf(num, sizeof(num), "%" PRIu32, i);
			dl_add(dl, num, make_ino(n->t->id, fk, i), S_IFREG);
		}
	}
	return dl;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct node n;
	int rc = resolve(fs, ino, &n);
	fuse_ino_t parent = FUSE_ROOT_ID;

	if (rc) {
		reply_code(req, rc);
		return;
	}
	switch (n.kind) {
	case K_ROOT:
	case K_META:
	case K_TOPIC:
		break;
	case K_FDIR:
		parent = make_ino(n.t->id, K_TOPIC, 0);
		break;
	default:
		node_release(&n);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = (uintptr_t)list_dir(fs, &n, parent);
	node_release(&n);
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirent_list *dl = (struct dirent_list *)(uintptr_t)fi->fh;
	char *buf = tfs_malloc(size);
	size_t used = 0;

	for (size_t i = (size_t)off; i < dl->n; i++) {
		struct stat st = { .st_ino = dl->e[i].ino,
				   .st_mode = dl->e[i].type };
		size_t need = fuse_add_direntry(req, buf + used, size - used,
						dl->e[i].name, &st,
						(off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	dl_free((struct dirent_list *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_topic *t;
	struct node n;
	int rc;

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!strcmp(name, ".topicfs")) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	rc = tfs_store_create_topic(fs->store, name, &t);
	if (rc) {
		if (rc == -EINVAL)
			tfs_info("mkdir %s: invalid topic name (allowed: "
				 "[A-Za-z0-9._-], 1 to 249, not starting "
				 "with '.')",
				 name);
		reply_code(req, rc);
		return;
	}
	rc = resolve(fs, make_ino(t->id, K_TOPIC, 0), &n);
	tfs_topic_unref(t);
	if (rc) {
		reply_code(req, rc);
		return;
	}
	reply_entry(req, fs, &n);
	node_release(&n);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_fs *fs = fs_of(req);
	int rc;

	if (parent != FUSE_ROOT_ID || !strcmp(name, ".topicfs")) {
		/* .follow and .topicfs are part of the contract. */
		rc = probe_child(fs, parent, name);
		fuse_reply_err(req, rc == 0 ? EPERM : tfs_err_to_errno(rc));
		return;
	}
	rc = tfs_store_delete_topic(fs->store, name);
	if (rc == -EPERM)
		tfs_info("rmdir %s: refused, delete.topic.enable is off", name);
	reply_code(req, rc);
}

/* Unlink, rename, link, symlink, mknod, create: the namespace is fixed. */
static void refuse_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int rc = probe_child(fs_of(req), parent, name);

	/* Existing names and new names alike: not permitted. */
	fuse_reply_err(req, rc == 0 || rc == -ENOENT ? EPERM
						     : tfs_err_to_errno(rc));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int rc = probe_child(fs_of(req), parent, name);

	fuse_reply_err(req, rc == 0 ? EPERM : tfs_err_to_errno(rc));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	refuse_name(req, parent, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	refuse_name(req, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	fuse_reply_err(req, EPERM);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	refuse_name(req, parent, name);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (statvfs(tfs_store_dir(fs_of(req)->store), &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = TFS_TOPIC_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* --- handles ----------------------------------------------------------------- */

static struct handle *handle_new(struct tfs_fs *fs, struct node *n)
{
	struct handle *h = tfs_calloc(1, sizeof(*h));

	atomic_init(&h->refs, 1);
	h->kind = n->kind;
	h->fs = fs;
	if (n->t)
		h->t = tfs_topic_ref(n->t);
	if (n->p)
		h->p = tfs_partition_ref(n->p);
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_lock(&fs->lock);
	tfs_list_add_tail(&fs->handles, &h->link);
	pthread_mutex_unlock(&fs->lock);
	atomic_fetch_add(&fs->nhandles, 1);
	return h;
}

static struct handle *handle_ref(struct handle *h)
{
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
	return h;
}

static void handle_unref(struct handle *h)
{
	if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&h->fs->lock);
	tfs_list_del(&h->link);
	pthread_mutex_unlock(&h->fs->lock);
	atomic_fetch_sub(&h->fs->nhandles, 1);
	tfs_buf_release(&h->partial);
	tfs_buf_release(&h->refused);
	tfs_partition_unref(h->p);
	tfs_topic_unref(h->t);
	pthread_mutex_destroy(&h->mu);
	free(h->text);
	free(h);
}

static void make_text(struct tfs_fs *fs, struct handle *h)
{
	struct tfs_node_info info = {
		.version = fs->version,
		.mountpoint = fs->mountpoint,
		.data_dir = tfs_store_dir(fs->store),
		.started_mono_ms = tfs_store_started(fs->store),
		.open_handles = atomic_load(&fs->nhandles),
		.parked_reads = atomic_load(&fs->parked_reads),
	};
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	info.node = host;
	if (h->kind == K_STATUS)
		h->text = tfs_status_json(fs->store, &info, &h->text_len);
	else
		h->text = tfs_status_metrics(fs->store, &info, &h->text_len);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	bool write = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct handle *h;
	struct node n;
	int rc = resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	if (n.kind != K_PART && n.kind != K_FOLLOW && n.kind != K_STATUS &&
	    n.kind != K_METRICS) {
		rc = -EISDIR;
	} else if (fi->flags & O_TRUNC) {
		rc = -EPERM;	/* an append-only file is never truncated */
	} else if (write && (n.kind != K_PART || !(fi->flags & O_APPEND))) {
		/* The chattr +a rule: writing needs O_APPEND. */
		rc = -EPERM;
	}
	if (rc) {
		if (rc == -EPERM && n.kind == K_PART)
			tfs_debug("open %s/%u: write without O_APPEND refused",
				  n.t->name, n.part);
		node_release(&n);
		reply_code(req, rc);
		return;
	}
	h = handle_new(fs, &n);
	h->writable = write;
	node_release(&n);
	if (h->kind == K_STATUS || h->kind == K_METRICS)
		make_text(fs, h);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* Only writers hold partial lines that close() must commit. */
	fi->noflush = !write;
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_unref(h);	/* the opener was interrupted */
}

/* --- reading ---------------------------------------------------------------- */

/*
 * Replies with committed bytes at off.  Returns 1 if it replied (data or
 * error), 0 if there is nothing at off yet (nothing sent).
 */
static int reply_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct tfs_readv rv;
	int rc = tfs_partition_read(h->p, (uint64_t)off, size, &rv);

	if (rc) {
		reply_code(req, rc);
		return 1;
	}
	if (rv.len == 0)
		return 0;

	struct fuse_bufvec *bv = tfs_calloc(
		1, sizeof(*bv) + (size_t)rv.n * sizeof(struct fuse_buf));
	bv->count = (size_t)rv.n;
	for (int i = 0; i < rv.n; i++) {
		bv->buf[i].size = rv.ext[i].len;
		if (rv.ext[i].mem) {
			/* A decompressed frame of a compressed segment. */
			bv->buf[i].mem = (void *)rv.ext[i].mem;
		} else {
			bv->buf[i].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			bv->buf[i].fd = rv.ext[i].fd;
			bv->buf[i].pos = (off_t)rv.ext[i].pos;
		}
	}
	atomic_store(&h->pos, (uint64_t)off + rv.len);
	fuse_reply_data(req, bv, 0);
	free(bv);
	tfs_readv_release(&rv);
	return 1;
}

/* A .follow read parked at the end. */
struct follow_read {
	atomic_int refs;
	atomic_bool interrupted;
	struct tfs_waiter w;
	fuse_req_t req;
	struct handle *h;
	size_t size;
	off_t off;
};

static void follow_put(struct follow_read *fr)
{
	if (atomic_fetch_sub(&fr->refs, 1) != 1)
		return;
	atomic_fetch_sub(&fr->h->fs->parked_reads, 1);
	handle_unref(fr->h);
	free(fr);
}

/* Answers a follow read whose waiter this thread owns. */
static void follow_answer(struct follow_read *fr, int status)
{
	/* No interrupt callback may run past this point. */
	fuse_req_interrupt_func(fr->req, NULL, NULL);
	if (status || !reply_read(fr->req, fr->h, fr->size, fr->off))
		fuse_reply_buf(fr->req, NULL, 0);	/* end of file */
	follow_put(fr);
}

static void follow_wake(struct tfs_waiter *w, int status)
{
	follow_answer(tfs_container_of(w, struct follow_read, w), status);
}

static void follow_interrupt(fuse_req_t req, void *data)
{
	struct follow_read *fr = data;

	/* Seen by follow_park if the wait was not registered yet. */
	atomic_store(&fr->interrupted, true);
	if (tfs_partition_wait_cancel(fr->h->p, &fr->w)) {
		fuse_reply_err(req, EINTR);
		follow_put(fr);
	}
}

static void follow_park(fuse_req_t req, struct handle *h, size_t size,
			off_t off)
{
	struct follow_read *fr = tfs_calloc(1, sizeof(*fr));
	int rc;

	atomic_init(&fr->refs, 2);	/* this thread, and the parked wait */
	fr->req = req;
	fr->h = handle_ref(h);
	fr->size = size;
	fr->off = off;
	fr->w.offset = (uint64_t)off;
	fr->w.wake = follow_wake;
	atomic_fetch_add(&h->fs->parked_reads, 1);
	fuse_req_interrupt_func(req, follow_interrupt, fr);
	rc = tfs_partition_wait(h->p, &fr->w);
	if (rc != 0) {
		/* Not parked: data came meanwhile (1) or the partition is
		 * gone (< 0).  This thread answers. */
		follow_answer(fr, rc < 0 ? rc : 0);
	} else if ((atomic_load(&fr->interrupted) ||
		    atomic_load(&h->fs->detached)) &&
		   tfs_partition_wait_cancel(h->p, &fr->w)) {
		/* Interrupted before the wait was registered, or the mount
		 * was detached while it was (mount_watch's sweep may have
		 * missed it).  Once parked, req belongs to whoever unparks
		 * it: only fr is safe to look at here, through this thread's
		 * reference. */
		fuse_req_interrupt_func(req, NULL, NULL);
		if (atomic_load(&fr->interrupted))
			fuse_reply_err(req, EINTR);
		else
			fuse_reply_buf(req, NULL, 0);
		follow_put(fr);
	}
	follow_put(fr);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	switch (h->kind) {
	case K_STATUS:
	case K_METRICS:
		/* The kernel completes the read while our writev of the
		 * reply is still returning; the reader may then close, and
		 * a release on another thread free the text under us. */
		handle_ref(h);
		if ((size_t)off >= h->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->text + off,
				       TFS_MIN(size, h->text_len - (size_t)off));
		handle_unref(h);
		return;
	case K_PART:
		if (!reply_read(req, h, size, off))
			fuse_reply_buf(req, NULL, 0);
		return;
	case K_FOLLOW:
		if (reply_read(req, h, size, off))
			return;
		if (fi->flags & O_NONBLOCK) {
			fuse_reply_err(req, EAGAIN);
			return;
		}
		if (atomic_load(&h->fs->detached)) {
			fuse_reply_buf(req, NULL, 0);	/* see mount_watch */
			return;
		}
		follow_park(req, h, size, off);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

/* --- writing ---------------------------------------------------------------- */

/*
 * An append on behalf of a request.  The request is never answered while
 * a lock is held: the writer's next write() arrives the moment it is, and
 * would find the open file still locked (a futex round trip per write).
 * So an append that completes inside tfs_partition_append() leaves the
 * answer to its submitter, which sends it after unlocking; one that
 * completes later (durability=sync) is answered by the thread that
 * completes it.  `state` settles which of the two it is.
 */
enum { WR_SUBMITTING, WR_LEFT, WR_DONE };

struct write_req {
	struct tfs_append a;
	fuse_req_t req;
	size_t reply;		/* bytes to report written */
	bool is_flush;
	atomic_int state;
	int status;
};

static void write_reply(struct write_req *wr)
{
	if (wr->status)
		reply_code(wr->req, wr->status);
	else if (wr->is_flush)
		fuse_reply_err(wr->req, 0);
	else
		fuse_reply_write(wr->req, wr->reply);
	free(wr);
}

static void write_done(struct tfs_append *a, int status)
{
	struct write_req *wr = tfs_container_of(a, struct write_req, a);
	int expect = WR_SUBMITTING;

	wr->status = status;
	if (atomic_compare_exchange_strong(&wr->state, &expect, WR_DONE))
		return;	/* the submitter answers once it has unlocked */
	write_reply(wr);
}

/*
 * The submitter's side: call after releasing every lock.  Answers the
 * writer if the append is complete, then wakes the readers it reached.
 */
static void submit_finish(struct write_req *wr)
{
	int expect = WR_SUBMITTING;
	struct tfs_list woken;

	/* wr may be gone once answered: take the woken readers first. */
	tfs_list_init(&woken);
	tfs_list_splice_tail(&woken, &wr->a.woken);
	if (!atomic_compare_exchange_strong(&wr->state, &expect, WR_LEFT))
		write_reply(wr);
	tfs_partition_wake_list(&woken);
}

static unsigned append_flags(struct handle *h)
{
	return tfs_settings_get(h->t->settings, TFS_CONF_DURABILITY) ==
				       TFS_DURABILITY_SYNC
		       ? TFS_APPEND_SYNC
		       : 0;
}

/*
 * Appends iov as one batch for request req (reply: bytes to report, or a
 * flush).  Returns 0 when accepted, with *pending to pass to
 * submit_finish() once h->mu is released; or the error, nothing answered.
 * h->mu held.
 */
static int submit(fuse_req_t req, struct handle *h, struct iovec *iov,
		  int iovcnt, size_t reply, bool is_flush,
		  struct write_req **pending)
{
	struct write_req *wr = tfs_calloc(1, sizeof(*wr));
	int rc;

	wr->req = req;
	wr->reply = reply;
	wr->is_flush = is_flush;
	atomic_init(&wr->state, WR_SUBMITTING);
	wr->a.iov = iov;
	wr->a.iovcnt = iovcnt;
	wr->a.flags = append_flags(h) | TFS_APPEND_DEFER_WAKE;
	wr->a.done = write_done;
	rc = tfs_partition_append(h->p, &wr->a);
	if (rc)
		free(wr);
	else
		*pending = wr;
	return rc;
}

/*
 * Finds the first record in [partial][b, b+n) longer than max, counting a
 * trailing partial line as too long once it leaves no room for the '\n'
 * close() adds.  Returns NULL if there is none; else the end of that
 * record in b (past its '\n', or b + n if it does not end in b), and
 * *first tells whether it is the line the held partial bytes begin.
 */
static const char *too_long(size_t partial, const char *b, size_t n,
			    size_t max, bool *first)
{
	const char *end = b + n, *line = b;
	size_t carry = partial;

	if (partial + n < max)
		return NULL;
	for (*first = true;; *first = false) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *stop = nl ? nl + 1 : end;
		size_t len = carry + (size_t)(stop - line);

		if (nl ? len > max : len >= max)
			return stop;
		if (!nl)
			return NULL;
		line = nl + 1;
		carry = 0;
	}
}

/* Forgets the bytes of the last refused write.  h->mu held. */
static void refused_forget(struct handle *h)
{
	tfs_buf_release(&h->refused);
	h->refused_pos = 0;
}

/*
 * Recognises a re-send of the last refused write at the start of [b, n):
 * the bytes must match what is left of it, all of it or at least a page
 * (the kernel may cut the re-send elsewhere).  Returns the number of
 * bytes that match, 0 if none.  h->mu held.
 */
static size_t refused_match(struct handle *h, const char *b, size_t n)
{
	size_t left = h->refused.len - h->refused_pos;
	size_t m = TFS_MIN(n, left);

	if (m == 0 || (m < left && m < 4096) ||
	    memcmp(b, h->refused.data + h->refused_pos, m))
		return 0;
	return m;
}

/*
 * Refuses the write [b, n) because of the too-long record that ends at
 * stop, held_start telling whether its start was accepted before.
 * h->mu held.
 */
static void refuse_record(struct handle *h, const char *b, size_t n,
			  const char *stop, bool held_start, size_t max)
{
	bool ends_line = stop > b && stop[-1] == '\n';

	tfs_info("%s: record longer than max.record.bytes (%zu) refused",
		 h->p->name, max);
	/* The held bytes belong to the refused record, or to a line this
	 * write would have completed: neither can be stored now. */
	tfs_buf_reset(&h->partial);
	refused_forget(h);
	tfs_buf_add(&h->refused, b, (size_t)(stop - b));
	h->refused_told = false;
	h->refused_line_ends = ends_line;
	h->dropping = held_start && !ends_line;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	size_t max = (size_t)tfs_conf_get(h->fs->conf,
					  TFS_CONF_MAX_RECORD_BYTES);
	const char *b = buf, *stop;
	size_t n = size, m;
	bool first;
	int rc = 0;

	if (h->kind != K_PART || !h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&h->mu);
	if (h->refused.len) {
		m = refused_match(h, b, n);
		if (m && !h->refused_told) {
			/* A re-send after a short count that hid our EFBIG
			 * (or a retry): refuse it, so the program hears. */
			h->refused_told = true;
			h->refused_pos = 0;
			rc = -EFBIG;
			goto out_unlock;
		}
		if (m) {
			/* A retry of a buffer whose failure was reported:
			 * the refused bytes go, the rest is new. */
			h->refused_pos += m;
			b += m;
			n -= m;
			h->dropping = false;
			if (h->refused_pos == h->refused.len) {
				h->skipping = !h->refused_line_ends;
				refused_forget(h);
			}
		} else {
			refused_forget(h);
		}
	}
	if (h->skipping) {
		/* The rest of a re-sent refused record, up to its '\n'. */
		const char *nl = memchr(b, '\n', n);

		if (!nl)
			goto out_accept;
		n -= (size_t)(nl + 1 - b);
		b = nl + 1;
		h->skipping = false;
	}
	if (h->dropping) {
		/* The rest of a line refused with EFBIG: refused too, up to
		 * and including the write that ends it.  This write's first
		 * piece is refused, so the program hears of it. */
		const char *nl = memchr(b, '\n', n);

		if (nl) {
			h->dropping = false;
			refused_forget(h);
			tfs_buf_add(&h->refused, b, (size_t)(nl + 1 - b));
			h->refused_told = true;
			h->refused_line_ends = true;
		}
		rc = -EFBIG;
		goto out_unlock;
	}
	stop = too_long(h->partial.len, b, n, max, &first);
	if (stop) {
		refuse_record(h, b, n, stop, first && h->partial.len, max);
		rc = -EFBIG;
		goto out_unlock;
	}
	const char *last = memrchr(b, '\n', n);
	if (!last) {
		tfs_buf_add(&h->partial, b, n);
		goto out_accept;
	}
	size_t whole = (size_t)(last + 1 - b);
	struct iovec iov[2];
	int cnt = 0;

	if (h->partial.len)
		iov[cnt++] = (struct iovec){ h->partial.data, h->partial.len };
	iov[cnt++] = (struct iovec){ (void *)b, whole };
	struct write_req *wr;
	rc = submit(req, h, iov, cnt, size, false, &wr);
	if (rc == 0) {
		/* Keep the new partial line; answer after unlocking. */
		tfs_buf_reset(&h->partial);
		tfs_buf_add(&h->partial, last + 1, n - whole);
		pthread_mutex_unlock(&h->mu);
		submit_finish(wr);
		return;
	}
	goto out_unlock;

out_accept:
	pthread_mutex_unlock(&h->mu);
	fuse_reply_write(req, size);
	return;
out_unlock:
	pthread_mutex_unlock(&h->mu);
	reply_code(req, rc);
}

static void release_done(struct tfs_append *a, int status)
{
	free(tfs_container_of(a, struct write_req, a));
}

/*
 * Commits a held partial line with '\n'.  With req (a flush): returns the
 * pending append to finish after unlocking, or NULL with *answer the code
 * to answer req with (0 when there was nothing to commit).  Without req
 * (release): nothing to answer.  h->mu held.
 */
static struct write_req *commit_partial(fuse_req_t req, struct handle *h,
					int *answer)
{
	struct write_req *wr = NULL;
	int rc = 0;

	*answer = 0;
	if (h->partial.len == 0)
		return NULL;
	tfs_buf_add(&h->partial, "\n", 1);
	struct iovec iov = { h->partial.data, h->partial.len };
	if (req) {
		rc = submit(req, h, &iov, 1, 0, true, &wr);
	} else {
		struct write_req *rel = tfs_calloc(1, sizeof(*rel));

		/* Release has no one to answer: only the data matters. */
		rel->a.iov = &iov;
		rel->a.iovcnt = 1;
		rel->a.flags = append_flags(h);
		rel->a.done = release_done;
		rc = tfs_partition_append(h->p, &rel->a);
		if (rc) {
			free(rel);
			tfs_warn("%s: partial line lost at close: %s",
				 h->p->name, tfs_strerror(rc));
		}
	}
	if (rc == 0 || !req) {
		tfs_buf_reset(&h->partial);
	} else {
		/* Keep it for a later attempt (at release). */
		h->partial.data[--h->partial.len] = '\0';
		*answer = rc;
	}
	return wr;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if (h->kind != K_PART || !h->writable) {
		fuse_reply_err(req, 0);
		return;
	}
	struct write_req *wr;
	int answer;

	pthread_mutex_lock(&h->mu);
	wr = commit_partial(req, h, &answer);
	pthread_mutex_unlock(&h->mu);
	if (wr)
		submit_finish(wr);
	else
		reply_code(req, answer);
}

static void poll_release(struct handle *h);

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if (h->kind == K_PART && h->writable) {
		int unused;

		pthread_mutex_lock(&h->mu);
		commit_partial(NULL, h, &unused);
		pthread_mutex_unlock(&h->mu);
	}
	poll_release(h);
	handle_unref(h);
	fuse_reply_err(req, 0);
}

struct sync_req {
	struct tfs_syncreq r;
	fuse_req_t req;
};

static void sync_done(struct tfs_syncreq *r, int status)
{
	struct sync_req *sr = tfs_container_of(r, struct sync_req, r);

	reply_code(sr->req, status);
	free(sr);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct sync_req *sr;
	int rc;

	if (h->kind != K_PART) {
		fuse_reply_err(req, 0);
		return;
	}
	sr = tfs_calloc(1, sizeof(*sr));
	sr->req = req;
	sr->r.done = sync_done;
	rc = tfs_partition_sync(h->p, &sr->r);
	if (rc != 0) {
		free(sr);
		reply_code(req, rc == 1 ? 0 : rc);
	}
}

/* --- poll and seek ----------------------------------------------------------- */

/*
 * A registered poll: one per POLL request that asked to be notified, never
 * reused.  The wake-up of an older one may still be running (its waiter
 * off the partition's list, not yet done) when the next POLL on the same
 * file arrives, or another thread polls the same file at once: a waiter
 * embedded in the handle would then be parked twice and corrupt the
 * partition's list (found by follow.bats, 48 threads polling one file).
 */
struct poll_wait {
	struct tfs_waiter w;
	struct handle *h;		/* a reference */
	struct fuse_pollhandle *ph;
};

static void poll_wait_free(struct poll_wait *pw)
{
	fuse_pollhandle_destroy(pw->ph);
	handle_unref(pw->h);
	free(pw);
}

static void poll_wake(struct tfs_waiter *w, int status)
{
	struct poll_wait *pw = tfs_container_of(w, struct poll_wait, w);
	struct handle *h = pw->h;

	fuse_lowlevel_notify_poll(pw->ph);
	pthread_mutex_lock(&h->mu);
	if (h->pw == pw)
		h->pw = NULL;
	pthread_mutex_unlock(&h->mu);
	poll_wait_free(pw);
}

/*
 * Drops the registered poll unless its wake-up already took it (then the
 * wake-up frees it).  h->mu held; the caller holds a reference to h
 * besides the poll's.
 */
static void poll_cancel(struct handle *h)
{
	struct poll_wait *pw = h->pw;

	h->pw = NULL;
	if (pw && tfs_partition_wait_cancel(h->p, &pw->w))
		poll_wait_free(pw);
}

static void poll_release(struct handle *h)
{
	if (!h->p)
		return;
	pthread_mutex_lock(&h->mu);
	poll_cancel(h);
	pthread_mutex_unlock(&h->mu);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	struct handle *h = handle_of(fi);
	struct tfs_bounds in;
	unsigned revents = 0;

	if (h->kind != K_FOLLOW) {
		/* Regular files are always ready, as on any file system. */
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLRDNORM |
					     (h->writable ? POLLOUT : 0));
		return;
	}
	pthread_mutex_lock(&h->mu);
	poll_cancel(h);
	tfs_partition_bounds(h->p, &in);
	uint64_t pos = atomic_load(&h->pos);

	if (in.hw > pos) {
		revents = POLLIN | POLLRDNORM;
	} else if (atomic_load(&h->fs->detached)) {
		revents = POLLIN | POLLHUP;	/* a read gives end of file */
	} else if (ph) {
		struct poll_wait *pw = tfs_calloc(1, sizeof(*pw));
		int rc;

		pw->h = handle_ref(h);
		pw->ph = ph;
		pw->w.offset = pos;
		pw->w.wake = poll_wake;
		ph = NULL;
		rc = tfs_partition_wait(h->p, &pw->w);
		if (rc == 0) {
			h->pw = pw;
		} else {
			poll_wait_free(pw);
			revents = rc == 1 ? POLLIN | POLLRDNORM : POLLHUP;
		}
	}
	pthread_mutex_unlock(&h->mu);
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, revents);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct tfs_bounds in;
	uint64_t o = (uint64_t)off;

	if (!h->p || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	tfs_partition_bounds(h->p, &in);
	if (off < 0 || o >= in.hw) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	/* Bytes deleted by retention read as a hole before the start. */
	if (whence == SEEK_DATA)
		fuse_reply_lseek(req, (off_t)TFS_MAX(o, in.start));
	else
		fuse_reply_lseek(req, (off_t)(o < in.start ? o : in.hw));
}

/* --- extended attributes ------------------------------------------------------ */

static void reply_value(fuse_req_t req, const char *v, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

static const char *const part_attrs[] = { "start", "end", "records", NULL };

/* Parses a non-negative decimal; false if anything else. */
static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static int partition_xattr(struct node *n, const char *key, char *buf,
			   size_t len)
{
	struct tfs_bounds in;
	uint64_t v, off;
	int rc;

	tfs_partition_bounds(n->p, &in);
	if (!strcmp(key, "start"))
		return snprintf(buf, len, "%" PRIu64, in.start);
	if (!strcmp(key, "end"))
		return snprintf(buf, len, "%" PRIu64, in.hw);
	if (!strcmp(key, "records"))
		return snprintf(buf, len, "%" PRIu64, in.hw_record);
	if (!strncmp(key, "offset.", 7) && parse_u64(key + 7, &v)) {
		rc = tfs_partition_offset_of_record(n->p, v, &off);
		return rc ? rc : snprintf(buf, len, "%" PRIu64, off);
	}
	if (!strncmp(key, "time.", 5) && parse_u64(key + 5, &v) &&
	    v <= INT64_MAX) {
		rc = tfs_partition_offset_of_time(n->p, (int64_t)v, &off);
		return rc ? rc : snprintf(buf, len, "%" PRIu64, off);
	}
	return -ENODATA;
}

static int topic_xattr(struct node *n, const char *key, char *buf, size_t len)
{
	int k;

	if (!strcmp(key, "partitions"))
		return snprintf(buf, len, "%" PRIu32,
				tfs_topic_partitions(n->t));
	k = tfs_conf_find(key);
	if (k < 0 || tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC)
		return -ENODATA;
	return tfs_topic_get_config(n->t, k, buf, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct tfs_fs *fs = fs_of(req);
	char buf[128];
	struct node n;
	int rc = resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	rc = -ENODATA;
	if (!strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		const char *key = name + strlen(XATTR_PREFIX);

		if (n.kind == K_PART || n.kind == K_FOLLOW)
			rc = partition_xattr(&n, key, buf, sizeof(buf));
		else if (n.kind == K_TOPIC)
			rc = topic_xattr(&n, key, buf, sizeof(buf));
	}
	node_release(&n);
	if (rc < 0)
		reply_code(req, rc);
	else
		reply_value(req, buf, (size_t)rc, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_buf b = TFS_BUF_INIT;
	struct node n;
	int rc = resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	if (n.kind == K_PART || n.kind == K_FOLLOW) {
		for (int i = 0; part_attrs[i]; i++)
			tfs_buf_addf(&b, XATTR_PREFIX "%s%c", part_attrs[i],
				     '\0');
	} else if (n.kind == K_TOPIC) {
		tfs_buf_addf(&b, XATTR_PREFIX "partitions%c", '\0');
		for (int k = 0; k < TFS_CONF__COUNT; k++)
			if (tfs_conf_desc(k)->scope == TFS_SCOPE_TOPIC)
				tfs_buf_addf(&b, XATTR_PREFIX "%s%c",
					     tfs_conf_desc(k)->name, '\0');
	}
	node_release(&n);
	reply_value(req, b.data ? b.data : "", b.len, size);
	tfs_buf_release(&b);
}

/* Copies an xattr value into a string, trimming surrounding blanks (a
 * value written with echo ends with a newline). */
static bool value_string(const char *value, size_t size, char *out,
			 size_t len)
{
	while (size && (value[size - 1] == '\n' || value[size - 1] == ' ' ||
			value[size - 1] == '\0'))
		size--;
	while (size && *value == ' ') {
		value++;
		size--;
	}
	if (size >= len || memchr(value, '\0', size))
		return false;
	memcpy(out, value, size);
	out[size] = '\0';
	return true;
}

static int set_topic_xattr(struct node *n, const char *key, const char *val)
{
	char err[256] = "";
	uint64_t v;
	int rc;

	if (!strcmp(key, "partitions")) {
		if (!parse_u64(val, &v) || v > UINT32_MAX)
			return -EINVAL;
		rc = tfs_topic_set_partitions(n->t, (uint32_t)v);
		if (rc == -EINVAL)
			tfs_info("topic %s: partitions %s refused: may only "
				 "grow (now %u)",
				 n->t->name, val, tfs_topic_partitions(n->t));
		return rc;
	}
	rc = tfs_topic_set_config(n->t, key, val, err, sizeof(err));
	if (rc == -ENOENT)
		return -ENOTSUP;
	if (rc)
		tfs_info("topic %s: %s", n->t->name, err);
	return rc;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct tfs_fs *fs = fs_of(req);
	char val[256];
	struct node n;
	int rc = resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		rc = -ENOTSUP;
	} else if (n.kind == K_TOPIC) {
		if (flags & XATTR_CREATE)
			rc = -EEXIST;	/* every attribute always exists */
		else if (!value_string(value, size, val, sizeof(val)))
			rc = -EINVAL;
		else
			rc = set_topic_xattr(&n, name + strlen(XATTR_PREFIX),
					     val);
	} else if (n.kind == K_PART || n.kind == K_FOLLOW) {
		char probe[64];

		rc = partition_xattr(&n, name + strlen(XATTR_PREFIX), probe,
				     sizeof(probe));
		rc = rc == -ENODATA ? -ENOTSUP : -EPERM;
	} else {
		rc = -ENOTSUP;
	}
	node_release(&n);
	reply_code(req, rc);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))
				    ? ENODATA
				    : EPERM);
}

/* --- session ----------------------------------------------------------------- */

/*
 * A lazy unmount (umount -l, fusermount3 -u -z) detaches the mount at
 * once, but the kernel keeps the connection, and so this daemon, until
 * the last open file is closed; a reader parked at the end of a .follow
 * file would never close it.  This thread watches the mount table; once
 * our mount has left it, parked reads get end of file and no read parks
 * any more, so readers finish and close.  Writers that still hold files
 * keep writing until they close them; then the kernel ends the session as
 * after a plain unmount.
 *
 * The mount is known by its device number, read from the mount table
 * before and after mounting (the new fuse.topicfs entry), so the watcher
 * never sends a request to its own file system.
 */
struct mount_watch {
	struct tfs_fs *fs;
	char dev[32];		/* " maj:min " of our mount */
	int stop;		/* eventfd: the loop has ended */
	pthread_t thread;
};

/* Appends the " maj:min " of every fuse.topicfs mount to b. */
static void topicfs_devs(struct tfs_buf *b)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned id, parent;
		char dev[24];

		if (!strstr(line, " - fuse.topicfs ") ||
		    sscanf(line, "%u %u %23s", &id, &parent, dev) != 3)
			continue;
		tfs_buf_addf(b, " %s ", dev);
	}
	fclose(f);
}

/* Finds the device of the mount that appeared since `before`. */
static bool find_new_mount(const char *before, char *dev, size_t len)
{
	struct tfs_buf now = TFS_BUF_INIT;
	bool found = false;

	topicfs_devs(&now);
	for (char *p = now.data; p && *p && !found;) {
		char *end = strchr(p + 1, ' ');

		if (!end)
			break;
		size_t n = (size_t)(end - p + 1);
		if (n < len) {
			memcpy(dev, p, n);
			dev[n] = '\0';
			found = !strstr(before ? before : "", dev);
		}
		p = end + 1;
	}
	tfs_buf_release(&now);
	return found;
}

static bool still_mounted(const char *dev)
{
	struct tfs_buf now = TFS_BUF_INIT;
	bool found;

	topicfs_devs(&now);
	found = now.data && strstr(now.data, dev);
	tfs_buf_release(&now);
	return found;
}

static void *mount_watch_fn(void *arg)
{
	struct mount_watch *mw = arg;
	int mfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	struct pollfd pfd[2] = {
		{ .fd = mfd, .events = POLLPRI },
		{ .fd = mw->stop, .events = POLLIN },
	};

	pthread_setname_np(pthread_self(), "tfs-mountwatch");
	if (mfd < 0)
		return NULL;
	/* POLLPRI on mountinfo: the mount table changed. */
	while (poll(pfd, 2, -1) >= 0 || errno == EINTR) {
		if (pfd[1].revents)
			break;
		if ((pfd[0].revents & (POLLPRI | POLLERR)) &&
		    !still_mounted(mw->dev)) {
			tfs_info("%s was detached: parked reads end, writes go "
				 "on until their files close",
				 mw->fs->mountpoint);
			atomic_store(&mw->fs->detached, true);
			tfs_store_wake_readers(mw->fs->store, TFS_ESHUTDOWN);
			break;
		}
	}
	close(mfd);
	return NULL;
}

static bool watch_start(struct mount_watch *mw, struct tfs_fs *fs,
			const char *before)
{
	mw->fs = fs;
	mw->stop = -1;
	if (!find_new_mount(before, mw->dev, sizeof(mw->dev))) {
		tfs_warn("cannot find the new mount in /proc/self/mountinfo: "
			 "a lazy unmount will wait for parked readers");
		return false;
	}
	mw->stop = eventfd(0, EFD_CLOEXEC);
	if (mw->stop < 0)
		return false;
	if (pthread_create(&mw->thread, NULL, mount_watch_fn, mw) != 0) {
		close(mw->stop);
		mw->stop = -1;
		return false;
	}
	return true;
}

static void watch_stop(struct mount_watch *mw, bool running)
{
	uint64_t one = 1;

	if (!running)
		return;
	if (write(mw->stop, &one, sizeof(one)) != sizeof(one))
		tfs_warn("mount watcher: %s", strerror(errno));
	pthread_join(mw->thread, NULL);
	close(mw->stop);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Both corrupt appends here (docs/DESIGN.md). */
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ASYNC_DIO);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->max_write = 1 << 20;
	tfs_debug("fuse: protocol %u.%u, max_write %u", conn->proto_major,
		  conn->proto_minor, conn->max_write);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.poll = op_poll,
	.lseek = op_lseek,
};

/* Frees handles the kernel never released (the connection went away). */
static void drop_handles(struct tfs_fs *fs)
{
	for (;;) {
		struct handle *h = NULL;

		pthread_mutex_lock(&fs->lock);
		if (!tfs_list_empty(&fs->handles))
			h = tfs_container_of(fs->handles.next, struct handle,
					     link);
		pthread_mutex_unlock(&fs->lock);
		if (!h)
			break;
		poll_release(h);
		/* Only the open reference can be left once readers were
		 * answered. */
		pthread_mutex_lock(&fs->lock);
		tfs_list_del(&h->link);
		tfs_list_init(&h->link);
		pthread_mutex_unlock(&fs->lock);
		handle_unref(h);
	}
}

static struct fuse_session *new_session(struct tfs_fs *fs,
					const struct tfs_fs_config *cfg)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;

	fuse_opt_add_arg(&args, "topicfs");
	for (const char *const *o = cfg->fuse_opts; o && *o; o++) {
		fuse_opt_add_arg(&args, "-o");
		fuse_opt_add_arg(&args, *o);
	}
	se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	fuse_opt_free_args(&args);
	return se;
}

int tfs_fs_run(struct tfs_store *store, const struct tfs_fs_config *cfg)
{
	struct tfs_fs fs = {
		.store = store,
		.conf = tfs_store_conf(store),
		.mountpoint = cfg->mountpoint,
		.version = cfg->version,
		.started_wall = tfs_now_ms(),
		.uid = geteuid(),
		.gid = getegid(),
	};
	struct fuse_loop_config *lc;
	int rc;

	pthread_mutex_init(&fs.lock, NULL);
	tfs_list_init(&fs.handles);
	fs.se = new_session(&fs, cfg);
	if (!fs.se) {
		tfs_err("cannot create the FUSE session (bad mount options?)");
		rc = -EINVAL;
		goto out;
	}
	if (fuse_set_signal_handlers(fs.se) != 0) {
		rc = -EIO;
		goto out_destroy;
	}
	struct tfs_buf before = TFS_BUF_INIT;
	struct mount_watch mw;
	bool watching;

	topicfs_devs(&before);
	if (fuse_session_mount(fs.se, cfg->mountpoint) != 0) {
		tfs_err("cannot mount at %s", cfg->mountpoint);
		tfs_buf_release(&before);
		rc = -EIO;
		goto out_signals;
	}
	watching = watch_start(&mw, &fs, before.data);
	tfs_buf_release(&before);
	tfs_info("mounted %s at %s", tfs_store_dir(store), cfg->mountpoint);
	if (cfg->ready)
		cfg->ready(cfg->ready_arg);

	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, cfg->clone_fd);
	fuse_loop_cfg_set_max_threads(lc, cfg->max_threads);
	fuse_loop_cfg_set_idle_threads(lc, cfg->max_threads);
	rc = fuse_session_loop_mt(fs.se, lc);
	fuse_loop_cfg_destroy(lc);
	/* After a lazy unmount the kernel ends the connection when the last
	 * file closes, with ENODEV or, depending on timing, ECONNABORTED:
	 * either is the expected end then, not an error. */
	if (rc == -ECONNABORTED && atomic_load(&fs.detached))
		rc = 0;
	if (rc < 0)
		tfs_err("FUSE loop: %s", strerror(-rc));
	else
		rc = 0;
	tfs_info("unmounting %s", cfg->mountpoint);
	watch_stop(&mw, watching);

	/* Answer every parked request while the connection still exists. */
	tfs_store_shutdown_readers(store);
	drop_handles(&fs);
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
	/* The loop is over: a second SIGTERM must not cut the checkpoints
	 * and the clean exit short (libfuse restored the default action). */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
out_destroy:
	fuse_session_destroy(fs.se);
out:
	pthread_mutex_destroy(&fs.lock);
	return rc;
}
