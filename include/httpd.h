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

/* Makes a server (not listening yet).  Returns 0, or -EINVAL (logged) for
 * a bad listen address (numeric addresses only: no host names) or
 * threads 0. */
int tfs_httpd_new(const struct tfs_httpd_config *cfg, struct tfs_httpd **out);

/*
 * Routes method + path to fn: path is exact ("/v1/fetch"), or a prefix
 * when it ends in '/' ("/v1/p/" matches "/v1/p/tweets/0/append").  Of the
 * routes whose path matches and whose method is the request's, the
 * longest wins; when the path matches only routes of other methods the
 * answer is 405 (with Allow), when it matches none 404.  Paths are
 * compared as sent (not percent-decoded).  Before tfs_httpd_listen only;
 * registering the same method and path twice is a programmer error.
 */
void tfs_httpd_route(struct tfs_httpd *d, const char *method, const char *path,
		     tfs_httpd_fn fn, void *arg);

/*
 * Starts listening and serving.  Returns 0, or -errno (-EADDRINUSE...)
 * with the reason logged (-EIO if libmicrohttpd refuses to start).
 */
int tfs_httpd_listen(struct tfs_httpd *d);

/* The port actually bound (useful with port 0 in tests); 0 before
 * tfs_httpd_listen. */
unsigned tfs_httpd_port(struct tfs_httpd *d);

/*
 * Stops accepting: new requests get 503 from now on (the socket stays
 * open, so peers get an answer rather than a refused connection).  Waits
 * for the handler calls in progress to return: after this no handler
 * runs, so their owners may go.  Requests already handed to handlers must
 * still be answered by their owners, and are delivered.  Any thread but a
 * handler's.
 */
void tfs_httpd_quiesce(struct tfs_httpd *d);

/*
 * Stops the server and frees it.  Quiesces, waits up to wait_ms for the
 * requests handed to handlers to be answered and sent, then closes the
 * connections of those still unanswered.  Their owners must still answer
 * them (once, as always): such a late answer is dropped safely (a stream's
 * free callback runs) and frees the request.  Not from a handler.  NULL is
 * fine.
 */
void tfs_httpd_stop(struct tfs_httpd *d, int64_t wait_ms);

/* --- the request (valid until answered) -------------------------------
 *
 * The accessors read copies taken before the check hook ran: they may be
 * called from any thread until the request is answered.
 */

const char *tfs_httpd_method(struct tfs_httpd_req *r);
/* The path without the query string, as sent (not decoded). */
const char *tfs_httpd_path(struct tfs_httpd_req *r);
/* The path with its query string (what a MAC covers). */
const char *tfs_httpd_target(struct tfs_httpd_req *r);
/* A query argument (decoded), or NULL. */
const char *tfs_httpd_query(struct tfs_httpd_req *r, const char *name);
/* Query argument name as a number in base 10 or 16: false when absent,
 * empty, not all digits (no sign, no blanks) or over 64 bits. */
bool tfs_httpd_query_u64(struct tfs_httpd_req *r, const char *name, int base,
			 uint64_t *out);
/* A request header (case-insensitive name), or NULL. */
const char *tfs_httpd_header(struct tfs_httpd_req *r, const char *name);
/* The whole body (may be empty: *len 0; never NULL). */
const void *tfs_httpd_body(struct tfs_httpd_req *r, size_t *len);
/* "127.0.0.1:40122", for the log. */
const char *tfs_httpd_peer(struct tfs_httpd_req *r);

/* --- answering (exactly one of these, once, any thread) --------------
 *
 * A status outside 200..599 is logged and sent as 500.  The answer is
 * queued on the connection's thread (at once when given during the
 * handler's call); if the client left, or tfs_httpd_stop gave up on the
 * request, it is dropped.  After any of these calls r is gone.
 */

/* Adds a header to the answer; before the answer, by the owner.  A name or
 * value libmicrohttpd refuses (empty, or with CR/LF) is logged and left
 * out. */
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
 * the bytes it put in buf (> 0), or -1 to abort the connection (0 counts
 * as -1); it runs on a server thread and must not block for long.
 * free(arg) (may be NULL) runs once, when the answer is done or
 * abandoned, on whichever thread let go of it last.
 */
void tfs_httpd_reply_stream(struct tfs_httpd_req *r, int status,
			    const char *content_type, uint64_t len,
			    ssize_t (*read)(void *arg, uint64_t pos, char *buf,
					    size_t max),
			    void (*free)(void *arg), void *arg);

#endif
