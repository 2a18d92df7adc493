/*
 * Unit tests for the line framer (framer.h): whole lines out of a stream
 * of writes, held partial lines, close, and the EFBIG rules for records
 * longer than max.record.bytes with re-sends after a short count.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "framer.h"

/* What a writer's appends produced, as one string. */
static struct tfs_buf stored = TFS_BUF_INIT;

/*
 * One write through f: appends a batch the framer asks for (as the FUSE
 * path does when the partition accepts it) and returns the framer's
 * answer.
 */
static int put(struct tfs_framer *f, const char *s, size_t max)
{
	struct tfs_frame fr;
	int rc = tfs_framer_write(f, s, strlen(s), max, &fr);

	if (rc == TFS_FRAME_BATCH) {
		for (int i = 0; i < fr.iovcnt; i++)
			tfs_buf_add(&stored, fr.iov[i].iov_base,
				    fr.iov[i].iov_len);
		tfs_framer_commit(f, &fr);
	}
	return rc;
}

static bool stored_is(const char *s)
{
	bool same = stored.len == strlen(s) &&
		    !memcmp(stored.data ? stored.data : "", s, stored.len);

	if (!same)
		fprintf(stderr, "stored: '%.*s', expected '%s'\n",
			(int)stored.len, stored.data ? stored.data : "", s);
	tfs_buf_reset(&stored);
	return same;
}

static void test_lines(void)
{
	struct tfs_framer f;
	struct tfs_frame fr;

	tfs_framer_init(&f);
	TEST("whole lines go out as one batch, a partial line is held");
	CHECK_EQ(put(&f, "a\nb\n", 100), TFS_FRAME_BATCH);
	CHECK(stored_is("a\nb\n"));
	CHECK_EQ(put(&f, "c\nhal", 100), TFS_FRAME_BATCH);
	CHECK(stored_is("c\n"));
	CHECK_EQ(tfs_framer_held(&f), 3);
	CHECK_EQ(put(&f, "f-", 100), TFS_FRAME_HOLD);
	CHECK(stored_is(""));
	CHECK_EQ(put(&f, "line\nnext", 100), TFS_FRAME_BATCH);
	CHECK(stored_is("half-line\n"));

	TEST("a batch the partition refused leaves the framer unchanged");
	CHECK_EQ(tfs_framer_write(&f, "\n", 1, 100, &fr), TFS_FRAME_BATCH);
	CHECK_EQ(fr.iovcnt, 2);
	/* no commit: the append failed */
	CHECK_EQ(tfs_framer_held(&f), 4);

	TEST("close appends the held line with a newline, or keeps it");
	CHECK(tfs_framer_close_line(&f, &fr));
	CHECK_EQ(fr.iovcnt, 1);
	CHECK_EQ(fr.iov[0].iov_len, 5);
	CHECK(!memcmp(fr.iov[0].iov_base, "next\n", 5));
	tfs_framer_close_done(&f, false);
	CHECK_EQ(tfs_framer_held(&f), 4);
	CHECK(tfs_framer_close_line(&f, &fr));
	tfs_framer_close_done(&f, true);
	CHECK_EQ(tfs_framer_held(&f), 0);
	CHECK(!tfs_framer_close_line(&f, &fr));
	tfs_framer_release(&f);
}

static void test_too_long(void)
{
	struct tfs_framer f;

	tfs_framer_init(&f);
	TEST("a write carrying a too-long record is refused whole");
	CHECK_EQ(put(&f, "ok\n0123456789ABC\nok2\n", 10), -EFBIG);
	CHECK(stored_is(""));
	CHECK_EQ(put(&f, "after\n", 10), TFS_FRAME_BATCH);
	CHECK(stored_is("after\n"));

	TEST("a record exactly max bytes long, newline included, is taken");
	CHECK_EQ(put(&f, "123456789\n", 10), TFS_FRAME_BATCH);
	CHECK(stored_is("123456789\n"));

	TEST("a held line with no room left for close's newline is refused");
	CHECK_EQ(put(&f, "123456789", 10), TFS_FRAME_HOLD);
	CHECK_EQ(put(&f, "0", 10), -EFBIG);
	CHECK_EQ(tfs_framer_held(&f), 0);
	tfs_framer_release(&f);

	TEST("a line whose held start becomes too long: refused to its end");
	tfs_framer_init(&f);
	CHECK_EQ(put(&f, "abc", 10), TFS_FRAME_HOLD);
	CHECK_EQ(put(&f, "defghijk", 10), -EFBIG);
	CHECK_EQ(tfs_framer_held(&f), 0);
	/* The rest of the same line, without its end: refused. */
	CHECK_EQ(put(&f, "more", 10), -EFBIG);
	/* The write that ends it: refused too; the next one is new. */
	CHECK_EQ(put(&f, "end\n", 10), -EFBIG);
	CHECK_EQ(put(&f, "good\n", 10), TFS_FRAME_BATCH);
	CHECK(stored_is("good\n"));
	tfs_framer_release(&f);
}

static void test_resend(void)
{
	struct tfs_framer f;

	tfs_framer_init(&f);
	TEST("the first re-send of a refused write is refused again");
	CHECK_EQ(put(&f, "0123456789AB\n", 10), -EFBIG);
	CHECK_EQ(put(&f, "0123456789AB\n", 10), -EFBIG);

	TEST("a later re-send has the refused bytes dropped, the rest taken");
	CHECK_EQ(put(&f, "0123456789AB\nnext\n", 10), TFS_FRAME_BATCH);
	CHECK(stored_is("next\n"));

	TEST("bytes that are not a re-send are taken as new");
	CHECK_EQ(put(&f, "ABCDEFGHIJKLMNOP\n", 10), -EFBIG);
	CHECK_EQ(put(&f, "other\n", 10), TFS_FRAME_BATCH);
	CHECK(stored_is("other\n"));
	tfs_framer_release(&f);

	TEST("a re-sent refused line that did not end: its rest is skipped");
	tfs_framer_init(&f);
	CHECK_EQ(put(&f, "0123456789ABCD", 10), -EFBIG);
	CHECK_EQ(put(&f, "0123456789ABCD", 10), -EFBIG);
	CHECK_EQ(put(&f, "0123456789ABCD", 10), TFS_FRAME_HOLD);
	CHECK_EQ(put(&f, "EF\nkept\n", 10), TFS_FRAME_BATCH);
	CHECK(stored_is("kept\n"));
	tfs_framer_release(&f);
}

int main(void)
{
	test_lines();
	test_too_long();
	test_resend();
	tfs_buf_release(&stored);
	return check_done();
}
