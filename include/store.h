/*
 * store.h - the data directory: topics, their partitions and settings, the
 * background flusher.  Layout and formats are in src/store.c and
 * docs/FORMAT.md.
 *
 * Threads and locks.  The store's rwlock protects the topic table; a
 * topic's mutex protects its partition array and its persisted settings.
 * Lock order: store, topic, partition maint, partition lock.  Topics and
 * partitions are reference-counted: lookups return a reference that the
 * caller drops with the matching unref.
 */
#ifndef TFS_STORE_H
#define TFS_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "partition.h"

#define TFS_TOPIC_NAME_MAX 249

struct tfs_store;

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
	bool explicit[TFS_CONF__COUNT];	/* (lock) set on this topic */
	bool deleted;			/* (lock) */
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

/* Wakes every parked reader with status; partitions stay open. */
void tfs_store_wake_readers(struct tfs_store *s, int status);

const struct tfs_conf *tfs_store_conf(struct tfs_store *s);
const char *tfs_store_dir(struct tfs_store *s);
int64_t tfs_store_started(struct tfs_store *s);	/* ms, monotonic */

/*
 * Creates topic name with num.partitions partitions.  Returns 0 (with a
 * reference in *out if out is not NULL), -EINVAL for a bad name, -EEXIST,
 * -ENOSPC or another -errno; on failure nothing is left on disk.
 */
int tfs_store_create_topic(struct tfs_store *s, const char *name,
			   struct tfs_topic **out);

/*
 * Deletes a topic: it disappears at once, its partitions refuse writes and
 * wake their readers with TFS_EDELETED, and its files are removed in the
 * background.  Returns 0, -ENOENT, or -EPERM if delete.topic.enable is off.
 */
int tfs_store_delete_topic(struct tfs_store *s, const char *name);

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

/* Calls fn for every partition of every topic (store and topic locks not
 * held during the call; each partition referenced for its duration). */
void tfs_store_foreach_partition(struct tfs_store *s,
				 void (*fn)(struct tfs_topic *t,
					    struct tfs_partition *p, void *arg),
				 void *arg);

#endif
