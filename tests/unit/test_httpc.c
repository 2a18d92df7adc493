/*
 * Unit tests for the HTTP client against a tiny server in this process
 * (testhttp.h): bodies both ways, statuses, headers, connection reuse,
 * every error code, cancel, streaming, many requests at once and stop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "testhttp.h"

#define DEADLINE_MS 20000

/* --- the server's side ---------------------------------------------------- */

static enum th_action handle(struct th_server *s, int fd,
			     const struct th_req *rq)
{
	char extra[256];

	if (strcmp(rq->path, "/echo") == 0) {
		snprintf(extra, sizeof(extra), "X-Method: %s\r\nX-Conn: %d\r\n",
			 rq->method, rq->conn_id);
		th_reply(fd, 200, extra, rq->body, rq->body_len);
		return TH_KEEP;
	}
	if (strncmp(rq->path, "/status/", 8) == 0) {
		int st = atoi(rq->path + 8);

		/* A 204 has no body, whatever Content-Length says. */
		th_reply(fd, st, NULL, "status", st == 204 ? 0 : 6);
		return TH_KEEP;
	}
	if (strcmp(rq->path, "/headers") == 0) {
		th_reply(fd, 200,
			 "X-Test:   hello there  \r\nX-Empty:\r\n"
			 "Content-Type: text/plain\r\n", "h", 1);
		return TH_KEEP;
	}
	if (strcmp(rq->path, "/hang") == 0)
		return TH_HANG;
	if (strcmp(rq->path, "/stream") == 0) {
		char piece[32];

		th_chunked_head(fd, 200);
		for (int i = 0; i < 5; i++) {
			snprintf(piece, sizeof(piece), "piece%d\n", i);
			th_chunk(fd, piece, strlen(piece));
		}
		th_chunk(fd, NULL, 0);
		return TH_KEEP;
	}
	if (strcmp(rq->path, "/stream-hang") == 0) {
		th_chunked_head(fd, 200);
		th_chunk(fd, "first\n", 6);
		return TH_HANG;
	}
	if (strcmp(rq->path, "/big") == 0) {
		static char big[100000];

		memset(big, 'b', sizeof(big));
		th_reply(fd, 200, NULL, big, sizeof(big));
		return TH_KEEP;
	}
	if (strcmp(rq->path, "/garbage") == 0) {
		th_write(fd, "NOT HTTP AT ALL\r\n\r\n", 19);
		return TH_CLOSE;
	}
	return TH_CLOSE;	/* "/close" and anything else: no answer */
}

/* --- the client's side ---------------------------------------------------- */

static struct th_server *srv;
static char base[64];

/* An asynchronous request and what its completions recorded. */
struct rec {
	struct tfs_http_req r;
	char url[128];
	char body[32];
	int calls, rc;
	bool body_ok;
	int resubmits;			/* done submits r again */
	struct tfs_buf streamed;
	int pieces;
};

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cond = PTHREAD_COND_INITIALIZER;
static int rec_done;			/* completions, all recs */

static void rec_on_done(struct tfs_http_req *r, int rc)
{
	struct rec *x = tfs_container_of(r, struct rec, r);

	if (x->resubmits > 0) {
		x->resubmits--;
		tfs_httpc_submit(r->client, r);
		return;
	}
	pthread_mutex_lock(&rec_lock);
	x->calls++;
	x->rc = rc;
	x->body_ok = rc == 0 && r->resp.len == strlen(x->body) &&
		     (r->resp.len == 0 ||
		      memcmp(r->resp.data, x->body, r->resp.len) == 0);
	rec_done++;
	pthread_cond_broadcast(&rec_cond);
	pthread_mutex_unlock(&rec_lock);
}

static int rec_on_data(struct tfs_http_req *r, const void *p, size_t n)
{
	struct rec *x = tfs_container_of(r, struct rec, r);

	pthread_mutex_lock(&rec_lock);
	tfs_buf_add(&x->streamed, p, n);
	x->pieces++;
	pthread_cond_broadcast(&rec_cond);
	pthread_mutex_unlock(&rec_lock);
	return x->resubmits < 0 ? 1 : 0;	/* < 0: abort the transfer */
}

static void rec_init(struct rec *x, const char *method, const char *path,
		     int64_t timeout_ms)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->url, sizeof(x->url), "%s%s", base, path);
	x->r.method = method;
	x->r.url = x->url;
	x->r.timeout_ms = timeout_ms;
	x->r.done = rec_on_done;
}

static void rec_release(struct rec *x)
{
	tfs_http_req_release(&x->r);
	tfs_buf_release(&x->streamed);
}

static struct timespec deadline_in(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Waits until rec_done reaches n; returns whether it did in time. */
static bool wait_done(int n)
{
	struct timespec ts = deadline_in(DEADLINE_MS);
	bool ok;

	pthread_mutex_lock(&rec_lock);
	while (rec_done < n &&
	       pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) == 0)
		;
	ok = rec_done >= n;
	pthread_mutex_unlock(&rec_lock);
	return ok;
}

static int rec_calls(struct rec *x)
{
	pthread_mutex_lock(&rec_lock);
	int n = x->calls;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

/* One blocking request; fills r (release it after). */
static int do_req(struct tfs_httpc *c, struct tfs_http_req *r,
		  const char *method, const char *path, const void *body,
		  size_t len, int64_t timeout_ms)
{
	static char url[128];

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", base, path);
	r->method = method;
	r->url = url;
	r->body = body;
	r->body_len = len;
	r->timeout_ms = timeout_ms;
	return tfs_httpc_do(c, r);
}

static void test_bodies(struct tfs_httpc *c)
{
	struct tfs_http_req r;
	char v[64];
	int rc;

	TEST("GET without a body");
	rc = do_req(c, &r, "GET", "/echo", NULL, 0, 5000);
	CHECK_EQ(rc, 0);
	CHECK_EQ(r.status, 200);
	CHECK_EQ(r.resp.len, 0);
	CHECK(tfs_http_resp_header(&r, "X-Method", v, sizeof(v)) == 3 &&
	      strcmp(v, "GET") == 0);
	tfs_http_req_release(&r);

	TEST("POST body goes out and comes back");
	rc = do_req(c, &r, "POST", "/echo", "hello world", 11, 5000);
	CHECK_EQ(rc, 0);
	CHECK_EQ(r.status, 200);
	CHECK(r.resp.len == 11 && memcmp(r.resp.data, "hello world", 11) == 0);
	CHECK(tfs_http_resp_header(&r, "x-method", v, sizeof(v)) == 4 &&
	      strcmp(v, "POST") == 0);
	tfs_http_req_release(&r);

	TEST("a 1 MiB binary POST body, NUL bytes included, both ways");
	size_t n = 1 << 20;
	unsigned char *big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 7 + (i >> 9));
	rc = do_req(c, &r, "POST", "/echo", big, n, 10000);
	CHECK_EQ(rc, 0);
	CHECK(r.resp.len == n && memcmp(r.resp.data, big, n) == 0);
	tfs_http_req_release(&r);
	free(big);

	TEST("PUT and DELETE, with and without a body");
	const char *methods[] = { "PUT", "DELETE" };
	for (int i = 0; i < 2; i++) {
		rc = do_req(c, &r, methods[i], "/echo", "x", 1, 5000);
		CHECK_EQ(rc, 0);
		CHECK(r.resp.len == 1 && r.resp.data[0] == 'x');
		CHECK(tfs_http_resp_header(&r, "X-Method", v, sizeof(v)) > 0 &&
		      strcmp(v, methods[i]) == 0);
		tfs_http_req_release(&r);
		rc = do_req(c, &r, methods[i], "/echo", NULL, 0, 5000);
		CHECK_EQ(rc, 0);
		CHECK_EQ(r.resp.len, 0);
		CHECK(tfs_http_resp_header(&r, "X-Method", v, sizeof(v)) > 0 &&
		      strcmp(v, methods[i]) == 0);
		tfs_http_req_release(&r);
	}
}

static void test_status_headers(struct tfs_httpc *c)
{
	struct tfs_http_req r;
	char v[64];
	int codes[] = { 201, 204, 400, 404, 409, 503 };

	TEST("statuses are reported, rc 0 whatever the status");
	for (size_t i = 0; i < TFS_ARRAY_SIZE(codes); i++) {
		char path[32];

		snprintf(path, sizeof(path), "/status/%d", codes[i]);
		CHECK_EQ(do_req(c, &r, "GET", path, NULL, 0, 5000), 0);
		CHECK_EQ(r.status, codes[i]);
		if (codes[i] != 204)
			CHECK(r.resp.len == 6 &&
			      memcmp(r.resp.data, "status", 6) == 0);
		tfs_http_req_release(&r);
	}

	TEST("response header lookup");
	CHECK_EQ(do_req(c, &r, "GET", "/headers", NULL, 0, 5000), 0);
	CHECK_EQ(tfs_http_resp_header(&r, "X-Test", v, sizeof(v)), 11);
	CHECK(strcmp(v, "hello there") == 0);
	CHECK_EQ(tfs_http_resp_header(&r, "x-TEST", v, sizeof(v)), 11);
	CHECK_EQ(tfs_http_resp_header(&r, "X-Empty", v, sizeof(v)), 0);
	CHECK_EQ(v[0], '\0');
	CHECK_EQ(tfs_http_resp_header(&r, "Content-Type", v, sizeof(v)), 10);
	CHECK_EQ(tfs_http_resp_header(&r, "Content-Length", v, sizeof(v)), 1);
	CHECK_EQ(tfs_http_resp_header(&r, "X-Absent", v, sizeof(v)), -1);
	CHECK_EQ(tfs_http_resp_header(&r, "X-Tes", v, sizeof(v)), -1);
	CHECK_EQ(tfs_http_resp_header(&r, "X-Test", v, 11), -1);
	CHECK(strstr(r.resp_headers.data, "HTTP/") == NULL);
	tfs_http_req_release(&r);
	tfs_http_req_release(&r);	/* twice is fine */
}

static void test_keepalive(void)
{
	struct tfs_httpc *c;
	struct tfs_http_req r;
	char v[16], first[16] = "";
	int before = th_accepted(srv);

	TEST("sequential requests reuse one connection");
	CHECK_EQ(tfs_httpc_start("t-keep", &c), 0);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(do_req(c, &r, i % 2 ? "POST" : "GET", "/echo", "k", 1,
				5000), 0);
		CHECK(tfs_http_resp_header(&r, "X-Conn", v, sizeof(v)) > 0);
		if (i == 0)
			snprintf(first, sizeof(first), "%s", v);
		CHECKF(strcmp(v, first) == 0, "request %d on conn %s, not %s",
		       i, v, first);
		tfs_http_req_release(&r);
	}
	CHECK_EQ(th_accepted(srv) - before, 1);
	tfs_httpc_stop(c);
}

static void test_errors(struct tfs_httpc *c)
{
	struct tfs_http_req r;
	char url[64];
	int fd;

	TEST("a request past its deadline: -ETIMEDOUT");
	CHECK_EQ(do_req(c, &r, "POST", "/hang", "x", 1, 300), -ETIMEDOUT);
	tfs_http_req_release(&r);

	TEST("a closed port: -ECONNREFUSED, no status");
	unsigned short port = th_refusing_port(&fd);
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", port);
	r.method = "GET";
	r.url = url;
	r.timeout_ms = 5000;
	CHECK_EQ(tfs_httpc_do(c, &r), -ECONNREFUSED);
	CHECK_EQ(r.status, 0);
	tfs_http_req_release(&r);
	close(fd);

	TEST("a connect that cannot complete in time: -EHOSTUNREACH");
	/* A listener with a full accept queue drops new SYNs. */
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(lfd, 0) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
	CHECK(connect(cfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x",
		 ntohs(a.sin_port));
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = url;
	r.body = "x";
	r.body_len = 1;
	r.timeout_ms = 5000;
	r.connect_timeout_ms = 300;
	CHECK_EQ(tfs_httpc_do(c, &r), -EHOSTUNREACH);
	tfs_http_req_release(&r);
	close(cfd);
	close(lfd);

	TEST("a connection closed without an answer: -EIO");
	CHECK_EQ(do_req(c, &r, "GET", "/close", NULL, 0, 5000), -EIO);
	tfs_http_req_release(&r);

	TEST("an answer that is not HTTP: -EIO");
	CHECK_EQ(do_req(c, &r, "GET", "/garbage", NULL, 0, 5000), -EIO);
	tfs_http_req_release(&r);

	TEST("a body over resp_max: -EMSGSIZE; the default takes it");
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/big", srv->port);
	r.method = "GET";
	r.url = url;
	r.timeout_ms = 5000;
	r.resp_max = 1000;
	CHECK_EQ(tfs_httpc_do(c, &r), -EMSGSIZE);
	r.resp_max = 0;
	CHECK_EQ(tfs_httpc_do(c, &r), 0);
	CHECK_EQ(r.resp.len, 100000);
	tfs_http_req_release(&r);

	TEST("bad URLs, schemes and timeouts: -EINVAL");
	const char *bad[] = { "http://[::1", "file:///etc/passwd",
			      "gopher://127.0.0.1/", "", "127.0.0.1:1/x" };
	for (size_t i = 0; i < TFS_ARRAY_SIZE(bad); i++) {
		memset(&r, 0, sizeof(r));
		r.url = bad[i];
		r.timeout_ms = 1000;
		CHECKF(tfs_httpc_do(c, &r) == -EINVAL, "%s", bad[i]);
		tfs_http_req_release(&r);
	}
	CHECK_EQ(do_req(c, &r, "GET", "/echo", NULL, 0, 0), -EINVAL);
	tfs_http_req_release(&r);
}

static void test_cancel(struct tfs_httpc *c)
{
	struct rec x, y;
	int seen = th_requests(srv);

	TEST("cancel of a hanging request: -ECANCELED exactly once");
	rec_done = 0;
	rec_init(&x, "POST", "/hang", 60000);
	tfs_httpc_submit(c, &x.r);
	CHECK(th_wait_requests(srv, seen + 1, DEADLINE_MS));
	tfs_httpc_cancel(c, &x.r);
	CHECK(wait_done(1));
	tfs_httpc_cancel(c, &x.r);	/* completed: nothing happens */
	rec_init(&y, "GET", "/echo", 5000);
	tfs_httpc_submit(c, &y.r);
	CHECK(wait_done(2));
	CHECK_EQ(rec_calls(&x), 1);
	CHECK_EQ(x.rc, -ECANCELED);
	CHECK_EQ(y.rc, 0);
	rec_release(&x);
	rec_release(&y);

	TEST("cancel racing completion: done exactly once, 0 or -ECANCELED");
	enum { N = 200 };
	struct rec *v = calloc(N, sizeof(*v));
	rec_done = 0;
	for (int i = 0; i < N; i++) {
		rec_init(&v[i], "POST", "/echo", 10000);
		snprintf(v[i].body, sizeof(v[i].body), "c%d", i);
		v[i].r.body = v[i].body;
		v[i].r.body_len = strlen(v[i].body);
		tfs_httpc_submit(c, &v[i].r);
		if (i % 3 == 0)
			tfs_httpc_cancel(c, &v[i].r);
		if (i % 3 == 1 && i > 10)
			tfs_httpc_cancel(c, &v[i - 10].r);
	}
	CHECK(wait_done(N));
	int bad = 0, ok = 0;
	for (int i = 0; i < N; i++) {
		if (v[i].calls != 1 ||
		    (v[i].rc != 0 && v[i].rc != -ECANCELED) ||
		    (v[i].rc == 0 && !v[i].body_ok))
			bad++;
		ok += v[i].rc == 0;
		rec_release(&v[i]);
	}
	CHECK_EQ(bad, 0);
	CHECK(ok >= N / 3);	/* a third was never cancelled */
	free(v);
}

static void test_streaming(struct tfs_httpc *c)
{
	struct rec x;
	int seen;

	TEST("streaming: on_data gets every piece, resp stays empty");
	rec_done = 0;
	rec_init(&x, "GET", "/stream", 5000);
	x.r.on_data = rec_on_data;
	tfs_httpc_submit(c, &x.r);
	CHECK(wait_done(1));
	CHECK_EQ(x.rc, 0);
	CHECK_EQ(x.r.status, 200);
	CHECK(x.pieces >= 1);
	CHECK(x.streamed.len == 35 &&
	      memcmp(x.streamed.data,
		     "piece0\npiece1\npiece2\npiece3\npiece4\n", 35) == 0);
	CHECK_EQ(x.r.resp.len, 0);
	rec_release(&x);

	TEST("streaming: a piece arrives while the response goes on");
	rec_done = 0;
	seen = th_requests(srv);
	rec_init(&x, "POST", "/stream-hang", 60000);
	x.r.on_data = rec_on_data;
	tfs_httpc_submit(c, &x.r);
	struct timespec ts = deadline_in(DEADLINE_MS);
	pthread_mutex_lock(&rec_lock);
	while (x.streamed.len < 6 &&
	       pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) == 0)
		;
	CHECK(x.streamed.len == 6 &&
	      memcmp(x.streamed.data, "first\n", 6) == 0);
	CHECK_EQ(x.calls, 0);
	pthread_mutex_unlock(&rec_lock);
	CHECK(th_requests(srv) == seen + 1);
	tfs_httpc_cancel(c, &x.r);
	CHECK(wait_done(1));
	CHECK_EQ(x.calls, 1);
	CHECK_EQ(x.rc, -ECANCELED);
	rec_release(&x);

	TEST("streaming: on_data returning non-zero aborts with -ECANCELED");
	rec_done = 0;
	rec_init(&x, "GET", "/stream-hang", 60000);
	x.r.on_data = rec_on_data;
	x.resubmits = -1;
	tfs_httpc_submit(c, &x.r);
	CHECK(wait_done(1));
	CHECK_EQ(x.rc, -ECANCELED);
	CHECK_EQ(x.pieces, 1);
	rec_release(&x);
}

static void test_many(struct tfs_httpc *c)
{
	enum { N = 200 };
	struct rec *v = calloc(N, sizeof(*v));
	int bad = 0;

	TEST("200 concurrent submissions all complete once, bodies intact");
	rec_done = 0;
	for (int i = 0; i < N; i++) {
		rec_init(&v[i], "POST", "/echo", 15000);
		snprintf(v[i].body, sizeof(v[i].body), "request-%d", i);
		v[i].r.body = v[i].body;
		v[i].r.body_len = strlen(v[i].body);
		tfs_httpc_submit(c, &v[i].r);
	}
	CHECK(wait_done(N));
	for (int i = 0; i < N; i++) {
		if (v[i].calls != 1 || v[i].rc != 0 || !v[i].body_ok ||
		    v[i].r.status != 200)
			bad++;
		rec_release(&v[i]);
	}
	CHECKF(bad == 0, "%d of %d went wrong", bad, N);

	TEST("done may submit its request again");
	rec_done = 0;
	rec_init(&v[0], "POST", "/echo", 5000);
	snprintf(v[0].body, sizeof(v[0].body), "again");
	v[0].r.body = v[0].body;
	v[0].r.body_len = 5;
	v[0].resubmits = 3;
	tfs_httpc_submit(c, &v[0].r);
	CHECK(wait_done(1));
	CHECK_EQ(v[0].calls, 1);
	CHECK_EQ(v[0].resubmits, 0);
	CHECK(v[0].body_ok);
	rec_release(&v[0]);
	free(v);
}

struct blocked {
	struct tfs_httpc *c;
	struct tfs_http_req r;
	char url[128];
	int rc;
};

static void *blocked_main(void *arg)
{
	struct blocked *b = arg;

	b->rc = tfs_httpc_do(b->c, &b->r);
	return NULL;
}

static void test_stop(void)
{
	enum { N = 10 };
	struct tfs_httpc *c;
	struct rec v[N];
	struct blocked b;
	pthread_t t;
	int bad = 0, seen = th_requests(srv);

	TEST("stop completes every request in flight with -ECANCELED");
	CHECK_EQ(tfs_httpc_start("t-stop", &c), 0);
	rec_done = 0;
	for (int i = 0; i < N; i++) {
		rec_init(&v[i], "POST", "/hang", 60000);
		tfs_httpc_submit(c, &v[i].r);
	}
	memset(&b, 0, sizeof(b));
	b.c = c;
	snprintf(b.url, sizeof(b.url), "%s/hang", base);
	b.r.method = "GET";
	b.r.url = b.url;
	b.r.timeout_ms = 60000;
	b.rc = 1;
	pthread_create(&t, NULL, blocked_main, &b);
	CHECK(th_wait_requests(srv, seen + N + 1, DEADLINE_MS));
	tfs_httpc_stop(c);
	pthread_join(t, NULL);
	CHECK_EQ(rec_done, N);
	for (int i = 0; i < N; i++) {
		if (v[i].calls != 1 || v[i].rc != -ECANCELED)
			bad++;
		rec_release(&v[i]);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(b.rc, -ECANCELED);
	tfs_http_req_release(&b.r);

	TEST("stop with nothing in flight, and stop(NULL)");
	CHECK_EQ(tfs_httpc_start("t-idle", &c), 0);
	tfs_httpc_stop(c);
	tfs_httpc_stop(NULL);
}

int main(void)
{
	struct tfs_httpc *c;

	tfs_log_set_level(getenv("TFS_TEST_VERBOSE") ? TFS_LOG_DEBUG
						     : TFS_LOG_ERROR);
	srv = th_start(handle, NULL);
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", srv->port);
	if (tfs_httpc_start("t-httpc", &c) != 0) {
		CHECK(!"tfs_httpc_start");
		return check_done();
	}
	test_bodies(c);
	test_status_headers(c);
	test_keepalive();
	test_errors(c);
	test_cancel(c);
	test_streaming(c);
	test_many(c);
	tfs_httpc_stop(c);
	test_stop();
	th_stop(srv);
	return check_done();
}
