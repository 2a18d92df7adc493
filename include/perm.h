/*
 * perm.h - owners and permission bits of the root, topics and partitions:
 * the types the store keeps (store.h) and the cluster carries in its
 * topic records (meta.h), with nothing else attached.
 */
#ifndef TFS_PERM_H
#define TFS_PERM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Owner, group and permission bits (no file type bits). */
struct tfs_perm {
	uint32_t uid, gid, mode;
};

/* Mode bits a directory (the root, a topic) may have: rwx, sticky and
 * set-group-ID. */
#define TFS_PERM_DIR_BITS 03777u
/* Mode bits a partition may have: rwx only (it is no program). */
#define TFS_PERM_FILE_BITS 0777u
/* The largest user or group id ((uint32_t)-1 means "unchanged" to
 * chown(2)). */
#define TFS_PERM_ID_MAX 4294967294u

/* A partition whose permissions differ from its topic's default. */
struct tfs_perm_override {
	uint32_t partition;
	struct tfs_perm perm;
};

/* Everything about a topic's permissions, as the cluster carries it. */
struct tfs_topic_perms {
	struct tfs_perm dir;		/* the topic's directory */
	struct tfs_perm parts;		/* the partitions' default */
	/* Partitions that differ from parts, each at most once, below the
	 * partition count; an override equal to parts is no override. */
	struct tfs_perm_override *overrides;
	size_t noverrides;
};

static inline int tfs_perm_eq(const struct tfs_perm *a,
			      const struct tfs_perm *b)
{
	return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode;
}

/* True if perm's ids are at most TFS_PERM_ID_MAX and its mode within
 * bits (TFS_PERM_DIR_BITS or TFS_PERM_FILE_BITS). */
static inline int tfs_perm_valid(const struct tfs_perm *perm, uint32_t bits)
{
	return perm->uid <= TFS_PERM_ID_MAX && perm->gid <= TFS_PERM_ID_MAX &&
	       !(perm->mode & ~bits);
}

/* Frees p's overrides (p itself is the caller's).  NULL is fine. */
static inline void tfs_topic_perms_release(struct tfs_topic_perms *p)
{
	if (!p)
		return;
	free(p->overrides);
	p->overrides = NULL;
	p->noverrides = 0;
}

#endif
