/*
 * store_int.h - what store.c (the data directory, the topic table,
 * namespace operations) and store_topic.c (topic objects, topic.json,
 * permissions) share.
 */
#ifndef TFS_STORE_INT_H
#define TFS_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define TOPIC_META "topic.json"
/* Room for the permissions of many partitions that differ. */
#define TOPIC_META_MAX (64 << 20)
#define MAX_PARTITIONS (1u << 20)

struct tfs_topic {
	atomic_int refs;
	uint32_t id;			/* never reused: inode numbers use it */
	char *name;
	int dirfd;
	int64_t created;		/* ms since the Unix epoch */
	struct tfs_store *store;
	struct tfs_settings *settings;

	pthread_mutex_t lock;
	struct tfs_partition **parts;	/* (lock) */
	uint32_t nparts;		/* (lock); only grows */
	struct tfs_perm dir_perm;	/* (lock) the topic directory's */
	struct tfs_perm part_perm;	/* (lock) the partitions' default */
	struct tfs_perm *pperm;		/* (lock) each partition's */
	bool explicit[TFS_CONF__COUNT];	/* (lock) set on this topic */
	bool deleted;			/* (lock) */
};

struct tfs_store {
	char *dir;
	int dirfd, topics_fd, trash_fd, lock_fd;
	struct tfs_conf conf;
	int64_t started;

	pthread_rwlock_t lock;
	struct tfs_topic **by_name;	/* (lock) sorted by name */
	struct tfs_topic **by_id;	/* (lock) sorted by id */
	size_t ntopics;			/* (lock) */

	pthread_mutex_t create_lock;	/* create, delete, meta writes */
	uint32_t next_id;		/* (create_lock) */

	uint32_t def_uid, def_gid;	/* the uid and gid keys, resolved */
	uint32_t umask;
	pthread_mutex_t perm_lock;	/* after create_lock */
	struct tfs_perm root;		/* (perm_lock; set: create_lock) */

	struct tfs_workers *syncer;
	struct tfs_workers *fsyncer;
	struct tfs_timers *timers;
	struct tfs_ticker *flusher;	/* every flush.ms */

	/* Topics that failed to load, sorted by name: set while opening,
	 * read-only afterwards. */
	struct tfs_topic_failure *failed;
	size_t nfailed;
};

/* Parses all of s as a number in base (digits only) up to max. */
bool store_parse_u32(const char *s, int base, uint32_t max, uint32_t *out);

/* A new topic object (one reference), not yet in the table. */
struct tfs_topic *store_topic_alloc(struct tfs_store *s, uint32_t id,
				   const char *name);

/* topic.json: written whole (temp, fsync, rename, fsync dir), or read,
 * with why set to the reason it cannot be.  0 or -errno. */
int store_write_topic_json(struct tfs_topic *t, uint32_t nparts);
int store_read_topic_json(struct tfs_topic *t, uint32_t *nparts, char *why,
			  size_t whylen);

/* Each of nparts partitions' permissions from perms (malloc'd into
 * *out).  0 or -EINVAL. */
int store_perms_array(const struct tfs_topic_perms *perms, uint32_t nparts,
		      struct tfs_perm **out);

#endif
