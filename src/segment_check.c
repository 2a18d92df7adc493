/*
 * segment_check.c - checks at rest: every path that hands a segment's
 * bytes out checks them first.
 *
 * WHAT IS CHECKED.  The .log holds nothing but the readers' bytes, so the
 * index entry is the only witness of a batch: its CRC-32C covers the
 * batch's bytes, and the entry carries a CRC of its own (segment.c, INDEX
 * FORMAT).  A read checks every batch it returns against its entry, and
 * every entry it uses against its own CRC and against the entry before it
 * (offsets and record numbers continue).  The scrubber checks the same,
 * plus each batch's newline count and last byte, over whole sealed
 * segments.  A compressed segment's batches are checked when their frame
 * is decompressed, before the frame enters the shared cache
 * (tfs_segment_frame); the frame remembers how much of it passed.
 *
 * WHAT A FAILURE MEANS.  A batch that fails is damaged; the batches before
 * it in the same read are still returned.  A damaged index entry hides
 * where its batch starts and ends: the range is inferred from the good
 * entries around it (the end of the one before, the start of the next
 * good one), and reads and lookups that need it fail.  Each failure is
 * described by a struct tfs_damage and handed to the caller, which
 * records and logs it (partition_check.c): this file never logs damage
 * itself, it does not know which partition it serves.
 *
 * COST.  A read covers whole batches: the partial batches at its edges are
 * read and checked too; the reader's read-ahead (partition.h) keeps the
 * rest of the last one, so a sequential reader reads and checks every
 * byte once.  Entries are read WALK_CHUNK at a time, so thousands of small
 * batches cost a few system calls; the CRC runs at tens of GB/s.
 *
 * REPAIR of a raw segment rewrites a batch's bytes and/or its index entry
 * in place, fdatasyncs them, and reads them back through the same checks.
 * A compressed segment is not repaired in place (-EOPNOTSUPP): its frames
 * are written once, and rewriting one would mean rewriting the file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "err.h"
#include "segment_int.h"
#include "sysio.h"
#include "util.h"
#include "banned.h"

/* --- checked bytes ---------------------------------------------------------- */

struct tfs_rbuf *tfs_rbuf_ref(struct tfs_rbuf *b)
{
	tfs_ref_get(&b->refs);
	return b;
}

void tfs_rbuf_unref(struct tfs_rbuf *b)
{
	if (b && tfs_ref_put(&b->refs))
		free(b);
}

static struct tfs_rbuf *rbuf_new(uint64_t off, size_t len)
{
	struct tfs_rbuf *b = tfs_malloc(sizeof(*b) + len);

	tfs_ref_init(&b->refs, 1);
	b->uid = 0;
	b->cuts = 0;
	b->off = off;
	b->next_entry = UINT64_MAX;
	b->len = len;
	return b;
}

/* A growable array of index entries, with their positions in the index. */
struct entries {
	struct tfs_index_entry *v;
	uint64_t *at;
	size_t n, cap;
};

static void entries_push(struct entries *es, const struct tfs_index_entry *e,
			 uint64_t i)
{
	if (es->n == es->cap) {
		es->cap = es->cap ? 2 * es->cap : 64;
		es->v = tfs_realloc(es->v, es->cap * sizeof(*es->v));
		es->at = tfs_realloc(es->at, es->cap * sizeof(*es->at));
	}
	es->at[es->n] = i;
	es->v[es->n++] = *e;
}

static void entries_release(struct entries *es)
{
	free(es->v);
	free(es->at);
}

/* --- walking the index -------------------------------------------------------- */

void seg_walk_init(struct seg_walk *w, struct tfs_segment *s, uint64_t n)
{
	w->s = s;
	w->n = n;
	w->first = 0;
	w->have = 0;
	w->chunk = WALK_FIRST;
}

int seg_walk_entry(struct seg_walk *w, uint64_t i, struct tfs_index_entry *e)
{
	struct tfs_segment *s = w->s;

	if (i < w->first || i >= w->first + w->have) {
		size_t k = (size_t)TFS_MIN((uint64_t)w->chunk, w->n - i);
		ssize_t r = tfs_sys_pread(s->idx_fd, w->buf, k * s->esize,
					  segment_entry_pos(s, i));

		w->chunk = WALK_CHUNK;
		w->have = 0;
		if (r < 0)
			return (int)r;
		w->first = i;
		w->have = (size_t)r / s->esize;
		/* An .index shorter than the entries it had: those are lost. */
		if (w->have == 0)
			return TFS_ECORRUPT;
	}
	return tfs_index_decode_any(w->buf + (size_t)(i - w->first) * s->esize,
				    s->esize, e);
}

/* Like seg_entry_damage; returns the position of the next good entry
 * (w->n when there is none). */
static uint64_t entry_damage(struct seg_walk *w, uint64_t j, uint64_t lo,
			     const char *why, struct tfs_damage *d)
{
	struct tfs_segment *s = w->s;
	struct tfs_index_entry e;
	uint64_t hi = 0, k;

	for (k = j + 1; k < w->n; k++) {
		int rc = seg_walk_entry(w, k, &e);

		if (rc == 0) {
			hi = e.offset;
			break;
		}
		if (rc != TFS_ECORRUPT) {
			k = w->n;
			break;
		}
	}
	*d = (struct tfs_damage){
		.kind = TFS_DAMAGE_ENTRY,
		.segment = s->base,
		.offset = lo,
		.length = hi > lo ? hi - lo : 0,
		.entry = j,
		.file_pos = (uint64_t)segment_entry_pos(s, j),
		.batches = 1,
		.why = why,
	};
	return k;
}

void seg_entry_damage(struct seg_walk *w, uint64_t j, uint64_t lo,
		      const char *why, struct tfs_damage *d)
{
	entry_damage(w, j, lo, why, d);
}

void seg_batch_damage(struct tfs_segment *s, const struct tfs_index_entry *e,
		      uint64_t i, const char *why, struct tfs_damage *d)
{
	*d = (struct tfs_damage){
		.kind = TFS_DAMAGE_BATCH,
		.segment = s->base,
		.offset = e->offset,
		.length = e->length,
		.entry = i,
		.file_pos = e->offset - s->base,
		.batches = 1,
		.why = why,
	};
	if (s->kind == TFS_SEG_ZSTD) {
		d->zst = true;
		d->frame = tfs_zindex_find(&s->zi, e->offset - s->base);
		d->file_pos = s->zi.f[d->frame].pos;
	}
}

bool seg_entry_follows(const struct tfs_segment *s,
		       const struct tfs_index_entry *prev,
		       const struct tfs_index_entry *e)
{
	if (!prev)
		return e->offset == s->base && e->record == s->base_record;
	return e->offset == prev->offset + prev->length &&
	       e->record == prev->record + prev->count;
}

/* The earlier (by offset) of two damages, either possibly NONE. */
static void keep_earliest(struct tfs_damage *d, const struct tfs_damage *x)
{
	if (x->kind != TFS_DAMAGE_NONE &&
	    (d->kind == TFS_DAMAGE_NONE || x->offset < d->offset))
		*d = *x;
}

/* --- lookups -------------------------------------------------------------- */

static bool entry_before(const struct tfs_index_entry *e,
			 enum tfs_find_key key, uint64_t v)
{
	switch (key) {
	case TFS_FIND_OFFSET:
		return e->offset <= v;
	case TFS_FIND_RECORD:
		return e->record <= v;
	case TFS_FIND_TIME:
		return e->timestamp < (int64_t)v;
	}
	return false;
}

/* One past the last offset or record of e. */
static uint64_t entry_end(const struct tfs_index_entry *e,
			  enum tfs_find_key key)
{
	return key == TFS_FIND_RECORD ? e->record + e->count
				      : e->offset + e->length;
}

/* A good entry of [lo, hi) near mid, above it first: *j and *e. */
static int good_near(struct tfs_segment *s, uint64_t lo, uint64_t hi,
		     uint64_t mid, uint64_t *j, struct tfs_index_entry *e)
{
	int rc = TFS_ECORRUPT;

	for (uint64_t k = mid + 1; k < hi && rc == TFS_ECORRUPT; k++) {
		rc = tfs_segment_entry(s, k, e);
		*j = k;
	}
	for (uint64_t k = mid; k-- > lo && rc == TFS_ECORRUPT;) {
		rc = tfs_segment_entry(s, k, e);
		*j = k;
	}
	return rc;
}

int tfs_segment_find(struct tfs_segment *s, uint64_t n, enum tfs_find_key key,
		     uint64_t v, uint64_t *pos, struct tfs_damage *d)
{
	uint64_t lo = 0, hi = n;	/* invariant: [0,lo) before, [hi,n) not */
	struct tfs_index_entry e, prev = { 0 };
	bool have_prev = false;
	int rc = 0;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2, j = mid;

		rc = tfs_segment_entry(s, mid, &e);
		/* Entries are sorted, so any good one narrows the search. */
		if (rc == TFS_ECORRUPT)
			rc = good_near(s, lo, hi, mid, &j, &e);
		if (rc)
			break;
		if (entry_before(&e, key, v)) {
			lo = j + 1;
			prev = e;
			have_prev = true;
		} else {
			hi = j;
		}
	}
	if (rc == 0) {
		/* lo = number of entries "before" v. */
		if (key == TFS_FIND_TIME)
			*pos = lo;
		else
			*pos = lo == 0 ? UINT64_MAX : lo - 1;
		return 0;
	}
	if (rc != TFS_ECORRUPT)
		return rc;
	/* [lo, hi) are all damaged.  The answer is entry lo - 1 only if v
	 * lies inside it; otherwise it may be one of them. */
	if (key != TFS_FIND_TIME && have_prev && v < entry_end(&prev, key)) {
		*pos = lo - 1;
		return 0;
	}
	if (d) {
		struct seg_walk w;

		seg_walk_init(&w, s, n);
		entry_damage(&w, lo, have_prev ? prev.offset + prev.length : s->base,
			     "fails its CRC-32C check", d);
	}
	return TFS_ECORRUPT;
}

/* --- checked reads ------------------------------------------------------------ */

/*
 * Copies bytes [start, end) of compressed segment s into buf from checked
 * frames: *got stops early at damage (d set when found now).  Returns 0,
 * TFS_ECORRUPT (a frame that does not decompress) or -errno.
 */
static int copy_frames(struct tfs_segment *s, uint64_t start, uint64_t end,
		       char *buf, size_t *got, struct tfs_damage *d)
{
	uint64_t pos = start - s->base, stop = end - s->base;

	*got = 0;
	while (pos < stop) {
		uint32_t i = tfs_zindex_find(&s->zi, pos);
		const struct tfs_zframe *f = &s->zi.f[i];
		struct tfs_zbuf *b;
		int rc = tfs_segment_frame(s, i, &b, d);

		if (rc)
			return rc;
		size_t in = (size_t)(pos - f->raw_off);
		size_t n = (size_t)TFS_MIN(stop - pos, f->raw_len - in);
		size_t ok = b->good > in ? TFS_MIN(n, b->good - in) : 0;

		memcpy(buf + *got, b->data + in, ok);
		tfs_zbuf_unref(b);
		*got += ok;
		pos += ok;
		if (ok < n)
			break;
	}
	return 0;
}

/*
 * The entries of the batches from entry k (e, already read) on, through
 * the one holding `to` - 1, stopping at a damaged entry (*d).
 */
static int collect_read(struct seg_walk *w, uint64_t k,
			struct tfs_index_entry e, uint64_t to, uint64_t limit,
			struct entries *es, struct tfs_damage *d)
{
	struct tfs_segment *s = w->s;
	uint64_t end = e.offset, i = k;
	const char *why = NULL;

	for (;;) {
		if (e.offset + e.length > limit) {
			why = "points past the end of the segment";
			break;
		}
		entries_push(es, &e, i);
		end = e.offset + e.length;
		if (end >= to || ++i >= w->n)
			break;

		struct tfs_index_entry prev = e;
		int rc = seg_walk_entry(w, i, &e);

		if (rc == TFS_ECORRUPT) {
			why = "fails its CRC-32C check";
			break;
		}
		if (rc)
			return rc;
		if (!seg_entry_follows(s, &prev, &e)) {
			why = "does not follow the entry before it";
			break;
		}
	}
	if (why)
		entry_damage(w, i, end, why, d);
	return 0;
}

int tfs_segment_read_checked(struct tfs_segment *s, uint64_t n, uint64_t size,
			     uint64_t pos, size_t len, uint64_t first,
			     struct tfs_rbuf **out,
			     struct tfs_index_entry **want_entries,
			     size_t *nentries, struct tfs_damage *d)
{
	uint64_t from = s->base + pos, to = from + len, k;
	struct entries es = { 0 };
	struct tfs_damage found = { 0 };
	struct tfs_index_entry e;
	struct tfs_rbuf *b = NULL;
	struct seg_walk w;
	size_t got = 0, good = 0, kept = 0;
	int rc;

	d->kind = TFS_DAMAGE_NONE;
	*out = NULL;
	if (want_entries) {
		*want_entries = NULL;
		*nentries = 0;
	}
	seg_walk_init(&w, s, n);
	if (pos == 0)
		first = 0;	/* a segment starts with its first batch */
	if (first < n && seg_walk_entry(&w, first, &e) == 0 &&
	    e.offset == from) {
		k = first;
	} else {
		rc = tfs_segment_find(s, n, TFS_FIND_OFFSET, from, &k, d);
		if (rc == 0 && k == UINT64_MAX) {
			entry_damage(&w, 0, s->base,
				     "does not start at the segment's base", d);
			rc = TFS_ECORRUPT;
		}
		if (rc == 0)
			rc = seg_walk_entry(&w, k, &e);
		if (rc)
			return rc;
	}
	rc = collect_read(&w, k, e, to, s->base + size, &es, &found);
	if (rc || es.n == 0) {
		*d = found;
		rc = rc ? rc : TFS_ECORRUPT;
		goto out_free;
	}

	uint64_t start = es.v[0].offset;
	uint64_t end = es.v[es.n - 1].offset + es.v[es.n - 1].length;

	b = rbuf_new(start, (size_t)(end - start));
	if (s->kind == TFS_SEG_RAW) {
		ssize_t r = tfs_sys_pread(s->log_fd, b->data, b->len,
					  (off_t)(start - s->base));

		if (r < 0) {
			rc = (int)r;
			goto out_free;
		}
		got = (size_t)r;
	} else {
		struct tfs_damage fd = { 0 };

		rc = copy_frames(s, start, end, b->data, &got, &fd);
		if (rc && rc != TFS_ECORRUPT)
			goto out_free;
		keep_earliest(&found, &fd);
	}

	/* Keep the batches before the first one that fails. */
	for (; kept < es.n; kept++) {
		const struct tfs_index_entry *x = &es.v[kept];
		size_t at = (size_t)(x->offset - start);
		struct tfs_damage bd;

		if (at + x->length > got) {
			/* Raw: the .log is shorter than its index says.
			 * Compressed: the frame was refused (found above, or
			 * before this read). */
			if (s->kind == TFS_SEG_RAW) {
				seg_batch_damage(s, x, k + kept,
						 "is missing from the file", &bd);
				keep_earliest(&found, &bd);
			}
			break;
		}
		if (tfs_crc32c(0, b->data + at, x->length) != x->crc) {
			seg_batch_damage(s, x, k + kept,
					 "fails its CRC-32C check", &bd);
			keep_earliest(&found, &bd);
			break;
		}
		good = at + x->length;
	}
	*d = found;
	if (good <= from - start) {
		rc = TFS_ECORRUPT;
		goto out_free;
	}
	b->len = good;
	b->next_entry = k + kept;
	*out = b;
	if (want_entries) {
		*want_entries = es.v;
		*nentries = kept;
		es.v = NULL;
	}
	entries_release(&es);
	return 0;

out_free:
	tfs_rbuf_unref(b);
	entries_release(&es);
	return rc;
}

/* --- compressed frames -------------------------------------------------------- */

struct frame_check {
	struct tfs_segment *s;
	struct tfs_damage *d;
};

/* Checks the batches of a frame just decompressed (tfs_zcheck_fn). */
static int check_frame(void *arg, uint32_t fi, const char *data, size_t len,
		       size_t *good)
{
	struct frame_check *fc = arg;
	struct tfs_segment *s = fc->s;
	uint64_t from = s->base + s->zi.f[fi].raw_off, to = from + len;
	uint64_t end = from, k;
	struct tfs_index_entry e, prev = { 0 };
	struct seg_walk w;
	int rc;

	*good = 0;
	rc = tfs_segment_find(s, s->entries, TFS_FIND_OFFSET, from, &k, fc->d);
	if (rc == TFS_ECORRUPT)
		return 0;
	if (rc)
		return rc;
	seg_walk_init(&w, s, s->entries);
	for (uint64_t i = k; end < to && i < s->entries; i++) {
		const char *why = NULL;

		rc = seg_walk_entry(&w, i, &e);
		if (rc == TFS_ECORRUPT)
			why = "fails its CRC-32C check";
		else if (rc)
			return rc;
		else if (i == k ? e.offset != from
				: !seg_entry_follows(s, &prev, &e))
			why = "does not follow the entry before it";
		else if (e.offset + e.length > to)
			why = "crosses the end of its compressed frame";
		if (why) {
			entry_damage(&w, i, end, why, fc->d);
			break;
		}
		if (tfs_crc32c(0, data + (e.offset - from), e.length) !=
		    e.crc) {
			seg_batch_damage(s, &e, i, "fails its CRC-32C check",
					 fc->d);
			break;
		}
		end = e.offset + e.length;
		prev = e;
	}
	*good = (size_t)(end - from);
	return 0;
}

/* Describes frame i of s, which does not decompress. */
static void frame_damage(struct tfs_segment *s, uint32_t i,
			 struct tfs_damage *d)
{
	const struct tfs_zframe *f = &s->zi.f[i];
	uint64_t first = UINT64_MAX, last = UINT64_MAX;

	if (tfs_segment_find(s, s->entries, TFS_FIND_OFFSET,
			     s->base + f->raw_off, &first, NULL) ||
	    tfs_segment_find(s, s->entries, TFS_FIND_OFFSET,
			     s->base + f->raw_off + f->raw_len - 1, &last,
			     NULL))
		first = last = UINT64_MAX;
	*d = (struct tfs_damage){
		.kind = TFS_DAMAGE_FRAME,
		.segment = s->base,
		.offset = s->base + f->raw_off,
		.length = f->raw_len,
		.entry = first,
		.file_pos = f->pos,
		.batches = first != UINT64_MAX && last != UINT64_MAX &&
					   last >= first
				   ? (uint32_t)(last - first + 1)
				   : 1,
		.zst = true,
		.frame = i,
		.why = "does not decompress",
	};
}

int tfs_segment_frame(struct tfs_segment *s, uint32_t i, struct tfs_zbuf **b,
		      struct tfs_damage *d)
{
	struct frame_check fc = { s, d };
	int rc;

	d->kind = TFS_DAMAGE_NONE;
	rc = tfs_zframe_get(s->uid, s->log_fd, &s->zi, i, check_frame, &fc, b);
	if (rc == TFS_ECORRUPT)
		frame_damage(s, i, d);
	return rc;
}

/* --- the scrubber's pass ------------------------------------------------------ */

typedef void (*found_fn)(void *arg, const struct tfs_damage *d);

/*
 * Collects the good entries from entry i (whose batch should start at
 * lo) on, up to about chunk bytes of batches or until `to`; reports every
 * damaged entry (each of a damaged stretch) and steps over it.  *next and
 * *next_off: where to go on.
 */
static int collect_scrub(struct seg_walk *w, uint64_t i, uint64_t lo,
			 uint64_t to, size_t chunk, struct entries *es,
			 uint64_t *next, uint64_t *next_off, found_fn found,
			 void *arg)
{
	struct tfs_segment *s = w->s;
	struct tfs_index_entry e, prev = { 0 };
	bool have_prev = false, first_of_seg = i == 0;
	size_t bytes = 0;

	while (i < w->n && lo < to && bytes < chunk) {
		const char *why = NULL;
		int rc = seg_walk_entry(w, i, &e);

		if (rc == TFS_ECORRUPT)
			why = "fails its CRC-32C check";
		else if (rc)
			return rc;
		else if (e.offset != lo ||
			 (have_prev && e.record != prev.record + prev.count) ||
			 (first_of_seg && !seg_entry_follows(s, NULL, &e)))
			why = "does not follow the entry before it";
		else if (e.offset + e.length > to)
			why = "points past the end of its segment or frame";
		first_of_seg = false;
		if (why) {
			struct tfs_damage d;
			uint64_t good = entry_damage(w, i, lo, why, &d);

			for (uint64_t j = i; j < good; j++) {
				d.entry = j;
				d.file_pos = (uint64_t)segment_entry_pos(s, j);
				found(arg, &d);
			}
			if (d.length == 0 || good >= w->n) {
				lo = to;
				i = w->n;
				break;
			}
			lo = d.offset + d.length;
			i = good;
			have_prev = false;
			continue;
		}
		entries_push(es, &e, i);
		bytes += e.length;
		lo = e.offset + e.length;
		prev = e;
		have_prev = true;
		i++;
	}
	*next = i;
	*next_off = lo;
	return 0;
}

/* Checks the batches es over bytes data[0..got) starting at start. */
static void verify_all(struct tfs_segment *s, const struct entries *es,
		       uint64_t start, const char *data, size_t got,
		       found_fn found, void *arg)
{
	for (size_t j = 0; j < es->n; j++) {
		const struct tfs_index_entry *x = &es->v[j];
		size_t at = (size_t)(x->offset - start);
		struct tfs_damage d;
		const char *why = NULL;

		if (at + x->length > got)
			why = "is missing from the file";
		else if (tfs_batch_verify(x, data + at))
			why = "does not match its index entry (CRC-32C or "
			      "record count)";
		if (!why)
			continue;
		seg_batch_damage(s, x, es->at[j], why, &d);
		found(arg, &d);
	}
}

static int scrub_raw(struct tfs_segment *s, uint64_t n, uint64_t size,
		     struct tfs_scrub_cursor *c, size_t chunk, size_t *read,
		     found_fn found, void *arg)
{
	struct entries es = { 0 };
	struct seg_walk w;
	uint64_t next, next_off;
	int rc;

	seg_walk_init(&w, s, n);
	rc = collect_scrub(&w, c->entry, s->base + c->pos, s->base + size,
			   chunk, &es, &next, &next_off, found, arg);
	if (rc == 0 && es.n) {
		uint64_t start = es.v[0].offset;
		uint64_t end = es.v[es.n - 1].offset + es.v[es.n - 1].length;
		char *buf = tfs_malloc((size_t)(end - start));
		ssize_t r = tfs_sys_pread(s->log_fd, buf, (size_t)(end - start),
					  (off_t)(start - s->base));

		if (r < 0) {
			rc = (int)r;
		} else {
			verify_all(s, &es, start, buf, (size_t)r, found, arg);
			*read = (size_t)r;
		}
		free(buf);
	}
	entries_release(&es);
	if (rc)
		return rc;
	c->entry = next;
	c->pos = next >= n ? size : next_off - s->base;
	return 0;
}

static int scrub_frame(struct tfs_segment *s, uint64_t n, uint64_t size,
		       struct tfs_scrub_cursor *c, size_t *read,
		       found_fn found, void *arg)
{
	uint32_t fi = tfs_zindex_find(&s->zi, c->pos);
	const struct tfs_zframe *f = &s->zi.f[fi];
	uint64_t from = s->base + f->raw_off, to = from + f->raw_len;
	char *buf = tfs_malloc(f->raw_len);
	struct entries es = { 0 };
	struct seg_walk w;
	uint64_t next = c->entry, next_off;
	int rc = tfs_zframe_read(s->log_fd, &s->zi, fi, buf);

	*read = f->comp_len;
	seg_walk_init(&w, s, n);
	if (rc == TFS_ECORRUPT) {
		struct tfs_damage d;

		frame_damage(s, fi, &d);
		found(arg, &d);
		/* Go on with the entry that starts the next frame. */
		rc = 0;
		next = n;
		if (to - s->base < size &&
		    tfs_segment_find(s, n, TFS_FIND_OFFSET, to, &next, NULL))
			next = n;
	} else if (rc == 0) {
		rc = collect_scrub(&w, c->entry, from, to, SIZE_MAX, &es,
				   &next, &next_off, found, arg);
		if (rc == 0)
			verify_all(s, &es, from, buf, f->raw_len, found,
				   arg);
	}
	entries_release(&es);
	free(buf);
	if (rc)
		return rc;
	c->entry = next;
	c->pos = to - s->base;
	return 0;
}

int tfs_segment_scrub(struct tfs_segment *s, uint64_t n, uint64_t size,
		      struct tfs_scrub_cursor *c, size_t chunk, size_t *read,
		      found_fn found, void *arg)
{
	*read = 0;
	if (c->pos >= size || c->entry >= n) {
		c->pos = size;
		return 0;
	}
	if (s->kind == TFS_SEG_ZSTD)
		return scrub_frame(s, n, size, c, read, found, arg);
	return scrub_raw(s, n, size, c, chunk, read, found, arg);
}

/* --- repair ------------------------------------------------------------------ */

/* Whether a and b describe the same batch (a version 1 entry has no
 * producer fields). */
static bool same_entry(const struct tfs_segment *s,
		       const struct tfs_index_entry *a,
		       const struct tfs_index_entry *b)
{
	bool v1 = s->esize == TFS_INDEX_ENTRY_SIZE_V1;

	return a->offset == b->offset && a->record == b->record &&
	       a->count == b->count && a->length == b->length &&
	       a->epoch == b->epoch && a->flags == b->flags &&
	       a->timestamp == b->timestamp && a->crc == b->crc &&
	       (v1 || (a->producer == b->producer &&
		       a->sequence == b->sequence));
}

int tfs_segment_repair(struct tfs_segment *s, uint64_t i,
		       const struct tfs_index_entry *e, const void *bytes,
		       struct tfs_damage *d)
{
	struct tfs_index_entry now;
	char *back;
	ssize_t r;
	int rc;

	d->kind = TFS_DAMAGE_NONE;
	if (s->kind != TFS_SEG_RAW)
		return -EOPNOTSUPP;
	bool write_entry = tfs_segment_entry(s, i, &now) != 0 ||
			   !same_entry(s, &now, e);

	/* Only version 2 entries are ever written (segment.c). */
	if (write_entry && s->esize != TFS_INDEX_ENTRY_SIZE)
		return -EOPNOTSUPP;
	if (bytes) {
		r = tfs_sys_pwrite(s->log_fd, bytes, e->length,
				   (off_t)(e->offset - s->base));
		rc = r < 0 ? (int)r : tfs_sys_fdatasync(s->log_fd);
		if (rc)
			return rc;
	}
	if (write_entry) {
		unsigned char buf[TFS_INDEX_ENTRY_SIZE];

		tfs_index_encode(e, buf);
		r = tfs_sys_pwrite(s->idx_fd, buf, sizeof(buf),
				   segment_entry_pos(s, i));
		rc = r < 0 ? (int)r : tfs_sys_fdatasync(s->idx_fd);
		if (rc)
			return rc;
	}
	/* What the next reader will read. */
	rc = tfs_segment_entry(s, i, &now);
	if (rc == TFS_ECORRUPT || (rc == 0 && !same_entry(s, &now, e))) {
		struct seg_walk w;

		seg_walk_init(&w, s, i + 1);
		entry_damage(&w, i, e->offset, "is still damaged after repair",
			     d);
		return TFS_ECORRUPT;
	}
	if (rc)
		return rc;
	back = tfs_malloc(e->length);
	r = tfs_sys_pread(s->log_fd, back, e->length,
			  (off_t)(e->offset - s->base));
	if (r < 0) {
		rc = (int)r;
	} else if ((size_t)r != e->length || tfs_batch_verify(e, back)) {
		seg_batch_damage(s, e, i, "is still damaged after repair", d);
		rc = TFS_ECORRUPT;
	}
	free(back);
	return rc;
}
