/*
 * Unit tests for the store: the index format, partitions (append, roll,
 * read, lookups by record and time, truncate, epochs, waiters, group
 * commit), recovery from every kind of torn tail, recovery cost bounded by
 * the checkpoint, and crash-at-every-step with a power-loss model built on
 * the syscall table.
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
#include "conf.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "partition.h"
#include "segment.h"
#include "store.h"
#include "sysio.h"
#include "util.h"

static struct tl_env tl;

static void test_index_format(void)
{
	TEST("index entry and header encode/decode, corruption detected");
	struct tfs_index_entry e = { .offset = 4096, .record = 17, .count = 3,
				     .length = 120, .epoch = 2,
				     .timestamp = 1700000000123,
				     .producer = 0x1122334455667788ULL,
				     .sequence = 4000000001u,
				     .crc = 0xdeadbeef },
			       d;
	unsigned char buf[TFS_INDEX_ENTRY_SIZE];

	tfs_index_encode(&e, buf);
	CHECK_EQ(tfs_index_decode(buf, &d), 0);
	CHECK(d.offset == e.offset && d.record == e.record &&
	      d.count == e.count && d.length == e.length &&
	      d.epoch == e.epoch && d.flags == e.flags &&
	      d.timestamp == e.timestamp && d.crc == e.crc &&
	      d.producer == e.producer && d.sequence == e.sequence);
	for (int bit = 0; bit < TFS_INDEX_ENTRY_SIZE * 8; bit += 7) {
		buf[bit / 8] ^= (unsigned char)(1 << (bit % 8));
		CHECKF(tfs_index_decode(buf, &d) == TFS_ECORRUPT, "bit %d",
		       bit);
		buf[bit / 8] ^= (unsigned char)(1 << (bit % 8));
	}
	unsigned char zero[TFS_INDEX_ENTRY_SIZE] = { 0 };
	CHECK_EQ(tfs_index_decode(zero, &d), TFS_ECORRUPT);

	struct tfs_index_header h = { .base = 1 << 20, .base_record = 99,
				      .created = 1234 },
				hd;
	unsigned char hb[TFS_INDEX_HEADER_SIZE];
	tfs_index_header_encode(&h, hb);
	CHECK_EQ(tfs_index_header_decode(hb, &hd), 0);
	CHECK(hd.base == h.base && hd.base_record == 99 && hd.created == 1234);
	CHECK_EQ(hd.version, TFS_INDEX_VERSION);
	CHECK_EQ(hd.entry_size, TFS_INDEX_ENTRY_SIZE);
	hb[3] ^= 1;
	CHECK_EQ(tfs_index_header_decode(hb, &hd), TFS_ECORRUPT);

	const char *batch = "a\nbb\n";
	struct tfs_index_entry be = { .length = 5, .count = 2 };
	be.crc = tfs_crc32c(0, batch, 5);
	CHECK_EQ(tfs_batch_verify(&be, batch), 0);
	be.count = 3;
	CHECK_EQ(tfs_batch_verify(&be, batch), TFS_ECORRUPT);
}

static off_t fsize(int dfd, const char *name);

/* Writes a version 1 segment by hand: what topicfs 0.1 left on disk. */
static void write_v1_segment(int dfd, const char *const *batches, size_t n)
{
	unsigned char h[TFS_INDEX_HEADER_SIZE] = { 0 };
	uint64_t off = 0;

	mkdirat(dfd, "0", 0755);
	int pfd = openat(dfd, "0", O_RDONLY | O_DIRECTORY);
	int lfd = openat(pfd, "00000000000000000000.log", O_CREAT | O_WRONLY,
			 0644);
	int ifd = openat(pfd, "00000000000000000000.index",
			 O_CREAT | O_WRONLY, 0644);
	memcpy(h, "TFSINDEX", 8);
	tfs_put_le16(h + 8, 1);
	tfs_put_le16(h + 10, TFS_INDEX_ENTRY_SIZE_V1);
	tfs_put_le64(h + 32, 1700000000000ULL);
	tfs_put_le32(h + 44, tfs_crc32c(0, h, 44));
	CHECK(write(ifd, h, sizeof(h)) == (ssize_t)sizeof(h));
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(batches[i]);
		unsigned char e[TFS_INDEX_ENTRY_SIZE_V1] = { 0 };

		tfs_put_le64(e, off);
		tfs_put_le64(e + 8, i);
		tfs_put_le32(e + 16, 1);
		tfs_put_le32(e + 20, (uint32_t)len);
		tfs_put_le64(e + 32, 1700000000000ULL + i);
		tfs_put_le32(e + 40, tfs_crc32c(0, batches[i], len));
		tfs_put_le32(e + 44, tfs_crc32c(0, e, 44));
		CHECK(write(ifd, e, sizeof(e)) == (ssize_t)sizeof(e));
		CHECK(write(lfd, batches[i], len) == (ssize_t)len);
		off += len;
	}
	close(lfd);
	close(ifd);
	close(pfd);
}

static void test_index_v1(void)
{
	static const char *const v1[] = { "old one\n", "old two\n" };
	struct tfs_settings *st = tl_settings(&tl, 1 << 20);
	struct tfs_partition *p;
	struct tfs_partition_info in;
	struct done_rec d;
	char buf[64];
	int dfd = tl_new_dir(&tl);

	TEST("a version 1 index is read; appends go to a new segment");
	write_v1_segment(dfd, v1, 2);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.hw, 16);
	CHECK_EQ(in.hw_record, 2);
	CHECK_EQ(in.segments, 2);
	CHECK_EQ(tl_read_at(p, 0, buf, 16), 16);
	CHECK(!memcmp(buf, "old one\nold two\n", 16));
	uint64_t off;
	CHECK_EQ(tfs_partition_offset_of_record(p, 1, &off), 0);
	CHECK_EQ(off, 8);
	CHECK_EQ(tl_append(p, "new\n", 0, &d), 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);

	TEST("both versions read back after a restart");
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK_EQ(tl_read_at(p, 0, buf, sizeof(buf)), 20);
	CHECK(!memcmp(buf, "old one\nold two\nnew\n", 20));
	struct tfs_index_entry *e;
	size_t n;
	struct tfs_readv rv;
	CHECK_EQ(tfs_partition_read_batches(p, 0, 1 << 20, true, &e, &n, &rv),
		 0);
	CHECK_EQ(n, 3);
	CHECK(n == 3 && e[0].producer == 0 && e[2].offset == 16);
	free(e);
	tfs_readv_release(&rv);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	close(dfd);

	TEST("an empty version 1 segment is made again in version 2");
	dfd = tl_new_dir(&tl);
	write_v1_segment(dfd, v1, 0);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.segments, 1);
	CHECK_EQ(tl_append(p, "first\n", 0, &d), 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	CHECK_EQ(fsize(dfd, "0/00000000000000000000.index"),
		 TFS_INDEX_HEADER_SIZE + TFS_INDEX_ENTRY_SIZE);
	tfs_settings_unref(st);
	close(dfd);
}

static void test_append_read_roll(void)
{
	TEST("append, read, roll by segment.bytes, reopen");
	int dfd = tl_new_dir(&tl);
	struct tfs_settings *st = tl_settings(&tl, 4096);
	struct tfs_partition *p;
	struct tfs_buf all = TFS_BUF_INIT;
	char line[128];

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	for (int i = 0; i < 200; i++) {
		int n = snprintf(line, sizeof(line), "record %04d %.*s\n", i,
				 i % 50, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		CHECK_EQ(tl_append_text(p, line), 0);
		tfs_buf_add(&all, line, (size_t)n);
	}
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	CHECK_EQ(in.end, all.len);
	CHECK_EQ(in.hw, all.len);
	CHECK_EQ(in.end_record, 200);
	CHECKF(in.segments >= all.len / 4096, "%" PRIu64 " segments",
	       in.segments);
	CHECK(tl_content_is(p, 0, all.data));
	CHECK(tl_content_is(p, 1000, all.data + 1000));
	struct tfs_readv rv;
	CHECK_EQ(tfs_partition_read(p, all.len, 100, &rv), 0);
	CHECK_EQ(rv.len, 0);

	/* A batch larger than segment.bytes goes whole into one segment. */
	char *big = tfs_malloc(10001);
	memset(big, 'b', 10000);
	big[9999] = '\n';
	big[10000] = '\0';
	CHECK_EQ(tl_append_text(p, big), 0);
	tfs_buf_add(&all, big, 10000);
	free(big);

	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);

	unsigned long preads = tfs_sys_calls(TFS_SYS_PREAD);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	/* A clean close leaves a checkpoint at the end: nothing is read but
	 * each segment's header and first/last entries, and a binary search
	 * for the recovery point in the last segment (201 batches here). */
	tfs_partition_info(p, &in);
	CHECKF(tfs_sys_calls(TFS_SYS_PREAD) - preads <= 3 * in.segments + 10,
	       "%lu preads for %" PRIu64 " segments",
	       tfs_sys_calls(TFS_SYS_PREAD) - preads, in.segments);
	CHECK_EQ(in.end, all.len);
	CHECK_EQ(in.end_record, 201);
	CHECK(tl_content_is(p, 0, all.data));
	CHECK_EQ(tl_append_text(p, "after reopen\n"), 0);
	tfs_buf_add(&all, "after reopen\n", 13);
	CHECK(tl_content_is(p, 0, all.data));
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	tfs_buf_release(&all);
	close(dfd);
}

static void test_lookups(void)
{
	TEST("lookup by record offset and by time");
	int dfd = tl_new_dir(&tl);
	struct tfs_settings *st = tl_settings(&tl, 4096);
	struct tfs_partition *p;
	uint64_t off, offsets[300];
	uint64_t pos = 0;

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	/* Batches of 3 records, 100 batches. */
	for (int b = 0; b < 100; b++) {
		char text[200];
		int n = 0;

		for (int r = 0; r < 3; r++) {
			offsets[b * 3 + r] = pos + (uint64_t)n;
			n += snprintf(text + n, sizeof(text) - (size_t)n,
				      "b%d r%d %.*s\n", b, r, (b + r) % 30,
				      "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
		}
		CHECK_EQ(tl_append_text(p, text), 0);
		pos += (uint64_t)n;
	}
	int bad = 0;
	for (uint64_t r = 0; r < 300; r++) {
		if (tfs_partition_offset_of_record(p, r, &off) ||
		    off != offsets[r])
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(tfs_partition_offset_of_record(p, 300, &off), 0);
	CHECK_EQ(off, pos);
	CHECK_EQ(tfs_partition_offset_of_record(p, 301, &off), -ENXIO);

	CHECK_EQ(tfs_partition_offset_of_time(p, 0, &off), 0);
	CHECK_EQ(off, 0);
	CHECK_EQ(tfs_partition_offset_of_time(p, INT64_MAX / 2, &off), 0);
	CHECK_EQ(off, pos);
	/* Timestamps are non-decreasing: a time between batches finds the
	 * first batch at or after it. */
	int64_t later = tfs_now_ms() + 5;
	while (tfs_now_ms() < later)
		usleep(1000);
	uint64_t before = pos;
	CHECK_EQ(tl_append_text(p, "late\n"), 0);
	CHECK_EQ(tfs_partition_offset_of_time(p, later, &off), 0);
	CHECK_EQ(off, before);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

static void test_truncate_epochs(void)
{
	TEST("truncate to a batch boundary, epochs");
	int dfd = tl_new_dir(&tl);
	struct tfs_settings *st = tl_settings(&tl, 4096);
	struct tfs_partition *p;
	uint64_t ends[60], off;

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK_EQ(tfs_partition_begin_epoch(p, 3), 0);
	for (int i = 0; i < 60; i++) {
		char line[200];
		snprintf(line, sizeof(line), "line %d %0150d\n", i, i);
		CHECK_EQ(tl_append_text(p, line), 0);
		struct tfs_partition_info in;
		tfs_partition_info(p, &in);
		ends[i] = in.end;
		if (i == 29)
			CHECK_EQ(tfs_partition_begin_epoch(p, 5), 0);
	}
	CHECK_EQ(tfs_partition_begin_epoch(p, 4), TFS_ESTALEEPOCH);
	uint32_t fe;
	CHECK_EQ(tfs_partition_epoch_end(p, 3, &fe, &off), 0);
	CHECK(fe == 3 && off == ends[29]);
	CHECK_EQ(tfs_partition_epoch_end(p, 4, &fe, &off), 0);
	CHECK(fe == 3 && off == ends[29]);
	CHECK_EQ(tfs_partition_epoch_end(p, 5, &fe, &off), 0);
	CHECK(fe == 5 && off == ends[59]);

	CHECK_EQ(tfs_partition_truncate(p, ends[10] + 1), TFS_ENOTBOUNDARY);
	CHECK_EQ(tfs_partition_truncate(p, ends[40]), 0);
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	CHECK_EQ(in.end, ends[40]);
	CHECK_EQ(in.hw, ends[40]);
	CHECK_EQ(in.end_record, 41);
	CHECK_EQ(tfs_partition_truncate(p, ends[20]), 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.end_record, 21);
	CHECK_EQ(in.epoch, 3);
	CHECK_EQ(tfs_partition_epoch_end(p, 5, &fe, &off), 0);
	CHECK(fe == 3 && off == ends[20]);
	CHECK_EQ(tl_append_text(p, "new tail\n"), 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);

	/* The cut survives a reopen, and so does the epoch history. */
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.end, ends[20] + 9);
	CHECK_EQ(in.end_record, 22);
	CHECK_EQ(in.epoch, 3);
	CHECK_EQ(tfs_partition_offset_of_record(p, 21, &off), 0);
	CHECK_EQ(off, ends[20]);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

/* --- the replication entry points ---------------------------------------- */

static struct wait_rec_r {
	struct tfs_waiter w;
	int calls;
} rwait;

static void on_rwake(struct tfs_waiter *w, int status)
{
	rwait.calls++;
}

/* Copies every batch of leader below upto to follower, as a fetch would. */
static int replicate(struct tfs_partition *leader,
		     struct tfs_partition *follower, uint64_t from, uint64_t upto)
{
	while (from < upto) {
		struct tfs_index_entry *e;
		struct tfs_readv rv;
		size_t n;
		int rc = tfs_partition_read_batches(leader, from, 3000, false,
						    &e, &n, &rv);

		if (rc || n == 0)
			return rc ? rc : -EIO;
		char *buf = tfs_malloc(rv.len);
		if (tfs_readv_copy(&rv, 0, buf, rv.len) != (ssize_t)rv.len)
			rc = -EIO;
		tfs_readv_release(&rv);
		if (rc == 0)
			rc = tfs_partition_append_batches(follower, e, n, buf);
		from = e[n - 1].offset + e[n - 1].length;
		free(buf);
		free(e);
		if (rc)
			return rc;
	}
	return 0;
}

static void test_replication(void)
{
	struct tfs_settings *st = tl_settings(&tl, 4096);
	struct tfs_partition *leader, *follower;
	struct tfs_partition_info li, fi;
	uint64_t mid = 0, off;
	int ldir = tl_new_dir(&tl), fdir = tl_new_dir(&tl);

	TEST("a follower copies batches verbatim; hw moves only by set_hw");
	CHECK_EQ(tl_open_part(&tl, ldir, st, &leader), 0);
	struct tfs_partition_env env = {
		.syncer = tl.syncer, .fsyncer = tl.fsyncer, .settings = st,
		.name = "t/0", .role = TFS_ROLE_FOLLOWER,
	};
	CHECK_EQ(tfs_partition_open(fdir, 0, &env, true, &follower), 0);
	CHECK_EQ(tfs_partition_begin_epoch(leader, 2), 0);
	for (int i = 0; i < 80; i++) {
		char text[256];
		snprintf(text, sizeof(text), "r%d a %060d\nr%d b\n", i, i, i);
		CHECK_EQ(tl_append_text(leader, text), 0);
		if (i == 39) {
			tfs_partition_info(leader, &li);
			mid = li.end;
		}
	}
	tfs_partition_info(leader, &li);
	CHECK(li.segments > 1);
	CHECK_EQ(replicate(leader, follower, 0, li.end), 0);
	tfs_partition_info(follower, &fi);
	CHECK_EQ(fi.end, li.end);
	CHECK_EQ(fi.end_record, li.end_record);
	CHECK_EQ(fi.epoch, 2);
	CHECK_EQ(fi.hw, 0);
	struct tfs_readv rv;
	CHECK_EQ(tfs_partition_read(follower, 0, 100, &rv), 0);
	CHECK_EQ(rv.len, 0);	/* nothing committed yet */

	rwait.w = (struct tfs_waiter){ .offset = 10, .wake = on_rwake };
	CHECK_EQ(tfs_partition_wait(follower, &rwait.w), 0);
	tfs_partition_set_hw(follower, mid + 1);	/* not a boundary */
	tfs_partition_info(follower, &fi);
	CHECK_EQ(fi.hw, 0);
	CHECK_EQ(rwait.calls, 0);
	tfs_partition_set_hw(follower, mid);
	tfs_partition_info(follower, &fi);
	CHECK_EQ(fi.hw, mid);
	CHECK_EQ(fi.hw_record, 80);
	CHECK_EQ(rwait.calls, 1);
	CHECK_EQ(tfs_partition_offset_of_record(follower, 80, &off), 0);
	CHECK_EQ(off, mid);
	CHECK_EQ(tfs_partition_offset_of_record(follower, 81, &off), -ENXIO);
	tfs_partition_set_hw(follower, UINT64_MAX);	/* clamped to the end */
	tfs_partition_info(follower, &fi);
	CHECK_EQ(fi.hw, li.end);

	/* Committed, the follower's bytes are the leader's. */
	char *a = tfs_malloc(li.end), *b = tfs_malloc(li.end);
	CHECK_EQ(tl_read_at(leader, 0, a, li.end), (ssize_t)li.end);
	CHECK_EQ(tl_read_at(follower, 0, b, li.end), (ssize_t)li.end);
	CHECK(memcmp(a, b, li.end) == 0);
	free(a);
	free(b);

	TEST("a follower refuses batches that do not continue its log");
	CHECK_EQ(tl_append_text(leader, "one more\n"), 0);
	struct tfs_index_entry *e;
	size_t n;
	CHECK_EQ(tfs_partition_read_batches(leader, li.end, 1 << 20, false,
					    &e, &n, &rv),
		 0);
	CHECK_EQ(n, 1);
	char bytes[16] = "one more\n";
	tfs_readv_release(&rv);
	struct tfs_index_entry bad = e[0];
	bad.offset += 1;
	CHECK_EQ(tfs_partition_append_batches(follower, &bad, 1, bytes),
		 TFS_ENOTBOUNDARY);
	bytes[2] = 'X';		/* fails the batch CRC */
	CHECK_EQ(tfs_partition_append_batches(follower, e, 1, bytes),
		 TFS_ECORRUPT);
	tfs_partition_info(follower, &fi);
	CHECK_EQ(fi.end, li.end);
	bytes[2] = 'e';
	CHECK_EQ(tfs_partition_append_batches(follower, e, 1, bytes), 0);
	free(e);

	TEST("the copied epoch history survives a reopen");
	tfs_partition_close(follower, TFS_ESHUTDOWN);
	tfs_partition_unref(follower);
	CHECK_EQ(tfs_partition_open(fdir, 0, &env, true, &follower), 0);
	uint32_t fe;
	CHECK_EQ(tfs_partition_epoch_end(follower, 2, &fe, &off), 0);
	CHECK(fe == 2 && off == li.end + 9);
	tfs_partition_close(follower, TFS_ESHUTDOWN);
	tfs_partition_unref(follower);
	tfs_partition_close(leader, TFS_ESHUTDOWN);
	tfs_partition_unref(leader);
	tfs_settings_unref(st);
	close(ldir);
	close(fdir);
}

/* --- recovery from torn tails -------------------------------------------- */

static const char *const lines3[] = { "first batch\n", "second batch\n",
				      "third batch, the last one\n" };

/* Writes 3 batches and "crashes" (no close, no checkpoint past 0). */
static void write_and_crash(int dfd, struct tfs_settings *st)
{
	struct tfs_partition *p;

	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(tl_append_text(p, lines3[i]), 0);
	tfs_partition_unref(p);	/* the process dies: no close */
}

static off_t fsize(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, 0) == 0 ? st.st_size : -1;
}

static void truncate_file(int dfd, const char *name, off_t len)
{
	int fd = openat(dfd, name, O_RDWR);
	if (ftruncate(fd, len) < 0)
		perror("ftruncate");
	close(fd);
}

static void poke(int dfd, const char *name, off_t pos, const void *b,
		 size_t n)
{
	int fd = openat(dfd, name, O_RDWR);
	if (pwrite(fd, b, n, pos) != (ssize_t)n)
		perror("pwrite");
	close(fd);
}

static void flip_bit(int dfd, const char *name, off_t pos)
{
	int fd = openat(dfd, name, O_RDWR);
	unsigned char c;
	if (pread(fd, &c, 1, pos) == 1) {
		c ^= 0x10;
		if (pwrite(fd, &c, 1, pos) != 1)
			perror("pwrite");
	}
	close(fd);
}

#define LOG "0/00000000000000000000.log"
#define IDX "0/00000000000000000000.index"

/* Reopens and checks that exactly the first `keep` batches survive. */
static void check_recovered(int dfd, struct tfs_settings *st, int keep)
{
	struct tfs_partition *p;
	char want[256] = "";

	for (int i = 0; i < keep; i++)
		strcat(want, lines3[i]);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	CHECK_EQ(in.end, strlen(want));
	CHECK_EQ(in.end_record, keep);
	CHECK(tl_content_is(p, 0, want));
	CHECK_EQ(fsize(dfd, LOG), (off_t)strlen(want));
	CHECK_EQ(fsize(dfd, IDX),
		 TFS_INDEX_HEADER_SIZE + keep * TFS_INDEX_ENTRY_SIZE);
	/* And the log goes on from there. */
	CHECK_EQ(tl_append_text(p, "after recovery\n"), 0);
	strcat(want, "after recovery\n");
	CHECK(tl_content_is(p, 0, want));
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
}

static void test_torn_tails(void)
{
	struct tfs_settings *st = tl_settings(&tl, 1 << 20);
	size_t l0 = strlen(lines3[0]), l1 = strlen(lines3[1]);
	int dfd;

	TEST("recovery: nothing torn keeps everything");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	check_recovered(dfd, st, 3);
	close(dfd);

	TEST("recovery: half a batch in .log without its entry");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	truncate_file(dfd, IDX, TFS_INDEX_HEADER_SIZE + 2 * TFS_INDEX_ENTRY_SIZE);
	truncate_file(dfd, LOG, (off_t)(l0 + l1 + 5));
	check_recovered(dfd, st, 2);
	close(dfd);

	TEST("recovery: an index entry without its bytes");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	truncate_file(dfd, LOG, (off_t)(l0 + l1 + 3));
	check_recovered(dfd, st, 2);
	close(dfd);

	TEST("recovery: bytes without an index entry");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	truncate_file(dfd, IDX, TFS_INDEX_HEADER_SIZE + 1 * TFS_INDEX_ENTRY_SIZE);
	check_recovered(dfd, st, 1);
	close(dfd);

	TEST("recovery: garbage after the last batch");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	poke(dfd, LOG, fsize(dfd, LOG), "garbage without newline", 23);
	check_recovered(dfd, st, 3);
	close(dfd);

	TEST("recovery: a partial index entry");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	truncate_file(dfd, IDX,
		      TFS_INDEX_HEADER_SIZE + 3 * TFS_INDEX_ENTRY_SIZE - 10);
	check_recovered(dfd, st, 2);
	close(dfd);

	TEST("recovery: a flipped bit in the second batch's bytes");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	flip_bit(dfd, LOG, (off_t)(l0 + 4));
	check_recovered(dfd, st, 1);
	close(dfd);

	TEST("recovery: a flipped bit in the third index entry");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	flip_bit(dfd, IDX, TFS_INDEX_HEADER_SIZE + 2 * TFS_INDEX_ENTRY_SIZE + 9);
	check_recovered(dfd, st, 2);
	close(dfd);

	TEST("recovery: zeroed tail pages in both files");
	dfd = tl_new_dir(&tl);
	write_and_crash(dfd, st);
	char zeros[64] = { 0 };
	poke(dfd, LOG, (off_t)l0, zeros, sizeof(zeros));
	poke(dfd, IDX, TFS_INDEX_HEADER_SIZE + TFS_INDEX_ENTRY_SIZE, zeros,
	     sizeof(zeros));
	check_recovered(dfd, st, 1);
	close(dfd);

	TEST("recovery: trusted data before the checkpoint is not re-read");
	dfd = tl_new_dir(&tl);
	struct tfs_partition *p;
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(tl_append_text(p, lines3[i]), 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	/* A bit flipped in checkpointed bytes is not looked at on start. */
	flip_bit(dfd, LOG, 2);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	CHECK_EQ(in.end_record, 3);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	close(dfd);

	tfs_settings_unref(st);
}

/* --- failures of single syscalls ------------------------------------------ */

static void test_faults(void)
{
	struct tfs_settings *st = tl_settings(&tl, 1 << 20);
	struct tfs_partition *p;
	struct tfs_partition_info in;
	struct done_rec d;
	int dfd;

	TEST("a failed write (ENOSPC) stores nothing and the next works");
	dfd = tl_new_dir(&tl);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK_EQ(tl_append_text(p, "one\n"), 0);
	tfs_sys_fault(TFS_SYS_PWRITE, 1, ENOSPC, TFS_FAULT_SHORT);
	CHECK_EQ(tl_append(p, "two two two two\n", 0, &d), -ENOSPC);
	CHECK_EQ(d.calls, 0);
	tfs_sys_fault_clear();
	CHECK_EQ(fsize(dfd, LOG), 4);

	/* Fill the preallocated index; the next append must reserve more,
	 * and that reservation fails before anything is written. */
	struct tfs_buf want = TFS_BUF_INIT;
	tfs_buf_add(&want, "one\n", 4);
	off_t idx_cap = fsize(dfd, IDX);
	int filled = 1;
	while (TFS_INDEX_HEADER_SIZE + (off_t)(filled + 1) *
						 TFS_INDEX_ENTRY_SIZE <=
	       idx_cap) {
		CHECK_EQ(tl_append_text(p, "x\n"), 0);
		tfs_buf_add(&want, "x\n", 2);
		filled++;
	}
	CHECK(filled > 100);
	off_t log_size = fsize(dfd, LOG);
	tfs_sys_fault(TFS_SYS_PWRITE, 1, ENOSPC, TFS_FAULT_SHORT);
	CHECK_EQ(tl_append(p, "three\n", 0, &d), -ENOSPC);
	tfs_sys_fault_clear();
	CHECK_EQ(fsize(dfd, LOG), log_size);
	CHECK_EQ(fsize(dfd, IDX), idx_cap);
	CHECK_EQ(tl_append_text(p, "four\n"), 0);
	tfs_buf_add(&want, "four\n", 5);
	CHECK(tl_content_is(p, 0, want.data));
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	/* A clean close gives the preallocated index space back. */
	CHECK_EQ(fsize(dfd, IDX),
		 TFS_INDEX_HEADER_SIZE + (filled + 1) * TFS_INDEX_ENTRY_SIZE);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK(tl_content_is(p, 0, want.data));
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_buf_release(&want);
	close(dfd);

	TEST("a crash leaves a preallocated index tail: trimmed, not an error");
	dfd = tl_new_dir(&tl);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK_EQ(tl_append_text(p, "alpha\n"), 0);
	CHECK_EQ(tl_append_text(p, "beta\n"), 0);
	CHECK(fsize(dfd, IDX) > TFS_INDEX_HEADER_SIZE + 2 * TFS_INDEX_ENTRY_SIZE);
	tfs_partition_unref(p);	/* crash */
	struct tfs_segment *sg;
	struct tfs_recovery rec;
	int pfd = openat(dfd, "0", O_RDONLY | O_DIRECTORY);
	CHECK_EQ(tfs_segment_open(pfd, 0, 0, 0, &sg, &rec), 0);
	CHECK(rec.reason == NULL && rec.bytes_cut == 0);
	CHECK_EQ(sg->entries, 2);
	tfs_segment_unref(sg);
	close(pfd);
	CHECK_EQ(fsize(dfd, IDX), TFS_INDEX_HEADER_SIZE + 2 * TFS_INDEX_ENTRY_SIZE);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK(tl_content_is(p, 0, "alpha\nbeta\n"));
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	close(dfd);

	TEST("a failed fsync fails the waiters and refuses writes");
	dfd = tl_new_dir(&tl);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	tfs_sys_fault(TFS_SYS_FSYNC, 1, EIO, 0);
	CHECK_EQ(tl_append(p, "synced?\n", TFS_APPEND_SYNC, &d), 0);
	tfs_partition_quiesce(p);
	for (int i = 0; i < 200 && d.calls == 0; i++)
		usleep(5000);
	CHECK_EQ(d.calls, 1);
	CHECK_EQ(d.status, -EIO);
	tfs_sys_fault_clear();
	CHECK_EQ(tl_append(p, "more\n", 0, &d), -EIO);
	tfs_partition_info(p, &in);
	CHECK_EQ(in.failed, -EIO);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	close(dfd);

	TEST("a failed checkpoint rename keeps the old checkpoint");
	dfd = tl_new_dir(&tl);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK_EQ(tl_append_text(p, "kept\n"), 0);
	tfs_sys_fault(TFS_SYS_RENAMEAT, 1, EIO, 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_sys_fault_clear();
	CHECK(faccessat(dfd, "0/checkpoint.tmp", F_OK, 0) < 0);
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	CHECK(tl_content_is(p, 0, "kept\n"));
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	close(dfd);
	tfs_settings_unref(st);
}

/* --- group commit, waiters ------------------------------------------------ */

struct wait_rec {
	struct tfs_waiter w;
	int calls, status;
};

static void on_wake(struct tfs_waiter *w, int status)
{
	struct wait_rec *r = tfs_container_of(w, struct wait_rec, w);

	r->calls++;
	r->status = status;
}

static void test_waiters_and_sync(void)
{
	struct tfs_settings *st = tl_settings(&tl, 1 << 20);
	struct tfs_partition *p;
	struct wait_rec w[5];
	int dfd = tl_new_dir(&tl);

	TEST("waiters wake exactly when the end passes their offset");
	CHECK_EQ(tl_open_part(&tl, dfd, st, &p), 0);
	uint64_t offs[5] = { 0, 3, 10, 10, 1000000 };
	for (int i = 0; i < 5; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].w.offset = offs[i];
		w[i].w.wake = on_wake;
		CHECK_EQ(tfs_partition_wait(p, &w[i].w), 0);
	}
	CHECK_EQ(tl_append_text(p, "abcd\n"), 0);	/* end 5 */
	CHECK(w[0].calls == 1 && w[1].calls == 1 && w[2].calls == 0);
	CHECK(tfs_partition_wait_cancel(p, &w[3].w));
	CHECK(!tfs_partition_wait_cancel(p, &w[0].w));
	CHECK_EQ(tl_append_text(p, "efghijk\n"), 0);	/* end 13 */
	CHECK(w[2].calls == 1 && w[3].calls == 0 && w[4].calls == 0);
	struct wait_rec now = { .w = { .offset = 12, .wake = on_wake } };
	CHECK_EQ(tfs_partition_wait(p, &now.w), 1);

	TEST("fsync and durability=sync appends share fsyncs");
	struct done_rec d[20];
	unsigned long before = tfs_sys_calls(TFS_SYS_FSYNC);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(tl_append(p, "durable line\n", TFS_APPEND_SYNC,
				   &d[i]), 0);
	tfs_partition_quiesce(p);
	for (int t = 0; t < 400; t++) {
		int n = 0;
		for (int i = 0; i < 20; i++)
			n += d[i].calls;
		if (n == 20)
			break;
		usleep(5000);
	}
	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += d[i].calls == 1 && d[i].status == 0;
	CHECK_EQ(ok, 20);
	/* Two files per fsync round; 20 appends must need far fewer than 20
	 * rounds as they queue behind the running one. */
	unsigned long rounds = (tfs_sys_calls(TFS_SYS_FSYNC) - before) / 2;
	CHECKF(rounds < 20, "%lu fsync rounds for 20 appends", rounds);
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	CHECK_EQ(in.durable, in.end);

	TEST("close wakes the remaining waiters with the reason");
	tfs_partition_close(p, TFS_ESHUTDOWN);
	CHECK(w[4].calls == 1 && w[4].status == TFS_ESHUTDOWN);
	struct done_rec late;
	CHECK_EQ(tl_append(p, "late\n", 0, &late), TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

/* --- crash at every step, with a power-loss model -------------------------- */

/* Size of each file at its last fsync, by path (the power-loss model). */
#define MAX_TRACKED 64
static struct {
	char path[256];
	off_t synced;
} tracked[MAX_TRACKED];
static int ntracked;

static void track(const char *path, off_t size)
{
	for (int i = 0; i < ntracked; i++) {
		if (!strcmp(tracked[i].path, path)) {
			tracked[i].synced = size;
			return;
		}
	}
	if (ntracked < MAX_TRACKED) {
		snprintf(tracked[ntracked].path, sizeof(tracked[0].path), "%s",
			 path);
		tracked[ntracked++].synced = size;
	}
}

static void observer(enum tfs_sys_op op, int fd, const char *name, off_t off,
		     size_t len)
{
	char link[64], path[256];
	struct stat st;
	ssize_t n;

	if (op != TFS_SYS_FSYNC && op != TFS_SYS_OPENAT)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	path[n] = '\0';
	if (op == TFS_SYS_FSYNC)
		track(path, st.st_size);
	else if ((len & O_CREAT) && (len & O_TRUNC))
		track(path, 0);	/* a new file: nothing of it is durable */
}

/*
 * Loses what was not fsynced: each segment file is cut back to its size
 * at its last fsync and garbage is written after it (a torn page).
 */
static void power_loss(void)
{
	for (int i = 0; i < ntracked; i++) {
		const char *p = tracked[i].path;
		size_t n = strlen(p);

		if (n < 4 || (strcmp(p + n - 4, ".log") &&
			      (n < 6 || strcmp(p + n - 6, ".index"))))
			continue;
		int fd = open(p, O_RDWR);
		if (fd < 0)
			continue;
		struct stat st;
		fstat(fd, &st);
		if (st.st_size > tracked[i].synced) {
			char junk[37];
			memset(junk, 0x5a, sizeof(junk));
			if (ftruncate(fd, tracked[i].synced) < 0 ||
			    pwrite(fd, junk, sizeof(junk),
				   tracked[i].synced) < 0)
				perror("power_loss");
		}
		close(fd);
	}
	ntracked = 0;
}

static void crash_run(enum tfs_sys_op op, unsigned nth, int *fired,
		      int *bad, int *acked)
{
	struct tfs_settings *st = tl_settings(&tl, 4096);
	struct tfs_partition *p = NULL;
	struct done_rec d[40];
	char lines[40][256];
	int dfd = tl_new_dir(&tl);

	tfs_sys_fault_clear();
	ntracked = 0;
	if (tl_open_part(&tl, dfd, st, &p)) {
		(*bad)++;
		goto out;
	}
	tfs_sys_fault(op, nth, EIO, TFS_FAULT_STICKY | TFS_FAULT_SHORT);
	for (int i = 0; i < 40; i++) {
		snprintf(lines[i], sizeof(lines[i]), "crash line %02d %0*d\n",
			 i, 100 + (i * 37) % 80, i);
		if (tl_append(p, lines[i], TFS_APPEND_SYNC, &d[i]))
			d[i].calls = -1;	/* refused */
		if (i % 8 == 7)
			tfs_partition_flush(p);	/* a checkpoint */
		tfs_partition_quiesce(p);
	}
	if (tfs_sys_fault_fired())
		(*fired)++;
	tfs_partition_quiesce(p);
	tfs_partition_unref(p);	/* crash: no close */
	tfs_sys_fault_clear();
	power_loss();

	/* Every append acknowledged as durable must be there, in order. */
	if (tl_open_part(&tl, dfd, st, &p)) {
		(*bad)++;
		goto out;
	}
	struct tfs_buf want = TFS_BUF_INIT;
	for (int i = 0; i < 40; i++) {
		if (d[i].calls == 1 && d[i].status == 0) {
			tfs_buf_add(&want, lines[i], strlen(lines[i]));
			(*acked)++;
		}
	}
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	char *got = tfs_malloc(in.end + 1);
	ssize_t r = tl_read_at(p, 0, got, in.end);
	/* Acked appends are a prefix (appends after a failure are refused). */
	if (r < (ssize_t)want.len ||
	    (want.len && memcmp(got, want.data, want.len)) ||
	    (r > 0 && got[r - 1] != '\n')) {
		fprintf(stderr, "  op %d nth %u: lost acknowledged data\n", op,
			nth);
		(*bad)++;
	}
	free(got);
	tfs_buf_release(&want);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
out:
	tfs_settings_unref(st);
	close(dfd);
}

static void test_crash_every_step(void)
{
	static const enum tfs_sys_op ops[] = { TFS_SYS_PWRITE, TFS_SYS_FSYNC,
					       TFS_SYS_RENAMEAT,
					       TFS_SYS_OPENAT };
	static const char *const names[] = { "pwrite", "fsync", "rename",
					     "open" };

	tfs_sys_observe(observer);
	for (size_t o = 0; o < TFS_ARRAY_SIZE(ops); o++) {
		char title[96];
		int fired = 0, bad = 0, acked = 0;

		snprintf(title, sizeof(title),
			 "crash at the Nth %s, then power loss: no "
			 "acknowledged append lost",
			 names[o]);
		TEST(title);
		for (unsigned nth = 1; nth <= 60; nth++)
			crash_run(ops[o], nth, &fired, &bad, &acked);
		CHECKF(fired > 0, "no fault fired for %s", names[o]);
		/* The property is only worth something if appends were
		 * acknowledged before the crash. */
		CHECKF(acked > 200, "only %d acknowledged appends", acked);
		CHECK_EQ(bad, 0);
	}
	tfs_sys_observe(NULL);
}

/* --- the store: topics ---------------------------------------------------- */

static void test_store_topics(void)
{
	char dir[128];
	struct tfs_store *s;
	struct tfs_topic *t;
	char err[256];

	TEST("topic names");
	CHECK(tfs_topic_name_valid("tweets"));
	CHECK(tfs_topic_name_valid("a.b_c-D9"));
	CHECK(!tfs_topic_name_valid(""));
	CHECK(!tfs_topic_name_valid(".hidden"));
	CHECK(!tfs_topic_name_valid(".."));
	CHECK(!tfs_topic_name_valid("a/b"));
	CHECK(!tfs_topic_name_valid("sp ace"));
	char longname[251];
	memset(longname, 'n', 250);
	longname[250] = '\0';
	CHECK(!tfs_topic_name_valid(longname));
	longname[249] = '\0';
	CHECK(tfs_topic_name_valid(longname));

	TEST("store: create, grow, configure, reopen, delete");
	snprintf(dir, sizeof(dir), "%s/store", tl.root);
	CHECK_EQ(tfs_store_open(dir, &tl.conf, &s), 0);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "bad/name" }, NULL), -EINVAL);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "tweets" }, &t), 0);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "tweets" }, NULL), -EEXIST);
	CHECK_EQ(tfs_topic_partitions(t), 1);
	CHECK_EQ(tfs_topic_set_partitions(t, 3), 0);
	CHECK_EQ(tfs_topic_set_partitions(t, 2), -EINVAL);
	CHECK_EQ(tfs_topic_set_config(t, "retention.ms", "1h", err,
				      sizeof(err)), 0);
	CHECK_EQ(tfs_topic_set_config(t, "retention.ms", "soon", err,
				      sizeof(err)), TFS_EBADCONF);
	CHECK_EQ(tfs_topic_set_config(t, "fuse.threads", "4", err,
				      sizeof(err)), -ENOENT);
	struct tfs_partition *p = tfs_topic_partition(t, 2);
	CHECK(p != NULL);
	CHECK_EQ(tl_append_text(p, "hello\n"), 0);
	tfs_partition_unref(p);
	uint32_t id = tfs_topic_id(t);
	tfs_topic_unref(t);
	CHECK_EQ(tfs_store_create_topic(
		      s, &(struct tfs_topic_spec){ .name = "other" }, NULL), 0);
	size_t n;
	struct tfs_topic **all = tfs_store_topics(s, &n);
	CHECK(n == 2 && !strcmp(tfs_topic_name(all[0]), "other") &&
	      !strcmp(tfs_topic_name(all[1]), "tweets"));
	tfs_store_topics_free(all, n);
	struct tfs_store *s2 = NULL;
	CHECK_EQ(tfs_store_open(dir, &tl.conf, &s2), -EBUSY);
	tfs_store_close(s);

	CHECK_EQ(tfs_store_open(dir, &tl.conf, &s), 0);
	t = tfs_store_topic_by_id(s, id);
	CHECK(t && !strcmp(tfs_topic_name(t), "tweets"));
	CHECK_EQ(tfs_topic_partitions(t), 3);
	char buf[64];
	tfs_topic_get_config(t, TFS_CONF_RETENTION_MS, buf, sizeof(buf));
	CHECK_EQ(strtoll(buf, NULL, 10), 3600000);
	p = tfs_topic_partition(t, 2);
	CHECK(p && tl_content_is(p, 0, "hello\n"));
	tfs_topic_unref(t);

	struct wait_rec w = { .w = { .offset = 6, .wake = on_wake } };
	CHECK_EQ(tfs_partition_wait(p, &w.w), 0);
	CHECK_EQ(tfs_store_delete_topic(s, "tweets"), 0);
	CHECK(w.calls == 1 && w.status == TFS_EDELETED);
	CHECK(tfs_store_find_topic(s, "tweets") == NULL);
	/* A reader holding the partition still reads its bytes. */
	CHECK(tl_content_is(p, 0, "hello\n"));
	tfs_partition_unref(p);
	CHECK_EQ(tfs_store_delete_topic(s, "tweets"), -ENOENT);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "tweets" }, &t), 0);
	CHECK(tfs_topic_id(t) != id);
	tfs_topic_unref(t);
	tfs_store_close(s);
}

int main(void)
{
	if (tl_env_init(&tl, "store", TL_FSYNCER))
		return 1;

	test_index_format();
	test_index_v1();
	test_append_read_roll();
	test_lookups();
	test_truncate_epochs();
	test_replication();
	test_torn_tails();
	test_faults();
	test_waiters_and_sync();
	test_crash_every_step();
	test_store_topics();

	tl_env_release(&tl);
	return check_done();
}
