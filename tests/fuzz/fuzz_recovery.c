/*
 * libFuzzer target for the recovery scanner and the decoders of the
 * index and the .zst frame table: whatever bytes are on disk, opening a
 * segment either fails cleanly or yields a segment whose every claimed
 * byte can be read and whose batches check out.  Then the checks at rest
 * (segment_check.c) run over whatever opened, trusted or not: checked
 * reads, lookups and a whole scrub must end, and hand out only bytes
 * that match their index entry.
 *
 * Input: byte 0 picks where to verify from (0: everything; else trust
 * everything); bytes 1..4 (little-endian) split the rest into the .index
 * and the .log (or the .zst when byte 0 has bit 7 set).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "segment.h"
#include "sysio.h"

static int dirfd_ = -1;

static void put(const char *name, const uint8_t *p, size_t n)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

/* verified: recovery checked every batch, so every batch must pass. */
static void check_segment(struct tfs_segment *s, bool verified)
{
	uint64_t rec = s->base_record, off = s->base;
	char *buf = s->size ? malloc(s->size) : NULL;

	/* Every byte the segment claims is readable... */
	if (s->size && tfs_segment_pread(s, buf, s->size, 0) != 0 &&
	    s->kind == TFS_SEG_RAW)
		abort();
	/* ...and every entry decodes and is contiguous. */
	for (uint64_t i = 0; i < s->entries; i++) {
		struct tfs_index_entry e;

		if (tfs_segment_entry(s, i, &e) != 0)
			abort();
		if (e.offset != off || e.record != rec)
			abort();
		if (verified && s->kind == TFS_SEG_RAW &&
		    tfs_batch_verify(&e, buf + (e.offset - s->base)) != 0)
			abort();
		off += e.length;
		rec += e.count;
	}
	if (off - s->base != s->size)
		abort();
	free(buf);
}

static void count_damage(void *arg, const struct tfs_damage *d)
{
	if (d->kind == TFS_DAMAGE_NONE)
		abort();
	++*(unsigned *)arg;
}

/* The checks at rest over a segment nobody vouches for. */
static void check_at_rest(struct tfs_segment *s)
{
	struct tfs_scrub_cursor c = { 0, 0 };
	unsigned found = 0, steps = 0;
	uint64_t pos;

	while (c.pos < s->size) {
		size_t read;

		if (tfs_segment_scrub(s, s->entries, s->size, &c, 4096, &read,
				      count_damage, &found) ||
		    ++steps > s->entries + s->size + 2)
			break;
	}
	if (steps > s->entries + s->size + 2)
		abort();	/* the cursor stopped moving */
	for (uint64_t at = 0; at < s->size; at += 1 + at / 2) {
		struct tfs_index_entry *e;
		struct tfs_rbuf *b;
		struct tfs_damage d;
		size_t n;
		size_t len = (size_t)(s->size - at < 300 ? s->size - at : 300);

		if (tfs_segment_read_checked(s, s->entries, s->size, at, len,
					     UINT64_MAX, &b, &e, &n, &d) == 0) {
			/* Whole batches, each matching its entry. */
			size_t sum = 0;

			if (b->off > s->base + at || !n)
				abort();
			for (size_t i = 0; i < n; i++) {
				if (e[i].offset != b->off + sum ||
				    sum + e[i].length > b->len ||
				    tfs_crc32c(0, b->data + sum, e[i].length) !=
					    e[i].crc)
					abort();
				sum += e[i].length;
			}
			if (sum != b->len)
				abort();
			tfs_rbuf_unref(b);
			free(e);
		}
		tfs_segment_find(s, s->entries, TFS_FIND_OFFSET, s->base + at,
				 &pos, &d);
		tfs_segment_find(s, s->entries, TFS_FIND_RECORD, at, &pos, &d);
	}
}

static char dir_[] = "/tmp/tfs-fuzz-XXXXXX";

/* The scratch directory goes when the fuzzer exits (it left one per run). */
static void remove_dir(void)
{
	static const char *const names[] = { "00000000000000000000.log",
					     "00000000000000000000.zst",
					     "00000000000000000000.index" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dirfd_, names[i], 0);
	close(dirfd_);
	rmdir(dir_);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dirfd_ < 0) {
		if (!mkdtemp(dir_))
			abort();
		dirfd_ = open(dir_, O_RDONLY | O_DIRECTORY);
		atexit(remove_dir);
		tfs_log_set_level(TFS_LOG_ERROR - 1);
	}
	if (size < 5)
		return 0;
	uint8_t mode = data[0];
	uint32_t split;
	memcpy(&split, data + 1, 4);
	data += 5;
	size -= 5;
	split = size ? split % (uint32_t)(size + 1) : 0;

	unlinkat(dirfd_, "00000000000000000000.log", 0);
	unlinkat(dirfd_, "00000000000000000000.zst", 0);
	put("00000000000000000000.index", data, split);
	put(mode & 0x80 ? "00000000000000000000.zst"
			: "00000000000000000000.log",
	    data + split, size - split);

	/* The decoders alone. */
	if (split >= TFS_INDEX_ENTRY_SIZE) {
		struct tfs_index_entry e;
		struct tfs_index_header h;

		tfs_index_decode(data, &e);
		tfs_index_header_decode(data, &h);
	}

	struct tfs_segment *s;
	struct tfs_recovery rec;
	uint64_t verify = (mode & 1) ? UINT64_MAX : 0;
	if (tfs_segment_open(dirfd_, 0, 0, verify, &s, &rec) == 0) {
		if (verify == 0 || s->kind == TFS_SEG_ZSTD)
			check_segment(s, verify == 0);
		check_at_rest(s);
		tfs_segment_unref(s);
	}
	return 0;
}
