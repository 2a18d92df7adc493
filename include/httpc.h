/*
 * httpc.h - the HTTP client: the only module that includes libcurl.
 *
 * A client owns one thread that drives a curl multi handle.  Requests are
 * submitted from any thread and complete on the client thread, where their
 * `done` callback runs; connections to a host are kept alive and reused
 * (curl's connection cache), so a peer pair costs a few connections, not
 * one per request.  No HTTP pipelining (curl removed it): requests in
 * flight at once to one host use parallel connections.
 *
 * tfs_httpc_do() is the blocking form, for threads that may wait (the
 * etcd module's, a fetcher's); it must not be called from the client
 * thread itself (from a `done` or `on_data` callback).
 *
 * Streaming responses (etcd watches and keepalives) deliver the body in
 * pieces through `on_data` as it arrives, on the client thread.
 *
 * Every request has a deadline; the client sends no `Expect: 100-continue`
 * and sets CURLOPT_NOSIGNAL.
 */
#ifndef TFS_HTTPC_H
#define TFS_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct tfs_httpc;

/* Zero it (memset or an initializer) before its first submission. */
struct tfs_http_req {
	/* in: set by the caller, unchanged until done runs */
	const char *method;		/* "GET", "POST", "PUT", "DELETE" */
	const char *url;		/* "http://127.0.0.1:7001/v1/fetch" */
	const char *const *headers;	/* "Name: value", NULL-terminated, or NULL */
	const void *body;		/* request body (any method), or NULL */
	size_t body_len;
	int64_t timeout_ms;		/* whole request, > 0 */
	int64_t connect_timeout_ms;	/* 0: the smaller of timeout_ms and 2 s */
	size_t resp_max;		/* largest body kept in resp; 0: 64 MiB */
	/*
	 * Streaming: when set, each piece of the response body is passed
	 * here as it arrives (client thread) and resp stays empty.  Return 0
	 * to go on; anything else aborts the transfer (done gets
	 * -ECANCELED).
	 */
	int (*on_data)(struct tfs_http_req *r, const void *p, size_t n);
	/* Completion of tfs_httpc_submit (client thread); exactly once. */
	void (*done)(struct tfs_http_req *r, int rc);
	void *priv;			/* the caller's */

	/* out, valid when done runs or tfs_httpc_do returns */
	long status;			/* HTTP status, 0 if no response */
	struct tfs_buf resp;		/* body, unless on_data was set */
	struct tfs_buf resp_headers;	/* "Name: value\r\n" lines, as received */

	/* private to httpc */
	void *easy;
	void *slist;
	struct tfs_list link;
	struct tfs_httpc *client;
	int state;
	int rc;				/* the result, for tfs_httpc_do */
	bool sync;			/* submitted by tfs_httpc_do */
	bool aborted;			/* on_data asked to stop */
	bool too_big;			/* the body passed resp_max */
};

/* Starts a client and its thread.  Returns 0 or -errno. */
int tfs_httpc_start(const char *name, struct tfs_httpc **out);

/*
 * Stops the thread: every request still in flight completes with
 * -ECANCELED first (threads waiting in tfs_httpc_do return -ECANCELED,
 * and stop waits until they left).  Frees c.  NULL is fine.  Not from the
 * client's own callbacks; nothing may submit from other threads once it
 * returned.
 */
void tfs_httpc_stop(struct tfs_httpc *c);

/*
 * Queues r (any thread; the client's own callbacks may call it too).
 * r->done(r, rc) runs exactly once on the client thread: rc 0 when a
 * response arrived, whatever its status (see r->status), or
 *   -ETIMEDOUT      the deadline passed after the request was (perhaps
 *                   partly) sent: the outcome is unknown
 *   -ECONNREFUSED   nothing listens there (nothing was sent)
 *   -EHOSTUNREACH   no connection: the host is unreachable, its name does
 *                   not resolve or the connect timeout passed (nothing was
 *                   sent)
 *   -EMSGSIZE       the response body passed resp_max (the rest is lost)
 *   -ECANCELED      cancelled, aborted by on_data, or the client stopped
 *   -EINVAL         a malformed URL or an unsupported scheme
 *   -EIO            any other transport failure (reset, bad HTTP, ...)
 * r and everything it points to must stay valid until done runs; done may
 * free r (after tfs_http_req_release).  A request submitted while the
 * client stops completes with -ECANCELED.  r may be submitted again once
 * done ran (from done itself too); the response buffers are reset first.
 */
void tfs_httpc_submit(struct tfs_httpc *c, struct tfs_http_req *r);

/*
 * Submits r and waits for it: returns what done would get; r->done is
 * not called (it may be NULL).  Any thread but the client's own.
 */
int tfs_httpc_do(struct tfs_httpc *c, struct tfs_http_req *r);

/*
 * Cancels r if it is still in flight: its done then runs with
 * -ECANCELED (on the client thread, possibly before this returns).  Does
 * nothing if r already completed.  Any thread.
 */
void tfs_httpc_cancel(struct tfs_httpc *c, struct tfs_http_req *r);

/* Frees the response buffers of r (not r itself).  Safe to call twice. */
void tfs_http_req_release(struct tfs_http_req *r);

/*
 * The value of response header name (case-insensitive) copied into buf,
 * NUL-terminated; returns its length, or -1 if absent (or too long).
 */
int tfs_http_resp_header(const struct tfs_http_req *r, const char *name,
			 char *buf, size_t len);

#endif
