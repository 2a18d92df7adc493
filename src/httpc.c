/*
 * httpc.c - the HTTP client: one thread per client drives a curl multi
 * handle.  This is the only file that includes libcurl.
 *
 * DESIGN
 *
 * Any thread submits a request by putting it on the client's queue (under
 * `lock`) and waking the client thread with curl_multi_wakeup().  The
 * client thread loops: take the queue, start each request on an easy
 * handle, let curl_multi_perform() move every transfer on, complete the
 * transfers curl reports done, and sleep in curl_multi_poll() until a
 * socket is ready, a curl timer fires or someone wakes it.
 *
 * A request's `state` (under `lock`) says where it is:
 *   IDLE     not submitted, or completed (its done ran or is running)
 *   QUEUED   on the queue, not yet seen by the client thread
 *   ACTIVE   taken by the client thread (being started, or in curl)
 *   CANCEL   QUEUED or ACTIVE, and cancelled: the client thread completes
 *            it with -ECANCELED on its next turn
 * Only the client thread moves a request back to IDLE, and it does so
 * once, under the lock, before running done: a cancel that races a
 * completion either finds IDLE (and does nothing) or marks CANCEL and the
 * completion wins; either way done runs exactly once.  The client thread
 * alone touches `link` once a request left the queue, `active` and the
 * easy-handle pool, so they need no lock.
 *
 * Easy handles go back to a small pool when a transfer ends.  Connections
 * live in the multi handle's cache, so a later request to the same host
 * reuses a kept-alive connection whichever easy handle carries it.
 *
 * tfs_httpc_do() marks its request `sync`: the client thread then stores
 * the result in `rc` and signals `finished` instead of calling done, and
 * never touches the request again once it is IDLE (the waiter may free
 * it as soon as it sees IDLE).  `waiters` counts the threads inside
 * tfs_httpc_do(): tfs_httpc_stop() frees the client only after the last
 * one woke up and let go of the lock.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "httpc.h"
#include "log.h"
#include "banned.h"

enum { R_IDLE, R_QUEUED, R_ACTIVE, R_CANCEL };

#define POOL_MAX 16
#define RESP_MAX_DEFAULT ((size_t)64 << 20)
#define CONNECT_MAX_MS 2000
#define POLL_MAX_MS 1000

/* An easy handle and the text curl leaves about its last failure. */
struct conn {
	CURL *easy;
	char err[CURL_ERROR_SIZE];
};

struct tfs_httpc {
	pthread_mutex_t lock;
	pthread_cond_t finished;	/* a tfs_httpc_do request completed */
	struct tfs_list queue;		/* (lock) submitted, not taken */
	bool cancels;			/* (lock) one was cancelled */
	bool stopping;			/* (lock) tfs_httpc_stop called */
	bool stopped;			/* (lock) the thread is gone */
	int waiters;			/* (lock) threads in tfs_httpc_do */
	CURLM *multi;
	pthread_t thread;
	char name[16];

	/* client thread only */
	struct tfs_list active;		/* requests in curl */
	struct conn *pool[POOL_MAX];
	int npool;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- easy handles --------------------------------------------------------- */

static struct conn *conn_get(struct tfs_httpc *c)
{
	struct conn *cn;

	if (c->npool)
		return c->pool[--c->npool];
	cn = tfs_calloc(1, sizeof(*cn));
	cn->easy = curl_easy_init();
	if (!cn->easy) {
		free(cn);
		return NULL;
	}
	return cn;
}

static void conn_free(struct conn *cn)
{
	curl_easy_cleanup(cn->easy);
	free(cn);
}

static void conn_put(struct tfs_httpc *c, struct conn *cn)
{
	curl_easy_reset(cn->easy);
	if (c->npool < POOL_MAX)
		c->pool[c->npool++] = cn;
	else
		conn_free(cn);
}

/* --- curl callbacks (client thread) --------------------------------------- */

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct tfs_http_req *r = arg;
	size_t n = size * nmemb;
	size_t max = r->resp_max ? r->resp_max : RESP_MAX_DEFAULT;

	if (r->on_data) {
		if (r->on_data(r, p, n) != 0) {
			r->aborted = true;
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}
	if (n > max - TFS_MIN(max, r->resp.len)) {
		r->too_big = true;
		return CURL_WRITEFUNC_ERROR;
	}
	tfs_buf_add(&r->resp, p, n);
	return n;
}

/* Keeps the header lines of the last response (after any 1xx). */
static size_t header_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct tfs_http_req *r = arg;
	size_t n = size * nitems;

	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		tfs_buf_reset(&r->resp_headers);
		return n;
	}
	if (n == 0 || p[0] == '\r' || p[0] == '\n')
		return n;
	tfs_buf_add(&r->resp_headers, p, n);
	return n;
}

/* --- starting and completing ---------------------------------------------- */

static struct curl_slist *build_headers(const struct tfs_http_req *r)
{
	struct curl_slist *l = NULL, *t;

	/* An empty "Expect:" stops curl waiting for 100-continue. */
	l = curl_slist_append(l, "Expect:");
	for (const char *const *h = r->headers; l && h && *h; h++) {
		t = curl_slist_append(l, *h);
		if (!t) {
			curl_slist_free_all(l);
			return NULL;
		}
		l = t;
	}
	return l;
}

static void set_method(CURL *h, const struct tfs_http_req *r)
{
	const char *m = r->method ? r->method : "GET";
	bool post = strcmp(m, "POST") == 0, put = strcmp(m, "PUT") == 0;

	if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		return;
	}
	if (r->body || post || put) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(r->body ? r->body_len : 0));
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				 r->body ? (const char *)r->body : "");
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	if (!post)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

/* Hands r to curl.  Returns 0 or a negative code (r not in curl). */
static int req_start(struct tfs_httpc *c, struct tfs_http_req *r)
{
	int64_t cto = r->connect_timeout_ms;
	struct conn *cn;
	CURL *h;

	if (!r->url || r->timeout_ms <= 0 || cto < 0)
		return -EINVAL;
	/* Only HTTP: curl would also speak file://, ftp://... */
	if (strncasecmp(r->url, "http://", 7) != 0 &&
	    strncasecmp(r->url, "https://", 8) != 0)
		return -EINVAL;
	if (cto == 0)
		cto = TFS_MIN(r->timeout_ms, CONNECT_MAX_MS);
	cn = conn_get(c);
	if (!cn)
		return -ENOMEM;
	r->easy = cn;
	r->slist = build_headers(r);
	if (!r->slist)
		return -ENOMEM;
	h = cn->easy;
	cn->err[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)r->slist);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_PRIVATE, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cn->err);
	set_method(h, r);
	if (curl_multi_add_handle(c->multi, h) != CURLM_OK)
		return -EIO;
	tfs_list_add_tail(&c->active, &r->link);
	return 0;
}

/*
 * Completes r with rc: gives its easy handle back and runs done (or wakes
 * the tfs_httpc_do waiter).  Client thread; r is off every shared list.
 */
static void req_finish(struct tfs_httpc *c, struct tfs_http_req *r, int rc)
{
	struct conn *cn = r->easy;
	bool sync;

	if (cn) {
		curl_multi_remove_handle(c->multi, cn->easy);
		conn_put(c, cn);
		r->easy = NULL;
	}
	curl_slist_free_all(r->slist);
	r->slist = NULL;
	tfs_list_del(&r->link);

	pthread_mutex_lock(&c->lock);
	sync = r->sync;
	r->rc = rc;
	r->state = R_IDLE;
	if (sync)
		pthread_cond_broadcast(&c->finished);
	pthread_mutex_unlock(&c->lock);
	/* A sync request may be gone already: do not touch it. */
	if (!sync && r->done)
		r->done(r, rc);
}

/* The code done gets for a transfer curl finished with res. */
static int result_code(struct tfs_http_req *r, CURL *h, CURLcode res)
{
	long n = 0;

	switch (res) {
	case CURLE_OK:
		return 0;
	case CURLE_WRITE_ERROR:
		if (r->too_big)
			return -EMSGSIZE;
		return r->aborted ? -ECANCELED : -EIO;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_OPERATION_TIMEDOUT:
		/* Nothing sent yet means the connect itself timed out. */
		curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &n);
		return n > 0 ? -ETIMEDOUT : -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &n);
		return n == ECONNREFUSED ? -ECONNREFUSED : -EHOSTUNREACH;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static void read_messages(struct tfs_httpc *c)
{
	struct tfs_http_req *r;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *h = m->easy_handle;
		CURLcode res = m->data.result;
		struct conn *cn;
		int rc;

		r = NULL;
		curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&r);
		cn = r->easy;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		rc = result_code(r, h, res);
		if (rc && rc != -ECANCELED)
			tfs_debug("httpc %s: %s %s: %s", c->name,
				  r->method ? r->method : "GET", r->url,
				  cn->err[0] ? cn->err
					     : curl_easy_strerror(res));
		req_finish(c, r, rc);
	}
}

/*
 * Takes the submissions and the cancels: starts new requests and
 * completes cancelled ones.  Returns false once the client stops.
 */
static bool take_work(struct tfs_httpc *c)
{
	struct tfs_list fresh, dead, *pos, *next;
	struct tfs_http_req *r;
	bool stopping;
	int rc;

	tfs_list_init(&fresh);
	tfs_list_init(&dead);
	pthread_mutex_lock(&c->lock);
	tfs_list_splice_tail(&fresh, &c->queue);
	if (c->cancels) {
		c->cancels = false;
		for (pos = c->active.next; pos != &c->active; pos = next) {
			next = pos->next;
			r = tfs_container_of(pos, struct tfs_http_req, link);
			if (r->state == R_CANCEL) {
				tfs_list_del(pos);
				tfs_list_add_tail(&dead, pos);
			}
		}
	}
	for (pos = fresh.next; pos != &fresh; pos = next) {
		next = pos->next;
		r = tfs_container_of(pos, struct tfs_http_req, link);
		if (r->state == R_CANCEL) {
			tfs_list_del(pos);
			tfs_list_add_tail(&dead, pos);
		} else {
			r->state = R_ACTIVE;
		}
	}
	stopping = c->stopping;
	pthread_mutex_unlock(&c->lock);

	while (!tfs_list_empty(&dead)) {
		r = tfs_container_of(dead.next, struct tfs_http_req, link);
		req_finish(c, r, -ECANCELED);
	}
	while (!tfs_list_empty(&fresh)) {
		r = tfs_container_of(fresh.next, struct tfs_http_req, link);
		tfs_list_del(&r->link);
		rc = stopping ? -ECANCELED : req_start(c, r);
		if (rc)
			req_finish(c, r, rc);
	}
	return !stopping;
}

/* At stop: completes everything in curl and on the queue, until callbacks
 * submit nothing more. */
static void fail_all(struct tfs_httpc *c)
{
	struct tfs_http_req *r;

	for (;;) {
		while (!tfs_list_empty(&c->active)) {
			r = tfs_container_of(c->active.next,
					     struct tfs_http_req, link);
			req_finish(c, r, -ECANCELED);
		}
		pthread_mutex_lock(&c->lock);
		if (tfs_list_empty(&c->queue)) {
			c->stopped = true;
			pthread_mutex_unlock(&c->lock);
			return;
		}
		pthread_mutex_unlock(&c->lock);
		take_work(c);
	}
}

static void *client_main(void *arg)
{
	struct tfs_httpc *c = arg;
	int running;

	pthread_setname_np(pthread_self(), c->name);
	while (take_work(c)) {
		curl_multi_perform(c->multi, &running);
		read_messages(c);
		curl_multi_poll(c->multi, NULL, 0, POLL_MAX_MS, NULL);
	}
	fail_all(c);
	return NULL;
}

/* --- the API -------------------------------------------------------------- */

int tfs_httpc_start(const char *name, struct tfs_httpc **out)
{
	struct tfs_httpc *c;
	int rc;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		tfs_err("httpc: curl_global_init: %s",
			curl_easy_strerror(global_rc));
		return -EIO;
	}
	c = tfs_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->finished, NULL);
	tfs_list_init(&c->queue);
	tfs_list_init(&c->active);
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->multi = curl_multi_init();
	if (!c->multi) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = -pthread_create(&c->thread, NULL, client_main, c);
	if (rc) {
		tfs_err("httpc %s: cannot start its thread: %s", name,
			strerror(-rc));
		goto out_multi;
	}
	*out = c;
	return 0;

out_multi:
	curl_multi_cleanup(c->multi);
out_free:
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->finished);
	free(c);
	return rc;
}

void tfs_httpc_stop(struct tfs_httpc *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->multi);
	pthread_join(c->thread, NULL);
	/* Threads woken in tfs_httpc_do still need the lock: let them go. */
	pthread_mutex_lock(&c->lock);
	while (c->waiters)
		pthread_cond_wait(&c->finished, &c->lock);
	pthread_mutex_unlock(&c->lock);
	while (c->npool)
		conn_free(c->pool[--c->npool]);
	curl_multi_cleanup(c->multi);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->finished);
	free(c);
}

void tfs_httpc_submit(struct tfs_httpc *c, struct tfs_http_req *r)
{
	bool stopped;

	assert(r->state == R_IDLE);
	r->status = 0;
	r->aborted = r->too_big = false;
	r->easy = r->slist = NULL;
	r->client = c;
	tfs_buf_reset(&r->resp);
	tfs_buf_reset(&r->resp_headers);
	tfs_list_init(&r->link);

	pthread_mutex_lock(&c->lock);
	stopped = c->stopped;
	if (stopped) {
		/* No thread left to run it: complete it here. */
		r->rc = -ECANCELED;
	} else {
		r->state = R_QUEUED;
		tfs_list_add_tail(&c->queue, &r->link);
	}
	pthread_mutex_unlock(&c->lock);
	if (!stopped)
		curl_multi_wakeup(c->multi);
	else if (!r->sync && r->done)
		r->done(r, -ECANCELED);
}

int tfs_httpc_do(struct tfs_httpc *c, struct tfs_http_req *r)
{
	int rc;

	assert(!pthread_equal(pthread_self(), c->thread));
	pthread_mutex_lock(&c->lock);
	c->waiters++;
	pthread_mutex_unlock(&c->lock);
	r->sync = true;
	tfs_httpc_submit(c, r);
	pthread_mutex_lock(&c->lock);
	while (r->state != R_IDLE)
		pthread_cond_wait(&c->finished, &c->lock);
	rc = r->rc;
	r->sync = false;
	if (--c->waiters == 0 && c->stopped)
		pthread_cond_broadcast(&c->finished);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void tfs_httpc_cancel(struct tfs_httpc *c, struct tfs_http_req *r)
{
	bool wake = false;

	pthread_mutex_lock(&c->lock);
	if (r->state == R_QUEUED || r->state == R_ACTIVE) {
		r->state = R_CANCEL;
		c->cancels = true;
		wake = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (wake)
		curl_multi_wakeup(c->multi);
}

void tfs_http_req_release(struct tfs_http_req *r)
{
	tfs_buf_release(&r->resp);
	tfs_buf_release(&r->resp_headers);
}

int tfs_http_resp_header(const struct tfs_http_req *r, const char *name,
			 char *buf, size_t len)
{
	const char *p = r->resp_headers.data;
	const char *end = p + r->resp_headers.len;
	size_t nl = strlen(name);

	while (p && p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *v, *ve;

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && p[nl] == ':' &&
		    strncasecmp(p, name, nl) == 0) {
			v = p + nl + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
					  ve[-1] == '\t'))
				ve--;
			if ((size_t)(ve - v) >= len)
				return -1;
			memcpy(buf, v, (size_t)(ve - v));
			buf[ve - v] = '\0';
			return (int)(ve - v);
		}
		p = eol + 1;
	}
	return -1;
}
