/*
 * store.h - the data directory: topics, their partitions and settings, the
 * background flusher.  Layout and formats are in src/store.c and
 * docs/FORMAT.md.
 *
 * Threads and locks.  The store's rwlock protects the topic table; a
 * topic's mutex protects its partition array and its persisted settings.
 * Lock order: store, topic, partition maint, partition lock.  Topics and
 * partitions are reference-counted: lookups return a reference that the
 * caller drops with the matching unref.  The store owns the worker pools
 * every partition uses (sync jobs, index fsyncs, timers) and the flusher;
 * the compactor is started beside it by its owner (compactor.h).
 */
#ifndef TFS_STORE_H
#define TFS_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "perm.h"
#include "partition.h"
#include "timer.h"

#define TFS_TOPIC_NAME_MAX 249

struct tfs_store;
struct tfs_topic;

/*
 * PERMISSIONS.  The mount's root, every topic directory and every
 * partition have an owner, a group and permission bits, which the FUSE
 * module shows and the kernel enforces (default_permissions).  The store
 * only keeps and persists them: it checks no caller's rights (the kernel
 * did that before asking for a chown or chmod).
 *
 * A topic keeps its directory's permissions, its partitions' default and
 * the partitions that differ from that default (overrides).  A new topic
 * gets what its spec says, or the daemon's defaults: the `uid` and `gid`
 * keys (-1: the daemon's effective ids), directory mode 0777 & ~umask,
 * partitions 0666 & ~umask.  A partition added by growing the topic gets
 * the directory's owner and group and 0666 & ~umask.  A topic.json
 * without permissions (written before they existed) gets those defaults,
 * recorded the next time its topic.json is written.
 *
 * The root's permissions live in the data directory's meta: each of
 * owner, group and mode is recorded when it differs from its default
 * (uid, gid, 0755), and follows the configuration otherwise.
 */

/* What a topic is made of: for a local mkdir, or applied from the
 * cluster's metadata. */
struct tfs_topic_spec {
	const char *name;
	uint32_t id;			/* 0: the store's next id */
	uint32_t partitions;		/* 0: num.partitions */
	/* "key", "value", ... pairs of topic-scoped settings, then NULL;
	 * or NULL for none */
	const char *const *config;
	int64_t created;		/* ms since the Unix epoch; 0: now */
	/*
	 * The directory's and the partitions' permissions and the
	 * overrides (borrowed for the call).  NULL: create gives the
	 * defaults (see PERMISSIONS), apply leaves the topic's as they are.
	 */
	const struct tfs_topic_perms *perms;
};

/* True if name is a valid topic name ([A-Za-z0-9._-]{1,249}, no leading
 * dot). */
bool tfs_topic_name_valid(const char *name);

/*
 * Opens (creating if needed) the data directory dir, takes its lock (one
 * daemon per directory), loads every topic and recovers every partition.
 * conf is copied.  Returns 0, -EBUSY when another process holds the
 * directory, -errno, or TFS_ECORRUPT.
 */
int tfs_store_open(const char *dir, const struct tfs_conf *conf,
		   struct tfs_store **out);

/*
 * Stops the background threads, closes every partition (sync, checkpoint,
 * wake readers with TFS_ESHUTDOWN) and frees the store.  References held
 * elsewhere stay valid until dropped.
 */
void tfs_store_close(struct tfs_store *s);

/*
 * Closes every partition (sync, checkpoint, parked readers woken with
 * TFS_ESHUTDOWN, appends refused from then on): before an unmount.
 */
void tfs_store_shutdown_readers(struct tfs_store *s);

/* Ends every wait now and from now on with status (a lazy unmount);
 * partitions stay open and appends go on. */
void tfs_store_end_waits(struct tfs_store *s, int status);

const struct tfs_conf *tfs_store_conf(struct tfs_store *s);
const char *tfs_store_dir(struct tfs_store *s);
int64_t tfs_store_started(struct tfs_store *s);	/* ms, monotonic */
/* The timer thread the store's partitions use for deadlines. */
struct tfs_timers *tfs_store_timers(struct tfs_store *s);

/*
 * Creates the topic spec describes.  Returns 0 (with a reference in *out
 * if out is not NULL), -EINVAL for a bad name or bad permissions (an id
 * above TFS_PERM_ID_MAX, mode bits outside TFS_PERM_DIR_BITS for the
 * directory or TFS_PERM_FILE_BITS for partitions, an override past the
 * partition count or given twice), TFS_EBADCONF for a bad setting
 * (logged), -EEXIST when the name or the id is taken, -ENOSPC or another
 * -errno; on failure nothing is left on disk.
 */
int tfs_store_create_topic(struct tfs_store *s,
			   const struct tfs_topic_spec *spec,
			   struct tfs_topic **out);

/*
 * Makes the local topic match spec (the cluster's metadata): creates it
 * when missing; when a topic of that name exists with another id (it was
 * deleted and made again elsewhere while this node did not look), deletes
 * it first, whatever delete.topic.enable says; grows its partitions and
 * sets its settings to spec's (settings spec does not name go back to the
 * daemon's defaults), and, when spec->perms is not NULL, its permissions
 * to exactly spec's (directory, partition default and overrides; after
 * the grow, so overrides may name new partitions).  spec->id must not be
 * 0.  Returns 0 (reference in *out if not NULL) or what create, grow or
 * set returned.
 */
int tfs_store_apply_topic(struct tfs_store *s,
			  const struct tfs_topic_spec *spec,
			  struct tfs_topic **out);

/*
 * Deletes a topic: it disappears at once, its partitions refuse writes and
 * wake their readers with TFS_EDELETED, and its files are removed in the
 * background.  Returns 0, -ENOENT, or -EPERM if delete.topic.enable is off.
 */
int tfs_store_delete_topic(struct tfs_store *s, const char *name);

/*
 * Deletes a topic whatever delete.topic.enable says: the cluster applying
 * a deletion made on another node.  0 or -ENOENT.
 */
int tfs_store_drop_topic(struct tfs_store *s, const char *name);

/* A referenced topic, or NULL. */
struct tfs_topic *tfs_store_find_topic(struct tfs_store *s, const char *name);
struct tfs_topic *tfs_store_topic_by_id(struct tfs_store *s, uint32_t id);

/*
 * A snapshot of all topics, sorted by name, each referenced.  Free with
 * tfs_store_topics_free.
 */
struct tfs_topic **tfs_store_topics(struct tfs_store *s, size_t *n);
void tfs_store_topics_free(struct tfs_topic **v, size_t n);

struct tfs_topic *tfs_topic_ref(struct tfs_topic *t);
void tfs_topic_unref(struct tfs_topic *t);

/* Set once, valid while referenced. */
const char *tfs_topic_name(struct tfs_topic *t);
uint32_t tfs_topic_id(struct tfs_topic *t);	/* never reused */
int64_t tfs_topic_created(struct tfs_topic *t);	/* ms since the epoch */
/* The topic's settings, borrowed (valid while t is referenced). */
struct tfs_settings *tfs_topic_settings(struct tfs_topic *t);
/* Which settings are set on the topic itself (not defaults). */
void tfs_topic_explicit(struct tfs_topic *t, bool out[TFS_CONF__COUNT]);

/* Partitions of t now. */
uint32_t tfs_topic_partitions(struct tfs_topic *t);
/* Partition i of t, referenced, or NULL (out of range or deleted). */
struct tfs_partition *tfs_topic_partition(struct tfs_topic *t, uint32_t i);

/*
 * Grows t to n partitions (persisted before it returns).  Returns 0,
 * -EINVAL when n is smaller than now or above the limit, -errno.
 */
int tfs_topic_set_partitions(struct tfs_topic *t, uint32_t n);

/*
 * Sets topic-scoped key to value (validated, persisted atomically, applied
 * at once).  Returns 0, TFS_EBADCONF (message in err), -ENOENT for a key
 * that is not topic-scoped, or -errno.
 */
int tfs_topic_set_config(struct tfs_topic *t, const char *key,
			 const char *value, char *err, size_t errlen);

/* Formats the effective value of key for t.  Returns the length. */
int tfs_topic_get_config(struct tfs_topic *t, enum tfs_conf_key key,
			 char *buf, size_t len);

/*
 * A topic whose directory is in the store but which could not be loaded
 * at start (a damaged topic.json, a partition that cannot open, too few
 * descriptors...).  Its files are left untouched; it serves nothing, its
 * name stays taken (mkdir gets EEXIST), and status lists it as failed
 * until a restart loads it.
 */
struct tfs_topic_failure {
	char name[TFS_TOPIC_NAME_MAX + 1];
	char error[256];		/* why, for people */
};

/*
 * The topics that failed to load at start, sorted by name: a malloc'd
 * array in *out (NULL when none).  Returns how many.  Any thread.
 */
size_t tfs_store_failed_topics(struct tfs_store *s,
			       struct tfs_topic_failure **out);

/*
 * Permissions (see PERMISSIONS above).  Getters and setters take the
 * topic's lock; setters persist topic.json (or meta, for the root) before
 * they return and apply at once; on failure nothing changes.  Any thread.
 */

/* The mount root's permissions now. */
void tfs_store_root_perm(struct tfs_store *s, struct tfs_perm *out);
/*
 * Sets the root's permissions; fields equal to their defaults are not
 * recorded (they follow the configuration).  Returns 0, -EINVAL (an id
 * above TFS_PERM_ID_MAX, mode bits outside TFS_PERM_DIR_BITS), -errno.
 */
int tfs_store_set_root_perm(struct tfs_store *s, const struct tfs_perm *perm);
/*
 * The permissions of a topic that user uid (group gid) makes with mode
 * (mkdir's): owned by uid and gid, or for uid 0 (root) by the uid and gid
 * keys; the directory gets mode & ~umask (within TFS_PERM_DIR_BITS), the
 * partitions 0666 & ~umask; no overrides.  A spec without perms gets
 * these for (0, 0, 0777).
 */
void tfs_store_new_topic_perms(struct tfs_store *s, uint32_t uid, uint32_t gid,
			       uint32_t mode, struct tfs_topic_perms *out);

/* The topic directory's permissions. */
void tfs_topic_get_perm(struct tfs_topic *t, struct tfs_perm *out);
/* Returns 0, -EINVAL (as for the root), -ENOENT (deleted), -errno. */
int tfs_topic_set_perm(struct tfs_topic *t, const struct tfs_perm *perm);

/* Partition i's permissions.  Returns 0 or -ENOENT (no such partition). */
int tfs_topic_get_part_perm(struct tfs_topic *t, uint32_t i,
			    struct tfs_perm *out);
/*
 * Sets partition i's permissions (an override, or none when equal to the
 * topic's partition default).  Returns 0, -EINVAL (an id above
 * TFS_PERM_ID_MAX, mode bits outside TFS_PERM_FILE_BITS), -ENOENT (no such
 * partition, or deleted), -errno.
 */
int tfs_topic_set_part_perm(struct tfs_topic *t, uint32_t i,
			    const struct tfs_perm *perm);

/*
 * Sets all of t's permissions (directory, partitions' default, overrides
 * below its partition count) in one write of topic.json, as apply does.
 * Returns 0, -EINVAL (as tfs_store_create_topic), -ENOENT, -errno.
 */
int tfs_topic_set_perms(struct tfs_topic *t,
			const struct tfs_topic_perms *perms);

/*
 * A snapshot of all of t's permissions, overrides sorted by partition (an
 * allocated array: free with tfs_topic_perms_release).  What the cluster
 * publishes and later hands to tfs_store_apply_topic on every node.
 */
void tfs_topic_get_perms(struct tfs_topic *t, struct tfs_topic_perms *out);

/* Calls fn for every partition of every topic (store and topic locks not
 * held during the call; each partition referenced for its duration). */
void tfs_store_foreach_partition(struct tfs_store *s,
				 void (*fn)(struct tfs_topic *t,
					    struct tfs_partition *p, void *arg),
				 void *arg);

#endif
