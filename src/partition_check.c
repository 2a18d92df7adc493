/*
 * partition_check.c - damage at rest in a partition: the list of damaged
 * ranges, the scrubber's pass, repair.
 *
 * The segment module checks bytes and describes what fails (segment.h,
 * DAMAGE AT REST); this file keeps what was found.  Every finder (a read,
 * a whole-batch read for replication, a lookup, the compactor, the
 * scrubber) hands its struct tfs_damage to partition_note_damage, which
 * records it under the partition lock unless it is known already, and
 * logs it once, outside the lock, naming the partition, the file and the
 * byte offset.  A finder works on a snapshot taken under the lock; a
 * check that failed because a truncation cut the bytes away meanwhile is
 * not damage, so a note counts only if its segment is still in the list
 * and was not cut since (tfs_segment.cuts).
 *
 * The list is small (damage is rare) and unsorted; status counts it, the
 * compactor skips a segment that has any, and the cluster lists it to
 * repair it (tfs_partition_repair).  Nothing is persisted: after a
 * restart a damaged range is found again by whatever reads it first, or
 * by the scrubber.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "partition_int.h"
#include "sysio.h"
#include "banned.h"

/* --- the damage list ------------------------------------------------------- */

static bool same_damage(const struct tfs_damage *a, const struct tfs_damage *b)
{
	if (a->kind != b->kind || a->segment != b->segment)
		return false;
	switch (a->kind) {
	case TFS_DAMAGE_ENTRY:
		return a->entry == b->entry;
	case TFS_DAMAGE_FRAME:
		return a->frame == b->frame;
	default:
		return a->offset == b->offset;
	}
}

static void log_damage(struct tfs_partition *p, const struct tfs_damage *d)
{
	char name[64];

	switch (d->kind) {
	case TFS_DAMAGE_BATCH:
		if (d->zst) {
			tfs_segment_name(d->segment, "zst", name, sizeof(name));
			tfs_err("%s: %s: batch at offset %" PRIu64 " (%" PRIu64
				" bytes, in frame %" PRIu32 " at byte %" PRIu64
				" of the file) %s; reads of it fail with EIO",
				p->name, name, d->offset, d->length, d->frame,
				d->file_pos, d->why);
		} else {
			tfs_segment_name(d->segment, "log", name, sizeof(name));
			tfs_err("%s: %s: batch at offset %" PRIu64 " (byte %" PRIu64
				" of the file, %" PRIu64 " bytes) %s; reads of "
				"it fail with EIO until it is repaired",
				p->name, name, d->offset, d->file_pos,
				d->length, d->why);
		}
		break;
	case TFS_DAMAGE_ENTRY:
		tfs_segment_name(d->segment, "index", name, sizeof(name));
		tfs_err("%s: %s: entry %" PRIu64 " (byte %" PRIu64
			" of the file) %s; the batch at offset %" PRIu64
			" (%" PRIu64 " bytes to the next good entry) cannot be "
			"read or looked up until it is repaired",
			p->name, name, d->entry, d->file_pos, d->why, d->offset,
			d->length);
		break;
	case TFS_DAMAGE_FRAME:
		tfs_segment_name(d->segment, "zst", name, sizeof(name));
		tfs_err("%s: %s: frame %" PRIu32 " (byte %" PRIu64
			" of the file) %s; offsets %" PRIu64 " to %" PRIu64
			" (%" PRIu32 " batches) cannot be read",
			p->name, name, d->frame, d->file_pos, d->why, d->offset,
			d->offset + d->length, d->batches);
		break;
	case TFS_DAMAGE_NONE:
		break;
	}
}

void partition_note_damage(struct tfs_partition *p, struct tfs_segment *s,
			   uint64_t cuts, const struct tfs_damage *d)
{
	struct tfs_damage rec = *d;
	bool fresh = false;

	if (d->kind == TFS_DAMAGE_NONE)
		return;
	pthread_mutex_lock(&p->lock);
	if (partition_segment_index(p, s) >= 0 && s->cuts == cuts) {
		fresh = true;
		for (size_t i = 0; i < p->ndamage && fresh; i++)
			fresh = !same_damage(&p->damage[i], &rec);
	}
	if (fresh) {
		if (rec.length == 0 && rec.offset < s->base + s->size)
			rec.length = s->base + s->size - rec.offset;
		if (p->ndamage == p->damage_cap) {
			p->damage_cap = p->damage_cap ? 2 * p->damage_cap : 4;
			p->damage = tfs_realloc(p->damage, p->damage_cap *
							   sizeof(*p->damage));
		}
		p->damage[p->ndamage++] = rec;
	}
	pthread_mutex_unlock(&p->lock);
	if (fresh)
		log_damage(p, &rec);
}

void partition_forget_damage(struct tfs_partition *p, uint64_t base,
			     uint64_t from)
{
	size_t k = 0;

	for (size_t i = 0; i < p->ndamage; i++) {
		const struct tfs_damage *d = &p->damage[i];

		if (d->segment != base || d->offset < from)
			p->damage[k++] = *d;
	}
	p->ndamage = k;
}

uint64_t partition_damaged_batches(const struct tfs_partition *p,
				   uint64_t base)
{
	uint64_t n = 0;

	for (size_t i = 0; i < p->ndamage; i++)
		if (base == UINT64_MAX || p->damage[i].segment == base)
			n += p->damage[i].batches;
	return n;
}

size_t tfs_partition_damage(struct tfs_partition *p, struct tfs_damage **out)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->ndamage;
	*out = n ? tfs_malloc(n * sizeof(**out)) : NULL;
	if (n)
		memcpy(*out, p->damage, n * sizeof(**out));
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* --- repair ------------------------------------------------------------------ */

/* What a repair found it is to fix, from the list.  Lock held. */
struct repair_target {
	struct tfs_segment *s;		/* referenced */
	uint64_t n, size, cuts;		/* snapshot */
	uint64_t entry;			/* the index entry to write */
	bool entry_bad, bytes_bad;
};

/* The damage records at e's place.  Lock held. */
static int find_target(struct tfs_partition *p, const struct tfs_index_entry *e,
		       struct repair_target *t)
{
	struct tfs_segment *s;
	bool any = false;

	if (e->offset < p->segs[0]->base)
		return TFS_EBELOWSTART;
	s = p->segs[partition_find_segment(p, e->offset, false)];
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < p->ndamage; i++) {
		const struct tfs_damage *d = &p->damage[i];

		if (d->segment != s->base || d->offset > e->offset ||
		    e->offset >= d->offset + d->length)
			continue;
		any = true;
		if (d->kind == TFS_DAMAGE_FRAME || s->kind != TFS_SEG_RAW)
			return -EOPNOTSUPP;
		if (d->offset != e->offset)
			continue;	/* inside a damaged range, not at its start */
		if (d->kind == TFS_DAMAGE_ENTRY) {
			/* The first of a stretch of damaged entries. */
			if (!t->entry_bad || d->entry < t->entry)
				t->entry = d->entry;
			t->entry_bad = true;
			if (e->length > d->length)
				return TFS_ENOTBOUNDARY;
		} else {
			if (e->length != d->length)
				return TFS_ENOTBOUNDARY;
			t->entry = d->entry;
			t->bytes_bad = true;
		}
	}
	if (!t->entry_bad && !t->bytes_bad)
		return any ? TFS_ENOTBOUNDARY : -ENOENT;
	t->s = tfs_segment_ref(s);
	t->n = s->entries;
	t->size = s->size;
	t->cuts = s->cuts;
	return 0;
}

/*
 * Checks that e is exactly the damaged batch's place, against the good
 * entries of t around it.  No lock (the snapshot in t; maint held).
 */
static int check_place(const struct repair_target *t,
		       const struct tfs_index_entry *e)
{
	struct tfs_segment *s = t->s;
	struct tfs_index_entry x;
	int rc;

	if (e->offset + e->length > s->base + t->size)
		return TFS_ENOTBOUNDARY;
	if (!t->entry_bad) {
		/* Only the bytes are bad: our own entry says where, and
		 * the replica's must describe the same batch. */
		rc = tfs_segment_entry(s, t->entry, &x);
		if (rc)
			return rc;
		if (x.offset != e->offset || x.record != e->record ||
		    x.count != e->count || x.length != e->length ||
		    x.crc != e->crc)
			return TFS_ENOTBOUNDARY;
		return 0;
	}
	if (t->entry == 0) {
		if (e->offset != s->base || e->record != s->base_record)
			return TFS_ENOTBOUNDARY;
	} else {
		rc = tfs_segment_entry(s, t->entry - 1, &x);
		if (rc)
			return rc;
		if (e->offset != x.offset + x.length ||
		    e->record != x.record + x.count)
			return TFS_ENOTBOUNDARY;
	}
	if (t->entry + 1 < t->n) {
		rc = tfs_segment_entry(s, t->entry + 1, &x);
		/* A damaged next entry is repaired after this one. */
		if (rc == 0 && (x.offset != e->offset + e->length ||
				x.record != e->record + e->count))
			return TFS_ENOTBOUNDARY;
		if (rc && rc != TFS_ECORRUPT)
			return rc;
	} else if (e->offset + e->length != s->base + t->size) {
		return TFS_ENOTBOUNDARY;
	}
	return 0;
}

/* Drops the records e repaired and moves the start of the damaged
 * entries after it to its end.  Lock held. */
static void forget_repaired(struct tfs_partition *p, struct tfs_segment *s,
			    const struct tfs_index_entry *e, uint64_t entry)
{
	size_t k = 0;

	for (size_t i = 0; i < p->ndamage; i++) {
		struct tfs_damage d = p->damage[i];

		if (d.segment == s->base && d.offset == e->offset) {
			if (d.kind == TFS_DAMAGE_BATCH ||
			    (d.kind == TFS_DAMAGE_ENTRY && d.entry == entry))
				continue;
			if (d.kind == TFS_DAMAGE_ENTRY) {
				d.offset += e->length;
				d.length -= e->length;
			}
		}
		p->damage[k++] = d;
	}
	p->ndamage = k;
	/* Whole again: the compactor may take it. */
	if (!partition_damaged_batches(p, s->base))
		s->no_compress = false;
}

int tfs_partition_repair(struct tfs_partition *p,
			 const struct tfs_index_entry *e, const void *bytes)
{
	struct repair_target t;
	struct tfs_damage d;
	char name[64];
	int rc;

	if (bytes && tfs_batch_verify(e, bytes))
		return TFS_ECORRUPT;
	pthread_mutex_lock(&p->maint);
	pthread_mutex_lock(&p->lock);
	rc = find_target(p, e, &t);
	pthread_mutex_unlock(&p->lock);
	if (rc)
		goto out;
	rc = check_place(&t, e);
	if (rc == 0 && t.bytes_bad && !bytes)
		rc = -EINVAL;
	if (rc == 0 && !bytes) {
		/* Only the entry is rewritten: the bytes on disk must be
		 * the batch it describes. */
		char *buf = tfs_malloc(e->length);
		ssize_t r = tfs_sys_pread(t.s->log_fd, buf, e->length,
					  (off_t)(e->offset - t.s->base));

		if (r < 0)
			rc = (int)r;
		else if ((size_t)r != e->length || tfs_batch_verify(e, buf))
			rc = TFS_ECORRUPT;
		free(buf);
	}
	if (rc == 0)
		rc = tfs_segment_repair(t.s, t.entry, e, bytes, &d);
	if (rc == TFS_ECORRUPT)
		partition_note_damage(p, t.s, t.cuts, &d);
	if (rc == 0) {
		pthread_mutex_lock(&p->lock);
		forget_repaired(p, t.s, e, t.entry);
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add(&p->repaired_batches, 1);
	}
	tfs_segment_name(t.s->base, "log", name, sizeof(name));
	if (rc == 0)
		tfs_info("%s: %s: batch at offset %" PRIu64 " (%" PRIu32
			 " bytes) repaired%s",
			 p->name, name, e->offset, e->length,
			 t.entry_bad ? " with its index entry" : "");
	tfs_segment_unref(t.s);
out:
	pthread_mutex_unlock(&p->maint);
	if (rc)
		tfs_warn("%s: repair of the batch at offset %" PRIu64
			 " refused: %s",
			 p->name, e->offset, tfs_strerror(rc));
	return rc;
}

/* --- the scrubber's pass ------------------------------------------------------ */

struct scrub_seg {
	struct tfs_segment *s;		/* referenced */
	uint64_t n, size, cuts;
};

struct scrub_ctx {
	struct tfs_partition *p;
	struct scrub_seg *ss;
};

static void scrub_found(void *arg, const struct tfs_damage *d)
{
	struct scrub_ctx *c = arg;

	partition_note_damage(c->p, c->ss->s, c->ss->cuts, d);
}

/* The sealed segments, referenced.  Lock held. */
static size_t snap_sealed(struct tfs_partition *p, struct scrub_seg **out)
{
	struct scrub_seg *v = tfs_calloc(p->nsegs, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i + 1 < p->nsegs; i++) {
		struct tfs_segment *s = p->segs[i];

		if (!s->sealed || !s->entries)
			continue;
		v[n++] = (struct scrub_seg){ tfs_segment_ref(s), s->entries,
					     s->size, s->cuts };
	}
	*out = v;
	return n;
}

int64_t tfs_partition_scrub(struct tfs_partition *p, size_t chunk,
			    bool (*pace)(void *arg, size_t bytes), void *arg)
{
	struct scrub_seg *ss;
	int64_t total = 0;
	bool stop = false;
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->gone ? 0 : snap_sealed(p, &ss);
	if (p->gone)
		ss = NULL;
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		struct scrub_ctx c = { p, &ss[i] };
		struct tfs_scrub_cursor cur = { 0, 0 };

		while (!stop && cur.pos < ss[i].size) {
			size_t read = 0;
			int rc = tfs_segment_scrub(ss[i].s, ss[i].n, ss[i].size,
						   &cur, chunk, &read,
						   scrub_found, &c);

			if (rc) {
				partition_disk_warning(p, "scrubber cannot "
							  "read a segment",
						       rc);
				break;
			}
			total += (int64_t)read;
			stop = !pace(arg, read);
		}
		tfs_segment_unref(ss[i].s);
	}
	free(ss);
	return stop ? -1 : total;
}
