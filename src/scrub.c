/*
 * scrub.c - the background scrubber (scrub.h).
 *
 * A ticker wakes at most once a second and starts a pass when one is
 * due.  The pass visits a snapshot of the partitions; the work per
 * partition is tfs_partition_scrub (partition_check.c), which reads a
 * chunk, checks it, and calls pace() here.
 *
 * PACING is a token bucket without a reserve: each chunk moves a
 * deadline forward by bytes / rate, and pace() sleeps until it.  A
 * deadline left far behind (a stretch with nothing to read, a slow disk)
 * is brought up to at most a second ago, so the scrubber never bursts
 * above its rate for more than a second to catch up.  Sleeps are cut
 * into 50 ms slices that look for a stop request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "scrub.h"
#include "store.h"
#include "util.h"
#include "workers.h"
#include "banned.h"

#define SCRUB_CHUNK (1u << 20)		/* bytes read between paces */
#define FIRST_PASS_MS (60 * 1000)	/* after start-up, at most */
#define SLICE_NS (50 * 1000000LL)	/* longest sleep between stop checks */
#define CATCH_UP_NS 1000000000LL	/* most credit a late deadline keeps */

struct tfs_scrubber {
	struct tfs_store *store;
	struct tfs_ticker *ticker;
	int64_t interval;		/* ms */
	int64_t rate;			/* bytes per second */
	int64_t next_pass;		/* mono ms: when the next pass is due */
	int64_t deadline_ns;		/* pacing: when the bytes read so far
					 * are paid for */
	atomic_ullong passes;
};

static bool stopping(struct tfs_scrubber *sc)
{
	return tfs_ticker_stopping(sc->ticker);
}

/* Sleeps until the bytes read are within budget.  False: stop. */
static bool pace(void *arg, size_t bytes)
{
	struct tfs_scrubber *sc = arg;
	int64_t now = tfs_mono_ns();

	if (sc->deadline_ns < now - CATCH_UP_NS)
		sc->deadline_ns = now - CATCH_UP_NS;
	sc->deadline_ns += (int64_t)((double)bytes * 1e9 / (double)sc->rate);
	while (!stopping(sc) && (now = tfs_mono_ns()) < sc->deadline_ns) {
		int64_t ns = TFS_MIN(sc->deadline_ns - now, SLICE_NS);
		struct timespec ts = { ns / 1000000000, ns % 1000000000 };

		nanosleep(&ts, NULL);
	}
	return !stopping(sc);
}

struct pass {
	struct tfs_scrubber *sc;
	int64_t bytes;
	size_t partitions;
};

static void visit(struct tfs_topic *t, struct tfs_partition *p, void *arg)
{
	struct pass *ps = arg;
	int64_t n;

	if (stopping(ps->sc))
		return;
	n = tfs_partition_scrub(p, SCRUB_CHUNK, pace, ps->sc);
	if (n > 0)
		ps->bytes += n;
	ps->partitions++;
}

static void tick(void *arg)
{
	struct tfs_scrubber *sc = arg;
	int64_t start = tfs_mono_ms();
	struct pass ps = { sc, 0, 0 };

	if (start < sc->next_pass)
		return;
	sc->deadline_ns = tfs_mono_ns();
	tfs_store_foreach_partition(sc->store, visit, &ps);
	if (stopping(sc))
		return;
	sc->next_pass = start + sc->interval;
	atomic_fetch_add(&sc->passes, 1);
	tfs_debug("scrubber: pass over %zu partition(s) read %" PRId64
		  " bytes in %.1f s",
		  ps.partitions, ps.bytes,
		  (double)(tfs_mono_ms() - start) / 1000.0);
}

int tfs_scrubber_start(struct tfs_store *store, int64_t interval_ms,
		       int64_t bytes_per_second, struct tfs_scrubber **out)
{
	struct tfs_scrubber *sc;
	int rc;

	*out = NULL;
	if (interval_ms <= 0)
		return 0;
	sc = tfs_calloc(1, sizeof(*sc));
	sc->store = store;
	sc->interval = interval_ms;
	sc->rate = bytes_per_second > 0 ? bytes_per_second : 1;
	sc->next_pass = tfs_mono_ms() + TFS_MIN(interval_ms, FIRST_PASS_MS);
	rc = tfs_ticker_start("tfs-scrub", TFS_MAX(TFS_MIN(interval_ms, 1000),
						   10),
			      tick, sc, &sc->ticker);
	if (rc) {
		free(sc);
		return rc;
	}
	*out = sc;
	return 0;
}

void tfs_scrubber_stop(struct tfs_scrubber *sc)
{
	if (!sc)
		return;
	tfs_ticker_stop(sc->ticker);
	free(sc);
}

uint64_t tfs_scrubber_passes(struct tfs_scrubber *sc)
{
	return sc ? atomic_load(&sc->passes) : 0;
}
