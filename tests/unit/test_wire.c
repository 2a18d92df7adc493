/*
 * Unit tests for the replication fetch bodies (wire.h): round trips of
 * requests and answers, and every kind of malformed body refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crc32c.h"
#include "err.h"
#include "wire.h"

static void test_request(void)
{
	struct tfs_fetch_part parts[3] = {
		{ 7, 0, 5, 4, 1000, 900, 800 },
		{ 7, 1, 5, 5, 0, 0, 0 },
		{ 9, 12, 1, 1, 1ULL << 40, 1ULL << 39, 1ULL << 40 },
	};
	struct tfs_fetch_req r = { .follower = 3, .max_wait_ms = 500,
				   .max_bytes = 1 << 23, .n = 3,
				   .parts = parts },
			     d;
	struct tfs_buf b = TFS_BUF_INIT;

	TEST("a fetch request round-trips");
	tfs_fetch_req_encode(&r, &b);
	CHECK_EQ(b.len, 20 + 3 * 40);
	CHECK_EQ(tfs_fetch_req_decode(b.data, b.len, &d), 0);
	CHECK(d.follower == 3 && d.max_wait_ms == 500 && d.n == 3);
	CHECK(!memcmp(d.parts, parts, sizeof(parts)));
	tfs_fetch_req_release(&d);

	TEST("malformed requests are refused");
	CHECK_EQ(tfs_fetch_req_decode(b.data, b.len - 1, &d), TFS_EPROTO);
	CHECK_EQ(tfs_fetch_req_decode(b.data, 10, &d), TFS_EPROTO);
	b.data[0] = 'X';
	CHECK_EQ(tfs_fetch_req_decode(b.data, b.len, &d), TFS_EPROTO);
	b.data[0] = 'T';
	b.data[16] = 4;	/* n says 4, the body holds 3 */
	CHECK_EQ(tfs_fetch_req_decode(b.data, b.len, &d), TFS_EPROTO);
	b.data[16] = 3;
	parts[0].durable = 2000;	/* durable past the end */
	tfs_buf_reset(&b);
	tfs_fetch_req_encode(&r, &b);
	CHECK_EQ(tfs_fetch_req_decode(b.data, b.len, &d), TFS_EPROTO);
	tfs_buf_release(&b);
}

/* Two batches "ab\n" and "cde\nf\n" at 100. */
static void make_batches(struct tfs_index_entry e[2])
{
	memset(e, 0, 2 * sizeof(*e));
	e[0] = (struct tfs_index_entry){ .offset = 100, .record = 10,
					 .count = 1, .length = 3, .epoch = 2,
					 .timestamp = 5, .producer = 77,
					 .sequence = 1 };
	e[0].crc = tfs_crc32c(0, "ab\n", 3);
	e[1] = (struct tfs_index_entry){ .offset = 103, .record = 11,
					 .count = 2, .length = 6, .epoch = 2,
					 .timestamp = 6 };
	e[1].crc = tfs_crc32c(0, "cde\nf\n", 6);
}

static void test_answer(void)
{
	struct tfs_index_entry e[2];
	struct tfs_buf b = TFS_BUF_INIT;
	struct tfs_fetch_resp r;

	make_batches(e);
	TEST("an answer with batches and one with a divergence round-trip");
	tfs_fetch_resp_begin(1, 2, &b);
	struct tfs_fetch_result ok = { .topic = 7, .partition = 0,
				       .leader_epoch = 2, .hw = 103,
				       .start = 0, .log_end = 109,
				       .nbatches = 2, .entries = e,
				       .data_len = 9 };
	tfs_fetch_result_encode(&ok, &b);
	tfs_buf_add(&b, "ab\ncde\nf\n", 9);
	struct tfs_fetch_result dv = { .topic = 7, .partition = 1,
				       .err = TFS_FETCH_DIVERGED,
				       .leader_epoch = 3, .hw = 50,
				       .log_end = 60, .diverged_epoch = 2,
				       .diverged_end = 40 };
	tfs_fetch_result_encode(&dv, &b);
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), 0);
	CHECK(r.leader == 1 && r.n == 2);
	CHECK(r.results[0].nbatches == 2 && r.results[0].data_len == 9 &&
	      !memcmp(r.results[0].data, "ab\ncde\nf\n", 9));
	CHECK(r.results[0].entries[0].producer == 77 &&
	      r.results[0].entries[1].offset == 103);
	CHECK(r.results[1].err == TFS_FETCH_DIVERGED &&
	      r.results[1].diverged_end == 40 &&
	      r.results[1].diverged_epoch == 2);
	tfs_fetch_resp_release(&r);

	TEST("malformed answers are refused");
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len - 1, &r), TFS_EPROTO);
	tfs_buf_add(&b, "x", 1);	/* trailing garbage */
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), TFS_EPROTO);
	b.len--;
	/* A flipped bit in an entry fails its CRC. */
	b.data[12 + 80 + 5] ^= 1;
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), TFS_EPROTO);
	b.data[12 + 80 + 5] ^= 1;
	/* Batches that do not follow each other. */
	tfs_buf_reset(&b);
	tfs_fetch_resp_begin(1, 1, &b);
	e[1].offset = 104;
	tfs_fetch_result_encode(&ok, &b);
	tfs_buf_add(&b, "ab\ncde\nf\n", 9);
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), TFS_EPROTO);
	/* An error that carries batches, a hw past the log end. */
	make_batches(e);
	tfs_buf_reset(&b);
	tfs_fetch_resp_begin(1, 1, &b);
	ok.err = TFS_FETCH_NOT_LEADER;
	tfs_fetch_result_encode(&ok, &b);
	tfs_buf_add(&b, "ab\ncde\nf\n", 9);
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), TFS_EPROTO);
	ok.err = 0;
	ok.hw = 200;
	tfs_buf_reset(&b);
	tfs_fetch_resp_begin(1, 1, &b);
	tfs_fetch_result_encode(&ok, &b);
	tfs_buf_add(&b, "ab\ncde\nf\n", 9);
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), TFS_EPROTO);
	/* A count of partitions the body cannot hold. */
	tfs_buf_reset(&b);
	tfs_fetch_resp_begin(1, 1000000, &b);
	CHECK_EQ(tfs_fetch_resp_decode(b.data, b.len, &r), TFS_EPROTO);
	tfs_buf_release(&b);
}

int main(void)
{
	test_request();
	test_answer();
	return check_done();
}
