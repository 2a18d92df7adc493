/*
 * etcd.h - the etcd v3 client: the only module that speaks to etcd.
 *
 * It talks to etcd 3.4's JSON gateway (POST /v3/kv/range, /v3/kv/txn,
 * /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke, /v3/watch)
 * through the HTTP client module.  Keys and values travel base64-encoded,
 * 64-bit numbers as JSON strings; fields equal to their default are left
 * out of answers (a txn that failed has no "succeeded").
 *
 * Several endpoints may be given; a request that cannot reach one (or
 * gets 503, etcd without quorum) tries the next.  Reads are linearizable
 * (never serializable: leadership must not be decided on stale data).
 *
 * Outcomes.  Functions return 0, or
 *   TFS_EUNAVAIL   no endpoint answered; nothing happened
 *   TFS_EUNKNOWN   a write may or may not have been applied (a timeout or
 *                  a 503 after the request was sent): read before retrying
 *   TFS_EPROTO     an answer that does not parse (after a write: it may
 *                  have been applied, as with TFS_EUNKNOWN)
 *   -ENOENT        (lease calls, and a txn whose put names a lease) the
 *                  lease does not exist any more; nothing was applied
 *   -EINVAL        a bad argument, or etcd refused the request as invalid
 *                  (HTTP 400: e.g. a txn that puts one key twice)
 * A write is a txn with a put or a delete, or a lease grant; every other
 * call is retried on the next endpoint whatever went wrong.
 *
 * Thread-safety: every call may be made from any thread that may block;
 * each waits at most the request timeout per endpoint tried.
 */
#ifndef TFS_ETCD_H
#define TFS_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpc.h"

struct tfs_etcd;

/*
 * endpoints: comma-separated base URLs ("http://127.0.0.1:2379,...").
 * timeout_ms bounds each request to one endpoint.  Returns 0 or -EINVAL
 * (nothing is contacted yet).
 */
int tfs_etcd_open(const char *endpoints, int64_t timeout_ms,
		  struct tfs_etcd **out);
void tfs_etcd_close(struct tfs_etcd *e);

/* One key-value pair as etcd stores it. */
struct tfs_kv {
	char *key;			/* NUL-terminated */
	char *value;			/* NUL-terminated (values are text) */
	size_t value_len;
	int64_t create_rev, mod_rev, version, lease;
};

struct tfs_kvs {
	struct tfs_kv *v;
	size_t n;
	int64_t revision;		/* the store revision of the answer */
};

void tfs_kvs_release(struct tfs_kvs *kvs);

/* The key (n 0 or 1), linearizable.  out is released by the caller
 * (tfs_kvs_release) after 0, and is empty after an error. */
int tfs_etcd_get(struct tfs_etcd *e, const char *key, struct tfs_kvs *out);

/* Every key starting with prefix, sorted by key, linearizable. */
int tfs_etcd_range(struct tfs_etcd *e, const char *prefix,
		   struct tfs_kvs *out);

/* --- transactions ------------------------------------------------------ */

enum tfs_etcd_target { TFS_CMP_CREATE, TFS_CMP_MOD, TFS_CMP_VERSION,
		       TFS_CMP_VALUE };
enum tfs_etcd_cmp { TFS_CMP_EQ, TFS_CMP_NE, TFS_CMP_LT, TFS_CMP_GT };

struct tfs_txn;

struct tfs_txn *tfs_txn_new(void);
void tfs_txn_free(struct tfs_txn *t);

/* If: key's target compares to rev (or value, for TFS_CMP_VALUE). */
void tfs_txn_cmp(struct tfs_txn *t, const char *key,
		 enum tfs_etcd_target target, enum tfs_etcd_cmp cmp,
		 int64_t rev, const char *value);

/* Then (on_success) or else: a put (lease 0: none), a delete of a key or
 * of a prefix, a range read of a key or prefix. */
void tfs_txn_put(struct tfs_txn *t, bool on_success, const char *key,
		 const char *value, int64_t lease);
void tfs_txn_del(struct tfs_txn *t, bool on_success, const char *key,
		 bool prefix);
void tfs_txn_get(struct tfs_txn *t, bool on_success, const char *key,
		 bool prefix);

/* The request body (malloc'd JSON text), for the unit tests and the log. */
char *tfs_txn_json(const struct tfs_txn *t);

struct tfs_txn_result {
	bool succeeded;
	int64_t revision;		/* the txn's revision: a fencing token */
	/* The range reads of the branch taken, in order. */
	struct tfs_kvs *ranges;
	size_t nranges;
};

void tfs_txn_result_release(struct tfs_txn_result *r);

/*
 * Runs t.  A write whose outcome is unknown returns TFS_EUNKNOWN.  On 0,
 * out holds the branch taken and its reads (tfs_txn_result_release).
 */
int tfs_etcd_txn(struct tfs_etcd *e, const struct tfs_txn *t,
		 struct tfs_txn_result *out);

/* Parses a /v3/kv/txn answer (unit tests).  0 or TFS_EPROTO. */
int tfs_etcd_parse_txn(const char *json, size_t len,
		       struct tfs_txn_result *out);
/* Parses a /v3/kv/range answer (unit tests).  0 or TFS_EPROTO. */
int tfs_etcd_parse_range(const char *json, size_t len, struct tfs_kvs *out);

/* --- leases ------------------------------------------------------------ */

/* Grants a lease of ttl_s (> 0) seconds; *granted is the TTL etcd gave
 * (at least its minimum, which may be more than asked). */
int tfs_etcd_lease_grant(struct tfs_etcd *e, int64_t ttl_s, int64_t *id,
			 int64_t *granted);
/*
 * Renews lease id once (one POST per keepalive: etcd #8237).  *ttl is
 * the TTL etcd reset it to.  -ENOENT when the lease is gone (expired or
 * revoked).
 */
int tfs_etcd_lease_keepalive(struct tfs_etcd *e, int64_t id, int64_t *ttl);
/* Revokes lease id (its keys are deleted).  -ENOENT if already gone. */
int tfs_etcd_lease_revoke(struct tfs_etcd *e, int64_t id);

/* --- watches ----------------------------------------------------------- */

struct tfs_etcd_event {
	bool deleted;			/* a delete; else a put */
	struct tfs_kv kv;		/* for a delete: key and mod_rev only */
};

/*
 * A watch of every key under prefix, from revision start_rev on (0: from
 * now).  Events arrive in order, in batches, through fn on the watch's
 * own thread.  After a broken stream the watch reconnects by itself
 * (trying every endpoint) from the revision after the last event seen;
 * when that revision was compacted, or events may have been missed, fn
 * is called with n 0 and resync true: the caller must re-read the state.
 * The watch then goes on from after `revision` (the store revision when it
 * restarted), so a re-read at that revision or later misses nothing.
 * Events are hints: decide on a linearizable read.
 *
 * fn gets the events of one or more revisions in order and the answer's
 * store revision; ev is valid during the call only.  fn may call any
 * other function of this module, but not tfs_etcd_watch_stop on its own
 * watch.  A watch idle longer than a minute resumes from its last event;
 * if etcd compacted past it meanwhile, that too is a resync.
 */
struct tfs_etcd_watch;

typedef void (*tfs_etcd_watch_fn)(void *arg,
				  const struct tfs_etcd_event *ev, size_t n,
				  int64_t revision, bool resync);

/* Returns 0 (the watch connects on its own thread), -EINVAL or -errno. */
int tfs_etcd_watch_start(struct tfs_etcd *e, const char *prefix,
			 int64_t start_rev, tfs_etcd_watch_fn fn, void *arg,
			 struct tfs_etcd_watch **out);
/* Stops the watch and frees it; fn is not called after this returns.
 * NULL is fine.  Stop every watch of e before tfs_etcd_close(e). */
void tfs_etcd_watch_stop(struct tfs_etcd_watch *w);

#endif
