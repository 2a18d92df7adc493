/*
 * partition_open.c - opening a partition: its checkpoint and epoch-history
 * files, and recovery after a crash.
 *
 * FILES in the partition directory, besides the segments (segment.c):
 *
 *   checkpoint     text, written temp -> fsync -> rename -> fsync dir:
 *                    topicfs-checkpoint 1
 *                    recovery_point <byte offset> <record offset>
 *                    high_watermark <byte offset> <record offset>
 *   leader-epoch   text, written the same way:
 *                    topicfs-epochs 1
 *                    <epoch> <start byte offset>      (one line each)
 *
 * RECOVERY lists the segment files (tfs_segment_list repairs their
 * pairing), opens them in order trusting everything below the
 * checkpoint's recovery point and checking every batch after it (segment.c
 * cuts a torn tail), drops segments that do not continue the log past the
 * recovery point, then makes what it kept durable and writes a fresh
 * checkpoint, so the next recovery starts here.  A partition stopped
 * cleanly has a checkpoint at its end and recovery reads nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "partition_int.h"
#include "sysio.h"
#include "banned.h"

#define CHECKPOINT "checkpoint"
#define EPOCHS "leader-epoch"

/* --- checkpoint and epoch files ------------------------------------------ */

static int read_checkpoint(struct tfs_partition *p, struct partition_checkpoint *ck)
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
void partition_disk_warning(struct tfs_partition *p, const char *what, int rc)
{
	if (!tfs_log_due(&p->last_disk_warning, DISK_WARNING_MS))
		return;
	tfs_warn("%s: %s: %s (repeats are not logged for %d s)", p->name,
		 what, tfs_strerror(rc), DISK_WARNING_MS / 1000);
}

int partition_write_checkpoint(struct tfs_partition *p,
			    const struct partition_checkpoint *ck)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "topicfs-checkpoint 1\nrecovery_point %" PRIu64
			 " %" PRIu64 "\nhigh_watermark %" PRIu64 " %" PRIu64
			 "\n",
			 ck->rp, ck->rp_record, ck->hw, ck->hw_record);
	int rc = tfs_sys_write_atomic(p->dirfd, CHECKPOINT, buf, (size_t)n);

	if (rc)
		partition_disk_warning(p, "cannot write checkpoint", rc);
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

int partition_write_epochs(struct tfs_partition *p)
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

void partition_push_segment(struct tfs_partition *p, struct tfs_segment *s)
{
	if (p->nsegs == p->segs_cap) {
		p->segs_cap = p->segs_cap ? p->segs_cap * 2 : 8;
		p->segs = tfs_realloc(p->segs, p->segs_cap * sizeof(*p->segs));
	}
	p->segs[p->nsegs++] = s;
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
			 size_t n, const struct partition_checkpoint *ck,
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
		partition_push_segment(p, s);
		next_off = s->base + s->size;
		next_rec = s->base_record + s->records;
	}
	for (; i < n; i++) {
		tfs_warn("%s: removing segment %020" PRIu64
			 " after the end of the log (%" PRIu64 ")",
			 p->name, bases[i], next_off);
		tfs_segment_remove(p->dirfd, bases[i]);
	}
	return 0;
}

/* Sets the offsets from the segments after they are opened. */
static void init_offsets(struct tfs_partition *p, const struct partition_checkpoint *ck)
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
	if (p->role == TFS_ROLE_STANDALONE || ck->hw >= p->end) {
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
 * Appends go to an index of the current version only: an active segment
 * of an older version (a store written by an earlier topicfs) is sealed
 * and a new segment starts at the log end, or, when it holds nothing, is
 * made again in the current version.  settle() then syncs the new files
 * and the directory (*from moves back to cover them).
 */
static int upgrade_active(struct tfs_partition *p, size_t *from,
			  bool *created)
{
	struct tfs_segment *a = p->segs[p->nsegs - 1], *s;
	int rc;

	if (a->version == TFS_INDEX_VERSION)
		return 0;
	rc = tfs_segment_create(p->dirfd, a->size ? p->end : a->base,
				a->size ? p->end_record : a->base_record, &s);
	if (rc)
		return rc;
	tfs_info("%s: segment %020" PRIu64 " has a version %u index; appends "
		 "go to a new version %u segment",
		 p->name, a->base, a->version, TFS_INDEX_VERSION);
	if (a->size) {
		a->sealed = true;
		partition_push_segment(p, s);
	} else {
		p->segs[p->nsegs - 1] = s;
		tfs_segment_unref(a);
	}
	*from = TFS_MIN(*from, p->nsegs - 1);
	*created = true;
	return 0;
}

/*
 * Makes what recovery kept durable before anything new is appended, and
 * records it in a fresh checkpoint, so the next recovery starts here.
 */
static int settle(struct tfs_partition *p, size_t from, bool created,
		  const struct partition_checkpoint *old)
{
	struct partition_checkpoint ck = {
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
	rc = partition_write_checkpoint(p, &ck);
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

static struct tfs_partition *partition_alloc(uint32_t id,
					     const struct tfs_partition_env *env)
{
	struct tfs_partition *p = tfs_calloc(1, sizeof(*p));

	tfs_ref_init(&p->refs, 1);
	p->id = id;
	p->name = tfs_strdup(env->name);
	p->dirfd = -1;
	p->settings = tfs_settings_ref(env->settings);
	p->syncer = env->syncer;
	p->fsyncer = env->fsyncer;
	p->timers = env->timers;
	p->role = env->role;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->maint, NULL);
	tfs_list_init(&p->waiters);
	tfs_list_init(&p->syncs);
	tfs_list_init(&p->commits);
	tfs_list_init(&p->end_waiters);
	tfs_producers_init(&p->producers);
	tfs_job_init(&p->sync_job, partition_sync_job);
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
	struct partition_checkpoint ck;
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
		rc = tfs_segment_list(p->dirfd, p->name, ck.rp, &bases, &n);
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
		partition_push_segment(p, s);
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
	rc = upgrade_active(p, &from, &created);
	if (rc)
		goto out_free;
	partition_rebuild_producers(p);
	rc = settle(p, from, created, &ck);
	if (rc == 0 && created)
		rc = partition_write_epochs(p);
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
