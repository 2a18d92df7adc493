/*
 * fsops_int.h - what the three files of the FUSE front end share:
 *
 *   fsops.c      the session: mount, serve, stop, the lazy-unmount
 *                watcher, the operations table
 *   fsops_ns.c   the namespace: inodes, lookups, attributes, directories,
 *                mkdir/rmdir, the refused operations, extended attributes
 *   fsops_io.c   open files: open, read (with .follow waits), write (through
 *                the framer), flush, release, fsync, poll, lseek
 *
 * Only these files include libfuse.
 */
#ifndef TFS_FSOPS_INT_H
#define TFS_FSOPS_INT_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "err.h"
#include "framer.h"
#include "fsops.h"
#include "produce.h"
#include "store.h"

#define INO_META 2
#define INO_STATUS 3
#define INO_METRICS 4
#define XATTR_PREFIX "user.topicfs."
#define BLKSIZE (1 << 20)
#define DIR_TIMEOUT 1.0

/* What an inode names (see INODES in fsops_ns.c). */
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

	const struct tfs_fs_config *cfg;
	struct mount_watch *watch;	/* NULL if it could not start */
	/* In a cluster (NULL standalone): namespace operations act
	 * cluster-wide, writes and fsyncs go to the partitions' leaders. */
	struct tfs_cluster *cluster;
	struct tfs_produce *produce;
	struct tfs_remote *remote;
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
	uint32_t part;			/* partitions: its number */
	bool writable;
	struct tfs_list link;		/* fs->handles */

	pthread_mutex_t mu;
	struct tfs_framer framer;	/* (mu) partial line, EFBIG state */
	struct poll_wait *pw;		/* (mu) the registered poll, or NULL */
	/* A partition without a replica here: its registered poll (mu),
	 * and the leader's committed end as last heard. */
	struct rpoll *rpw;
	_Atomic uint64_t remote_hw;
	/*
	 * Where the reader is, as far as the daemon can know: the end of its
	 * last read, or the size last reported to this open file (fstat,
	 * lseek(SEEK_END)), whichever came later.  polls use it.
	 */
	_Atomic uint64_t pos;
	/* The checked rest of the batch the last read ended in. */
	struct tfs_readahead ra;

	char *text;			/* status and metrics snapshots */
	size_t text_len;
};

static inline struct tfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static inline void reply_code(fuse_req_t req, int code)
{
	fuse_reply_err(req, tfs_err_to_errno(code));
}

/* fsops_ns.c */
fuse_ino_t fsops_make_ino(uint32_t topic, enum kind k, uint32_t part);
int fsops_resolve(struct tfs_fs *fs, fuse_ino_t ino, struct node *n);
void fsops_node_release(struct node *n);
/* Called for every getattr on an open partition file. */
void fsops_note_size(struct handle *h, uint64_t size);

void fsops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int to_set, struct fuse_file_info *fi);
void fsops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fsops_releasedir(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi);
void fsops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode);
void fsops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned int flags);
void fsops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev);
void fsops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		   const char *name);
void fsops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname);
void fsops_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi);
void fsops_statfs(fuse_req_t req, fuse_ino_t ino);
void fsops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    const char *value, size_t size, int flags);
void fsops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void fsops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fsops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* Whether reads of partition p go to its leader (no replica here). */
static inline bool fsops_remote(struct tfs_fs *fs, struct tfs_partition *p)
{
	return fs->remote && tfs_partition_role(p, NULL) == TFS_ROLE_NONE;
}

/* fsops_io.c */
struct handle *fsops_handle_ref(struct handle *h);
void fsops_handle_unref(struct handle *h);
/* Drops the registered poll of h (before the last reference goes). */
void fsops_poll_release(struct handle *h);

void fsops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fsops_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		 off_t off, struct fuse_file_info *fi);
void fsops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void fsops_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		struct fuse_pollhandle *ph);
void fsops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi);

/*
 * Answers a getattr of a partition without a replica here: st as filled
 * locally, its size from the leader.  h (may be NULL): the open .follow
 * file asking (fstat, lseek(SEEK_END)), which moves its reader to that
 * size (fsops_note_size).  Takes nothing; replies.
 */
void fsops_remote_getattr(fuse_req_t req, struct tfs_fs *fs, uint32_t topic,
			  uint32_t part, const struct stat *st,
			  double timeout, struct handle *h);
/*
 * Answers a getxattr of a partition without a replica here (start, end,
 * records, offset.N, time.MS) from the leader.  size as getxattr's.
 */
void fsops_remote_xattr(fuse_req_t req, struct tfs_fs *fs, uint32_t topic,
			uint32_t part, const char *key, size_t size);

#endif
