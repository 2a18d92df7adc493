/*
 * fsops_ns.c - the namespace of the mount: inodes, lookups, attributes,
 * directories, topic creation and deletion, the refused operations, and
 * extended attributes.
 *
 * INODES
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
 * Partition attributes are never cached (attr_timeout 0), so stat() and
 * tail -f always see the committed size.  Directory attributes and entries
 * are cached for a second.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fsops_int.h"
#include "log.h"
#include "util.h"
#include "banned.h"

struct dirent_list {
	size_t n;
	struct {
		char *name;
		fuse_ino_t ino;
		mode_t type;
	} *e;
};

/* --- inodes ---------------------------------------------------------------- */

fuse_ino_t fsops_make_ino(uint32_t topic, enum kind k, uint32_t part)
{
	return (fuse_ino_t)topic << 32 | (fuse_ino_t)k << 28 | part;
}

void fsops_node_release(struct node *n)
{
	tfs_partition_unref(n->p);
	tfs_topic_unref(n->t);
	n->p = NULL;
	n->t = NULL;
}

/* Resolves ino.  Returns 0 or -ENOENT. */
int fsops_resolve(struct tfs_fs *fs, fuse_ino_t ino, struct node *n)
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
			fsops_node_release(n);
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
				ino = fsops_make_ino(tfs_topic_id(t), K_TOPIC, 0);
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
			ino = fsops_make_ino(tfs_topic_id(parent->t), K_FDIR, 0);
		else if (parse_partition(name, &part))
			ino = fsops_make_ino(tfs_topic_id(parent->t), K_PART, part);
		break;
	case K_FDIR:
		if (parse_partition(name, &part))
			ino = fsops_make_ino(tfs_topic_id(parent->t), K_FOLLOW, part);
		break;
	default:
		return -ENOTDIR;
	}
	if (!ino)
		return -ENOENT;
	return fsops_resolve(fs, ino, out);
}

/* Whether name exists in parent: 0, -ENOENT, -ENOTDIR. */
static int probe_child(struct tfs_fs *fs, fuse_ino_t parent, const char *name)
{
	struct node pn, n;
	int rc = fsops_resolve(fs, parent, &pn);

	if (rc)
		return rc;
	rc = lookup_child(fs, &pn, name, &n);
	fsops_node_release(&pn);
	if (rc == 0)
		fsops_node_release(&n);
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

static void set_owner(struct stat *st, const struct tfs_perm *perm,
		      mode_t type, uint32_t mask)
{
	st->st_uid = perm->uid;
	st->st_gid = perm->gid;
	st->st_mode = type | (perm->mode & mask);
}

static void fill_attr(struct tfs_fs *fs, struct node *n, struct stat *st)
{
	struct tfs_partition_info in;
	struct tfs_perm perm = { fs->uid, fs->gid, 0 };

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
		tfs_store_root_perm(fs->store, &perm);
		set_owner(st, &perm, S_IFDIR, TFS_PERM_DIR_BITS);
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
		tfs_topic_get_perm(n->t, &perm);
		set_owner(st, &perm, S_IFDIR, TFS_PERM_DIR_BITS);
		st->st_nlink = 3;
		set_time(st, tfs_topic_created(n->t));
		break;
	case K_FDIR:
		/* A view: the topic's owner, nobody writes. */
		tfs_topic_get_perm(n->t, &perm);
		set_owner(st, &perm, S_IFDIR, 0555);
		st->st_nlink = 2;
		set_time(st, tfs_topic_created(n->t));
		break;
	case K_PART:
	case K_FOLLOW:
		tfs_partition_info(n->p, &in);
		/* Fails only for a partition of a deleted topic: the
		 * daemon's owner, mode 0. */
		tfs_topic_get_part_perm(n->t, n->part, &perm);
		set_owner(st, &perm, S_IFREG,
			  n->kind == K_PART ? TFS_PERM_FILE_BITS : 0555);
		st->st_nlink = 1;
		st->st_size = (off_t)in.hw;
		st->st_blocks = (blkcnt_t)((in.disk_bytes + 511) / 512);
		set_time(st, in.last_ts ? in.last_ts : tfs_topic_created(n->t));
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

void fsops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_fs *fs = fs_of(req);
	struct node pn, n;
	int rc = fsops_resolve(fs, parent, &pn);

	if (rc == 0) {
		rc = lookup_child(fs, &pn, name, &n);
		fsops_node_release(&pn);
	}
	if (rc) {
		reply_code(req, rc);
		return;
	}
	reply_entry(req, fs, &n);
	fsops_node_release(&n);
}

void fsops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct node n;
	struct stat st;
	int rc = fsops_resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	fill_attr(fs, &n, &st);
	if ((n.kind == K_PART || n.kind == K_FOLLOW) &&
	    fsops_remote(fs, n.p)) {
		fsops_remote_getattr(req, fs, tfs_topic_id(n.t), n.part, &st,
				     attr_timeout(n.kind),
				     fi && n.kind == K_FOLLOW ? handle_of(fi)
							      : NULL);
		fsops_node_release(&n);
		return;
	}
	/* With fi, the kernel asks for an open file: fstat(), or
	 * lseek(SEEK_END), which moves the reader to this size. */
	if (fi && n.kind == K_FOLLOW)
		fsops_note_size(handle_of(fi), (uint64_t)st.st_size);
	fuse_reply_attr(req, &st, attr_timeout(n.kind));
	fsops_node_release(&n);
}

/* Applies the owner, group and mode fields to_set names to perm. */
static void change_perm(struct tfs_perm *perm, const struct stat *attr,
			int to_set)
{
	if (to_set & FUSE_SET_ATTR_UID)
		perm->uid = (uint32_t)attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		perm->gid = (uint32_t)attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MODE)
		perm->mode = (uint32_t)attr->st_mode & 07777;
}

/*
 * chown and chmod of the root, a topic or a partition.  The kernel has
 * already checked that the caller may (default_permissions: the owner
 * chmods and chgrps to its own groups, root chowns) and serialises them
 * per inode.  On the views (.follow, .topicfs), which show their source's
 * owner, they are accepted and change nothing, like times: `chown -R` of
 * a topic reaches .follow/<p> before <p>.  Returns 0, -EPERM (bits a
 * partition or a directory cannot have), or what the store returned.
 */
static int set_perm(struct tfs_fs *fs, struct node *n, const struct stat *attr,
		    int to_set)
{
	struct tfs_perm perm;
	uint32_t bits = n->kind == K_PART ? TFS_PERM_FILE_BITS
					  : TFS_PERM_DIR_BITS;
	int rc;

	switch (n->kind) {
	case K_ROOT:
		tfs_store_root_perm(fs->store, &perm);
		break;
	case K_TOPIC:
		tfs_topic_get_perm(n->t, &perm);
		break;
	case K_PART:
		rc = tfs_topic_get_part_perm(n->t, n->part, &perm);
		if (rc)
			return rc;
		break;
	default:
		return 0;
	}
	change_perm(&perm, attr, to_set);
	if (perm.mode & ~bits) {
		tfs_info("chmod %04o refused: %s", perm.mode,
			 n->kind == K_PART ? "a partition takes rwx bits only"
					   : "a directory takes rwx, sticky "
					     "and set-group-ID bits only");
		return -EPERM;
	}
	if (n->kind == K_ROOT)	/* each node's own, also in a cluster */
		return tfs_store_set_root_perm(fs->store, &perm);
	if (fs->cluster)
		return tfs_cluster_set_perm(fs->cluster, tfs_topic_name(n->t),
					    n->kind == K_TOPIC ? -1 : (int64_t)n->part,
					    &perm);
	if (n->kind == K_TOPIC)
		return tfs_topic_set_perm(n->t, &perm);
	return tfs_topic_set_part_perm(n->t, n->part, &perm);
}

void fsops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int to_set, struct fuse_file_info *fi)
{
	struct node n;
	int rc;

	/* The size is the log's: nobody truncates, not even the owner.
	 * Time updates (touch) are accepted and have no effect. */
	if (to_set & FUSE_SET_ATTR_SIZE) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		      FUSE_SET_ATTR_GID)) {
		rc = fsops_resolve(fs_of(req), ino, &n);
		if (rc == 0) {
			rc = set_perm(fs_of(req), &n, attr, to_set);
			fsops_node_release(&n);
		}
		if (rc) {
			reply_code(req, rc);
			return;
		}
	}
	fsops_getattr(req, ino, fi);
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
			dl_add(dl, tfs_topic_name(v[i]),
			       fsops_make_ino(tfs_topic_id(v[i]), K_TOPIC, 0),
			       S_IFDIR);
		tfs_store_topics_free(v, cnt);
	} else if (n->kind == K_META) {
		dl_add(dl, "status", INO_STATUS, S_IFREG);
		dl_add(dl, "metrics", INO_METRICS, S_IFREG);
	} else {
		uint32_t np = tfs_topic_partitions(n->t);
		enum kind fk = n->kind == K_TOPIC ? K_PART : K_FOLLOW;

		if (n->kind == K_TOPIC)
			dl_add(dl, ".follow", fsops_make_ino(tfs_topic_id(n->t), K_FDIR, 0),
			       S_IFDIR);
		for (uint32_t i = 0; i < np; i++) {
			snprintf(num, sizeof(num), "%" PRIu32, i);
			dl_add(dl, num, fsops_make_ino(tfs_topic_id(n->t), fk, i), S_IFREG);
		}
	}
	return dl;
}

void fsops_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	struct node n;
	int rc = fsops_resolve(fs, ino, &n);
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
		parent = fsops_make_ino(tfs_topic_id(n.t), K_TOPIC, 0);
		break;
	default:
		fsops_node_release(&n);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = (uintptr_t)list_dir(fs, &n, parent);
	fsops_node_release(&n);
	fuse_reply_open(req, fi);
}

void fsops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
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

void fsops_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	dl_free((struct dirent_list *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * A topic made by mkdir belongs to its maker and the maker's group; one
 * root makes belongs to the uid and gid keys.  As on other Unix file
 * systems, under a set-group-ID root it gets the root's group and the
 * bit.  The kernel passes mode without the caller's umask (no
 * FUSE_CAP_DONT_MASK); the store takes the daemon's umask off.
 */
static void new_topic_perms(struct tfs_fs *fs, const struct fuse_ctx *ctx,
			    mode_t mode, struct tfs_topic_perms *out)
{
	struct tfs_perm root;

	tfs_store_new_topic_perms(fs->store, (uint32_t)ctx->uid,
				  (uint32_t)ctx->gid, (uint32_t)mode, out);
	tfs_store_root_perm(fs->store, &root);
	if (root.mode & S_ISGID) {
		out->dir.gid = out->parts.gid = root.gid;
		out->dir.mode |= S_ISGID;
	}
}

void fsops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_topic_perms perms;
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
	new_topic_perms(fs, fuse_req_ctx(req), mode, &perms);
	if (fs->cluster) {
		rc = tfs_cluster_create_topic(fs->cluster, name, &perms, &t);
	} else {
		rc = tfs_store_create_topic(
			fs->store,
			&(struct tfs_topic_spec){ .name = name,
						  .perms = &perms },
			&t);
	}
	if (rc) {
		if (rc == -EINVAL)
			tfs_info("mkdir %s: invalid topic name (allowed: "
				 "[A-Za-z0-9._-], 1 to 249, not starting "
				 "with '.')",
				 name);
		reply_code(req, rc);
		return;
	}
	rc = fsops_resolve(fs, fsops_make_ino(tfs_topic_id(t), K_TOPIC, 0), &n);
	tfs_topic_unref(t);
	if (rc) {
		reply_code(req, rc);
		return;
	}
	reply_entry(req, fs, &n);
	fsops_node_release(&n);
}

void fsops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tfs_fs *fs = fs_of(req);
	int rc;

	if (parent != FUSE_ROOT_ID || !strcmp(name, ".topicfs")) {
		/* .follow and .topicfs are part of the contract. */
		rc = probe_child(fs, parent, name);
		fuse_reply_err(req, rc == 0 ? EPERM : tfs_err_to_errno(rc));
		return;
	}
	rc = fs->cluster ? tfs_cluster_delete_topic(fs->cluster, name)
			 : tfs_store_delete_topic(fs->store, name);
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

void fsops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int rc = probe_child(fs_of(req), parent, name);

	fuse_reply_err(req, rc == 0 ? EPERM : tfs_err_to_errno(rc));
}

void fsops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, EPERM);
}

void fsops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	refuse_name(req, parent, name);
}

void fsops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	refuse_name(req, parent, name);
}

void fsops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	fuse_reply_err(req, EPERM);
}

void fsops_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	refuse_name(req, parent, name);
}

void fsops_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (statvfs(tfs_store_dir(fs_of(req)->store), &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = TFS_TOPIC_NAME_MAX;
	fuse_reply_statfs(req, &sv);
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
static const char *const cluster_part_attrs[] = { "leader", "replicas", "isr",
						  NULL };

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

/* A partition's leader, replicas or ISR, in a cluster. */
static int cluster_xattr(struct tfs_fs *fs, struct node *n, const char *key,
			 char *buf, size_t len)
{
	struct tfs_part_view v;

	if (!fs->cluster || (strcmp(key, "leader") && strcmp(key, "replicas") &&
			     strcmp(key, "isr")))
		return -ENODATA;
	if (tfs_cluster_view(fs->cluster, tfs_topic_id(n->t), n->part, &v))
		return -ENODATA;
	if (!strcmp(key, "leader"))
		return v.leader ? snprintf(buf, len, "%" PRIu32, v.leader)
				: snprintf(buf, len, "none");
	return tfs_idset_format(!strcmp(key, "isr") ? &v.isr : &v.replicas,
				buf, len);
}

static int partition_xattr(struct tfs_fs *fs, struct node *n, const char *key,
			   char *buf, size_t len)
{
	struct tfs_bounds in;
	uint64_t v, off;
	int rc;

	rc = cluster_xattr(fs, n, key, buf, len);
	if (rc != -ENODATA)
		return rc;
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

static int topic_xattr(struct tfs_fs *fs, struct node *n, const char *key,
		       char *buf, size_t len)
{
	int k;

	if (!strcmp(key, "partitions"))
		return snprintf(buf, len, "%" PRIu32,
				tfs_topic_partitions(n->t));
	if (!strcmp(key, "replication.factor"))
		return snprintf(buf, len, "%" PRIu32,
				fs->cluster ? tfs_cluster_replication_factor(
						      fs->cluster,
						      tfs_topic_id(n->t))
					    : 1);
	k = tfs_conf_find(key);
	if (k < 0 || tfs_conf_desc(k)->scope != TFS_SCOPE_TOPIC)
		return -ENODATA;
	return tfs_topic_get_config(n->t, k, buf, len);
}

void fsops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct tfs_fs *fs = fs_of(req);
	char buf[128];
	struct node n;
	int rc = fsops_resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	rc = -ENODATA;
	if (!strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		const char *key = name + strlen(XATTR_PREFIX);

		if ((n.kind == K_PART || n.kind == K_FOLLOW) &&
		    cluster_xattr(fs, &n, key, buf, sizeof(buf)) == -ENODATA &&
		    fsops_remote(fs, n.p)) {
			fsops_remote_xattr(req, fs, tfs_topic_id(n.t), n.part,
					   key, size);
			fsops_node_release(&n);
			return;
		}
		if (n.kind == K_PART || n.kind == K_FOLLOW)
			rc = partition_xattr(fs, &n, key, buf, sizeof(buf));
		else if (n.kind == K_TOPIC)
			rc = topic_xattr(fs, &n, key, buf, sizeof(buf));
	}
	fsops_node_release(&n);
	if (rc < 0)
		reply_code(req, rc);
	else
		reply_value(req, buf, (size_t)rc, size);
}

void fsops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tfs_fs *fs = fs_of(req);
	struct tfs_buf b = TFS_BUF_INIT;
	struct node n;
	int rc = fsops_resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	if (n.kind == K_PART || n.kind == K_FOLLOW) {
		for (int i = 0; part_attrs[i]; i++)
			tfs_buf_addf(&b, XATTR_PREFIX "%s%c", part_attrs[i],
				     '\0');
		for (int i = 0; fs->cluster && cluster_part_attrs[i]; i++)
			tfs_buf_addf(&b, XATTR_PREFIX "%s%c",
				     cluster_part_attrs[i], '\0');
	} else if (n.kind == K_TOPIC) {
		tfs_buf_addf(&b, XATTR_PREFIX "partitions%c", '\0');
		if (fs->cluster)
			tfs_buf_addf(&b, XATTR_PREFIX "replication.factor%c",
				     '\0');
		for (int k = 0; k < TFS_CONF__COUNT; k++)
			if (tfs_conf_desc(k)->scope == TFS_SCOPE_TOPIC)
				tfs_buf_addf(&b, XATTR_PREFIX "%s%c",
					     tfs_conf_desc(k)->name, '\0');
	}
	fsops_node_release(&n);
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

static int set_topic_xattr(struct tfs_fs *fs, struct node *n, const char *key,
			   const char *val)
{
	char err[256] = "";
	uint64_t v;
	int rc;

	if (!strcmp(key, "replication.factor")) {
		char now[32];

		/* Reassigning replicas is not built: only the value it
		 * has is accepted. */
		topic_xattr(fs, n, key, now, sizeof(now));
		return strcmp(now, val) ? -ENOTSUP : 0;
	}
	if (fs->cluster) {
		if (!strcmp(key, "partitions") &&
		    (!parse_u64(val, &v) || v > UINT32_MAX))
			return -EINVAL;
		rc = tfs_cluster_set_topic(fs->cluster, tfs_topic_name(n->t),
					   key, val, err, sizeof(err));
		if (rc == -ENOENT && strcmp(key, "partitions"))
			return -ENOTSUP;
		if (rc && *err)
			tfs_info("topic %s: %s", tfs_topic_name(n->t), err);
		return rc;
	}
	if (!strcmp(key, "partitions")) {
		if (!parse_u64(val, &v) || v > UINT32_MAX)
			return -EINVAL;
		rc = tfs_topic_set_partitions(n->t, (uint32_t)v);
		if (rc == -EINVAL)
			tfs_info("topic %s: partitions %s refused: may only "
				 "grow (now %u)",
				 tfs_topic_name(n->t), val, tfs_topic_partitions(n->t));
		return rc;
	}
	rc = tfs_topic_set_config(n->t, key, val, err, sizeof(err));
	if (rc == -ENOENT)
		return -ENOTSUP;
	if (rc)
		tfs_info("topic %s: %s", tfs_topic_name(n->t), err);
	return rc;
}

/*
 * Only the topic's owner or root changes its settings.  The kernel lets
 * anyone who may write the directory set user.* attributes, which a
 * shared, writable topic must not mean.
 */
static bool may_configure(fuse_req_t req, struct node *n)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct tfs_perm perm;

	tfs_topic_get_perm(n->t, &perm);
	if (ctx->uid == 0 || (uint32_t)ctx->uid == perm.uid)
		return true;
	tfs_info("topic %s: settings refused to uid %u: only its owner "
		 "(%u) or root may change them",
		 tfs_topic_name(n->t), (unsigned)ctx->uid, perm.uid);
	return false;
}

void fsops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct tfs_fs *fs = fs_of(req);
	char val[256];
	struct node n;
	int rc = fsops_resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		rc = -ENOTSUP;
	} else if (n.kind == K_TOPIC) {
		if (!may_configure(req, &n))
			rc = -EPERM;
		else if (flags & XATTR_CREATE)
			rc = -EEXIST;	/* every attribute always exists */
		else if (!value_string(value, size, val, sizeof(val)))
			rc = -EINVAL;
		else
			rc = set_topic_xattr(fs, &n, name + strlen(XATTR_PREFIX),
					     val);
	} else if (n.kind == K_PART || n.kind == K_FOLLOW) {
		char probe[64];

		rc = partition_xattr(fs, &n, name + strlen(XATTR_PREFIX),
				     probe, sizeof(probe));
		rc = rc == -ENODATA ? -ENOTSUP : -EPERM;
	} else {
		rc = -ENOTSUP;
	}
	fsops_node_release(&n);
	reply_code(req, rc);
}

void fsops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))
				    ? ENODATA
				    : EPERM);
}
