/*
 * scrub.h - the background scrubber: passes over the sealed segments of
 * every partition, checking them at rest (partition.h, DAMAGE AT REST)
 * at a bounded rate, so damage is found before a reader or a replica
 * needs the data.
 *
 * A pass starts a minute after start-up (or one interval, if shorter),
 * then every scrub.interval.ms from the start of the previous one (at
 * once when a pass took longer).  It reads about 1 MiB at a time and
 * sleeps between chunks to stay within scrub.bytes.per.second.  Damage
 * it finds is recorded, logged and counted exactly as damage found by a
 * read.  It runs on its own thread (a ticker, workers.h) and holds no
 * lock during its I/O; stopping waits for at most one chunk.
 */
#ifndef TFS_SCRUB_H
#define TFS_SCRUB_H

#include <stdint.h>

struct tfs_store;
struct tfs_scrubber;

/*
 * Starts the scrubber over store's partitions.  interval_ms 0 starts
 * nothing (*out = NULL).  Returns 0 or -errno.
 */
int tfs_scrubber_start(struct tfs_store *store, int64_t interval_ms,
		       int64_t bytes_per_second, struct tfs_scrubber **out);

/* Stops the thread (a pass in progress ends after its current chunk) and
 * frees it.  NULL is fine. */
void tfs_scrubber_stop(struct tfs_scrubber *sc);

/* Passes completed since start (tests wait on it). */
uint64_t tfs_scrubber_passes(struct tfs_scrubber *sc);

#endif
