/*
 * Unit tests for damage at rest: a flipped byte in a sealed segment's
 * .log (with the partition closed, and while it is open: writes through
 * the page cache are what the daemon reads), in an .index entry, in a
 * .zst frame; what reads, whole-batch reads and lookups do about it; the
 * damage list, its counters and the log (one line per damage); the
 * compactor leaving a damaged segment raw and compressing the later
 * ones; the scrubber finding damage without any read (the pass and the
 * thread); repair; truncation forgetting damage; the read-ahead reading
 * each batch once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"
#include "compress.h"
#include "conf.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "partition.h"
#include "scrub.h"
#include "segment.h"
#include "store.h"
#include "sysio.h"
#include "util.h"

static struct tl_env tl;
static int counter;		/* names of directories and logs */

#define SEG_BYTES (16 * 1024)
#define LINES_PER_BATCH 20

/* --- set-up ------------------------------------------------------------- */

/* A fresh directory for one case; its path in path. */
static int new_dir(char *path, size_t len)
{
	snprintf(path, len, "%s/case%d", tl.root, counter++);
	mkdir(path, 0755);
	return open(path, O_RDONLY | O_DIRECTORY);
}

static int open_part(int dirfd, struct tfs_settings *st,
		     struct tfs_partition **p)
{
	return tl_open_part(&tl, dirfd, st, p);
}

static void done_noop(struct tfs_append *a, int status)
{
}

static int append_text(struct tfs_partition *p, const char *text, size_t n)
{
	struct iovec iov = { (void *)text, n };
	struct tfs_append a = { .iov = &iov, .iovcnt = 1, .done = done_noop };

	return tfs_partition_append(p, &a);
}

/* Appends nbatches batches of `lines` distinct lines; all gets the bytes. */
static void fill(struct tfs_partition *p, int nbatches, int lines,
		 struct tfs_buf *all)
{
	static int rec;

	for (int b = 0; b < nbatches; b++) {
		struct tfs_buf batch = TFS_BUF_INIT;

		for (int i = 0; i < lines; i++, rec++)
			tfs_buf_addf(&batch, "rec %07d abcdefghijklmnopqrstuvwxyz "
					     "%07d\n", rec, rec * 7);
		CHECK_EQ(append_text(p, batch.data, batch.len), 0);
		tfs_buf_add(all, batch.data, batch.len);
		tfs_buf_release(&batch);
	}
}

/* Closes (final checkpoint) and reopens: every sealed segment trusted. */
static void reopen(int dfd, struct tfs_settings *st, struct tfs_partition **p)
{
	tfs_partition_close(*p, TFS_ESHUTDOWN);
	tfs_partition_unref(*p);
	CHECK_EQ(open_part(dfd, st, p), 0);
}

static void close_part(struct tfs_partition *p)
{
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
}

/* --- the files on disk ---------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The bases of the segments in dir (by their .index files), sorted. */
static size_t bases_of(const char *dir, uint64_t *out, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	while (d && (de = readdir(d)) && n < max) {
		size_t len = strlen(de->d_name);

		if (len == 26 && !strcmp(de->d_name + 20, ".index"))
			out[n++] = strtoull(de->d_name, NULL, 10);
	}
	if (d)
		closedir(d);
	qsort(out, n, sizeof(*out), cmp_u64);
	return n;
}

static void file_of(const char *dir, uint64_t base, const char *ext,
		    char *path, size_t len)
{
	snprintf(path, len, "%s/%020" PRIu64 ".%s", dir, base, ext);
}

static bool exists(const char *dir, uint64_t base, const char *ext)
{
	char path[256];

	file_of(dir, base, ext, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* Entry i of segment base's index (version 2).  0 or -1. */
static int entry_of(const char *dir, uint64_t base, uint64_t i,
		    struct tfs_index_entry *e)
{
	unsigned char buf[TFS_INDEX_ENTRY_SIZE];
	char path[256];
	int fd, rc = -1;

	file_of(dir, base, "index", path, sizeof(path));
	fd = open(path, O_RDONLY);
	if (fd >= 0 &&
	    pread(fd, buf, sizeof(buf),
		  TFS_INDEX_HEADER_SIZE + (off_t)i * TFS_INDEX_ENTRY_SIZE) ==
		    (ssize_t)sizeof(buf))
		rc = tfs_index_decode(buf, e) ? -1 : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Xors the byte at pos of a file with 0x01 (through the page cache, as
 * any writer of the file would). */
static void flip(const char *dir, uint64_t base, const char *ext, off_t pos)
{
	char path[256];
	unsigned char c;
	int fd;

	file_of(dir, base, ext, path, sizeof(path));
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pread(fd, &c, 1, pos) == 1);
	c ^= 1;
	CHECK(fd >= 0 && pwrite(fd, &c, 1, pos) == 1);
	if (fd >= 0)
		close(fd);
}

/* --- the log ------------------------------------------------------------ */

static int saved_stderr = -1;
static char log_path[128];

/* From here until log_stop, what is logged (info and up) goes to a file. */
static void log_start(void)
{
	int fd;

	tfs_log_set_level(TFS_LOG_INFO);
	fflush(stderr);
	snprintf(log_path, sizeof(log_path), "%s/log%d", tl.root, counter++);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static void log_stop(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	tl_quiet_log();
	/* Failed checks made meanwhile went to the file too. */
	FILE *f = fopen(log_path, "r");
	char line[1024];

	while (f && fgets(line, sizeof(line), f))
		if (getenv("TFS_TEST_VERBOSE") || !strncmp(line, "FAIL ", 5))
			fputs(line, stderr);
	if (f)
		fclose(f);
}

/* Lines of the last captured log holding both a and b (b may be NULL). */
static int log_lines(const char *a, const char *b)
{
	FILE *f = fopen(log_path, "r");
	char line[1024];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, a) && (!b || strstr(line, b)))
			n++;
	if (f)
		fclose(f);
	return n;
}

/* --- reading -------------------------------------------------------------- */

static struct tfs_partition_info info_of(struct tfs_partition *p)
{
	struct tfs_partition_info in;

	tfs_partition_info(p, &in);
	return in;
}

/* One read at off of up to max bytes: its code, and its bytes in buf. */
static int read_once(struct tfs_partition *p, uint64_t off, size_t max,
		     char *buf, size_t *got)
{
	struct tfs_readv rv;
	int rc = tfs_partition_read(p, off, max, &rv);

	*got = 0;
	if (rc == 0) {
		*got = (size_t)tfs_readv_copy(&rv, 0, buf, max);
		tfs_readv_release(&rv);
	}
	return rc;
}

/* Bytes [from, to) read back equal all's. */
static bool reads_back(struct tfs_partition *p, const struct tfs_buf *all,
		       uint64_t from, uint64_t to)
{
	char *buf = tfs_malloc(to - from + 1);
	ssize_t r = tl_read_at(p, from, buf, to - from);
	bool ok = r == (ssize_t)(to - from) &&
		  !memcmp(buf, all->data + from, to - from);

	if (!ok)
		fprintf(stderr, "  read %zd of [%" PRIu64 ", %" PRIu64 ")\n", r,
			from, to);
	free(buf);
	return ok;
}

/* The one damage record p has, or a zeroed one. */
static struct tfs_damage only_damage(struct tfs_partition *p)
{
	struct tfs_damage *d, one = { 0 };
	size_t n = tfs_partition_damage(p, &d);

	CHECK_EQ(n, 1);
	if (n >= 1)
		one = d[0];
	free(d);
	return one;
}

/* --- cases ------------------------------------------------------------------ */

/* A partition with 6+ sealed segments of 20-line batches. */
struct fixture {
	char dir[192];
	int dfd;
	struct tfs_settings *st;
	struct tfs_partition *p;
	struct tfs_buf all;
	uint64_t bases[64];
	size_t nsegs;
};

static void fixture_init(struct fixture *fx, int nbatches, int lines)
{
	memset(fx, 0, sizeof(*fx));
	fx->dfd = new_dir(fx->dir, sizeof(fx->dir));
	fx->st = tl_settings(&tl, SEG_BYTES);
	CHECK_EQ(open_part(fx->dfd, fx->st, &fx->p), 0);
	fill(fx->p, nbatches, lines, &fx->all);
	reopen(fx->dfd, fx->st, &fx->p);
	/* The partition's own directory. */
	size_t n = strlen(fx->dir);
	snprintf(fx->dir + n, sizeof(fx->dir) - n, "/0");
	fx->nsegs = bases_of(fx->dir, fx->bases, 64);
	CHECK(fx->nsegs >= 5);
}

static void fixture_release(struct fixture *fx)
{
	if (fx->p)
		close_part(fx->p);
	tfs_settings_unref(fx->st);
	tfs_buf_release(&fx->all);
	close(fx->dfd);
}

/* Checks what reads do around a damaged batch e of a partition, whose
 * bytes [lo, hi) are good but for e. */
static void check_reads_around(struct tfs_partition *p,
			       const struct tfs_buf *all,
			       const struct tfs_index_entry *e, uint64_t lo,
			       uint64_t hi)
{
	char *buf = tfs_malloc(all->len);
	size_t got;

	/* At the batch, inside it: EIO. */
	CHECK_EQ(read_once(p, e->offset, 100, buf, &got), TFS_ECORRUPT);
	CHECK_EQ(read_once(p, e->offset + e->length / 2, 10, buf, &got),
		 TFS_ECORRUPT);
	CHECK_EQ(read_once(p, e->offset + e->length - 1, 1 << 20, buf, &got),
		 TFS_ECORRUPT);
	/* From before it: the bytes up to it, exactly. */
	CHECK_EQ(read_once(p, e->offset - 1000, 1 << 20, buf, &got), 0);
	CHECK_EQ(got, 1000);
	CHECK(!memcmp(buf, all->data + e->offset - 1000, got));
	/* Everything before and after it. */
	CHECK(reads_back(p, all, lo, e->offset));
	CHECK(reads_back(p, all, e->offset + e->length, hi));
	/* A read of the whole file stops there. */
	CHECK_EQ(tl_read_at(p, 0, buf, all->len), TFS_ECORRUPT);
	free(buf);
}

static void test_log_flip(void)
{
	TEST("a flipped byte in a sealed .log: EIO at that batch, the rest "
	     "served, recorded and logged once");
	struct fixture fx;
	struct tfs_index_entry e1, e2;
	char name[64];

	fixture_init(&fx, 120, LINES_PER_BATCH);
	/* Batch 3 of segment 1, flipped with the partition closed... */
	CHECK_EQ(entry_of(fx.dir, fx.bases[1], 3, &e1), 0);
	close_part(fx.p);
	flip(fx.dir, fx.bases[1], "log", (off_t)(e1.offset - fx.bases[1] + 7));
	CHECK_EQ(open_part(fx.dfd, fx.st, &fx.p), 0);
	/* ...and batch 5 of segment 3 while it is open. */
	CHECK_EQ(entry_of(fx.dir, fx.bases[3], 5, &e2), 0);
	flip(fx.dir, fx.bases[3], "log", (off_t)(e2.offset - fx.bases[3] + 30));
	CHECK_EQ(info_of(fx.p).corrupt_batches, 0);

	log_start();
	check_reads_around(fx.p, &fx.all, &e1, 0, e2.offset);
	/* Lookups that need the batch's bytes fail, others work. */
	uint64_t off;
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, e1.record + 2, &off),
		 TFS_ECORRUPT);
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, e1.record, &off), 0);
	CHECK_EQ(off, e1.offset);
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, e1.record + 22, &off),
		 0);
	CHECK_EQ(off, e1.offset + e1.length + 2 * (e1.length / 20));
	/* Replication fetches: the batches before it, then nothing. */
	struct tfs_index_entry *ev;
	struct tfs_readv rv;
	size_t n;
	uint64_t from = fx.bases[1];

	CHECK_EQ(tfs_partition_read_batches(fx.p, from, 1 << 20, true, &ev, &n,
					    &rv),
		 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(rv.len, e1.offset - from);
	tfs_readv_release(&rv);
	free(ev);
	CHECK_EQ(tfs_partition_read_batches(fx.p, e1.offset, 1 << 20, true,
					    &ev, &n, &rv),
		 TFS_ECORRUPT);
	CHECK_EQ(n, 0);
	/* Read again and again: one record, one line. */
	for (int i = 0; i < 5; i++) {
		char b[10];
		size_t got;

		CHECK_EQ(read_once(fx.p, e1.offset, sizeof(b), b, &got),
			 TFS_ECORRUPT);
	}
	check_reads_around(fx.p, &fx.all, &e2, e1.offset + e1.length,
			   fx.all.len);
	log_stop();

	struct tfs_damage *d;
	n = tfs_partition_damage(fx.p, &d);
	CHECK_EQ(n, 2);
	if (n == 2) {
		CHECK_EQ(d[0].kind, TFS_DAMAGE_BATCH);
		CHECK_EQ(d[0].segment, fx.bases[1]);
		CHECK_EQ(d[0].offset, e1.offset);
		CHECK_EQ(d[0].length, e1.length);
		CHECK_EQ(d[0].entry, 3);
		CHECK_EQ(d[0].batches, 1);
		CHECK_EQ(d[1].offset, e2.offset);
		CHECK_EQ(d[1].segment, fx.bases[3]);
	}
	free(d);
	CHECK_EQ(info_of(fx.p).corrupt_batches, 2);
	tfs_segment_name(fx.bases[1], "log", name, sizeof(name));
	char at[32];
	snprintf(at, sizeof(at), "offset %" PRIu64 " ", e1.offset);
	CHECKF(log_lines(name, NULL) == 1, "%d lines name %s",
	       log_lines(name, NULL), name);
	CHECK_EQ(log_lines(name, at), 1);
	tfs_segment_name(fx.bases[3], "log", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	/* Appends go on. */
	CHECK_EQ(append_text(fx.p, "after\n", 6), 0);
	fixture_release(&fx);
}

static void test_index_flip(void)
{
	TEST("a flipped byte in a sealed .index entry: lookups and reads that "
	     "need it fail, the others work, logged once");
	struct fixture fx;
	struct tfs_index_entry prev, e, next;
	char name[64];
	uint64_t off;

	fixture_init(&fx, 120, LINES_PER_BATCH);
	uint64_t base = fx.bases[2];
	CHECK_EQ(entry_of(fx.dir, base, 4, &prev), 0);
	CHECK_EQ(entry_of(fx.dir, base, 5, &e), 0);
	CHECK_EQ(entry_of(fx.dir, base, 6, &next), 0);
	/* The record field of entry 5. */
	flip(fx.dir, base, "index",
	     TFS_INDEX_HEADER_SIZE + 5 * TFS_INDEX_ENTRY_SIZE + 8);

	log_start();
	for (uint64_t r = e.record; r < e.record + e.count; r += 7)
		CHECK_EQ(tfs_partition_offset_of_record(fx.p, r, &off),
			 TFS_ECORRUPT);
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, prev.record + 3, &off),
		 0);
	CHECK_EQ(off, prev.offset + 3 * (prev.length / 20));
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, next.record, &off), 0);
	CHECK_EQ(off, next.offset);
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, 10, &off), 0);
	/* Reads: up to the batch, not into it; after it, fine. */
	char buf[4096];
	size_t got;
	CHECK_EQ(read_once(fx.p, e.offset, 100, buf, &got), TFS_ECORRUPT);
	CHECK_EQ(read_once(fx.p, prev.offset, sizeof(buf), buf, &got), 0);
	CHECK_EQ(got, prev.length);
	CHECK(reads_back(fx.p, &fx.all, next.offset, fx.all.len));
	CHECK(reads_back(fx.p, &fx.all, 0, e.offset));
	log_stop();

	struct tfs_damage d = only_damage(fx.p);
	CHECK_EQ(d.kind, TFS_DAMAGE_ENTRY);
	CHECK_EQ(d.segment, base);
	CHECK_EQ(d.entry, 5);
	CHECK_EQ(d.offset, e.offset);
	CHECK_EQ(d.length, e.length);
	CHECK_EQ(info_of(fx.p).corrupt_batches, 1);
	tfs_segment_name(base, "index", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	fixture_release(&fx);
}

static int compress_all(struct tfs_partition *p, size_t frame)
{
	int n = 0, rc;

	while ((rc = tfs_partition_compress_next(p, 3, frame)) == 1)
		n++;
	return rc < 0 ? rc : n;
}

static void test_zst_frame(void)
{
	TEST("a flipped byte in a .zst frame: EIO from that frame on, the "
	     "frames before it served, logged once");
	struct fixture fx;
	struct tfs_zindex zi;
	char path[256], name[64];

	fixture_init(&fx, 120, LINES_PER_BATCH);
	CHECK(compress_all(fx.p, 4096) >= 4);
	uint64_t base = fx.bases[1];
	CHECK(exists(fx.dir, base, "zst") && !exists(fx.dir, base, "log"));
	file_of(fx.dir, base, "zst", path, sizeof(path));
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && tfs_zindex_load(fd, &zi) == 0);
	close(fd);
	CHECK(zi.n >= 3);
	/* The middle of frame 1's compressed bytes. */
	const struct tfs_zframe f = zi.f[1];
	flip(fx.dir, base, "zst", (off_t)(f.pos + f.comp_len / 2));
	tfs_zindex_release(&zi);

	log_start();
	char buf[100], *whole = tfs_malloc(f.raw_len);
	size_t got;
	/* A read of the frame returns what comes before the damage (none
	 * when it does not decompress). */
	int rc = read_once(fx.p, base + f.raw_off, f.raw_len, whole, &got);
	CHECK(rc == TFS_ECORRUPT || (rc == 0 && got < f.raw_len &&
				     !memcmp(whole, fx.all.data + base +
							    f.raw_off,
					     got)));
	free(whole);
	CHECK(reads_back(fx.p, &fx.all, 0, base + f.raw_off));
	CHECK(reads_back(fx.p, &fx.all, base + f.raw_off + f.raw_len,
			 fx.all.len));
	log_stop();

	struct tfs_damage d = only_damage(fx.p);
	/* From the damage on, nothing of the frame; before it, all. */
	CHECK_EQ(read_once(fx.p, d.offset, sizeof(buf), buf, &got),
		 TFS_ECORRUPT);
	CHECK_EQ(read_once(fx.p, d.offset + d.length - 1, sizeof(buf), buf,
			   &got),
		 TFS_ECORRUPT);
	CHECK(reads_back(fx.p, &fx.all, 0, d.offset));
	/* Garbage that still decompresses to the right size is caught by
	 * the batch CRC instead. */
	CHECK(d.kind == TFS_DAMAGE_FRAME || d.kind == TFS_DAMAGE_BATCH);
	CHECK(d.zst);
	CHECK_EQ(d.segment, base);
	CHECK(d.offset >= base + f.raw_off &&
	      d.offset < base + f.raw_off + f.raw_len);
	CHECK(info_of(fx.p).corrupt_batches >= 1);
	tfs_segment_name(base, "zst", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	/* Repair does not rewrite a compressed segment. */
	struct tfs_index_entry e;
	CHECK_EQ(entry_of(fx.dir, base, 0, &e), 0);
	CHECK_EQ(tfs_partition_repair(fx.p, &e, fx.all.data + e.offset),
		 -ENOENT);
	if (d.kind == TFS_DAMAGE_BATCH) {
		e.offset = d.offset;
		e.length = (uint32_t)d.length;
	} else {
		e.offset = d.offset;
	}
	CHECK_EQ(tfs_partition_repair(fx.p, &e, NULL), -EOPNOTSUPP);
	fixture_release(&fx);
}

/* pace() for tfs_partition_scrub: counts calls, never stops. */
static int paces;

static bool pace_count(void *arg, size_t bytes)
{
	paces++;
	return true;
}

static void test_scrub_pass(void)
{
	TEST("the scrubber's pass finds damage in .log, .index and .zst "
	     "without any read");
	struct fixture fx;
	struct tfs_index_entry e1, e2, e3;
	char name[64];

	fixture_init(&fx, 150, LINES_PER_BATCH);
	/* Segment 0 compressed, the others raw. */
	CHECK_EQ(tfs_partition_compress_next(fx.p, 3, 4096), 1);
	CHECK_EQ(entry_of(fx.dir, fx.bases[1], 2, &e1), 0);
	CHECK_EQ(entry_of(fx.dir, fx.bases[3], 7, &e2), 0);
	CHECK_EQ(entry_of(fx.dir, fx.bases[4], 1, &e3), 0);
	flip(fx.dir, fx.bases[1], "log", (off_t)(e1.offset - fx.bases[1] + 3));
	flip(fx.dir, fx.bases[3], "index",
	     TFS_INDEX_HEADER_SIZE + 7 * TFS_INDEX_ENTRY_SIZE + 20);
	/* Two batches of one segment: both found in one pass. */
	flip(fx.dir, fx.bases[4], "log", (off_t)(e3.offset - fx.bases[4]));
	flip(fx.dir, fx.bases[4], "log",
	     (off_t)(e3.offset - fx.bases[4] + 2 * e3.length + 5));
	/* A frame of the compressed one. */
	char path[256];
	struct tfs_zindex zi;
	file_of(fx.dir, fx.bases[0], "zst", path, sizeof(path));
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && tfs_zindex_load(fd, &zi) == 0);
	close(fd);
	flip(fx.dir, fx.bases[0], "zst", (off_t)(zi.f[0].pos + 20));
	tfs_zindex_release(&zi);

	log_start();
	paces = 0;
	int64_t n = tfs_partition_scrub(fx.p, 4096, pace_count, NULL);
	int64_t n2 = tfs_partition_scrub(fx.p, 1 << 20, pace_count, NULL);
	log_stop();
	CHECK(n > (int64_t)(fx.all.len / 2));
	CHECK(n2 > 0);
	CHECK(paces > 10);
	struct tfs_partition_info in = info_of(fx.p);
	CHECK_EQ(in.reads, 0);

	struct tfs_damage *d;
	size_t nd = tfs_partition_damage(fx.p, &d);
	int kinds[4] = { 0 };
	uint64_t batches = 0;
	for (size_t i = 0; i < nd; i++) {
		kinds[d[i].kind]++;
		batches += d[i].batches;
	}
	/* A frame that does not decompress counts every batch in it. */
	CHECK_EQ(in.corrupt_batches, batches);
	CHECK(batches >= 5);
	CHECK_EQ(nd, 5);
	CHECK(kinds[TFS_DAMAGE_FRAME] + kinds[TFS_DAMAGE_BATCH] == 4);
	CHECK_EQ(kinds[TFS_DAMAGE_ENTRY], 1);
	for (size_t i = 0; i < nd; i++) {
		if (d[i].kind == TFS_DAMAGE_ENTRY) {
			CHECK_EQ(d[i].segment, fx.bases[3]);
			CHECK_EQ(d[i].entry, 7);
			CHECK_EQ(d[i].offset, e2.offset);
			CHECK_EQ(d[i].length, e2.length);
		}
	}
	free(d);
	/* Two passes, each damage logged once. */
	tfs_segment_name(fx.bases[1], "log", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	tfs_segment_name(fx.bases[3], "index", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	tfs_segment_name(fx.bases[4], "log", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 2);
	tfs_segment_name(fx.bases[0], "zst", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	fixture_release(&fx);
}

static void test_compactor_skips(void)
{
	TEST("the compactor leaves a damaged segment raw, says so once, and "
	     "compresses the later ones");
	struct fixture fx;
	struct tfs_index_entry e1, e3;
	char name[64];

	fixture_init(&fx, 150, LINES_PER_BATCH);
	size_t sealed = fx.nsegs - 1;
	CHECK_EQ(entry_of(fx.dir, fx.bases[1], 4, &e1), 0);
	CHECK_EQ(entry_of(fx.dir, fx.bases[3], 2, &e3), 0);
	flip(fx.dir, fx.bases[1], "log", (off_t)(e1.offset - fx.bases[1] + 9));
	flip(fx.dir, fx.bases[3], "index",
	     TFS_INDEX_HEADER_SIZE + 2 * TFS_INDEX_ENTRY_SIZE + 33);

	log_start();
	int done = compress_all(fx.p, 4096);
	int again = compress_all(fx.p, 4096);
	log_stop();
	/* Found by the compactor itself, while compressing: never baked
	 * into a frame. */
	CHECK_EQ(done, (int)sealed);	/* the two count as handled */
	CHECK_EQ(again, 0);
	for (size_t i = 0; i < sealed; i++) {
		bool bad = i == 1 || i == 3;

		CHECKF(exists(fx.dir, fx.bases[i], "zst") == !bad &&
			       exists(fx.dir, fx.bases[i], "log") == bad,
		       "segment %zu", i);
	}
	struct tfs_partition_info in = info_of(fx.p);
	CHECK_EQ(in.compressed_segments, sealed - 2);
	CHECK_EQ(in.corrupt_batches, 2);
	tfs_segment_name(fx.bases[1], "log", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	tfs_segment_name(fx.bases[3], "index", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	snprintf(name, sizeof(name), "%020" PRIu64 " stays uncompressed",
		 fx.bases[1]);
	CHECK_EQ(log_lines(name, NULL), 1);
	snprintf(name, sizeof(name), "%020" PRIu64 " stays uncompressed",
		 fx.bases[3]);
	CHECK_EQ(log_lines(name, NULL), 1);
	/* Everything else reads back, compressed or not. */
	CHECK(reads_back(fx.p, &fx.all, 0, e1.offset));
	CHECK(reads_back(fx.p, &fx.all, e1.offset + e1.length, e3.offset));
	CHECK(reads_back(fx.p, &fx.all, e3.offset + e3.length, fx.all.len));

	/* Damage a read found first: skipped, said once. */
	struct tfs_index_entry e5;
	CHECK_EQ(entry_of(fx.dir, fx.bases[sealed], 0, &e5), 0);
	fill(fx.p, 30, LINES_PER_BATCH, &fx.all);
	reopen(fx.dfd, fx.st, &fx.p);
	flip(fx.dir, fx.bases[sealed], "log", 3);
	char b[10];
	size_t got;
	log_start();
	CHECK_EQ(read_once(fx.p, e5.offset, sizeof(b), b, &got), TFS_ECORRUPT);
	compress_all(fx.p, 4096);
	compress_all(fx.p, 4096);
	log_stop();
	CHECK(exists(fx.dir, fx.bases[sealed], "log"));
	snprintf(name, sizeof(name), "%020" PRIu64 " stays uncompressed",
		 fx.bases[sealed]);
	CHECK_EQ(log_lines(name, NULL), 1);
	fixture_release(&fx);
}

static void test_repair(void)
{
	TEST("repair: damaged bytes, a damaged entry, refused when not "
	     "exactly the damaged place; counted; compressed afterwards");
	struct fixture fx;
	struct tfs_index_entry e, ej, prev, x;
	char buf[100];
	size_t got;
	uint64_t off;

	fixture_init(&fx, 120, LINES_PER_BATCH);
	uint64_t base = fx.bases[1];
	CHECK_EQ(entry_of(fx.dir, base, 3, &e), 0);
	CHECK_EQ(entry_of(fx.dir, base, 6, &prev), 0);
	CHECK_EQ(entry_of(fx.dir, base, 7, &ej), 0);
	flip(fx.dir, base, "log", (off_t)(e.offset - base + 11));
	flip(fx.dir, base, "index",
	     TFS_INDEX_HEADER_SIZE + 7 * TFS_INDEX_ENTRY_SIZE + 2);

	log_start();
	/* Nothing known yet: nothing to repair. */
	CHECK_EQ(tfs_partition_repair(fx.p, &e, fx.all.data + e.offset),
		 -ENOENT);
	CHECK_EQ(read_once(fx.p, e.offset, sizeof(buf), buf, &got),
		 TFS_ECORRUPT);
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, ej.record, &off),
		 TFS_ECORRUPT);
	CHECK_EQ(info_of(fx.p).corrupt_batches, 2);

	/* Bytes that do not match the entry. */
	char *bad = tfs_malloc(e.length);
	memcpy(bad, fx.all.data + e.offset, e.length);
	bad[5] ^= 2;
	CHECK_EQ(tfs_partition_repair(fx.p, &e, bad), TFS_ECORRUPT);
	free(bad);
	/* Bytes needed: the damaged ones cannot stay. */
	CHECK_EQ(tfs_partition_repair(fx.p, &e, NULL), -EINVAL);
	/* Another batch's entry and bytes, not at a damaged place. */
	CHECK_EQ(entry_of(fx.dir, base, 2, &x), 0);
	CHECK_EQ(tfs_partition_repair(fx.p, &x, fx.all.data + x.offset),
		 -ENOENT);
	/* An entry at the right offset that describes another batch: the
	 * bytes fit their CRC, but not the place. */
	x = e;
	x.length = e.length - e.length / e.count;
	x.count = e.count - 1;
	x.crc = tfs_crc32c(0, fx.all.data + e.offset, x.length);
	CHECK_EQ(tfs_partition_repair(fx.p, &x, fx.all.data + e.offset),
		 TFS_ENOTBOUNDARY);
	CHECK_EQ(info_of(fx.p).repaired_batches, 0);

	/* The bytes, from a healthy copy. */
	CHECK_EQ(tfs_partition_repair(fx.p, &e, fx.all.data + e.offset), 0);
	CHECK_EQ(read_once(fx.p, e.offset, sizeof(buf), buf, &got), 0);
	CHECK(!memcmp(buf, fx.all.data + e.offset, got));
	CHECK_EQ(info_of(fx.p).corrupt_batches, 1);
	CHECK_EQ(info_of(fx.p).repaired_batches, 1);
	/* Twice is nothing to do. */
	CHECK_EQ(tfs_partition_repair(fx.p, &e, fx.all.data + e.offset),
		 -ENOENT);

	/* The entry: a wrong one is refused (not where the batch before it
	 * ends), the right one rewrites it; the bytes on disk are good. */
	x = ej;
	x.offset += ej.length / ej.count;
	CHECK_EQ(tfs_partition_repair(fx.p, &x, NULL), TFS_ENOTBOUNDARY);
	x = ej;
	x.record += 1;
	CHECK_EQ(tfs_partition_repair(fx.p, &x, NULL), TFS_ENOTBOUNDARY);
	CHECK_EQ(tfs_partition_repair(fx.p, &ej, NULL), 0);
	CHECK_EQ(tfs_partition_offset_of_record(fx.p, ej.record + 1, &off), 0);
	CHECK_EQ(off, ej.offset + ej.length / 20);
	struct tfs_partition_info in = info_of(fx.p);
	CHECK_EQ(in.corrupt_batches, 0);
	CHECK_EQ(in.repaired_batches, 2);
	struct tfs_damage *d;
	CHECK_EQ(tfs_partition_damage(fx.p, &d), 0);
	CHECK(d == NULL);
	log_stop();
	char name[64];
	tfs_segment_name(base, "log", name, sizeof(name));
	CHECK_EQ(log_lines(name, ") repaired"), 2);

	/* Whole again: everything reads, after a restart too, and the
	 * compactor takes it. */
	CHECK(reads_back(fx.p, &fx.all, 0, fx.all.len));
	reopen(fx.dfd, fx.st, &fx.p);
	CHECK(reads_back(fx.p, &fx.all, 0, fx.all.len));
	CHECK(compress_all(fx.p, 4096) >= 4);
	CHECK(exists(fx.dir, base, "zst"));
	CHECK(reads_back(fx.p, &fx.all, 0, fx.all.len));
	fixture_release(&fx);
}

static void test_truncate_forgets(void)
{
	TEST("damage in bytes a truncation removes leaves the list");
	struct fixture fx;
	struct tfs_index_entry e, cut;
	char buf[10];
	size_t got;

	fixture_init(&fx, 120, LINES_PER_BATCH);
	CHECK_EQ(tfs_partition_set_role(fx.p, TFS_ROLE_FOLLOWER, 0), 0);
	log_start();
	uint64_t base = fx.bases[fx.nsegs - 2];
	CHECK_EQ(entry_of(fx.dir, base, 3, &e), 0);
	CHECK_EQ(entry_of(fx.dir, base, 1, &cut), 0);
	flip(fx.dir, base, "log", (off_t)(e.offset - base));
	CHECK_EQ(read_once(fx.p, e.offset, sizeof(buf), buf, &got),
		 TFS_ECORRUPT);
	CHECK_EQ(info_of(fx.p).corrupt_batches, 1);
	CHECK_EQ(tfs_partition_truncate(fx.p, cut.offset), 0);
	log_stop();
	CHECK_EQ(info_of(fx.p).corrupt_batches, 0);
	CHECK(reads_back(fx.p, &fx.all, 0, cut.offset));
	fixture_release(&fx);
}

static void test_read_ahead(void)
{
	TEST("sequential reads through a read-ahead read each batch once");
	struct fixture fx;
	struct tfs_readahead ra = { 0 };

	/* Batches of 100 lines (about 4.6 KiB), reads of 1000 bytes. */
	fixture_init(&fx, 40, 100);
	char *buf = tfs_malloc(fx.all.len);
	unsigned long before = tfs_sys_calls(TFS_SYS_PREAD);
	size_t got = 0;

	while (got < fx.all.len) {
		struct tfs_readv rv;
		int rc = tfs_partition_read_ahead(fx.p, &ra, got, 1000, &rv);

		CHECK_EQ(rc, 0);
		if (rc || rv.len == 0)
			break;
		tfs_readv_copy(&rv, 0, buf + got, rv.len);
		got += rv.len;
		tfs_readv_release(&rv);
	}
	unsigned long with_ra = tfs_sys_calls(TFS_SYS_PREAD) - before;
	CHECK_EQ(got, fx.all.len);
	CHECK(!memcmp(buf, fx.all.data, fx.all.len));
	tfs_readahead_release(&ra);

	/* Without: every read reads (and checks) its whole batch again. */
	before = tfs_sys_calls(TFS_SYS_PREAD);
	CHECK(reads_back(fx.p, &fx.all, 0, fx.all.len));
	size_t small = 0;
	while (small < fx.all.len) {
		size_t n;

		if (read_once(fx.p, small, 1000, buf, &n) || !n)
			break;
		small += n;
	}
	unsigned long without = tfs_sys_calls(TFS_SYS_PREAD) - before;
	/* 40 batches of about 4.6 reads each: with the read-ahead, one
	 * pread of each batch's bytes and one of its index entry; without
	 * it, every read reads its batch again and looks it up. */
	CHECKF(with_ra <= 40 * 2 + 5 && without > 40 * 4,
	       "preads: %lu with the read-ahead, %lu without", with_ra,
	       without);
	free(buf);
	fixture_release(&fx);
}

/* --- the scrubber thread ---------------------------------------------------- */

static void test_scrubber_thread(void)
{
	TEST("the scrubber thread finds damage without any read");
	char dir[128], pdir[192];
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_scrubber *sc;
	struct tfs_index_entry e;
	uint64_t bases[64];
	char err[128];

	snprintf(dir, sizeof(dir), "%s/store%d", tl.root, counter++);
	CHECK_EQ(tfs_store_open(dir, &tl.conf, &s), 0);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "t" }, &t), 0);
	CHECK_EQ(tfs_topic_set_config(t, "segment.bytes", "16KiB", err,
				      sizeof(err)), 0);
	struct tfs_partition *p = tfs_topic_partition(t, 0);
	struct tfs_buf all = TFS_BUF_INIT;
	fill(p, 100, LINES_PER_BATCH, &all);
	snprintf(pdir, sizeof(pdir), "%s/topics/t/0", dir);
	size_t n = bases_of(pdir, bases, 64);
	CHECK(n >= 4);
	CHECK_EQ(entry_of(pdir, bases[2], 1, &e), 0);
	flip(pdir, bases[2], "log", (off_t)(e.offset - bases[2] + 1));

	log_start();
	CHECK_EQ(tfs_scrubber_start(s, 50, 64 << 20, &sc), 0);
	int64_t deadline = tfs_mono_ms() + 30000;
	while (info_of(p).corrupt_batches == 0 && tfs_mono_ms() < deadline) {
		struct timespec ts = { 0, 10 * 1000000 };

		nanosleep(&ts, NULL);
	}
	/* Pass after pass: found and logged once. */
	uint64_t passes = tfs_scrubber_passes(sc);
	while (tfs_scrubber_passes(sc) < passes + 2 &&
	       tfs_mono_ms() < deadline) {
		struct timespec ts = { 0, 10 * 1000000 };

		nanosleep(&ts, NULL);
	}
	tfs_scrubber_stop(sc);
	log_stop();
	CHECK(tfs_mono_ms() < deadline);
	CHECK_EQ(info_of(p).corrupt_batches, 1);
	CHECK_EQ(info_of(p).reads, 0);
	char name[64];
	tfs_segment_name(bases[2], "log", name, sizeof(name));
	CHECK_EQ(log_lines(name, NULL), 1);
	/* Off: nothing runs. */
	CHECK_EQ(tfs_scrubber_start(s, 0, 1 << 20, &sc), 0);
	CHECK(sc == NULL);
	tfs_scrubber_stop(sc);

	tfs_buf_release(&all);
	tfs_partition_unref(p);
	tfs_topic_unref(t);
	tfs_store_close(s);
}

int main(void)
{
	if (tl_env_init(&tl, "corrupt", 0))
		return 1;

	test_log_flip();
	test_index_flip();
	test_zst_frame();
	test_scrub_pass();
	test_compactor_skips();
	test_repair();
	test_truncate_forgets();
	test_read_ahead();
	test_scrubber_thread();

	tl_env_release(&tl);
	return check_done();
}
