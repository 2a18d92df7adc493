/*
 * repair.c - damaged batches mended from a healthy replica (repair.h).
 *
 * The serving side reads with the partition's checked batch reads, which
 * stop before a damaged batch and never hand out bytes that fail their
 * CRC: a replica can only give what passed its own checks.  The mending
 * side trusts nothing it receives: each entry is decoded with its own CRC,
 * and tfs_partition_repair checks the bytes against it and the entry
 * against the local log before anything is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "partition.h"
#include "repair.h"
#include "segment.h"
#include "util.h"
#include "workers.h"
#include "banned.h"

#define SERVE_MAX (8u << 20)	/* bytes of batches in one answer */
#define ASK_MAX (1u << 20)	/* asked for when the damage has no length */
#define RANGES_PER_TICK 16	/* damaged ranges looked at per tick */
#define ASK_TIMEOUT_MS 5000

struct tfs_repair {
	struct tfs_store *store;
	struct tfs_cluster *cluster;
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	uint32_t me;
	struct tfs_ticker *ticker;
	atomic_ullong served, repaired, failed;
	atomic_llong warned;		/* mono ms of the last failure logged */
};

/* --- serving ------------------------------------------------------------------ */

static void batches_handler(struct tfs_httpd_req *req, void *arg)
{
	struct tfs_repair *rp = arg;
	uint64_t topic, part, offset, max = SERVE_MAX;
	struct tfs_index_entry *e = NULL;
	struct tfs_readv rv = { 0 };
	struct tfs_partition *p = NULL;
	struct tfs_topic *t;
	struct tfs_buf body = TFS_BUF_INIT;
	size_t n = 0;
	char num[24];
	int rc;

	if (!tfs_httpd_query_u64(req, "topic", 10, &topic) ||
	    !tfs_httpd_query_u64(req, "partition", 10, &part) ||
	    !tfs_httpd_query_u64(req, "offset", 10, &offset) ||
	    topic > UINT32_MAX || part > UINT32_MAX) {
		tfs_httpd_reply_text(req, 400, "topic, partition and offset "
					       "are required");
		return;
	}
	tfs_httpd_query_u64(req, "max", 10, &max);
	max = TFS_MAX(TFS_MIN(max, SERVE_MAX), 1);
	t = tfs_store_topic_by_id(rp->store, (uint32_t)topic);
	if (t)
		p = tfs_topic_partition(t, (uint32_t)part);
	tfs_topic_unref(t);
	if (!p) {
		tfs_httpd_reply_text(req, 404, "no such partition here");
		return;
	}
	/* Committed batches only: below the watermark the replicas agree. */
	rc = tfs_partition_read_batches(p, offset, max, true, &e, &n, &rv);
	if (rc == 0 && n == 0)
		rc = TFS_ECORRUPT;	/* stopped at once: damaged here */
	if (rc == 0 && e[0].offset != offset)
		rc = TFS_ENOTBOUNDARY;
	if (rc == 0) {
		unsigned char enc[TFS_INDEX_ENTRY_SIZE];

		for (size_t i = 0; i < n; i++) {
			tfs_index_encode(&e[i], enc);
			tfs_buf_add(&body, enc, sizeof(enc));
		}
		size_t at = body.len;
		tfs_buf_grow(&body, rv.len);
		if (tfs_readv_copy(&rv, 0, body.data + at, rv.len) !=
		    (ssize_t)rv.len)
			rc = -EIO;	/* retention or truncation meanwhile */
		body.len = at + rv.len;
	}
	if (rc == 0) {
		snprintf(num, sizeof(num), "%zu", n);
		tfs_httpd_add_header(req, "X-Topicfs-Batches", num);
		tfs_httpd_reply(req, 200, "application/octet-stream",
				body.data, body.len);
		atomic_fetch_add(&rp->served, n);
	} else {
		tfs_httpd_reply_text(req, rc == TFS_ECORRUPT ? 422
					  : rc == TFS_ENOTBOUNDARY ||
						    rc == TFS_EBELOWSTART
						  ? 416
						  : 503,
				     "%s", tfs_strerror(rc));
	}
	tfs_buf_release(&body);
	tfs_readv_release(&rv);
	free(e);
	tfs_partition_unref(p);
}

/* --- mending ------------------------------------------------------------------ */

/*
 * Asks node for good copies of the batches of damaged range d and repairs
 * them.  Returns the batches repaired, or <= 0 when the node had no good
 * copy or could not be asked.
 */
static int mend_from(struct tfs_repair *rp, struct tfs_partition *p,
		     uint32_t topic, uint32_t part, uint32_t node,
		     const struct tfs_damage *d)
{
	char base[300], target[200], url[520], num[24];
	struct tfs_auth_headers ah;
	struct tfs_http_req hr = { 0 };
	const char *headers[5];
	uint64_t want = d->length ? d->length : ASK_MAX;
	int done = 0, rc;

	if (tfs_cluster_node_address(rp->cluster, node, base, sizeof(base)))
		return -ENOENT;
	snprintf(target, sizeof(target),
		 "/v1/batches?topic=%" PRIu32 "&partition=%" PRIu32
		 "&offset=%" PRIu64 "&max=%" PRIu64,
		 topic, part, d->offset, want);
	snprintf(url, sizeof(url), "%s%s", base, target);
	tfs_auth_sign(rp->auth, "GET", target, NULL, 0, tfs_now_ms(), &ah);
	for (int i = 0; i < 4; i++)
		headers[i] = ah.lines[i];
	headers[4] = NULL;
	hr.method = "GET";
	hr.url = url;
	hr.headers = headers;
	hr.timeout_ms = ASK_TIMEOUT_MS;
	hr.resp_max = SERVE_MAX + (SERVE_MAX / 8) + 4096;
	rc = tfs_httpc_do(rp->httpc, &hr);
	if (rc == 0 && hr.status != 200)
		rc = hr.status == 422 || hr.status == 416 ? 0 : -EAGAIN;
	else if (rc == 0 &&
		 tfs_http_resp_header(&hr, "X-Topicfs-Batches", num,
				      sizeof(num)) < 0)
		rc = TFS_EPROTO;
	if (rc || hr.status != 200) {
		tfs_http_req_release(&hr);
		return rc;
	}
	/* Entries, then their bytes back to back: check the shape first. */
	char *end;
	unsigned long long n = strtoull(num, &end, 10);
	size_t head = (size_t)n * TFS_INDEX_ENTRY_SIZE;
	const unsigned char *in = (const unsigned char *)hr.resp.data;
	const char *bytes = hr.resp.data + head;
	uint64_t total = 0;
	struct tfs_index_entry *e = NULL;

	if (*end || n == 0 || n > SERVE_MAX || hr.resp.len < head)
		rc = TFS_EPROTO;
	if (rc == 0) {
		e = tfs_calloc((size_t)n, sizeof(*e));
		for (size_t i = 0; rc == 0 && i < n; i++) {
			rc = tfs_index_decode(in + i * TFS_INDEX_ENTRY_SIZE,
					      &e[i]);
			total += e[i].length;
			if (rc == 0 && i > 0 &&
			    e[i].offset != e[i - 1].offset + e[i - 1].length)
				rc = TFS_EPROTO;
		}
		if (rc == 0 &&
		    (e[0].offset != d->offset || hr.resp.len - head != total))
			rc = TFS_EPROTO;
	}
	/* One batch after the other: each repair narrows the damage to the
	 * next (a damaged entry may stand for several batches). */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (d->length && e[i].offset >= d->offset + d->length)
			break;
		rc = tfs_partition_repair(p, &e[i], bytes);
		bytes += e[i].length;
		if (rc == 0)
			done++;
	}
	if (rc == -ENOENT && done)
		rc = 0;		/* past the damaged range */
	if (rc && tfs_log_due(&rp->warned, 60000))
		tfs_warn("%s: repair of the batch at %" PRIu64 " from node "
			 "%" PRIu32 " failed: %s (tried again each second; "
			 "repeats for 60 s are counted in repairs_without_copy, "
			 "not logged)",
			 tfs_partition_name(p), d->offset, node,
			 tfs_strerror(rc));
	free(e);
	tfs_http_req_release(&hr);
	return done;
}

/* Repairs what it can of p's damage.  Returns the ranges looked at. */
static int mend(struct tfs_repair *rp, struct tfs_topic *t, uint32_t part,
		struct tfs_partition *p, int budget)
{
	struct tfs_damage *d = NULL;
	size_t n = tfs_partition_damage(p, &d);
	uint32_t topic = tfs_topic_id(t), src[TFS_MAX_RF + 1], nsrc = 0;
	struct tfs_part_view v;
	struct tfs_bounds b;
	int looked = 0;

	if (!n || tfs_cluster_view(rp->cluster, topic, part, &v)) {
		free(d);
		return 0;
	}
	/* The leader first, then the other in-sync replicas. */
	if (v.leader && v.leader != rp->me)
		src[nsrc++] = v.leader;
	for (uint32_t i = 0; i < v.isr.n; i++)
		if (v.isr.id[i] != rp->me && v.isr.id[i] != v.leader)
			src[nsrc++] = v.isr.id[i];
	tfs_partition_bounds(p, &b);
	for (size_t i = 0; i < n && looked < budget; i++) {
		int got = 0;

		if (d[i].zst || d[i].kind == TFS_DAMAGE_FRAME ||
		    d[i].offset + d[i].length > b.hw)
			continue;	/* see repair.h */
		looked++;
		for (uint32_t k = 0; k < nsrc && got <= 0; k++)
			got = mend_from(rp, p, topic, part, src[k], &d[i]);
		if (got > 0) {
			atomic_fetch_add(&rp->repaired, (uint64_t)got);
			tfs_info("%s: repaired %d damaged batch(es) at %" PRIu64
				 " with a copy from another replica",
				 tfs_partition_name(p), got, d[i].offset);
		} else {
			atomic_fetch_add(&rp->failed, 1);
		}
	}
	free(d);
	return looked;
}

static void repair_tick(void *arg)
{
	struct tfs_repair *rp = arg;
	size_t nt;
	struct tfs_topic **topics = tfs_store_topics(rp->store, &nt);
	int budget = RANGES_PER_TICK;

	for (size_t i = 0; i < nt && budget > 0; i++) {
		uint32_t np = tfs_topic_partitions(topics[i]);

		for (uint32_t j = 0; j < np && budget > 0; j++) {
			struct tfs_partition *p =
				tfs_topic_partition(topics[i], j);

			if (!p)
				break;
			budget -= mend(rp, topics[i], j, p, budget);
			tfs_partition_unref(p);
		}
	}
	tfs_store_topics_free(topics, nt);
}

/* --- life --------------------------------------------------------------------- */

int tfs_repair_start(const struct tfs_repair_config *cfg,
		     struct tfs_repair **out)
{
	struct tfs_repair *rp = tfs_calloc(1, sizeof(*rp));
	int rc;

	rp->store = cfg->store;
	rp->cluster = cfg->cluster;
	rp->httpc = cfg->httpc;
	rp->auth = cfg->auth;
	rp->me = tfs_cluster_node_id(cfg->cluster);
	tfs_httpd_route(cfg->httpd, "GET", "/v1/batches", batches_handler, rp);
	rc = tfs_ticker_start("tfs-repair", cfg->period_ms, repair_tick, rp,
			      &rp->ticker);
	if (rc) {
		free(rp);
		return rc;
	}
	*out = rp;
	return 0;
}

void tfs_repair_stop(struct tfs_repair *rp)
{
	if (!rp)
		return;
	tfs_ticker_stop(rp->ticker);
	free(rp);
}

void tfs_repair_stats(struct tfs_repair *rp, struct tfs_repair_stats *st)
{
	st->served = atomic_load(&rp->served);
	st->repaired = atomic_load(&rp->repaired);
	st->failed = atomic_load(&rp->failed);
}
