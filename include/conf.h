/*
 * conf.h - the configuration table, its parser and its documentation.
 *
 * One table in src/conf.c names every key with its type, scope, range,
 * default and documentation.  The same table drives parsing of the config
 * file (libinih), of `-o key=value`, of topic extended attributes, the
 * generated reference docs/CONFIGURATION.md (`topicfs --config-doc`) and
 * the drift check in `make check`.
 *
 * Precedence: built-in defaults < config file < -o options.  Topic-scoped
 * keys set in the file or with -o are the defaults for every topic; a
 * topic's own value (set through its xattr) overrides them for that topic.
 *
 * Values: integers accept a binary size suffix for TFS_CONF_BYTES
 * (K, KiB, M, MiB, G, GiB, T, TiB: powers of 1024) and a unit for
 * TFS_CONF_MS (ms, s, m, h, d); -1 where a key's minimum allows it means
 * "unlimited" (for uid and gid: the daemon's own).  TFS_CONF_OCTAL takes
 * octal digits only ("022").  Booleans accept true/false, yes/no, on/off,
 * 1/0.
 *
 * Thread-safety: a struct tfs_conf is filled at start-up, then read-only.
 */
#ifndef TFS_CONF_H
#define TFS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum tfs_conf_type {
	TFS_CONF_BOOL,
	TFS_CONF_INT,
	TFS_CONF_BYTES,		/* integer, bytes, size suffixes */
	TFS_CONF_MS,		/* integer, milliseconds, time units */
	TFS_CONF_ENUM,		/* one of enum_values; stored as its index */
	TFS_CONF_STRING,
	TFS_CONF_OCTAL,		/* integer written in octal (umask) */
};

enum tfs_conf_scope {
	TFS_SCOPE_DAEMON,	/* the whole node; file and -o only */
	TFS_SCOPE_TOPIC,	/* default for topics, overridable by xattr */
};

/*
 * The keys.  The order is the order of the table and of the generated
 * documentation.
 */
enum tfs_conf_key {
	/* daemon */
	TFS_CONF_LOG_LEVEL,		/* log.level: enum error|warn|info|debug */
	TFS_CONF_FUSE_THREADS,		/* fuse.threads: int */
	TFS_CONF_FUSE_CLONE_FD,		/* fuse.clone_fd: bool */
	TFS_CONF_SYNC_THREADS,		/* sync.threads: int */
	TFS_CONF_FLUSH_MS,		/* flush.ms: ms */
	TFS_CONF_MAX_RECORD_BYTES,	/* max.record.bytes: bytes */
	TFS_CONF_NUM_PARTITIONS,	/* num.partitions: int */
	TFS_CONF_DELETE_TOPIC_ENABLE,	/* delete.topic.enable: bool */
	TFS_CONF_RETENTION_CHECK_INTERVAL_MS, /* retention.check.interval.ms */
	TFS_CONF_COMPRESSION_CACHE_BYTES, /* compression.cache.bytes: bytes */
	TFS_CONF_SCRUB_INTERVAL_MS,	/* scrub.interval.ms: ms, 0 = off */
	TFS_CONF_SCRUB_BYTES_PER_SECOND, /* scrub.bytes.per.second: bytes */
	TFS_CONF_UID,			/* uid: int, -1 = the daemon's */
	TFS_CONF_GID,			/* gid: int, -1 = the daemon's */
	TFS_CONF_UMASK,			/* umask: octal 0..0777 */
	/* the cluster (daemon) */
	TFS_CONF_CLUSTER_ETCD,		/* cluster.etcd: string, "" = none */
	TFS_CONF_CLUSTER_NAME,		/* cluster.name: string */
	TFS_CONF_NODE_ID,		/* node.id: int */
	TFS_CONF_LISTEN,		/* listen: string */
	TFS_CONF_ADVERTISE,		/* advertise: string */
	TFS_CONF_CLUSTER_SECRET_FILE,	/* cluster.secret.file: string */
	TFS_CONF_DEFAULT_REPLICATION_FACTOR, /* default.replication.factor */
	TFS_CONF_SESSION_TIMEOUT_MS,	/* session.timeout.ms: ms */
	TFS_CONF_REQUEST_TIMEOUT_MS,	/* request.timeout.ms: ms */
	TFS_CONF_REPLICA_LAG_TIME_MAX_MS, /* replica.lag.time.max.ms: ms */
	TFS_CONF_REPLICA_FETCH_WAIT_MAX_MS, /* replica.fetch.wait.max.ms */
	TFS_CONF_REPLICA_FETCH_MAX_BYTES, /* replica.fetch.max.bytes: bytes */
	TFS_CONF_REPLICATION_COMPRESSION, /* replication.compression: enum */
	TFS_CONF_UNCLEAN_LEADER_ELECTION, /* unclean.leader.election: bool */
	TFS_CONF_HTTP_THREADS,		/* http.threads: int */
	/* topic */
	TFS_CONF_RETENTION_MS,		/* retention.ms: ms, -1 = forever */
	TFS_CONF_RETENTION_BYTES,	/* retention.bytes: bytes, -1 = no limit */
	TFS_CONF_SEGMENT_BYTES,		/* segment.bytes: bytes */
	TFS_CONF_SEGMENT_MS,		/* segment.ms: ms */
	TFS_CONF_COMPRESSION,		/* compression: enum none|zstd */
	TFS_CONF_COMPRESSION_LEVEL,	/* compression.level: int 1..19 */
	TFS_CONF_COMPRESSION_FRAME_BYTES, /* compression.frame.bytes: bytes */
	TFS_CONF_DURABILITY,		/* durability: enum async|sync */
	TFS_CONF_MIN_INSYNC_REPLICAS,	/* min.insync.replicas: int */
	TFS_CONF_ACKS,			/* acks: enum all|1 */
	TFS_CONF__COUNT
};

/* Index values of the enum keys. */
enum { TFS_COMPRESSION_NONE, TFS_COMPRESSION_ZSTD };
enum { TFS_DURABILITY_ASYNC, TFS_DURABILITY_SYNC };
enum { TFS_ACKS_ALL, TFS_ACKS_LEADER };

struct tfs_conf_desc {
	const char *name;		/* "segment.bytes" */
	enum tfs_conf_type type;
	enum tfs_conf_scope scope;
	int64_t def;			/* default (index for enums, 0/1 bools) */
	int64_t min, max;		/* inclusive range for integer types */
	const char *const *enum_values;	/* NULL-terminated, for TFS_CONF_ENUM */
	const char *def_string;		/* default for TFS_CONF_STRING */
	const char *doc;		/* Markdown paragraph for the reference */
};

struct tfs_conf {
	int64_t v[TFS_CONF__COUNT];	/* integer, bool and enum values */
	char *s[TFS_CONF__COUNT];	/* string values (owned) */
	bool set[TFS_CONF__COUNT];	/* explicitly set by file or -o */
};

/* The descriptor of key (never NULL for a valid key). */
const struct tfs_conf_desc *tfs_conf_desc(enum tfs_conf_key key);
/* Finds a key by name; returns its index or -1. */
int tfs_conf_find(const char *name);

/* Fills c with the defaults. */
void tfs_conf_init(struct tfs_conf *c);
void tfs_conf_release(struct tfs_conf *c);
/* Deep copy (dst is initialised by this call). */
void tfs_conf_copy(struct tfs_conf *dst, const struct tfs_conf *src);

/*
 * Parses value for key into *out (string keys: not supported here, use
 * tfs_conf_set).  Returns 0, or TFS_EBADCONF with a message in err
 * ("segment.bytes: 12x is not a size (e.g. 64MiB)", "... must be between
 * A and B").
 */
int tfs_conf_parse(enum tfs_conf_key key, const char *value, int64_t *out,
		   char *err, size_t errlen);

/*
 * Sets name=value in c.  Returns 0, TFS_EBADCONF for an unknown key or an
 * invalid value, with a message in err naming the key.
 */
int tfs_conf_set(struct tfs_conf *c, const char *name, const char *value,
		 char *err, size_t errlen);

/*
 * Loads an INI file (libinih); keys may appear at top level or under a
 * [topicfs] section.  Returns 0, -errno if the file cannot be read, or
 * TFS_EBADCONF with "FILE:LINE: message" in err for the first bad line.
 */
int tfs_conf_load_file(struct tfs_conf *c, const char *path, char *err,
		       size_t errlen);

/*
 * Formats the value v of key the way a user writes it (enum names,
 * "true"/"false", plain integers) into buf.  Returns the length.
 */
int tfs_conf_format(enum tfs_conf_key key, int64_t v, char *buf, size_t len);

/* Writes the Markdown reference (docs/CONFIGURATION.md) to f. */
void tfs_conf_write_doc(FILE *f);

static inline int64_t tfs_conf_get(const struct tfs_conf *c,
				   enum tfs_conf_key key)
{
	return c->v[key];
}

/* A string key's value (its default when unset; never NULL). */
static inline const char *tfs_conf_str(const struct tfs_conf *c,
				       enum tfs_conf_key key)
{
	return c->s[key] ? c->s[key] : "";
}

#endif
