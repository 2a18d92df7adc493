/*
 * partition_read.c - reading a partition: committed bytes, checked, as
 * extents of memory; whole batches with their index entries (for
 * replication); lookups by record and by time; snapshots.
 *
 * A read takes the segments it covers under the partition lock, with a
 * reference and a snapshot (entries, size, cut count) each, and reads
 * them without the lock: nothing is read, checked or decompressed under
 * it, and a segment deleted meanwhile (retention, a truncation) stays
 * readable through its open descriptors until the reader drops it.
 *
 * Every batch handed out is checked against its index entry first
 * (segment_check.c): a raw segment's batches are read whole into a
 * buffer and checked there, so a read that starts or ends inside a batch
 * reads all of it; the reader's read-ahead keeps the checked rest of the
 * last batch for the next read.  A compressed segment's batches were
 * checked when their frame was decompressed.  Damage found is recorded
 * (partition_check.c); the bytes before it are returned.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "partition_int.h"
#include "sysio.h"
#include "banned.h"

/* --- reading ------------------------------------------------------------- */

/* Pieces of segments a read covers, taken under the lock. */
#define MAX_PIECES 8
struct piece {
	struct tfs_segment *seg;	/* a reference */
	uint64_t pos, len;		/* the segment range to read */
	uint64_t n, size, cuts;		/* the segment when it was taken */
};

struct pieces {
	int n;
	struct piece p[MAX_PIECES];
};

/* Collects the segment ranges of [off, off + len).  Lock held. */
static void gather(struct tfs_partition *p, uint64_t off, uint64_t len,
		   struct pieces *pc)
{
	pc->n = 0;
	for (size_t i = partition_find_segment(p, off, false);
	     len > 0 && i < p->nsegs && pc->n < MAX_PIECES; i++) {
		struct tfs_segment *s = p->segs[i];
		uint64_t in = off - s->base;

		if (in >= s->size)
			continue;
		uint64_t n = TFS_MIN(len, s->size - in);
		pc->p[pc->n++] = (struct piece){
			.seg = tfs_segment_ref(s),
			.pos = in,
			.len = n,
			.n = s->entries,
			.size = s->size,
			.cuts = s->cuts,
		};
		off += n;
		len -= n;
	}
}

static void release_pieces(struct pieces *pc)
{
	for (int i = 0; i < pc->n; i++)
		tfs_segment_unref(pc->p[i].seg);
	pc->n = 0;
}

static void add_extent(struct tfs_readv *rv, struct tfs_rbuf *rb,
		       struct tfs_zbuf *zb, const char *mem, size_t len)
{
	rv->ext[rv->n++] = (struct tfs_extent){
		.rbuf = rb, .zbuf = zb, .mem = mem, .len = len
	};
	rv->len += len;
}

void tfs_readahead_release(struct tfs_readahead *ra)
{
	tfs_rbuf_unref(atomic_exchange(&ra->keep, NULL));
}

/* Keeps b (a reference) as ra's read-ahead. */
static void keep_ahead(struct tfs_readahead *ra, struct tfs_rbuf *b)
{
	tfs_rbuf_unref(atomic_exchange(&ra->keep, b));
}

/*
 * Reads a piece of a raw segment: from the read-ahead as far as it goes,
 * then checked batches from the file.  Returns 0 when the piece was read
 * whole, 1 when it stopped early (damage, or no room for extents) with
 * something read, or an error with nothing read from this piece.
 */
static int read_raw(struct tfs_partition *p, struct tfs_readahead *ra,
		    const struct piece *pc, struct tfs_readv *rv)
{
	struct tfs_segment *s = pc->seg;
	uint64_t at = s->base + pc->pos, first = UINT64_MAX;
	size_t want = (size_t)pc->len, got = 0;
	struct tfs_rbuf *k = ra ? atomic_exchange(&ra->keep, NULL) : NULL;
	struct tfs_damage d;
	struct tfs_rbuf *b;
	int rc;

	if (k && k->uid == s->uid && k->cuts == pc->cuts && at >= k->off &&
	    at <= k->off + k->len) {
		size_t n = (size_t)TFS_MIN((uint64_t)want, k->off + k->len - at);

		if (n)
			add_extent(rv, tfs_rbuf_ref(k), NULL,
				   k->data + (at - k->off), n);
		at += n;
		got = n;
		/* Where the batch after it is in the index: no search. */
		first = k->next_entry;
	}
	if (got == want) {
		/* Still more in it for the next read. */
		if (k && at < k->off + k->len)
			keep_ahead(ra, k);
		else
			tfs_rbuf_unref(k);
		return 0;
	}
	tfs_rbuf_unref(k);
	if (rv->n == TFS_READ_MAX_EXTENTS)
		return 1;
	rc = tfs_segment_read_checked(s, pc->n, pc->size, at - s->base,
				      want - got, first, &b, NULL, NULL, &d);
	partition_note_damage(p, s, pc->cuts, &d);
	if (rc)
		return got ? 1 : rc;
	b->uid = s->uid;
	b->cuts = pc->cuts;
	size_t n = (size_t)TFS_MIN((uint64_t)(want - got), b->off + b->len - at);

	if (ra && b->off + b->len > at + n)
		keep_ahead(ra, tfs_rbuf_ref(b));
	add_extent(rv, b, NULL, b->data + (at - b->off), n);
	return got + n < want ? 1 : 0;
}

/* Reads a piece of a compressed segment as frames (same returns). */
static int read_frames(struct tfs_partition *p, const struct piece *pc,
		       struct tfs_readv *rv)
{
	struct tfs_segment *s = pc->seg;
	uint64_t pos = pc->pos, len = pc->len;
	size_t before = rv->len;

	while (len > 0) {
		uint32_t i = tfs_zindex_find(&s->zi, pos);
		const struct tfs_zframe *f = &s->zi.f[i];
		struct tfs_damage d;
		struct tfs_zbuf *b;
		int rc;

		if (rv->n == TFS_READ_MAX_EXTENTS)
			return 1;
		rc = tfs_segment_frame(s, i, &b, &d);
		partition_note_damage(p, s, pc->cuts, &d);
		if (rc)
			return rv->len > before ? 1 : rc;
		size_t in = (size_t)(pos - f->raw_off);
		size_t n = (size_t)TFS_MIN(len, f->raw_len - in);

		if (in >= b->good) {
			/* Damaged, found by this read or an earlier one. */
			tfs_zbuf_unref(b);
			return rv->len > before ? 1 : TFS_ECORRUPT;
		}
		if (n > b->good - in) {
			add_extent(rv, NULL, b, b->data + in, b->good - in);
			return 1;
		}
		add_extent(rv, NULL, b, b->data + in, n);
		pos += n;
		len -= n;
	}
	return 0;
}

int tfs_partition_read_ahead(struct tfs_partition *p, struct tfs_readahead *ra,
			     uint64_t off, size_t max, struct tfs_readv *rv)
{
	struct pieces pc = { 0 };
	int rc = 0, i;

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
	for (i = 0; i < pc.n && rc == 0; i++) {
		struct piece *x = &pc.p[i];

		rc = x->seg->kind == TFS_SEG_RAW ? read_raw(p, ra, x, rv)
						 : read_frames(p, x, rv);
	}
	release_pieces(&pc);
	atomic_fetch_add_explicit(&p->reads, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->read_bytes, rv->len,
				  memory_order_relaxed);
	/* What was read before damage is still good to return. */
	return rv->len || rc > 0 ? 0 : rc;
}

int tfs_partition_read(struct tfs_partition *p, uint64_t off, size_t max,
		       struct tfs_readv *rv)
{
	return tfs_partition_read_ahead(p, NULL, off, max, rv);
}

ssize_t tfs_readv_copy(const struct tfs_readv *rv, size_t skip, void *buf,
		       size_t len)
{
	char *out = buf;
	size_t got = 0;

	for (int i = 0; i < rv->n && got < len; i++) {
		const struct tfs_extent *x = &rv->ext[i];

		if (skip >= x->len) {
			skip -= x->len;
			continue;
		}
		size_t n = TFS_MIN(x->len - skip, len - got);

		memcpy(out + got, x->mem + skip, n);
		got += n;
		skip = 0;
	}
	return (ssize_t)got;
}

void tfs_readv_release(struct tfs_readv *rv)
{
	for (int i = 0; i < rv->n; i++) {
		tfs_rbuf_unref(rv->ext[i].rbuf);
		tfs_zbuf_unref(rv->ext[i].zbuf);
	}
	rv->n = 0;
	rv->len = 0;
}

/* Appends e[0..n) to *v (*cnt of them). */
static void append_entries(struct tfs_index_entry **v, size_t *cnt,
			   const struct tfs_index_entry *e, size_t n)
{
	*v = tfs_realloc(*v, (*cnt + n) * sizeof(**v));
	memcpy(*v + *cnt, e, n * sizeof(*e));
	*cnt += n;
}

/* Most batches one whole-batch read returns. */
#define READ_BATCHES_MAX (TFS_READ_MAX_EXTENTS * 64)

int tfs_partition_read_batches(struct tfs_partition *p, uint64_t off,
			       size_t max, bool upto_hw,
			       struct tfs_index_entry **entries, size_t *n,
			       struct tfs_readv *rv)
{
	struct tfs_index_entry *v = NULL;
	struct pieces pc = { 0 };
	size_t cnt = 0, bytes = 0;
	bool stop = false;
	int rc = 0, i;

	rv->n = 0;
	rv->len = 0;
	*entries = NULL;
	*n = 0;
	pthread_mutex_lock(&p->lock);
	uint64_t limit = upto_hw ? p->hw : p->end;
	if (off < p->segs[0]->base) {
		pthread_mutex_unlock(&p->lock);
		return TFS_EBELOWSTART;
	}
	if (off < limit)
		gather(p, off, limit - off, &pc);
	pthread_mutex_unlock(&p->lock);

	for (i = 0; i < pc.n && !stop && rv->n < TFS_READ_MAX_EXTENTS; i++) {
		struct piece *x = &pc.p[i];
		struct tfs_segment *s = x->seg;
		struct tfs_index_entry *ev;
		struct tfs_damage d;
		struct tfs_rbuf *b;
		size_t ne, take = 0, tb = 0;
		/* At least one batch, then up to max bytes. */
		size_t want = (size_t)TFS_MIN(x->len, cnt ? max - bytes
							  : TFS_MAX(max, 1));

		if (cnt && bytes >= max)
			break;
		rc = tfs_segment_read_checked(s, x->n, x->size, x->pos, want,
					      UINT64_MAX, &b, &ev, &ne, &d);
		partition_note_damage(p, s, x->cuts, &d);
		if (rc)
			break;
		if (cnt == 0 && b->off != off) {
			rc = TFS_ENOTBOUNDARY;
			tfs_rbuf_unref(b);
			free(ev);
			break;
		}
		while (take < ne && cnt + take < READ_BATCHES_MAX &&
		       (cnt + take == 0 || bytes + tb + ev[take].length <= max))
			tb += ev[take++].length;
		append_entries(&v, &cnt, ev, take);
		free(ev);
		bytes += tb;
		/* Damage, the size limit or the count limit ends it here. */
		stop = take < ne || b->len < want || d.kind != TFS_DAMAGE_NONE;
		if (tb)
			add_extent(rv, b, NULL, b->data, tb);
		else
			tfs_rbuf_unref(b);
	}
	release_pieces(&pc);
	if (cnt > 0)
		rc = 0;	/* the batches before a damaged one are good */
	if (rc) {
		tfs_readv_release(rv);
		free(v);
		return rc;
	}
	*entries = v;
	*n = cnt;
	return 0;
}

/* --- lookups --------------------------------------------------------------- */

/* A segment found under the lock, with the snapshot its checks need. */
struct seg_snap {
	struct tfs_segment *s;		/* referenced */
	uint64_t n, size, cuts;
};

static void snap_of(struct tfs_segment *s, struct seg_snap *ss)
{
	*ss = (struct seg_snap){ tfs_segment_ref(s), s->entries, s->size,
				 s->cuts };
}

/* Byte offset of the k-th record (0-based) inside batch e (entry i):
 * the batch is read through the checks, a flipped newline would move
 * every record after it. */
static int offset_in_batch(struct tfs_partition *p, const struct seg_snap *ss,
			   const struct tfs_index_entry *e, uint64_t i,
			   uint64_t k, uint64_t *off)
{
	struct tfs_segment *s = ss->s;
	struct tfs_damage d;
	struct tfs_rbuf *b;
	int rc;

	if (k == 0) {
		*off = e->offset;
		return 0;
	}
	rc = tfs_segment_read_checked(s, ss->n, ss->size, e->offset - s->base,
				      e->length, i, &b, NULL, NULL, &d);
	partition_note_damage(p, s, ss->cuts, &d);
	if (rc)
		return rc;
	const char *q = b->data + (e->offset - b->off), *lim = q + e->length;
	const char *start = b->data;

	for (; k > 0 && q < lim; k--) {
		q = memchr(q, '\n', (size_t)(lim - q));
		if (!q)
			break;
		q++;
	}
	rc = k == 0 && q ? 0 : TFS_ECORRUPT;
	*off = b->off + (uint64_t)(q ? q - start : 0);
	tfs_rbuf_unref(b);
	return rc;
}

int tfs_partition_offset_of_record(struct tfs_partition *p, uint64_t record,
				   uint64_t *off)
{
	struct tfs_index_entry e;
	struct seg_snap ss;
	struct tfs_damage d;
	uint64_t pos;
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
	snap_of(p->segs[partition_find_segment(p, record, true)], &ss);
	pthread_mutex_unlock(&p->lock);

	rc = tfs_segment_find(ss.s, ss.n, TFS_FIND_RECORD, record, &pos, &d);
	if (rc == TFS_ECORRUPT)
		partition_note_damage(p, ss.s, ss.cuts, &d);
	if (rc == 0 && pos == UINT64_MAX)
		rc = TFS_ECORRUPT;
	if (rc == 0)
		rc = tfs_segment_entry(ss.s, pos, &e);
	if (rc == 0)
		rc = offset_in_batch(p, &ss, &e, pos, record - e.record, off);
	tfs_segment_unref(ss.s);
	return rc;
}

int tfs_partition_offset_of_time(struct tfs_partition *p, int64_t ms,
				 uint64_t *off)
{
	struct seg_snap ss = { 0 };
	struct tfs_index_entry e;
	struct tfs_damage d;
	uint64_t pos, hw;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	hw = p->hw;
	for (size_t i = 0; i < p->nsegs; i++) {
		if (p->segs[i]->entries && p->segs[i]->last_ts >= ms) {
			snap_of(p->segs[i], &ss);
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	*off = hw;
	if (!ss.s)
		return 0;
	rc = tfs_segment_find(ss.s, ss.n, TFS_FIND_TIME, (uint64_t)ms, &pos, &d);
	if (rc == TFS_ECORRUPT)
		partition_note_damage(p, ss.s, ss.cuts, &d);
	if (rc == 0 && pos < ss.n)
		rc = tfs_segment_entry(ss.s, pos, &e);
	if (rc == 0 && pos < ss.n)
		*off = TFS_MIN(e.offset, hw);
	tfs_segment_unref(ss.s);
	return rc;
}

void tfs_partition_bounds(struct tfs_partition *p, struct tfs_bounds *b)
{
	pthread_mutex_lock(&p->lock);
	b->start = p->segs[0]->base;
	b->start_record = p->segs[0]->base_record;
	b->hw = p->hw;
	b->hw_record = p->hw_record;
	b->end = p->end;
	b->durable = p->durable;
	b->epoch = p->epoch;
	b->last_batch_epoch = 0;
	for (size_t i = p->nsegs; i-- > 0;) {
		if (p->segs[i]->entries) {
			b->last_batch_epoch = p->segs[i]->last_epoch;
			break;
		}
	}
	b->role = p->role;
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
				    s->entries * s->esize;
		info->compressed_segments += s->kind == TFS_SEG_ZSTD;
		if (!info->first_ts && s->entries)
			info->first_ts = s->first_ts;
	}
	info->last_ts = p->last_ts;
	info->epoch = p->epoch;
	info->failed = p->failed;
	info->waiters = p->nwaiters;
	info->corrupt_batches = partition_damaged_batches(p, UINT64_MAX);
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
	info->repaired_batches = atomic_load(&p->repaired_batches);
}
