/*
 * Unit tests for the etcd client, in three parts:
 *   1. pure: base64, txn JSON, parsing range and txn answers;
 *   2. against fake servers (testhttp.h): what each failure of an
 *      endpoint means, and the watch protocol step by step;
 *   3. against a real etcd this program starts (testetcd.h): reads,
 *      txns, CAS, an election, leases, watches across a restart,
 *      compaction, endpoint failover.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base64.h"
#include "check.h"
#include "err.h"
#include "etcd.h"
#include "httpc.h"
#include "log.h"
#include "testetcd.h"
#include "testhttp.h"

#define DEADLINE_MS 20000

/* --- helpers -------------------------------------------------------------- */

static char *b64(const char *s, size_t n)
{
	struct tfs_buf b = TFS_BUF_INIT;

	tfs_base64_encode(&b, s, n);
	return tfs_buf_detach(&b, NULL);
}

static bool b64_is(json_t *j, const char *raw, size_t n)
{
	char *want = b64(raw, n);
	bool ok = json_is_string(j) && strcmp(json_string_value(j), want) == 0;

	free(want);
	return ok;
}

static bool str_is(json_t *j, const char *s)
{
	return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

/* --- 1. pure -------------------------------------------------------------- */

static void test_base64(void)
{
	static const char *const rfc[][2] = {
		{ "", "" },		{ "f", "Zg==" },
		{ "fo", "Zm8=" },	{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },	{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	struct tfs_buf b = TFS_BUF_INIT;

	TEST("base64: the RFC 4648 vectors both ways");
	for (size_t i = 0; i < TFS_ARRAY_SIZE(rfc); i++) {
		tfs_buf_reset(&b);
		tfs_base64_encode(&b, rfc[i][0], strlen(rfc[i][0]));
		CHECKF(strcmp(b.data, rfc[i][1]) == 0, "%s -> %s", rfc[i][0],
		       b.data);
		tfs_buf_reset(&b);
		CHECK_EQ(tfs_base64_decode(&b, rfc[i][1], strlen(rfc[i][1])),
			 0);
		CHECK(b.len == strlen(rfc[i][0]) &&
		      memcmp(b.data ? b.data : "", rfc[i][0], b.len) == 0);
	}

	TEST("base64: every byte value and length round-trips");
	unsigned char raw[300];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(255 - i);
	int bad = 0;
	for (size_t n = 0; n <= sizeof(raw); n++) {
		struct tfs_buf e = TFS_BUF_INIT, d = TFS_BUF_INIT;
		tfs_base64_encode(&e, raw, n);
		if (e.len != (n + 2) / 3 * 4 ||
		    tfs_base64_decode(&d, e.data, e.len) != 0 || d.len != n ||
		    (n && memcmp(d.data, raw, n) != 0))
			bad++;
		tfs_buf_release(&e);
		tfs_buf_release(&d);
	}
	CHECK_EQ(bad, 0);

	TEST("base64: malformed text is refused, out unchanged");
	const char *wrong[] = { "Zg=", "Zg", "Z", "Zg=a", "Z===", "====",
				"Zh==", "Zm9=", "Zm9v\n", "Zm-v", "Zm_v",
				"Zm9v====", "Zg==Zg==", "Zm 9", "\xc3\xa9xx" };
	for (size_t i = 0; i < TFS_ARRAY_SIZE(wrong); i++) {
		tfs_buf_reset(&b);
		tfs_buf_add(&b, "keep", 4);
		CHECKF(tfs_base64_decode(&b, wrong[i], strlen(wrong[i])) ==
			       -EINVAL, "'%s'", wrong[i]);
		CHECK(b.len == 4 && strcmp(b.data, "keep") == 0);
	}
	tfs_buf_reset(&b);
	CHECK_EQ(tfs_base64_decode(&b, "AA==", 4), 0);	/* a NUL byte */
	CHECK(b.len == 1 && b.data[0] == '\0');
	tfs_buf_release(&b);
}

static void test_txn_json(void)
{
	struct tfs_txn *t = tfs_txn_new();
	json_t *o, *c, *s, *f, *x;
	char *text;

	TEST("txn JSON: compares, puts with and without lease, deletes, gets");
	tfs_txn_cmp(t, "/k", TFS_CMP_CREATE, TFS_CMP_EQ, 0, NULL);
	tfs_txn_cmp(t, "/k", TFS_CMP_MOD, TFS_CMP_LT, 1234567890123LL, NULL);
	tfs_txn_cmp(t, "/k", TFS_CMP_VERSION, TFS_CMP_GT, 2, NULL);
	tfs_txn_cmp(t, "/k", TFS_CMP_VALUE, TFS_CMP_NE, 0, "hello");
	tfs_txn_put(t, true, "/k", "v", 0);
	tfs_txn_put(t, true, "/t/a", "", 7587869123456789LL);
	tfs_txn_del(t, true, "/p/", true);
	tfs_txn_del(t, true, "/k", false);
	tfs_txn_get(t, false, "/k", false);
	tfs_txn_get(t, false, "a\xff", true);
	tfs_txn_get(t, false, "", true);
	tfs_txn_del(t, false, "\xff\xff", true);
	text = tfs_txn_json(t);
	o = json_loads(text, 0, NULL);
	CHECK(o != NULL);
	c = json_object_get(o, "compare");
	s = json_object_get(o, "success");
	f = json_object_get(o, "failure");
	CHECK(json_array_size(c) == 4 && json_array_size(s) == 4 &&
	      json_array_size(f) == 4);

	x = json_array_get(c, 0);
	CHECK(b64_is(json_object_get(x, "key"), "/k", 2));
	CHECK(str_is(json_object_get(x, "target"), "CREATE"));
	CHECK(str_is(json_object_get(x, "result"), "EQUAL"));
	CHECK(str_is(json_object_get(x, "create_revision"), "0"));
	x = json_array_get(c, 1);
	CHECK(str_is(json_object_get(x, "target"), "MOD"));
	CHECK(str_is(json_object_get(x, "result"), "LESS"));
	CHECK(str_is(json_object_get(x, "mod_revision"), "1234567890123"));
	x = json_array_get(c, 2);
	CHECK(str_is(json_object_get(x, "target"), "VERSION"));
	CHECK(str_is(json_object_get(x, "result"), "GREATER"));
	CHECK(str_is(json_object_get(x, "version"), "2"));
	x = json_array_get(c, 3);
	CHECK(str_is(json_object_get(x, "target"), "VALUE"));
	CHECK(str_is(json_object_get(x, "result"), "NOT_EQUAL"));
	CHECK(b64_is(json_object_get(x, "value"), "hello", 5));

	x = json_object_get(json_array_get(s, 0), "request_put");
	CHECK(b64_is(json_object_get(x, "key"), "/k", 2));
	CHECK(b64_is(json_object_get(x, "value"), "v", 1));
	CHECK(json_object_get(x, "lease") == NULL);
	x = json_object_get(json_array_get(s, 1), "request_put");
	CHECK(str_is(json_object_get(x, "lease"), "7587869123456789"));
	CHECK(str_is(json_object_get(x, "value"), ""));
	x = json_object_get(json_array_get(s, 2), "request_delete_range");
	CHECK(b64_is(json_object_get(x, "key"), "/p/", 3));
	CHECK(b64_is(json_object_get(x, "range_end"), "/p0", 3));
	x = json_object_get(json_array_get(s, 3), "request_delete_range");
	CHECK(b64_is(json_object_get(x, "key"), "/k", 2));
	CHECK(json_object_get(x, "range_end") == NULL);

	TEST("txn JSON: prefix ends after 0xff bytes, empty prefix");
	x = json_object_get(json_array_get(f, 0), "request_range");
	CHECK(b64_is(json_object_get(x, "key"), "/k", 2));
	CHECK(json_object_get(x, "range_end") == NULL);
	x = json_object_get(json_array_get(f, 1), "request_range");
	CHECK(b64_is(json_object_get(x, "key"), "a\xff", 2));
	CHECK(b64_is(json_object_get(x, "range_end"), "b", 1));
	x = json_object_get(json_array_get(f, 2), "request_range");
	CHECK(b64_is(json_object_get(x, "key"), "", 1));	/* "\0" */
	CHECK(b64_is(json_object_get(x, "range_end"), "", 1));
	x = json_object_get(json_array_get(f, 3), "request_delete_range");
	CHECK(b64_is(json_object_get(x, "key"), "\xff\xff", 2));
	CHECK(b64_is(json_object_get(x, "range_end"), "", 1));
	json_decref(o);
	free(text);
	tfs_txn_free(t);
	tfs_txn_free(NULL);

	TEST("txn JSON: an empty txn");
	t = tfs_txn_new();
	text = tfs_txn_json(t);
	CHECK(strcmp(text, "{\"compare\":[],\"success\":[],\"failure\":[]}") ==
	      0);
	free(text);
	tfs_txn_free(t);
}

#define HDR "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\"," \
	    "\"revision\":\"42\",\"raft_term\":\"2\"}"

static void test_parse_range(void)
{
	struct tfs_kvs kvs;
	const char *j;

	TEST("range answer: int64 strings, omitted defaults");
	j = "{" HDR ",\"kvs\":[{\"key\":\"L2YvYQ==\",\"create_revision\":\"3\","
	    "\"mod_revision\":\"9223372036854775807\",\"version\":\"2\","
	    "\"value\":\"aGVsbG8=\",\"lease\":\"7587869123456789\"},"
	    "{\"key\":\"L2YvYg==\",\"create_revision\":5,"
	    "\"mod_revision\":\"5\",\"version\":\"1\"}],\"count\":\"2\"}";
	CHECK_EQ(tfs_etcd_parse_range(j, strlen(j), &kvs), 0);
	CHECK_EQ(kvs.revision, 42);
	CHECK_EQ(kvs.n, 2);
	if (kvs.n == 2) {
		CHECK(strcmp(kvs.v[0].key, "/f/a") == 0);
		CHECK(strcmp(kvs.v[0].value, "hello") == 0);
		CHECK_EQ(kvs.v[0].value_len, 5);
		CHECK_EQ(kvs.v[0].create_rev, 3);
		CHECK(kvs.v[0].mod_rev == INT64_MAX);
		CHECK_EQ(kvs.v[0].version, 2);
		CHECK_EQ(kvs.v[0].lease, 7587869123456789LL);
		CHECK(strcmp(kvs.v[1].key, "/f/b") == 0);
		CHECK(kvs.v[1].value && kvs.v[1].value[0] == '\0');
		CHECK_EQ(kvs.v[1].value_len, 0);
		CHECK_EQ(kvs.v[1].create_rev, 5);
		CHECK_EQ(kvs.v[1].lease, 0);
	}
	tfs_kvs_release(&kvs);
	tfs_kvs_release(&kvs);

	TEST("range answer: no kvs at all");
	j = "{" HDR "}";
	CHECK_EQ(tfs_etcd_parse_range(j, strlen(j), &kvs), 0);
	CHECK(kvs.n == 0 && kvs.revision == 42);
	tfs_kvs_release(&kvs);

	TEST("range answer: malformed ones are TFS_EPROTO");
	const char *bad[] = {
		"",
		"not json",
		"[]",
		"{\"kvs\":[]}",
		"{\"header\":1}",
		"{\"header\":{\"revision\":\"abc\"}}",
		"{\"header\":{\"revision\":\"12x\"}}",
		"{\"header\":{\"revision\":\"\"}}",
		"{\"header\":{\"revision\":\" 1\"}}",
		"{\"header\":{\"revision\":1.5}}",
		"{\"header\":{\"revision\":\"99999999999999999999\"}}",
		"{\"header\":{\"revision\":true}}",
		"{" HDR ",\"kvs\":{}}",
		"{" HDR ",\"kvs\":[1]}",
		"{" HDR ",\"kvs\":[{}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"L2Y\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"AA==\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":5}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"L2Yv\",\"value\":7}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"L2Yv\",\"value\":\"!!\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"L2Yv\",\"version\":\"x\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"L2Yv\"},{\"key\":null}]}",
	};
	for (size_t i = 0; i < TFS_ARRAY_SIZE(bad); i++) {
		CHECKF(tfs_etcd_parse_range(bad[i], strlen(bad[i]), &kvs) ==
			       TFS_EPROTO, "%s", bad[i]);
		CHECK(kvs.n == 0 && kvs.v == NULL);
	}
}

static void test_parse_txn(void)
{
	struct tfs_txn_result r;
	const char *j;

	TEST("txn answer: success with put, range and delete responses");
	j = "{" HDR ",\"succeeded\":true,\"responses\":["
	    "{\"response_put\":{\"header\":{\"revision\":\"42\"}}},"
	    "{\"response_range\":{\"header\":{\"revision\":\"42\"},"
	    "\"kvs\":[{\"key\":\"L2YvYQ==\",\"mod_revision\":\"40\","
	    "\"value\":\"MQ==\"}],\"count\":\"1\"}},"
	    "{\"response_delete_range\":{\"header\":{},\"deleted\":\"3\"}},"
	    "{\"response_range\":{\"header\":{\"revision\":\"42\"}}}]}";
	CHECK_EQ(tfs_etcd_parse_txn(j, strlen(j), &r), 0);
	CHECK(r.succeeded);
	CHECK_EQ(r.revision, 42);
	CHECK_EQ(r.nranges, 2);
	if (r.nranges == 2) {
		CHECK_EQ(r.ranges[0].n, 1);
		CHECK(strcmp(r.ranges[0].v[0].value, "1") == 0);
		CHECK_EQ(r.ranges[0].v[0].mod_rev, 40);
		CHECK_EQ(r.ranges[0].revision, 42);
		CHECK_EQ(r.ranges[1].n, 0);
	}
	tfs_txn_result_release(&r);
	tfs_txn_result_release(&r);

	TEST("txn answer: a failed txn has no \"succeeded\"");
	j = "{" HDR ",\"responses\":[{\"response_range\":{\"header\":"
	    "{\"revision\":\"42\"},\"kvs\":[{\"key\":\"L2YvYQ==\","
	    "\"create_revision\":\"2\",\"mod_revision\":\"9\","
	    "\"version\":\"4\",\"value\":\"Mg==\"}],\"count\":\"1\"}}]}";
	CHECK_EQ(tfs_etcd_parse_txn(j, strlen(j), &r), 0);
	CHECK(!r.succeeded);
	CHECK_EQ(r.nranges, 1);
	if (r.nranges == 1 && r.ranges[0].n == 1) {
		CHECK(strcmp(r.ranges[0].v[0].value, "2") == 0);
		CHECK_EQ(r.ranges[0].v[0].version, 4);
	}
	tfs_txn_result_release(&r);
	j = "{" HDR "}";
	CHECK_EQ(tfs_etcd_parse_txn(j, strlen(j), &r), 0);
	CHECK(!r.succeeded && r.nranges == 0 && r.revision == 42);
	tfs_txn_result_release(&r);

	TEST("txn answer: malformed ones are TFS_EPROTO");
	const char *bad[] = {
		"{",
		"{\"succeeded\":true}",
		"{" HDR ",\"succeeded\":\"true\"}",
		"{" HDR ",\"responses\":{}}",
		"{" HDR ",\"responses\":[3]}",
		"{" HDR ",\"responses\":[{\"response_range\":[]}]}",
		"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{"
		"\"key\":\"L2Yv\"}]}},{\"response_range\":{\"kvs\":[{"
		"\"key\":\"@@@@\"}]}}]}",
	};
	for (size_t i = 0; i < TFS_ARRAY_SIZE(bad); i++) {
		CHECKF(tfs_etcd_parse_txn(bad[i], strlen(bad[i]), &r) ==
			       TFS_EPROTO, "%s", bad[i]);
		CHECK(r.nranges == 0 && r.ranges == NULL);
	}
}

static void test_open_args(void)
{
	struct tfs_etcd *e = NULL;

	TEST("open: bad endpoint lists and timeouts are -EINVAL");
	CHECK_EQ(tfs_etcd_open("", 1000, &e), -EINVAL);
	CHECK_EQ(tfs_etcd_open(" , ,", 1000, &e), -EINVAL);
	CHECK_EQ(tfs_etcd_open("127.0.0.1:2379", 1000, &e), -EINVAL);
	CHECK_EQ(tfs_etcd_open("http://a:1,ftp://b:2", 1000, &e), -EINVAL);
	CHECK_EQ(tfs_etcd_open("http://a:1;ftp://b:2", 1000, &e), -EINVAL);
	CHECK_EQ(tfs_etcd_open("http://a:1 ftp://b:2", 1000, &e), -EINVAL);
	CHECK_EQ(tfs_etcd_open("http://127.0.0.1:2379", 0, &e), -EINVAL);
	CHECK(e == NULL);
	CHECK_EQ(tfs_etcd_open(" http://127.0.0.1:1/ , http://127.0.0.1:2",
			       1000, &e), 0);
	tfs_etcd_close(e);
	TEST("open: endpoints separated by ';' (as -o and fstab need) or blanks");
	CHECK_EQ(tfs_etcd_open("http://127.0.0.1:1;http://127.0.0.1:2", 1000,
			       &e), 0);
	tfs_etcd_close(e);
	CHECK_EQ(tfs_etcd_open("http://127.0.0.1:1 http://127.0.0.1:2", 1000,
			       &e), 0);
	tfs_etcd_close(e);
	tfs_etcd_close(NULL);
}

/* --- watch event collection ----------------------------------------------- */

struct ev_rec {
	bool deleted, resync;
	char key[64], value[64];
	int64_t mod_rev, rev;
	size_t batch;			/* events in its fn call */
};

struct coll {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ev_rec v[512];
	int n, calls;
	bool stopped;			/* set once stop returned */
	int after_stop;			/* fn calls after that: a bug */
	struct tfs_etcd *e;		/* set: fn does a get, re-entering */
	int reads_ok;
};

static void coll_init(struct coll *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
}

static void coll_fn(void *arg, const struct tfs_etcd_event *ev, size_t n,
		    int64_t rev, bool resync)
{
	struct coll *c = arg;

	if (c->e) {
		struct tfs_kvs kvs;
		if (tfs_etcd_get(c->e, "/nothing", &kvs) == 0)
			c->reads_ok++;
		tfs_kvs_release(&kvs);
	}
	pthread_mutex_lock(&c->lock);
	c->calls++;
	if (c->stopped)
		c->after_stop++;
	if (resync && c->n < 512)
		c->v[c->n++] = (struct ev_rec){ .resync = true, .rev = rev };
	for (size_t i = 0; i < n && c->n < 512; i++) {
		struct ev_rec *r = &c->v[c->n++];
		memset(r, 0, sizeof(*r));
		r->deleted = ev[i].deleted;
		snprintf(r->key, sizeof(r->key), "%s", ev[i].kv.key);
		snprintf(r->value, sizeof(r->value), "%s",
			 ev[i].kv.value ? ev[i].kv.value : "");
		r->mod_rev = ev[i].kv.mod_rev;
		r->rev = rev;
		r->batch = n;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Waits until c holds at least n records; returns whether it did. */
static bool coll_wait(struct coll *c, int n)
{
	long deadline = te_ms() + DEADLINE_MS;
	bool ok;

	pthread_mutex_lock(&c->lock);
	while (c->n < n && te_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	ok = c->n >= n;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static void coll_stop(struct coll *c, struct tfs_etcd_watch *w)
{
	tfs_etcd_watch_stop(w);
	pthread_mutex_lock(&c->lock);
	c->stopped = true;
	pthread_mutex_unlock(&c->lock);
}

static void coll_release(struct coll *c)
{
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
}

/* --- 2. fake servers ------------------------------------------------------ */

/* What the fake etcd does with every request. */
enum fake_mode { FAKE_HANG, FAKE_503, FAKE_429, FAKE_400, FAKE_404,
		 FAKE_404_PLAIN, FAKE_GARBAGE, FAKE_HTML, FAKE_WATCH };
static _Atomic enum fake_mode fake_mode;

/* The watch script: the bodies of the streams the client opened. */
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static char fake_bodies[8][512];
static int fake_streams;

#define RES(x) "{\"result\":{\"header\":{\"revision\":\"" x "\"}"

static void fake_watch(int fd, const struct th_req *rq, int stream)
{
	th_chunked_head(fd, 200);
	switch (stream) {
	case 0: {
		/* created, a batch of two events, a progress, then closes */
		const char *l1 = RES("5") ",\"created\":true}}\n";
		const char *l2 = RES("7") ",\"events\":[{\"kv\":{\"key\":"
				 "\"L2YvYQ==\",\"create_revision\":\"6\","
				 "\"mod_revision\":\"6\",\"version\":\"1\","
				 "\"value\":\"MQ==\"}},{\"type\":\"DELETE\","
				 "\"kv\":{\"key\":\"L2YvYg==\","
				 "\"mod_revision\":\"7\"}}]}}\n";
		const char *l3 = RES("9") "}}\n";
		th_chunk(fd, l1, strlen(l1));
		/* A line cut in two chunks must be put together. */
		th_chunk(fd, l2, 20);
		th_chunk(fd, l2 + 20, strlen(l2) - 20);
		th_chunk(fd, l3, strlen(l3));
		th_chunk(fd, NULL, 0);
		return;
	}
	case 1: {
		/* resumed from 8: created, one event, then a bad line */
		const char *l1 = RES("12") ",\"created\":true}}\n";
		const char *l2 = RES("11") ",\"events\":[{\"kv\":{\"key\":"
				 "\"L2YvYQ==\",\"mod_revision\":\"11\"}}]}}\n";
		th_chunk(fd, l1, strlen(l1));
		th_chunk(fd, l2, strlen(l2));
		th_chunk(fd, "{\"result\":oops}\n", 16);
		return;
	}
	case 2: {
		/* from now (events were lost): created at 20, then compacted */
		const char *l1 = RES("20") ",\"created\":true}}\n";
		const char *l2 = "{\"result\":{\"header\":{},\"canceled\":true,"
				 "\"compact_revision\":\"15\"}}\n";
		th_chunk(fd, l1, strlen(l1));
		th_chunk(fd, l2, strlen(l2));
		return;
	}
	default: {
		/* from now again: created at 30, then nothing, ever */
		const char *l1 = RES("30") ",\"created\":true}}\n";
		th_chunk(fd, l1, strlen(l1));
		return;
	}
	}
	(void)rq;
}

static enum th_action fake_handle(struct th_server *s, int fd,
				  const struct th_req *rq)
{
	const char *e400 = "{\"error\":\"etcdserver: too many operations in "
			   "txn request\",\"code\":3}";
	const char *e404 = "{\"error\":\"etcdserver: requested lease not "
			   "found\",\"code\":5}";
	const char *e503 = "{\"error\":\"etcdserver: request timed out\","
			   "\"code\":14}";
	const char *e429 = "{\"error\":\"etcdserver: too many requests\","
			   "\"code\":8}";
	int stream;

	switch (fake_mode) {
	case FAKE_HANG:
		return TH_HANG;
	case FAKE_503:
		th_reply(fd, 503, NULL, e503, strlen(e503));
		return TH_KEEP;
	case FAKE_429:
		th_reply(fd, 429, NULL, e429, strlen(e429));
		return TH_KEEP;
	case FAKE_400:
		th_reply(fd, 400, NULL, e400, strlen(e400));
		return TH_KEEP;
	case FAKE_404_PLAIN:
		th_reply(fd, 404, NULL, "404 page not found", 18);
		return TH_KEEP;
	case FAKE_404:
		th_reply(fd, 404, NULL, e404, strlen(e404));
		return TH_KEEP;
	case FAKE_GARBAGE:
		th_reply(fd, 200, NULL, "{\"header\":", 10);
		return TH_KEEP;
	case FAKE_HTML:
		th_reply(fd, 200, NULL, "<html></html>", 13);
		return TH_KEEP;
	case FAKE_WATCH:
		break;
	}
	if (strcmp(rq->path, "/v3/watch") != 0)
		return TH_CLOSE;
	pthread_mutex_lock(&fake_lock);
	stream = fake_streams++;
	if (stream < 8)
		snprintf(fake_bodies[stream], sizeof(fake_bodies[0]), "%.*s",
			 (int)rq->body_len, rq->body);
	pthread_mutex_unlock(&fake_lock);
	fake_watch(fd, rq, stream);
	return stream == 0 ? TH_KEEP : TH_HANG;
	(void)s;
}

static int fake_stream_count(void)
{
	pthread_mutex_lock(&fake_lock);
	int n = fake_streams;
	pthread_mutex_unlock(&fake_lock);
	return n;
}

static void test_fake_outcomes(void)
{
	struct th_server *s = th_start(fake_handle, NULL);
	struct tfs_etcd *e;
	struct tfs_kvs kvs;
	struct tfs_txn_result res;
	struct tfs_txn *w = tfs_txn_new(), *r = tfs_txn_new();
	char eps[128];
	int64_t id, ttl;

	tfs_txn_put(w, true, "/k", "v", 0);
	tfs_txn_get(r, true, "/k", false);
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%u", s->port);
	CHECK_EQ(tfs_etcd_open(eps, 400, &e), 0);

	TEST("a member that never answers: reads TFS_EUNAVAIL, writes "
	     "TFS_EUNKNOWN");
	fake_mode = FAKE_HANG;
	CHECK_EQ(tfs_etcd_get(e, "/k", &kvs), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_txn(e, r, &res), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_txn(e, w, &res), TFS_EUNKNOWN);
	CHECK_EQ(tfs_etcd_lease_grant(e, 5, &id, &ttl), TFS_EUNKNOWN);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, 1, &ttl), TFS_EUNAVAIL);

	TEST("503: reads TFS_EUNAVAIL, writes TFS_EUNKNOWN");
	fake_mode = FAKE_503;
	CHECK_EQ(tfs_etcd_range(e, "/", &kvs), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_txn(e, w, &res), TFS_EUNKNOWN);

	TEST("429 (nothing done): TFS_EUNAVAIL for reads and writes");
	fake_mode = FAKE_429;
	CHECK_EQ(tfs_etcd_get(e, "/k", &kvs), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_txn(e, w, &res), TFS_EUNAVAIL);

	TEST("etcd's 400 is -EINVAL, its 404 -ENOENT; another 404 TFS_EPROTO");
	fake_mode = FAKE_400;
	CHECK_EQ(tfs_etcd_txn(e, w, &res), -EINVAL);
	fake_mode = FAKE_404;
	CHECK_EQ(tfs_etcd_lease_revoke(e, 5), -ENOENT);
	CHECK_EQ(tfs_etcd_txn(e, w, &res), -ENOENT);
	fake_mode = FAKE_404_PLAIN;
	CHECK_EQ(tfs_etcd_lease_revoke(e, 5), TFS_EPROTO);
	CHECK_EQ(tfs_etcd_get(e, "/k", &kvs), TFS_EPROTO);

	TEST("answers that do not parse are TFS_EPROTO");
	fake_mode = FAKE_GARBAGE;
	CHECK_EQ(tfs_etcd_get(e, "/k", &kvs), TFS_EPROTO);
	CHECK(kvs.n == 0 && kvs.v == NULL);
	CHECK_EQ(tfs_etcd_txn(e, w, &res), TFS_EPROTO);
	CHECK_EQ(tfs_etcd_lease_grant(e, 5, &id, &ttl), TFS_EPROTO);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, 5, &ttl), TFS_EPROTO);
	fake_mode = FAKE_HTML;
	CHECK_EQ(tfs_etcd_range(e, "/", &kvs), TFS_EPROTO);
	CHECK_EQ(tfs_etcd_lease_revoke(e, 5), TFS_EPROTO);
	tfs_etcd_close(e);
	tfs_txn_free(w);
	tfs_txn_free(r);
	th_stop(s);
}

static void test_fake_watch(void)
{
	struct th_server *s = th_start(fake_handle, NULL);
	struct tfs_etcd *e;
	struct tfs_etcd_watch *w = NULL;
	struct coll c;
	char eps[128];

	fake_mode = FAKE_WATCH;
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%u", s->port);
	CHECK_EQ(tfs_etcd_open(eps, 2000, &e), 0);
	coll_init(&c);

	TEST("fake watch: events in order, resume after the last, resync on "
	     "a bad line and on compaction");
	CHECK_EQ(tfs_etcd_watch_start(e, "/f/", 3, coll_fn, &c, &w), 0);
	/* Two events, one event, a resync at 20, a resync at 30. */
	CHECK(coll_wait(&c, 5));
	pthread_mutex_lock(&c.lock);
	CHECK_EQ(c.n, 5);
	if (c.n >= 5) {
		CHECK(!c.v[0].deleted && strcmp(c.v[0].key, "/f/a") == 0 &&
		      strcmp(c.v[0].value, "1") == 0 && c.v[0].mod_rev == 6 &&
		      c.v[0].batch == 2 && c.v[0].rev == 7);
		CHECK(c.v[1].deleted && strcmp(c.v[1].key, "/f/b") == 0 &&
		      c.v[1].mod_rev == 7 && c.v[1].value[0] == '\0');
		CHECK(!c.v[2].resync && c.v[2].mod_rev == 11);
		CHECK(c.v[3].resync && c.v[3].rev == 20);
		CHECK(c.v[4].resync && c.v[4].rev == 30);
	}
	pthread_mutex_unlock(&c.lock);

	pthread_mutex_lock(&fake_lock);
	CHECK_EQ(fake_streams, 4);
	CHECK(strstr(fake_bodies[0], "\"start_revision\":\"3\"") != NULL);
	CHECK(strstr(fake_bodies[0], "\"key\":\"L2Yv\"") != NULL);
	CHECK(strstr(fake_bodies[0], "\"range_end\":\"L2Yw\"") != NULL);
	/* After the last event (7), whatever a progress notification said. */
	CHECK(strstr(fake_bodies[1], "\"start_revision\":\"8\"") != NULL);
	/* After a bad line and after compaction: from now. */
	CHECK(strstr(fake_bodies[2], "start_revision") == NULL);
	CHECK(strstr(fake_bodies[3], "start_revision") == NULL);
	pthread_mutex_unlock(&fake_lock);

	TEST("fake watch: stop ends a hanging stream; fn never runs after");
	coll_stop(&c, w);
	CHECK_EQ(c.after_stop, 0);
	CHECK_EQ(fake_stream_count(), 4);
	tfs_etcd_watch_stop(NULL);
	coll_release(&c);
	tfs_etcd_close(e);
	th_stop(s);
}

/* --- 3. a real etcd ------------------------------------------------------- */

static struct te_etcd etcd;

static int put(struct tfs_etcd *e, const char *key, const char *value,
	       int64_t lease, int64_t *rev)
{
	struct tfs_txn *t = tfs_txn_new();
	struct tfs_txn_result r;
	int rc;

	tfs_txn_put(t, true, key, value, lease);
	rc = tfs_etcd_txn(e, t, &r);
	if (!rc && rev)
		*rev = r.revision;
	if (!rc && !r.succeeded)
		rc = -EIO;
	tfs_txn_result_release(&r);
	tfs_txn_free(t);
	return rc;
}

static int del(struct tfs_etcd *e, const char *key, bool prefix)
{
	struct tfs_txn *t = tfs_txn_new();
	struct tfs_txn_result r;
	int rc;

	tfs_txn_del(t, true, key, prefix);
	rc = tfs_etcd_txn(e, t, &r);
	tfs_txn_result_release(&r);
	tfs_txn_free(t);
	return rc;
}

/* The value of key, "" if absent, "?" on error (static buffer). */
static const char *value_of(struct tfs_etcd *e, const char *key)
{
	static char buf[128];
	struct tfs_kvs kvs;

	if (tfs_etcd_get(e, key, &kvs) != 0)
		return "?";
	snprintf(buf, sizeof(buf), "%s", kvs.n ? kvs.v[0].value : "");
	tfs_kvs_release(&kvs);
	return buf;
}

static void test_kv(struct tfs_etcd *e)
{
	struct tfs_kvs kvs;
	struct tfs_txn *t;
	struct tfs_txn_result r;
	int64_t rev1, rev2;

	TEST("etcd: get of a missing key");
	CHECK_EQ(tfs_etcd_get(e, "/t/a", &kvs), 0);
	CHECK_EQ(kvs.n, 0);
	CHECK(kvs.revision >= 1);
	tfs_kvs_release(&kvs);

	TEST("etcd: put through a txn, then get");
	CHECK_EQ(put(e, "/t/a", "one", 0, &rev1), 0);
	CHECK_EQ(tfs_etcd_get(e, "/t/a", &kvs), 0);
	CHECK_EQ(kvs.n, 1);
	if (kvs.n == 1) {
		CHECK(strcmp(kvs.v[0].key, "/t/a") == 0);
		CHECK(strcmp(kvs.v[0].value, "one") == 0);
		CHECK_EQ(kvs.v[0].value_len, 3);
		CHECK_EQ(kvs.v[0].create_rev, rev1);
		CHECK_EQ(kvs.v[0].mod_rev, rev1);
		CHECK_EQ(kvs.v[0].version, 1);
		CHECK_EQ(kvs.v[0].lease, 0);
	}
	CHECK(kvs.revision >= rev1);
	tfs_kvs_release(&kvs);

	TEST("etcd: range of a prefix, sorted, other prefixes left out");
	CHECK_EQ(put(e, "/t/c", "three", 0, NULL), 0);
	CHECK_EQ(put(e, "/t/b", "", 0, NULL), 0);
	CHECK_EQ(put(e, "/t0", "outside", 0, NULL), 0);
	CHECK_EQ(put(e, "/t", "outside", 0, NULL), 0);
	CHECK_EQ(tfs_etcd_range(e, "/t/", &kvs), 0);
	CHECK_EQ(kvs.n, 3);
	if (kvs.n == 3) {
		CHECK(strcmp(kvs.v[0].key, "/t/a") == 0);
		CHECK(strcmp(kvs.v[1].key, "/t/b") == 0);
		CHECK(kvs.v[1].value_len == 0 && kvs.v[1].value[0] == '\0');
		CHECK(strcmp(kvs.v[2].key, "/t/c") == 0);
	}
	tfs_kvs_release(&kvs);

	TEST("etcd: CAS on the mod revision succeeds, then fails as stale");
	t = tfs_txn_new();
	tfs_txn_cmp(t, "/t/a", TFS_CMP_MOD, TFS_CMP_EQ, rev1, NULL);
	tfs_txn_put(t, true, "/t/a", "two", 0);
	tfs_txn_get(t, false, "/t/a", false);
	CHECK_EQ(tfs_etcd_txn(e, t, &r), 0);
	CHECK(r.succeeded);
	CHECK(r.revision > rev1);
	CHECK_EQ(r.nranges, 0);
	rev2 = r.revision;
	tfs_txn_result_release(&r);
	CHECK_EQ(tfs_etcd_txn(e, t, &r), 0);	/* the same: now stale */
	CHECK(!r.succeeded);
	CHECK_EQ(r.revision, rev2);
	CHECK_EQ(r.nranges, 1);
	if (r.nranges == 1 && r.ranges[0].n == 1) {
		CHECK(strcmp(r.ranges[0].v[0].value, "two") == 0);
		CHECK_EQ(r.ranges[0].v[0].mod_rev, rev2);
		CHECK_EQ(r.ranges[0].v[0].version, 2);
	}
	tfs_txn_result_release(&r);
	tfs_txn_free(t);
	CHECK(strcmp(value_of(e, "/t/a"), "two") == 0);

	TEST("etcd: compare on value and version");
	t = tfs_txn_new();
	tfs_txn_cmp(t, "/t/a", TFS_CMP_VALUE, TFS_CMP_EQ, 0, "two");
	tfs_txn_cmp(t, "/t/a", TFS_CMP_VERSION, TFS_CMP_GT, 1, NULL);
	tfs_txn_cmp(t, "/t/c", TFS_CMP_CREATE, TFS_CMP_NE, 0, NULL);
	tfs_txn_get(t, true, "/t/", true);
	CHECK_EQ(tfs_etcd_txn(e, t, &r), 0);
	CHECK(r.succeeded);
	CHECK(r.nranges == 1 && r.ranges[0].n == 3);
	tfs_txn_result_release(&r);
	tfs_txn_free(t);

	TEST("etcd: prefix delete takes exactly the prefix");
	CHECK_EQ(del(e, "/t/", true), 0);
	CHECK_EQ(tfs_etcd_range(e, "/t/", &kvs), 0);
	CHECK_EQ(kvs.n, 0);
	tfs_kvs_release(&kvs);
	CHECK(strcmp(value_of(e, "/t0"), "outside") == 0);
	CHECK(strcmp(value_of(e, "/t"), "outside") == 0);

	TEST("etcd: a txn etcd refuses (one key put twice) is -EINVAL");
	t = tfs_txn_new();
	tfs_txn_put(t, true, "/t/x", "1", 0);
	tfs_txn_put(t, true, "/t/x", "2", 0);
	CHECK_EQ(tfs_etcd_txn(e, t, &r), -EINVAL);
	tfs_txn_free(t);
	CHECK(strcmp(value_of(e, "/t/x"), "") == 0);
}

struct contender {
	const char *name;
	pthread_barrier_t *start;
	int rounds;
	int wins, rc_bad;
	char seen[64][16];		/* the leader each round saw */
};

static void *contend(void *arg)
{
	struct contender *c = arg;
	struct tfs_etcd *e;
	int64_t lease, ttl;

	if (tfs_etcd_open(etcd.url, 5000, &e) != 0 ||
	    tfs_etcd_lease_grant(e, 10, &lease, &ttl) != 0) {
		c->rc_bad = 1;
		return NULL;
	}
	for (int i = 0; i < c->rounds; i++) {
		struct tfs_txn *t = tfs_txn_new();
		struct tfs_txn_result r;
		char key[32];

		snprintf(key, sizeof(key), "/elect/%d", i);
		tfs_txn_cmp(t, key, TFS_CMP_CREATE, TFS_CMP_EQ, 0, NULL);
		tfs_txn_put(t, true, key, c->name, lease);
		tfs_txn_get(t, false, key, false);
		pthread_barrier_wait(c->start);
		if (tfs_etcd_txn(e, t, &r) != 0) {
			c->rc_bad++;
		} else if (r.succeeded) {
			c->wins++;
			snprintf(c->seen[i], 16, "%s", c->name);
		} else if (r.nranges == 1 && r.ranges[0].n == 1) {
			snprintf(c->seen[i], 16, "%s", r.ranges[0].v[0].value);
		}
		tfs_txn_result_release(&r);
		tfs_txn_free(t);
	}
	tfs_etcd_lease_revoke(e, lease);
	tfs_etcd_close(e);
	return NULL;
}

static void test_election(void)
{
	enum { ROUNDS = 20 };
	pthread_barrier_t b;
	struct contender a = { "alpha", &b, ROUNDS, 0, 0, { { 0 } } };
	struct contender z = { "zulu", &b, ROUNDS, 0, 0, { { 0 } } };
	pthread_t ta, tz;
	int agree = 0;

	TEST("etcd: create-revision==0 election, two contenders, one wins");
	pthread_barrier_init(&b, NULL, 2);
	pthread_create(&ta, NULL, contend, &a);
	pthread_create(&tz, NULL, contend, &z);
	pthread_join(ta, NULL);
	pthread_join(tz, NULL);
	pthread_barrier_destroy(&b);
	CHECK_EQ(a.rc_bad + z.rc_bad, 0);
	CHECK_EQ(a.wins + z.wins, ROUNDS);
	for (int i = 0; i < ROUNDS; i++)
		agree += a.seen[i][0] && strcmp(a.seen[i], z.seen[i]) == 0;
	CHECK_EQ(agree, ROUNDS);
}

static void test_leases(struct tfs_etcd *e)
{
	struct tfs_txn_result r;
	struct tfs_txn *t;
	int64_t id, id2, ttl, got;
	long deadline;

	TEST("etcd: lease grant, keepalive, keys attached");
	CHECK_EQ(tfs_etcd_lease_grant(e, 1, &id, &ttl), 0);
	CHECK(id != 0);
	CHECK(ttl >= 1);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, id, &got), 0);
	CHECK(got >= 1);
	CHECK_EQ(put(e, "/l/a", "x", id, NULL), 0);
	struct tfs_kvs kvs;
	CHECK_EQ(tfs_etcd_get(e, "/l/a", &kvs), 0);
	CHECK(kvs.n == 1 && kvs.v[0].lease == id);
	tfs_kvs_release(&kvs);

	TEST("etcd: a lease left alone expires and takes its keys");
	deadline = te_ms() + DEADLINE_MS;
	while (strcmp(value_of(e, "/l/a"), "x") == 0 && te_ms() < deadline)
		te_sleep_ms(100);
	CHECK(strcmp(value_of(e, "/l/a"), "") == 0);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, id, &got), -ENOENT);
	CHECK_EQ(got, 0);
	CHECK_EQ(tfs_etcd_lease_revoke(e, id), -ENOENT);

	TEST("etcd: a put on a dead lease is -ENOENT and changes nothing");
	t = tfs_txn_new();
	tfs_txn_put(t, true, "/l/b", "y", id);
	CHECK_EQ(tfs_etcd_txn(e, t, &r), -ENOENT);
	tfs_txn_free(t);
	CHECK(strcmp(value_of(e, "/l/b"), "") == 0);

	TEST("etcd: revoke deletes the keys at once; then -ENOENT");
	CHECK_EQ(tfs_etcd_lease_grant(e, 30, &id2, &ttl), 0);
	CHECK(ttl >= 30);
	CHECK_EQ(put(e, "/l/c", "z", id2, NULL), 0);
	CHECK_EQ(put(e, "/l/d", "z", id2, NULL), 0);
	CHECK_EQ(tfs_etcd_lease_revoke(e, id2), 0);
	CHECK(strcmp(value_of(e, "/l/c"), "") == 0);
	CHECK(strcmp(value_of(e, "/l/d"), "") == 0);
	CHECK_EQ(tfs_etcd_lease_revoke(e, id2), -ENOENT);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, id2, &got), -ENOENT);

	TEST("etcd: bad lease arguments");
	CHECK_EQ(tfs_etcd_lease_grant(e, 0, &id, &ttl), -EINVAL);
}

static int64_t current_rev(struct tfs_etcd *e)
{
	struct tfs_kvs kvs;
	int64_t rev = -1;

	if (tfs_etcd_get(e, "/nothing", &kvs) == 0)
		rev = kvs.revision;
	tfs_kvs_release(&kvs);
	return rev;
}

static void test_watch(struct tfs_etcd *e)
{
	struct tfs_etcd_watch *w;
	struct coll c;
	int64_t start = current_rev(e) + 1, r[6];

	TEST("etcd: a watch sees puts and deletes in order");
	coll_init(&c);
	c.e = e;
	CHECK_EQ(tfs_etcd_watch_start(e, "/w/", start, coll_fn, &c, &w), 0);
	CHECK_EQ(put(e, "/w/a", "1", 0, &r[0]), 0);
	CHECK_EQ(put(e, "/x/outside", "1", 0, NULL), 0);
	CHECK_EQ(put(e, "/w/b", "2", 0, &r[1]), 0);
	CHECK_EQ(put(e, "/w/a", "3", 0, &r[2]), 0);
	CHECK_EQ(del(e, "/w/a", false), 0);
	CHECK_EQ(del(e, "/w/", true), 0);	/* deletes /w/b */
	CHECK(coll_wait(&c, 5));
	coll_stop(&c, w);
	CHECK_EQ(c.n, 5);
	if (c.n == 5) {
		CHECK(!c.v[0].deleted && strcmp(c.v[0].key, "/w/a") == 0 &&
		      strcmp(c.v[0].value, "1") == 0 && c.v[0].mod_rev == r[0]);
		CHECK(!c.v[1].deleted && strcmp(c.v[1].key, "/w/b") == 0 &&
		      c.v[1].mod_rev == r[1]);
		CHECK(!c.v[2].deleted && strcmp(c.v[2].value, "3") == 0 &&
		      c.v[2].mod_rev == r[2]);
		CHECK(c.v[3].deleted && strcmp(c.v[3].key, "/w/a") == 0 &&
		      c.v[3].mod_rev > r[2]);
		CHECK(c.v[4].deleted && strcmp(c.v[4].key, "/w/b") == 0 &&
		      c.v[4].mod_rev > c.v[3].mod_rev);
	}
	for (int i = 0; i < c.n; i++)
		CHECK(!c.v[i].resync);
	CHECK(c.reads_ok >= 1);		/* fn may call the module */
	CHECK_EQ(c.after_stop, 0);
	coll_release(&c);
}

static void test_watch_restart(struct tfs_etcd *e)
{
	struct tfs_etcd_watch *w;
	struct coll c;
	int bad = 0;

	TEST("etcd: a watch resumes after etcd restarts, nothing lost");
	coll_init(&c);
	CHECK_EQ(tfs_etcd_watch_start(e, "/r/", current_rev(e) + 1, coll_fn,
				      &c, &w), 0);
	CHECK_EQ(put(e, "/r/1", "a", 0, NULL), 0);
	CHECK(coll_wait(&c, 1));
	te_stop(&etcd);
	CHECK_EQ(te_start(&etcd), 0);
	/* Written while the watch is cut off or reconnecting. */
	for (int i = 2; i <= 6; i++) {
		char k[16];
		snprintf(k, sizeof(k), "/r/%d", i);
		CHECK_EQ(put(e, k, "b", 0, NULL), 0);
	}
	CHECK(coll_wait(&c, 6));
	coll_stop(&c, w);
	CHECK_EQ(c.n, 6);
	for (int i = 0; i < c.n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "/r/%d", i + 1);
		bad += c.v[i].resync || strcmp(c.v[i].key, k) != 0 ||
		       (i && c.v[i].mod_rev <= c.v[i - 1].mod_rev);
	}
	CHECK_EQ(bad, 0);
	coll_release(&c);
}

/* POST /v3/kv/compaction: the module has no call for it. */
static int compact(struct tfs_etcd *e, int64_t rev)
{
	struct tfs_httpc *h;
	struct tfs_http_req r;
	char url[96], body[64];
	int rc;

	(void)e;
	if (tfs_httpc_start("t-compact", &h))
		return -1;
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "%s/v3/kv/compaction", etcd.url);
	snprintf(body, sizeof(body),
		 "{\"revision\":\"%lld\",\"physical\":true}", (long long)rev);
	r.method = "POST";
	r.url = url;
	r.body = body;
	r.body_len = strlen(body);
	r.timeout_ms = 10000;
	rc = tfs_httpc_do(h, &r);
	if (!rc && r.status != 200)
		rc = -1;
	tfs_http_req_release(&r);
	tfs_httpc_stop(h);
	return rc;
}

static void test_watch_compacted(struct tfs_etcd *e)
{
	struct tfs_etcd_watch *w;
	struct coll c;
	int64_t old, now;

	TEST("etcd: a watch from a compacted revision resyncs, then goes on");
	CHECK_EQ(put(e, "/c/a", "1", 0, &old), 0);
	CHECK_EQ(put(e, "/c/a", "2", 0, &now), 0);
	CHECK_EQ(compact(e, now), 0);
	coll_init(&c);
	CHECK_EQ(tfs_etcd_watch_start(e, "/c/", old, coll_fn, &c, &w), 0);
	CHECK(coll_wait(&c, 1));
	CHECK(c.v[0].resync && c.v[0].rev >= now);
	CHECK_EQ(put(e, "/c/b", "3", 0, NULL), 0);
	CHECK(coll_wait(&c, 2));
	coll_stop(&c, w);
	CHECK_EQ(c.n, 2);
	CHECK(!c.v[1].resync && strcmp(c.v[1].key, "/c/b") == 0);
	coll_release(&c);
}

static void test_failover(void)
{
	struct tfs_etcd *e;
	struct tfs_kvs kvs;
	struct th_server *hang;
	char eps[256];
	int fd1, fd2;
	int64_t id, ttl;
	unsigned short p1 = th_refusing_port(&fd1), p2 = th_refusing_port(&fd2);

	TEST("etcd: the first endpoint is a dead port: the next answers");
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%u,%s", p1, etcd.url);
	CHECK_EQ(tfs_etcd_open(eps, 3000, &e), 0);
	CHECK_EQ(put(e, "/fo/a", "1", 0, NULL), 0);
	CHECK(strcmp(value_of(e, "/fo/a"), "1") == 0);
	CHECK_EQ(tfs_etcd_lease_grant(e, 5, &id, &ttl), 0);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, id, &ttl), 0);
	CHECK_EQ(tfs_etcd_lease_revoke(e, id), 0);
	tfs_etcd_close(e);

	TEST("etcd: a member that hangs: reads go on, a write is "
	     "TFS_EUNKNOWN and is not retried elsewhere");
	fake_mode = FAKE_HANG;
	hang = th_start(fake_handle, NULL);
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%u,%s", hang->port,
		 etcd.url);
	CHECK_EQ(tfs_etcd_open(eps, 500, &e), 0);
	CHECK_EQ(put(e, "/fo/b", "1", 0, NULL), TFS_EUNKNOWN);
	CHECK(strcmp(value_of(e, "/fo/b"), "") == 0);	/* fails over */
	/* The get made the real member the good one: writes go there. */
	CHECK_EQ(put(e, "/fo/b", "2", 0, NULL), 0);
	CHECK(strcmp(value_of(e, "/fo/b"), "2") == 0);
	tfs_etcd_close(e);
	th_stop(hang);

	TEST("etcd: nothing listens anywhere: TFS_EUNAVAIL");
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%u,http://127.0.0.1:%u",
		 p1, p2);
	CHECK_EQ(tfs_etcd_open(eps, 1000, &e), 0);
	CHECK_EQ(tfs_etcd_get(e, "/fo/a", &kvs), TFS_EUNAVAIL);
	CHECK_EQ(put(e, "/fo/a", "2", 0, NULL), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_lease_grant(e, 5, &id, &ttl), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_lease_keepalive(e, 1, &ttl), TFS_EUNAVAIL);
	CHECK_EQ(tfs_etcd_lease_revoke(e, 1), TFS_EUNAVAIL);
	tfs_etcd_close(e);
	close(fd1);
	close(fd2);
}

static void test_watch_failover(void)
{
	struct tfs_etcd *e, *direct;
	struct tfs_etcd_watch *w;
	struct coll c;
	char eps[256];
	int fd;
	unsigned short p = th_refusing_port(&fd);

	TEST("etcd: a watch whose first endpoint is dead uses the next");
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%u,%s", p, etcd.url);
	CHECK_EQ(tfs_etcd_open(eps, 3000, &e), 0);
	CHECK_EQ(tfs_etcd_open(etcd.url, 3000, &direct), 0);
	coll_init(&c);
	CHECK_EQ(tfs_etcd_watch_start(e, "/wf/", current_rev(direct) + 1,
				      coll_fn, &c, &w), 0);
	CHECK_EQ(put(direct, "/wf/a", "1", 0, NULL), 0);
	CHECK(coll_wait(&c, 1));
	coll_stop(&c, w);
	CHECK(c.n == 1 && strcmp(c.v[0].key, "/wf/a") == 0);
	coll_release(&c);
	tfs_etcd_close(direct);
	tfs_etcd_close(e);
	close(fd);
}

/* Waits until one of m[0..n) that runs is healthy; its index or -1. */
static int healthy_member(struct te_etcd *m, int n)
{
	long deadline = te_ms() + DEADLINE_MS;

	while (te_ms() < deadline) {
		for (int i = 0; i < n; i++)
			if (m[i].pid && te_healthy(m[i].client_port))
				return i;
		te_sleep_ms(50);
	}
	return -1;
}

static void test_cluster(void)
{
	struct te_etcd m[3];
	struct tfs_etcd *e;
	struct tfs_etcd_watch *w;
	struct tfs_kvs kvs;
	struct coll c;
	char eps[256];
	int bad = 0;

	TEST("3 members: they start");
	memset(m, 0, sizeof(m));
	if (te_start_cluster(m, 3) != 0) {
		CHECKF(0, "cannot start 3 etcd members: see above");
		return;
	}
	snprintf(eps, sizeof(eps), "%s,%s,%s", m[0].url, m[1].url, m[2].url);
	CHECK_EQ(tfs_etcd_open(eps, 2000, &e), 0);
	coll_init(&c);
	CHECK_EQ(tfs_etcd_watch_start(e, "/m/", current_rev(e) + 1, coll_fn,
				      &c, &w), 0);
	CHECK_EQ(put(e, "/m/1", "a", 0, NULL), 0);
	CHECK(coll_wait(&c, 1));

	TEST("3 members: the member in use dies; calls and the watch move on");
	te_stop(&m[0]);
	CHECK(healthy_member(m, 3) > 0);
	CHECK_EQ(put(e, "/m/2", "b", 0, NULL), 0);
	CHECK_EQ(put(e, "/m/3", "c", 0, NULL), 0);
	CHECK(strcmp(value_of(e, "/m/3"), "c") == 0);
	CHECK(coll_wait(&c, 3));
	coll_stop(&c, w);
	CHECK_EQ(c.n, 3);
	for (int i = 0; i < c.n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "/m/%d", i + 1);
		bad += c.v[i].resync || strcmp(c.v[i].key, k) != 0;
	}
	CHECK_EQ(bad, 0);
	coll_release(&c);

	TEST("3 members: without quorum a write is TFS_EUNKNOWN, a read "
	     "TFS_EUNAVAIL");
	te_stop(&m[1]);
	CHECK_EQ(put(e, "/m/4", "d", 0, NULL), TFS_EUNKNOWN);
	CHECK_EQ(tfs_etcd_get(e, "/m/1", &kvs), TFS_EUNAVAIL);
	tfs_etcd_close(e);
	for (int i = 0; i < 3; i++)
		te_cleanup(&m[i]);
}

static void test_real(void)
{
	struct tfs_etcd *e;

	TEST("etcd: a member starts");
	if (te_start(&etcd) != 0) {
		CHECKF(0, "cannot start etcd: see above");
		te_cleanup(&etcd);
		return;
	}
	if (tfs_etcd_open(etcd.url, 5000, &e) != 0) {
		CHECK(!"tfs_etcd_open");
		te_cleanup(&etcd);
		return;
	}
	test_kv(e);
	test_election();
	test_leases(e);
	test_watch(e);
	test_watch_restart(e);
	test_watch_compacted(e);
	test_failover();
	test_watch_failover();
	tfs_etcd_close(e);
	te_cleanup(&etcd);
}

int main(void)
{
	tfs_log_set_level(getenv("TFS_TEST_VERBOSE") ? TFS_LOG_DEBUG
						     : TFS_LOG_ERROR);
	test_base64();
	test_txn_json();
	test_parse_range();
	test_parse_txn();
	test_open_args();
	test_fake_outcomes();
	test_fake_watch();
	test_real();
	test_cluster();
	return check_done();
}
