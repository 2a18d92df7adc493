/*
 * compress.c - zstd-compressed segments and the frame cache.
 *
 * .ZST FORMAT (integers little-endian)
 *
 *   frame 0 .. frame n-1     independent zstd frames (with content size),
 *                            each the compression of whole batches
 *   frame table              n entries of 24 bytes:
 *                              0 8 raw offset of the frame in the segment
 *                              8 4 raw length
 *                             12 4 compressed length
 *                             16 8 file position of the frame
 *   footer, 48 bytes:
 *      0 8 magic "TFSZSTD\1"
 *      8 4 version, 1
 *     12 4 number of frames
 *     16 8 raw size: the segment's logical size
 *     24 8 file position of the frame table
 *     32 4 CRC-32C of the frame table
 *     36 8 reserved, 0
 *     44 4 CRC-32C of footer bytes 0..43
 *
 * Frames cover the segment contiguously: frame 0 starts at raw offset 0,
 * each starts where the previous ends, the last ends at the raw size.  The
 * file is written under a temporary name, fsynced and renamed, so a .zst
 * that exists is whole; the footer and table checks catch damage.
 *
 * THE FRAME CACHE
 *
 * Decompressed frames are kept in one cache for all readers, keyed by the
 * segment's unique id and the frame number, bounded in bytes, evicted in
 * LRU order.  A miss decompresses without the cache lock; two readers
 * missing the same frame at once both decompress it and the second
 * insertion is dropped, which is cheaper than making readers wait.  The
 * caller's check hook runs on a frame before it is inserted (the segment
 * module checks each batch against its index entry); the frame keeps how
 * much of it passed (`good`), so the cache never serves a damaged batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "compress.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "sysio.h"
#include "util.h"
#include "banned.h"

#define ZMAGIC "TFSZSTD\1"
#define ZVERSION 1
#define FOOTER_SIZE 48
#define ENTRY_SIZE 24

/* --- the frame table ----------------------------------------------------- */

static int check_frames(struct tfs_zindex *zi, uint64_t table_pos)
{
	uint64_t raw = 0, pos = 0;

	for (uint32_t i = 0; i < zi->n; i++) {
		struct tfs_zframe *f = &zi->f[i];

		if (f->raw_off != raw || f->raw_len == 0 || f->comp_len == 0 ||
		    f->pos < pos || f->pos + f->comp_len > table_pos)
			return TFS_ECORRUPT;
		raw += f->raw_len;
		pos = f->pos + f->comp_len;
	}
	return raw == zi->raw_size ? 0 : TFS_ECORRUPT;
}

int tfs_zindex_load(int fd, struct tfs_zindex *zi)
{
	unsigned char foot[FOOTER_SIZE], *tab = NULL;
	struct stat st;
	uint64_t table_pos;
	size_t tab_len;
	int rc = TFS_ECORRUPT;

	memset(zi, 0, sizeof(*zi));
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < FOOTER_SIZE ||
	    tfs_sys_pread(fd, foot, FOOTER_SIZE, st.st_size - FOOTER_SIZE) !=
		    FOOTER_SIZE)
		return TFS_ECORRUPT;
	if (memcmp(foot, ZMAGIC, 8) || tfs_get_le32(foot + 8) != ZVERSION ||
	    tfs_get_le32(foot + 44) != tfs_crc32c(0, foot, 44))
		return TFS_ECORRUPT;
	zi->n = tfs_get_le32(foot + 12);
	zi->raw_size = tfs_get_le64(foot + 16);
	zi->file_size = (uint64_t)st.st_size;
	table_pos = tfs_get_le64(foot + 24);
	tab_len = (size_t)zi->n * ENTRY_SIZE;
	if (table_pos + tab_len + FOOTER_SIZE != (uint64_t)st.st_size)
		return TFS_ECORRUPT;
	tab = tfs_malloc(tab_len ? tab_len : 1);
	if (tfs_sys_pread(fd, tab, tab_len, (off_t)table_pos) !=
		    (ssize_t)tab_len ||
	    tfs_crc32c(0, tab, tab_len) != tfs_get_le32(foot + 32))
		goto out;
	zi->f = tfs_calloc(zi->n ? zi->n : 1, sizeof(*zi->f));
	for (uint32_t i = 0; i < zi->n; i++) {
		const unsigned char *e = tab + (size_t)i * ENTRY_SIZE;

		zi->f[i] = (struct tfs_zframe){ tfs_get_le64(e), tfs_get_le32(e + 8),
						tfs_get_le32(e + 12), tfs_get_le64(e + 16) };
	}
	rc = check_frames(zi, table_pos);
out:
	free(tab);
	if (rc)
		tfs_zindex_release(zi);
	return rc;
}

void tfs_zindex_release(struct tfs_zindex *zi)
{
	free(zi->f);
	zi->f = NULL;
	zi->n = 0;
}

uint32_t tfs_zindex_find(const struct tfs_zindex *zi, uint64_t off)
{
	uint32_t lo = 0, hi = zi->n;

	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (zi->f[mid].raw_off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* --- the writer ------------------------------------------------------------ */

struct tfs_zwriter {
	int dirfd, fd, level;
	char *name;
	ZSTD_CCtx *cctx;
	struct tfs_buf out;
	struct tfs_zframe *f;
	uint32_t n, cap;
	uint64_t raw, pos;
};

int tfs_zwriter_open(int dirfd, const char *name, int level,
		     struct tfs_zwriter **out)
{
	struct tfs_zwriter *w = tfs_calloc(1, sizeof(*w));

	w->dirfd = dirfd;
	w->level = level;
	w->name = tfs_strdup(name);
	w->fd = tfs_sys_openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (w->fd < 0) {
		int rc = w->fd;

		free(w->name);
		free(w);
		return rc;
	}
	w->cctx = ZSTD_createCCtx();
	*out = w;
	return 0;
}

int tfs_zwriter_add(struct tfs_zwriter *w, const void *raw, size_t len)
{
	size_t bound = ZSTD_compressBound(len), n;
	ssize_t wr;

	if (len == 0 || len > UINT32_MAX)
		return -EINVAL;
	tfs_buf_reset(&w->out);
	tfs_buf_grow(&w->out, bound);
	n = ZSTD_compressCCtx(w->cctx, w->out.data, bound, raw, len, w->level);
	if (ZSTD_isError(n)) {
		tfs_err("zstd: %s", ZSTD_getErrorName(n));
		return -EIO;
	}
	wr = tfs_sys_pwrite(w->fd, w->out.data, n, (off_t)w->pos);
	if (wr < 0)
		return (int)wr;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->f = tfs_realloc(w->f, w->cap * sizeof(*w->f));
	}
	w->f[w->n++] = (struct tfs_zframe){ w->raw, (uint32_t)len,
					    (uint32_t)n, w->pos };
	w->raw += len;
	w->pos += n;
	return 0;
}

static void zwriter_free(struct tfs_zwriter *w)
{
	ZSTD_freeCCtx(w->cctx);
	tfs_buf_release(&w->out);
	free(w->f);
	free(w->name);
	free(w);
}

int tfs_zwriter_finish(struct tfs_zwriter *w, uint64_t *size)
{
	size_t tab_len = (size_t)w->n * ENTRY_SIZE;
	unsigned char *buf = tfs_calloc(1, tab_len + FOOTER_SIZE);
	unsigned char *foot = buf + tab_len;
	int rc;

	for (uint32_t i = 0; i < w->n; i++) {
		unsigned char *e = buf + (size_t)i * ENTRY_SIZE;

		tfs_put_le64(e, w->f[i].raw_off);
		tfs_put_le32(e + 8, w->f[i].raw_len);
		tfs_put_le32(e + 12, w->f[i].comp_len);
		tfs_put_le64(e + 16, w->f[i].pos);
	}
	memcpy(foot, ZMAGIC, 8);
	tfs_put_le32(foot + 8, ZVERSION);
	tfs_put_le32(foot + 12, w->n);
	tfs_put_le64(foot + 16, w->raw);
	tfs_put_le64(foot + 24, w->pos);
	tfs_put_le32(foot + 32, tfs_crc32c(0, buf, tab_len));
	tfs_put_le32(foot + 44, tfs_crc32c(0, foot, 44));
	ssize_t wr = tfs_sys_pwrite(w->fd, buf, tab_len + FOOTER_SIZE,
				    (off_t)w->pos);
	free(buf);
	rc = wr < 0 ? (int)wr : tfs_sys_fsync(w->fd);
	if (rc) {
		tfs_zwriter_abort(w);
		return rc;
	}
	*size = w->pos + tab_len + FOOTER_SIZE;
	tfs_sys_close(w->fd);
	zwriter_free(w);
	return 0;
}

void tfs_zwriter_abort(struct tfs_zwriter *w)
{
	tfs_sys_close(w->fd);
	unlinkat(w->dirfd, w->name, 0);
	zwriter_free(w);
}

/* --- the frame cache -------------------------------------------------------- */

#define NBUCKETS 1024

static struct {
	pthread_mutex_t lock;
	struct tfs_zbuf *bucket[NBUCKETS];
	struct tfs_list lru;	/* of tfs_zbuf.lru: lru.next is the newest */
	size_t bytes, capacity;
	uint64_t hits, misses, frames;
	atomic_ullong next_uid;
} cache = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.lru = { .next = &cache.lru, .prev = &cache.lru },
	.capacity = 64u << 20,
	.next_uid = 1,
};

uint64_t tfs_zcache_new_uid(void)
{
	return atomic_fetch_add(&cache.next_uid, 1);
}

static size_t bucket_of(uint64_t uid, uint32_t frame)
{
	uint64_t h = (uid * 0x9e3779b97f4a7c15ull) ^ frame;

	return (size_t)((h ^ (h >> 29)) % NBUCKETS);
}

static void lru_unlink(struct tfs_zbuf *b)
{
	tfs_list_del(&b->lru);
}

static void lru_push(struct tfs_zbuf *b)
{
	tfs_list_insert_after(&cache.lru, &b->lru);
}

/* The least recently used frame; the cache must not be empty. */
static struct tfs_zbuf *lru_oldest(void)
{
	return tfs_container_of(cache.lru.prev, struct tfs_zbuf, lru);
}

/* Removes b from the table and the LRU, dropping the cache's reference.
 * Cache lock held. */
static void evict(struct tfs_zbuf *b)
{
	struct tfs_zbuf **pp = &cache.bucket[bucket_of(b->uid, b->frame)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	lru_unlink(b);
	cache.bytes -= b->len;
	cache.frames--;
	tfs_zbuf_unref(b);
}

static struct tfs_zbuf *lookup(uint64_t uid, uint32_t frame)
{
	for (struct tfs_zbuf *b = cache.bucket[bucket_of(uid, frame)]; b;
	     b = b->hnext)
		if (b->uid == uid && b->frame == frame)
			return b;
	return NULL;
}

static void insert(struct tfs_zbuf *b)
{
	size_t i = bucket_of(b->uid, b->frame);

	if (b->len > cache.capacity)
		return;
	while (cache.bytes + b->len > cache.capacity)
		evict(lru_oldest());
	tfs_ref_get(&b->refs);
	b->hnext = cache.bucket[i];
	cache.bucket[i] = b;
	lru_push(b);
	cache.bytes += b->len;
	cache.frames++;
}

static int decompress(int fd, const struct tfs_zframe *f, void *out)
{
	char *comp = tfs_malloc(f->comp_len);
	ssize_t r = tfs_sys_pread(fd, comp, f->comp_len, (off_t)f->pos);
	int rc = 0;

	if (r != (ssize_t)f->comp_len) {
		rc = r < 0 ? (int)r : TFS_ECORRUPT;
	} else {
		size_t n = ZSTD_decompress(out, f->raw_len, comp,
					   f->comp_len);

		if (ZSTD_isError(n) || n != f->raw_len)
			rc = TFS_ECORRUPT;
	}
	free(comp);
	return rc;
}

int tfs_zframe_read(int fd, const struct tfs_zindex *zi, uint32_t i,
		    void *buf)
{
	return decompress(fd, &zi->f[i], buf);
}

int tfs_zframe_get(uint64_t uid, int fd, const struct tfs_zindex *zi,
		   uint32_t i, tfs_zcheck_fn check, void *arg,
		   struct tfs_zbuf **out)
{
	struct tfs_zbuf *b, *old;
	int rc;

	pthread_mutex_lock(&cache.lock);
	b = lookup(uid, i);
	if (b) {
		cache.hits++;
		tfs_ref_get(&b->refs);
		lru_unlink(b);
		lru_push(b);
		pthread_mutex_unlock(&cache.lock);
		*out = b;
		return 0;
	}
	cache.misses++;
	pthread_mutex_unlock(&cache.lock);

	b = tfs_malloc(sizeof(*b) + zi->f[i].raw_len);
	memset(b, 0, sizeof(*b));
	tfs_ref_init(&b->refs, 1);
	b->uid = uid;
	b->frame = i;
	b->len = zi->f[i].raw_len;
	rc = decompress(fd, &zi->f[i], b->data);
	if (rc) {
		free(b);
		return rc;
	}
	/* Checked before anyone else can find it in the cache. */
	b->good = b->len;
	rc = check ? check(arg, i, b->data, b->len, &b->good) : 0;
	if (rc) {
		free(b);
		return rc;
	}
	pthread_mutex_lock(&cache.lock);
	old = lookup(uid, i);
	if (!old)
		insert(b);
	pthread_mutex_unlock(&cache.lock);
	*out = b;
	return 0;
}

void tfs_zbuf_unref(struct tfs_zbuf *b)
{
	if (b && tfs_ref_put(&b->refs))
		free(b);
}

void tfs_zcache_set_capacity(size_t bytes)
{
	pthread_mutex_lock(&cache.lock);
	cache.capacity = bytes;
	while (cache.bytes > cache.capacity)
		evict(lru_oldest());
	pthread_mutex_unlock(&cache.lock);
}

void tfs_zcache_forget(uint64_t uid)
{
	pthread_mutex_lock(&cache.lock);
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct tfs_zbuf *b = cache.bucket[i], *next;

		for (; b; b = next) {
			next = b->hnext;
			if (b->uid == uid)
				evict(b);
		}
	}
	pthread_mutex_unlock(&cache.lock);
}

void tfs_zcache_stats(struct tfs_zcache_stats *st)
{
	pthread_mutex_lock(&cache.lock);
	st->hits = cache.hits;
	st->misses = cache.misses;
	st->bytes = cache.bytes;
	st->frames = cache.frames;
	pthread_mutex_unlock(&cache.lock);
}

/* --- whole buffers (the replication wire) ---------------------------------- */

int tfs_zstd_pack(const void *src, size_t len, int level, struct tfs_buf *out)
{
	size_t bound = ZSTD_compressBound(len), n;

	tfs_buf_reset(out);
	tfs_buf_grow(out, bound);
	n = ZSTD_compress(out->data, bound, src, len, level);
	if (ZSTD_isError(n)) {
		tfs_warn("zstd: %s", ZSTD_getErrorName(n));
		return -EIO;
	}
	out->len = n;
	return 0;
}

int tfs_zstd_unpack(const void *src, size_t len, size_t max,
		    struct tfs_buf *out)
{
	unsigned long long size = ZSTD_getFrameContentSize(src, len);
	size_t n;

	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
		return TFS_EPROTO;
	if (size > max)
		return -EMSGSIZE;
	tfs_buf_reset(out);
	tfs_buf_grow(out, (size_t)size);
	n = ZSTD_decompress(out->data, (size_t)size, src, len);
	if (ZSTD_isError(n) || n != size)
		return TFS_EPROTO;
	out->len = n;
	out->data[n] = '\0';
	return 0;
}
