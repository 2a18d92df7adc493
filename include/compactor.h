/*
 * compactor.h - the background thread that enforces retention, rolls idle
 * segments and compresses sealed ones (design section 2).
 *
 * Every retention.check.interval.ms it visits each partition: seals the
 * active segment once it is older than segment.ms, deletes sealed
 * segments outside retention.ms / retention.bytes, and, for topics with
 * compression = zstd, rewrites sealed segments as zstd frames.  Topic
 * settings are read on every pass, so xattr changes apply without a
 * restart.  None of its file I/O holds a lock that appends or reads wait
 * on (see tfs_partition_compress_next).
 */
#ifndef TFS_COMPACTOR_H
#define TFS_COMPACTOR_H

#include <stdint.h>

struct tfs_store;
struct tfs_compactor;

/* Starts the thread.  Returns 0 or -errno. */
int tfs_compactor_start(struct tfs_store *store, int64_t interval_ms,
			struct tfs_compactor **out);

/* Stops the thread (a running compression finishes its segment) and frees
 * it.  NULL is fine. */
void tfs_compactor_stop(struct tfs_compactor *c);

#endif
