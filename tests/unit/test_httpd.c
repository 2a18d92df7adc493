/*
 * Unit tests for the HTTP server: a real server on 127.0.0.1 (port 0) and
 * a client written here on raw sockets, so the test can also send what no
 * HTTP library would (garbage, huge headers, a body cut short).
 *
 * Covered: listen addresses, routing (exact, prefix, longest match, 404,
 * 405), the request accessors, bodies up to and over max_body (413, with
 * Content-Length and chunked), answers during the handler call, from
 * another thread while the handler still runs, and later on a suspended
 * connection (100 concurrent long-polls answered by a timer thread, on one
 * and on two server threads), answers after the client left, streamed
 * answers from a file with their free callback run exactly once, the
 * check hook, quiesce, stop with suspended and running requests, and
 * malformed HTTP.  Every wait has a deadline; nothing asserts on timing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "httpd.h"
#include "log.h"
#include "util.h"

#define DEADLINE_MS 30000
#define MAX_BODY (64 * 1024)
#define NPOLL 100

/* --- a raw HTTP/1.1 client ----------------------------------------------- */

struct resp {
	int status;			/* 0: no response (closed, reset) */
	struct tfs_buf head;		/* status line and headers */
	struct tfs_buf body;
};

static void resp_release(struct resp *r)
{
	tfs_buf_release(&r->head);
	tfs_buf_release(&r->body);
	memset(r, 0, sizeof(*r));
}

/* The value of a response header (case-insensitive), in buf; or NULL. */
static const char *resp_header(const struct resp *r, const char *name,
			       char *buf, size_t len)
{
	const char *p = r->head.data;
	size_t n = strlen(name);

	while (p && (p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (!e || (size_t)(e - v) >= len)
				return NULL;
			memcpy(buf, v, (size_t)(e - v));
			buf[e - v] = '\0';
			return buf;
		}
	}
	return NULL;
}

static int connect_to(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	struct timeval tv = { DEADLINE_MS / 1000, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Reads one response: headers, then Content-Length bytes (or up to EOF
 * without one).  Returns 0, or -1 when the connection ended before a
 * whole response (r->status 0 if not even the status line came).
 */
static int read_response(int fd, struct resp *r)
{
	char buf[65536], cl[32];
	size_t want = SIZE_MAX;
	char *end = NULL;

	memset(r, 0, sizeof(*r));
	while (!end) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		tfs_buf_add(&r->head, buf, (size_t)n);
		end = strstr(r->head.data, "\r\n\r\n");
	}
	if (sscanf(r->head.data, "HTTP/1.%*d %d", &r->status) != 1)
		r->status = -1;
	size_t hl = (size_t)(end - r->head.data) + 4;
	tfs_buf_add(&r->body, r->head.data + hl, r->head.len - hl);
	r->head.len = hl;
	r->head.data[hl] = '\0';
	if (resp_header(r, "Content-Length", cl, sizeof(cl)))
		want = strtoull(cl, NULL, 10);
	while (r->body.len < want) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return want == SIZE_MAX ? 0 : -1;
		tfs_buf_add(&r->body, buf, (size_t)n);
	}
	return r->body.len == want || want == SIZE_MAX ? 0 : -1;
}

/* Sends a request with Connection: close; extra is "Name: v\r\n" lines. */
static int send_request(int fd, const char *method, const char *target,
			const char *extra, const void *body, size_t len)
{
	struct tfs_buf b = TFS_BUF_INIT;
	int rc;

	tfs_buf_addf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "Connection: close\r\n%s", method, target,
		     extra ? extra : "");
	if (body)
		tfs_buf_addf(&b, "Content-Length: %zu\r\n", len);
	tfs_buf_add(&b, "\r\n", 2);
	rc = send_all(fd, b.data, b.len);
	if (rc == 0 && body && len)
		rc = send_all(fd, body, len);
	tfs_buf_release(&b);
	return rc;
}

/* One request on a new connection.  Returns r->status (0 on failure). */
static int http(unsigned port, const char *method, const char *target,
		const char *extra, const void *body, size_t len,
		struct resp *r)
{
	int fd = connect_to(port);

	memset(r, 0, sizeof(*r));
	if (fd < 0)
		return 0;
	if (send_request(fd, method, target, extra, body, len) == 0)
		read_response(fd, r);
	close(fd);
	return r->status;
}

/* Sends raw bytes, then reads whatever response comes. */
static int http_raw(unsigned port, const void *p, size_t n, struct resp *r)
{
	int fd = connect_to(port);

	memset(r, 0, sizeof(*r));
	if (fd < 0)
		return 0;
	if (send_all(fd, p, n) == 0)
		read_response(fd, r);
	close(fd);
	return r->status;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Polls *v until it reaches want, up to the deadline. */
static bool wait_count(atomic_int *v, int want)
{
	int64_t end = tfs_mono_ms() + DEADLINE_MS;

	while (atomic_load(v) < want) {
		if (tfs_mono_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* --- parked requests (long-polls) ---------------------------------------- */

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tfs_httpd_req *parked[NPOLL + 8];
static atomic_int nparked;

static void h_poll(struct tfs_httpd_req *r, void *arg)
{
	pthread_mutex_lock(&park_lock);
	parked[atomic_load(&nparked)] = r;
	atomic_fetch_add(&nparked, 1);
	pthread_mutex_unlock(&park_lock);
}

/* Takes the parked requests, leaving none. */
static int take_parked(struct tfs_httpd_req **out)
{
	int n;

	pthread_mutex_lock(&park_lock);
	n = atomic_load(&nparked);
	memcpy(out, parked, (size_t)n * sizeof(*out));
	atomic_store(&nparked, 0);
	pthread_mutex_unlock(&park_lock);
	return n;
}

/* --- handlers ------------------------------------------------------------ */

/* Echoes the body; the accessors' results in headers. */
static void h_echo(struct tfs_httpd_req *r, void *arg)
{
	const char *q = tfs_httpd_query(r, "a");
	const char *h = tfs_httpd_header(r, "x-test");
	size_t len;
	const void *body = tfs_httpd_body(r, &len);
	char n[32];

	snprintf(n, sizeof(n), "%zu", len);
	tfs_httpd_add_header(r, "X-Method", tfs_httpd_method(r));
	tfs_httpd_add_header(r, "X-Path", tfs_httpd_path(r));
	tfs_httpd_add_header(r, "X-Target", tfs_httpd_target(r));
	/* MHD refuses empty header values. */
	tfs_httpd_add_header(r, "X-Query-A", !q ? "(null)" : *q ? q : "(empty)");
	tfs_httpd_add_header(r, "X-Header", h ? h : "(null)");
	tfs_httpd_add_header(r, "X-Missing",
			     tfs_httpd_header(r, "X-None") ? "no" : "yes");
	tfs_httpd_add_header(r, "X-Peer", tfs_httpd_peer(r));
	tfs_httpd_add_header(r, "X-Len", n);
	tfs_httpd_add_header(r, "X-Body-Null", body ? "no" : "yes");
	tfs_httpd_reply(r, 200, "application/octet-stream", body, len);
}

static void h_text(struct tfs_httpd_req *r, void *arg)
{
	tfs_httpd_reply_text(r, 200, "%s %s", (const char *)arg,
			     tfs_httpd_path(r));
}

static void *answer_thread(void *arg)
{
	tfs_httpd_reply_text(arg, 202, "answered from a thread");
	return NULL;
}

/* Answered by another thread while the handler is still running. */
static void h_race(struct tfs_httpd_req *r, void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, answer_thread, r) == 0)
		pthread_join(t, NULL);
	else
		tfs_httpd_reply_text(r, 500, "no thread");
}

/* A file streamed with pread; free counted. */
struct file_stream {
	int fd;
	atomic_int *freed;
	struct tfs_httpd_req *req;	/* still valid in fs_free */
	int fail_at;			/* read returns -1 from this call on */
	int calls;
};

static atomic_int stream_freed, stream_bad_path;

static ssize_t fs_read(void *arg, uint64_t pos, char *buf, size_t max)
{
	struct file_stream *s = arg;
	ssize_t n;

	if (s->fail_at && ++s->calls >= s->fail_at)
		return -1;
	n = pread(s->fd, buf, max, (off_t)pos);
	return n > 0 ? n : -1;
}

static void fs_free(void *arg)
{
	struct file_stream *s = arg;

	close(s->fd);
	/* Under ASan this read would catch a request freed too early. */
	if (s->req && tfs_httpd_path(s->req)[0] != '/')
		atomic_fetch_add(&stream_bad_path, 1);
	atomic_fetch_add(s->freed, 1);
	free(s);
}

static char stream_path[64];
static size_t stream_len;

static void h_stream(struct tfs_httpd_req *r, void *arg)
{
	struct file_stream *s = tfs_calloc(1, sizeof(*s));

	s->fd = open(stream_path, O_RDONLY | O_CLOEXEC);
	s->freed = &stream_freed;
	s->req = r;
	s->fail_at = arg ? 3 : 0;
	if (s->fd < 0) {
		free(s);
		tfs_httpd_reply_text(r, 500, "cannot open");
		return;
	}
	tfs_httpd_add_header(r, "X-Stream", "yes");
	tfs_httpd_reply_stream(r, 200, "application/octet-stream", stream_len,
			       fs_read, fs_free, s);
}

/* Blocks until released: a handler still running when stop begins. */
static pthread_mutex_t block_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t block_cond = PTHREAD_COND_INITIALIZER;
static bool block_release;
static atomic_int block_entered;
static struct tfs_httpd_req *blocked;

static void h_block(struct tfs_httpd_req *r, void *arg)
{
	pthread_mutex_lock(&block_lock);
	blocked = r;
	atomic_fetch_add(&block_entered, 1);
	while (!block_release)
		pthread_cond_wait(&block_cond, &block_lock);
	pthread_mutex_unlock(&block_lock);
}

/* Refuses requests without "X-Key: good", and bodies saying "deny". */
static int check_key(struct tfs_httpd_req *r, void *arg)
{
	const char *k = tfs_httpd_header(r, "X-Key");
	size_t len;
	const char *body = tfs_httpd_body(r, &len);

	atomic_fetch_add((atomic_int *)arg, 1);
	if (!k || strcmp(k, "good") != 0)
		return 401;
	if (len == 4 && memcmp(body, "deny", 4) == 0)
		return 401;
	return 0;
}

static struct tfs_httpd *start(unsigned threads,
			       int (*check)(struct tfs_httpd_req *, void *),
			       void *check_arg)
{
	struct tfs_httpd_config cfg = {
		.listen = "127.0.0.1:0",
		.threads = threads,
		.max_body = MAX_BODY,
		.check = check,
		.check_arg = check_arg,
	};
	struct tfs_httpd *d;

	if (tfs_httpd_new(&cfg, &d) != 0)
		return NULL;
	tfs_httpd_route(d, "GET", "/echo", h_echo, NULL);
	tfs_httpd_route(d, "POST", "/echo", h_echo, NULL);
	tfs_httpd_route(d, "GET", "/p/", h_text, "short");
	tfs_httpd_route(d, "GET", "/p/long/", h_text, "long");
	tfs_httpd_route(d, "POST", "/p/long/exact", h_text, "exact");
	tfs_httpd_route(d, "PUT", "/only-put", h_text, "put");
	tfs_httpd_route(d, "GET", "/poll", h_poll, NULL);
	tfs_httpd_route(d, "GET", "/race", h_race, NULL);
	tfs_httpd_route(d, "GET", "/stream", h_stream, NULL);
	tfs_httpd_route(d, "GET", "/streambad", h_stream, "fail");
	tfs_httpd_route(d, "GET", "/block", h_block, NULL);
	if (tfs_httpd_listen(d) != 0) {
		tfs_httpd_stop(d, 0);
		return NULL;
	}
	return d;
}

/* --- tests --------------------------------------------------------------- */

static void test_listen(void)
{
	static const char *good[] = { "127.0.0.1:0", "[::1]:7001", ":7001",
				      "0.0.0.0:65535", "[::]:0" };
	static const char *bad[] = { "", "127.0.0.1", "127.0.0.1:",
				     "127.0.0.1:65536", "127.0.0.1:-1",
				     "localhost:80", "[::1]7001", "[::1",
				     "[]:80", "1.2.3:80", "127.0.0.1:80x",
				     "[::1]:", ":", "127.0.0.1:123456" };
	struct tfs_httpd_config cfg = { .threads = 1, .max_body = 10 };
	struct tfs_httpd *d, *d2;

	TEST("listen addresses: the valid forms parse");
	for (size_t i = 0; i < TFS_ARRAY_SIZE(good); i++) {
		cfg.listen = good[i];
		CHECKF(tfs_httpd_new(&cfg, &d) == 0, "%s", good[i]);
		tfs_httpd_stop(d, 0);
	}
	TEST("listen addresses: invalid ones are -EINVAL");
	for (size_t i = 0; i < TFS_ARRAY_SIZE(bad); i++) {
		cfg.listen = bad[i];
		d = NULL;
		CHECKF(tfs_httpd_new(&cfg, &d) == -EINVAL, "%s", bad[i]);
		CHECK(d == NULL);
	}
	cfg.listen = NULL;
	CHECK_EQ(tfs_httpd_new(&cfg, &d), -EINVAL);
	cfg.listen = "127.0.0.1:0";
	cfg.threads = 0;
	CHECK_EQ(tfs_httpd_new(&cfg, &d), -EINVAL);

	TEST("listen: port 0 binds a free port; a taken port is -EADDRINUSE");
	cfg.threads = 1;
	CHECK_EQ(tfs_httpd_new(&cfg, &d), 0);
	CHECK_EQ(tfs_httpd_port(d), 0);
	CHECK_EQ(tfs_httpd_listen(d), 0);
	unsigned port = tfs_httpd_port(d);
	CHECK(port > 0);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	cfg.listen = addr;
	CHECK_EQ(tfs_httpd_new(&cfg, &d2), 0);
	CHECK_EQ(tfs_httpd_listen(d2), -EADDRINUSE);
	tfs_httpd_stop(d2, 0);
	tfs_httpd_stop(d, 0);
	tfs_httpd_stop(NULL, 0);
}

static void test_routing(unsigned port)
{
	struct resp r;
	char v[64];

	TEST("routing: exact, prefix and the longest prefix");
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 200);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/p/x", NULL, NULL, 0, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "short /p/x\n") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/p/", NULL, NULL, 0, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "short /p/\n") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/p/long/a/b", NULL, NULL, 0, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "long /p/long/a/b\n") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "POST", "/p/long/exact", NULL, "", 0, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "exact /p/long/exact\n") == 0);
	resp_release(&r);
	TEST("routing: a longer route of another method falls back");
	CHECK_EQ(http(port, "GET", "/p/long/exact", NULL, NULL, 0, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "long /p/long/exact\n") == 0);
	resp_release(&r);

	TEST("routing: 404 and 405 with Allow");
	CHECK_EQ(http(port, "GET", "/nothing", NULL, NULL, 0, &r), 404);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/echo/", NULL, NULL, 0, &r), 404);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/p", NULL, NULL, 0, &r), 404);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/only-put", NULL, NULL, 0, &r), 405);
	CHECK(resp_header(&r, "Allow", v, sizeof(v)) &&
	      strcmp(v, "PUT") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "DELETE", "/echo", NULL, NULL, 0, &r), 405);
	CHECK(resp_header(&r, "Allow", v, sizeof(v)) &&
	      strcmp(v, "GET, POST") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "PUT", "/only-put?x=1", NULL, "", 0, &r), 200);
	resp_release(&r);
}

static void test_accessors(unsigned port)
{
	struct resp r;
	char v[128];

	TEST("accessors: method, path, target, query, headers, peer");
	CHECK_EQ(http(port, "GET", "/echo?a=b%20c&z=1", "x-TEST: hello\r\n",
		      NULL, 0, &r),
		 200);
	CHECK(resp_header(&r, "X-Method", v, sizeof(v)) &&
	      strcmp(v, "GET") == 0);
	CHECK(resp_header(&r, "X-Path", v, sizeof(v)) &&
	      strcmp(v, "/echo") == 0);
	CHECK(resp_header(&r, "X-Target", v, sizeof(v)) &&
	      strcmp(v, "/echo?a=b%20c&z=1") == 0);
	CHECK(resp_header(&r, "X-Query-A", v, sizeof(v)) &&
	      strcmp(v, "b c") == 0);
	CHECK(resp_header(&r, "X-Header", v, sizeof(v)) &&
	      strcmp(v, "hello") == 0);
	CHECK(resp_header(&r, "X-Missing", v, sizeof(v)) &&
	      strcmp(v, "yes") == 0);
	CHECK(resp_header(&r, "X-Peer", v, sizeof(v)) &&
	      strncmp(v, "127.0.0.1:", 10) == 0 && atoi(v + 10) > 0);
	CHECK(resp_header(&r, "X-Len", v, sizeof(v)) && strcmp(v, "0") == 0);
	CHECK(resp_header(&r, "X-Body-Null", v, sizeof(v)) &&
	      strcmp(v, "no") == 0);
	CHECK(resp_header(&r, "Content-Type", v, sizeof(v)) &&
	      strcmp(v, "application/octet-stream") == 0);
	resp_release(&r);

	TEST("accessors: path not decoded, absent query and header NULL");
	CHECK_EQ(http(port, "GET", "/p/a%2Fb", NULL, NULL, 0, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "short /p/a%2Fb\n") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 200);
	CHECK(resp_header(&r, "X-Query-A", v, sizeof(v)) &&
	      strcmp(v, "(null)") == 0);
	CHECK(resp_header(&r, "X-Header", v, sizeof(v)) &&
	      strcmp(v, "(null)") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/echo?a", NULL, NULL, 0, &r), 200);
	CHECK(resp_header(&r, "X-Query-A", v, sizeof(v)) &&
	      strcmp(v, "(empty)") == 0);
	resp_release(&r);
}

static void test_bodies(unsigned port)
{
	char *big = tfs_malloc(MAX_BODY + 1);
	struct resp r;
	char v[64];

	for (size_t i = 0; i <= MAX_BODY; i++)
		big[i] = (char)(i * 7 + 3);

	TEST("bodies: exactly max_body is echoed whole");
	CHECK_EQ(http(port, "POST", "/echo", NULL, big, MAX_BODY, &r), 200);
	CHECK_EQ(r.body.len, MAX_BODY);
	CHECK(r.body.len == MAX_BODY &&
	      memcmp(r.body.data, big, MAX_BODY) == 0);
	resp_release(&r);

	TEST("bodies: an empty body is empty, not NULL");
	CHECK_EQ(http(port, "POST", "/echo", NULL, "", 0, &r), 200);
	CHECK(resp_header(&r, "X-Len", v, sizeof(v)) && strcmp(v, "0") == 0);
	CHECK(resp_header(&r, "X-Body-Null", v, sizeof(v)) &&
	      strcmp(v, "no") == 0);
	resp_release(&r);

	TEST("bodies: max_body + 1 with Content-Length is 413");
	CHECK_EQ(http(port, "POST", "/echo", NULL, big, MAX_BODY + 1, &r), 413);
	resp_release(&r);
	TEST("bodies: 413 even for a path that does not exist");
	CHECK_EQ(http(port, "POST", "/nothing", NULL, big, MAX_BODY + 1, &r),
		 413);
	resp_release(&r);

	TEST("bodies: chunked within the limit");
	struct tfs_buf b = TFS_BUF_INIT;
	tfs_buf_addf(&b, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close"
			 "\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	CHECK_EQ(http_raw(port, b.data, b.len, &r), 200);
	CHECK(r.body.data && strcmp(r.body.data, "hello world") == 0);
	resp_release(&r);
	tfs_buf_reset(&b);

	TEST("bodies: chunked over the limit is drained and gets 413");
	tfs_buf_addf(&b, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close"
			 "\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		tfs_buf_addf(&b, "%x\r\n", MAX_BODY / 2);
		tfs_buf_add(&b, big, MAX_BODY / 2);
		tfs_buf_add(&b, "\r\n", 2);
	}
	tfs_buf_addf(&b, "0\r\n\r\n");
	CHECK_EQ(http_raw(port, b.data, b.len, &r), 413);
	resp_release(&r);
	tfs_buf_reset(&b);

	TEST("bodies: a chunked flood far over the limit is cut off");
	int fd = connect_to(port);
	CHECK(fd >= 0);
	tfs_buf_addf(&b, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close"
			 "\r\nTransfer-Encoding: chunked\r\n\r\n");
	bool cut = false;
	for (int i = 0; i < 400 && fd >= 0; i++) {	/* 400 x 64 KiB */
		tfs_buf_addf(&b, "%x\r\n", MAX_BODY);
		tfs_buf_add(&b, big, MAX_BODY);
		tfs_buf_add(&b, "\r\n", 2);
		if (send_all(fd, b.data, b.len) != 0) {
			cut = true;
			break;
		}
		tfs_buf_reset(&b);
	}
	if (fd >= 0) {
		read_response(fd, &r);
		CHECKF(cut || r.status == 0, "status %d", r.status);
		resp_release(&r);
		close(fd);
	}
	tfs_buf_release(&b);
	free(big);

	TEST("bodies: the server still answers afterwards");
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 200);
	resp_release(&r);
}

static void test_sync_answers(unsigned port)
{
	struct resp r;

	TEST("answers: from another thread while the handler runs");
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(http(port, "GET", "/race", NULL, NULL, 0, &r), 202);
		CHECK(r.body.data &&
		      strcmp(r.body.data, "answered from a thread\n") == 0);
		resp_release(&r);
	}

	TEST("answers: keep-alive, two requests on one connection");
	int fd = connect_to(port);
	const char *two = "GET /p/1 HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(fd >= 0 && send_all(fd, two, strlen(two)) == 0);
	CHECK_EQ(read_response(fd, &r), 0);
	CHECK(r.status == 200 && strcmp(r.body.data, "short /p/1\n") == 0);
	resp_release(&r);
	const char *three = "GET /p/2 HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(send_all(fd, three, strlen(three)) == 0);
	CHECK_EQ(read_response(fd, &r), 0);
	CHECK(r.status == 200 && r.body.data &&
	      strcmp(r.body.data, "short /p/2\n") == 0);
	resp_release(&r);
	close(fd);
}

struct client_arg {
	unsigned port;
	int fd;
	int id;
	int ok;
};

/* Answers every parked request with its own id, from this thread. */
static void *timer_answer(void *arg)
{
	struct tfs_httpd_req *reqs[NPOLL + 8];
	int want = *(int *)arg, got = 0;
	int64_t end = tfs_mono_ms() + DEADLINE_MS;

	while (got < want && tfs_mono_ms() < end) {
		int n = take_parked(reqs);

		for (int i = 0; i < n; i++) {
			const char *id = tfs_httpd_query(reqs[i], "id");

			tfs_httpd_reply_text(reqs[i], 200, "id=%s",
					     id ? id : "?");
		}
		got += n;
		sleep_ms(1);
	}
	return NULL;
}

static void test_long_polls(unsigned port, const char *what)
{
	static int fds[NPOLL];
	pthread_t timer;
	int want = NPOLL, good = 0;
	char target[64];

	TEST(what);
	for (int i = 0; i < NPOLL; i++) {
		fds[i] = connect_to(port);
		snprintf(target, sizeof(target), "/poll?id=%d", i);
		if (fds[i] < 0 ||
		    send_request(fds[i], "GET", target, NULL, NULL, 0) != 0)
			CHECKF(0, "poll %d not sent", i);
	}
	/* All of them parked at once: no thread is held by them. */
	CHECK(wait_count(&nparked, NPOLL));
	pthread_create(&timer, NULL, timer_answer, &want);
	for (int i = 0; i < NPOLL; i++) {
		struct resp r;
		char body[32];

		if (fds[i] < 0)
			continue;
		snprintf(body, sizeof(body), "id=%d\n", i);
		if (read_response(fds[i], &r) == 0 && r.status == 200 &&
		    strcmp(r.body.data, body) == 0)
			good++;
		resp_release(&r);
		close(fds[i]);
	}
	pthread_join(timer, NULL);
	CHECK_EQ(good, NPOLL);
}

static void test_client_gone(unsigned port)
{
	struct tfs_httpd_req *reqs[NPOLL + 8];
	struct resp r;
	int fd;

	TEST("answers: a client gone while suspended (plain answer)");
	atomic_store(&nparked, 0);
	fd = connect_to(port);
	CHECK(fd >= 0 && send_request(fd, "GET", "/poll?id=g1", NULL, NULL,
				       0) == 0);
	CHECK(wait_count(&nparked, 1));
	close(fd);
	if (take_parked(reqs) == 1)
		tfs_httpd_reply_text(reqs[0], 200, "too late");

	TEST("answers: a client gone while suspended (stream, freed once)");
	atomic_store(&stream_freed, 0);
	fd = connect_to(port);
	CHECK(fd >= 0 && send_request(fd, "GET", "/poll?id=g2", NULL, NULL,
				       0) == 0);
	CHECK(wait_count(&nparked, 1));
	close(fd);
	if (take_parked(reqs) == 1) {
		struct file_stream *s = tfs_calloc(1, sizeof(*s));

		s->fd = open(stream_path, O_RDONLY | O_CLOEXEC);
		s->freed = &stream_freed;
		s->req = reqs[0];
		tfs_httpd_reply_stream(reqs[0], 200, NULL, stream_len, fs_read,
				       fs_free, s);
	}
	CHECK(wait_count(&stream_freed, 1));

	TEST("answers: a client gone in the middle of a streamed answer");
	fd = connect_to(port);
	CHECK(fd >= 0 && send_request(fd, "GET", "/stream", NULL, NULL, 0) ==
				 0);
	char buf[4096];
	CHECK(recv(fd, buf, sizeof(buf), 0) > 0);
	close(fd);
	CHECK(wait_count(&stream_freed, 2));

	TEST("answers: the server still answers afterwards");
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 200);
	resp_release(&r);
	CHECK_EQ(atomic_load(&stream_freed), 2);
}

static void test_stream(unsigned port)
{
	char *want = tfs_malloc(stream_len);
	struct resp r;
	char v[64];
	int fd = open(stream_path, O_RDONLY);

	CHECK(fd >= 0 && pread(fd, want, stream_len, 0) == (ssize_t)stream_len);
	if (fd >= 0)
		close(fd);

	TEST("reply_stream: a multi-megabyte file, free once");
	atomic_store(&stream_freed, 0);
	CHECK_EQ(http(port, "GET", "/stream", NULL, NULL, 0, &r), 200);
	CHECK_EQ(r.body.len, stream_len);
	CHECK(r.body.len == stream_len &&
	      memcmp(r.body.data, want, stream_len) == 0);
	CHECK(resp_header(&r, "X-Stream", v, sizeof(v)) &&
	      strcmp(v, "yes") == 0);
	resp_release(&r);
	CHECK(wait_count(&stream_freed, 1));

	TEST("reply_stream: read failing aborts the connection, free once");
	int fd2 = connect_to(port);
	CHECK(fd2 >= 0 && send_request(fd2, "GET", "/streambad", NULL, NULL,
					0) == 0);
	CHECK(read_response(fd2, &r) != 0);	/* cut short */
	CHECK(r.body.len < stream_len);
	resp_release(&r);
	close(fd2);
	CHECK(wait_count(&stream_freed, 2));
	TEST("reply_stream: each free ran once");
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 200);
	resp_release(&r);
	CHECK_EQ(atomic_load(&stream_freed), 2);
	free(want);
}

static void test_check_hook(void)
{
	atomic_int calls = 0;
	struct tfs_httpd *d = start(2, check_key, &calls);
	struct resp r;

	TEST("check hook: refuses with its status before routing");
	CHECK(d != NULL);
	if (!d)
		return;
	unsigned port = tfs_httpd_port(d);
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 401);
	CHECK(r.body.data && strstr(r.body.data, "Unauthorized"));
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/nothing", NULL, NULL, 0, &r), 401);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/echo", "X-Key: bad\r\n", NULL, 0, &r),
		 401);
	resp_release(&r);
	TEST("check hook: sees the body");
	CHECK_EQ(http(port, "POST", "/echo", "X-Key: good\r\n", "deny", 4, &r),
		 401);
	resp_release(&r);
	CHECK_EQ(http(port, "POST", "/echo", "X-Key: good\r\n", "fine", 4, &r),
		 200);
	CHECK(r.body.data && strcmp(r.body.data, "fine") == 0);
	resp_release(&r);
	CHECK_EQ(http(port, "GET", "/nothing", "X-Key: good\r\n", NULL, 0, &r),
		 404);
	resp_release(&r);
	CHECK_EQ(atomic_load(&calls), 6);
	tfs_httpd_stop(d, 1000);
}

static void test_quiesce(void)
{
	struct tfs_httpd *d = start(2, NULL, NULL);
	struct tfs_httpd_req *reqs[NPOLL + 8];
	struct resp r;

	TEST("quiesce: new requests 503, a parked one still answered");
	CHECK(d != NULL);
	if (!d)
		return;
	unsigned port = tfs_httpd_port(d);
	atomic_store(&nparked, 0);
	int fd = connect_to(port);
	CHECK(fd >= 0 && send_request(fd, "GET", "/poll?id=q", NULL, NULL,
				       0) == 0);
	CHECK(wait_count(&nparked, 1));
	tfs_httpd_quiesce(d);
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 503);
	resp_release(&r);
	CHECK_EQ(http(port, "POST", "/echo", NULL, "abc", 3, &r), 503);
	resp_release(&r);
	if (take_parked(reqs) == 1)
		tfs_httpd_reply_text(reqs[0], 200, "still here");
	CHECK_EQ(read_response(fd, &r), 0);
	CHECK(r.status == 200 && strcmp(r.body.data, "still here\n") == 0);
	resp_release(&r);
	close(fd);
	tfs_httpd_stop(d, 1000);
}

static void *late_answer(void *arg)
{
	struct tfs_httpd_req *reqs[NPOLL + 8];

	sleep_ms(100);
	if (take_parked(reqs) == 1)
		tfs_httpd_reply_text(reqs[0], 200, "answered during stop");
	return NULL;
}

struct stopper {
	struct tfs_httpd *d;
	int64_t wait;
};

static void *stop_thread(void *arg)
{
	struct stopper *s = arg;

	tfs_httpd_stop(s->d, s->wait);
	return NULL;
}

static void test_stop(void)
{
	struct tfs_httpd_req *reqs[NPOLL + 8];
	struct tfs_httpd *d;
	struct resp r;
	pthread_t t;
	int fd;

	TEST("stop: an answer during the wait is delivered");
	d = start(2, NULL, NULL);
	CHECK(d != NULL);
	if (!d)
		return;
	atomic_store(&nparked, 0);
	fd = connect_to(tfs_httpd_port(d));
	CHECK(fd >= 0 && send_request(fd, "GET", "/poll?id=s1", NULL, NULL,
				       0) == 0);
	CHECK(wait_count(&nparked, 1));
	pthread_create(&t, NULL, late_answer, NULL);
	tfs_httpd_stop(d, DEADLINE_MS);
	pthread_join(t, NULL);
	CHECK_EQ(read_response(fd, &r), 0);
	CHECK(r.status == 200 &&
	      strcmp(r.body.data, "answered during stop\n") == 0);
	resp_release(&r);
	close(fd);

	TEST("stop: unanswered requests are closed, later answers dropped");
	d = start(1, NULL, NULL);
	CHECK(d != NULL);
	if (!d)
		return;
	atomic_store(&nparked, 0);
	int fds[3];
	for (int i = 0; i < 3; i++) {
		fds[i] = connect_to(tfs_httpd_port(d));
		CHECK(fds[i] >= 0 && send_request(fds[i], "GET", "/poll",
						  NULL, NULL, 0) == 0);
	}
	CHECK(wait_count(&nparked, 3));
	tfs_httpd_stop(d, 50);
	for (int i = 0; i < 3; i++) {
		CHECK(read_response(fds[i], &r) != 0 && r.status == 0);
		resp_release(&r);
		close(fds[i]);
	}
	atomic_store(&stream_freed, 0);
	if (take_parked(reqs) == 3) {
		struct file_stream *s = tfs_calloc(1, sizeof(*s));

		s->fd = open(stream_path, O_RDONLY | O_CLOEXEC);
		s->freed = &stream_freed;
		s->req = reqs[0];
		tfs_httpd_reply_stream(reqs[0], 200, NULL, stream_len, fs_read,
				       fs_free, s);
		tfs_httpd_reply_text(reqs[1], 200, "dropped");
		tfs_httpd_reply(reqs[2], 200, NULL, "x", 1);
	}
	CHECK_EQ(atomic_load(&stream_freed), 1);

	TEST("stop: a handler still running when stop begins");
	d = start(2, NULL, NULL);
	CHECK(d != NULL);
	if (!d)
		return;
	fd = connect_to(tfs_httpd_port(d));
	CHECK(fd >= 0 && send_request(fd, "GET", "/block", NULL, NULL, 0) ==
				 0);
	CHECK(wait_count(&block_entered, 1));
	struct stopper s = { d, 0 };
	pthread_create(&t, NULL, stop_thread, &s);
	sleep_ms(50);	/* usually inside MHD_stop_daemon by now */
	pthread_mutex_lock(&block_lock);
	block_release = true;
	pthread_cond_broadcast(&block_cond);
	pthread_mutex_unlock(&block_lock);
	pthread_join(t, NULL);
	CHECK(read_response(fd, &r) != 0 && r.status == 0);
	resp_release(&r);
	close(fd);
	tfs_httpd_reply_text(blocked, 200, "after stop");
}

static void test_malformed(unsigned port)
{
	struct resp r;
	struct tfs_buf b = TFS_BUF_INIT;

	TEST("malformed: garbage request lines");
	CHECK(http_raw(port, "GARBAGE\r\n\r\n", 11, &r) != 200);
	resp_release(&r);
	/* Empty lines before a request line are skipped (RFC 9112 2.2). */
	const char *blank = "\r\n\r\n\r\nGET /p/b HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n";
	CHECK_EQ(http_raw(port, blank, strlen(blank), &r), 200);
	resp_release(&r);
	CHECK(http_raw(port, "GET\r\n\r\n", 7, &r) != 200);
	resp_release(&r);

	TEST("malformed: a NUL in the request line cuts the target there");
	/* MHD 0.9.75 reads the line as a C string: the handler sees
	 * "/echo", and so does any MAC check. */
	char v[64];
	const char nul[] = "GET /echo\0/x HTTP/1.1\r\nHost: x\r\n\r\n";
	int st = http_raw(port, nul, sizeof(nul) - 1, &r);
	CHECKF(st == 400 || (st == 200 && resp_header(&r, "X-Target", v,
						       sizeof(v)) &&
			     strcmp(v, "/echo") == 0),
	       "status %d", st);
	resp_release(&r);

	TEST("malformed: bad Content-Length and bad chunks are 400");
	const char *bad_cl = "POST /echo HTTP/1.1\r\nHost: x\r\n"
			     "Content-Length: abc\r\n\r\n";
	CHECK_EQ(http_raw(port, bad_cl, strlen(bad_cl), &r), 400);
	resp_release(&r);
	const char *bad_chunk = "POST /echo HTTP/1.1\r\nHost: x\r\n"
				"Transfer-Encoding: chunked\r\n\r\nzz\r\n";
	CHECK_EQ(http_raw(port, bad_chunk, strlen(bad_chunk), &r), 400);
	resp_release(&r);

	TEST("malformed: a huge header is refused");
	tfs_buf_addf(&b, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
	for (int i = 0; i < 1024 * 1024; i++)
		tfs_buf_add(&b, "a", 1);
	tfs_buf_addf(&b, "\r\n\r\n");
	st = http_raw(port, b.data, b.len, &r);
	CHECKF(st == 431 || st == 413 || st == 400 || st == 0, "status %d",
	       st);
	resp_release(&r);
	tfs_buf_reset(&b);
	tfs_buf_addf(&b, "GET /echo HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 20000; i++)
		tfs_buf_addf(&b, "X-H%d: v\r\n", i);
	tfs_buf_addf(&b, "\r\n");
	st = http_raw(port, b.data, b.len, &r);
	CHECKF(st == 431 || st == 413 || st == 400 || st == 0, "status %d",
	       st);
	resp_release(&r);
	tfs_buf_release(&b);

	TEST("malformed: a client gone in the middle of a body");
	for (int i = 0; i < 10; i++) {
		int fd = connect_to(port);
		const char *h = "POST /echo HTTP/1.1\r\nHost: x\r\n"
				"Content-Length: 60000\r\n\r\n0123456789";
		CHECK(fd >= 0 && send_all(fd, h, strlen(h)) == 0);
		if (fd >= 0)
			close(fd);
	}
	TEST("malformed: a client gone before the end of its headers");
	for (int i = 0; i < 10; i++) {
		int fd = connect_to(port);
		const char *h = "POST /echo HTTP/1.1\r\nHost: x\r\nX-A: b";
		CHECK(fd >= 0 && send_all(fd, h, strlen(h)) == 0);
		if (fd >= 0)
			close(fd);
	}
	TEST("malformed: HTTP/1.1 without Host, HTTP/1.0");
	CHECK(http_raw(port, "GET /echo HTTP/1.1\r\n\r\n", 22, &r) != 0);
	resp_release(&r);
	CHECK_EQ(http_raw(port, "GET /p/x HTTP/1.0\r\n\r\n", 21, &r), 200);
	resp_release(&r);

	TEST("malformed: the server still answers afterwards");
	CHECK_EQ(http(port, "GET", "/echo", NULL, NULL, 0, &r), 200);
	resp_release(&r);
}

struct hammer {
	unsigned port;
	int good;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	char body[64];

	for (int i = 0; i < 50; i++) {
		struct resp r;
		int n = snprintf(body, sizeof(body), "body %d", i);

		if (http(h->port, "POST", "/echo", NULL, body, (size_t)n,
			 &r) == 200 &&
		    r.body.len == (size_t)n && !memcmp(r.body.data, body, n))
			h->good++;
		resp_release(&r);
	}
	return NULL;
}

static void test_concurrent(unsigned port)
{
	struct hammer h[4];
	pthread_t t[4];
	int good = 0;

	TEST("concurrency: 4 clients x 50 requests");
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ port, 0 };
		pthread_create(&t[i], NULL, hammer_thread, &h[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		good += h[i].good;
	}
	CHECK_EQ(good, 200);
}

static int make_stream_file(void)
{
	char *buf;
	int fd;

	snprintf(stream_path, sizeof(stream_path), "/tmp/tfs-httpd-XXXXXX");
	fd = mkstemp(stream_path);
	if (fd < 0)
		return -1;
	stream_len = 6 * 1024 * 1024 + 12345;
	buf = tfs_malloc(stream_len);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < stream_len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (char)x;
	}
	ssize_t w = write(fd, buf, stream_len);
	free(buf);
	close(fd);
	return w == (ssize_t)stream_len ? 0 : -1;
}

int main(void)
{
	struct tfs_httpd *d;

	signal(SIGPIPE, SIG_IGN);
	tfs_log_set_level(getenv("TFS_TEST_VERBOSE") ? TFS_LOG_DEBUG
						     : TFS_LOG_ERROR);
	if (make_stream_file() != 0) {
		perror("stream file");
		return 1;
	}
	test_listen();

	d = start(2, NULL, NULL);
	CHECK(d != NULL);
	if (d) {
		unsigned port = tfs_httpd_port(d);

		test_routing(port);
		test_accessors(port);
		test_bodies(port);
		test_sync_answers(port);
		test_long_polls(port, "answers: 100 long-polls, 2 threads, "
				      "answered by a timer thread");
		test_client_gone(port);
		test_stream(port);
		test_malformed(port);
		test_concurrent(port);
		tfs_httpd_stop(d, 1000);
	}
	d = start(1, NULL, NULL);
	CHECK(d != NULL);
	if (d) {
		test_long_polls(tfs_httpd_port(d),
				"answers: 100 long-polls, 1 thread, answered "
				"by a timer thread");
		tfs_httpd_stop(d, 1000);
	}
	test_check_hook();
	test_quiesce();
	test_stop();
	TEST("reply_stream: the request was valid in every free callback");
	CHECK_EQ(atomic_load(&stream_bad_path), 0);
	unlink(stream_path);
	return check_done();
}
