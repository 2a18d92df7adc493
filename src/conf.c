/*
 * conf.c - the configuration table, its parser and its documentation.
 *
 * Everything topicfs knows about a setting lives in one row of keys[]
 * below: name, type, scope, default, range, enum names and a Markdown
 * paragraph.  The same row drives the parser (tfs_conf_parse, used for the
 * config file, `-o key=value` and topic xattrs), the formatter, and the
 * generated reference docs/CONFIGURATION.md (tfs_conf_write_doc, exposed as
 * `topicfs --config-doc`).  contrib/docs-check.sh fails the build when the
 * committed reference or etc/topicfs.conf no longer matches the table, so
 * adding a key means adding a row here, a block to etc/topicfs.conf and
 * running `make docs`.
 *
 * Values.  Integers are decimal.  Sizes (TFS_CONF_BYTES) take an optional
 * binary suffix, case-insensitive, with an optional space before it:
 * B, K/KiB, M/MiB, G/GiB, T/TiB.  Durations (TFS_CONF_MS) take ms (the
 * default), s, m, h or d, lower case only so that "1M" cannot be read as
 * one minute by someone who meant a million.  Any negative value other
 * than a plain -1 is out of range, and -1 is valid only where the key's
 * minimum is -1 (uid and gid take it for "the daemon's own"): "-0", "-00",
 * "-0ms", "-0K", "-01", "-1s" and "-1B" are refused, so nothing that reads
 * as negative is taken as 0 or as "no limit" by accident.  Overflow is
 * reported as out of range.  Modes (TFS_CONF_OCTAL) are octal digits only,
 * written back with a leading 0 ("022").  Booleans accept true/false,
 * yes/no, on/off, 1/0 in any case; enum values are exact.
 *
 * The config file goes through libinih, which only this module includes.
 * inih's behaviour depends on how the library was built (inline comment
 * characters, multi-line values, maximum line length), so the file is fed
 * to it through our own line reader (read_line) that makes the dialect
 * ours: it counts physical lines (so errors name the real line), removes
 * leading blanks (so an indented key is never taken for the continuation
 * of the previous value), strips `#` and `;` comments at the start of a
 * line or after a blank, rejects NUL bytes and over-long lines, and checks
 * section names.  The file is parsed into a copy that replaces the
 * caller's configuration only when the whole file is good.
 *
 * Thread-safety: the table is constant; a struct tfs_conf is filled by one
 * thread at start-up and read-only afterwards.  Nothing here locks.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* The largest value a key may have: a guard against overflow, not a limit. */
#define UNBOUNDED (INT64_C(1) << 62)

/* The largest user or group id: (uid_t)-1 means "no change" to chown(2). */
#define MAX_ID INT64_C(4294967294)

#define KiB INT64_C(1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
#define TiB (GiB * 1024)

#define SECOND INT64_C(1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

/* White space around values and units; a trailing newline is forgiven. */
#define BLANKS " \t\r\n\v\f"

/* Longest "key = value" line accepted in a config file, in bytes. */
#define MAX_LINE 1024

static const char *const log_levels[] = { "error", "warn", "info", "debug",
					  NULL };
static const char *const compressions[] = { "none", "zstd", NULL };
static const char *const durabilities[] = { "async", "sync", NULL };
static const char *const ack_modes[] = { "all", "1", NULL };

/* log.level is stored as an index into log_levels: keep the orders equal. */
_Static_assert(TFS_LOG_ERROR == 0 && TFS_LOG_WARN == 1 && TFS_LOG_INFO == 2 &&
		       TFS_LOG_DEBUG == 3,
	       "log_levels[] must follow enum tfs_log_level");

static const struct tfs_conf_desc keys[TFS_CONF__COUNT] = {
	[TFS_CONF_LOG_LEVEL] = {
		.name = "log.level",
		.type = TFS_CONF_ENUM,
		.scope = TFS_SCOPE_DAEMON,
		.def = TFS_LOG_INFO,
		.enum_values = log_levels,
		.doc = "The least severe kind of message the daemon logs: "
		       "`error`, `warn`, `info` or `debug`, each level "
		       "including the ones before it.  Messages go to "
		       "standard error in the foreground and to syslog once "
		       "the daemon has detached.  Takes effect at start-up.",
	},
	[TFS_CONF_FUSE_THREADS] = {
		.name = "fuse.threads",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = 8, .min = 1, .max = 64,
		.doc = "The maximum number of threads that serve file-system "
		       "requests from the kernel at the same time.  libfuse "
		       "starts worker threads as requests arrive, up to this "
		       "many.  Takes effect at start-up.",
	},
	[TFS_CONF_FUSE_CLONE_FD] = {
		.name = "fuse.clone_fd",
		.type = TFS_CONF_BOOL,
		.scope = TFS_SCOPE_DAEMON,
		.def = 1,
		.doc = "Whether each FUSE worker thread reads requests from "
		       "its own clone of the `/dev/fuse` file descriptor "
		       "rather than all workers sharing one, which lowers "
		       "contention between them.  Turn it off where cloning "
		       "`/dev/fuse` is not permitted.  Takes effect at "
		       "start-up.",
	},
	[TFS_CONF_SYNC_THREADS] = {
		.name = "sync.threads",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = 2, .min = 1, .max = 16,
		.doc = "The number of background threads that fsync written "
		       "data to disk.  They are shared by all partitions of "
		       "all topics.  Takes effect at start-up.",
	},
	[TFS_CONF_FLUSH_MS] = {
		.name = "flush.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = 1000, .min = 1, .max = DAY,
		.doc = "The interval, in milliseconds, at which the background "
		       "sync threads fsync data that has been written but not "
		       "yet synced.  For topics with `durability = async` it "
		       "bounds how much acknowledged data a power failure can "
		       "lose.  Recovery checkpoints are written at the same "
		       "interval, so a shorter interval also shortens recovery "
		       "after an unclean shutdown.  Takes effect at start-up.",
	},
	[TFS_CONF_MAX_RECORD_BYTES] = {
		.name = "max.record.bytes",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_DAEMON,
		.def = MiB, .min = 1, .max = 64 * MiB,
		.doc = "The largest record, in bytes, that may be appended to "
		       "a partition.  A write that carries a longer record is "
		       "refused with `EFBIG`.  Takes effect at start-up.",
	},
	[TFS_CONF_NUM_PARTITIONS] = {
		.name = "num.partitions",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = 1, .min = 1, .max = 1048576,
		.doc = "The number of partitions a newly created topic gets.  "
		       "Existing topics keep the number they were created "
		       "with.  Takes effect at start-up.",
	},
	[TFS_CONF_DELETE_TOPIC_ENABLE] = {
		.name = "delete.topic.enable",
		.type = TFS_CONF_BOOL,
		.scope = TFS_SCOPE_DAEMON,
		.def = 1,
		.doc = "Whether removing a topic's directory with `rmdir` "
		       "deletes the topic and all of its data.  When `false`, "
		       "`rmdir` of a topic fails and the data stays.  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_RETENTION_CHECK_INTERVAL_MS] = {
		.name = "retention.check.interval.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = 5 * MINUTE, .min = 100, .max = DAY,
		.doc = "How often, in milliseconds, every partition is checked "
		       "against `retention.ms` and `retention.bytes`, and the "
		       "segments that fall outside them are deleted.  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_COMPRESSION_CACHE_BYTES] = {
		.name = "compression.cache.bytes",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_DAEMON,
		.def = 64 * MiB, .min = 0, .max = 64 * GiB,
		.doc = "Memory, in bytes, for decompressed frames of compressed "
		       "segments, shared by all readers and evicted least "
		       "recently used first.  A sequential reader decompresses "
		       "each frame once as long as the cache holds a few "
		       "frames per concurrent reader; 0 disables the cache.  "
		       "Takes effect at start-up.",
	},
	[TFS_CONF_SCRUB_INTERVAL_MS] = {
		.name = "scrub.interval.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = DAY, .min = 0, .max = 366 * DAY,
		.doc = "How often the scrubber starts a pass over the sealed "
		       "segments of every partition, checking each batch "
		       "against the CRC-32C in its index entry and each index "
		       "entry against its own, so that damage at rest (bit "
		       "rot, a stray write) is found, logged and counted "
		       "(`corrupt_batches` in the status) before a reader or "
		       "a replica needs the data.  Reads check what they read "
		       "in any case; the scrubber reaches what nobody reads.  "
		       "A pass starts a minute after the daemon starts (or "
		       "one interval, if that is shorter), then one interval "
		       "after the previous pass started, or as soon as it "
		       "ends if it took longer.  A day matches how slowly "
		       "disks decay and how long a pass over a large node "
		       "takes at the default `scrub.bytes.per.second` (1 TiB "
		       "in about 9 hours).  `0` turns the scrubber off.  "
		       "Takes effect at start-up.",
	},
	[TFS_CONF_SCRUB_BYTES_PER_SECOND] = {
		.name = "scrub.bytes.per.second",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_DAEMON,
		.def = 32 * MiB, .min = 64 * KiB, .max = 64 * GiB,
		.doc = "The most data, in bytes per second, the scrubber "
		       "reads, so that it never takes the disk from writers "
		       "and readers: the default is about a tenth of what a "
		       "disk streams.  It reads a chunk of about a MiB (one "
		       "frame of a compressed segment), then sleeps as long "
		       "as the budget asks.  Takes effect at start-up.",
	},
	[TFS_CONF_UID] = {
		.name = "uid",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = -1, .min = -1, .max = MAX_ID,
		.doc = "The numeric user id that owns the mount's root "
		       "directory and the topics root creates (and those the "
		       "cluster creates); `-1` means the daemon's own "
		       "effective user id, root when it runs as root.  A "
		       "topic another user creates with `mkdir` (through "
		       "`allow_other`) belongs to that user instead.  "
		       "Partitions are created with their topic's owner.  "
		       "The kernel checks every access against these owners "
		       "and the modes (`default_permissions` is always on); "
		       "other users reach the mount only with `allow_other`.  "
		       "Takes effect at start-up for the root, unless a "
		       "`chown` of the root recorded another owner, and for "
		       "topics created from then on; existing topics keep "
		       "theirs (`chown` changes them).",
	},
	[TFS_CONF_GID] = {
		.name = "gid",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = -1, .min = -1, .max = MAX_ID,
		.doc = "The numeric group id of the mount's root directory "
		       "and of the topics root creates, as `uid` is their "
		       "owner; `-1` means the daemon's own effective group "
		       "id.  A topic another user creates belongs to that "
		       "user's group, or to the root's group when the root "
		       "has the set-group-ID bit (`chmod g+s`).  Takes effect "
		       "at start-up, like `uid`.",
	},
	[TFS_CONF_UMASK] = {
		.name = "umask",
		.type = TFS_CONF_OCTAL,
		.scope = TFS_SCOPE_DAEMON,
		.def = 022, .min = 0, .max = 0777,
		.doc = "The permission bits, in octal, that new topics and "
		       "partitions do not get.  A topic directory made with "
		       "`mkdir` gets the mode `mkdir` asked for (already "
		       "without the caller's own umask) without these bits; "
		       "its partitions, also those added later by growing "
		       "`user.topicfs.partitions`, get `0666` without them.  "
		       "The default `022` gives topics `0755` and partitions "
		       "`0644`: the owner appends, everyone reads; `002` lets "
		       "the group append too, `027` keeps others out.  "
		       "Existing topics keep their modes (`chmod` changes "
		       "them).  Takes effect at start-up.",
	},
	[TFS_CONF_CLUSTER_ETCD] = {
		.name = "cluster.etcd",
		.type = TFS_CONF_STRING,
		.scope = TFS_SCOPE_DAEMON,
		.def_string = "",
		.doc = "The etcd endpoints of the cluster this node joins, "
		       "comma-separated base URLs "
		       "(`http://10.0.0.1:2379,http://10.0.0.2:2379`); in `-o` "
		       "and fstab, where a comma ends the option, separate "
		       "them with `;`.  Empty "
		       "(the default): the node is standalone, as without a "
		       "cluster: no etcd, no network, nothing replicated.  "
		       "With it, `node.id` is required and every topic, its "
		       "settings, partition assignments, leaders and in-sync "
		       "replicas live in etcd (see docs/CLUSTER.md).  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_CLUSTER_NAME] = {
		.name = "cluster.name",
		.type = TFS_CONF_STRING,
		.scope = TFS_SCOPE_DAEMON,
		.def_string = "topicfs",
		.doc = "The cluster's name: its keys in etcd live under "
		       "`/topicfs/<name>/`, so several clusters can share one "
		       "etcd.  Every node of a cluster must give the same "
		       "name.  Letters, digits, `.`, `_` and `-`.  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_NODE_ID] = {
		.name = "node.id",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = 0, .min = 0, .max = 2147483647,
		.doc = "This node's number in the cluster, unique and stable "
		       "across restarts (it names the node in partition "
		       "assignments and in-sync replica sets, like Kafka's "
		       "broker.id).  Required (1 or more) with "
		       "`cluster.etcd`; 0 means unset.  A node refuses to "
		       "start while another live node has its id.  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_LISTEN] = {
		.name = "listen",
		.type = TFS_CONF_STRING,
		.scope = TFS_SCOPE_DAEMON,
		.def_string = ":7092",
		.doc = "The address and port the node's HTTP server binds in a "
		       "cluster (replication, forwarded writes, reads for "
		       "nodes without a replica): `HOST:PORT`, `[IPv6]:PORT`, "
		       "or `:PORT` for every address.  Takes effect at "
		       "start-up.",
	},
	[TFS_CONF_ADVERTISE] = {
		.name = "advertise",
		.type = TFS_CONF_STRING,
		.scope = TFS_SCOPE_DAEMON,
		.def_string = "",
		.doc = "The base URL other nodes use to reach this one "
		       "(`http://10.0.0.3:7092`).  Empty: `http://` with the "
		       "host name and the `listen` port.  Takes effect at "
		       "start-up.",
	},
	[TFS_CONF_CLUSTER_SECRET_FILE] = {
		.name = "cluster.secret.file",
		.type = TFS_CONF_STRING,
		.scope = TFS_SCOPE_DAEMON,
		.def_string = "/etc/topicfs/cluster.secret",
		.doc = "A file holding the secret the nodes of a cluster share "
		       "(at least 16 bytes; keep it readable by root only): "
		       "every request between nodes carries an HMAC-SHA256 "
		       "made with it, and a request with a bad MAC, a clock "
		       "more than 30 s off or a replay is refused with 401.  "
		       "Required with `cluster.etcd`.  Takes effect at "
		       "start-up.",
	},
	[TFS_CONF_DEFAULT_REPLICATION_FACTOR] = {
		.name = "default.replication.factor",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = 3, .min = 1, .max = 16,
		.doc = "How many nodes hold a copy of each partition of a topic "
		       "created on this node (the topic's "
		       "`user.topicfs.replication.factor`).  `mkdir` fails "
		       "with `EINVAL` when it is above the number of live "
		       "nodes.  Takes effect at start-up.",
	},
	[TFS_CONF_SESSION_TIMEOUT_MS] = {
		.name = "session.timeout.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = 6000, .min = 2000, .max = 10 * MINUTE,
		.doc = "The TTL of the node's etcd lease, rounded up to whole "
		       "seconds.  A node that cannot renew it for this long "
		       "is taken as gone: its leaderships pass to in-sync "
		       "replicas, and it stops acknowledging writes itself "
		       "before the lease can have run out.  Shorter fails "
		       "over faster, longer rides out slower pauses.  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_REQUEST_TIMEOUT_MS] = {
		.name = "request.timeout.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = 30 * SECOND, .min = 100, .max = 10 * MINUTE,
		.doc = "How long a write waits for its partition to have a "
		       "reachable leader and enough in-sync replicas, retrying "
		       "through failovers, before it fails with `EIO`.  The "
		       "same bound applies to reads that go to another node.  "
		       "Takes effect at start-up.",
	},
	[TFS_CONF_REPLICA_LAG_TIME_MAX_MS] = {
		.name = "replica.lag.time.max.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = 10 * SECOND, .min = 100, .max = 10 * MINUTE,
		.doc = "A follower that has not caught up with its leader's "
		       "log end for this long leaves the in-sync replicas; it "
		       "joins again once it has.  A follower whose node left "
		       "the cluster leaves at once.  Takes effect at "
		       "start-up.",
	},
	[TFS_CONF_REPLICA_FETCH_WAIT_MAX_MS] = {
		.name = "replica.fetch.wait.max.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_DAEMON,
		.def = 500, .min = 10, .max = MINUTE,
		.doc = "The longest a leader holds a follower's fetch when it "
		       "has nothing new for it (a long poll): it answers "
		       "sooner as soon as there is data or a new high "
		       "watermark (a change of leadership is seen by the "
		       "follower's next fetch, within this time).  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_REPLICA_FETCH_MAX_BYTES] = {
		.name = "replica.fetch.max.bytes",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_DAEMON,
		.def = 8 * MiB, .min = 64 * KiB, .max = 256 * MiB,
		.doc = "The most batch bytes one fetch answer carries across "
		       "all its partitions (at least one batch); a partition "
		       "with a long backlog cannot starve the others.  Takes "
		       "effect at start-up.",
	},
	[TFS_CONF_REPLICATION_COMPRESSION] = {
		.name = "replication.compression",
		.type = TFS_CONF_ENUM,
		.scope = TFS_SCOPE_DAEMON,
		.def = TFS_COMPRESSION_ZSTD,
		.enum_values = compressions,
		.doc = "How batches travel between nodes: `zstd` compresses "
		       "fetch answers (level 1) when that makes them smaller, "
		       "`none` sends them as they are.  Takes effect at "
		       "start-up.",
	},
	[TFS_CONF_UNCLEAN_LEADER_ELECTION] = {
		.name = "unclean.leader.election",
		.type = TFS_CONF_BOOL,
		.scope = TFS_SCOPE_DAEMON,
		.def = 0,
		.doc = "Whether a replica outside the in-sync set may become "
		       "leader when no in-sync replica is alive.  Off (the "
		       "default, as in Kafka since 0.11): the partition stays "
		       "unwritable until an in-sync replica returns, and no "
		       "acknowledged write is lost.  On: it becomes writable "
		       "again sooner, and writes acknowledged by the lost "
		       "replicas can vanish.  Takes effect at start-up.",
	},
	[TFS_CONF_HTTP_THREADS] = {
		.name = "http.threads",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_DAEMON,
		.def = 4, .min = 1, .max = 64,
		.doc = "Threads of the node's HTTP server in a cluster.  Long "
		       "polls and waiting writes hold no thread, so a few "
		       "serve many peers.  Takes effect at start-up.",
	},
	[TFS_CONF_RETENTION_MS] = {
		.name = "retention.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_TOPIC,
		.def = 7 * DAY, .min = -1, .max = UNBOUNDED,
		.doc = "How long, in milliseconds, records are kept.  A sealed "
		       "segment is deleted once its newest record is older "
		       "than this; only whole sealed segments are deleted, so "
		       "records can outlive the limit by up to a segment's "
		       "age.  `-1` keeps records forever.  A change takes "
		       "effect at the next retention check (see "
		       "`retention.check.interval.ms`).",
	},
	[TFS_CONF_RETENTION_BYTES] = {
		.name = "retention.bytes",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_TOPIC,
		.def = -1, .min = -1, .max = UNBOUNDED,
		.doc = "The most data, in bytes, each partition keeps.  As in "
		       "Kafka the limit applies to every partition on its own, "
		       "so a topic can hold its partition count times this.  "
		       "When a partition grows past it, its oldest sealed "
		       "segments are deleted until it fits; only whole "
		       "segments are deleted, so a partition can exceed the "
		       "limit by up to one segment.  `-1` sets no size limit.  "
		       "A change takes effect at the next retention check.",
	},
	[TFS_CONF_SEGMENT_BYTES] = {
		.name = "segment.bytes",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_TOPIC,
		.def = GiB, .min = 4 * KiB, .max = 16 * GiB,
		.doc = "The size, in bytes, at which a partition's active "
		       "segment is sealed and a new one is started.  Retention "
		       "and compression work on whole sealed segments, so this "
		       "is also their granularity.  A change takes effect for "
		       "the active segment of each partition from then on.",
	},
	[TFS_CONF_SEGMENT_MS] = {
		.name = "segment.ms",
		.type = TFS_CONF_MS,
		.scope = TFS_SCOPE_TOPIC,
		.def = 7 * DAY, .min = SECOND, .max = UNBOUNDED,
		.doc = "The age, in milliseconds, after which the active "
		       "segment is sealed even if it has not reached "
		       "`segment.bytes`, so that retention and compression "
		       "also reach the data of quiet partitions.  A change "
		       "takes effect for the active segment of each partition "
		       "from then on.",
	},
	[TFS_CONF_COMPRESSION] = {
		.name = "compression",
		.type = TFS_CONF_ENUM,
		.scope = TFS_SCOPE_TOPIC,
		.def = TFS_COMPRESSION_NONE,
		.enum_values = compressions,
		.doc = "How sealed segments are stored.  With `zstd` the "
		       "background compactor rewrites each sealed segment as a "
		       "sequence of zstd frames (see "
		       "`compression.frame.bytes`), and reads decompress them "
		       "transparently; the active segment is never compressed. "
		       " With `none` segments stay as written.  Setting "
		       "`zstd` on an existing topic also compresses the "
		       "segments it sealed before, at the next compactor "
		       "pass; setting `none` stops further compression, and "
		       "segments already compressed stay compressed.",
	},
	[TFS_CONF_COMPRESSION_LEVEL] = {
		.name = "compression.level",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_TOPIC,
		.def = 3, .min = 1, .max = 19,
		.doc = "The zstd level the compactor compresses with, from 1 "
		       "(fastest) to 19 (smallest).  Used only with "
		       "`compression = zstd`.  A change applies to segments "
		       "compressed afterwards.",
	},
	[TFS_CONF_COMPRESSION_FRAME_BYTES] = {
		.name = "compression.frame.bytes",
		.type = TFS_CONF_BYTES,
		.scope = TFS_SCOPE_TOPIC,
		.def = 256 * KiB, .min = 4 * KiB, .max = 16 * MiB,
		.doc = "The amount of uncompressed data, in bytes, in each "
		       "zstd frame of a compressed segment.  A read that "
		       "starts in the middle of a compressed segment "
		       "decompresses a whole frame, so smaller frames make "
		       "such reads cheaper and larger frames compress "
		       "better.  Frames end on batch boundaries, so a frame "
		       "exceeds this by up to one batch (one `write()`).  "
		       "Used only with `compression = zstd`.  A change "
		       "applies to segments compressed afterwards.",
	},
	[TFS_CONF_DURABILITY] = {
		.name = "durability",
		.type = TFS_CONF_ENUM,
		.scope = TFS_SCOPE_TOPIC,
		.def = TFS_DURABILITY_ASYNC,
		.enum_values = durabilities,
		.doc = "When a `write()` to a topic returns.  With `async` it "
		       "returns once the data is in the page cache, and the "
		       "background sync threads make it durable within "
		       "`flush.ms`, so a power failure can lose that much.  "
		       "With `sync` every `write()` is fsynced before it "
		       "returns; concurrent writers share one fsync (group "
		       "commit), which keeps throughput up.  A change applies "
		       "to writes that start afterwards.",
	},
	[TFS_CONF_MIN_INSYNC_REPLICAS] = {
		.name = "min.insync.replicas",
		.type = TFS_CONF_INT,
		.scope = TFS_SCOPE_TOPIC,
		.def = 2, .min = 1, .max = 16,
		.doc = "In a cluster: the fewest in-sync replicas (the leader "
		       "included) a partition needs to commit a write; with "
		       "fewer, `acks=all` writes and `fsync()` fail with `EIO` "
		       "and reads go on (`acks=1` writes are taken, and become "
		       "readable once enough replicas are back).  A "
		       "value above the topic's replication factor counts as "
		       "the replication factor.  The high watermark advances "
		       "only while the in-sync set is this large (Kafka's "
		       "KIP-966 strict minimum).  A change takes effect at "
		       "once.",
	},
	[TFS_CONF_ACKS] = {
		.name = "acks",
		.type = TFS_CONF_ENUM,
		.scope = TFS_SCOPE_TOPIC,
		.def = TFS_ACKS_ALL,
		.enum_values = ack_modes,
		.doc = "In a cluster: when a `write()` returns.  `all`: once "
		       "every in-sync replica has the records (and there are "
		       "at least `min.insync.replicas` of them), so a lost "
		       "node loses nothing acknowledged.  `1`: once the "
		       "leader has them, however few in-sync replicas there "
		       "are (as in Kafka, `min.insync.replicas` counts for "
		       "`all` only); faster, and a leader lost before its "
		       "followers copied them loses them.  `fsync()` always "
		       "waits for the in-sync replicas.  A change takes effect "
		       "at once.",
	},
};

static const char *const type_names[] = {
	[TFS_CONF_BOOL] = "bool",
	[TFS_CONF_INT] = "integer",
	[TFS_CONF_BYTES] = "bytes",
	[TFS_CONF_MS] = "milliseconds",
	[TFS_CONF_ENUM] = "enum",
	[TFS_CONF_STRING] = "string",
	[TFS_CONF_OCTAL] = "octal",
};

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const struct tfs_conf_desc *tfs_conf_desc(enum tfs_conf_key key)
{
	if ((unsigned)key >= TFS_CONF__COUNT)
		return NULL;
	return &keys[key];
}

int tfs_conf_find(const char *name)
{
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		if (!strcmp(name, keys[k].name))
			return k;
	return -1;
}

/* Levenshtein distance between a and b, or INT_MAX when a is too long. */
static int edit_distance(const char *a, const char *b)
{
	enum { N = 64 };
	int row[N + 1];
	size_t la = strlen(a), lb = strlen(b);

	if (la > N || lb > N)
		return INT_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0];

		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);

			best = TFS_MIN(best, up + 1);
			best = TFS_MIN(best, row[j - 1] + 1);
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* The key closest to name, if it is within two edits; else NULL. */
static const char *closest_key(const char *name)
{
	const char *best = NULL;
	int best_d = 3;

	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		int d = edit_distance(name, keys[k].name);

		if (d < best_d) {
			best_d = d;
			best = keys[k].name;
		}
	}
	return best;
}

/* --- values --------------------------------------------------------------- */

struct unit {
	const char *name;
	int64_t mult;
};

static const struct unit size_units[] = {
	{ "B", 1 },	{ "K", KiB },	{ "KiB", KiB }, { "M", MiB },
	{ "MiB", MiB }, { "G", GiB },	{ "GiB", GiB }, { "T", TiB },
	{ "TiB", TiB }, { NULL, 0 },
};

static const struct unit time_units[] = {
	{ "ms", 1 },	   { "s", SECOND }, { "m", MINUTE },
	{ "h", HOUR },	   { "d", DAY },    { NULL, 0 },
};

/* Finds the multiplier of the unit s[0..n) in units; 0 if unknown. */
static int64_t unit_mult(const struct unit *units, const char *s, size_t n,
			 bool nocase)
{
	for (const struct unit *u = units; u->name; u++) {
		if (strlen(u->name) != n)
			continue;
		if (nocase ? !strncasecmp(s, u->name, n)
			   : !strncmp(s, u->name, n))
			return u->mult;
	}
	return 0;
}

enum num_status { NUM_OK, NUM_SYNTAX, NUM_RANGE };

/*
 * Parses "[-]digits[ ][unit]" with surrounding white space.  units may be NULL
 * (no unit allowed).  A number too large for int64_t is NUM_RANGE, and so
 * is every negative number but a plain "-1": "-0", "-00", "-0ms", "-0K",
 * "-01" and "-1s" are not ways to write 0 or -1 (a value that reads as
 * negative and acts as zero, or as "no limit", is a trap).
 */
static enum num_status parse_number(const char *s, const struct unit *units,
				    bool nocase, int64_t *out)
{
	uint64_t mag = 0;
	bool neg = false, big = false;
	int64_t mult = 1, v;
	const char *digits;
	size_t n, ndigits;

	s += strspn(s, BLANKS);
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (!isdigit((unsigned char)*s))
		return NUM_SYNTAX;
	digits = s;
	for (; isdigit((unsigned char)*s); s++) {
		if (mag > (uint64_t)INT64_MAX / 10)
			big = true;
		else
			mag = mag * 10 + (uint64_t)(*s - '0');
		if (mag > (uint64_t)INT64_MAX)
			big = true;
	}
	ndigits = (size_t)(s - digits);
	s += strspn(s, BLANKS);
	n = strcspn(s, BLANKS);
	if (n) {
		if (!units || !(mult = unit_mult(units, s, n, nocase)))
			return NUM_SYNTAX;
		s += n;
		s += strspn(s, BLANKS);
	}
	if (*s)
		return NUM_SYNTAX;
	if (neg && !(ndigits == 1 && *digits == '1' && !n))
		return NUM_RANGE;
	if (big || __builtin_mul_overflow((int64_t)mag, mult, &v))
		return NUM_RANGE;
	*out = neg ? -v : v;
	return NUM_OK;
}

/* Copies s without surrounding blanks into buf (truncating). */
static const char *trimmed(const char *s, char *buf, size_t len)
{
	size_t n;

	s += strspn(s, BLANKS);
	n = strlen(s);
	while (n && strchr(BLANKS, s[n - 1]))
		n--;
	snprintf(buf, len, "%.*s", (int)TFS_MIN(n, (size_t)INT_MAX), s);
	return buf;
}

static int parse_bool(const char *s, int64_t *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	char buf[8];

	trimmed(s, buf, sizeof(buf));
	for (size_t i = 0; i < TFS_ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(buf, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(buf, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

static int parse_enum(const struct tfs_conf_desc *d, const char *s,
		      int64_t *out)
{
	char buf[32];

	trimmed(s, buf, sizeof(buf));
	for (int i = 0; d->enum_values[i]; i++) {
		if (!strcmp(buf, d->enum_values[i])) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

/* Writes v with the largest unit that divides it exactly ("64MiB", "7d"). */
static void format_human(const struct tfs_conf_desc *d, int64_t v, char *buf,
			 size_t len)
{
	const struct unit *units = d->type == TFS_CONF_BYTES ? size_units
				 : d->type == TFS_CONF_MS    ? time_units
							     : NULL;
	const struct unit *best = NULL;

	if (units && v > 0) {
		for (const struct unit *u = units; u->name; u++)
			if (v % u->mult == 0 &&
			    (!best || u->mult > best->mult ||
			     (u->mult == best->mult &&
			      strlen(u->name) > strlen(best->name))))
				best = u;
	}
	/* A plain byte count reads better without a "B". */
	if (best && d->type == TFS_CONF_BYTES && best->mult == 1)
		best = NULL;
	if (v == 0 && d->type == TFS_CONF_MS)
		best = &time_units[0];
	if (best)
		snprintf(buf, len, "%lld%s", (long long)(v / best->mult),
			 best->name);
	else
		tfs_conf_format((enum tfs_conf_key)(d - keys), v, buf, len);
}

/* The values key accepts, in words: "between 4KiB and 16GiB". */
static void format_range(const struct tfs_conf_desc *d, char *buf, size_t len)
{
	char lo[32], hi[32];
	int64_t min = d->min == -1 ? 0 : d->min;
	const char *minus_one = d->min == -1 ? "-1 or " : "";

	if (d->type == TFS_CONF_BOOL) {
		snprintf(buf, len, "true or false");
		return;
	}
	if (d->type == TFS_CONF_ENUM) {
		struct tfs_buf b = TFS_BUF_INIT;

		for (int i = 0; d->enum_values[i]; i++)
			tfs_buf_addf(&b, "%s%s", i ? ", " : "one of ",
				     d->enum_values[i]);
		snprintf(buf, len, "%s", b.data ? b.data : "");
		tfs_buf_release(&b);
		return;
	}
	format_human(d, min, lo, sizeof(lo));
	format_human(d, d->max, hi, sizeof(hi));
	if (d->max >= UNBOUNDED)
		snprintf(buf, len, "%sat least %s", minus_one, lo);
	else
		snprintf(buf, len, "%sbetween %s and %s", minus_one, lo, hi);
}

/* What the value of a number-typed key should look like, for messages. */
static const char *number_hint(enum tfs_conf_type type)
{
	switch (type) {
	case TFS_CONF_BYTES:
		return "is not a size (e.g. 64MiB)";
	case TFS_CONF_MS:
		return "is not a duration (e.g. 500ms, 30s, 5m, 12h, 7d)";
	default:
		return "is not an integer";
	}
}

static int parse_int_key(const struct tfs_conf_desc *d, const char *value,
			 int64_t *out, char *err, size_t errlen)
{
	const struct unit *units = d->type == TFS_CONF_BYTES ? size_units
				 : d->type == TFS_CONF_MS    ? time_units
							     : NULL;
	char range[128];
	int64_t v = 0;
	enum num_status st;

	st = parse_number(value, units, d->type == TFS_CONF_BYTES, &v);
	if (st == NUM_SYNTAX) {
		set_err(err, errlen, "%s: '%.64s' %s", d->name, value,
			number_hint(d->type));
		return TFS_EBADCONF;
	}
	if (st == NUM_RANGE || v < d->min || v > d->max) {
		format_range(d, range, sizeof(range));
		set_err(err, errlen, "%s: '%.64s' is out of range (must be %s)",
			d->name, value, range);
		return TFS_EBADCONF;
	}
	*out = v;
	return 0;
}

/* Octal digits only, with surrounding blanks: "022", "0777", "0". */
static int parse_octal_key(const struct tfs_conf_desc *d, const char *value,
			   int64_t *out, char *err, size_t errlen)
{
	const char *s = value + strspn(value, BLANKS);
	size_t n = strspn(s, "01234567");
	char range[128];
	int64_t v = 0;

	if (n == 0 || s[n + strspn(s + n, BLANKS)] != '\0') {
		set_err(err, errlen, "%s: '%.64s' is not an octal mode "
			"(e.g. 022)", d->name, value);
		return TFS_EBADCONF;
	}
	for (size_t i = 0; i < n; i++) {
		v = v * 8 + (s[i] - '0');
		if (v > d->max)
			break;
	}
	if (v < d->min || v > d->max) {
		format_range(d, range, sizeof(range));
		set_err(err, errlen, "%s: '%.64s' is out of range (must be %s)",
			d->name, value, range);
		return TFS_EBADCONF;
	}
	*out = v;
	return 0;
}

int tfs_conf_parse(enum tfs_conf_key key, const char *value, int64_t *out,
		   char *err, size_t errlen)
{
	const struct tfs_conf_desc *d = tfs_conf_desc(key);
	char range[128];

	if (!d) {
		set_err(err, errlen, "no configuration key #%d", (int)key);
		return TFS_EBADCONF;
	}
	if (!value) {
		set_err(err, errlen, "%s: missing value", d->name);
		return TFS_EBADCONF;
	}
	switch (d->type) {
	case TFS_CONF_BOOL:
		if (parse_bool(value, out) == 0)
			return 0;
		set_err(err, errlen,
			"%s: '%.64s' is not a boolean (true/false, yes/no, "
			"on/off, 1/0)",
			d->name, value);
		return TFS_EBADCONF;
	case TFS_CONF_ENUM:
		if (parse_enum(d, value, out) == 0)
			return 0;
		format_range(d, range, sizeof(range));
		set_err(err, errlen, "%s: '%.64s' is not %s", d->name, value,
			range);
		return TFS_EBADCONF;
	case TFS_CONF_STRING:
		set_err(err, errlen, "%s: is a string, not a number", d->name);
		return TFS_EBADCONF;
	case TFS_CONF_OCTAL:
		return parse_octal_key(d, value, out, err, errlen);
	default:
		return parse_int_key(d, value, out, err, errlen);
	}
}

int tfs_conf_format(enum tfs_conf_key key, int64_t v, char *buf, size_t len)
{
	const struct tfs_conf_desc *d = tfs_conf_desc(key);

	if (d && d->type == TFS_CONF_BOOL)
		return snprintf(buf, len, "%s", v ? "true" : "false");
	if (d && d->type == TFS_CONF_OCTAL && v >= 0)
		return snprintf(buf, len, "%#llo", (unsigned long long)v);
	if (d && d->type == TFS_CONF_ENUM && v >= 0) {
		for (int64_t i = 0; d->enum_values[i]; i++)
			if (i == v)
				return snprintf(buf, len, "%s",
						d->enum_values[i]);
	}
	return snprintf(buf, len, "%lld", (long long)v);
}

/* --- struct tfs_conf ------------------------------------------------------ */

void tfs_conf_init(struct tfs_conf *c)
{
	memset(c, 0, sizeof(*c));
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		c->v[k] = keys[k].def;
		if (keys[k].def_string)
			c->s[k] = tfs_strdup(keys[k].def_string);
	}
}

void tfs_conf_release(struct tfs_conf *c)
{
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		free(c->s[k]);
		c->s[k] = NULL;
	}
}

void tfs_conf_copy(struct tfs_conf *dst, const struct tfs_conf *src)
{
	*dst = *src;
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		dst->s[k] = src->s[k] ? tfs_strdup(src->s[k]) : NULL;
}

static int unknown_key(const char *name, char *err, size_t errlen)
{
	const char *near = closest_key(name);

	if (near)
		set_err(err, errlen, "unknown key '%.64s' (did you mean '%s'?)",
			name, near);
	else
		set_err(err, errlen, "unknown key '%.64s'", name);
	return TFS_EBADCONF;
}

int tfs_conf_set(struct tfs_conf *c, const char *name, const char *value,
		 char *err, size_t errlen)
{
	int k = tfs_conf_find(name);
	int64_t v;
	int rc;

	if (k < 0)
		return unknown_key(name, err, errlen);
	if (keys[k].type == TFS_CONF_STRING) {
		if (!value) {
			set_err(err, errlen, "%s: missing value", name);
			return TFS_EBADCONF;
		}
		free(c->s[k]);
		c->s[k] = tfs_strdup(value);
	} else {
		rc = tfs_conf_parse(k, value, &v, err, errlen);
		if (rc)
			return rc;
		c->v[k] = v;
	}
	c->set[k] = true;
	return 0;
}

/* --- the config file ------------------------------------------------------ */

struct load {
	FILE *f;
	struct tfs_conf conf;	/* replaces the caller's on success */
	char *line;		/* getline() buffer */
	size_t cap;
	int lineno;		/* physical lines read so far */
	int rc;			/* first error, 0 if none */
	int err_line;		/* its line */
	char msg[256];		/* its message, without "PATH:LINE: " */
};

static void __attribute__((format(printf, 3, 4)))
load_fail(struct load *ld, int rc, const char *fmt, ...)
{
	va_list ap;

	ld->rc = rc;
	ld->err_line = ld->lineno;
	va_start(ap, fmt);
	vsnprintf(ld->msg, sizeof(ld->msg), fmt, ap);
	va_end(ap);
}

/* Whether s[0..n) names a section keys may appear under. */
static bool section_ok(const char *s, size_t n)
{
	while (n && isblank((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isblank((unsigned char)s[n - 1]))
		n--;
	return n == 0 || (n == 7 && !memcmp(s, "topicfs", 7));
}

/*
 * Cuts a comment off p: from a '#' or ';' at the start of the line or
 * after a blank.  Then drops trailing white space.
 */
static void strip_comment(char *p)
{
	size_t n;

	for (char *q = p; *q; q++) {
		if ((*q == '#' || *q == ';') &&
		    (q == p || isblank((unsigned char)q[-1]))) {
			*q = '\0';
			break;
		}
	}
	n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
}

/* Checks a "[name]" line; inih reports one without ']' as a syntax error. */
static void check_section(struct load *ld, const char *p)
{
	const char *end = strchr(p, ']');

	if (end && !section_ok(p + 1, (size_t)(end - p - 1)))
		load_fail(ld, TFS_EBADCONF,
			  "unknown section %.*s] (keys go at the top level "
			  "or under [topicfs])",
			  (int)TFS_MIN(end - p, 64), p);
}

/*
 * The ini_reader: hands inih one cleaned physical line per call (see the
 * top of the file), or NULL at the end of the file or after an error.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct load *ld = stream;
	ssize_t n;
	char *p;

	if (ld->rc)
		return NULL;
	errno = 0;
	n = getline(&ld->line, &ld->cap, ld->f);
	if (n < 0) {
		int rc = errno ? -errno : -EIO;

		if (ferror(ld->f))
			load_fail(ld, rc, "%s", tfs_strerror(rc));
		return NULL;
	}
	ld->lineno++;
	if (memchr(ld->line, '\0', (size_t)n)) {
		load_fail(ld, TFS_EBADCONF, "line contains a NUL byte");
		return NULL;
	}
	p = ld->line + strspn(ld->line, BLANKS);
	strip_comment(p);
	if (*p == '[')
		check_section(ld, p);
	if (!ld->rc && strlen(p) + 2 > (size_t)TFS_MIN(num, MAX_LINE))
		load_fail(ld, TFS_EBADCONF, "line is longer than %d bytes",
			  TFS_MIN(num, MAX_LINE) - 2);
	if (ld->rc)
		return NULL;
	memcpy(str, p, strlen(p) + 1);
	return str;
}

/* The ini_handler: one "name = value" pair. */
static int on_pair(void *user, const char *section, const char *name,
		   const char *value)
{
	struct load *ld = user;
	int rc;

	if (ld->rc)
		return 1;
	if (!section_ok(section, strlen(section))) {
		load_fail(ld, TFS_EBADCONF, "unknown section [%.64s]", section);
		return 0;
	}
	rc = tfs_conf_set(&ld->conf, name, value, ld->msg, sizeof(ld->msg));
	if (rc) {
		ld->rc = rc;
		ld->err_line = ld->lineno;
		return 0;
	}
	return 1;
}

/* Runs inih over ld->f; returns 0 or the error, with ld->msg and line set. */
static int parse_stream(struct load *ld)
{
	int r = ini_parse_stream(read_line, ld, on_pair, ld);

	/* inih numbers lines as we do: one reader call per physical line. */
	if (r > 0 && (!ld->rc || r < ld->err_line)) {
		ld->rc = TFS_EBADCONF;
		ld->err_line = r;
		snprintf(ld->msg, sizeof(ld->msg),
			 "expected 'key = value' or '[topicfs]'");
	} else if (r < 0 && !ld->rc) {
		ld->rc = -ENOMEM;
		snprintf(ld->msg, sizeof(ld->msg), "%s",
			 tfs_strerror(-ENOMEM));
	}
	return ld->rc;
}

int tfs_conf_load_file(struct tfs_conf *c, const char *path, char *err,
		       size_t errlen)
{
	struct load ld = { .f = NULL };
	int rc;

	ld.f = fopen(path, "re");
	if (!ld.f) {
		rc = -errno;
		set_err(err, errlen, "%s: %s", path, tfs_strerror(rc));
		return rc;
	}
	tfs_conf_copy(&ld.conf, c);
	rc = parse_stream(&ld);
	fclose(ld.f);
	free(ld.line);
	if (rc) {
		set_err(err, errlen, "%s:%d: %s", path, ld.err_line, ld.msg);
		tfs_conf_release(&ld.conf);
		return rc;
	}
	tfs_conf_release(c);
	*c = ld.conf;
	return 0;
}

/* --- the reference -------------------------------------------------------- */

static const char doc_title[] =
	"# topicfs configuration reference\n"
	"\n"
	"<!-- Generated by `topicfs --config-doc` from the table in "
	"src/conf.c.\n"
	"     Do not edit; change the table and run `make docs`. -->\n";

static const char doc_file[] =
	"Every key has a built-in default.  The configuration file (an "
	"annotated example is `etc/topicfs.conf`, installed as "
	"`/etc/topicfs/topicfs.conf`) overrides the defaults, and "
	"`-o key=value` options on the command line override the file: "
	"defaults < file < `-o`.  The file is INI: `key = value` lines at the "
	"top level or under a `[topicfs]` section; `#` and `;` start a comment "
	"at the beginning of a line or after a blank.  A key given twice takes "
	"its last value.  An unknown key or section, or a bad value, is an "
	"error that names the file and the line.";

static const char doc_topics[] =
	"Daemon keys apply to the whole node and are read at start-up.  Topic "
	"keys set in the file or with `-o` are the defaults for every topic; a "
	"topic's own value, set as the extended attribute "
	"`user.topicfs.<key>` on the topic's directory (for example "
	"`setfattr -n user.topicfs.retention.ms -v 1d mytopic`), overrides "
	"them for that topic.";

static const char doc_units[] =
	"Integers are decimal.  Sizes (type *bytes*) take an optional binary "
	"suffix, in any case and optionally after a space: `B`, `K` or `KiB` "
	"(1024), `M` or `MiB`, `G` or `GiB`, `T` or `TiB`; `64MiB`, `64 M` "
	"and `67108864` are the same.  Durations (type *milliseconds*) take "
	"`ms` (the default), `s`, `m`, `h` or `d`, in lower case; `7d` is "
	"`604800000`.  Where a key allows it, `-1` means no limit (for `uid` "
	"and `gid`: the daemon's own), written exactly so, without a unit; no "
	"other negative value is accepted, not even `-0`, `-0ms` or `-1s`.  "
	"Modes (type *octal*) are octal digits, such as `022`.  Booleans are "
	"`true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`, in any case.  "
	"Enumerations take one of the listed names exactly.";

/* The default of d as a user writes it, with units where natural. */
static void format_default(const struct tfs_conf_desc *d, char *buf,
			   size_t len)
{
	if (d->type == TFS_CONF_STRING)
		snprintf(buf, len, "%s", d->def_string ? d->def_string : "");
	else
		format_human(d, d->def, buf, len);
}

static const char *scope_name(enum tfs_conf_scope scope)
{
	return scope == TFS_SCOPE_TOPIC ? "topic" : "daemon";
}

/* Writes the anchor GitHub derives from a heading: dots are dropped. */
static void write_anchor(FILE *f, const char *heading)
{
	for (const char *p = heading; *p; p++)
		if (isalnum((unsigned char)*p) || *p == '-' || *p == '_')
			fputc(*p, f);
}

static const char daemon_intro[] =
	"These apply to the whole node.  They are set in the configuration "
	"file or with `-o` and read at start-up.";

static const char topic_intro[] =
	"Set in the configuration file or with `-o`, these are the defaults "
	"for every topic; each topic can override them with the extended "
	"attribute `user.topicfs.<key>` on its directory.";

static void write_summary(FILE *f)
{
	char def[64];

	fputs("\n## Summary\n\n"
	      "| Key | Type | Scope | Default |\n"
	      "|-----|------|-------|---------|\n",
	      f);
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		format_default(&keys[k], def, sizeof(def));
		fprintf(f, "| [%s](#", keys[k].name);
		write_anchor(f, keys[k].name);
		fprintf(f, ") | %s | %s | `%s` |\n", type_names[keys[k].type],
			scope_name(keys[k].scope), def);
	}
}

/*
 * Whether the word w[0..n) would start a Markdown block (heading, quote,
 * list item, table row) at the beginning of a line.
 */
static bool starts_block(const char *w, size_t n)
{
	size_t d = strspn(w, "0123456789");

	if (strchr("#>|", w[0]))
		return true;
	if (n == 1 && strchr("-+*", w[0]))
		return true;
	return d && d + 1 == n && (w[d] == '.' || w[d] == ')');
}

/*
 * Writes text as a paragraph wrapped at 76 columns.  Runs of blanks become
 * one space; a word longer than the width gets a line of its own, and a
 * word that would read as Markdown markup at the start of a line stays on
 * the previous one.
 */
static void write_wrapped(FILE *f, const char *text)
{
	size_t col = 0;

	for (const char *p = text; *p;) {
		size_t n = strcspn(p, " ");

		if (n) {
			if (col && col + 1 + n > 76 && !starts_block(p, n)) {
				fputc('\n', f);
				col = 0;
			} else if (col) {
				fputc(' ', f);
				col++;
			}
			fwrite(p, 1, n, f);
			col += n;
		}
		p += n;
		p += strspn(p, " ");
	}
	fputc('\n', f);
}

static void write_key(FILE *f, const struct tfs_conf_desc *d)
{
	struct tfs_buf b = TFS_BUF_INIT;
	char def[64], range[128];

	format_default(d, def, sizeof(def));
	tfs_buf_addf(&b, "*Type:* %s; *scope:* %s; *default:* `%s`",
		     type_names[d->type], scope_name(d->scope), def);
	if (d->type != TFS_CONF_STRING) {
		format_range(d, range, sizeof(range));
		tfs_buf_addf(&b, "; *values:* %s", range);
	}
	tfs_buf_add(&b, ".", 1);
	fprintf(f, "\n### %s\n\n", d->name);
	write_wrapped(f, b.data);
	fputc('\n', f);
	write_wrapped(f, d->doc);
	tfs_buf_release(&b);
}

void tfs_conf_write_doc(FILE *f)
{
	fputs(doc_title, f);
	fputs("\n## Where settings come from\n\n", f);
	write_wrapped(f, doc_file);
	fputc('\n', f);
	write_wrapped(f, doc_topics);
	fputs("\n## Units\n\n", f);
	write_wrapped(f, doc_units);
	write_summary(f);
	for (int scope = TFS_SCOPE_DAEMON; scope <= TFS_SCOPE_TOPIC; scope++) {
		fputs(scope == TFS_SCOPE_DAEMON ? "\n## Daemon keys\n\n"
						: "\n## Topic keys\n\n",
		      f);
		write_wrapped(f, scope == TFS_SCOPE_DAEMON ? daemon_intro
							   : topic_intro);
		for (int k = 0; k < TFS_CONF__COUNT; k++)
			if (keys[k].scope == (enum tfs_conf_scope)scope)
				write_key(f, &keys[k]);
	}
}
