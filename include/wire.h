/*
 * wire.h - the binary bodies of replication fetches: what a follower asks
 * its leader for (POST /v1/fetch) and what the leader answers.  Pure
 * encoding and decoding, no I/O, so it is unit-tested and fuzzed alone;
 * the byte-level format is described in src/wire.c and docs/CLUSTER.md.
 *
 * One fetch covers every partition a follower shares with its leader
 * (Kafka's fetch sessions): for each, the follower's log end O, the epoch
 * E of its last batch and its durable end D; the leader answers each
 * with its high watermark and either whole batches (index entries and
 * bytes) from O, or why not (a divergence, a newer epoch, ...).
 */
#ifndef TFS_WIRE_H
#define TFS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment.h"
#include "util.h"

/* One partition of a fetch request. */
struct tfs_fetch_part {
	uint32_t topic;			/* cluster-wide topic id */
	uint32_t partition;
	uint32_t leader_epoch;		/* the leadership the follower follows */
	uint32_t last_epoch;		/* E: epoch of its last batch */
	uint64_t end;			/* O: its log end */
	uint64_t durable;		/* D: its fsynced end */
	uint64_t hw;			/* the high watermark it knows */
};

struct tfs_fetch_req {
	uint32_t follower;		/* node id */
	uint32_t max_wait_ms;
	uint32_t max_bytes;
	uint32_t n;
	struct tfs_fetch_part *parts;	/* n */
};

/* Why a partition of an answer carries no batches. */
enum tfs_fetch_err {
	TFS_FETCH_OK = 0,
	TFS_FETCH_NOT_LEADER = 1,	/* this node does not lead it */
	TFS_FETCH_OLD_EPOCH = 2,	/* the follower follows an older epoch */
	TFS_FETCH_NEW_EPOCH = 3,	/* the follower knows a newer one */
	TFS_FETCH_DIVERGED = 4,		/* truncate to diverged_end first */
	TFS_FETCH_BELOW_START = 5,	/* O is below the leader's start */
	TFS_FETCH_UNKNOWN = 6,		/* no such topic or partition here */
	TFS_FETCH_CORRUPT = 7,		/* the leader's batch at O is damaged */
	TFS_FETCH_ERR_MAX = 7,
};

/* One partition of a fetch answer. */
struct tfs_fetch_result {
	uint32_t topic;
	uint32_t partition;
	uint32_t err;			/* enum tfs_fetch_err */
	uint32_t leader_epoch;
	uint64_t hw;			/* the leader's high watermark */
	uint64_t start;			/* its first retained byte */
	uint64_t start_record;		/* the record offset there */
	uint64_t log_end;		/* its log end (for lag) */
	uint32_t diverged_epoch;	/* TFS_FETCH_DIVERGED: the largest */
	uint64_t diverged_end;		/* epoch <= E it has, and its end */
	uint64_t sync_to;		/* fsync up to here before the next
					 * fetch (an fsync waits), or 0 */
	uint32_t nbatches;
	struct tfs_index_entry *entries;	/* nbatches */
	const unsigned char *data;	/* their bytes, back to back */
	uint64_t data_len;
};

struct tfs_fetch_resp {
	uint32_t leader;		/* node id */
	uint32_t n;
	struct tfs_fetch_result *results;	/* n */
};

/* Appends the encoding of r to out. */
void tfs_fetch_req_encode(const struct tfs_fetch_req *r, struct tfs_buf *out);

/*
 * Decodes a request body.  Returns 0 (free with tfs_fetch_req_release),
 * or TFS_EPROTO for anything malformed (nothing to free then).
 */
int tfs_fetch_req_decode(const void *buf, size_t len, struct tfs_fetch_req *r);
void tfs_fetch_req_release(struct tfs_fetch_req *r);

/*
 * An answer is written in two steps per partition: its header with the
 * entries, then the bytes of those batches.  tfs_fetch_resp_begin writes
 * the answer's header for n partitions; tfs_fetch_result_encode one
 * partition (entries from res, data appended by the caller right after,
 * exactly res->data_len bytes).
 */
void tfs_fetch_resp_begin(uint32_t leader, uint32_t n, struct tfs_buf *out);
void tfs_fetch_result_encode(const struct tfs_fetch_result *res,
			     struct tfs_buf *out);

/*
 * Decodes an answer.  The results' entries are malloc'd and their data
 * points into buf (which must outlive the results).  Checks that every
 * length fits, the entries of a partition are contiguous and their bytes
 * add up (batch CRCs are checked when appended).  Returns 0 (free with
 * tfs_fetch_resp_release) or TFS_EPROTO.
 */
int tfs_fetch_resp_decode(const void *buf, size_t len,
			  struct tfs_fetch_resp *r);
void tfs_fetch_resp_release(struct tfs_fetch_resp *r);

#endif
