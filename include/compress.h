/*
 * compress.h - zstd-compressed segments: the .zst file format, its writer,
 * and a shared cache of decompressed frames.  The only module that
 * includes zstd.  The byte-level format is described in src/compress.c and
 * docs/FORMAT.md.
 *
 * A compressed segment is a sequence of independent zstd frames, each the
 * compression of a run of whole batches, followed by a frame table and a
 * footer.  A read decompresses only the frames it touches; recently used
 * frames stay in a cache shared by every reader, so a sequential reader
 * decompresses each frame once.
 *
 * Thread-safety: a struct tfs_zindex is immutable after loading; the
 * cache has its own lock; a writer belongs to one thread.
 */
#ifndef TFS_COMPRESS_H
#define TFS_COMPRESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct tfs_zframe {
	uint64_t raw_off;	/* offset of the frame's bytes in the segment */
	uint32_t raw_len;	/* bytes it decompresses to */
	uint32_t comp_len;	/* bytes of the frame in the file */
	uint64_t pos;		/* file position of the frame */
};

struct tfs_zindex {
	uint32_t n;
	uint64_t raw_size;	/* the segment's logical size */
	uint64_t file_size;	/* the .zst file's size */
	struct tfs_zframe *f;
};

/*
 * Loads and checks the frame table of an open .zst file: footer magic,
 * version and checksums, frames contiguous from 0 to raw_size and inside
 * the file.  Returns 0, TFS_ECORRUPT or -errno.
 */
int tfs_zindex_load(int fd, struct tfs_zindex *zi);
void tfs_zindex_release(struct tfs_zindex *zi);

/* The frame holding raw offset off (< raw_size). */
uint32_t tfs_zindex_find(const struct tfs_zindex *zi, uint64_t off);

struct tfs_zwriter;

/*
 * Creates dirfd/name (truncating) for writing frames at level.  Returns 0
 * or -errno.
 */
int tfs_zwriter_open(int dirfd, const char *name, int level,
		     struct tfs_zwriter **out);
/* Compresses raw[0..len) as one frame and writes it.  0 or -errno. */
int tfs_zwriter_add(struct tfs_zwriter *w, const void *raw, size_t len);
/*
 * Writes the frame table and footer, fsyncs and closes the file, frees w.
 * Returns 0 (with the file size in *size) or -errno; on failure the file
 * is removed.
 */
int tfs_zwriter_finish(struct tfs_zwriter *w, uint64_t *size);
/* Closes and removes the file, frees w. */
void tfs_zwriter_abort(struct tfs_zwriter *w);

/* A decompressed frame, shared by readers (reference-counted). */
struct tfs_zbuf {
	atomic_int refs;
	uint64_t uid;		/* the segment's unique id */
	uint32_t frame;
	size_t len;
	/* Bytes from the start that passed the caller's check: len, or the
	 * position of the first damaged batch.  Never serve past it. */
	size_t good;
	struct tfs_list lru;	/* cache lock: the cache's LRU, newest first */
	struct tfs_zbuf *hnext;	/* cache lock: next in the hash bucket */
	char data[];
};

/*
 * Checks a frame just decompressed, before it enters the cache: sets
 * *good to how many bytes from its start are good (len when all are).
 * Returns 0, or -errno when it could not check (an I/O error reading the
 * index): the frame is then neither cached nor returned.  The segment
 * module checks each batch against its index entry here.
 */
typedef int (*tfs_zcheck_fn)(void *arg, uint32_t frame, const char *data,
			     size_t len, size_t *good);

/*
 * Returns frame i of the segment uid (file fd, table zi) decompressed,
 * with a reference the caller drops with tfs_zbuf_unref.  From the cache
 * when present; a frame decompressed now is first passed to check (when
 * not NULL), which sets b->good, so a damaged batch is never served from
 * the cache either.  Returns 0, TFS_ECORRUPT (the frame does not
 * decompress to its recorded size: not logged here, the caller knows
 * which file it is) or -errno.  Any thread; no lock held while
 * decompressing or checking.
 */
int tfs_zframe_get(uint64_t uid, int fd, const struct tfs_zindex *zi,
		   uint32_t i, tfs_zcheck_fn check, void *arg,
		   struct tfs_zbuf **out);

/*
 * Decompresses frame i into buf (zi->f[i].raw_len bytes) without the
 * cache: for the scrubber, which reads everything once and must not push
 * the readers' frames out.  Returns 0, TFS_ECORRUPT or -errno.
 */
int tfs_zframe_read(int fd, const struct tfs_zindex *zi, uint32_t i,
		    void *buf);
void tfs_zbuf_unref(struct tfs_zbuf *b);

/* Sets the cache capacity in bytes (0 disables caching). */
void tfs_zcache_set_capacity(size_t bytes);
/* Drops the cached frames of segment uid (its files are going away). */
void tfs_zcache_forget(uint64_t uid);

struct tfs_zcache_stats {
	uint64_t hits, misses, bytes, frames;
};
void tfs_zcache_stats(struct tfs_zcache_stats *st);

/*
 * Compresses src[0..len) as one zstd frame (with its content size) into
 * out, replacing what out held.  0 or -EIO.  For the replication wire.
 */
int tfs_zstd_pack(const void *src, size_t len, int level, struct tfs_buf *out);

/*
 * Decompresses one zstd frame into out; refuses (-EMSGSIZE) a frame that
 * says it holds more than max bytes.  0, -EMSGSIZE or TFS_EPROTO.
 */
int tfs_zstd_unpack(const void *src, size_t len, size_t max,
		    struct tfs_buf *out);

/* A new unique segment id (never 0). */
uint64_t tfs_zcache_new_uid(void);

#endif
