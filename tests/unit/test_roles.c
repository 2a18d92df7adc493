/*
 * Unit tests for what the cluster builds on in the partition API: the
 * produce rules every append gets, roles and epochs (a leader's appends
 * commit only when hw passes them, a lost leadership fails them), waits
 * with one completion, a cancel and a deadline, and the timer thread
 * behind the deadlines.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"
#include "conf.h"
#include "err.h"
#include "partition.h"
#include "producers.h"
#include "timer.h"
#include "util.h"

static struct tfs_conf conf;
static struct tfs_workers *syncer;
static struct tfs_timers *timers;
static char root[64];
static int counter;

static int new_dir(void)
{
	char name[32];

	snprintf(name, sizeof(name), "case%d", counter++);
	int rfd = open(root, O_RDONLY | O_DIRECTORY);
	mkdirat(rfd, name, 0755);
	int fd = openat(rfd, name, O_RDONLY | O_DIRECTORY);
	close(rfd);
	return fd;
}

static struct tfs_partition *open_role(int dirfd, struct tfs_settings *st,
				       enum tfs_role role)
{
	struct tfs_partition *p = NULL;
	struct tfs_partition_env env = {
		.syncer = syncer,
		.timers = timers,
		.settings = st,
		.name = "t/0",
		.role = role,
	};

	CHECK_EQ(tfs_partition_open(dirfd, 0, &env, true, &p), 0);
	return p;
}

static int append(struct tfs_partition *p, const char *text, unsigned flags,
		  struct done_rec *d)
{
	struct iovec iov = { (void *)text, strlen(text) };

	memset(d, 0, sizeof(*d));
	d->a.iov = &iov;
	d->a.iovcnt = 1;
	d->a.flags = flags;
	d->a.done = on_done;
	return tfs_partition_append(p, &d->a);
}

static void test_produce_rules(void)
{
	struct tfs_settings *st = tfs_settings_new(&conf);
	int dfd = new_dir();
	struct tfs_partition *p = open_role(dfd, st, TFS_ROLE_STANDALONE);
	struct tfs_bounds b;
	struct done_rec d;

	atomic_store(&st->v[TFS_CONF_MAX_RECORD_BYTES], 16);
	TEST("the partition API refuses a batch that does not end a line");
	CHECK_EQ(append(p, "a\nb", 0, &d), -EINVAL);
	CHECK_EQ(append(p, "", 0, &d), -EINVAL);
	CHECK_EQ(append(p, "no newline", 0, &d), -EINVAL);
	CHECK_EQ(d.calls, 0);
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 0);

	TEST("a record over max.record.bytes is EFBIG, nothing stored");
	CHECK_EQ(append(p, "ok\n0123456789abcdefg\nok\n", 0, &d), -EFBIG);
	CHECK_EQ(append(p, "0123456789abcde\n", 0, &d), 0);
	CHECK_EQ(d.calls, 1);
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 16);
	CHECK_EQ(b.hw_record, 1);

	TEST("a record split across vectors is measured whole");
	struct iovec iov[2] = { { "0123456789", 10 }, { "abcdefg\n", 8 } };
	memset(&d, 0, sizeof(d));
	d.a.iov = iov;
	d.a.iovcnt = 2;
	d.a.done = on_done;
	CHECK_EQ(tfs_partition_append(p, &d.a), -EFBIG);
	iov[1] = (struct iovec){ "abcd\n", 5 };
	CHECK_EQ(tfs_partition_append(p, &d.a), 0);
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 31);

	TEST("a reopen keeps exactly what was accepted");
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	p = open_role(dfd, st, TFS_ROLE_STANDALONE);
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 31);
	CHECK_EQ(b.hw_record, 2);
	char buf[64];
	CHECK_EQ(tl_read_at(p, 0, buf, sizeof(buf)), 31);
	CHECK(!memcmp(buf, "0123456789abcde\n0123456789abcd\n", 31));

	TEST("durability=sync makes every append wait for its fsync");
	atomic_store(&st->v[TFS_CONF_DURABILITY], TFS_DURABILITY_SYNC);
	CHECK_EQ(append(p, "durable\n", 0, &d), 0);
	tfs_partition_quiesce(p);
	CHECK_EQ(d.calls, 1);
	CHECK_EQ(d.status, 0);
	struct tfs_partition_info in;
	tfs_partition_info(p, &in);
	CHECK_EQ(in.durable, in.end);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

static int sync_calls;

static void sync_done(struct tfs_syncreq *r, int status)
{
	sync_calls++;
}

static void test_roles(void)
{
	struct tfs_settings *st = tfs_settings_new(&conf);
	int dfd = new_dir();
	struct tfs_partition *p = open_role(dfd, st, TFS_ROLE_NONE);
	struct done_rec d1, d2, d3;
	struct tfs_bounds b;
	uint32_t epoch;

	TEST("a partition without a role takes no appends");
	CHECK_EQ(append(p, "x\n", 0, &d1), TFS_ENOTLEADER);
	CHECK_EQ(tfs_partition_role(p, &epoch), TFS_ROLE_NONE);

	TEST("a leader stamps its epoch and commits when hw passes");
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 3), 0);
	CHECK_EQ(tfs_partition_role(p, &epoch), TFS_ROLE_LEADER);
	CHECK_EQ(epoch, 3);
	CHECK_EQ(append(p, "one\n", 0, &d1), 0);
	CHECK_EQ(append(p, "two\n", 0, &d2), 0);
	CHECK_EQ(append(p, "fast\n", TFS_APPEND_ACK_LEADER, &d3), 0);
	CHECK_EQ(d1.calls + d2.calls, 0);
	CHECK_EQ(d3.calls, 1);	/* acks=1: at once */
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 0);	/* not committed until replicated */
	tfs_partition_set_hw(p, 4);
	CHECK_EQ(d1.calls, 1);
	CHECK_EQ(d1.status, 0);
	CHECK_EQ(d2.calls, 0);
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 4);

	TEST("the batches carry the leader epoch");
	struct tfs_index_entry *e = NULL;
	size_t n = 0;
	struct tfs_readv rv;
	CHECK_EQ(tfs_partition_read_batches(p, 0, 1 << 20, false, &e, &n, &rv),
		 0);
	CHECK_EQ(n, 3);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(e[i].epoch, 3);
	free(e);
	tfs_readv_release(&rv);

	TEST("losing leadership fails what did not commit");
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_FOLLOWER, 4), 0);
	CHECK_EQ(d2.calls, 1);
	CHECK_EQ(d2.status, TFS_ENOTLEADER);
	CHECK_EQ(append(p, "late\n", 0, &d1), TFS_ENOTLEADER);

	TEST("an older epoch is refused for any role");
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 2),
		 TFS_ESTALEEPOCH);
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_FOLLOWER, 2),
		 TFS_ESTALEEPOCH);
	CHECK_EQ(tfs_partition_role(p, NULL), TFS_ROLE_FOLLOWER);

	TEST("a new leadership starts its epoch at the log end, kept on disk");
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 5), 0);
	uint32_t found;
	uint64_t end;
	CHECK_EQ(tfs_partition_epoch_end(p, 3, &found, &end), 0);
	CHECK_EQ(found, 3);
	CHECK_EQ(end, 13);	/* "one\ntwo\nfast\n" */
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	p = open_role(dfd, st, TFS_ROLE_NONE);
	CHECK_EQ(tfs_partition_epoch_end(p, 4, &found, &end), 0);
	CHECK_EQ(found, 3);
	CHECK_EQ(end, 13);
	CHECK_EQ(tfs_partition_role(p, &epoch), TFS_ROLE_NONE);
	CHECK_EQ(epoch, 5);

	TEST("on a leader, a sync append and an fsync wait for the commit too");
	{
		struct tfs_bounds sb;
		struct tfs_syncreq sr = { .done = NULL };
		struct done_rec ds;

		CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 5), 0);
		/* Alone in its ISR: the replicas add nothing to wait for. */
		tfs_partition_set_replicated_durable(p, UINT64_MAX);
		CHECK_EQ(append(p, "must commit\n", TFS_APPEND_SYNC, &ds), 0);
		tfs_partition_quiesce(p);
		usleep(20000);
		CHECK_EQ(ds.calls, 0);	/* durable here, not committed */
		tfs_partition_bounds(p, &sb);
		CHECK_EQ(sb.durable, sb.end);
		CHECK(sb.hw < sb.end);
		sr.done = sync_done;
		CHECK_EQ(tfs_partition_sync(p, &sr), 0);
		tfs_partition_set_hw(p, sb.end);
		CHECK_EQ(ds.calls, 1);
		CHECK_EQ(ds.status, 0);
		CHECK_EQ(sync_calls, 1);
	}

	TEST("a commit wait is cancelled once: done never runs, bytes stay");
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 5), 0);
	struct tfs_bounds b0;
	tfs_partition_bounds(p, &b0);
	CHECK_EQ(append(p, "given up\n", 0, &d1), 0);
	CHECK(tfs_partition_cancel_sync(p, &d1.a.sync));
	CHECK(!tfs_partition_cancel_sync(p, &d1.a.sync));
	tfs_partition_set_hw(p, b0.end + 9);
	CHECK_EQ(d1.calls, 0);
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.end, b0.end + 9);
	CHECK_EQ(b.hw, b0.end + 9);	/* it committed after all */

	TEST("a deadline already past: appended, but done -ETIMEDOUT at once");
	{
		struct iovec iov = { "late commit\n", 12 };
		memset(&d2, 0, sizeof(d2));
		d2.a.iov = &iov;
		d2.a.iovcnt = 1;
		d2.a.deadline = tfs_mono_ms() - 1;
		d2.a.done = on_done;
		CHECK_EQ(tfs_partition_append(p, &d2.a), 0);
	}
	CHECK_EQ(d2.calls, 1);
	CHECK_EQ(d2.status, -ETIMEDOUT);
	CHECK(!tfs_partition_cancel_sync(p, &d2.a.sync));
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.end, b0.end + 21);
	struct tfs_syncreq sr = { .deadline = tfs_mono_ms() - 1 };
	CHECK_EQ(tfs_partition_sync(p, &sr), -ETIMEDOUT);
	tfs_partition_set_hw(p, b.end);

	TEST("closing fails the appends waiting to commit");
	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 5), 0);
	CHECK_EQ(append(p, "pending\n", 0, &d1), 0);
	CHECK_EQ(d1.calls, 0);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	CHECK_EQ(d1.calls, 1);
	CHECK_EQ(d1.status, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

static int append_seq(struct tfs_partition *p, const char *text,
		      uint64_t producer, uint32_t seq, struct done_rec *d)
{
	struct iovec iov = { (void *)text, strlen(text) };

	memset(d, 0, sizeof(*d));
	d->a.iov = &iov;
	d->a.iovcnt = 1;
	d->a.producer = producer;
	d->a.sequence = seq;
	d->a.done = on_done;
	return tfs_partition_append(p, &d->a);
}

static void test_producer_table(void)
{
	struct tfs_producers t;
	struct tfs_producer_state last;
	struct tfs_index_entry e = { .count = 1, .length = 2 };

	TEST("the producer table: new, next, repeat, old, gap, eviction");
	/* Producer ids here are streams at epoch 0 (producers.h). */
	const uint64_t P = UINT64_C(5) << 16;
	tfs_producers_init(&t);
	CHECK_EQ(tfs_producers_check(&t, P, 9, &last), TFS_PRODUCE_NEW);
	e.producer = P;
	e.sequence = 9;
	e.offset = 100;
	tfs_producers_record(&t, &e);
	CHECK_EQ(tfs_producers_check(&t, P, 10, &last), TFS_PRODUCE_NEW);
	CHECK_EQ(tfs_producers_check(&t, P, 9, &last),
		 TFS_PRODUCE_DUPLICATE);
	CHECK_EQ(last.offset, 100);
	CHECK_EQ(tfs_producers_check(&t, P, 8, &last),
		 TFS_PRODUCE_OUT_OF_ORDER);
	CHECK_EQ(tfs_producers_check(&t, P, 11, &last),
		 TFS_PRODUCE_OUT_OF_ORDER);
	/* Sequence numbers wrap like Kafka's: after 2^32-1 comes 0. */
	e.sequence = UINT32_MAX;
	tfs_producers_record(&t, &e);
	CHECK_EQ(tfs_producers_check(&t, P, 0, &last), TFS_PRODUCE_NEW);
	e.sequence = 0;

	TEST("a stream's next epoch starts afresh and fences the older one");
	uint64_t P1 = tfs_producer_next_epoch(P);
	CHECK_EQ(tfs_producer_stream(P1), tfs_producer_stream(P));
	CHECK(P1 != P);
	/* The failed write (P, seq 0 after UINT32_MAX) never arrived; the
	 * next write comes at epoch 1 from sequence 0. */
	CHECK_EQ(tfs_producers_check(&t, P1, 0, &last), TFS_PRODUCE_NEW);
	e.producer = P1;
	e.sequence = 0;
	e.offset = 150;
	tfs_producers_record(&t, &e);
	/* The failed write's request arrives now: refused, not appended
	 * after the write that came after it. */
	CHECK_EQ(tfs_producers_check(&t, P, 0, &last),
		 TFS_PRODUCE_OUT_OF_ORDER);
	CHECK_EQ(last.producer, P1);
	/* An older epoch in the log (a follower copying) replaces nothing. */
	e.producer = P;
	e.sequence = 7;
	tfs_producers_record(&t, &e);
	CHECK_EQ(tfs_producers_check(&t, P1, 1, &last), TFS_PRODUCE_NEW);
	CHECK_EQ(tfs_producers_check(&t, P1, 0, &last),
		 TFS_PRODUCE_DUPLICATE);
	/* Epochs wrap as serial numbers: 0xffff is older than 0. */
	uint64_t Pw = (UINT64_C(9) << 16) | 0xffff;
	e.producer = Pw;
	e.sequence = 3;
	tfs_producers_record(&t, &e);
	CHECK_EQ(tfs_producer_next_epoch(Pw), UINT64_C(9) << 16);
	CHECK_EQ(tfs_producers_check(&t, tfs_producer_next_epoch(Pw), 0,
				     &last),
		 TFS_PRODUCE_NEW);
	e.producer = tfs_producer_next_epoch(Pw);
	e.sequence = 0;
	tfs_producers_record(&t, &e);
	CHECK_EQ(tfs_producers_check(&t, Pw, 4, &last),
		 TFS_PRODUCE_OUT_OF_ORDER);
	/* Another stream is another producer. */
	CHECK_EQ(tfs_producers_check(&t, UINT64_C(6) << 16, 5, &last),
		 TFS_PRODUCE_NEW);

	TEST("a full table forgets the stream whose last batch is oldest");
	e.sequence = 0;
	for (uint64_t i = 0; i < TFS_PRODUCERS_MAX; i++) {
		e.producer = (1000 + i) << 16;
		e.offset = 200 + i;
		tfs_producers_record(&t, &e);
	}
	CHECK_EQ(t.n, TFS_PRODUCERS_MAX);
	CHECK_EQ(tfs_producers_check(&t, P1, 7, &last), TFS_PRODUCE_NEW);
	CHECK_EQ(tfs_producers_check(&t, UINT64_C(1001) << 16, 0, &last),
		 TFS_PRODUCE_DUPLICATE);
	tfs_producers_reset(&t);
	CHECK_EQ(tfs_producers_check(&t, UINT64_C(1001) << 16, 0, &last),
		 TFS_PRODUCE_NEW);
	tfs_producers_release(&t);
}

static void test_producers(void)
{
	struct tfs_settings *st = tfs_settings_new(&conf);
	int dfd = new_dir(), fdir = new_dir();
	struct tfs_partition *p = open_role(dfd, st, TFS_ROLE_NONE);
	/* Appends parked until commit stay linked: one record each. */
	struct done_rec r[16], d;
	int k = 0;
	struct tfs_bounds b;
	enum { A = 0xa1 << 16, B = 0xb2 << 16 };	/* two streams */

	CHECK_EQ(tfs_partition_set_role(p, TFS_ROLE_LEADER, 1), 0);
	TEST("a retry of a producer's last batch is answered, not appended");
	CHECK_EQ(append_seq(p, "a0\n", A, 0, &r[k++]), 0);
	CHECK_EQ(append_seq(p, "b0\n", B, 7, &r[k++]), 0);
	CHECK_EQ(append_seq(p, "a1\n", A, 1, &r[k++]), 0);
	tfs_partition_set_hw(p, 9);
	CHECK_EQ(append_seq(p, "a1\n", A, 1, &d), 0);
	CHECK(d.a.duplicate);
	CHECK_EQ(d.a.offset, 6);
	CHECK_EQ(d.a.record, 2);
	CHECK_EQ(d.calls, 1);	/* committed already: answered at once */
	tfs_partition_bounds(p, &b);
	CHECK_EQ(b.hw, 9);

	TEST("a retry of a batch not yet committed waits for its commit");
	CHECK_EQ(append_seq(p, "b1\n", B, 8, &r[k++]), 0);
	CHECK_EQ(append_seq(p, "b1\n", B, 8, &d), 0);
	CHECK(d.a.duplicate);
	CHECK_EQ(d.calls, 0);
	tfs_partition_set_hw(p, 12);
	CHECK_EQ(d.calls, 1);
	CHECK_EQ(d.status, 0);

	TEST("an old sequence or a gap is refused, never appended");
	CHECK_EQ(append_seq(p, "a0\n", A, 0, &d), TFS_ESEQUENCE);
	CHECK_EQ(append_seq(p, "a3\n", A, 3, &d), TFS_ESEQUENCE);
	CHECK_EQ(append_seq(p, "new producer\n", 0xc3, 42, &r[k++]), 0);
	CHECK_EQ(append_seq(p, "local\n", 0, 0, &r[k++]), 0);
	CHECK_EQ(append_seq(p, "local\n", 0, 0, &r[k]), 0);
	CHECK(!r[k++].a.duplicate);

	TEST("a follower learns the producers from the batches it copies");
	struct tfs_partition *f = open_role(fdir, st, TFS_ROLE_FOLLOWER);
	struct tfs_index_entry *e = NULL;
	size_t n = 0;
	struct tfs_readv rv;
	CHECK_EQ(tfs_partition_read_batches(p, 0, 1 << 20, false, &e, &n, &rv),
		 0);
	char *bytes = malloc(rv.len);
	CHECK_EQ(tfs_readv_copy(&rv, 0, bytes, rv.len), (ssize_t)rv.len);
	CHECK_EQ(tfs_partition_append_batches(f, e, n, bytes), 0);
	free(bytes);
	free(e);
	tfs_readv_release(&rv);
	CHECK_EQ(tfs_partition_set_role(f, TFS_ROLE_LEADER, 2), 0);
	CHECK_EQ(append_seq(f, "b1\n", B, 8, &r[k]), 0);
	CHECK(r[k].a.duplicate);
	CHECK_EQ(r[k++].a.offset, 9);
	CHECK_EQ(append_seq(f, "a2\n", A, 2, &r[k]), 0);
	CHECK(!r[k++].a.duplicate);

	TEST("the table is rebuilt from the log at open and after truncation");
	tfs_partition_close(f, TFS_ESHUTDOWN);
	tfs_partition_unref(f);
	f = open_role(fdir, st, TFS_ROLE_FOLLOWER);
	CHECK_EQ(tfs_partition_truncate(f, 12), 0);	/* drops "new producer",
							 * local x2, a2 */
	CHECK_EQ(tfs_partition_set_role(f, TFS_ROLE_LEADER, 3), 0);
	CHECK_EQ(append_seq(f, "a1\n", A, 1, &r[k]), 0);
	CHECK(r[k].a.duplicate);
	CHECK_EQ(r[k++].a.offset, 6);
	CHECK_EQ(append_seq(f, "a2\n", A, 2, &r[k]), 0);
	CHECK(!r[k].a.duplicate);
	CHECK_EQ(r[k++].a.offset, 12);
	tfs_partition_close(f, TFS_ESHUTDOWN);
	tfs_partition_unref(f);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
	close(fdir);
}

/* A wait whose completions are counted. */
struct wait_rec {
	struct tfs_wait w;
	atomic_int calls;
	atomic_int status;
};

static void wait_done(struct tfs_wait *w, int status)
{
	struct wait_rec *r = tfs_container_of(w, struct wait_rec, w);

	atomic_store(&r->status, status);
	atomic_fetch_add(&r->calls, 1);
}

static void wait_init(struct wait_rec *r, uint64_t offset, int64_t deadline)
{
	memset(r, 0, sizeof(*r));
	r->w.offset = offset;
	r->w.deadline = deadline;
	r->w.done = wait_done;
}

static bool calls_reach(struct wait_rec *r, int n, int64_t ms)
{
	int64_t until = tfs_mono_ms() + ms;

	while (atomic_load(&r->calls) < n && tfs_mono_ms() < until)
		usleep(1000);
	return atomic_load(&r->calls) >= n;
}

static void test_waits(void)
{
	struct tfs_settings *st = tfs_settings_new(&conf);
	int dfd = new_dir();
	struct tfs_partition *p = open_role(dfd, st, TFS_ROLE_STANDALONE);
	struct wait_rec a, b, c, d;
	struct done_rec ap;

	TEST("a wait for data already there ends at once, on this thread");
	CHECK_EQ(append(p, "first\n", 0, &ap), 0);
	wait_init(&a, 0, 0);
	tfs_wait_start(p, &a.w);
	CHECK_EQ(atomic_load(&a.calls), 1);
	CHECK_EQ(atomic_load(&a.status), 0);

	TEST("a parked wait ends once when data comes");
	wait_init(&a, 6, 0);
	tfs_wait_start(p, &a.w);
	CHECK_EQ(atomic_load(&a.calls), 0);
	CHECK_EQ(append(p, "second\n", 0, &ap), 0);
	CHECK_EQ(atomic_load(&a.calls), 1);
	CHECK_EQ(atomic_load(&a.status), 0);
	CHECK(!tfs_wait_cancel(p, &a.w, -EINTR));	/* too late */
	CHECK_EQ(atomic_load(&a.calls), 1);

	TEST("a cancel of a parked wait wins: done does not run");
	wait_init(&b, 1000, 0);
	tfs_wait_start(p, &b.w);
	CHECK(tfs_wait_cancel(p, &b.w, -EINTR));
	CHECK_EQ(append(p, "third\n", 0, &ap), 0);
	CHECK_EQ(atomic_load(&b.calls), 0);

	TEST("a cancel before the wait parked ends it with that status");
	wait_init(&c, 1000, 0);
	CHECK(!tfs_wait_cancel(p, &c.w, -EINTR));
	tfs_wait_start(p, &c.w);
	CHECK_EQ(atomic_load(&c.calls), 1);
	CHECK_EQ(atomic_load(&c.status), -EINTR);

	TEST("a deadline ends a wait with -ETIMEDOUT, once");
	wait_init(&d, 1000, tfs_mono_ms() + 50);
	tfs_wait_start(p, &d.w);
	CHECK(calls_reach(&d, 1, 5000));
	CHECK_EQ(atomic_load(&d.status), -ETIMEDOUT);
	CHECK(!tfs_wait_cancel(p, &d.w, -EINTR));
	usleep(20000);
	CHECK_EQ(atomic_load(&d.calls), 1);

	TEST("a deadline already past never parks");
	wait_init(&d, 1000, tfs_mono_ms() - 1);
	tfs_wait_start(p, &d.w);
	CHECK_EQ(atomic_load(&d.calls), 1);
	CHECK_EQ(atomic_load(&d.status), -ETIMEDOUT);

	TEST("data before the deadline disarms it");
	wait_init(&d, 19, tfs_mono_ms() + 100);
	tfs_wait_start(p, &d.w);
	CHECK_EQ(append(p, "fourth\n", 0, &ap), 0);
	CHECK_EQ(atomic_load(&d.calls), 1);
	CHECK_EQ(atomic_load(&d.status), 0);
	usleep(150000);
	CHECK_EQ(atomic_load(&d.calls), 1);

	TEST("ended waits: parked ones and later ones end with the status");
	wait_init(&a, 1000, 0);
	tfs_wait_start(p, &a.w);
	tfs_partition_end_waits(p, TFS_ESHUTDOWN);
	CHECK_EQ(atomic_load(&a.calls), 1);
	CHECK_EQ(atomic_load(&a.status), TFS_ESHUTDOWN);
	wait_init(&b, 1000, 0);
	tfs_wait_start(p, &b.w);
	CHECK_EQ(atomic_load(&b.calls), 1);
	CHECK_EQ(atomic_load(&b.status), TFS_ESHUTDOWN);
	/* Appends go on; data below the end is still there to read. */
	CHECK_EQ(append(p, "fifth\n", 0, &ap), 0);
	wait_init(&c, 0, 0);
	tfs_wait_start(p, &c.w);
	CHECK_EQ(atomic_load(&c.status), 0);

	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

/* Many threads race cancels against appends and deadlines: every wait
 * must end exactly once (by done or by a winning cancel). */
struct race {
	struct tfs_partition *p;
	struct wait_rec *w;
	int n;
	atomic_int cancels;
};

static void *canceller(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < r->n; i++)
		if (tfs_wait_cancel(r->p, &r->w[i].w, -EINTR))
			atomic_fetch_add(&r->cancels, 1);
	return NULL;
}

static void test_wait_races(void)
{
	struct tfs_settings *st = tfs_settings_new(&conf);
	int dfd = new_dir();
	struct tfs_partition *p = open_role(dfd, st, TFS_ROLE_STANDALONE);
	enum { N = 2000 };
	struct wait_rec *w = calloc(N, sizeof(*w));
	struct race r = { .p = p, .w = w, .n = N };
	struct done_rec ap;
	pthread_t th;

	TEST("cancels, appends and deadlines racing: each wait ends once");
	for (int i = 0; i < N; i++)
		wait_init(&w[i], (uint64_t)i / 4,
			  i % 3 ? tfs_mono_ms() + i % 7 : 0);
	pthread_create(&th, NULL, canceller, &r);
	for (int i = 0; i < N; i++) {
		tfs_wait_start(p, &w[i].w);
		if (i % 8 == 0)
			append(p, "x\n", 0, &ap);
	}
	pthread_join(th, NULL);
	/* The rest end by data or deadline: append past every offset. */
	for (int i = 0; i < N / 4; i++)
		append(p, "y\n", 0, &ap);
	int once = 0, twice = 0;
	int64_t until = tfs_mono_ms() + 5000;
	for (int i = 0; i < N; i++) {
		while (atomic_load(&w[i].calls) == 0 && tfs_mono_ms() < until)
			usleep(100);
		once += atomic_load(&w[i].calls) == 1;
		twice += atomic_load(&w[i].calls) > 1;
	}
	CHECKF(once + atomic_load(&r.cancels) == N, "done %d + cancels %d",
	       once, atomic_load(&r.cancels));
	CHECK_EQ(twice, 0);
	free(w);
	tfs_partition_close(p, TFS_ESHUTDOWN);
	tfs_partition_unref(p);
	tfs_settings_unref(st);
	close(dfd);
}

/* --- the timer thread ----------------------------------------------------- */

struct tick {
	struct tfs_timer t;
	atomic_int fired;
	int64_t at;
	int order;
};

static atomic_int fire_seq;

static void on_tick(struct tfs_timer *t)
{
	struct tick *k = tfs_container_of(t, struct tick, t);

	k->at = tfs_mono_ms();
	k->order = atomic_fetch_add(&fire_seq, 1);
	atomic_fetch_add(&k->fired, 1);
}

static void test_timers(void)
{
	struct tick k[5];
	int64_t now = tfs_mono_ms();

	TEST("timers fire in time order, once");
	memset(k, 0, sizeof(k));
	for (int i = 0; i < 5; i++)
		k[i].t.fn = on_tick;
	/* Armed out of order: 40, 10, 30, 20 ms; the fifth is disarmed. */
	tfs_timer_arm(timers, &k[0].t, now + 40);
	tfs_timer_arm(timers, &k[1].t, now + 10);
	tfs_timer_arm(timers, &k[2].t, now + 30);
	tfs_timer_arm(timers, &k[3].t, now + 20);
	tfs_timer_arm(timers, &k[4].t, now + 25);
	CHECK(tfs_timer_disarm(timers, &k[4].t));
	int64_t until = now + 5000;
	while (atomic_load(&k[0].fired) == 0 && tfs_mono_ms() < until)
		usleep(1000);
	CHECK(k[1].order < k[3].order);
	CHECK(k[3].order < k[2].order);
	CHECK(k[2].order < k[0].order);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(atomic_load(&k[i].fired), 1);
		CHECK(k[i].at >= now);
	}
	CHECK_EQ(atomic_load(&k[4].fired), 0);

	TEST("disarming a timer that fired says so; re-arming moves it");
	CHECK(!tfs_timer_disarm(timers, &k[1].t));
	tfs_timer_arm(timers, &k[1].t, tfs_mono_ms() + 60000);
	tfs_timer_arm(timers, &k[1].t, tfs_mono_ms() + 5);
	until = tfs_mono_ms() + 5000;
	while (atomic_load(&k[1].fired) < 2 && tfs_mono_ms() < until)
		usleep(1000);
	CHECK_EQ(atomic_load(&k[1].fired), 2);

	TEST("many timers at random times all fire");
	enum { M = 3000 };
	struct tick *many = calloc(M, sizeof(*many));
	unsigned seed = 7;
	now = tfs_mono_ms();
	for (int i = 0; i < M; i++) {
		many[i].t.fn = on_tick;
		tfs_timer_arm(timers, &many[i].t, now + rand_r(&seed) % 50);
	}
	int disarmed = 0;
	for (int i = 0; i < M; i += 3)
		disarmed += tfs_timer_disarm(timers, &many[i].t);
	until = tfs_mono_ms() + 5000;
	int fired;
	do {
		fired = 0;
		for (int i = 0; i < M; i++)
			fired += atomic_load(&many[i].fired);
		usleep(1000);
	} while (fired + disarmed < M && tfs_mono_ms() < until);
	CHECK_EQ(fired + disarmed, M);
	free(many);
}

int main(void)
{
	if (tl_setup("roles", root, sizeof(root)))
		return 1;
	tfs_conf_init(&conf);
	if (tfs_workers_start(2, "tfs-sync", &syncer) ||
	    tfs_timers_start("tfs-timer", &timers))
		return 1;
	test_produce_rules();
	test_roles();
	test_producer_table();
	test_producers();
	test_waits();
	test_wait_races();
	test_timers();
	tfs_timers_stop(timers);
	tfs_workers_stop(syncer);
	tfs_conf_release(&conf);
	tl_cleanup(root);
	return check_done();
}
