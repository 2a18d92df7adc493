/*
 * etcd.c - the etcd v3 client: the only module that speaks to etcd.  It
 * talks to etcd 3.4's JSON gateway (grpc-gateway) through the HTTP client
 * module, one client thread per tfs_etcd, and parses answers with
 * jansson.
 *
 * THE WIRE (etcd 3.4.23's gateway, as measured; see docs in notes.md)
 *
 * Every call is a POST of a JSON object to /v3/<service>/<method>; the
 * answer is one JSON object, or for the streaming calls (watch, lease
 * keepalive) a stream of objects each followed by "\n", each wrapped as
 * {"result": {...}} or {"error": {...}}.  The protobuf JSON mapping gives:
 *   bytes (keys, values)   standard base64 with padding
 *   int64 (revisions, IDs, TTLs, counts)   decimal in a JSON string; we
 *                          send them so and accept bare numbers too
 *   enums                  their names ("CREATE", "EQUAL", "DELETE")
 *   a default value        (0, false, "", empty list, PUT) left out of
 *                          answers: a failed txn has no "succeeded", a put
 *                          event has no "type", a keepalive of a dead
 *                          lease no "TTL", a range with no keys no "kvs"
 * Every unary answer carries "header" with the store "revision".  Errors
 * come with an HTTP status and {"error": msg, "code": grpc code}: 400
 * InvalidArgument, 404 NotFound (a lease that is gone), 429 "too many
 * requests", 503 Unavailable (no leader, or a proposal that timed out:
 * without quorum a write blocks about 7 s, then 503).
 *
 * A prefix is the range [prefix, range_end) where range_end is the prefix
 * with its last byte below 0xff incremented and the bytes after it cut;
 * for an empty or all-0xff prefix range_end is "\0" (every key from the
 * prefix on).
 *
 * ENDPOINTS AND OUTCOMES
 *
 * A call tries the endpoints in turn, starting from the last one that
 * answered.  What happens on each failure:
 *   refused, unreachable, 429, 421       next endpoint (nothing was done)
 *   timeout, reset, 503 and other 5xx    a read: next endpoint;
 *                                        a write: TFS_EUNKNOWN at once
 * Reads are range calls, read-only txns, keepalives and revokes (a
 * revoke done twice answers -ENOENT the second time, which is what
 * happened); writes are txns with a put or a delete, and lease grants.
 * When every endpoint failed without doing anything: TFS_EUNAVAIL.
 *
 * WATCHES
 *
 * Each watch has a thread that keeps one streaming POST /v3/watch open
 * at a time.  The HTTP client thread cuts the stream into lines and
 * parses each into a message (created, events, progress, compacted,
 * cancelled) queued to the watch thread, which calls fn: fn never runs
 * on the HTTP thread, so it may call back into this module.  The watch
 * thread remembers the next revision it needs (after the last event, or
 * after the "created" answer of a watch from now, whose header revision
 * is the one before its first) and reconnects from it after a broken
 * stream, trying the next
 * endpoint when a stream fails before it was created, with a backoff from
 * 50 ms to 2 s.  Each stream lives at most WATCH_STREAM_MS, so a member
 * that hangs without closing its connections is left in bounded time.
 * A compacted start revision, a line that does not parse or a queue past
 * its bound mean events may be lost: the watch then restarts from now
 * and calls fn(resync) with the revision of the new "created" answer.
 * A watch idle for longer than the stream lifetime resumes from its last
 * event: if etcd compacted past it meanwhile, that is a resync too.
 * Progress notifications are not asked for and move nothing: in etcd
 * 3.4.23 they are no safe resume point (etcd #15220, fixed in 3.4.24, and
 * #20221 for watches that start in the future).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base64.h"
#include "err.h"
#include "etcd.h"
#include "log.h"
#include "banned.h"

#define RESP_MAX ((size_t)64 << 20)
#define WATCH_STREAM_MS (60 * 1000)
/* Bytes of parsed events a watch holds before its fn took them. */
#define WATCH_QUEUE_MAX ((size_t)64 << 20)
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

/* Internal: this endpoint did nothing, try the next one. */
#define TRY_NEXT (-EAGAIN)

/* gRPC status codes in the gateway's error answers. */
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5

struct tfs_etcd {
	char **eps;			/* base URLs, no trailing '/' */
	size_t neps;
	atomic_size_t good;		/* the endpoint that last answered */
	int64_t timeout_ms;
	struct tfs_httpc *http;
	/* While etcd is down every call fails: one warning per 10 s. */
	atomic_llong down_logged;	/* mono ms */
	atomic_ullong down_calls;	/* failed since the last warning */
};

/* --- JSON helpers --------------------------------------------------------- */

static json_t *j_b64(const void *p, size_t n)
{
	struct tfs_buf b = TFS_BUF_INIT;
	json_t *j;

	tfs_base64_encode(&b, p, n);
	j = json_stringn(b.data, b.len);
	tfs_buf_release(&b);
	return j;
}

static json_t *j_int64(int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return json_string(s);
}

/* An int64 field: absent is 0; a decimal string or a JSON integer. */
static int get_int64(json_t *o, const char *name, int64_t *v)
{
	json_t *x = json_object_get(o, name);
	const char *s;
	char *end;

	*v = 0;
	if (!x)
		return 0;
	if (json_is_integer(x)) {
		*v = json_integer_value(x);
		return 0;
	}
	if (!json_is_string(x))
		return TFS_EPROTO;
	s = json_string_value(x);
	/* strtoll alone would take spaces, a '+' and an empty string. */
	if (!isdigit((unsigned char)s[*s == '-']))
		return TFS_EPROTO;
	errno = 0;
	long long ll = strtoll(s, &end, 10);
	if (errno || *end)
		return TFS_EPROTO;
	*v = ll;
	return 0;
}

/* A bool field: absent is false. */
static int get_bool(json_t *o, const char *name, bool *v)
{
	json_t *x = json_object_get(o, name);

	*v = false;
	if (!x)
		return 0;
	if (!json_is_boolean(x))
		return TFS_EPROTO;
	*v = json_is_true(x);
	return 0;
}

/* A bytes field decoded into a malloc'd NUL-terminated string; absent is
 * "" unless required. */
static int get_bytes(json_t *o, const char *name, bool required, char **out,
		     size_t *len)
{
	json_t *x = json_object_get(o, name);
	struct tfs_buf b = TFS_BUF_INIT;

	if (!x && required)
		return TFS_EPROTO;
	tfs_buf_add(&b, "", 0);		/* "" when absent or empty */
	if (x && (!json_is_string(x) ||
		  tfs_base64_decode(&b, json_string_value(x),
				    json_string_length(x)) != 0)) {
		tfs_buf_release(&b);
		return TFS_EPROTO;
	}
	*out = tfs_buf_detach(&b, len);
	return 0;
}

/* The store revision in o's "header" (which must be there). */
static int get_header_rev(json_t *o, int64_t *rev)
{
	json_t *h = json_object_get(o, "header");

	if (!json_is_object(h))
		return TFS_EPROTO;
	return get_int64(h, "revision", rev);
}

/* --- key-values ----------------------------------------------------------- */

static void kv_release(struct tfs_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void tfs_kvs_release(struct tfs_kvs *kvs)
{
	if (!kvs)
		return;
	for (size_t i = 0; i < kvs->n; i++)
		kv_release(&kvs->v[i]);
	free(kvs->v);
	memset(kvs, 0, sizeof(*kvs));
}

static int parse_kv(json_t *o, struct tfs_kv *kv)
{
	size_t klen;
	int rc;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o))
		return TFS_EPROTO;
	rc = get_bytes(o, "key", true, &kv->key, &klen);
	if (!rc && (klen == 0 || strlen(kv->key) != klen))
		rc = TFS_EPROTO;	/* our keys are text, never empty */
	if (!rc)
		rc = get_bytes(o, "value", false, &kv->value, &kv->value_len);
	if (!rc)
		rc = get_int64(o, "create_revision", &kv->create_rev);
	if (!rc)
		rc = get_int64(o, "mod_revision", &kv->mod_rev);
	if (!rc)
		rc = get_int64(o, "version", &kv->version);
	if (!rc)
		rc = get_int64(o, "lease", &kv->lease);
	if (rc)
		kv_release(kv);
	return rc;
}

/* The "kvs" of a range answer o (absent: none); revision is the caller's. */
static int parse_kvs(json_t *o, int64_t revision, struct tfs_kvs *out)
{
	json_t *arr = json_object_get(o, "kvs");
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	out->revision = revision;
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return TFS_EPROTO;
	n = json_array_size(arr);
	out->v = tfs_calloc(n, sizeof(*out->v));
	for (size_t i = 0; i < n; i++) {
		rc = parse_kv(json_array_get(arr, i), &out->v[i]);
		if (rc) {
			tfs_kvs_release(out);
			return rc;
		}
		out->n = i + 1;
	}
	return 0;
}

static int range_from_json(json_t *o, struct tfs_kvs *out)
{
	int64_t rev;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return TFS_EPROTO;
	rc = get_header_rev(o, &rev);
	return rc ? rc : parse_kvs(o, rev, out);
}

int tfs_etcd_parse_range(const char *json, size_t len, struct tfs_kvs *out)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	int rc = range_from_json(o, out);

	json_decref(o);
	return rc;
}

/* --- transactions --------------------------------------------------------- */

struct tfs_txn {
	json_t *compare, *success, *failure;
	bool writes;			/* a put or a delete in a branch */
};

static const char *const target_names[] = {
	[TFS_CMP_CREATE] = "CREATE", [TFS_CMP_MOD] = "MOD",
	[TFS_CMP_VERSION] = "VERSION", [TFS_CMP_VALUE] = "VALUE",
};
static const char *const target_fields[] = {
	[TFS_CMP_CREATE] = "create_revision", [TFS_CMP_MOD] = "mod_revision",
	[TFS_CMP_VERSION] = "version", [TFS_CMP_VALUE] = "value",
};
static const char *const cmp_names[] = {
	[TFS_CMP_EQ] = "EQUAL", [TFS_CMP_NE] = "NOT_EQUAL",
	[TFS_CMP_LT] = "LESS", [TFS_CMP_GT] = "GREATER",
};

struct tfs_txn *tfs_txn_new(void)
{
	struct tfs_txn *t = tfs_calloc(1, sizeof(*t));

	t->compare = json_array();
	t->success = json_array();
	t->failure = json_array();
	return t;
}

void tfs_txn_free(struct tfs_txn *t)
{
	if (!t)
		return;
	json_decref(t->compare);
	json_decref(t->success);
	json_decref(t->failure);
	free(t);
}

/*
 * Sets o's "key" and, for a prefix, "range_end": the prefix with its last
 * byte below 0xff incremented and what follows cut; "\0" (every key from
 * key on) when there is no such byte.
 */
static void set_range(json_t *o, const char *key, bool prefix)
{
	size_t n = strlen(key);
	char *end;

	if (!prefix) {
		json_object_set_new(o, "key", j_b64(key, n));
		return;
	}
	json_object_set_new(o, "key", n ? j_b64(key, n) : j_b64("", 1));
	end = tfs_strdup(key);
	while (n && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n) {
		end[n - 1]++;
		json_object_set_new(o, "range_end", j_b64(end, n));
	} else {
		json_object_set_new(o, "range_end", j_b64("", 1));
	}
	free(end);
}

void tfs_txn_cmp(struct tfs_txn *t, const char *key,
		 enum tfs_etcd_target target, enum tfs_etcd_cmp cmp,
		 int64_t rev, const char *value)
{
	json_t *c = json_object();

	set_range(c, key, false);
	json_object_set_new(c, "target", json_string(target_names[target]));
	json_object_set_new(c, "result", json_string(cmp_names[cmp]));
	if (target == TFS_CMP_VALUE)
		json_object_set_new(c, target_fields[target],
				    j_b64(value ? value : "",
					  value ? strlen(value) : 0));
	else
		json_object_set_new(c, target_fields[target], j_int64(rev));
	json_array_append_new(t->compare, c);
}

static void txn_add(struct tfs_txn *t, bool on_success, const char *op,
		    json_t *req)
{
	json_t *o = json_object();

	json_object_set_new(o, op, req);
	json_array_append_new(on_success ? t->success : t->failure, o);
}

void tfs_txn_put(struct tfs_txn *t, bool on_success, const char *key,
		 const char *value, int64_t lease)
{
	json_t *p = json_object();

	set_range(p, key, false);
	json_object_set_new(p, "value", j_b64(value, strlen(value)));
	if (lease)
		json_object_set_new(p, "lease", j_int64(lease));
	txn_add(t, on_success, "request_put", p);
	t->writes = true;
}

void tfs_txn_del(struct tfs_txn *t, bool on_success, const char *key,
		 bool prefix)
{
	json_t *d = json_object();

	set_range(d, key, prefix);
	txn_add(t, on_success, "request_delete_range", d);
	t->writes = true;
}

void tfs_txn_get(struct tfs_txn *t, bool on_success, const char *key,
		 bool prefix)
{
	json_t *g = json_object();

	set_range(g, key, prefix);
	txn_add(t, on_success, "request_range", g);
}

char *tfs_txn_json(const struct tfs_txn *t)
{
	json_t *o = json_object();
	char *s;

	json_object_set(o, "compare", t->compare);
	json_object_set(o, "success", t->success);
	json_object_set(o, "failure", t->failure);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

void tfs_txn_result_release(struct tfs_txn_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nranges; i++)
		tfs_kvs_release(&r->ranges[i]);
	free(r->ranges);
	memset(r, 0, sizeof(*r));
}

/* Appends the range read of one response op, if it is one. */
static int txn_response(json_t *op, int64_t revision,
			struct tfs_txn_result *out)
{
	json_t *rr;
	int rc;

	if (!json_is_object(op))
		return TFS_EPROTO;
	rr = json_object_get(op, "response_range");
	if (!rr)
		return 0;
	if (!json_is_object(rr))
		return TFS_EPROTO;
	out->ranges = tfs_realloc(out->ranges,
				  (out->nranges + 1) * sizeof(*out->ranges));
	rc = parse_kvs(rr, revision, &out->ranges[out->nranges]);
	if (!rc)
		out->nranges++;
	return rc;
}

static int txn_from_json(json_t *o, struct tfs_txn_result *out)
{
	json_t *resps;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return TFS_EPROTO;
	rc = get_header_rev(o, &out->revision);
	if (!rc)
		rc = get_bool(o, "succeeded", &out->succeeded);
	resps = json_object_get(o, "responses");
	if (!rc && resps && !json_is_array(resps))
		rc = TFS_EPROTO;
	for (size_t i = 0; !rc && i < json_array_size(resps); i++)
		rc = txn_response(json_array_get(resps, i), out->revision,
				  out);
	if (rc)
		tfs_txn_result_release(out);
	return rc;
}

int tfs_etcd_parse_txn(const char *json, size_t len,
		       struct tfs_txn_result *out)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	int rc = txn_from_json(o, out);

	json_decref(o);
	return rc;
}

/* --- calls and endpoint failover ------------------------------------------ */

int tfs_etcd_open(const char *endpoints, int64_t timeout_ms,
		  struct tfs_etcd **out)
{
	struct tfs_etcd *e;
	char *list, *save = NULL, *tok;
	int rc = -EINVAL;

	if (!endpoints || timeout_ms <= 0)
		return -EINVAL;
	e = tfs_calloc(1, sizeof(*e));
	e->timeout_ms = timeout_ms;
	list = tfs_strdup(endpoints);
	/* Commas, or semicolons where a comma would end the option (-o,
	 * fstab), or blanks. */
	for (tok = strtok_r(list, ",; \t", &save); tok;
	     tok = strtok_r(NULL, ",; \t", &save)) {
		size_t n;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		n = strcspn(tok, " \t");
		tok[n] = '\0';
		while (n && tok[n - 1] == '/')
			tok[--n] = '\0';
		if (n == 0)
			continue;
		if ((strncmp(tok, "http://", 7) != 0 &&
		     strncmp(tok, "https://", 8) != 0) ||
		    strchr(tok, '?') || strchr(tok, '#')) {
			tfs_err("etcd: endpoint '%s' is not an http URL", tok);
			goto out_bad;
		}
		e->eps = tfs_realloc(e->eps, (e->neps + 1) * sizeof(*e->eps));
		e->eps[e->neps++] = tfs_strdup(tok);
	}
	if (e->neps == 0) {
		tfs_err("etcd: no endpoint in '%s'", endpoints);
		goto out_bad;
	}
	rc = tfs_httpc_start("etcd-http", &e->http);
	if (rc)
		goto out_bad;
	free(list);
	*out = e;
	return 0;

out_bad:
	free(list);
	tfs_etcd_close(e);
	return rc;
}

void tfs_etcd_close(struct tfs_etcd *e)
{
	if (!e)
		return;
	tfs_httpc_stop(e->http);
	for (size_t i = 0; i < e->neps; i++)
		free(e->eps[i]);
	free(e->eps);
	free(e);
}

/*
 * A gateway error answer {"error": text, "code": gRPC code}: the text into
 * buf, for the log; returns the code, or -1 if the answer is not one.
 */
static int error_info(const struct tfs_http_req *r, char *buf, size_t len)
{
	json_t *o = json_loadb(r->resp.data ? r->resp.data : "", r->resp.len,
			       0, NULL);
	json_t *m = json_object_get(o, "error");
	json_t *c = json_object_get(o, "code");
	int code = json_is_string(m) && json_is_integer(c)
			   ? (int)json_integer_value(c)
			   : -1;

	snprintf(buf, len, "%s",
		 json_is_string(m) ? json_string_value(m) : "(not etcd's)");
	json_decref(o);
	return code;
}

/*
 * What a transport failure or an HTTP status of one endpoint means:
 * TRY_NEXT, or the code the call returns.
 */
static int classify(const char *ep, const char *path, bool write,
		    const struct tfs_http_req *r, int rc)
{
	char msg[256];
	int code;

	switch (rc) {
	case 0:
		break;
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
		tfs_debug("etcd %s%s: %s", ep, path, tfs_strerror(rc));
		return TRY_NEXT;
	case -ETIMEDOUT:
	case -EIO:
		tfs_warn("etcd %s%s: %s%s", ep, path, tfs_strerror(rc),
			 write ? " (the write may have been applied)" : "");
		return write ? TFS_EUNKNOWN : TRY_NEXT;
	case -EMSGSIZE:
		tfs_err("etcd %s%s: answer over %zu bytes", ep, path, RESP_MAX);
		return write ? TFS_EUNKNOWN : TFS_EPROTO;
	default:
		return rc;
	}
	if (r->status == 200)
		return 0;
	code = error_info(r, msg, sizeof(msg));
	if (r->status == 404 && code == GRPC_NOT_FOUND)
		return -ENOENT;
	if (r->status == 400 && code == GRPC_INVALID_ARGUMENT) {
		tfs_err("etcd %s%s: rejected: %s", ep, path, msg);
		return -EINVAL;
	}
	if (r->status == 429 || r->status == 421) {
		tfs_warn("etcd %s%s: %ld %s", ep, path, r->status, msg);
		return TRY_NEXT;
	}
	if (r->status >= 500) {
		tfs_warn("etcd %s%s: %ld %s%s", ep, path, r->status, msg,
			 write ? " (the write may have been applied)" : "");
		return write ? TFS_EUNKNOWN : TRY_NEXT;
	}
	tfs_err("etcd %s%s: unexpected status %ld: %s", ep, path, r->status,
		msg);
	return TFS_EPROTO;
}

/* One POST to endpoint k; *resp gets the body of a 200 answer. */
static int call_one(struct tfs_etcd *e, size_t k, const char *path,
		    const char *body, bool write, struct tfs_buf *resp)
{
	static const char *const headers[] = {
		"Content-Type: application/json", NULL
	};
	struct tfs_http_req r;
	char *url = tfs_asprintf("%s%s", e->eps[k], path);
	int rc;

	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = url;
	r.headers = headers;
	r.body = body;
	r.body_len = strlen(body);
	r.timeout_ms = e->timeout_ms;
	r.resp_max = RESP_MAX;
	rc = classify(e->eps[k], path, write, &r, tfs_httpc_do(e->http, &r));
	if (rc == 0) {
		tfs_buf_release(resp);
		*resp = r.resp;
		memset(&r.resp, 0, sizeof(r.resp));
	}
	tfs_http_req_release(&r);
	free(url);
	return rc;
}

/*
 * POSTs body to path, trying each endpoint from the last good one; on 0
 * *resp holds the answer's body.  write: see the top of the file.
 */
static int etcd_post(struct tfs_etcd *e, const char *path, const char *body,
		     bool write, struct tfs_buf *resp)
{
	size_t start = atomic_load(&e->good);
	int rc = TRY_NEXT;

	for (size_t i = 0; i < e->neps && rc == TRY_NEXT; i++) {
		size_t k = (start + i) % e->neps;

		rc = call_one(e, k, path, body, write, resp);
		if (rc != TRY_NEXT && rc != TFS_EUNKNOWN)
			atomic_store(&e->good, k);	/* it answered */
	}
	if (rc == TRY_NEXT) {
		unsigned long long n = atomic_fetch_add(&e->down_calls, 1) + 1;

		if (tfs_log_due(&e->down_logged, 10000)) {
			atomic_store(&e->down_calls, 0);
			tfs_warn("etcd %s: no endpoint answered (%llu calls "
				 "failed so; the next warning in 10 s)",
				 path, n);
		}
		rc = TFS_EUNAVAIL;
	} else if (atomic_load(&e->down_logged) &&
		   atomic_exchange(&e->down_logged, 0)) {
		tfs_info("etcd answers again");
	}
	return rc;
}

/* etcd_post, and on 0 *out is the answer as JSON (the caller decrefs). */
static int etcd_call(struct tfs_etcd *e, const char *path, const char *body,
		     bool write, json_t **out)
{
	struct tfs_buf resp = TFS_BUF_INIT;
	int rc = etcd_post(e, path, body, write, &resp);

	if (rc == 0) {
		*out = json_loadb(resp.data ? resp.data : "", resp.len, 0,
				  NULL);
		if (!*out) {
			tfs_err("etcd %s: an answer that is not JSON", path);
			rc = TFS_EPROTO;
		}
	}
	tfs_buf_release(&resp);
	return rc;
}

/* Like etcd_call with a JSON body (which it takes). */
static int etcd_call_json(struct tfs_etcd *e, const char *path, json_t *body,
			  bool write, json_t **out)
{
	char *s = json_dumps(body, JSON_COMPACT);
	int rc = etcd_call(e, path, s, write, out);

	free(s);
	json_decref(body);
	return rc;
}

/* --- reads and transactions ----------------------------------------------- */

static int range_call(struct tfs_etcd *e, const char *key, bool prefix,
		      struct tfs_kvs *out)
{
	json_t *req = json_object(), *ans;
	int rc;

	memset(out, 0, sizeof(*out));
	set_range(req, key, prefix);
	rc = etcd_call_json(e, "/v3/kv/range", req, false, &ans);
	if (rc)
		return rc;
	rc = range_from_json(ans, out);
	json_decref(ans);
	if (rc)
		tfs_err("etcd /v3/kv/range: a malformed answer");
	return rc;
}

int tfs_etcd_get(struct tfs_etcd *e, const char *key, struct tfs_kvs *out)
{
	int rc = range_call(e, key, false, out);

	if (!rc && out->n > 1) {
		tfs_kvs_release(out);
		return TFS_EPROTO;
	}
	return rc;
}

int tfs_etcd_range(struct tfs_etcd *e, const char *prefix,
		   struct tfs_kvs *out)
{
	return range_call(e, prefix, true, out);
}

int tfs_etcd_txn(struct tfs_etcd *e, const struct tfs_txn *t,
		 struct tfs_txn_result *out)
{
	char *body = tfs_txn_json(t);
	json_t *ans;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = etcd_call(e, "/v3/kv/txn", body, t->writes, &ans);
	free(body);
	if (rc)
		return rc;
	rc = txn_from_json(ans, out);
	json_decref(ans);
	if (rc)
		tfs_err("etcd /v3/kv/txn: a malformed answer");
	return rc;
}

/* --- leases --------------------------------------------------------------- */

int tfs_etcd_lease_grant(struct tfs_etcd *e, int64_t ttl_s, int64_t *id,
			 int64_t *granted)
{
	json_t *req, *ans, *err;
	int rc;

	if (ttl_s <= 0)
		return -EINVAL;
	req = json_object();
	json_object_set_new(req, "TTL", j_int64(ttl_s));
	rc = etcd_call_json(e, "/v3/lease/grant", req, true, &ans);
	if (rc)
		return rc;
	err = json_object_get(ans, "error");
	if (json_is_string(err) && json_string_length(err)) {
		tfs_err("etcd lease grant: %s", json_string_value(err));
		rc = TFS_EPROTO;
	} else if (!json_is_object(ans) || get_int64(ans, "ID", id) ||
		   get_int64(ans, "TTL", granted) || *id == 0 ||
		   *granted <= 0) {
		tfs_err("etcd lease grant: a malformed answer");
		rc = TFS_EPROTO;
	}
	json_decref(ans);
	return rc;
}

/*
 * The first object of a keepalive stream: {"result": {"ID", "TTL"}};
 * no TTL means the lease is gone.
 */
static int keepalive_answer(const char *text, size_t len, int64_t id,
			    int64_t *ttl)
{
	const char *nl = memchr(text, '\n', len);
	json_t *o = json_loadb(text, nl ? (size_t)(nl - text) : len, 0, NULL);
	json_t *res = json_object_get(o, "result");
	int64_t got;
	int rc = TFS_EPROTO;

	if (json_is_object(res) && get_int64(res, "ID", &got) == 0 &&
	    get_int64(res, "TTL", ttl) == 0 && got == id)
		rc = *ttl > 0 ? 0 : -ENOENT;
	else if (json_is_object(json_object_get(o, "error")))
		tfs_err("etcd lease keepalive: %.200s", text);
	json_decref(o);
	return rc;
}

int tfs_etcd_lease_keepalive(struct tfs_etcd *e, int64_t id, int64_t *ttl)
{
	struct tfs_buf resp = TFS_BUF_INIT;
	json_t *req = json_object();
	char *body;
	int rc;

	*ttl = 0;
	json_object_set_new(req, "ID", j_int64(id));
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	/* One keepalive per POST (etcd #8237): the stream then ends. */
	rc = etcd_post(e, "/v3/lease/keepalive", body, false, &resp);
	free(body);
	if (rc == 0)
		rc = keepalive_answer(resp.data ? resp.data : "", resp.len, id,
				      ttl);
	tfs_buf_release(&resp);
	return rc;
}

int tfs_etcd_lease_revoke(struct tfs_etcd *e, int64_t id)
{
	json_t *req = json_object(), *ans;
	int rc;

	json_object_set_new(req, "ID", j_int64(id));
	rc = etcd_call_json(e, "/v3/lease/revoke", req, false, &ans);
	if (rc)
		return rc;
	if (!json_is_object(json_object_get(ans, "header")))
		rc = TFS_EPROTO;
	json_decref(ans);
	return rc;
}

/* --- watches -------------------------------------------------------------- */

/* One line of a watch stream, parsed on the HTTP thread. */
struct watch_msg {
	struct tfs_list link;
	enum { WM_CREATED, WM_EVENTS, WM_PROGRESS, WM_COMPACTED,
	       WM_CANCELED } kind;
	int64_t revision;		/* header.revision (0 if left out) */
	struct tfs_etcd_event *ev;
	size_t n, bytes;
};

struct tfs_etcd_watch {
	struct tfs_etcd *e;
	json_t *key, *range_end;	/* base64 strings */
	tfs_etcd_watch_fn fn;
	void *arg;
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC */
	bool stopping;			/* (lock) */
	bool stream_done;		/* (lock) the request completed */
	int stream_rc;			/* (lock) its code */
	bool broken;			/* (lock) events may be lost */
	struct tfs_list msgs;		/* (lock) parsed, undelivered */
	size_t queued;			/* (lock) their bytes */

	struct tfs_http_req req;	/* the stream: one at a time */
	struct tfs_buf line;		/* HTTP thread: a partial line */

	/* watch thread only */
	int64_t next_rev;		/* 0: from now */
	bool need_resync;
	char *url, *body;
	bool started;			/* the thread runs */
};

static void events_free(struct tfs_etcd_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kv_release(&ev[i].kv);
	free(ev);
}

static void watch_msg_free(struct watch_msg *m)
{
	events_free(m->ev, m->n);
	free(m);
}

static int parse_event(json_t *o, struct tfs_etcd_event *ev)
{
	json_t *type = json_object_get(o, "type");

	memset(ev, 0, sizeof(*ev));
	if (!json_is_object(o))
		return TFS_EPROTO;
	if (type && (!json_is_string(type) ||
		     (strcmp(json_string_value(type), "PUT") != 0 &&
		      strcmp(json_string_value(type), "DELETE") != 0)))
		return TFS_EPROTO;
	ev->deleted = type && strcmp(json_string_value(type), "DELETE") == 0;
	return parse_kv(json_object_get(o, "kv"), &ev->kv);
}

static int parse_events(json_t *arr, struct watch_msg *m)
{
	size_t n = json_array_size(arr);

	m->kind = WM_EVENTS;
	if (!json_is_array(arr) || n == 0)
		return TFS_EPROTO;
	m->ev = tfs_calloc(n, sizeof(*m->ev));
	for (size_t i = 0; i < n; i++) {
		int rc = parse_event(json_array_get(arr, i), &m->ev[i]);
		if (rc)
			return rc;
		m->n = i + 1;
		m->bytes += sizeof(*m->ev) + strlen(m->ev[i].kv.key) +
			    m->ev[i].kv.value_len;
	}
	return 0;
}

/* Parses one line of the stream; NULL if it is malformed. */
static struct watch_msg *parse_watch_line(const char *p, size_t n)
{
	json_t *o = json_loadb(p, n, 0, NULL);
	json_t *res = json_object_get(o, "result"), *evs, *h;
	struct watch_msg *m = tfs_calloc(1, sizeof(*m));
	bool created, canceled;
	int64_t compact;
	int rc = TFS_EPROTO;

	m->bytes = sizeof(*m);
	if (!json_is_object(res)) {
		if (json_is_object(json_object_get(o, "error"))) {
			tfs_warn("etcd watch: %.*s", (int)TFS_MIN(n, 300), p);
			m->kind = WM_CANCELED;
			rc = 0;
		}
		goto out;
	}
	h = json_object_get(res, "header");
	evs = json_object_get(res, "events");
	if (!json_is_object(h) || get_int64(h, "revision", &m->revision) ||
	    get_bool(res, "created", &created) ||
	    get_bool(res, "canceled", &canceled) ||
	    get_int64(res, "compact_revision", &compact))
		goto out;
	rc = 0;
	if (canceled && compact)
		m->kind = WM_COMPACTED;
	else if (canceled)
		m->kind = WM_CANCELED;
	else if (created)
		m->kind = WM_CREATED;
	else if (json_array_size(evs) || (evs && !json_is_array(evs)))
		rc = parse_events(evs, m);
	else
		m->kind = WM_PROGRESS;
	if (canceled && !compact)
		tfs_warn("etcd watch cancelled: %.*s", (int)TFS_MIN(n, 300), p);
out:
	json_decref(o);
	if (rc) {
		watch_msg_free(m);
		return NULL;
	}
	return m;
}

/* HTTP thread: cuts the stream into lines and queues what they say.  A
 * bad line or a full queue ends the stream: events may be lost. */
static int watch_on_data(struct tfs_http_req *r, const void *p, size_t n)
{
	struct tfs_etcd_watch *w = r->priv;
	char *nl;

	tfs_buf_add(&w->line, p, n);
	while ((nl = memchr(w->line.data, '\n', w->line.len))) {
		size_t len = (size_t)(nl - w->line.data);
		struct watch_msg *m = NULL;
		bool full;

		if (len)
			m = parse_watch_line(w->line.data, len);
		if (len && !m)
			tfs_err("etcd watch: a malformed line: %.*s",
				(int)TFS_MIN(len, 300), w->line.data);
		tfs_buf_consume(&w->line, len + 1);
		if (!len)
			continue;
		pthread_mutex_lock(&w->lock);
		if (m) {
			tfs_list_add_tail(&w->msgs, &m->link);
			w->queued += m->bytes;
			pthread_cond_signal(&w->cond);
		}
		full = w->queued > WATCH_QUEUE_MAX;
		if (!m || full)
			w->broken = true;
		pthread_mutex_unlock(&w->lock);
		if (full)
			tfs_err("etcd watch: over %zu bytes of events wait for "
				"delivery", WATCH_QUEUE_MAX);
		if (!m || full)
			return -1;
	}
	if (w->line.len > WATCH_QUEUE_MAX) {
		tfs_err("etcd watch: a line over %zu bytes", WATCH_QUEUE_MAX);
		pthread_mutex_lock(&w->lock);
		w->broken = true;
		pthread_mutex_unlock(&w->lock);
		return -1;
	}
	return 0;
}

static void watch_done(struct tfs_http_req *r, int rc)
{
	struct tfs_etcd_watch *w = r->priv;

	pthread_mutex_lock(&w->lock);
	w->stream_done = true;
	w->stream_rc = rc;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Calls fn unless the watch is stopping. */
static void deliver(struct tfs_etcd_watch *w, const struct tfs_etcd_event *ev,
		    size_t n, int64_t rev, bool resync)
{
	pthread_mutex_lock(&w->lock);
	bool stopping = w->stopping;
	pthread_mutex_unlock(&w->lock);
	if (!stopping)
		w->fn(w->arg, ev, n, rev, resync);
}

/* Submits a stream to endpoint k from w->next_rev (or from now). */
static void stream_submit(struct tfs_etcd_watch *w, size_t k)
{
	json_t *cr = json_object(), *o = json_object();

	json_object_set(cr, "key", w->key);
	json_object_set(cr, "range_end", w->range_end);
	if (w->next_rev)
		json_object_set_new(cr, "start_revision", j_int64(w->next_rev));
	json_object_set_new(o, "create_request", cr);
	free(w->body);
	free(w->url);
	w->body = json_dumps(o, JSON_COMPACT);
	w->url = tfs_asprintf("%s/v3/watch", w->e->eps[k]);
	json_decref(o);

	tfs_buf_reset(&w->line);
	tfs_http_req_release(&w->req);
	memset(&w->req, 0, sizeof(w->req));
	w->req.method = "POST";
	w->req.url = w->url;
	w->req.body = w->body;
	w->req.body_len = strlen(w->body);
	w->req.timeout_ms = WATCH_STREAM_MS;
	w->req.connect_timeout_ms = w->e->timeout_ms;
	w->req.on_data = watch_on_data;
	w->req.done = watch_done;
	w->req.priv = w;
	pthread_mutex_lock(&w->lock);
	w->stream_done = false;
	w->broken = false;
	pthread_mutex_unlock(&w->lock);
	tfs_httpc_submit(w->e->http, &w->req);
}

/*
 * Acts on one message of the stream; false when the stream must end.
 * *created tells whether the stream got its "created" answer.
 */
static bool handle_msg(struct tfs_etcd_watch *w, struct watch_msg *m,
		       bool *created)
{
	switch (m->kind) {
	case WM_CREATED:
		*created = true;
		if (w->next_rev == 0)
			w->next_rev = m->revision + 1;
		if (w->need_resync) {
			w->need_resync = false;
			deliver(w, NULL, 0, m->revision, true);
		}
		return true;
	case WM_EVENTS:
		deliver(w, m->ev, m->n, m->revision, false);
		w->next_rev = m->ev[m->n - 1].kv.mod_rev + 1;
		return true;
	case WM_PROGRESS:
		return true;	/* not a promise on 3.4.23: see the top */
	case WM_COMPACTED:
		tfs_warn("etcd watch: revision %" PRId64 " was compacted",
			 w->next_rev);
		w->need_resync = true;
		w->next_rev = 0;
		return false;
	default:
		return false;
	}
}

/*
 * Runs one stream to endpoint k until it ends (or the watch stops),
 * delivering what it brings.  Returns whether it was created.
 */
static bool run_stream(struct tfs_etcd_watch *w, size_t k)
{
	struct tfs_list got;
	bool created = false, ended = false, cancelled = false, done;
	bool stopping;

	stream_submit(w, k);
	for (;;) {
		tfs_list_init(&got);
		pthread_mutex_lock(&w->lock);
		while (tfs_list_empty(&w->msgs) && !w->stream_done &&
		       !(w->stopping && !cancelled))
			pthread_cond_wait(&w->cond, &w->lock);
		tfs_list_splice_tail(&got, &w->msgs);
		w->queued = 0;
		done = w->stream_done;
		stopping = w->stopping;
		pthread_mutex_unlock(&w->lock);

		while (!tfs_list_empty(&got)) {
			struct watch_msg *m = tfs_container_of(
				got.next, struct watch_msg, link);
			tfs_list_del(&m->link);
			if (!ended && !stopping && !handle_msg(w, m, &created))
				ended = true;
			watch_msg_free(m);
		}
		if (done)
			break;
		if ((ended || stopping) && !cancelled) {
			tfs_httpc_cancel(w->e->http, &w->req);
			cancelled = true;
		}
	}
	pthread_mutex_lock(&w->lock);
	if (w->broken && !w->stopping) {
		w->need_resync = true;
		w->next_rev = 0;
	}
	if (!cancelled && !w->stopping)
		tfs_debug("etcd watch %s: stream ended: %s", w->url,
			  tfs_strerror(w->stream_rc));
	pthread_mutex_unlock(&w->lock);
	return created;
}

/* Sleeps ms unless the watch stops first; returns whether it stops. */
static bool watch_sleep(struct tfs_etcd_watch *w, int64_t ms)
{
	struct timespec ts;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->stopping &&
	       pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
		;
	stopping = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return stopping;
}

static void *watch_main(void *arg)
{
	struct tfs_etcd_watch *w = arg;
	size_t k = atomic_load(&w->e->good);
	int64_t backoff = BACKOFF_MIN_MS;

	pthread_setname_np(pthread_self(), "etcd-watch");
	for (;;) {
		if (run_stream(w, k)) {
			/* It worked: come back soon, to the same member. */
			atomic_store(&w->e->good, k);
			backoff = BACKOFF_MIN_MS;
		} else {
			k = (k + 1) % w->e->neps;
		}
		if (watch_sleep(w, backoff))
			break;
		backoff = TFS_MIN(backoff * 2, BACKOFF_MAX_MS);
	}
	return NULL;
}

int tfs_etcd_watch_start(struct tfs_etcd *e, const char *prefix,
			 int64_t start_rev, tfs_etcd_watch_fn fn, void *arg,
			 struct tfs_etcd_watch **out)
{
	struct tfs_etcd_watch *w;
	pthread_condattr_t ca;
	json_t *r;
	int rc;

	if (!e || !prefix || !fn || start_rev < 0)
		return -EINVAL;
	w = tfs_calloc(1, sizeof(*w));
	w->e = e;
	w->fn = fn;
	w->arg = arg;
	w->next_rev = start_rev;
	r = json_object();
	set_range(r, prefix, true);
	w->key = json_incref(json_object_get(r, "key"));
	w->range_end = json_incref(json_object_get(r, "range_end"));
	json_decref(r);
	tfs_list_init(&w->msgs);
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = -pthread_create(&w->thread, NULL, watch_main, w);
	if (rc) {
		tfs_err("etcd: cannot start a watch thread: %s",
			strerror(-rc));
		tfs_etcd_watch_stop(w);
		return rc;
	}
	w->started = true;
	*out = w;
	return 0;
}

void tfs_etcd_watch_stop(struct tfs_etcd_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	while (!tfs_list_empty(&w->msgs)) {
		struct watch_msg *m =
			tfs_container_of(w->msgs.next, struct watch_msg, link);
		tfs_list_del(&m->link);
		watch_msg_free(m);
	}
	tfs_http_req_release(&w->req);
	tfs_buf_release(&w->line);
	json_decref(w->key);
	json_decref(w->range_end);
	free(w->url);
	free(w->body);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}
