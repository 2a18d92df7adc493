/*
 * httpd.c - the HTTP server, on libmicrohttpd (the only file that includes
 * it).
 *
 * libmicrohttpd (MHD) runs its own threads: a pool of `threads` workers,
 * each with an epoll loop (poll or select where epoll is missing), all
 * sharing one listening socket that this module binds itself, so that a
 * failed bind reports its real errno.  Every callback below runs on one of
 * those threads, and one connection is only ever handled by one of them.
 *
 * A REQUEST'S LIFE
 *
 * MHD calls uri_log() once the request line is parsed: that makes our
 * request object with the raw target.  on_access() is then called first
 * when the headers are in (we copy method, headers, query arguments and
 * the peer, so nothing later reads MHD's connection memory), then with
 * each piece of the body, then once more with no data when the body is
 * complete.  That last call runs the check hook, the router and the
 * handler.  A request refused before its handler (503 while quiescing,
 * 413, the check hook's status, 404, 405) is answered on the spot.
 *
 * A handler answers during its call or later from any thread.  If it
 * returned without answering, the connection is suspended; the answer
 * stores its MHD response in the request and resumes the connection; MHD
 * then calls on_access() again on its own thread, which queues it.  MHD
 * allows queueing only from the connection's thread, hence the detour.
 *
 * STATE MACHINE (r->state, under r->lock once the handler has r)
 *
 *   RECEIVING  headers and body arriving; only the MHD thread sees r
 *   HANDLING   the handler runs on the MHD thread; the owner holds r
 *   ANSWERED   answered while HANDLING: on_access queues it when the
 *              handler returns
 *   SUSPENDED  the handler returned without answering; connection
 *              suspended
 *   RESUMING   answered while SUSPENDED: response stored, resume
 *              requested; the next on_access queues it
 *   SENDING    the response is queued in MHD; the owner is done with r
 *   DROPPED    MHD is done with the connection (closed, client gone,
 *              server stopped) or tfs_httpd_stop gave up on it: an answer
 *              arriving now is destroyed (a stream's free runs) and
 *              nothing touches MHD
 *
 *   HANDLING -answer-> ANSWERED -handler returns-> SENDING
 *   HANDLING -handler returns-> SUSPENDED -answer-> RESUMING -> SENDING
 *   SUSPENDED -stop gives up-> DROPPED (connection resumed and closed)
 *   HANDLING -handler returns while stopping-> DROPPED
 *   any -MHD completes the request-> DROPPED
 *
 * The transitions into SUSPENDED (with MHD_suspend_connection) and out of
 * it (with MHD_resume_connection) happen under r->lock, so exactly one of
 * the answer and the stop resumes a suspended connection, and never
 * before it was suspended.  MHD never calls our callbacks while holding
 * its own locks, so calling into MHD under r->lock cannot deadlock.
 *
 * LIFETIME
 *
 * r is reference-counted: MHD's reference lives from uri_log() to
 * on_completed(); the owner's from the handler call to the answer.  The
 * last one frees r, so an answer after the client left or after the
 * server stopped touches only r, never the freed connection or server.
 *
 * STOPPING
 *
 * MHD must not be stopped with suspended connections (it panics).  The
 * server keeps the requests handed to handlers in d->pending; stop makes
 * new requests 503, waits up to wait_ms for that list to empty, then sets
 * `stopping` and, under each r->lock, drops and resumes the suspended
 * ones.  A handler still running at that moment sees `stopping` when it
 * returns and drops its request instead of suspending it (it takes r->lock
 * after stop set the flag, or stop finds it SUSPENDED).  Lock order:
 * d->lock, then r->lock.
 *
 * MHD never notices a client leaving while its connection is suspended:
 * the answer, when it comes, fails to send and MHD closes the connection.
 * Owners bound their waits (a long-poll answers empty after a while).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "httpd.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* Per connection: request line and headers must fit, plus read buffer. */
#define CONN_MEMORY_LIMIT (256 * 1024)
#define CONN_MEMORY_INCREMENT (32 * 1024)
/* Idle keep-alive connections are closed after this (suspended ones do
 * not time out in MHD). */
#define CONN_TIMEOUT_S 120
#define LISTEN_BACKLOG 511
/* A chunked body that passed max_body is read and thrown away up to this
 * many more bytes, so the client gets its 413; beyond, the connection is
 * closed. */
#define DRAIN_MAX (4 * 1024 * 1024)
/* Block size for streamed answers. */
#define STREAM_BLOCK (64 * 1024)

enum req_state {
	ST_RECEIVING,
	ST_HANDLING,
	ST_ANSWERED,
	ST_SUSPENDED,
	ST_RESUMING,
	ST_SENDING,
	ST_DROPPED,
};

struct route {
	char *method;
	char *path;
	size_t len;
	bool prefix;
	tfs_httpd_fn fn;
	void *arg;
};

struct tfs_httpd {
	struct tfs_httpd_config cfg;
	char *listen;			/* our copy of cfg.listen */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool any;			/* ":port": every address */
	struct route *routes;
	size_t nroutes;
	struct MHD_Daemon *mhd;

	pthread_mutex_t lock;
	pthread_cond_t idle;		/* pending became empty */
	struct tfs_list pending;	/* (lock) requests handed to handlers */
	bool quiesced;			/* (lock) */
	unsigned calling;		/* (lock) handlers running now */
	pthread_cond_t returned;	/* calling went to 0 */
	atomic_bool stopping;
};

/* A name and a value, pointing into a request's arena. */
struct kv {
	const char *name, *value;
};

struct tfs_httpd_req {
	pthread_mutex_t lock;
	atomic_int refs;
	enum req_state state;		/* (lock) after RECEIVING */
	bool owned;			/* (lock) the owner has not answered */
	struct MHD_Connection *conn;	/* used while not DROPPED */
	struct tfs_list link;		/* in d->pending, (d->lock) */
	bool listed;			/* (d->lock) */

	/* what was received: set on the MHD thread before the handler */
	bool started;
	char *method;
	char *target;			/* raw, with the query string */
	char *path;			/* raw, without it */
	char peer[64];
	struct tfs_buf arena;		/* header and argument strings */
	struct kv *headers, *args;
	size_t nheaders, nargs;
	struct tfs_buf body;
	bool too_big;
	uint64_t drained;

	/* the answer */
	struct tfs_buf resp_headers;	/* "name\0value\0" pairs */
	struct MHD_Response *resp;	/* (lock) stored, not yet queued */
	unsigned status;		/* (lock) */
};

/* --- listen address ------------------------------------------------------ */

static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;

	if (!*s || strlen(s) > 5)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = htons((uint16_t)v);
	return 0;
}

/* "1.2.3.4:P", "[v6]:P" or ":P" (every address, dual stack). */
static int parse_listen(struct tfs_httpd *d, const char *s)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&d->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&d->addr;
	const char *colon;
	char host[INET6_ADDRSTRLEN + 1];
	size_t n;

	memset(&d->addr, 0, sizeof(d->addr));
	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':' || (n = (size_t)(end - s - 1)) == 0 ||
		    n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		a6->sin6_family = AF_INET6;
		d->addrlen = sizeof(*a6);
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -EINVAL;
		return parse_port(end + 2, &a6->sin6_port);
	}
	colon = strrchr(s, ':');
	if (!colon || (n = (size_t)(colon - s)) >= sizeof(host))
		return -EINVAL;
	if (n == 0) {
		d->any = true;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_any;
		d->addrlen = sizeof(*a6);
		return parse_port(colon + 1, &a6->sin6_port);
	}
	memcpy(host, s, n);
	host[n] = '\0';
	a4->sin_family = AF_INET;
	d->addrlen = sizeof(*a4);
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return -EINVAL;
	return parse_port(colon + 1, &a4->sin_port);
}

static int bind_socket(const struct sockaddr *sa, socklen_t len, bool any,
		       int *out)
{
	int one = 1, zero = 0, rc;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (any && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
			       sizeof(zero))) ||
	    bind(fd, sa, len) || listen(fd, LISTEN_BACKLOG)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

/* Binds and listens; ":port" falls back to IPv4 without IPv6. */
static int open_listener(struct tfs_httpd *d, int *fd)
{
	int rc = bind_socket((struct sockaddr *)&d->addr, d->addrlen, d->any,
			     fd);

	if (rc == -EAFNOSUPPORT && d->any) {
		struct sockaddr_in a4 = {
			.sin_family = AF_INET,
			.sin_port = ((struct sockaddr_in6 *)&d->addr)->sin6_port,
			.sin_addr.s_addr = htonl(INADDR_ANY),
		};

		rc = bind_socket((struct sockaddr *)&a4, sizeof(a4), false, fd);
	}
	if (rc)
		tfs_err("httpd: cannot listen on %s: %s", d->listen,
			strerror(-rc));
	return rc;
}

static void format_peer(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;

		/* IPv4 peers of a dual-stack socket print as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host,
				  sizeof(host));
			snprintf(buf, len, "%s:%u", host, ntohs(a->sin6_port));
			return;
		}
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		snprintf(buf, len, "unknown");
	}
}

/* --- requests ------------------------------------------------------------ */

static struct tfs_httpd_req *req_new(struct tfs_httpd *d,
				     struct MHD_Connection *c, const char *uri)
{
	struct tfs_httpd_req *r = tfs_calloc(1, sizeof(*r));
	const union MHD_ConnectionInfo *ci;
	size_t n;

	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->refs, 1);	/* MHD's */
	r->state = ST_RECEIVING;
	r->conn = c;
	tfs_list_init(&r->link);
	r->target = tfs_strdup(uri ? uri : "");
	n = strcspn(r->target, "?");
	r->path = tfs_malloc(n + 1);
	memcpy(r->path, r->target, n);
	r->path[n] = '\0';
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	format_peer(ci ? ci->client_addr : NULL, r->peer, sizeof(r->peer));
	return r;
}

static void req_unref(struct tfs_httpd_req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	free(r->method);
	free(r->target);
	free(r->path);
	free(r->headers);
	free(r->args);
	tfs_buf_release(&r->arena);
	tfs_buf_release(&r->body);
	tfs_buf_release(&r->resp_headers);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Collects one header or argument into the arena as "name\0value\0". */
static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind,
				  const char *name, const char *value)
{
	struct tfs_buf *b = cls;

	tfs_buf_add(b, name ? name : "", strlen(name ? name : "") + 1);
	tfs_buf_add(b, value ? value : "", strlen(value ? value : "") + 1);
	return MHD_YES;
}

/* Copies the connection's values of one kind; returns them in the arena. */
static struct kv *copy_values(struct tfs_httpd_req *r, enum MHD_ValueKind kind,
			      size_t *count)
{
	size_t start = r->arena.len, n = 0;
	struct kv *v;

	MHD_get_connection_values(r->conn, kind, collect_kv, &r->arena);
	for (size_t i = start; i < r->arena.len; i++)
		n += r->arena.data[i] == '\0';
	n /= 2;
	*count = n;
	return n ? tfs_calloc(n, sizeof(*v)) : NULL;
}

/* Points the kv arrays into the arena once it stopped growing. */
static void fill_values(const char *p, struct kv *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		v[i].name = p;
		p += strlen(p) + 1;
		v[i].value = p;
		p += strlen(p) + 1;
	}
}

static void capture(struct tfs_httpd_req *r, const char *method)
{
	size_t hlen;

	r->method = tfs_strdup(method ? method : "");
	r->headers = copy_values(r, MHD_HEADER_KIND, &r->nheaders);
	hlen = r->arena.len;
	r->args = copy_values(r, MHD_GET_ARGUMENT_KIND, &r->nargs);
	if (r->arena.data) {
		fill_values(r->arena.data, r->headers, r->nheaders);
		fill_values(r->arena.data + hlen, r->args, r->nargs);
	}
}

/* --- answering: building MHD responses ----------------------------------- */

static unsigned check_status(int status)
{
	if (status < 200 || status > 599) {
		tfs_err("httpd: invalid status %d answered as 500", status);
		return 500;
	}
	return (unsigned)status;
}

static void add_headers(struct tfs_httpd_req *r, struct MHD_Response *resp,
			const char *content_type)
{
	const char *p = r->resp_headers.data;
	const char *end = p + r->resp_headers.len;

	if (content_type &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    content_type) != MHD_YES)
		tfs_err("httpd: invalid content type \"%s\"", content_type);
	while (p && p < end) {
		const char *value = p + strlen(p) + 1;

		if (MHD_add_response_header(resp, p, value) != MHD_YES)
			tfs_err("httpd: invalid header \"%s\" in an answer", p);
		p = value + strlen(value) + 1;
	}
}

static struct MHD_Response *text_response(const char *fmt, va_list ap)
{
	struct tfs_buf b = TFS_BUF_INIT;
	struct MHD_Response *resp;

	tfs_buf_vaddf(&b, fmt, ap);
	tfs_buf_add(&b, "\n", 1);
	resp = MHD_create_response_from_buffer(b.len, b.data,
					       MHD_RESPMEM_MUST_COPY);
	tfs_buf_release(&b);
	return resp;
}

/* --- answering: the state machine --------------------------------------- */

/*
 * Hands resp (NULL: close the connection) to the request.  The owner's
 * side of the state machine; any thread.
 */
static void req_answer(struct tfs_httpd_req *r, unsigned status,
		       struct MHD_Response *resp)
{
	struct MHD_Response *drop = NULL;
	bool owner;

	pthread_mutex_lock(&r->lock);
	owner = r->owned;
	r->owned = false;
	if (!owner) {
		tfs_err("httpd: %s %s answered twice", r->method, r->path);
		drop = resp;
	} else if (r->state == ST_HANDLING) {
		r->resp = resp;
		r->status = status;
		r->state = ST_ANSWERED;
	} else if (r->state == ST_SUSPENDED) {
		r->resp = resp;
		r->status = status;
		r->state = ST_RESUMING;
		MHD_resume_connection(r->conn);
	} else {
		/* DROPPED: the client or the server is gone. */
		tfs_debug("httpd: %s %s from %s: answer dropped, connection "
			  "gone", r->method, r->path, r->peer);
		drop = resp;
	}
	pthread_mutex_unlock(&r->lock);
	if (drop)
		MHD_destroy_response(drop);
	if (owner)
		req_unref(r);
}

/* Queues resp on r's connection (MHD thread) and gives up our hold. */
static enum MHD_Result queue(struct tfs_httpd_req *r, unsigned status,
			     struct MHD_Response *resp)
{
	enum MHD_Result rc;

	if (!resp)
		return MHD_NO;
	rc = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (rc != MHD_YES)
		tfs_err("httpd: cannot queue the answer to %s %s from %s",
			r->method, r->path, r->peer);
	return rc;
}

/* Answers a request no handler saw (MHD thread). */
static enum MHD_Result answer_now(struct tfs_httpd_req *r, unsigned status,
				  const char *allow, const char *fmt, ...)
{
	struct MHD_Response *resp;
	va_list ap;

	va_start(ap, fmt);
	resp = text_response(fmt, ap);
	va_end(ap);
	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/plain");
		if (allow)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
						allow);
	}
	r->state = ST_SENDING;
	return queue(r, status, resp);
}

/* After the handler returned (MHD thread). */
static enum MHD_Result after_handler(struct tfs_httpd *d,
				     struct tfs_httpd_req *r)
{
	struct MHD_Response *resp;
	unsigned status;

	pthread_mutex_lock(&r->lock);
	if (r->state == ST_ANSWERED) {
		resp = r->resp;
		status = r->status;
		r->resp = NULL;
		r->state = ST_SENDING;
		pthread_mutex_unlock(&r->lock);
		return queue(r, status, resp);
	}
	assert(r->state == ST_HANDLING);
	if (atomic_load(&d->stopping)) {
		r->state = ST_DROPPED;
		pthread_mutex_unlock(&r->lock);
		return MHD_NO;
	}
	r->state = ST_SUSPENDED;
	MHD_suspend_connection(r->conn);
	pthread_mutex_unlock(&r->lock);
	return MHD_YES;
}

/* on_access called again after a resume (MHD thread). */
static enum MHD_Result on_resumed(struct tfs_httpd_req *r)
{
	struct MHD_Response *resp;
	unsigned status;

	pthread_mutex_lock(&r->lock);
	if (r->state != ST_RESUMING) {
		/* DROPPED by stop: close the connection. */
		pthread_mutex_unlock(&r->lock);
		return MHD_NO;
	}
	resp = r->resp;
	status = r->status;
	r->resp = NULL;
	r->state = ST_SENDING;
	pthread_mutex_unlock(&r->lock);
	return queue(r, status, resp);
}

/* --- routing and dispatch ------------------------------------------------ */

static bool route_matches(const struct route *rt, const char *path)
{
	if (rt->prefix)
		return strncmp(path, rt->path, rt->len) == 0;
	return strcmp(path, rt->path) == 0;
}

/*
 * The longest route that matches both path and method; NULL with the
 * methods that match the path alone in allow (empty: no route at all).
 */
static const struct route *find_route(struct tfs_httpd *d, const char *method,
				      const char *path, struct tfs_buf *allow)
{
	const struct route *best = NULL;

	for (size_t i = 0; i < d->nroutes; i++) {
		const struct route *rt = &d->routes[i];

		if (!route_matches(rt, path))
			continue;
		if (strcmp(rt->method, method) == 0) {
			if (!best || rt->len > best->len)
				best = rt;
		} else if (!strstr(allow->data ? allow->data : "",
				   rt->method)) {
			tfs_buf_addf(allow, "%s%s", allow->len ? ", " : "",
				     rt->method);
		}
	}
	return best;
}

/* The body is complete: check, route, hand to the handler (MHD thread). */
static enum MHD_Result dispatch(struct tfs_httpd *d, struct tfs_httpd_req *r)
{
	struct tfs_buf allow = TFS_BUF_INIT;
	const struct route *rt;
	enum MHD_Result rc;
	int st;

	if (r->too_big)
		return answer_now(r, 413, NULL, "request body over %zu bytes",
				  d->cfg.max_body);
	if (d->cfg.check && (st = d->cfg.check(r, d->cfg.check_arg)) != 0) {
		tfs_debug("httpd: %s %s from %s refused with %d", r->method,
			  r->path, r->peer, st);
		return answer_now(r, check_status(st), NULL, "%s",
				  MHD_get_reason_phrase_for(check_status(st)));
	}
	rt = find_route(d, r->method, r->path, &allow);
	if (!rt) {
		if (allow.len)
			rc = answer_now(r, 405, allow.data, "method not allowed");
		else
			rc = answer_now(r, 404, NULL, "not found");
		tfs_buf_release(&allow);
		return rc;
	}
	tfs_buf_release(&allow);

	pthread_mutex_lock(&d->lock);
	if (d->quiesced) {
		pthread_mutex_unlock(&d->lock);
		return answer_now(r, 503, NULL, "shutting down");
	}
	tfs_list_add_tail(&d->pending, &r->link);
	r->listed = true;
	d->calling++;
	pthread_mutex_unlock(&d->lock);

	atomic_fetch_add(&r->refs, 1);	/* the owner's */
	pthread_mutex_lock(&r->lock);
	r->owned = true;
	r->state = ST_HANDLING;
	pthread_mutex_unlock(&r->lock);
	rt->fn(r, rt->arg);
	pthread_mutex_lock(&d->lock);
	if (--d->calling == 0)
		pthread_cond_broadcast(&d->returned);
	pthread_mutex_unlock(&d->lock);
	return after_handler(d, r);
}

/* The first call, headers in: copy them, refuse early what we can. */
static enum MHD_Result on_headers(struct tfs_httpd *d, struct tfs_httpd_req *r,
				  const char *method)
{
	const char *cl;
	bool quiesced;

	r->started = true;
	capture(r, method);
	pthread_mutex_lock(&d->lock);
	quiesced = d->quiesced;
	pthread_mutex_unlock(&d->lock);
	if (quiesced)
		return answer_now(r, 503, NULL, "shutting down");
	cl = tfs_httpd_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		/* MHD checked it is a number. */
		unsigned long long n = strtoull(cl, NULL, 10);

		if (n > d->cfg.max_body)
			return answer_now(r, 413, NULL,
					  "request body over %zu bytes",
					  d->cfg.max_body);
		tfs_buf_grow(&r->body, (size_t)n);
	}
	return MHD_YES;
}

/* A piece of the body. */
static enum MHD_Result on_body(struct tfs_httpd *d, struct tfs_httpd_req *r,
			       const char *data, size_t n)
{
	if (!r->too_big && r->body.len + n > d->cfg.max_body)
		r->too_big = true;
	if (!r->too_big) {
		tfs_buf_add(&r->body, data, n);
		return MHD_YES;
	}
	tfs_buf_release(&r->body);
	r->drained += n;
	if (r->drained > DRAIN_MAX) {
		tfs_warn("httpd: %s %s from %s: body over %zu bytes, closing",
			 r->method, r->path, r->peer, d->cfg.max_body);
		return MHD_NO;
	}
	return MHD_YES;
}

/* --- MHD callbacks ------------------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	return req_new(cls, c, uri);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
				 const char *url, const char *method,
				 const char *version, const char *data,
				 size_t *size, void **con_cls)
{
	struct tfs_httpd *d = cls;
	struct tfs_httpd_req *r = *con_cls;

	if (!r)		/* uri_log was not called: cannot happen with MHD */
		*con_cls = r = req_new(d, c, url);
	if (r->state != ST_RECEIVING)
		return on_resumed(r);
	if (!r->started)
		return on_headers(d, r, method);
	if (*size) {
		size_t n = *size;

		*size = 0;
		return on_body(d, r, data, n);
	}
	return dispatch(d, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct tfs_httpd *d = cls;
	struct tfs_httpd_req *r = *con_cls;
	struct MHD_Response *drop;

	if (!r)
		return;
	*con_cls = NULL;
	pthread_mutex_lock(&d->lock);
	if (r->listed) {
		tfs_list_del(&r->link);
		r->listed = false;
		if (tfs_list_empty(&d->pending))
			pthread_cond_broadcast(&d->idle);
	}
	pthread_mutex_unlock(&d->lock);

	pthread_mutex_lock(&r->lock);
	drop = r->resp;
	r->resp = NULL;
	if (r->owned || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		tfs_debug("httpd: %s %s from %s ended (code %d)%s",
			  r->method ? r->method : "?", r->path, r->peer,
			  (int)toe, r->owned ? " before its answer" : "");
	r->state = ST_DROPPED;
	r->conn = NULL;
	pthread_mutex_unlock(&r->lock);
	if (drop)
		MHD_destroy_response(drop);
	req_unref(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	/* Mostly what clients did (left mid-request, sent too much);
	 * failures that matter are logged by us as errors as well. */
	tfs_info("httpd: %s", line);
}

/* --- the server ---------------------------------------------------------- */

int tfs_httpd_new(const struct tfs_httpd_config *cfg, struct tfs_httpd **out)
{
	pthread_condattr_t ca;
	struct tfs_httpd *d;

	if (cfg->threads < 1) {
		tfs_err("httpd: threads must be at least 1");
		return -EINVAL;
	}
	d = tfs_calloc(1, sizeof(*d));
	d->cfg = *cfg;
	d->listen = tfs_strdup(cfg->listen ? cfg->listen : "");
	d->cfg.listen = d->listen;
	if (parse_listen(d, cfg->listen) != 0) {
		tfs_err("httpd: invalid listen address \"%s\" (want "
			"IPv4:port, [IPv6]:port or :port)", d->listen);
		free(d->listen);
		free(d);
		return -EINVAL;
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->idle, &ca);
	pthread_cond_init(&d->returned, NULL);
	pthread_condattr_destroy(&ca);
	tfs_list_init(&d->pending);
	atomic_init(&d->stopping, false);
	*out = d;
	return 0;
}

void tfs_httpd_route(struct tfs_httpd *d, const char *method, const char *path,
		     tfs_httpd_fn fn, void *arg)
{
	struct route *rt;

	assert(!d->mhd && method && path && fn);
	for (size_t i = 0; i < d->nroutes; i++)
		assert(strcmp(d->routes[i].method, method) ||
		       strcmp(d->routes[i].path, path));
	d->routes = tfs_realloc(d->routes, (d->nroutes + 1) * sizeof(*rt));
	rt = &d->routes[d->nroutes++];
	rt->method = tfs_strdup(method);
	rt->path = tfs_strdup(path);
	rt->len = strlen(path);
	rt->prefix = rt->len && path[rt->len - 1] == '/';
	rt->fn = fn;
	rt->arg = arg;
}

static unsigned int poll_flag(void)
{
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		return MHD_USE_EPOLL_INTERNAL_THREAD;
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		return MHD_USE_POLL_INTERNAL_THREAD;
	return MHD_USE_SELECT_INTERNALLY;
}

int tfs_httpd_listen(struct tfs_httpd *d)
{
	unsigned int flags = poll_flag() | MHD_USE_TURBO |
			     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	/* A pool of 0 or 1 is no pool, and MHD warns about either: leave
	 * the option out then. */
	struct MHD_OptionItem pool[] = {
		{ d->cfg.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE
				     : MHD_OPTION_END,
		  (intptr_t)d->cfg.threads, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	int fd, rc;

	assert(!d->mhd);
	rc = open_listener(d, &fd);
	if (rc)
		return rc;
	/* MHD owns fd from here, also when it fails to start.  The logger
	 * comes first: options are applied in order. */
	d->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_access, d,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, d,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_ARRAY, pool,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
		MHD_OPTION_CONNECTION_MEMORY_INCREMENT,
		(size_t)CONN_MEMORY_INCREMENT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONN_TIMEOUT_S,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, d,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
		MHD_OPTION_END);
	if (!d->mhd) {
		tfs_err("httpd: cannot start the server on %s", d->listen);
		return -EIO;
	}
	tfs_info("httpd: listening on %s (port %u, threads %u)", d->listen,
		 tfs_httpd_port(d), d->cfg.threads);
	return 0;
}

unsigned tfs_httpd_port(struct tfs_httpd *d)
{
	const union MHD_DaemonInfo *di;

	if (!d->mhd)
		return 0;
	di = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
	return di ? di->port : 0;
}

void tfs_httpd_quiesce(struct tfs_httpd *d)
{
	pthread_mutex_lock(&d->lock);
	d->quiesced = true;
	while (d->calling)
		pthread_cond_wait(&d->returned, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Waits for the pending requests, then drops the suspended ones. */
static void drain_pending(struct tfs_httpd *d, int64_t wait_ms)
{
	struct timespec ts;
	struct tfs_list *pos;
	unsigned dropped = 0;

	deadline_after(&ts, wait_ms > 0 ? wait_ms : 0);
	pthread_mutex_lock(&d->lock);
	d->quiesced = true;
	while (!tfs_list_empty(&d->pending) &&
	       pthread_cond_timedwait(&d->idle, &d->lock, &ts) == 0)
		;
	atomic_store(&d->stopping, true);
	for (pos = d->pending.next; pos != &d->pending; pos = pos->next) {
		struct tfs_httpd_req *r =
			tfs_container_of(pos, struct tfs_httpd_req, link);

		pthread_mutex_lock(&r->lock);
		if (r->state == ST_SUSPENDED) {
			r->state = ST_DROPPED;
			MHD_resume_connection(r->conn);
			dropped++;
		}
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&d->lock);
	if (dropped)
		tfs_warn("httpd: closed %u unanswered requests", dropped);
}

void tfs_httpd_stop(struct tfs_httpd *d, int64_t wait_ms)
{
	if (!d)
		return;
	if (d->mhd) {
		drain_pending(d, wait_ms);
		MHD_stop_daemon(d->mhd);
	}
	assert(tfs_list_empty(&d->pending));
	for (size_t i = 0; i < d->nroutes; i++) {
		free(d->routes[i].method);
		free(d->routes[i].path);
	}
	free(d->routes);
	free(d->listen);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->idle);
	pthread_cond_destroy(&d->returned);
	free(d);
}

/* --- the request's accessors --------------------------------------------- */

const char *tfs_httpd_method(struct tfs_httpd_req *r)
{
	return r->method ? r->method : "";
}

const char *tfs_httpd_path(struct tfs_httpd_req *r)
{
	return r->path;
}

const char *tfs_httpd_target(struct tfs_httpd_req *r)
{
	return r->target;
}

static const char *find_kv(const struct kv *v, size_t n, const char *name,
			   bool nocase)
{
	for (size_t i = 0; i < n; i++)
		if (nocase ? !strcasecmp(v[i].name, name)
			   : !strcmp(v[i].name, name))
			return v[i].value;
	return NULL;
}

const char *tfs_httpd_query(struct tfs_httpd_req *r, const char *name)
{
	return find_kv(r->args, r->nargs, name, false);
}

bool tfs_httpd_query_u64(struct tfs_httpd_req *r, const char *name, int base,
			 uint64_t *out)
{
	const char *v = tfs_httpd_query(r, name);
	char *end;

	/* Digits only: strtoull would also take blanks and a sign. */
	if (!v || !*v || !(base == 16 ? isxdigit((unsigned char)*v)
				      : isdigit((unsigned char)*v)))
		return false;
	errno = 0;
	*out = strtoull(v, &end, base);
	return !errno && !*end;
}

const char *tfs_httpd_header(struct tfs_httpd_req *r, const char *name)
{
	return find_kv(r->headers, r->nheaders, name, true);
}

const void *tfs_httpd_body(struct tfs_httpd_req *r, size_t *len)
{
	*len = r->body.len;
	return r->body.data ? r->body.data : "";
}

const char *tfs_httpd_peer(struct tfs_httpd_req *r)
{
	return r->peer;
}

/* --- answering: the public calls ----------------------------------------- */

void tfs_httpd_add_header(struct tfs_httpd_req *r, const char *name,
			  const char *value)
{
	tfs_buf_add(&r->resp_headers, name, strlen(name) + 1);
	tfs_buf_add(&r->resp_headers, value, strlen(value) + 1);
}

void tfs_httpd_reply(struct tfs_httpd_req *r, int status,
		     const char *content_type, const void *body, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);

	if (resp)
		add_headers(r, resp, content_type);
	else
		tfs_err("httpd: cannot make a %zu-byte answer", len);
	req_answer(r, check_status(status), resp);
}

void tfs_httpd_reply_text(struct tfs_httpd_req *r, int status,
			  const char *fmt, ...)
{
	struct MHD_Response *resp;
	va_list ap;

	va_start(ap, fmt);
	resp = text_response(fmt, ap);
	va_end(ap);
	if (resp)
		add_headers(r, resp, "text/plain");
	else
		tfs_err("httpd: cannot make a text answer");
	req_answer(r, check_status(status), resp);
}

/* A streamed answer holds a reference on its request until its free
 * callback ran, as the header promises. */
struct stream {
	ssize_t (*read)(void *arg, uint64_t pos, char *buf, size_t max);
	void (*free)(void *arg);
	void *arg;
	struct tfs_httpd_req *req;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	ssize_t n = s->read(s->arg, pos, buf, max);

	/* 0 would make MHD poll again at once, forever: treat it as an
	 * error like -1. */
	if (n <= 0 || (size_t)n > max)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	if (s->free)
		s->free(s->arg);
	req_unref(s->req);
	free(s);
}

void tfs_httpd_reply_stream(struct tfs_httpd_req *r, int status,
			    const char *content_type, uint64_t len,
			    ssize_t (*read_fn)(void *arg, uint64_t pos,
					       char *buf, size_t max),
			    void (*free_fn)(void *arg), void *arg)
{
	struct stream *s = tfs_malloc(sizeof(*s));
	struct MHD_Response *resp;

	s->read = read_fn;
	s->free = free_fn;
	s->arg = arg;
	s->req = r;
	atomic_fetch_add(&r->refs, 1);
	resp = MHD_create_response_from_callback(len, STREAM_BLOCK,
						 stream_read, s, stream_free);
	if (resp) {
		add_headers(r, resp, content_type);
	} else {
		tfs_err("httpd: cannot make a streamed answer");
		stream_free(s);
	}
	req_answer(r, check_status(status), resp);
}
