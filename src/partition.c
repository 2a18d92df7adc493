/*
 * partition.c - the sequencer of one partition.
 *
 * DESIGN
 *
 * Appends are sequenced under the partition lock: the batch gets the next
 * byte and record offsets and a commit timestamp (never lower than the
 * previous one, so lookups by time can binary-search), its bytes go to the
 * active segment's .log and its entry to the .index, both in the page
 * cache.  Nothing waits for the disk under the lock.  The CRC and the
 * newline count are computed before the lock is taken.
 *
 * Durability is the sync job's: one job per partition on the shared
 * worker pool fdatasyncs every segment with unsynced bytes (and the
 * directory after a roll), then moves the durable end and answers every
 * fsync and every durability=sync append whose target it passed.  Appends
 * that arrive while an fsync runs are covered by the next one, so
 * concurrent writers share fsyncs (group commit).  A failed fsync is not
 * retried: the partition is marked failed and refuses writes until the
 * daemon restarts and recovers from what is on disk.
 *
 * The same job writes the checkpoint when asked (every flush.ms and at
 * close): the durable end, which recovery trusts without reading.
 *
 * Readers waiting at the end (.follow reads, poll, replication fetches)
 * are parked on a list sorted by offset; whoever moves the committed end
 * wakes exactly those whose offset it passed, after dropping the lock.
 *
 * FILES in the partition directory, besides the segments:
 *
 *   checkpoint     text, written temp -> fsync -> rename -> fsync dir:
 *                    topicfs-checkpoint 1
 *                    recovery_point <byte offset> <record offset>
 *                    high_watermark <byte offset> <record offset>
 *   leader-epoch   text, written the same way:
 *                    topicfs-epochs 1
 *                    <epoch> <start byte offset>      (one line each)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "partition.h"
#include "sysio.h"

#define CHECKPOINT "checkpoint"
#define EPOCHS "leader-epoch"

struct tfs_settings *tfs_settings_new(const struct tfs_conf *defaults)
{
	struct tfs_settings *s = tfs_calloc(1, sizeof(*s));

	atomic_init(&s->refs, 1);
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		atomic_init(&s->v[k], defaults->v[k]);
	return s;
}

struct tfs_settings *tfs_settings_ref(struct tfs_settings *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void tfs_settings_unref(struct tfs_settings *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		free(s);
}

/* --- checkpoint and epoch files ------------------------------------------ */

struct checkpoint {
	uint64_t rp, rp_record;
	uint64_t hw, hw_record;
	bool found;
};

static int read_checkpoint(struct tfs_partition *p, struct checkpoint *ck)
{
	char *text = NULL;
	int rc, version = 0;

	memset(ck, 0, sizeof(*ck));
	rc = tfs_sys_read_file(p->dirfd, CHECKPOINT, 4096, &text, NULL);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (sscanf(text,
		   "topicfs-checkpoint %d\nrecovery_point %" SCNu64 " %" SCNu64
		   "\nhigh_watermark %" SCNu64 " %" SCNu64,
		   &version, &ck->rp, &ck->rp_record, &ck->hw,
		   &ck->hw_record) == 5 && version == 1) {
		ck->found = true;
	} else {
		/* Renamed into place whole, so this is damage, not a crash.
		 * Checking the whole log is slow but loses nothing. */
		tfs_warn("%s: unreadable checkpoint, checking the whole log",
			 p->name);
		memset(ck, 0, sizeof(*ck));
	}
	free(text);
	return 0;
}

#define DISK_WARNING_MS 10000

/*
 * Logs a disk problem of the partition at most once every 10 s: a full
 * disk refuses every write and fails every checkpoint, and one line per
 * attempt would flood the log.
 */
static void disk_warning(struct tfs_partition *p, const char *what, int rc)
{
	int64_t now = tfs_mono_ms();
	int64_t last = atomic_load(&p->last_disk_warning);

	if (last && now - last < DISK_WARNING_MS)
		return;
	if (!atomic_compare_exchange_strong(&p->last_disk_warning, &last, now))
		return;
	tfs_warn("%s: %s: %s (repeats are not logged for %d s)", p->name,
		 what, tfs_strerror(rc), DISK_WARNING_MS / 1000);
}

static int write_checkpoint(struct tfs_partition *p,
			    const struct checkpoint *ck)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "topicfs-checkpoint 1\nrecovery_point %" PRIu64
			 " %" PRIu64 "\nhigh_watermark %" PRIu64 " %" PRIu64
			 "\n",
			 ck->rp, ck->rp_record, ck->hw, ck->hw_record);
	int rc = tfs_sys_write_atomic(p->dirfd, CHECKPOINT, buf, (size_t)n);

	if (rc)
		disk_warning(p, "cannot write checkpoint", rc);
	return rc;
}

static int read_epochs(struct tfs_partition *p)
{
	char *text = NULL, *line, *save = NULL;
	int rc = tfs_sys_read_file(p->dirfd, EPOCHS, 1 << 20, &text, NULL);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	line = strtok_r(text, "\n", &save);
	if (!line || strcmp(line, "topicfs-epochs 1")) {
		tfs_err("%s: %s: bad header", p->name, EPOCHS);
		free(text);
		return TFS_ECORRUPT;
	}
	while ((line = strtok_r(NULL, "\n", &save))) {
		struct tfs_epoch e;

		if (sscanf(line, "%" SCNu32 " %" SCNu64, &e.epoch, &e.start) !=
		    2) {
			tfs_err("%s: %s: bad line '%s'", p->name, EPOCHS, line);
			free(text);
			return TFS_ECORRUPT;
		}
		p->epochs = tfs_realloc(p->epochs,
					(p->nepochs + 1) * sizeof(*p->epochs));
		p->epochs[p->nepochs++] = e;
	}
	free(text);
	return 0;
}

/* Writes the epoch history; maint held, lock not held. */
static int write_epochs(struct tfs_partition *p)
{
	struct tfs_buf b = TFS_BUF_INIT;
	int rc;

	tfs_buf_addf(&b, "topicfs-epochs 1\n");
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->nepochs; i++)
		tfs_buf_addf(&b, "%" PRIu32 " %" PRIu64 "\n",
			     p->epochs[i].epoch, p->epochs[i].start);
	pthread_mutex_unlock(&p->lock);
	rc = tfs_sys_write_atomic(p->dirfd, EPOCHS, b.data, b.len);
	if (rc)
		tfs_err("%s: cannot write %s: %s", p->name, EPOCHS,
			tfs_strerror(rc));
	tfs_buf_release(&b);
	return rc;
}

/* --- opening and recovery ------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Parses "<20 digits>.<ext>"; returns the base or -1. */
static int parse_segment_name(const char *name, const char *ext,
			      uint64_t *base)
{
	size_t n = strlen(name);

	if (n != TFS_SEGMENT_NAME_LEN + 1 + strlen(ext) ||
	    name[TFS_SEGMENT_NAME_LEN] != '.' ||
	    strcmp(name + TFS_SEGMENT_NAME_LEN + 1, ext))
		return -1;
	*base = 0;
	for (int i = 0; i < TFS_SEGMENT_NAME_LEN; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		*base = *base * 10 + (uint64_t)(name[i] - '0');
	}
	return 0;
}

/*
 * Lists the segment bases (sorted) and removes leftovers of interrupted
 * writes: temporary files, an index whose log is missing, and a log whose
 * index is missing past the recovery point rp.
 */
static int list_segments(struct tfs_partition *p, uint64_t rp, uint64_t **out,
			 size_t *n)
{
	int fd = dup(p->dirfd);
	DIR *d;
	struct dirent *de;
	uint64_t *bases = NULL, base;
	size_t cnt = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len > 4 && !strcmp(de->d_name + len - 4, ".tmp")) {
			unlinkat(p->dirfd, de->d_name, 0);
		} else if (!parse_segment_name(de->d_name, "log", &base)) {
			char idx[64];

			tfs_segment_name(base, "index", idx, sizeof(idx));
			if (faccessat(p->dirfd, idx, F_OK, 0) < 0 &&
			    base >= rp) {
				/* A roll that crashed between the two files:
				 * nothing in it was ever fsynced. */
				tfs_warn("%s: removing %s without its index",
					 p->name, de->d_name);
				unlinkat(p->dirfd, de->d_name, 0);
				continue;
			}
			bases = tfs_realloc(bases, (cnt + 1) * sizeof(*bases));
			bases[cnt++] = base;
		} else if (!parse_segment_name(de->d_name, "zst", &base)) {
			bases = tfs_realloc(bases, (cnt + 1) * sizeof(*bases));
			bases[cnt++] = base;
		} else if (!parse_segment_name(de->d_name, "index", &base)) {
			char log[64], zst[64];

			tfs_segment_name(base, "log", log, sizeof(log));
			tfs_segment_name(base, "zst", zst, sizeof(zst));
			if (faccessat(p->dirfd, log, F_OK, 0) < 0 &&
			    faccessat(p->dirfd, zst, F_OK, 0) < 0) {
				tfs_warn("%s: removing %s without its log",
					 p->name, de->d_name);
				unlinkat(p->dirfd, de->d_name, 0);
			}
		}
	}
	closedir(d);
	if (cnt)
		qsort(bases, cnt, sizeof(*bases), cmp_u64);
	/* A segment caught between .log and .zst is listed once. */
	size_t u = 0;
	for (size_t i = 0; i < cnt; i++)
		if (u == 0 || bases[u - 1] != bases[i])
			bases[u++] = bases[i];
	*out = bases;
	*n = u;
	return 0;
}

static void push_segment(struct tfs_partition *p, struct tfs_segment *s)
{
	if (p->nsegs == p->segs_cap) {
		p->segs_cap = p->segs_cap ? p->segs_cap * 2 : 8;
		p->segs = tfs_realloc(p->segs, p->segs_cap * sizeof(*p->segs));
	}
	p->segs[p->nsegs++] = s;
}

static void drop_segment_files(struct tfs_partition *p, uint64_t base)
{
	char name[64];

	tfs_segment_name(base, "log", name, sizeof(name));
	unlinkat(p->dirfd, name, 0);
	tfs_segment_name(base, "index", name, sizeof(name));
	unlinkat(p->dirfd, name, 0);
}

static void log_recovery(struct tfs_partition *p, uint64_t base,
			 const struct tfs_recovery *rec)
{
	if (rec->reason)
		tfs_warn("%s: segment %020" PRIu64 ": %s: cut %" PRIu64
			 " bytes and %" PRIu64 " index entries after %" PRIu64
			 " good batches",
			 p->name, base, rec->reason, rec->bytes_cut,
			 rec->entries_cut, rec->batches_checked);
	else if (rec->batches_checked)
		tfs_info("%s: segment %020" PRIu64 ": checked %" PRIu64
			 " batches (%" PRIu64 " bytes) since the checkpoint",
			 p->name, base, rec->batches_checked,
			 rec->bytes_checked);
}

/*
 * Opens the segments in order.  A segment that does not continue where the
 * previous one ended is damage: past the checkpoint it is the tail of a
 * crash and is removed with everything after it; before it, it is
 * corruption and the partition does not open.
 */
static int open_segments(struct tfs_partition *p, const uint64_t *bases,
			 size_t n, const struct checkpoint *ck,
			 uint64_t *verified_from)
{
	uint64_t next_off = 0, next_rec = ck->found ? ck->rp_record : 0;
	size_t i;

	*verified_from = UINT64_MAX;
	for (i = 0; i < n; i++) {
		bool trusted = i + 1 < n && bases[i + 1] <= ck->rp;
		uint64_t verify = trusted ? UINT64_MAX : ck->rp;
		struct tfs_recovery rec;
		struct tfs_segment *s;
		int rc;

		if (i > 0 && bases[i] != next_off) {
			if (bases[i] < ck->rp) {
				tfs_err("%s: segment %020" PRIu64
					" does not follow the previous one "
					"(which ends at %" PRIu64 ")",
					p->name, bases[i], next_off);
				return TFS_ECORRUPT;
			}
			break;
		}
		if (i == 0 && bases[0] >= ck->rp)
			next_rec = ck->found && bases[0] == ck->rp ?
					   ck->rp_record : 0;
		rc = tfs_segment_open(p->dirfd, bases[i], next_rec, verify, &s,
				      &rec);
		if (rc) {
			tfs_err("%s: segment %020" PRIu64 ": %s", p->name,
				bases[i], tfs_strerror(rc));
			return rc;
		}
		if (i > 0 && s->base_record != next_rec) {
			tfs_segment_unref(s);
			if (bases[i] < ck->rp) {
				tfs_err("%s: segment %020" PRIu64
					" starts at record %" PRIu64
					", expected %" PRIu64,
					p->name, bases[i], s->base_record,
					next_rec);
				return TFS_ECORRUPT;
			}
			break;
		}
		if (!trusted && *verified_from == UINT64_MAX)
			*verified_from = i;
		log_recovery(p, bases[i], &rec);
		push_segment(p, s);
		next_off = s->base + s->size;
		next_rec = s->base_record + s->records;
	}
	for (; i < n; i++) {
		tfs_warn("%s: removing segment %020" PRIu64
			 " after the end of the log (%" PRIu64 ")",
			 p->name, bases[i], next_off);
		drop_segment_files(p, bases[i]);
	}
	return 0;
}

/* Sets the offsets from the segments after they are opened. */
static void init_offsets(struct tfs_partition *p, const struct checkpoint *ck)
{
	struct tfs_segment *last = p->segs[p->nsegs - 1];

	for (size_t i = 0; i + 1 < p->nsegs; i++)
		p->segs[i]->sealed = true;
	p->end = last->base + last->size;
	p->end_record = last->base_record + last->records;
	for (size_t i = p->nsegs; i-- > 0;) {
		if (p->segs[i]->last_ts) {
			p->last_ts = p->segs[i]->last_ts;
			break;
		}
	}
	if (p->standalone || ck->hw >= p->end) {
		p->hw = p->end;
		p->hw_record = p->end_record;
	} else {
		p->hw = ck->hw;
		p->hw_record = ck->hw_record;
	}
	/* Epochs that start past the log end belong to a cut tail. */
	while (p->nepochs > 1 && p->epochs[p->nepochs - 1].start > p->end)
		p->nepochs--;
	p->epoch = p->nepochs ? p->epochs[p->nepochs - 1].epoch : 0;
}

/*
 * Makes what recovery kept durable before anything new is appended, and
 * records it in a fresh checkpoint, so the next recovery starts here.
 */
static int settle(struct tfs_partition *p, size_t from, bool created,
		  const struct checkpoint *old)
{
	struct checkpoint ck = {
		.rp = p->end,
		.rp_record = p->end_record,
		.hw = p->hw,
		.hw_record = p->hw_record,
	};
	int rc = 0;

	if (!created && old->found && old->rp == p->end && old->hw == p->hw)
		goto out;
	for (size_t i = from; i < p->nsegs && !rc; i++)
		rc = tfs_segment_sync(p->segs[i]);
	if (!rc)
		rc = tfs_sys_fsync(p->dirfd);
	if (rc)
		return rc;
	rc = write_checkpoint(p, &ck);
	if (!created && (rc == -ENOSPC || rc == -EDQUOT)) {
		/* What recovery kept is durable, and the old checkpoint
		 * stays true: the next recovery only checks more.  A full
		 * disk must not take the partition away from its readers;
		 * the flusher writes the checkpoint once there is room. */
		p->durable = p->end;
		p->durable_record = p->end_record;
		p->ckpt_end = old->found ? old->rp : 0;
		return 0;
	}
	if (rc)
		return rc;
out:
	p->durable = p->end;
	p->durable_record = p->end_record;
	p->ckpt_end = p->end;
	return 0;
}

static void sync_job_fn(struct tfs_job *job);

static struct tfs_partition *partition_alloc(uint32_t id,
					     const struct tfs_partition_env *env)
{
	struct tfs_partition *p = tfs_calloc(1, sizeof(*p));

	atomic_init(&p->refs, 1);
	p->id = id;
	p->name = tfs_strdup(env->name);
	p->dirfd = -1;
	p->settings = tfs_settings_ref(env->settings);
	p->syncer = env->syncer;
	p->fsyncer = env->fsyncer;
	p->standalone = env->standalone;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->maint, NULL);
	tfs_list_init(&p->waiters);
	tfs_list_init(&p->syncs);
	tfs_job_init(&p->sync_job, sync_job_fn);
	return p;
}

static int open_dir(struct tfs_partition *p, int parent, bool create)
{
	char dname[16];
	int rc;

	snprintf(dname, sizeof(dname), "%" PRIu32, p->id);
	if (create) {
		rc = tfs_sys_mkdirat(parent, dname, 0755);
		if (rc && rc != -EEXIST)
			return rc;
	}
	p->dirfd = tfs_sys_openat(parent, dname, O_RDONLY | O_DIRECTORY, 0);
	return p->dirfd < 0 ? p->dirfd : 0;
}

int tfs_partition_open(int parent_dirfd, uint32_t id,
		       const struct tfs_partition_env *env, bool create,
		       struct tfs_partition **out)
{
	struct tfs_partition *p = partition_alloc(id, env);
	struct checkpoint ck;
	uint64_t *bases = NULL;
	size_t n = 0, from = 0;
	bool created = false;
	int rc;

	rc = open_dir(p, parent_dirfd, create);
	if (rc == 0)
		rc = read_checkpoint(p, &ck);
	if (rc == 0)
		rc = read_epochs(p);
	if (rc == 0)
		rc = list_segments(p, ck.rp, &bases, &n);
	if (rc)
		goto out_free;

	if (n == 0) {
		struct tfs_segment *s;

		if (ck.found && ck.rp > 0)
			/* Retention deleted everything but a segment that a
			 * crash then lost before it held anything durable:
			 * the log restarts empty at the checkpoint. */
			tfs_warn("%s: no segment files; restarting the log "
				 "empty at the checkpoint, %" PRIu64,
				 p->name, ck.rp);
		rc = tfs_segment_create(p->dirfd, ck.found ? ck.rp : 0,
					ck.found ? ck.rp_record : 0, &s);
		if (rc)
			goto out_free;
		push_segment(p, s);
		created = true;
	} else {
		uint64_t vf;

		rc = open_segments(p, bases, n, &ck, &vf);
		if (rc)
			goto out_free;
		if (p->nsegs == 0) {
			rc = TFS_ECORRUPT;
			goto out_free;
		}
		from = vf == UINT64_MAX ? p->nsegs : vf;
	}
	if (p->nepochs == 0) {
		p->epochs = tfs_calloc(1, sizeof(*p->epochs));
		p->epochs[0] = (struct tfs_epoch){ 0, p->segs[0]->base };
		p->nepochs = 1;
		created = true;
	}
	init_offsets(p, &ck);
	rc = settle(p, from, created, &ck);
	if (rc == 0 && created)
		rc = write_epochs(p);
	if (rc)
		goto out_free;
	free(bases);
	*out = p;
	return 0;

out_free:
	if (rc != TFS_ECORRUPT)
		tfs_err("%s: cannot open: %s", p->name, tfs_strerror(rc));
	free(bases);
	tfs_partition_unref(p);
	return rc;
}

struct tfs_partition *tfs_partition_ref(struct tfs_partition *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void tfs_partition_unref(struct tfs_partition *p)
{
	if (!p || atomic_fetch_sub_explicit(&p->refs, 1,
					    memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < p->nsegs; i++)
		tfs_segment_unref(p->segs[i]);
	free(p->segs);
	free(p->epochs);
	tfs_sys_close(p->dirfd);
	tfs_settings_unref(p->settings);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->maint);
	free(p->name);
	free(p);
}

/* --- waking -------------------------------------------------------------- */

/* Moves waiters the committed end has passed onto `out`.  Lock held. */
static void collect_waiters(struct tfs_partition *p, struct tfs_list *out)
{
	while (!tfs_list_empty(&p->waiters)) {
		struct tfs_waiter *w = tfs_container_of(
			p->waiters.next, struct tfs_waiter, link);

		if (w->offset >= p->hw)
			break;
		tfs_list_del(&w->link);
		w->parked = false;
		p->nwaiters--;
		tfs_list_add_tail(out, &w->link);
	}
}

static void wake_waiters(struct tfs_list *list, int status)
{
	while (!tfs_list_empty(list)) {
		struct tfs_waiter *w =
			tfs_container_of(list->next, struct tfs_waiter, link);

		tfs_list_del(&w->link);
		w->wake(w, status);
	}
}

/* Moves sync requests whose target is durable onto `out`.  Lock held. */
static void collect_syncs(struct tfs_partition *p, uint64_t upto,
			  struct tfs_list *out)
{
	while (!tfs_list_empty(&p->syncs)) {
		struct tfs_syncreq *r = tfs_container_of(
			p->syncs.next, struct tfs_syncreq, link);

		if (r->target > upto)
			break;
		tfs_list_del(&r->link);
		tfs_list_add_tail(out, &r->link);
	}
}

static void finish_syncs(struct tfs_list *list, int status)
{
	while (!tfs_list_empty(list)) {
		struct tfs_syncreq *r =
			tfs_container_of(list->next, struct tfs_syncreq, link);

		tfs_list_del(&r->link);
		r->done(r, status);
	}
}

/* Moves the committed end forward.  Lock held. */
static void advance_hw(struct tfs_partition *p, uint64_t hw, uint64_t hw_rec,
		       struct tfs_list *woken)
{
	if (hw <= p->hw)
		return;
	p->hw = hw;
	p->hw_record = hw_rec;
	collect_waiters(p, woken);
}

void tfs_partition_fail(struct tfs_partition *p, int why)
{
	struct tfs_list failed;

	tfs_list_init(&failed);
	pthread_mutex_lock(&p->lock);
	if (!p->failed) {
		p->failed = why ? why : -EIO;
		tfs_err("%s: refusing writes until restart: %s", p->name,
			tfs_strerror(p->failed));
	}
	tfs_list_splice_tail(&failed, &p->syncs);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&failed, -EIO);
}

/* --- the sync job ---------------------------------------------------------- */

struct seg_snap {
	struct tfs_segment *s;
	uint64_t size, entries;
};

/* Snapshots the segments with unsynced bytes, newest first.  Lock held. */
static size_t snap_unsynced(struct tfs_partition *p, struct seg_snap **out)
{
	struct seg_snap *v = NULL;
	size_t n = 0;

	for (size_t i = p->nsegs; i-- > 0;) {
		struct tfs_segment *s = p->segs[i];

		if (s->synced_size == s->size &&
		    s->synced_entries == s->entries)
			break;
		v = tfs_realloc(v, (n + 1) * sizeof(*v));
		v[n++] = (struct seg_snap){ tfs_segment_ref(s), s->size,
					    s->entries };
	}
	*out = v;
	return n;
}

/* An fdatasync run on the auxiliary pool. */
struct fsync_task {
	struct tfs_job job;
	int fd;
	int rc;
};

static void fsync_task_fn(struct tfs_job *job)
{
	struct fsync_task *t = tfs_container_of(job, struct fsync_task, job);

	t->rc = tfs_sys_fdatasync(t->fd);
}

/*
 * fdatasyncs a segment's two files at the same time: each call keeps its
 * full meaning, and the device flushes they end with overlap (measured:
 * fsync every 1 MiB went from 0.60 to 0.68 of the native file system).
 */
static int sync_segment(struct tfs_partition *p, struct tfs_segment *s)
{
	struct fsync_task t = { .fd = s->idx_fd };
	int rc;

	if (!p->fsyncer)
		return tfs_segment_sync(s);
	tfs_job_init(&t.job, fsync_task_fn);
	tfs_workers_submit(p->fsyncer, &t.job);
	rc = tfs_sys_fdatasync(s->log_fd);
	/* Waits until the pool let go of the job, not only until it ran. */
	tfs_workers_wait(p->fsyncer, &t.job);
	return rc ? rc : t.rc;
}

static void checkpoint(struct tfs_partition *p)
{
	struct checkpoint ck;

	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	ck.rp = p->durable;
	ck.rp_record = p->durable_record;
	ck.hw = p->hw;
	ck.hw_record = p->hw_record;
	bool due = ck.rp != p->ckpt_end;
	pthread_mutex_unlock(&p->lock);
	if (due && write_checkpoint(p, &ck) == 0) {
		pthread_mutex_lock(&p->lock);
		p->ckpt_end = ck.rp;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&p->maint);
}

static void sync_job_fn(struct tfs_job *job)
{
	struct tfs_partition *p =
		tfs_container_of(job, struct tfs_partition, sync_job);
	struct tfs_list done;
	struct seg_snap *snaps;
	uint64_t target, target_rec;
	bool need_dir, want_ckpt;
	size_t n;
	int rc = 0;

	tfs_list_init(&done);
	pthread_mutex_lock(&p->lock);
	if (p->failed) {
		pthread_mutex_unlock(&p->lock);
		tfs_partition_fail(p, p->failed);
		return;
	}
	target = p->end;
	target_rec = p->end_record;
	n = snap_unsynced(p, &snaps);
	need_dir = p->dir_dirty;
	p->dir_dirty = false;
	want_ckpt = p->ckpt_wanted;
	p->ckpt_wanted = false;
	pthread_mutex_unlock(&p->lock);

	for (size_t i = 0; i < n && !rc; i++)
		rc = sync_segment(p, snaps[i].s);
	if (!rc && need_dir)
		rc = tfs_sys_fsync(p->dirfd);
	if (rc) {
		tfs_err("%s: fsync failed: %s", p->name, tfs_strerror(rc));
		tfs_partition_fail(p, rc);
		goto out_unref;
	}

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		struct tfs_segment *s = snaps[i].s;

		s->synced_size = TFS_MAX(s->synced_size,
					 TFS_MIN(snaps[i].size, s->size));
		s->synced_entries =
			TFS_MAX(s->synced_entries,
				TFS_MIN(snaps[i].entries, s->entries));
	}
	/* A truncate meanwhile may have cut below target. */
	if (target > p->durable && target <= p->end) {
		p->durable = target;
		p->durable_record = target_rec;
	}
	collect_syncs(p, p->durable, &done);
	if (n)
		atomic_fetch_add(&p->fsyncs, 1);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&done, 0);
	if (want_ckpt)
		checkpoint(p);
out_unref:
	for (size_t i = 0; i < n; i++)
		tfs_segment_unref(snaps[i].s);
	free(snaps);
}

int tfs_partition_sync(struct tfs_partition *p, struct tfs_syncreq *r)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	if (p->failed) {
		rc = -EIO;
	} else if (p->durable >= p->end) {
		rc = 1;
	} else if (p->gone) {
		rc = p->gone;
	} else {
		r->target = p->end;
		tfs_list_add_tail(&p->syncs, &r->link);
		rc = 0;
	}
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		tfs_workers_submit(p->syncer, &p->sync_job);
	return rc;
}

void tfs_partition_flush(struct tfs_partition *p)
{
	bool due;

	pthread_mutex_lock(&p->lock);
	due = !p->gone && !p->failed &&
	      (p->end > p->durable || p->ckpt_end != p->durable);
	if (due)
		p->ckpt_wanted = true;
	pthread_mutex_unlock(&p->lock);
	if (due)
		tfs_workers_submit(p->syncer, &p->sync_job);
}

void tfs_partition_close(struct tfs_partition *p, int why)
{
	struct tfs_list syncs;

	tfs_list_init(&syncs);
	tfs_workers_forget(p->syncer, &p->sync_job);
	pthread_mutex_lock(&p->lock);
	p->gone = why;
	p->ckpt_wanted = true;
	pthread_mutex_unlock(&p->lock);
	/* Run the job here: whatever was appended becomes durable and
	 * checkpointed, so the next start has nothing to check. */
	if (why != TFS_EDELETED)
		sync_job_fn(&p->sync_job);
	pthread_mutex_lock(&p->lock);
	tfs_segment_trim(p->segs[p->nsegs - 1]);
	tfs_list_splice_tail(&syncs, &p->syncs);
	pthread_mutex_unlock(&p->lock);
	finish_syncs(&syncs, why);
	tfs_partition_wake_all(p, why);
}

/* --- appending ------------------------------------------------------------ */

static int roll(struct tfs_partition *p);

/* Starts a new segment when the active one is full or old.  Lock held. */
static int maybe_roll(struct tfs_partition *p, size_t len, int64_t now)
{
	struct tfs_segment *active = p->segs[p->nsegs - 1];
	int64_t seg_bytes = tfs_settings_get(p->settings, TFS_CONF_SEGMENT_BYTES);
	int64_t seg_ms = tfs_settings_get(p->settings, TFS_CONF_SEGMENT_MS);

	if (active->size == 0)
		return 0;
	if (active->size + len <= (uint64_t)seg_bytes &&
	    !(seg_ms > 0 && now - active->first_ts >= seg_ms))
		return 0;
	return roll(p);
}

/* Seals the active segment and starts an empty one.  Lock held. */
static int roll(struct tfs_partition *p)
{
	struct tfs_segment *active = p->segs[p->nsegs - 1], *s;
	int rc = tfs_segment_create(p->dirfd, p->end, p->end_record, &s);

	if (rc) {
		disk_warning(p, "cannot start a new segment", rc);
		return rc;
	}
	active->sealed = true;
	/* Its preallocated index tail goes; a crash before that reaches the
	 * disk leaves zeros that the next open trims. */
	tfs_segment_trim(active);
	push_segment(p, s);
	p->dir_dirty = true;
	return 0;
}

static void append_synced(struct tfs_syncreq *r, int status)
{
	struct tfs_append *a = tfs_container_of(r, struct tfs_append, sync);

	a->done(a, status);
}

/* Checks a refused state.  Lock held. */
static int writable(struct tfs_partition *p)
{
	if (p->gone)
		return p->gone;
	if (p->failed)
		return -EIO;
	return 0;
}

int tfs_partition_append(struct tfs_partition *p, struct tfs_append *a)
{
	struct tfs_index_entry e = { 0 };
	struct tfs_list woken;
	size_t len = 0;
	uint32_t crc = 0, records = 0;
	bool sync = a->flags & TFS_APPEND_SYNC;
	int rc;

	for (int i = 0; i < a->iovcnt; i++) {
		crc = tfs_crc32c(crc, a->iov[i].iov_base, a->iov[i].iov_len);
		records += (uint32_t)tfs_count_newlines(a->iov[i].iov_base,
							a->iov[i].iov_len);
		len += a->iov[i].iov_len;
	}
	if (len == 0 || len > UINT32_MAX || records == 0)
		return -EINVAL;
	tfs_list_init(&woken);
	int64_t now = tfs_now_ms();

	pthread_mutex_lock(&p->lock);
	rc = writable(p);
	if (rc == 0)
		rc = maybe_roll(p, len, now);
	if (rc)
		goto out_unlock;
	e.offset = p->end;
	e.record = p->end_record;
	e.count = records;
	e.length = (uint32_t)len;
	e.epoch = p->epoch;
	e.timestamp = TFS_MAX(now, p->last_ts);
	e.crc = crc;
	struct tfs_segment *active = p->segs[p->nsegs - 1];
	rc = tfs_segment_append(active, &e, a->iov, a->iovcnt);
	if (rc) {
		if (active->broken)
			p->failed = -EIO;
		else
			disk_warning(p, "write refused, nothing of it stored",
				     rc);
		goto out_unlock;
	}
	p->end += len;
	p->end_record += records;
	p->last_ts = e.timestamp;
	a->offset = e.offset;
	a->record = e.record;
	a->records = records;
	atomic_fetch_add_explicit(&p->appends, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->append_bytes, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->append_records, records,
				  memory_order_relaxed);
	if (p->standalone)
		advance_hw(p, p->end, p->end_record, &woken);
	if (sync) {
		a->sync.target = p->end;
		a->sync.done = append_synced;
		tfs_list_add_tail(&p->syncs, &a->sync.link);
	}
	pthread_mutex_unlock(&p->lock);

	if (sync)
		tfs_workers_submit(p->syncer, &p->sync_job);
	else
		a->done(a, 0);
	if (a->flags & TFS_APPEND_DEFER_WAKE) {
		tfs_list_init(&a->woken);
		tfs_list_splice_tail(&a->woken, &woken);
	} else {
		wake_waiters(&woken, 0);
	}
	return 0;

out_unlock:
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Checks received batches before taking the lock. */
static int check_batches(const struct tfs_index_entry *entries, size_t n,
			 const unsigned char *data)
{
	size_t pos = 0;

	for (size_t i = 0; i < n; i++) {
		const struct tfs_index_entry *e = &entries[i];

		if (i > 0 && (e->offset != entries[i - 1].offset +
						   entries[i - 1].length ||
			      e->record != entries[i - 1].record +
						   entries[i - 1].count ||
			      e->timestamp < entries[i - 1].timestamp))
			return TFS_ENOTBOUNDARY;
		if (e->length == 0 || tfs_batch_verify(e, data + pos))
			return TFS_ECORRUPT;
		pos += e->length;
	}
	return 0;
}

int tfs_partition_append_batches(struct tfs_partition *p,
				 const struct tfs_index_entry *entries,
				 size_t n, const void *data)
{
	const unsigned char *d = data;
	bool new_epoch = false;
	int rc;

	if (n == 0)
		return 0;
	rc = check_batches(entries, n, d);
	if (rc)
		return rc;
	pthread_mutex_lock(&p->lock);
	rc = writable(p);
	if (rc == 0 && (entries[0].offset != p->end ||
			entries[0].record != p->end_record))
		rc = TFS_ENOTBOUNDARY;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct tfs_index_entry *e = &entries[i];
		struct iovec iov = { (void *)d, e->length };

		rc = maybe_roll(p, e->length, e->timestamp);
		if (rc)
			break;
		struct tfs_segment *active = p->segs[p->nsegs - 1];
		rc = tfs_segment_append(active, e, &iov, 1);
		if (rc) {
			if (active->broken)
				p->failed = -EIO;
			break;
		}
		if (e->epoch > p->epoch) {
			p->epochs = tfs_realloc(p->epochs, (p->nepochs + 1) *
							   sizeof(*p->epochs));
			p->epochs[p->nepochs++] =
				(struct tfs_epoch){ e->epoch, e->offset };
			p->epoch = e->epoch;
			new_epoch = true;
		}
		p->end += e->length;
		p->end_record += e->count;
		p->last_ts = TFS_MAX(p->last_ts, e->timestamp);
		d += e->length;
		atomic_fetch_add(&p->appends, 1);
		atomic_fetch_add(&p->append_bytes, e->length);
		atomic_fetch_add(&p->append_records, e->count);
	}
	pthread_mutex_unlock(&p->lock);
	if (new_epoch) {
		pthread_mutex_lock(&p->maint);
		int erc = write_epochs(p);
		pthread_mutex_unlock(&p->maint);
		if (!rc)
			rc = erc;
	}
	return rc;
}

/* --- reading ------------------------------------------------------------- */

/* Index of the segment holding byte off (the last with base <= off). */
static size_t find_segment(struct tfs_partition *p, uint64_t off)
{
	size_t lo = 0, hi = p->nsegs;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->segs[mid]->base <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Pieces of segments a read covers, taken under the lock. */
#define MAX_PIECES 8
struct pieces {
	int n;
	struct {
		struct tfs_segment *seg;	/* a reference */
		uint64_t pos;
		uint64_t len;
	} p[MAX_PIECES];
};

/* Collects the segment ranges of [off, off + len).  Lock held. */
static void gather(struct tfs_partition *p, uint64_t off, uint64_t len,
		   struct pieces *pc)
{
	pc->n = 0;
	for (size_t i = find_segment(p, off);
	     len > 0 && i < p->nsegs && pc->n < MAX_PIECES; i++) {
		struct tfs_segment *s = p->segs[i];
		uint64_t in = off - s->base;

		if (in >= s->size)
			continue;
		uint64_t n = TFS_MIN(len, s->size - in);
		pc->p[pc->n].seg = tfs_segment_ref(s);
		pc->p[pc->n].pos = in;
		pc->p[pc->n].len = n;
		pc->n++;
		off += n;
		len -= n;
	}
}

/* Adds the frames of a compressed piece as memory extents. */
static int add_frames(struct tfs_segment *s, uint64_t pos, uint64_t len,
		      struct tfs_readv *rv)
{
	while (len > 0 && rv->n < TFS_READ_MAX_EXTENTS) {
		uint32_t i = tfs_zindex_find(&s->zi, pos);
		const struct tfs_zframe *f = &s->zi.f[i];
		struct tfs_zbuf *b;
		int rc = tfs_zframe_get(s->uid, s->log_fd, &s->zi, i, &b);

		if (rc)
			return rc;
		size_t in = (size_t)(pos - f->raw_off);
		size_t n = (size_t)TFS_MIN(len, f->raw_len - in);
		rv->ext[rv->n++] = (struct tfs_extent){
			.fd = -1, .zbuf = b, .mem = b->data + in, .len = n
		};
		rv->len += n;
		pos += n;
		len -= n;
	}
	return 0;
}

/*
 * Turns pieces into extents, without the lock (decompression happens
 * here).  Consumes the pieces' references.  Returns 0, or an error if
 * nothing could be read.
 */
static int build_extents(struct pieces *pc, struct tfs_readv *rv)
{
	int rc = 0;

	rv->n = 0;
	rv->len = 0;
	for (int i = 0; i < pc->n; i++) {
		struct tfs_segment *s = pc->p[i].seg;

		if (rc || rv->n >= TFS_READ_MAX_EXTENTS) {
			tfs_segment_unref(s);
		} else if (s->kind == TFS_SEG_RAW) {
			rv->ext[rv->n++] = (struct tfs_extent){
				.seg = s,
				.fd = s->log_fd,
				.pos = pc->p[i].pos,
				.len = (size_t)pc->p[i].len,
			};
			rv->len += (size_t)pc->p[i].len;
		} else {
			rc = add_frames(s, pc->p[i].pos, pc->p[i].len, rv);
			tfs_segment_unref(s);
		}
	}
	/* What was read before a damaged frame is still good to return. */
	return rv->len ? 0 : rc;
}

int tfs_partition_read(struct tfs_partition *p, uint64_t off, size_t max,
		       struct tfs_readv *rv)
{
	struct pieces pc = { 0 };
	int rc;

	rv->n = 0;
	rv->len = 0;
	pthread_mutex_lock(&p->lock);
	if (off < p->segs[0]->base) {
		pthread_mutex_unlock(&p->lock);
		return TFS_EBELOWSTART;
	}
	if (off < p->hw)
		gather(p, off, TFS_MIN((uint64_t)max, p->hw - off), &pc);
	pthread_mutex_unlock(&p->lock);
	rc = build_extents(&pc, rv);
	atomic_fetch_add_explicit(&p->reads, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->read_bytes, rv->len,
				  memory_order_relaxed);
	return rc;
}

void tfs_readv_release(struct tfs_readv *rv)
{
	for (int i = 0; i < rv->n; i++) {
		tfs_segment_unref(rv->ext[i].seg);
		tfs_zbuf_unref(rv->ext[i].zbuf);
	}
	rv->n = 0;
	rv->len = 0;
}

int tfs_partition_read_batches(struct tfs_partition *p, uint64_t off,
			       size_t max, bool upto_hw,
			       struct tfs_index_entry **entries, size_t *n,
			       struct tfs_readv *rv)
{
	struct tfs_index_entry *v = NULL;
	size_t cnt = 0, bytes = 0;
	int rc = 0;

	rv->n = 0;
	rv->len = 0;
	pthread_mutex_lock(&p->lock);
	uint64_t limit = upto_hw ? p->hw : p->end;
	if (off < p->segs[0]->base) {
		rc = TFS_EBELOWSTART;
		goto out_unlock;
	}
	size_t si = find_segment(p, off);
	uint64_t pos = UINT64_MAX;
	while (off < limit && si < p->nsegs) {
		struct tfs_segment *s = p->segs[si];
		struct tfs_index_entry e;

		if (pos == UINT64_MAX) {
			rc = tfs_segment_find(s, s->entries, TFS_FIND_OFFSET,
					      off, &pos);
			if (rc)
				break;
		}
		if (pos == UINT64_MAX || pos >= s->entries) {
			si++;
			pos = 0;
			continue;
		}
		rc = tfs_segment_entry(s, pos, &e);
		if (rc)
			break;
		if (e.offset != off) {
			rc = TFS_ENOTBOUNDARY;
			break;
		}
		if (e.offset + e.length > limit ||
		    (cnt > 0 && bytes + e.length > max) ||
		    cnt >= TFS_READ_MAX_EXTENTS * 64)
			break;
		v = tfs_realloc(v, (cnt + 1) * sizeof(*v));
		v[cnt++] = e;
		bytes += e.length;
		off += e.length;
		pos++;
	}
	struct pieces pc = { 0 };
	if (rc == 0 && cnt > 0)
		gather(p, v[0].offset, bytes, &pc);
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		rc = build_extents(&pc, rv);
	if (rc == 0 && rv->len != bytes) {
		/* More pieces than extents: keep the batches that fit, the
		 * extents end on one of their boundaries or are cut back. */
		while (cnt > 0 && bytes > rv->len)
			bytes -= v[--cnt].length;
		size_t extra = rv->len - bytes;
		while (extra > 0 && rv->n > 0) {
			struct tfs_extent *x = &rv->ext[rv->n - 1];
			size_t cut = TFS_MIN(extra, x->len);

			x->len -= cut;
			extra -= cut;
			rv->len -= cut;
			if (x->len == 0) {
				tfs_segment_unref(x->seg);
				tfs_zbuf_unref(x->zbuf);
				rv->n--;
			}
		}
	}
	goto out;
out_unlock:
	pthread_mutex_unlock(&p->lock);
out:
	if (rc) {
		free(v);
		v = NULL;
		cnt = 0;
	}
	*entries = v;
	*n = cnt;
	return rc;
}

/* --- waiting -------------------------------------------------------------- */

int tfs_partition_wait(struct tfs_partition *p, struct tfs_waiter *w)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	if (p->hw > w->offset) {
		rc = 1;
	} else if (p->gone) {
		rc = p->gone;
	} else {
		/* Most waiters wait at the end: insert from the tail. */
		struct tfs_list *pos = p->waiters.prev;

		while (pos != &p->waiters &&
		       tfs_container_of(pos, struct tfs_waiter, link)->offset >
			       w->offset)
			pos = pos->prev;
		tfs_list_insert_after(pos, &w->link);
		w->parked = true;
		p->nwaiters++;
		rc = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void tfs_partition_wake_list(struct tfs_list *woken)
{
	wake_waiters(woken, 0);
}

void tfs_partition_wake_all(struct tfs_partition *p, int status)
{
	struct tfs_list woken;

	tfs_list_init(&woken);
	pthread_mutex_lock(&p->lock);
	tfs_list_splice_tail(&woken, &p->waiters);
	for (struct tfs_list *l = woken.next; l != &woken; l = l->next)
		tfs_container_of(l, struct tfs_waiter, link)->parked = false;
	p->nwaiters = 0;
	pthread_mutex_unlock(&p->lock);
	wake_waiters(&woken, status);
}

bool tfs_partition_wait_cancel(struct tfs_partition *p, struct tfs_waiter *w)
{
	bool was;

	pthread_mutex_lock(&p->lock);
	was = w->parked;
	if (was) {
		tfs_list_del(&w->link);
		w->parked = false;
		p->nwaiters--;
	}
	pthread_mutex_unlock(&p->lock);
	return was;
}

/* --- truncation, epochs, the committed end -------------------------------- */

/* Drops segments from index i on, keeping their files for readers. */
static void drop_segments_from(struct tfs_partition *p, size_t i)
{
	while (p->nsegs > i) {
		struct tfs_segment *s = p->segs[--p->nsegs];

		tfs_segment_unlink(s);
		tfs_segment_unref(s);
	}
}

/* Cuts the in-memory state and the files to off.  Both locks held. */
static int cut_to(struct tfs_partition *p, uint64_t off, struct tfs_list *lost)
{
	size_t i = find_segment(p, off);
	int rc;

	if (i > 0 && p->segs[i]->base == off)
		i--;	/* keep the previous one whole as the active segment */
	/* Cutting this one first also checks that off is a batch start;
	 * a crash before the drop leaves a gap that recovery removes. */
	struct tfs_segment *s = p->segs[i];
	rc = tfs_segment_truncate(s, off);
	if (rc)
		return rc;
	drop_segments_from(p, i + 1);
	s->sealed = false;
	p->end = off;
	p->end_record = s->base_record + s->records;
	p->last_ts = s->last_ts;
	for (size_t j = i; j-- > 0 && !p->last_ts;)
		p->last_ts = p->segs[j]->last_ts;
	if (p->hw > off) {
		p->hw = off;
		p->hw_record = p->end_record;
	}
	if (p->durable > off) {
		p->durable = off;
		p->durable_record = p->end_record;
	}
	while (p->nepochs > 1 && p->epochs[p->nepochs - 1].start >= off)
		p->nepochs--;
	p->epoch = p->epochs[p->nepochs - 1].epoch;
	p->dir_dirty = true;
	/* Appends waiting for a sync of bytes that are gone will not get it. */
	while (!tfs_list_empty(&p->syncs)) {
		struct tfs_list *l = p->syncs.prev;

		if (tfs_container_of(l, struct tfs_syncreq, link)->target <=
		    off)
			break;
		tfs_list_del(l);
		tfs_list_add_tail(lost, l);
	}
	return 0;
}

int tfs_partition_truncate(struct tfs_partition *p, uint64_t off)
{
	struct tfs_list lost;
	int rc = 0;

	tfs_list_init(&lost);
	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	if (off < p->segs[0]->base)
		rc = TFS_EBELOWSTART;
	else if (off > p->end)
		rc = TFS_ENOTBOUNDARY;
	bool nothing = off == p->end;
	uint64_t ckpt_end = p->ckpt_end;
	struct checkpoint ck = { .rp = off, .hw = TFS_MIN(p->hw, off) };
	pthread_mutex_unlock(&p->lock);
	if (rc || nothing)
		goto out;

	/* The checkpoint must never claim bytes that are about to go. */
	if (ckpt_end > off) {
		struct tfs_index_entry *e = NULL;
		size_t n = 0;
		struct tfs_readv rv;

		/* The record offset at off: the batch that starts there. */
		rc = tfs_partition_read_batches(p, off, 1, false, &e, &n, &rv);
		if (rc)
			goto out;
		tfs_readv_release(&rv);
		ck.rp_record = ck.hw_record = n ? e[0].record : 0;
		free(e);
		if (n == 0) {
			rc = TFS_ENOTBOUNDARY;
			goto out;
		}
		rc = write_checkpoint(p, &ck);
		if (rc)
			goto out;
		p->ckpt_end = off;
	}
	pthread_mutex_lock(&p->lock);
	rc = cut_to(p, off, &lost);
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		rc = write_epochs(p);
	if (rc)
		tfs_err("%s: truncate to %" PRIu64 " failed: %s", p->name, off,
			tfs_strerror(rc));
out:
	pthread_mutex_unlock(&p->maint);
	finish_syncs(&lost, -EIO);
	return rc;
}

void tfs_partition_set_hw(struct tfs_partition *p, uint64_t hw)
{
	struct tfs_list woken;
	uint64_t rec;

	tfs_list_init(&woken);
	pthread_mutex_lock(&p->lock);
	hw = TFS_MIN(hw, p->end);
	if (hw <= p->hw) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (hw == p->end) {
		rec = p->end_record;
	} else {
		struct tfs_segment *s = p->segs[find_segment(p, hw)];
		struct tfs_index_entry e;
		uint64_t pos;

		if (tfs_segment_find(s, s->entries, TFS_FIND_OFFSET, hw,
				     &pos) ||
		    pos == UINT64_MAX || tfs_segment_entry(s, pos, &e) ||
		    e.offset != hw) {
			tfs_warn("%s: high watermark %" PRIu64
				 " is not a batch boundary",
				 p->name, hw);
			pthread_mutex_unlock(&p->lock);
			return;
		}
		rec = e.record;
	}
	advance_hw(p, hw, rec, &woken);
	pthread_mutex_unlock(&p->lock);
	wake_waiters(&woken, 0);
}

int tfs_partition_begin_epoch(struct tfs_partition *p, uint32_t epoch)
{
	int rc = 0;

	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	if (epoch < p->epoch) {
		rc = TFS_ESTALEEPOCH;
	} else if (epoch > p->epoch) {
		struct tfs_epoch *last = &p->epochs[p->nepochs - 1];

		if (last->start == p->end) {
			/* The previous epoch wrote nothing: replace it. */
			last->epoch = epoch;
		} else {
			p->epochs = tfs_realloc(p->epochs, (p->nepochs + 1) *
							   sizeof(*p->epochs));
			p->epochs[p->nepochs++] =
				(struct tfs_epoch){ epoch, p->end };
		}
		p->epoch = epoch;
	}
	bool changed = rc == 0 && epoch != 0;
	pthread_mutex_unlock(&p->lock);
	if (changed)
		rc = write_epochs(p);
	pthread_mutex_unlock(&p->maint);
	return rc;
}

int tfs_partition_epoch_end(struct tfs_partition *p, uint32_t epoch,
			    uint32_t *found_epoch, uint64_t *end)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&p->lock);
	for (size_t i = p->nepochs; i-- > 0;) {
		if (p->epochs[i].epoch <= epoch) {
			*found_epoch = p->epochs[i].epoch;
			*end = i + 1 < p->nepochs ? p->epochs[i + 1].start
						  : p->end;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* --- lookups --------------------------------------------------------------- */

/* Index of the segment holding record rec.  Lock held. */
static size_t find_segment_by_record(struct tfs_partition *p, uint64_t rec)
{
	size_t lo = 0, hi = p->nsegs;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->segs[mid]->base_record <= rec)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Byte offset of the k-th record (0-based) inside batch e. */
static int offset_in_batch(struct tfs_segment *s,
			   const struct tfs_index_entry *e, uint64_t k,
			   uint64_t *off)
{
	char *buf;
	int r;

	if (k == 0) {
		*off = e->offset;
		return 0;
	}
	buf = tfs_malloc(e->length);
	r = tfs_segment_pread(s, buf, e->length, e->offset - s->base);
	if (r) {
		free(buf);
		return (int)r;
	}
	const char *q = buf, *lim = buf + e->length;
	for (; k > 0 && q < lim; k--) {
		q = memchr(q, '\n', (size_t)(lim - q));
		if (!q)
			break;
		q++;
	}
	int rc = k == 0 && q ? 0 : TFS_ECORRUPT;
	*off = e->offset + (uint64_t)(q ? q - buf : 0);
	free(buf);
	return rc;
}

int tfs_partition_offset_of_record(struct tfs_partition *p, uint64_t record,
				   uint64_t *off)
{
	struct tfs_segment *s;
	struct tfs_index_entry e;
	uint64_t n, pos;
	int rc;

	pthread_mutex_lock(&p->lock);
	if (record < p->segs[0]->base_record) {
		pthread_mutex_unlock(&p->lock);
		return TFS_EBELOWSTART;
	}
	if (record >= p->hw_record) {
		*off = p->hw;
		pthread_mutex_unlock(&p->lock);
		return record == p->hw_record ? 0 : -ENXIO;
	}
	s = tfs_segment_ref(p->segs[find_segment_by_record(p, record)]);
	n = s->entries;
	pthread_mutex_unlock(&p->lock);

	rc = tfs_segment_find(s, n, TFS_FIND_RECORD, record, &pos);
	if (rc == 0 && pos == UINT64_MAX)
		rc = TFS_ECORRUPT;
	if (rc == 0)
		rc = tfs_segment_entry(s, pos, &e);
	if (rc == 0)
		rc = offset_in_batch(s, &e, record - e.record, off);
	tfs_segment_unref(s);
	return rc;
}

int tfs_partition_offset_of_time(struct tfs_partition *p, int64_t ms,
				 uint64_t *off)
{
	struct tfs_segment *s = NULL;
	struct tfs_index_entry e;
	uint64_t n = 0, pos, hw;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	hw = p->hw;
	for (size_t i = 0; i < p->nsegs; i++) {
		if (p->segs[i]->entries && p->segs[i]->last_ts >= ms) {
			s = tfs_segment_ref(p->segs[i]);
			n = s->entries;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	*off = hw;
	if (!s)
		return 0;
	rc = tfs_segment_find(s, n, TFS_FIND_TIME, (uint64_t)ms, &pos);
	if (rc == 0 && pos < n)
		rc = tfs_segment_entry(s, pos, &e);
	if (rc == 0 && pos < n)
		*off = TFS_MIN(e.offset, hw);
	tfs_segment_unref(s);
	return rc;
}

void tfs_partition_bounds(struct tfs_partition *p, struct tfs_bounds *b)
{
	pthread_mutex_lock(&p->lock);
	b->start = p->segs[0]->base;
	b->hw = p->hw;
	b->hw_record = p->hw_record;
	pthread_mutex_unlock(&p->lock);
}

void tfs_partition_info(struct tfs_partition *p,
			struct tfs_partition_info *info)
{
	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&p->lock);
	info->start = p->segs[0]->base;
	info->start_record = p->segs[0]->base_record;
	info->end = p->end;
	info->end_record = p->end_record;
	info->hw = p->hw;
	info->hw_record = p->hw_record;
	info->durable = p->durable;
	info->segments = p->nsegs;
	info->logical_bytes = p->end - p->segs[0]->base;
	for (size_t i = 0; i < p->nsegs; i++) {
		struct tfs_segment *s = p->segs[i];

		info->data_bytes += s->data_size;
		info->disk_bytes += s->data_size + TFS_INDEX_HEADER_SIZE +
				    s->entries * TFS_INDEX_ENTRY_SIZE;
		info->compressed_segments += s->kind == TFS_SEG_ZSTD;
		if (!info->first_ts && s->entries)
			info->first_ts = s->first_ts;
	}
	info->last_ts = p->last_ts;
	info->epoch = p->epoch;
	info->failed = p->failed;
	info->waiters = p->nwaiters;
	pthread_mutex_unlock(&p->lock);
	info->appends = atomic_load(&p->appends);
	info->append_bytes = atomic_load(&p->append_bytes);
	info->append_records = atomic_load(&p->append_records);
	info->fsyncs = atomic_load(&p->fsyncs);
	info->reads = atomic_load(&p->reads);
	info->read_bytes = atomic_load(&p->read_bytes);
	info->last_retention = atomic_load(&p->last_retention);
	info->deleted_bytes = atomic_load(&p->deleted_bytes);
	info->deleted_segments = atomic_load(&p->deleted_segments);
	info->compressions = atomic_load(&p->compressions);
}

/* --- retention and compaction (the compactor thread) ---------------------- */

int tfs_partition_retain(struct tfs_partition *p, int64_t now,
			 int64_t retention_ms, int64_t retention_bytes)
{
	struct tfs_segment **gone;
	uint64_t total = 0, bytes = 0;
	size_t k = 0;

	pthread_mutex_lock(&p->lock);
	if (p->gone) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	for (size_t i = 0; i < p->nsegs; i++)
		total += p->segs[i]->data_size;
	/* Never the active segment: its bytes are the log's end. */
	for (; k + 1 < p->nsegs; k++) {
		struct tfs_segment *s = p->segs[k];
		bool expired = retention_ms >= 0 && s->last_ts < now - retention_ms;
		bool over = retention_bytes >= 0 &&
			    total - s->data_size >= (uint64_t)retention_bytes;

		if (!expired && !over)
			break;
		total -= s->data_size;
		bytes += s->size;
	}
	gone = tfs_malloc((k ? k : 1) * sizeof(*gone));
	memcpy(gone, p->segs, k * sizeof(*gone));
	memmove(p->segs, p->segs + k, (p->nsegs - k) * sizeof(*p->segs));
	p->nsegs -= k;
	pthread_mutex_unlock(&p->lock);

	/* The start has moved; the files go now, outside the lock.  Readers
	 * holding a segment keep its descriptors until they drop it. */
	for (size_t i = 0; i < k; i++) {
		int rc = tfs_segment_unlink(gone[i]);

		if (rc)
			tfs_warn("%s: cannot remove segment %020" PRIu64 ": %s",
				 p->name, gone[i]->base, tfs_strerror(rc));
		tfs_segment_unref(gone[i]);
	}
	free(gone);
	atomic_store(&p->last_retention, now);
	if (k) {
		atomic_fetch_add(&p->deleted_bytes, bytes);
		atomic_fetch_add(&p->deleted_segments, k);
		tfs_info("%s: retention deleted %zu segment(s), %" PRIu64
			 " bytes",
			 p->name, k, bytes);
	}
	return (int)k;
}

int tfs_partition_roll_old(struct tfs_partition *p, int64_t now,
			   int64_t segment_ms)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	struct tfs_segment *active = p->segs[p->nsegs - 1];
	if (!p->gone && !p->failed && active->entries > 0 && segment_ms > 0 &&
	    now - active->first_ts >= segment_ms)
		rc = roll(p);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Position of s in the segment list, or -1.  Lock held. */
static ssize_t segment_index(struct tfs_partition *p, struct tfs_segment *s)
{
	for (size_t i = 0; i < p->nsegs; i++)
		if (p->segs[i] == s)
			return (ssize_t)i;
	return -1;
}

int tfs_partition_compress_next(struct tfs_partition *p, int level,
				size_t frame_bytes)
{
	struct tfs_segment *s = NULL, *z;
	int rc;

	pthread_mutex_lock(&p->lock);
	/* Only what recovery will never have to check again. */
	uint64_t limit = TFS_MIN(TFS_MIN(p->ckpt_end, p->hw), p->durable);
	for (size_t i = 0; i + 1 < p->nsegs && !p->gone; i++) {
		struct tfs_segment *c = p->segs[i];

		if (c->kind == TFS_SEG_RAW && c->sealed && c->entries > 0 &&
		    c->base + c->size <= limit) {
			s = tfs_segment_ref(c);
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!s)
		return 0;

	rc = tfs_segment_compress(s, level, frame_bytes, &z);
	if (rc) {
		tfs_warn("%s: cannot compress segment %020" PRIu64 ": %s",
			 p->name, s->base, tfs_strerror(rc));
		tfs_segment_unref(s);
		return rc;
	}
	pthread_mutex_lock(&p->lock);
	ssize_t i = segment_index(p, s);
	if (i >= 0)
		p->segs[i] = z;
	pthread_mutex_unlock(&p->lock);
	if (i < 0) {
		/* Deleted or cut meanwhile: the copy goes too. */
		tfs_segment_unlink(z);
		tfs_segment_unref(z);
		tfs_segment_unref(s);
		return 1;
	}
	rc = tfs_segment_unlink_log(s);
	if (rc)
		tfs_warn("%s: cannot remove %020" PRIu64 ".log: %s", p->name,
			 s->base, tfs_strerror(rc));
	tfs_debug("%s: segment %020" PRIu64 " compressed %" PRIu64 " -> %" PRIu64
		  " bytes",
		  p->name, s->base, s->size, z->data_size);
	atomic_fetch_add(&p->compressions, 1);
	tfs_segment_unref(s);	/* the list's reference */
	tfs_segment_unref(s);	/* ours */
	return 1;
}
