/*
 * partition_read.c - reading a partition: committed bytes as extents of
 * segment files and decompressed frames, whole batches with their index
 * entries (for replication), lookups by record and by time, snapshots.
 *
 * A read takes the segments it covers under the partition lock, with a
 * reference each, and builds its extents without the lock: decompression
 * never happens under it, and a segment deleted meanwhile (retention, a
 * truncation) stays readable through its open descriptors until the
 * reader drops it.
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
	for (size_t i = partition_find_segment(p, off, false);
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

		if (x->mem) {
			memcpy(out + got, x->mem + skip, n);
		} else {
			ssize_t r = tfs_sys_pread(x->fd, out + got, n,
						  (off_t)(x->pos + skip));

			if (r < 0)
				return r;
			if ((size_t)r != n)
				return -EIO;	/* the file is shorter */
		}
		got += n;
		skip = 0;
	}
	return (ssize_t)got;
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
	size_t si = partition_find_segment(p, off, false);
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

/* --- lookups --------------------------------------------------------------- */

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
	s = tfs_segment_ref(p->segs[partition_find_segment(p, record, true)]);
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
