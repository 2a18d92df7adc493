/*
 * httpd.h - the HTTP server: the only module that includes libmicrohttpd.
 *
 * One server per node serves every HTTP endpoint (peer replication and
 * forwarding today; the produce/consume API and the web console later).
 * Modules register routes before the server listens; each request's body
 * is read whole (up to max_body, else 413) before its handler runs.
 *
 * Answers.  A handler answers its request exactly once, from any thread,
 * during the call or later: a handler that returns without answering
 * leaves the connection suspended (libmicrohttpd's suspend/resume), which
 * is how a long-poll fetch or a forwarded append waits without holding a
 * thread.  The request object stays valid until it is answered (and, for
 * a streamed answer, until its free callback ran).
 *
 * Authentication.  An optional `check` hook sees every request after its
 * body arrived and before routing; a non-zero HTTP status (401) refuses
 * it with that status and a short text body.
 *
 * Threads: libmicrohttpd's own (an internal epoll thread pool of
 * `threads`).  Handlers run on them and must not block.
 */
#ifndef TFS_HTTPD_H
#define TFS_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tfs_httpd;
struct tfs_httpd_req;

typedef void (*tfs_httpd_fn)(struct tfs_httpd_req *r, void *arg);

struct tfs_httpd_config {
	/* "127.0.0.1:7001", "[::1]:7001" or ":7001" (every address) */
	const char *listen;
	unsigned threads;		/* >= 1 */
	size_t max_body;		/* larger request bodies get 413 */
	/* 0 to go on, or the HTTP status that refuses the request. */
	int (*check)(struct tfs_httpd_req *r, void *arg);
	void *check_arg;
};

/* Makes a server (not listening yet).  Returns 0, or -EINVAL for a bad
 * listen address. */
int tfs_httpd_new(const struct tfs_httpd_config *cfg, struct tfs_httpd **out);

/*
 * Routes method + path to fn: path is exact ("/v1/fetch"), or a prefix
 * when it ends in '/' ("/v1/p/" matches "/v1/p/tweets/0/append").  The
 * longest match wins; no match is 404, a path that matches with another
 * method is 405.  Before tfs_httpd_listen only.
 */
void tfs_httpd_route(struct tfs_httpd *d, const char *method, const char *path,
		     tfs_httpd_fn fn, void *arg);

/*
 * Starts listening and serving.  Returns 0, or -errno (-EADDRINUSE...)
 * with the reason logged.
 */
int tfs_httpd_listen(struct tfs_httpd *d);

/* The port actually bound (useful with port 0 in tests). */
unsigned tfs_httpd_port(struct tfs_httpd *d);

/*
 * Stops accepting: new requests get 503 from now on.  Requests already
 * handed to handlers must still be answered by their owners.
 */
void tfs_httpd_quiesce(struct tfs_httpd *d);

/*
 * Stops the server and frees it.  Waits up to wait_ms for requests still
 * suspended to be answered, then closes their connections (their answers,
 * if they come later, are dropped safely).  NULL is fine.
 */
void tfs_httpd_stop(struct tfs_httpd *d, int64_t wait_ms);

/* --- the request (valid until answered) ------------------------------- */

const char *tfs_httpd_method(struct tfs_httpd_req *r);
/* The path without the query string, as sent (not decoded). */
const char *tfs_httpd_path(struct tfs_httpd_req *r);
/* The path with its query string (what a MAC covers). */
const char *tfs_httpd_target(struct tfs_httpd_req *r);
/* A query argument (decoded), or NULL. */
const char *tfs_httpd_query(struct tfs_httpd_req *r, const char *name);
/* A request header (case-insensitive name), or NULL. */
const char *tfs_httpd_header(struct tfs_httpd_req *r, const char *name);
/* The whole body (may be empty: *len 0; never NULL). */
const void *tfs_httpd_body(struct tfs_httpd_req *r, size_t *len);
/* "127.0.0.1:40122", for the log. */
const char *tfs_httpd_peer(struct tfs_httpd_req *r);

/* --- answering (exactly one of these, once, any thread) -------------- */

/* Adds a header to the answer; before the answer. */
void tfs_httpd_add_header(struct tfs_httpd_req *r, const char *name,
			  const char *value);

/* Answers with a copy of body[0..len). */
void tfs_httpd_reply(struct tfs_httpd_req *r, int status,
		     const char *content_type, const void *body, size_t len);

/* Answers with a formatted text/plain body (a trailing newline added). */
void tfs_httpd_reply_text(struct tfs_httpd_req *r, int status,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Answers with a body of `len` bytes produced by read(arg, pos, buf, max)
 * as the connection can take them (segment bytes, read with pread from
 * file ranges, without a copy of the whole body in memory).  read returns
 * the bytes it put in buf (> 0), or -1 to abort the connection.  free(arg)
 * runs once, when the answer is done or abandoned.
 */
void tfs_httpd_reply_stream(struct tfs_httpd_req *r, int status,
			    const char *content_type, uint64_t len,
			    ssize_t (*read)(void *arg, uint64_t pos, char *buf,
					    size_t max),
			    void (*free)(void *arg), void *arg);

#endif
