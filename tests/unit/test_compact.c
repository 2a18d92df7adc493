/*
 * Unit tests for retention and compression: the .zst frame table, reads of
 * partial frames, the frame cache, retention by size and by time, reads
 * across the raw/compressed boundary, readers holding a deleted segment,
 * and a crash at each step of a rewrite and of a deletion.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"
#include "compress.h"
#include "conf.h"
#include "err.h"
#include "log.h"
#include "partition.h"
#include "segment.h"
#include "sysio.h"
#include "util.h"

static struct tl_env tl;

/* Web-log-like lines: compressible, varied. */
static size_t make_line(char *buf, size_t cap, int i)
{
	static const char *const paths[] = { "/", "/index.html", "/api/v1/items",
					     "/static/app.js", "/login" };
	return (size_t)snprintf(
		buf, cap,
		"10.0.%d.%d - - [22/Nov/2026:00:%02d:%02d +0000] \"GET %s "
		"HTTP/1.1\" %d %d \"-\" \"Mozilla/5.0\" req=%d\n",
		i % 256, (i * 7) % 256, (i / 60) % 60, i % 60, paths[i % 5],
		i % 17 ? 200 : 404, 100 + (i * 37) % 5000, i);
}

/* Fills the partition with n lines in batches of 5; returns the bytes. */
static void fill(struct tfs_partition *p, int n, struct tfs_buf *all)
{
	char batch[2048];
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		len += make_line(batch + len, sizeof(batch) - len, i);
		if (i % 5 == 4 || i == n - 1) {
			CHECK_EQ(tl_append_text(p, batch), 0);
			tfs_buf_add(all, batch, len);
			len = 0;
		}
	}
}

/* Closes (checkpoint) and reopens, so every sealed segment is eligible. */
static void reopen(int dfd, struct tfs_settings *st, struct tfs_partition **p)
{
	tfs_partition_close(*p, TFS_ESHUTDOWN);
	tfs_partition_unref(*p);
	CHECK_EQ(tl_open_part(&tl, dfd, st, p), 0);
}

static int compress_all(struct tfs_partition *p, size_t frame)
{
	int n = 0, rc;

	while ((rc = tfs_partition_compress_next(p, 3, frame)) == 1)
		n++;
	return rc < 0 ? rc : n;
}

static void test_frames(void)
{
	TEST("compressed segment: frames, partial reads, cache, reopen");
	int dfd = tl_new_dir(&tl);
	struct tfs_settings *st = tl_settings(&tl, 64 * 1024);
	struct tfs_buf all = TFS_BUF_INIT;
	struct tfs_partition *p;
	struct tfs_partition_info in;

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	fill(p, 3000, &all);
	reopen(dfd, st, &p);
	int n = compress_all(p, 8 * 1024);
	tfs_partition_info(p, &in);
	CHECKF(n >= 3 && (uint64_t)n == in.segments - 1, "%d of %" PRIu64, n,
	       in.segments);
	CHECK_EQ(in.compressed_segments, (uint64_t)n);
	CHECKF(in.data_bytes * 3 < in.logical_bytes,
	       "ratio %" PRIu64 "/%" PRIu64, in.logical_bytes, in.data_bytes);
	CHECK(tl_content_is(p, 0, all.data));

	/* Reads that start and end inside frames, across frames and across
	 * the compressed/raw boundary, are byte-identical. */
	int bad = 0;
	char *buf = tfs_malloc(70000);
	for (uint64_t off = 0; off + 1 < all.len; off += 4093) {
		size_t len = (size_t)TFS_MIN((uint64_t)(1 + (off * 31) % 69999),
					     all.len - off);
		if (tl_read_at(p, off, buf, len) != (ssize_t)len ||
		    memcmp(buf, all.data + off, len))
			bad++;
	}
	free(buf);
	CHECK_EQ(bad, 0);

	TEST("frame cache: a sequential reader decompresses each frame once");
	struct tfs_zcache_stats a, b;
	tfs_zcache_set_capacity(0);
	tfs_zcache_set_capacity(64 << 20);
	tfs_zcache_stats(&a);
	char small[1000];
	for (uint64_t off = 0; off < 64 * 1024; off += sizeof(small))
		tl_read_at(p, off, small, sizeof(small));
	tfs_zcache_stats(&b);
	CHECKF(b.misses - a.misses <= 9, "%" PRIu64 " misses for 8 frames",
	       b.misses - a.misses);
	CHECK(b.hits - a.hits > 40);

	/* After a restart the .zst files are used as they are. */
	reopen(dfd, st, &p);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.compressed_segments, (uint64_t)n);
	CHECK(tl_content_is(p, 0, all.data));
	uint64_t off;
	CHECK_EQ(tfs_partition_offset_of_record(p, 1234, &off), 0);
	char line[512];
	size_t ll = make_line(line, sizeof(line), 1234);
	CHECK(memcmp(all.data + off, line, ll) == 0);
	CHECK(faccessat(dfd, "0/00000000000000000000.log", F_OK, 0) < 0);
	CHECK(faccessat(dfd, "0/00000000000000000000.zst", F_OK, 0) == 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);

	TEST("a damaged .zst is refused, never read");
	int zfd = openat(dfd, "0/00000000000000000000.zst", O_RDWR);
	struct stat zs;
	fstat(zfd, &zs);
	unsigned char c;
	CHECK(pread(zfd, &c, 1, zs.st_size - 30) == 1);
	c ^= 1;
	CHECK(pwrite(zfd, &c, 1, zs.st_size - 30) == 1);
	close(zfd);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), TFS_ECORRUPT);
	tfs_settings_unref(st);
	tfs_buf_release(&all);
	close(dfd);
}

static void test_retention(void)
{
	struct tfs_settings *st = tl_settings(&tl, 16 * 1024);
	struct tfs_buf all = TFS_BUF_INIT;
	struct tfs_partition *p;
	struct tfs_partition_info in;
	int dfd = tl_new_dir(&tl);

	TEST("retention by size deletes the oldest sealed segments");
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	fill(p, 2000, &all);
	tfs_partition_info(p, &in);
	uint64_t segs = in.segments;
	CHECK(segs > 5);

	/* A reader holding the first segment across its deletion. */
	struct tfs_readv held;
	CHECK_EQ(tfs_partition_read(p, 100, 1000, &held), 0);

	int deleted = tfs_partition_retain(p, tfs_now_ms(), -1, 50 * 1024);
	CHECK(deleted > 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.segments, segs - (uint64_t)deleted);
	/* Kafka's rule: what stays is at least retention.bytes, and without
	 * the oldest remaining sealed segment it would not be. */
	CHECK(in.data_bytes >= 50 * 1024);
	char first[64];
	struct stat fst;
	snprintf(first, sizeof(first), "0/%020llu.log",
		 (unsigned long long)in.start);
	CHECK_EQ(fstatat(dfd, first, &fst, 0), 0);
	CHECK(in.data_bytes - (uint64_t)fst.st_size < 50 * 1024);
	CHECK(in.start > 0);
	CHECK_EQ(in.end, all.len);
	CHECK_EQ(in.deleted_segments, (uint64_t)deleted);
	CHECK(tl_content_is(p, in.start, all.data + in.start));
	struct tfs_readv rv;
	CHECK_EQ(tfs_partition_read(p, in.start - 1, 10, &rv),
		 TFS_EBELOWSTART);
	uint64_t o;
	CHECK_EQ(tfs_partition_offset_of_record(p, 0, &o), TFS_EBELOWSTART);
	/* ...still reads the bytes it held. */
	char buf[1000];
	ssize_t got = tfs_readv_copy(&held, 0, buf, sizeof(buf));
	CHECK(got == 1000 && memcmp(buf, all.data + 100, 1000) == 0);
	tfs_readv_release(&held);

	TEST("retention survives a restart; start and offsets stay");
	uint64_t start = in.start;
	reopen(dfd, st, &p);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.start, start);
	CHECK_EQ(in.end_record, 2000);
	CHECK(tl_content_is(p, start, all.data + start));

	TEST("retention by time, the active segment is never deleted");
	CHECK_EQ(tfs_partition_retain(p, tfs_now_ms() + 10000, 1000, -1),
		 (int)in.segments - 1);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.segments, 1);
	CHECK(tl_content_is(p, in.start, all.data + in.start));
	CHECK_EQ(tfs_partition_retain(p, tfs_now_ms() + 10000, 0, 0), 0);
	CHECK_EQ(tfs_partition_retain(p, tfs_now_ms(), 60000, -1), 0);

	TEST("segment.ms rolls an idle active segment");
	CHECK_EQ(tfs_partition_roll_old(p, tfs_now_ms() + 5000, 1000), 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.segments, 2);
	/* An empty active segment is not rolled again. */
	CHECK_EQ(tfs_partition_roll_old(p, tfs_now_ms() + 9000, 1000), 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.segments, 2);
	CHECK_EQ(tl_append_text(p, "after roll\n"), 0);
	tfs_buf_add(&all, "after roll\n", 11);
	CHECK(tl_content_is(p, in.start, all.data + in.start));

	TEST("everything retained away: the log restarts at the end");
	CHECK_EQ(tfs_partition_roll_old(p, tfs_now_ms() + 5000, 1000), 0);
	CHECK_EQ(tfs_partition_retain(p, tfs_now_ms() + 10000, 1000, -1), 2);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.start, all.len);
	CHECK_EQ(in.end, all.len);
	reopen(dfd, st, &p);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.start, all.len);
	CHECK_EQ(in.end_record, 2001);
	CHECK_EQ(tl_append_text(p, "next\n"), 0);
	CHECK_EQ(tfs_partition_offset_of_record(p, 2001, &o), 0);
	CHECK_EQ(o, all.len);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	tfs_buf_release(&all);
	close(dfd);
}

/* Runs a compaction pass with the Nth call of op failing and everything
 * after it (a crash there), then reopens: the data must be whole. */
static void crash_compress(enum tfs_sys_op op, unsigned nth, int *fired,
			   int *bad)
{
	struct tfs_settings *st = tl_settings(&tl, 32 * 1024);
	struct tfs_buf all = TFS_BUF_INIT;
	struct tfs_partition *p;
	int dfd = tl_new_dir(&tl);

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	fill(p, 800, &all);
	reopen(dfd, st, &p);
	tfs_sys_fault(op, nth, EIO, TFS_FAULT_STICKY);
	compress_all(p, 4096);
	if (tfs_sys_fault_fired())
		(*fired)++;
	tfs_partition_unref(p);	/* crash */
	tfs_sys_fault_clear();
	if (tl_open_part(&tl, dfd, st, &p)) {
		(*bad)++;
	} else {
		if (!tl_content_is(p, 0, all.data))
			(*bad)++;
		tfs_partition_close(p, TFS_ESHUTDOWN);
		tfs_partition_unref(p);
	}
	tfs_settings_unref(st);
	tfs_buf_release(&all);
	close(dfd);
}

/* The same for retention: after the crash the start may have moved by
 * whole segments; everything from the start must be intact. */
static void crash_retain(unsigned nth, int *fired, int *bad)
{
	struct tfs_settings *st = tl_settings(&tl, 8 * 1024);
	struct tfs_buf all = TFS_BUF_INIT;
	struct tfs_partition *p;
	struct tfs_partition_info in;
	int dfd = tl_new_dir(&tl);

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	fill(p, 600, &all);
	reopen(dfd, st, &p);
	tfs_sys_fault(TFS_SYS_UNLINKAT, nth, EIO, TFS_FAULT_STICKY);
	tfs_partition_retain(p, tfs_now_ms(), -1, 20 * 1024);
	if (tfs_sys_fault_fired())
		(*fired)++;
	tfs_partition_unref(p);
	tfs_sys_fault_clear();
	if (tl_open_part(&tl, dfd, st, &p)) {
		(*bad)++;
	} else {
		tfs_partition_info(p, &in);
		if (in.end != all.len ||
		    !tl_content_is(p, in.start, all.data + in.start))
			(*bad)++;
		tfs_partition_close(p, TFS_ESHUTDOWN);
		tfs_partition_unref(p);
	}
	tfs_settings_unref(st);
	tfs_buf_release(&all);
	close(dfd);
}

static void test_crashes(void)
{
	static const enum tfs_sys_op ops[] = { TFS_SYS_OPENAT, TFS_SYS_PWRITE,
					       TFS_SYS_FSYNC, TFS_SYS_RENAMEAT,
					       TFS_SYS_UNLINKAT };
	static const char *const names[] = { "open", "pwrite", "fsync",
					     "rename", "unlink" };

	for (size_t o = 0; o < TFS_ARRAY_SIZE(ops); o++) {
		char title[96];
		int fired = 0, bad = 0;

		snprintf(title, sizeof(title),
			 "crash at the Nth %s of a compaction: raw or "
			 "compressed, never neither",
			 names[o]);
		TEST(title);
		for (unsigned nth = 1; nth <= 12; nth++)
			crash_compress(ops[o], nth, &fired, &bad);
		CHECKF(fired > 0, "no %s fault fired", names[o]);
		CHECK_EQ(bad, 0);
	}
	TEST("crash at the Nth unlink of a retention run");
	int fired = 0, bad = 0;
	for (unsigned nth = 1; nth <= 10; nth++)
		crash_retain(nth, &fired, &bad);
	CHECK(fired > 0);
	CHECK_EQ(bad, 0);
}

int main(void)
{
	if (tl_env_init(&tl, "compact", 0))
		return 1;
	test_frames();
	test_retention();
	test_crashes();
	tl_env_release(&tl);
	return check_done();
}
