/*
 * remote.c - reads for nodes without a replica (remote.h): the client,
 * which finds the leader in the cluster's view and retries through
 * leadership changes, and the leader's GET /v1/read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "partition.h"
#include "remote.h"
#include "util.h"
#include "banned.h"

#define RETRY_MS 100
#define MAX_READ (4u << 20)		/* bytes one answer carries, at most */
#define MAX_WAIT_MS 30000

struct tfs_remote {
	struct tfs_store *store;
	struct tfs_cluster *cluster;
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	struct tfs_timers *timers;
	int64_t timeout_ms;
};

/* --- the client ---------------------------------------------------------- */

static void attempt(struct tfs_remote_read *r);

static void finish(struct tfs_remote_read *r, int status)
{
	for (int i = 0; r->headers[i]; i++) {
		free(r->headers[i]);
		r->headers[i] = NULL;
	}
	tfs_http_req_release(&r->http);
	r->done(r, status);
}

static void retry_fired(struct tfs_timer *t)
{
	attempt(tfs_container_of(t, struct tfs_remote_read, retry));
}

static void retry(struct tfs_remote_read *r)
{
	if (tfs_mono_ms() + RETRY_MS >= r->deadline) {
		finish(r, -EIO);
		return;
	}
	r->retry.fn = retry_fired;
	tfs_timer_arm(r->rm->timers, &r->retry, tfs_mono_ms() + RETRY_MS);
}

static uint64_t header_u64(const struct tfs_http_req *h, const char *name)
{
	char buf[32];

	return tfs_http_resp_header(h, name, buf, sizeof(buf)) > 0
		       ? strtoull(buf, NULL, 10)
		       : 0;
}

static void read_done(struct tfs_http_req *h, int rc)
{
	struct tfs_remote_read *r =
		tfs_container_of(h, struct tfs_remote_read, http);

	if (rc == -ECANCELED) {
		finish(r, -ECANCELED);
		return;
	}
	if (rc || h->status == 409 || h->status >= 500) {
		tfs_cluster_kick(r->rm->cluster);
		tfs_http_req_release(h);
		retry(r);
		return;
	}
	r->start = header_u64(h, "X-Topicfs-Start");
	r->start_record = header_u64(h, "X-Topicfs-Start-Record");
	r->hw = header_u64(h, "X-Topicfs-Hw");
	r->hw_record = header_u64(h, "X-Topicfs-Records");
	r->found = header_u64(h, "X-Topicfs-Offset");
	if (h->status == 200) {
		tfs_buf_reset(&r->data);
		tfs_buf_add(&r->data, h->resp.data ? h->resp.data : "",
			    h->resp.len);
		finish(r, 0);
	} else if (h->status == 416) {
		finish(r, TFS_EBELOWSTART);
	} else if (h->status == 404) {
		finish(r, -ENXIO);
	} else {
		finish(r, -EIO);
	}
}

static void attempt(struct tfs_remote_read *r)
{
	struct tfs_remote *rm = r->rm;
	struct tfs_part_view v;
	struct tfs_auth_headers ah;
	char base[300], target[200], extra[48] = "";

	if (tfs_cluster_view(rm->cluster, r->topic, r->part, &v)) {
		finish(r, -ENOENT);
		return;
	}
	if (!v.leader || tfs_cluster_node_address(rm->cluster, v.leader, base,
						  sizeof(base))) {
		retry(r);
		return;
	}
	if (r->lookup != TFS_LOOKUP_NONE)
		snprintf(extra, sizeof(extra), "&%s=%" PRIu64,
			 r->lookup == TFS_LOOKUP_RECORD ? "record" : "time",
			 r->key);
	snprintf(target, sizeof(target),
		 "/v1/read?topic=%" PRIu32 "&partition=%" PRIu32
		 "&offset=%" PRIu64 "&max=%zu&wait_ms=%" PRId64 "%s",
		 r->topic, r->part, r->offset, TFS_MIN(r->max, (size_t)MAX_READ),
		 TFS_MIN(r->wait_ms, (int64_t)MAX_WAIT_MS), extra);
	snprintf(r->url, sizeof(r->url), "%s%s", base, target);
	tfs_auth_sign(rm->auth, "GET", target, NULL, 0, tfs_now_ms(), &ah);
	for (int i = 0; i < 4; i++) {
		free(r->headers[i]);
		r->headers[i] = tfs_strdup(ah.lines[i]);
	}
	r->headers[4] = NULL;
	memset(&r->http, 0, sizeof(r->http));
	r->http.method = "GET";
	r->http.url = r->url;
	r->http.headers = (const char *const *)r->headers;
	r->http.timeout_ms = TFS_MAX(r->deadline - tfs_mono_ms(), 100) +
			     TFS_MIN(r->wait_ms, (int64_t)MAX_WAIT_MS);
	r->http.done = read_done;
	tfs_httpc_submit(rm->httpc, &r->http);
}

void tfs_remote_read(struct tfs_remote *rm, struct tfs_remote_read *r)
{
	r->rm = rm;
	r->deadline = tfs_mono_ms() + rm->timeout_ms;
	memset(r->headers, 0, sizeof(r->headers));
	memset(&r->retry, 0, sizeof(r->retry));
	attempt(r);
}

void tfs_remote_cancel(struct tfs_remote *rm, struct tfs_remote_read *r)
{
	if (tfs_timer_disarm(rm->timers, &r->retry))
		finish(r, -ECANCELED);
	else
		tfs_httpc_cancel(rm->httpc, &r->http);
}

/* --- the leader's side ----------------------------------------------------- */

struct parked_read {
	struct tfs_wait w;
	struct tfs_httpd_req *req;
	struct tfs_partition *p;
	uint64_t offset, max;
};

static void add_bounds(struct tfs_httpd_req *req, const struct tfs_bounds *b)
{
	char v[32];

	snprintf(v, sizeof(v), "%" PRIu64, b->start);
	tfs_httpd_add_header(req, "X-Topicfs-Start", v);
	snprintf(v, sizeof(v), "%" PRIu64, b->start_record);
	tfs_httpd_add_header(req, "X-Topicfs-Start-Record", v);
	snprintf(v, sizeof(v), "%" PRIu64, b->hw);
	tfs_httpd_add_header(req, "X-Topicfs-Hw", v);
	snprintf(v, sizeof(v), "%" PRIu64, b->hw_record);
	tfs_httpd_add_header(req, "X-Topicfs-Records", v);
}

/* Answers with committed bytes at offset (possibly none). */
static void serve(struct tfs_httpd_req *req, struct tfs_partition *p,
		  uint64_t offset, uint64_t max)
{
	struct tfs_bounds b;
	struct tfs_readv rv;
	int rc;

	tfs_partition_bounds(p, &b);
	add_bounds(req, &b);
	if (offset < b.start) {
		tfs_httpd_reply_text(req, 416, "below the start");
		return;
	}
	if (max == 0 || offset >= b.hw) {
		tfs_httpd_reply(req, 200, "application/octet-stream", "", 0);
		return;
	}
	rc = tfs_partition_read(p, offset, (size_t)TFS_MIN(max, MAX_READ), &rv);
	if (rc) {
		/* Damage here is not worth retrying: EIO at once (the
		 * repair ticker mends it from another replica). */
		tfs_httpd_reply_text(req, rc == TFS_EBELOWSTART ? 416
					  : rc == TFS_ECORRUPT  ? 422
								: 500,
				     "%s", tfs_strerror(rc));
		return;
	}
	char *buf = tfs_malloc(rv.len ? rv.len : 1);
	ssize_t n = tfs_readv_copy(&rv, 0, buf, rv.len);
	tfs_readv_release(&rv);
	if (n < 0)
		tfs_httpd_reply_text(req, 500, "%s", tfs_strerror((int)n));
	else
		tfs_httpd_reply(req, 200, "application/octet-stream", buf,
				(size_t)n);
	free(buf);
}

static void parked_done(struct tfs_wait *w, int status)
{
	struct parked_read *pr = tfs_container_of(w, struct parked_read, w);

	serve(pr->req, pr->p, pr->offset, pr->max);
	tfs_partition_unref(pr->p);
	free(pr);
}

static void read_handler(struct tfs_httpd_req *req, void *arg)
{
	struct tfs_remote *rm = arg;
	uint64_t topic, part, offset = 0, max = 0, wait = 0, key;
	struct tfs_part_view v;
	struct tfs_bounds b;

	if (!tfs_httpd_query_u64(req, "topic", 10, &topic) ||
	    !tfs_httpd_query_u64(req, "partition", 10, &part) || topic > UINT32_MAX ||
	    part > UINT32_MAX) {
		tfs_httpd_reply_text(req, 400, "topic and partition needed");
		return;
	}
	tfs_httpd_query_u64(req, "offset", 10, &offset);
	tfs_httpd_query_u64(req, "max", 10, &max);
	tfs_httpd_query_u64(req, "wait_ms", 10, &wait);
	if (tfs_cluster_view(rm->cluster, (uint32_t)topic, (uint32_t)part,
			     &v) ||
	    v.role != TFS_ROLE_LEADER) {
		tfs_httpd_reply_text(req, 409, "not the leader");
		return;
	}
	struct tfs_topic *t = tfs_store_topic_by_id(rm->store, (uint32_t)topic);
	struct tfs_partition *p = t ? tfs_topic_partition(t, (uint32_t)part)
				    : NULL;
	tfs_topic_unref(t);
	if (!p) {
		tfs_httpd_reply_text(req, 409, "no such partition here");
		return;
	}
	if (tfs_httpd_query_u64(req, "record", 10, &key) || tfs_httpd_query_u64(req, "time", 10, &key)) {
		bool rec = tfs_httpd_query(req, "record") != NULL;
		uint64_t off = 0;
		int rc = rec ? tfs_partition_offset_of_record(p, key, &off)
			     : tfs_partition_offset_of_time(
				       p, (int64_t)TFS_MIN(key, INT64_MAX),
				       &off);
		char buf[32];

		tfs_partition_bounds(p, &b);
		add_bounds(req, &b);
		snprintf(buf, sizeof(buf), "%" PRIu64, off);
		tfs_httpd_add_header(req, "X-Topicfs-Offset", buf);
		tfs_httpd_reply_text(req, rc == 0 ? 200 : rc == -ENXIO ? 404
							   : 416,
				     "%s", tfs_strerror(rc));
		tfs_partition_unref(p);
		return;
	}
	tfs_partition_bounds(p, &b);
	/* max 0 with wait_ms: a poll waiting for the end to pass offset. */
	if (wait && offset >= b.hw && offset >= b.start) {
		struct parked_read *pr = tfs_calloc(1, sizeof(*pr));

		pr->req = req;
		pr->p = p;
		pr->offset = offset;
		pr->max = max;
		pr->w.offset = offset;
		pr->w.deadline = tfs_mono_ms() +
				 (int64_t)TFS_MIN(wait, MAX_WAIT_MS);
		pr->w.done = parked_done;
		tfs_wait_start(p, &pr->w);
		return;
	}
	serve(req, p, offset, max);
	tfs_partition_unref(p);
}

/* --- life ------------------------------------------------------------------ */

int tfs_remote_new(const struct tfs_remote_config *cfg,
		   struct tfs_remote **out)
{
	struct tfs_remote *rm = tfs_calloc(1, sizeof(*rm));

	rm->store = cfg->store;
	rm->cluster = cfg->cluster;
	rm->httpc = cfg->httpc;
	rm->auth = cfg->auth;
	rm->timers = cfg->timers;
	rm->timeout_ms = tfs_conf_get(cfg->conf, TFS_CONF_REQUEST_TIMEOUT_MS);
	tfs_httpd_route(cfg->httpd, "GET", "/v1/read", read_handler, rm);
	*out = rm;
	return 0;
}

void tfs_remote_free(struct tfs_remote *rm)
{
	free(rm);
}
