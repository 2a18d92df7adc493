/*
 * segment.c - segment files: the log, the batch index, and recovery.
 *
 * A partition is a sequence of segments, each named by the byte offset of
 * its first byte (20 decimal digits, like Kafka's):
 *
 *   00000000000000000000.log     the partition's bytes, nothing else
 *   00000000000000000000.index   one entry per batch
 *
 * The .log holds exactly the bytes readers see, back to back, so a read is
 * a pread at (offset - base) and the data can be grepped on disk without
 * the daemon.
 *
 * INDEX FORMAT (all integers little-endian)
 *
 * Header, 48 bytes:
 *    0  8  magic "TFSINDEX"
 *    8  2  version, 2 (1 is still read)
 *   10  2  entry size, 64 (48 in version 1)
 *   12  4  flags, 0
 *   16  8  base: byte offset of the segment's first byte
 *   24  8  base record: record offset of the segment's first record
 *   32  8  created: ms since the Unix epoch
 *   40  4  reserved, 0
 *   44  4  CRC-32C of bytes 0..43
 *
 * Entry i at 48 + 64 * i, one per batch, in offset order (version 2):
 *    0  8  offset: byte offset of the batch's first byte (absolute)
 *    8  8  record: record offset of the batch's first record
 *   16  4  count: records in the batch (>= 1)
 *   20  4  length: bytes in the batch (>= 1)
 *   24  4  epoch: leader epoch that sequenced the batch
 *   28  4  flags, 0
 *   32  8  timestamp: commit time, ms since the Unix epoch, non-decreasing
 *   40  8  producer id (0: none)
 *   48  4  producer sequence number
 *   52  4  reserved, 0
 *   56  4  CRC-32C of the batch's bytes in the .log
 *   60  4  CRC-32C of entry bytes 0..59
 *
 * Version 1 entries (48 + 48 * i) have no producer fields: bytes 0..39 as
 * above, then the batch CRC at 40 and the entry CRC (of 0..39... 0..43
 * minus itself: bytes 0..43) at 44.  A version 1 segment is read as it
 * is; appends never go to one (the partition rolls to a version 2
 * segment), so one index never mixes versions.  The producer fields
 * replicate with the batch, so a new leader can rebuild which producer
 * sequences its log holds (duplicate detection survives a failover).
 *
 * A batch's bytes are whole records: they end with '\n' and hold exactly
 * `count` newlines.  Batches are contiguous: entry i+1 starts where entry i
 * ends, and the first entry starts at the base.
 *
 * WRITE ORDER AND RECOVERY
 *
 * An append writes the batch's bytes to the .log, then its entry into the
 * .index.  The active segment's index is preallocated (zeros written with
 * pwrite, so its blocks exist) and mapped: the entry is a store into the
 * mapping, not a second system call per append, and it cannot fail once
 * the space is reserved, which happens before the log write.  A killed
 * daemon loses nothing (the mapping's pages are the page cache); fdatasync
 * of the index writes them back.  A failure cuts the log back.  Nothing is
 * fsynced here: the partition's sync job fsyncs both files, and a
 * checkpoint records the offset up to which everything is on disk.
 *
 * The preallocated tail of an index is all zeros, which no entry can be
 * (its CRC covers the rest); recovery and open take a zero tail as unused
 * space and trim it, and sealing a segment trims it at once.
 *
 * After a crash the partition opens every segment.  Entries at or after
 * the checkpoint are checked in order: the entry's own CRC, continuity of
 * offsets and record numbers, non-decreasing timestamps, the bytes being
 * present, their CRC and their newlines.  At the first failure the tail is
 * cut from both files: a partial entry, an entry without its bytes, bytes
 * without an entry, a flipped bit.  Entries before the checkpoint are
 * trusted (they were fsynced), so recovery reads only what was written
 * since the last checkpoint, whatever the size of the log.
 *
 * COMPRESSED SEGMENTS
 *
 * A sealed segment below the checkpoint may be rewritten as
 * <base>.zst (format in compress.c) next to its unchanged .index: written
 * as <base>.zst.tmp, fsynced, renamed, directory fsynced, and only then is
 * the .log unlinked.  A crash leaves the .log, or both (the .zst is used
 * and the .log removed at the next open), or the .zst alone; a leftover
 * .tmp is removed, never read.  A .zst whose footer or table fails its
 * checks is ignored in favour of the .log when that still exists.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "segment_int.h"
#include "sysio.h"
#include "util.h"
#include "banned.h"

#define INDEX_MAGIC "TFSINDEX"

void tfs_index_encode(const struct tfs_index_entry *e,
		      unsigned char out[TFS_INDEX_ENTRY_SIZE])
{
	tfs_put_le64(out, e->offset);
	tfs_put_le64(out + 8, e->record);
	tfs_put_le32(out + 16, e->count);
	tfs_put_le32(out + 20, e->length);
	tfs_put_le32(out + 24, e->epoch);
	tfs_put_le32(out + 28, e->flags);
	tfs_put_le64(out + 32, (uint64_t)e->timestamp);
	tfs_put_le64(out + 40, e->producer);
	tfs_put_le32(out + 48, e->sequence);
	tfs_put_le32(out + 52, 0);
	tfs_put_le32(out + 56, e->crc);
	tfs_put_le32(out + 60, tfs_crc32c(0, out, 60));
}

int tfs_index_decode_any(const unsigned char *in, unsigned entry_size,
			 struct tfs_index_entry *e)
{
	unsigned crc_at = entry_size - 4;

	if ((entry_size != TFS_INDEX_ENTRY_SIZE &&
	     entry_size != TFS_INDEX_ENTRY_SIZE_V1) ||
	    tfs_get_le32(in + crc_at) != tfs_crc32c(0, in, crc_at))
		return TFS_ECORRUPT;
	e->offset = tfs_get_le64(in);
	e->record = tfs_get_le64(in + 8);
	e->count = tfs_get_le32(in + 16);
	e->length = tfs_get_le32(in + 20);
	e->epoch = tfs_get_le32(in + 24);
	e->flags = tfs_get_le32(in + 28);
	e->timestamp = (int64_t)tfs_get_le64(in + 32);
	if (entry_size == TFS_INDEX_ENTRY_SIZE_V1) {
		e->producer = 0;
		e->sequence = 0;
	} else {
		e->producer = tfs_get_le64(in + 40);
		e->sequence = tfs_get_le32(in + 48);
	}
	e->crc = tfs_get_le32(in + crc_at - 4);
	if (e->count == 0 || e->length == 0 || e->count > e->length ||
	    e->offset + e->length < e->offset)
		return TFS_ECORRUPT;
	return 0;
}

int tfs_index_decode(const unsigned char in[TFS_INDEX_ENTRY_SIZE],
		     struct tfs_index_entry *e)
{
	return tfs_index_decode_any(in, TFS_INDEX_ENTRY_SIZE, e);
}

void tfs_index_header_encode(const struct tfs_index_header *h,
			     unsigned char out[TFS_INDEX_HEADER_SIZE])
{
	memset(out, 0, TFS_INDEX_HEADER_SIZE);
	memcpy(out, INDEX_MAGIC, 8);
	tfs_put_le16(out + 8, TFS_INDEX_VERSION);
	tfs_put_le16(out + 10, TFS_INDEX_ENTRY_SIZE);
	tfs_put_le64(out + 16, h->base);
	tfs_put_le64(out + 24, h->base_record);
	tfs_put_le64(out + 32, (uint64_t)h->created);
	tfs_put_le32(out + 44, tfs_crc32c(0, out, 44));
}

int tfs_index_header_decode(const unsigned char in[TFS_INDEX_HEADER_SIZE],
			    struct tfs_index_header *h)
{
	unsigned version = tfs_get_le16(in + 8), esize = tfs_get_le16(in + 10);

	if (memcmp(in, INDEX_MAGIC, 8) ||
	    !((version == 2 && esize == TFS_INDEX_ENTRY_SIZE) ||
	      (version == 1 && esize == TFS_INDEX_ENTRY_SIZE_V1)) ||
	    tfs_get_le32(in + 44) != tfs_crc32c(0, in, 44))
		return TFS_ECORRUPT;
	h->version = version;
	h->entry_size = esize;
	h->base = tfs_get_le64(in + 16);
	h->base_record = tfs_get_le64(in + 24);
	h->created = (int64_t)tfs_get_le64(in + 32);
	return 0;
}

int tfs_batch_verify(const struct tfs_index_entry *e, const void *p)
{
	const unsigned char *b = p;

	if (b[e->length - 1] != '\n')
		return TFS_ECORRUPT;
	if (tfs_crc32c(0, p, e->length) != e->crc)
		return TFS_ECORRUPT;
	if (tfs_count_newlines(p, e->length) != e->count)
		return TFS_ECORRUPT;
	return 0;
}

void tfs_segment_name(uint64_t base, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%020llu.%s", (unsigned long long)base, ext);
}

static struct tfs_segment *segment_alloc(int dirfd, uint64_t base)
{
	struct tfs_segment *s = tfs_calloc(1, sizeof(*s));

	tfs_ref_init(&s->refs, 1);
	s->base = base;
	s->uid = tfs_zcache_new_uid();
	s->dirfd = dirfd;
	s->log_fd = s->idx_fd = -1;
	s->idx_size = TFS_INDEX_HEADER_SIZE;
	s->version = TFS_INDEX_VERSION;
	s->esize = TFS_INDEX_ENTRY_SIZE;
	return s;
}

static bool file_exists(struct tfs_segment *s, const char *ext)
{
	char name[64];

	tfs_segment_name(s->base, ext, name, sizeof(name));
	return faccessat(s->dirfd, name, F_OK, 0) == 0;
}

static int open_index(struct tfs_segment *s, int flags)
{
	char name[64];

	tfs_segment_name(s->base, "index", name, sizeof(name));
	s->idx_fd = tfs_sys_openat(s->dirfd, name, O_RDWR | flags, 0644);
	return s->idx_fd < 0 ? s->idx_fd : 0;
}

static int open_files(struct tfs_segment *s, int flags)
{
	char name[64];

	tfs_segment_name(s->base, "log", name, sizeof(name));
	s->log_fd = tfs_sys_openat(s->dirfd, name, O_RDWR | flags, 0644);
	if (s->log_fd < 0)
		return s->log_fd;
	return open_index(s, flags);
}


static int write_header(struct tfs_segment *s)
{
	struct tfs_index_header h = {
		.base = s->base,
		.base_record = s->base_record,
		.created = s->created,
	};
	unsigned char buf[TFS_INDEX_HEADER_SIZE];

	tfs_index_header_encode(&h, buf);
	ssize_t w = tfs_sys_pwrite(s->idx_fd, buf, sizeof(buf), 0);
	return w < 0 ? (int)w : 0;
}

int tfs_segment_create(int dirfd, uint64_t base, uint64_t base_record,
		       struct tfs_segment **out)
{
	struct tfs_segment *s = segment_alloc(dirfd, base);
	int rc;

	s->base_record = base_record;
	s->created = tfs_now_ms();
	rc = open_files(s, O_CREAT | O_TRUNC);
	if (rc < 0)
		goto out_free;
	rc = tfs_sys_ftruncate(s->idx_fd, 0);
	if (rc < 0)
		goto out_free;
	rc = write_header(s);
	if (rc < 0)
		goto out_free;
	*out = s;
	return 0;

out_free:
	tfs_segment_unlink(s);
	tfs_segment_unref(s);
	return rc;
}

int tfs_segment_entry(struct tfs_segment *s, uint64_t i,
		      struct tfs_index_entry *e)
{
	unsigned char buf[TFS_INDEX_ENTRY_SIZE];
	ssize_t r = tfs_sys_pread(s->idx_fd, buf, s->esize, segment_entry_pos(s, i));

	if (r < 0)
		return (int)r;
	if (r != (ssize_t)s->esize)
		return TFS_ECORRUPT;
	return tfs_index_decode_any(buf, s->esize, e);
}

static void idx_unmap(struct tfs_segment *s)
{
	if (s->idx_map)
		munmap(s->idx_map, s->idx_mapped);
	s->idx_map = NULL;
	s->idx_mapped = 0;
}

/* Cuts both files to n entries and `size` log bytes. */
static int cut(struct tfs_segment *s, uint64_t n, uint64_t size)
{
	int rc;

	idx_unmap(s);
	rc = tfs_sys_ftruncate(s->idx_fd, segment_entry_pos(s, n));
	if (rc < 0)
		return rc;
	s->idx_size = (uint64_t)segment_entry_pos(s, n);
	return tfs_sys_ftruncate(s->log_fd, (off_t)size);
}

#define IDX_GROW_MIN 1024	/* entries: 48 KiB for a quiet partition */
#define IDX_GROW_MAX 16384	/* entries: 768 KiB at most per step */

/* Writes zeros to [from, to) of fd, so the blocks exist. */
static int zero_fill(int fd, uint64_t from, uint64_t to)
{
	static const unsigned char zeros[64 * 1024];

	while (from < to) {
		size_t n = (size_t)TFS_MIN((uint64_t)sizeof(zeros), to - from);
		ssize_t w = tfs_sys_pwrite(fd, zeros, n, (off_t)from);

		if (w < 0)
			return (int)w;
		from += n;
	}
	return 0;
}

/*
 * Makes room in the mapped index for `entries` entries: grows the file by
 * doubling steps (zeros written, not a hole: a store into the mapping must
 * never need a block) and maps it.  -ENOSPC and friends come here, before
 * anything of the append is written.
 */
static int idx_reserve(struct tfs_segment *s, uint64_t entries)
{
	uint64_t need = (uint64_t)segment_entry_pos(s, entries), cap = s->idx_size;
	int rc;

	if (need <= s->idx_mapped)
		return 0;
	if (need > cap) {
		uint64_t have = (cap - TFS_INDEX_HEADER_SIZE) / s->esize;
		uint64_t step = TFS_MIN(TFS_MAX(have, IDX_GROW_MIN),
					IDX_GROW_MAX);

		cap = (uint64_t)segment_entry_pos(s, TFS_MAX(have + step, entries));
		rc = zero_fill(s->idx_fd, s->idx_size, cap);
		if (rc) {
			tfs_sys_ftruncate(s->idx_fd, (off_t)s->idx_size);
			return rc;
		}
		s->idx_size = cap;
	}
	void *m = s->idx_map ? mremap(s->idx_map, s->idx_mapped, cap,
				      MREMAP_MAYMOVE)
			     : mmap(NULL, cap, PROT_READ | PROT_WRITE,
				    MAP_SHARED, s->idx_fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	s->idx_map = m;
	s->idx_mapped = cap;
	return 0;
}

int tfs_segment_trim(struct tfs_segment *s)
{
	uint64_t exact = (uint64_t)segment_entry_pos(s, s->entries);
	int rc = 0;

	idx_unmap(s);
	if (s->kind == TFS_SEG_RAW && s->idx_size > exact) {
		rc = tfs_sys_ftruncate(s->idx_fd, (off_t)exact);
		if (rc == 0)
			s->idx_size = exact;
	}
	return rc;
}

static bool entry_is_zero(struct tfs_segment *s, uint64_t i)
{
	unsigned char buf[TFS_INDEX_ENTRY_SIZE];

	if (tfs_sys_pread(s->idx_fd, buf, s->esize, segment_entry_pos(s, i)) !=
	    (ssize_t)s->esize)
		return false;
	for (size_t j = 0; j < s->esize; j++)
		if (buf[j])
			return false;
	return true;
}

/* Entries before the preallocated (all-zero) tail of an n-entry index. */
static uint64_t used_entries(struct tfs_segment *s, uint64_t n)
{
	uint64_t lo = 0, hi = n;

	if (n == 0 || !entry_is_zero(s, n - 1))
		return n;
	/* Zeros are only ever a tail: find where it starts. */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (entry_is_zero(s, mid))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* State carried through the checks of one segment's entries. */
struct scan {
	uint64_t next_off;	/* where the next batch must start */
	uint64_t next_rec;	/* its first record number, if known */
	bool rec_known;
	int64_t last_ts;
	uint64_t log_size;	/* bytes in the .log file */
	struct tfs_buf bytes;	/* the batch being checked */
};

/* Checks entry e (already decoded) and its bytes against the scan state. */
static const char *check_batch(struct tfs_segment *s, struct scan *sc,
			       const struct tfs_index_entry *e)
{
	if (e->offset != sc->next_off)
		return "batch offset not contiguous";
	if (sc->rec_known && e->record != sc->next_rec)
		return "record offset not contiguous";
	if (e->timestamp < sc->last_ts)
		return "timestamp goes backwards";
	if (e->offset + e->length - s->base > sc->log_size)
		return "index entry without its bytes";
	sc->bytes.len = 0;
	tfs_buf_grow(&sc->bytes, e->length);
	ssize_t r = tfs_sys_pread(s->log_fd, sc->bytes.data, e->length,
				  (off_t)(e->offset - s->base));
	if (r != (ssize_t)e->length)
		return "short read of batch bytes";
	if (tfs_batch_verify(e, sc->bytes.data))
		return "batch checksum or records do not match";
	return NULL;
}

static void scan_advance(struct scan *sc, const struct tfs_index_entry *e)
{
	sc->next_off = e->offset + e->length;
	sc->next_rec = e->record + e->count;
	sc->rec_known = true;
	sc->last_ts = e->timestamp;
}

/*
 * Finds the first entry to check: the one starting at verify_from, or the
 * one containing it.  Entries before it are trusted.
 */
static int first_to_verify(struct tfs_segment *s, uint64_t n,
			   uint64_t verify_from, uint64_t *k)
{
	if (verify_from == UINT64_MAX) {
		*k = n;
		return 0;
	}
	if (verify_from <= s->base || n == 0) {
		*k = 0;
		return 0;
	}
	struct tfs_index_entry e;
	int rc = tfs_segment_find(s, n, TFS_FIND_OFFSET, verify_from, k, NULL);

	if (rc == 0 && *k == UINT64_MAX)
		*k = 0;
	else if (rc == 0)
		rc = tfs_segment_entry(s, *k, &e);
	/* The recovery point is a batch boundary: the batch that ends there
	 * is trusted, the one that starts there is checked. */
	if (rc == 0 && e.offset + e.length <= verify_from)
		(*k)++;
	return rc == TFS_ECORRUPT ? 0 : rc;
}

/* Loads the state of the trusted entries [0, k): first and last entry. */
static int load_trusted(struct tfs_segment *s, uint64_t k, struct scan *sc)
{
	struct tfs_index_entry first, last;
	int rc;

	sc->next_off = s->base;
	sc->rec_known = false;
	if (k == 0)
		return 0;
	rc = tfs_segment_entry(s, 0, &first);
	if (rc == 0)
		rc = tfs_segment_entry(s, k - 1, &last);
	if (rc)
		return rc;
	if (first.offset != s->base || first.record != s->base_record)
		return TFS_ECORRUPT;
	s->first_ts = first.timestamp;
	s->last_ts = last.timestamp;
	s->last_epoch = last.epoch;
	scan_advance(sc, &last);
	if (sc->next_off - s->base > sc->log_size)
		return TFS_ECORRUPT;
	return 0;
}

/* Checks entries [k, n) and cuts the tail at the first bad one. */
static int verify_tail(struct tfs_segment *s, uint64_t k, uint64_t n,
		       struct scan *sc, struct tfs_recovery *rec)
{
	uint64_t i;
	const char *why = NULL;

	if (!sc->rec_known) {
		sc->next_rec = s->base_record;
		sc->rec_known = true;
	}
	for (i = k; i < n; i++) {
		struct tfs_index_entry e;

		if (tfs_segment_entry(s, i, &e)) {
			why = "index entry checksum";
			break;
		}
		why = check_batch(s, sc, &e);
		if (why)
			break;
		if (i == 0)
			s->first_ts = e.timestamp;
		s->last_ts = e.timestamp;
		s->last_epoch = e.epoch;
		scan_advance(sc, &e);
		rec->batches_checked++;
		rec->bytes_checked += e.length;
	}
	s->entries = i;
	s->size = sc->next_off - s->base;
	if (why) {
		rec->reason = why;
		rec->entries_cut += n - i;
	}
	return 0;
}

static int read_header(struct tfs_segment *s, uint64_t idx_size)
{
	unsigned char buf[TFS_INDEX_HEADER_SIZE];
	struct tfs_index_header h;

	if (idx_size < TFS_INDEX_HEADER_SIZE)
		return TFS_ECORRUPT;
	if (tfs_sys_pread(s->idx_fd, buf, sizeof(buf), 0) != sizeof(buf))
		return TFS_ECORRUPT;
	if (tfs_index_header_decode(buf, &h) || h.base != s->base)
		return TFS_ECORRUPT;
	s->version = h.version;
	s->esize = h.entry_size;
	s->base_record = h.base_record;
	s->created = h.created;
	return 0;
}

/*
 * A segment whose index header is unreadable can only be a roll that
 * crashed before anything in it was fsynced, when it is wholly after the
 * checkpoint.  It restarts empty at the record offset the caller knows.
 */
static int reset_torn_segment(struct tfs_segment *s, uint64_t base_record,
			      uint64_t log_size, struct tfs_recovery *rec)
{
	rec->reason = "index header torn";
	rec->bytes_cut += log_size;
	s->created = tfs_now_ms();
	s->base_record = base_record;
	int rc = tfs_sys_ftruncate(s->idx_fd, 0);
	if (rc == 0)
		rc = tfs_sys_ftruncate(s->log_fd, 0);
	if (rc == 0)
		rc = write_header(s);
	return rc;
}

/*
 * Opens s as a compressed segment if <base>.zst exists.  Returns 1 when
 * there is no usable .zst (open the .log instead), 0 when opened, or an
 * error.  finish: remove a .log the compaction left behind.
 */
static int open_compressed(struct tfs_segment *s, bool finish)
{
	struct scan sc = { .bytes = TFS_BUF_INIT };
	struct stat ist;
	char name[64];
	uint64_t n;
	int fd, rc;

	tfs_segment_name(s->base, "zst", name, sizeof(name));
	fd = tfs_sys_openat(s->dirfd, name, O_RDONLY, 0);
	if (fd == -ENOENT)
		return 1;
	if (fd < 0)
		return fd;
	s->log_fd = fd;
	rc = tfs_zindex_load(fd, &s->zi);
	if (rc == 0)
		rc = open_index(s, 0);
	if (rc == 0 && fstat(s->idx_fd, &ist) < 0)
		rc = -errno;
	if (rc == 0)
		rc = read_header(s, (uint64_t)ist.st_size);
	if (rc == 0) {
		/* Only checkpointed segments are compressed: all trusted. */
		n = ((uint64_t)ist.st_size - TFS_INDEX_HEADER_SIZE) /
		    s->esize;
		sc.log_size = s->zi.raw_size;
		rc = load_trusted(s, n, &sc);
		s->entries = n;
		s->size = sc.next_off - s->base;
		s->records = sc.rec_known ? sc.next_rec - s->base_record : 0;
		if (rc == 0 && s->size != s->zi.raw_size)
			rc = TFS_ECORRUPT;
	}
	if (rc && file_exists(s, "log")) {
		tfs_warn("segment %020llu: damaged %s (%s), using the .log",
			 (unsigned long long)s->base, name, tfs_strerror(rc));
		tfs_sys_close(s->log_fd);
		tfs_sys_close(s->idx_fd);
		s->log_fd = s->idx_fd = -1;
		tfs_zindex_release(&s->zi);
		tfs_sys_unlinkat(s->dirfd, name, 0);
		return 1;
	}
	if (rc)
		return rc;
	s->kind = TFS_SEG_ZSTD;
	s->data_size = s->zi.file_size;
	s->sealed = true;
	if (finish && file_exists(s, "log"))
		tfs_segment_unlink_log(s);
	return 0;
}

static int segment_open(int dirfd, uint64_t base, uint64_t base_record,
			uint64_t verify_from, bool finish,
			struct tfs_segment **out, struct tfs_recovery *rec)
{
	struct tfs_segment *s = segment_alloc(dirfd, base);
	struct scan sc = { .bytes = TFS_BUF_INIT };
	struct stat lst, ist;
	uint64_t n, k;
	int rc;

	memset(rec, 0, sizeof(*rec));
	rc = open_compressed(s, finish);
	if (rc == 0)
		goto out_done;
	if (rc < 0)
		goto out_free;
	rc = open_files(s, 0);
	if (rc < 0)
		goto out_free;
	if (fstat(s->log_fd, &lst) < 0 || fstat(s->idx_fd, &ist) < 0) {
		rc = -errno;
		goto out_free;
	}
	sc.log_size = (uint64_t)lst.st_size;
	rc = read_header(s, (uint64_t)ist.st_size);
	if (rc) {
		if (verify_from > base)
			goto out_free;
		rc = reset_torn_segment(s, base_record, sc.log_size, rec);
		if (rc)
			goto out_free;
		goto out_done;
	}

	s->idx_size = (uint64_t)ist.st_size;
	n = used_entries(s, ((uint64_t)ist.st_size - TFS_INDEX_HEADER_SIZE) /
				   s->esize);
	bool zero_tail = (uint64_t)ist.st_size > (uint64_t)segment_entry_pos(s, n);
	rc = first_to_verify(s, n, verify_from, &k);
	if (rc == 0)
		rc = load_trusted(s, k, &sc);
	if (rc)
		goto out_free;
	if (k < n) {
		rc = verify_tail(s, k, n, &sc, rec);
		if (rc)
			goto out_free;
	} else {
		s->entries = n;
		s->size = sc.next_off - base;
	}
	s->records = sc.rec_known ? sc.next_rec - s->base_record : 0;

	/* Whatever lies past the last good entry in either file goes; a
	 * zero tail is only unused preallocated space. */
	if ((uint64_t)ist.st_size != (uint64_t)segment_entry_pos(s, s->entries) ||
	    sc.log_size != s->size) {
		if (sc.log_size > s->size && !rec->reason)
			rec->reason = "bytes without an index entry";
		if (!rec->reason && !(zero_tail && s->entries == n))
			rec->reason = "partial index entry";
		if (rec->reason)
			rec->bytes_cut += sc.log_size - s->size;
		rc = cut(s, s->entries, s->size);
		if (rc)
			goto out_free;
	}
out_done:
	if (s->kind == TFS_SEG_RAW)
		s->data_size = s->size;
	s->synced_size = s->size;
	s->synced_entries = s->entries;
	tfs_buf_release(&sc.bytes);
	*out = s;
	return 0;

out_free:
	tfs_buf_release(&sc.bytes);
	tfs_segment_unref(s);
	return rc;
}

int tfs_segment_open(int dirfd, uint64_t base, uint64_t base_record,
		     uint64_t verify_from, struct tfs_segment **out,
		     struct tfs_recovery *rec)
{
	return segment_open(dirfd, base, base_record, verify_from, true, out,
			    rec);
}

struct tfs_segment *tfs_segment_ref(struct tfs_segment *s)
{
	tfs_ref_get(&s->refs);
	return s;
}

void tfs_segment_unref(struct tfs_segment *s)
{
	if (!s || !tfs_ref_put(&s->refs))
		return;
	idx_unmap(s);
	tfs_sys_close(s->log_fd);
	tfs_sys_close(s->idx_fd);
	if (s->kind == TFS_SEG_ZSTD) {
		tfs_zcache_forget(s->uid);
		tfs_zindex_release(&s->zi);
	}
	free(s);
}

int tfs_segment_append(struct tfs_segment *s, const struct tfs_index_entry *e,
		       const struct iovec *iov, int iovcnt)
{
	uint64_t pos = e->offset - s->base;
	ssize_t w;
	int rc;

	if (s->broken || s->kind != TFS_SEG_RAW)
		return -EIO;
	if (s->version != TFS_INDEX_VERSION)
		return -EROFS;
	rc = idx_reserve(s, s->entries + 1);
	if (rc)
		return rc;
	w = tfs_sys_pwritev(s->log_fd, iov, iovcnt, (off_t)pos);
	if (w < 0)
		goto out_undo;
	tfs_index_encode(e, s->idx_map + segment_entry_pos(s, s->entries));

	if (s->entries == 0)
		s->first_ts = e->timestamp;
	s->entries++;
	s->size += e->length;
	s->data_size = s->size;
	s->records += e->count;
	s->last_ts = e->timestamp;
	s->last_epoch = e->epoch;
	return 0;

out_undo:
	/* Nothing of a failed batch may stay: cut the log back. */
	rc = tfs_sys_ftruncate(s->log_fd, (off_t)s->size);
	if (rc) {
		tfs_err("segment %020llu: cannot undo a failed append: %s",
			(unsigned long long)s->base, tfs_strerror(rc));
		s->broken = true;
		return -EIO;
	}
	return (int)w;
}

int tfs_segment_truncate(struct tfs_segment *s, uint64_t off)
{
	struct tfs_index_entry e;
	uint64_t pos;
	int rc;

	if (off == s->base + s->size)
		return 0;
	if (off < s->base || off > s->base + s->size)
		return TFS_ENOTBOUNDARY;
	if (s->kind != TFS_SEG_RAW)
		return -EOPNOTSUPP;
	rc = tfs_segment_find(s, s->entries, TFS_FIND_OFFSET, off, &pos, NULL);
	if (rc)
		return rc;
	if (pos == UINT64_MAX)
		return TFS_ENOTBOUNDARY;
	rc = tfs_segment_entry(s, pos, &e);
	if (rc)
		return rc;
	if (e.offset != off)
		return TFS_ENOTBOUNDARY;
	/* Before the files shrink: a reader's check that fails on the bytes
	 * going away is not damage. */
	s->cuts++;
	rc = cut(s, pos, off - s->base);
	if (rc)
		return rc;
	s->entries = pos;
	s->size = off - s->base;
	s->data_size = s->size;
	s->records = e.record - s->base_record;
	s->synced_entries = TFS_MIN(s->synced_entries, s->entries);
	s->synced_size = TFS_MIN(s->synced_size, s->size);
	if (pos == 0) {
		s->first_ts = s->last_ts = 0;
	} else if (tfs_segment_entry(s, pos - 1, &e) == 0) {
		s->last_ts = e.timestamp;
		s->last_epoch = e.epoch;
	}
	return 0;
}

int tfs_segment_sync(struct tfs_segment *s)
{
	int rc = tfs_sys_fdatasync(s->log_fd);

	if (rc == 0)
		rc = tfs_sys_fdatasync(s->idx_fd);
	return rc;
}

static int unlink_ext(struct tfs_segment *s, const char *ext)
{
	char name[64];
	int rc;

	tfs_segment_name(s->base, ext, name, sizeof(name));
	rc = tfs_sys_unlinkat(s->dirfd, name, 0);
	return rc == -ENOENT ? 0 : rc;
}

int tfs_segment_unlink(struct tfs_segment *s)
{
	int rc;

	/* Data first: an index left alone by a crash is removed at start,
	 * a log without its index would not be. */
	s->deleted = true;
	rc = unlink_ext(s, s->kind == TFS_SEG_ZSTD ? "zst" : "log");
	if (rc == 0)
		rc = unlink_ext(s, "index");
	return rc;
}

int tfs_segment_unlink_log(struct tfs_segment *s)
{
	return unlink_ext(s, "log");
}

/* --- the segment files of a directory ----------------------------------- */

/* Parses "<20 digits>.<ext>"; returns 0 with the base, or -1. */
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool name_exists(int dirfd, uint64_t base, const char *ext)
{
	char name[64];

	tfs_segment_name(base, ext, name, sizeof(name));
	return faccessat(dirfd, name, F_OK, 0) == 0;
}

/* Removes one leftover file, saying why in the partition's log. */
static void remove_leftover(int dirfd, const char *owner, const char *name,
			    const char *why)
{
	int rc = tfs_sys_unlinkat(dirfd, name, 0);

	if (rc && rc != -ENOENT)
		tfs_warn("%s: cannot remove %s (%s): %s", owner, name, why,
			 tfs_strerror(rc));
	else if (why)
		tfs_warn("%s: removed %s (%s)", owner, name, why);
}

int tfs_segment_list(int dirfd, const char *owner, uint64_t rp,
		     uint64_t **out, size_t *n)
{
	int fd = dup(dirfd);
	DIR *d;
	struct dirent *de;
	uint64_t *bases = NULL, base;
	size_t cnt = 0, u = 0;

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
			/* An unfinished atomic write or compression. */
			remove_leftover(dirfd, owner, de->d_name, NULL);
		} else if (!parse_segment_name(de->d_name, "log", &base)) {
			if (!name_exists(dirfd, base, "index") && base >= rp) {
				/* A roll that crashed between the two files:
				 * nothing in it was ever fsynced. */
				remove_leftover(dirfd, owner, de->d_name,
						"a log without its index");
				continue;
			}
			bases = tfs_realloc(bases, (cnt + 1) * sizeof(*bases));
			bases[cnt++] = base;
		} else if (!parse_segment_name(de->d_name, "zst", &base)) {
			bases = tfs_realloc(bases, (cnt + 1) * sizeof(*bases));
			bases[cnt++] = base;
		} else if (!parse_segment_name(de->d_name, "index", &base)) {
			if (!name_exists(dirfd, base, "log") &&
			    !name_exists(dirfd, base, "zst"))
				remove_leftover(dirfd, owner, de->d_name,
						"an index without its log");
		}
	}
	closedir(d);
	if (cnt)
		qsort(bases, cnt, sizeof(*bases), cmp_u64);
	/* A segment caught between .log and .zst is listed once. */
	for (size_t i = 0; i < cnt; i++)
		if (u == 0 || bases[u - 1] != bases[i])
			bases[u++] = bases[i];
	*out = bases;
	*n = u;
	return 0;
}

int tfs_segment_remove(int dirfd, uint64_t base)
{
	static const char *const exts[] = { "log", "zst", "index" };
	int rc = 0;

	/* Data first, as tfs_segment_unlink does. */
	for (size_t i = 0; i < TFS_ARRAY_SIZE(exts); i++) {
		char name[64];
		int r;

		tfs_segment_name(base, exts[i], name, sizeof(name));
		r = tfs_sys_unlinkat(dirfd, name, 0);
		if (r && r != -ENOENT && !rc)
			rc = r;
	}
	return rc;
}

int tfs_segment_pread(struct tfs_segment *s, void *buf, size_t len,
		      uint64_t pos)
{
	char *p = buf;

	if (s->kind == TFS_SEG_RAW) {
		ssize_t r = tfs_sys_pread(s->log_fd, buf, len, (off_t)pos);

		if (r < 0)
			return (int)r;
		return r == (ssize_t)len ? 0 : TFS_ECORRUPT;
	}
	while (len > 0) {
		uint32_t i = tfs_zindex_find(&s->zi, pos);
		const struct tfs_zframe *f = &s->zi.f[i];
		struct tfs_damage d;
		struct tfs_zbuf *b;
		/* Through the checks all the same: a frame enters the cache
		 * only checked. */
		int rc = tfs_segment_frame(s, i, &b, &d);

		if (rc)
			return rc;
		size_t in = (size_t)(pos - f->raw_off);
		size_t n = TFS_MIN(len, f->raw_len - in);
		if (in + n > b->good) {
			tfs_zbuf_unref(b);
			return TFS_ECORRUPT;
		}
		memcpy(p, b->data + in, n);
		tfs_zbuf_unref(b);
		p += n;
		pos += n;
		len -= n;
	}
	return 0;
}

int tfs_segment_entries(struct tfs_segment *s, uint64_t i, size_t n,
			struct tfs_index_entry *v)
{
	size_t bytes = n * s->esize;
	unsigned char *buf = tfs_malloc(bytes);
	ssize_t r = tfs_sys_pread(s->idx_fd, buf, bytes, segment_entry_pos(s, i));
	int rc = r == (ssize_t)bytes ? 0 : r < 0 ? (int)r : TFS_ECORRUPT;

	for (size_t j = 0; j < n && rc == 0; j++)
		rc = tfs_index_decode_any(buf + j * s->esize, s->esize, &v[j]);
	free(buf);
	return rc;
}

/* Compresses [from, to) of s (batch boundaries) as one frame, checking
 * every batch on the way: corruption is never baked in. */
static int add_frame(struct tfs_segment *s, struct tfs_zwriter *w,
		     struct tfs_buf *buf, uint64_t from, uint64_t to,
		     const struct tfs_index_entry *e, size_t ne,
		     uint64_t first, struct tfs_damage *d)
{
	size_t len = (size_t)(to - from);
	ssize_t r;

	tfs_buf_reset(buf);
	tfs_buf_grow(buf, len);
	r = tfs_sys_pread(s->log_fd, buf->data, len, (off_t)from);
	if (r < 0)
		return (int)r;
	for (size_t i = 0; i < ne; i++) {
		size_t at = (size_t)(e[i].offset - s->base - from);
		const char *why = NULL;

		if (at + e[i].length > (size_t)r)
			why = "is missing from the file";
		else if (tfs_batch_verify(&e[i], buf->data + at))
			why = "does not match its index entry (CRC-32C or "
			      "record count)";
		if (why) {
			seg_batch_damage(s, &e[i], first + i, why, d);
			return TFS_ECORRUPT;
		}
	}
	return tfs_zwriter_add(w, buf->data, len);
}

/* Streams the batches of s into frames of about frame_bytes. */
static int write_frames(struct tfs_segment *s, struct tfs_zwriter *w,
			size_t frame_bytes, struct tfs_damage *d)
{
	struct seg_walk *wk = tfs_malloc(sizeof(*wk));	/* 16 KiB */
	struct tfs_index_entry *pend = NULL, e, prev;
	size_t npend = 0, cap = 0;
	struct tfs_buf buf = TFS_BUF_INIT;
	uint64_t start = 0;	/* segment position of the frame */
	uint64_t first = 0;	/* index entry of its first batch */
	int rc = 0;

	seg_walk_init(wk, s, s->entries);
	for (uint64_t i = 0; i < s->entries && rc == 0; i++) {
		rc = seg_walk_entry(wk, i, &e);
		if (rc == 0 && !seg_entry_follows(s, i ? &prev : NULL, &e))
			rc = TFS_ECORRUPT;
		if (rc == TFS_ECORRUPT) {
			seg_entry_damage(wk, i,
					 i ? prev.offset + prev.length
					   : s->base,
					 "fails its CRC-32C check or does not "
					 "follow the entry before it",
					 d);
			break;
		}
		if (rc)
			break;
		prev = e;
		uint64_t end = e.offset + e.length - s->base;

		if (npend == cap) {
			cap = cap ? cap * 2 : 64;
			pend = tfs_realloc(pend, cap * sizeof(*pend));
		}
		pend[npend++] = e;
		if (end - start < frame_bytes)
			continue;
		rc = add_frame(s, w, &buf, start, end, pend, npend, first, d);
		start = end;
		first = i + 1;
		npend = 0;
	}
	if (rc == 0 && npend)
		rc = add_frame(s, w, &buf, start, s->size, pend, npend, first,
			       d);
	free(wk);
	free(pend);
	tfs_buf_release(&buf);
	return rc;
}

int tfs_segment_compress(struct tfs_segment *s, int level, size_t frame_bytes,
			 struct tfs_segment **out, struct tfs_damage *d)
{
	char tmp[64], name[64];
	struct tfs_zwriter *w;
	struct tfs_recovery rec;
	uint64_t size;
	int rc;

	if (s->kind != TFS_SEG_RAW || s->entries == 0)
		return -EINVAL;
	tfs_segment_name(s->base, "zst.tmp", tmp, sizeof(tmp));
	tfs_segment_name(s->base, "zst", name, sizeof(name));
	rc = tfs_zwriter_open(s->dirfd, tmp, level, &w);
	if (rc)
		return rc;
	d->kind = TFS_DAMAGE_NONE;
	rc = write_frames(s, w, frame_bytes, d);
	if (rc) {
		tfs_zwriter_abort(w);
		return rc;
	}
	rc = tfs_zwriter_finish(w, &size);
	if (rc == 0)
		rc = tfs_sys_renameat(s->dirfd, tmp, s->dirfd, name);
	if (rc == 0)
		rc = tfs_sys_fsync(s->dirfd);
	if (rc == 0)
		rc = segment_open(s->dirfd, s->base, s->base_record,
				  UINT64_MAX, false, out, &rec);
	if (rc) {
		tfs_sys_unlinkat(s->dirfd, tmp, 0);
		tfs_sys_unlinkat(s->dirfd, name, 0);
		return rc;
	}
	return 0;
}
