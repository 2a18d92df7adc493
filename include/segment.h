/*
 * segment.h - one segment of a partition: a `.log` file holding exactly
 * the partition's bytes from the segment's base offset on, and a `.index`
 * file with one entry per batch.  The byte-level formats are described in
 * src/segment.c and docs/FORMAT.md.
 *
 * Locking: a segment belongs to one partition.  Fields marked (P) are
 * protected by the partition's lock; the append, truncate and entry-reading
 * functions are called with it held, except where a comment says a caller
 * may use a snapshot without the lock.  refs is atomic; the other fields
 * are set once when the segment is created or opened.
 */
#ifndef TFS_SEGMENT_H
#define TFS_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "compress.h"

#define TFS_INDEX_VERSION 2		/* of the indexes written */
#define TFS_INDEX_HEADER_SIZE 48
#define TFS_INDEX_ENTRY_SIZE 64		/* version 2, written today */
#define TFS_INDEX_ENTRY_SIZE_V1 48	/* version 1, still read */
#define TFS_SEGMENT_NAME_LEN 20		/* digits of the base offset */

/* One batch: records written together, appended all-or-nothing. */
struct tfs_index_entry {
	uint64_t offset;	/* byte offset of the batch's first byte */
	uint64_t record;	/* record offset of the batch's first record */
	uint32_t count;		/* records in the batch, >= 1 */
	uint32_t length;	/* bytes in the batch, >= 1 */
	uint32_t epoch;		/* leader epoch of the node that sequenced it */
	uint32_t flags;		/* reserved, 0 */
	int64_t timestamp;	/* commit time, ms since the Unix epoch */
	/* The producer that sent the batch and its sequence number there
	 * (Kafka's idempotent producer): 0, 0 when none did (a local
	 * write on a single node); version 1 entries read as 0, 0. */
	uint64_t producer;
	uint32_t sequence;
	uint32_t crc;		/* CRC-32C of the batch's bytes */
};

/* Encodes e as a version 2 entry (its own CRC is computed here). */
void tfs_index_encode(const struct tfs_index_entry *e,
		      unsigned char out[TFS_INDEX_ENTRY_SIZE]);
/* Decodes and checks a version 2 entry; 0 or TFS_ECORRUPT. */
int tfs_index_decode(const unsigned char in[TFS_INDEX_ENTRY_SIZE],
		     struct tfs_index_entry *e);
/* Decodes an entry of either version (by its size); 0 or TFS_ECORRUPT. */
int tfs_index_decode_any(const unsigned char *in, unsigned entry_size,
			 struct tfs_index_entry *e);
struct tfs_index_header {
	uint64_t base;		/* byte offset of the segment's first byte */
	uint64_t base_record;	/* record offset of its first record */
	int64_t created;	/* creation time, ms since the Unix epoch */
	unsigned version;	/* decoded: 1 or 2 (encode writes 2) */
	unsigned entry_size;	/* decoded: 48 or 64 */
};
void tfs_index_header_encode(const struct tfs_index_header *h,
			     unsigned char out[TFS_INDEX_HEADER_SIZE]);
/* Checks magic, version, entry size and CRC; 0 or TFS_ECORRUPT. */
int tfs_index_header_decode(const unsigned char in[TFS_INDEX_HEADER_SIZE],
			    struct tfs_index_header *h);

/*
 * Checks that bytes p[0..e->length) are what entry e describes: its CRC,
 * exactly e->count newlines and a newline as the last byte.
 */
int tfs_batch_verify(const struct tfs_index_entry *e, const void *p);

/*
 * DAMAGE AT REST.  Bytes that passed their checks when written can rot on
 * the disk (or be overwritten by a stray tool).  Every path that hands
 * bytes out checks them first: each batch against the CRC-32C of its
 * index entry, each index entry against its own CRC.  What fails is
 * described by a struct tfs_damage, which the segment functions below
 * fill in and the partition records (partition.h: logged once, counted,
 * listed for repair).
 */
enum tfs_damage_kind {
	TFS_DAMAGE_NONE,
	TFS_DAMAGE_BATCH,	/* the batch's bytes fail its entry's CRC-32C
				 * (or are missing from the file) */
	TFS_DAMAGE_ENTRY,	/* the batch's index entry fails its own CRC
				 * or does not follow the entry before it */
	TFS_DAMAGE_FRAME,	/* a zstd frame does not decompress: every
				 * batch in it is lost */
};

struct tfs_damage {
	enum tfs_damage_kind kind;
	uint64_t segment;	/* base offset of the segment (its file name) */
	uint64_t offset;	/* byte offset of the damaged range */
	uint64_t length;	/* its bytes; for an entry, the bytes between
				 * the good entries around it (0 while not
				 * known: up to the segment's end) */
	uint64_t entry;		/* index entry of the (first) batch */
	uint64_t file_pos;	/* where in the damaged file: the batch in the
				 * .log, the entry in the .index, the frame in
				 * the .zst */
	uint32_t batches;	/* batches it stands for */
	bool zst;		/* in a compressed segment (.zst, not .log) */
	uint32_t frame;		/* zstd frame holding it (.zst only) */
	const char *why;	/* a static phrase for the log */
};

/*
 * Bytes of a segment that passed their checks: whole batches, read for
 * one reader and shared by reference (an extent of a read holds one, and
 * a reader's read-ahead keeps the rest of the last batch it read).
 */
struct tfs_rbuf {
	atomic_int refs;
	uint64_t uid;		/* the segment's uid */
	uint64_t cuts;		/* its cut count when read (tfs_segment.cuts) */
	uint64_t off;		/* byte offset of data[0]: a batch start */
	uint64_t next_entry;	/* index entry of the batch after the data */
	size_t len;		/* bytes, ending at a batch boundary */
	char data[];
};

struct tfs_rbuf *tfs_rbuf_ref(struct tfs_rbuf *b);
void tfs_rbuf_unref(struct tfs_rbuf *b);	/* NULL is fine */

enum tfs_segment_kind {
	TFS_SEG_RAW,		/* <base>.log holds the bytes */
	TFS_SEG_ZSTD,		/* <base>.zst holds them as zstd frames */
};

struct tfs_segment {
	atomic_int refs;
	uint64_t base;		/* byte offset of the first byte; the name */
	uint64_t uid;		/* unique id (frame cache key) */
	int dirfd;		/* the partition's directory (borrowed) */
	int log_fd, idx_fd;	/* log_fd: the .log, or the .zst */
	enum tfs_segment_kind kind;
	unsigned version;	/* index format: 1 (read only) or 2 */
	unsigned esize;		/* bytes per index entry: 48 or 64 */
	struct tfs_zindex zi;	/* frames of a TFS_SEG_ZSTD segment */
	uint64_t data_size;	/* (P) bytes of the .log or .zst on disk */

	uint64_t size;		/* (P) bytes in the log */
	uint64_t entries;	/* (P) entries in the index */
	uint64_t base_record;	/* (P) record offset of the first record */
	uint64_t records;	/* (P) records in the segment */
	int64_t first_ts;	/* (P) timestamp of the first batch, or 0 */
	int64_t last_ts;	/* (P) timestamp of the last batch, or 0 */
	uint32_t last_epoch;	/* (P) epoch of the last batch */
	bool sealed;		/* (P) no more appends: a newer one exists */
	bool deleted;		/* (P) files unlinked; fds live until unref */

	int64_t created;	/* creation time (ms), from the index header */
	bool broken;		/* (P) a failed append could not be undone */
	uint64_t idx_size;	/* (P) size of the .index file */
	unsigned char *idx_map;	/* (P) mapping of the .index, appends only */
	uint64_t idx_mapped;	/* (P) bytes mapped */

	uint64_t synced_size;	/* (P) log bytes known to be on disk */
	uint64_t synced_entries;/* (P) index entries known to be on disk */

	/* (P) times tfs_segment_truncate cut it back: checks made on a
	 * snapshot taken before a cut may fail on bytes that are gone, and
	 * such failures are not damage. */
	uint64_t cuts;
	bool no_compress;	/* (P) the compactor leaves it raw */
};

/* What recovery of one segment found (for the log and the tests). */
struct tfs_recovery {
	uint64_t batches_checked;
	uint64_t bytes_checked;
	uint64_t bytes_cut;	/* log bytes removed from the tail */
	uint64_t entries_cut;	/* index entries removed from the tail */
	const char *reason;	/* why the tail was cut, or NULL */
};

/*
 * Creates the files of a new, empty segment at base (truncating leftovers
 * of a crashed roll).  Returns 0 or -errno; *out has one reference.
 */
int tfs_segment_create(int dirfd, uint64_t base, uint64_t base_record,
		       struct tfs_segment **out);

/*
 * Opens an existing segment.  Entries whose offset is >= verify_from are
 * checked (entry CRC, continuity, bytes present, batch CRC, newlines) and
 * a bad tail is cut from both files; entries before it are trusted, which
 * is what keeps recovery time independent of the data size.  Pass
 * UINT64_MAX to trust the whole segment (only its size is checked) and 0
 * to check all of it.  base_record is what the caller expects the first
 * record to be; it is used only when the index header itself is torn (a
 * roll that crashed), and the segment then restarts empty.  Returns 0,
 * -errno, or TFS_ECORRUPT when trusted data is inconsistent.
 */
int tfs_segment_open(int dirfd, uint64_t base, uint64_t base_record,
		     uint64_t verify_from, struct tfs_segment **out,
		     struct tfs_recovery *rec);

struct tfs_segment *tfs_segment_ref(struct tfs_segment *s);
/* Drops a reference; the last one closes the files. */
void tfs_segment_unref(struct tfs_segment *s);

/*
 * Appends one batch: data (iov) at e->offset, then its index entry.  On
 * any failure both files are cut back and the segment is unchanged.
 * Returns 0 or -errno (-ENOSPC, -EIO...; -EROFS for a segment whose index
 * is of an older version: roll to a new one).  Partition lock held.
 */
int tfs_segment_append(struct tfs_segment *s, const struct tfs_index_entry *e,
		       const struct iovec *iov, int iovcnt);

/* Reads entries [i, i + n) (within s->entries) into v with one pread.
 * 0, -errno or TFS_ECORRUPT. */
int tfs_segment_entries(struct tfs_segment *s, uint64_t i, size_t n,
			struct tfs_index_entry *v);

/* Reads entry i (< s->entries).  0, -errno or TFS_ECORRUPT. */
int tfs_segment_entry(struct tfs_segment *s, uint64_t i,
		      struct tfs_index_entry *e);

enum tfs_find_key {
	TFS_FIND_OFFSET,	/* last entry with offset <= v */
	TFS_FIND_RECORD,	/* last entry with record <= v */
	TFS_FIND_TIME,		/* first entry with timestamp >= v */
};
/*
 * Binary search over the index (entries [0, n)).  Returns the entry's
 * position in *pos (n when no entry matches for TFS_FIND_TIME, -1 as
 * UINT64_MAX when none for the others).  Damaged entries are stepped
 * around: the search fails only when the answer may be one of them, with
 * TFS_ECORRUPT and *d (when not NULL) describing the first.  0, -errno or
 * TFS_ECORRUPT.
 */
int tfs_segment_find(struct tfs_segment *s, uint64_t n, enum tfs_find_key key,
		     uint64_t v, uint64_t *pos, struct tfs_damage *d);

/*
 * Reads len bytes at segment position pos (pos + len <= size) of either
 * kind into buf, unchecked (the fuzzer's; readers use the checked reads
 * below).  Returns 0, TFS_ECORRUPT or -errno.  No lock needed for bytes
 * below a size the caller saw.
 */
int tfs_segment_pread(struct tfs_segment *s, void *buf, size_t len,
		      uint64_t pos);

/*
 * Checked read, for every reader: the whole batches of s that hold
 * segment positions [pos, pos + len), each checked against its index
 * entry (batch CRC-32C, and the entry's own CRC and continuity).  n and
 * size are a snapshot of the segment's entries and size (the partition
 * lock's), pos + len <= size; first is the index entry where pos starts
 * if the caller knows it (a read-ahead's next_entry), else UINT64_MAX.
 * When want_entries is not NULL, the entries of the batches are returned
 * there (malloc'd, *nentries of them).  Returns 0 with *out, which starts
 * at the batch holding pos and ends at a batch boundary at or past
 * pos + len, or before that at the first damage (then d->kind is set);
 * TFS_ECORRUPT when the batch at pos is damaged itself (d set, or d->kind
 * NONE when a compressed frame found damaged before is refused); or
 * -errno.  No lock held.
 */
int tfs_segment_read_checked(struct tfs_segment *s, uint64_t n, uint64_t size,
			     uint64_t pos, size_t len, uint64_t first,
			     struct tfs_rbuf **out,
			     struct tfs_index_entry **want_entries,
			     size_t *nentries, struct tfs_damage *d);

/*
 * Frame i of compressed segment s, decompressed and checked (each batch
 * against its entry) before it enters the shared frame cache; b->good
 * says how much of it passed.  When the damage is found by this call,
 * *d describes it.  Returns 0 (b->good may be < b->len), TFS_ECORRUPT
 * when the frame does not decompress (d set), or -errno.  No lock.
 */
int tfs_segment_frame(struct tfs_segment *s, uint32_t i, struct tfs_zbuf **b,
		      struct tfs_damage *d);

/* Where a scrub of a segment is: zero it to start. */
struct tfs_scrub_cursor {
	uint64_t entry;		/* the next index entry to check */
	uint64_t pos;		/* the segment position its batch starts at */
};

/*
 * The scrubber's check of a sealed segment (n entries, size bytes), from
 * cursor c on: every index entry against its CRC and the one before it,
 * every batch against its entry (CRC-32C, newline count, last byte),
 * every frame of a compressed segment decompressed (outside the frame
 * cache).  Reads about `chunk` bytes of batches (one frame of a
 * compressed segment), then moves c (c->pos reaches size when done) and
 * sets *read to the bytes it read.  found is called for each damage (all
 * of them, not only the first).  Returns 0 or -errno.  No lock.
 */
int tfs_segment_scrub(struct tfs_segment *s, uint64_t n, uint64_t size,
		      struct tfs_scrub_cursor *c, size_t chunk, size_t *read,
		      void (*found)(void *arg, const struct tfs_damage *d),
		      void *arg);

/*
 * Repair of a raw segment (the cluster's, with a batch from a healthy
 * replica): writes entry e as index entry i and/or the batch's bytes
 * (NULL: keep those on disk) at e->offset, then fdatasyncs what it wrote
 * and reads it back through the checks.  The caller has made sure that e
 * is exactly the damaged batch's place and that bytes match e.  Returns
 * 0, TFS_ECORRUPT when what is on disk afterwards still fails (*d says
 * what), -EOPNOTSUPP for a compressed segment, or -errno.  No lock; the
 * partition's maint lock keeps truncation away.
 */
int tfs_segment_repair(struct tfs_segment *s, uint64_t i,
		       const struct tfs_index_entry *e, const void *bytes,
		       struct tfs_damage *d);

/*
 * Writes a compressed copy of the sealed raw segment s: <base>.zst.tmp,
 * frames of about frame_bytes cut at batch boundaries, fsync, rename to
 * <base>.zst, fsync the directory; then opens it as a new segment object
 * (*out).  The .log is left for the caller to unlink once *out replaced s.
 * Every entry and batch is checked on the way, so damage is never baked
 * into a frame.  No lock held: s must be sealed.  Returns 0, -errno, or
 * TFS_ECORRUPT with *d describing the damage found (the temporary file
 * is removed).
 */
int tfs_segment_compress(struct tfs_segment *s, int level, size_t frame_bytes,
			 struct tfs_segment **out, struct tfs_damage *d);

/* Unlinks the .log of a segment replaced by its compressed copy. */
int tfs_segment_unlink_log(struct tfs_segment *s);

/*
 * Gives back the index space preallocated for appends and unmaps it (a
 * segment being sealed or closed).  0 or -errno.  Partition lock held.
 */
int tfs_segment_trim(struct tfs_segment *s);

/* Cuts the segment back to byte offset off, which must be a batch start
 * or the end (raw segments only: -EOPNOTSUPP for compressed ones).
 * 0, TFS_ENOTBOUNDARY or -errno.  Partition lock held. */
int tfs_segment_truncate(struct tfs_segment *s, uint64_t off);

/* fdatasyncs both files.  0 or -errno.  No lock needed. */
int tfs_segment_sync(struct tfs_segment *s);

/* Unlinks the segment's files; the open descriptors stay valid for
 * readers. */
int tfs_segment_unlink(struct tfs_segment *s);

/*
 * Lists the segments of the partition directory dirfd: their bases,
 * sorted, in a malloc'd array.  On the way it repairs the pairing of the
 * files, through sysio: removes temporary files, an index whose log and
 * .zst are both missing, and a log without its index at or past rp (the
 * recovery point: a roll that crashed between creating the two files,
 * before anything in it was fsynced).  owner names the partition in the
 * log.  Returns 0 or -errno.
 */
int tfs_segment_list(int dirfd, const char *owner, uint64_t rp,
		     uint64_t **bases, size_t *n);

/* Removes every file of the segment at base (.log, .zst, .index), data
 * first.  0 or the first -errno (a missing file is not an error). */
int tfs_segment_remove(int dirfd, uint64_t base);

/* Formats the file name of a segment: "%020llu.log" etc. */
void tfs_segment_name(uint64_t base, const char *ext, char *buf, size_t len);

#endif
