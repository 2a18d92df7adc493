/*
 * status.c - renders MNT/.topicfs/status (JSON) and MNT/.topicfs/metrics
 * (Prometheus text exposition format 0.0.4) from the store.
 *
 * Both files are built the same way: take a snapshot (every topic,
 * referenced, sorted by name; for each partition one tfs_partition_info,
 * taken under that partition's lock so its offsets agree with each other),
 * render it, drop the references.  Nothing is cached: a read of either
 * file shows the store as it is now.  This module and store.c are the only
 * users of jansson.  docs/STATUS.md is the user's reference for every
 * field; keep it in step with this file.
 *
 * METRICS (all samples of a family are grouped under one # HELP and one
 * # TYPE line):
 *
 *   node
 *     topicfs_info{version,node}                       gauge, always 1
 *     topicfs_uptime_seconds                           gauge
 *     topicfs_open_handles                             gauge
 *     topicfs_parked_reads                             gauge
 *     topicfs_topics                                   gauge
 *     topicfs_frame_cache_hits_total                   counter
 *     topicfs_frame_cache_misses_total                 counter
 *     topicfs_frame_cache_bytes                        gauge
 *   per partition, labels {topic="...",partition="N"}
 *     topicfs_partition_start_bytes                    gauge
 *     topicfs_partition_end_bytes                      gauge (committed end)
 *     topicfs_partition_log_end_bytes                  gauge
 *     topicfs_partition_durable_bytes                  gauge
 *     topicfs_partition_records                        gauge (records ever
 *                                                      committed)
 *     topicfs_partition_start_record                   gauge
 *     topicfs_partition_disk_bytes                     gauge
 *     topicfs_partition_segments                       gauge
 *     topicfs_partition_compressed_segments            gauge
 *     topicfs_partition_logical_bytes                  gauge
 *     topicfs_partition_data_bytes                     gauge
 *     topicfs_partition_retention_deleted_bytes_total  counter
 *     topicfs_partition_retention_deleted_segments_total counter
 *     topicfs_partition_last_retention_timestamp_seconds gauge (0: never)
 *     topicfs_partition_compressions_total             counter
 *     topicfs_partition_appends_total                  counter
 *     topicfs_partition_append_bytes_total             counter
 *     topicfs_partition_append_records_total           counter
 *     topicfs_partition_fsyncs_total                   counter
 *     topicfs_partition_reads_total                    counter
 *     topicfs_partition_read_bytes_total               counter
 *     topicfs_partition_last_append_timestamp_seconds  gauge (0: none)
 *     topicfs_partition_failed                         gauge, 0 or 1
 *     topicfs_partition_corrupt_batches                gauge
 *     topicfs_partition_repaired_batches_total         counter
 *   per topic, label {topic="..."}, loaded and failed topics alike
 *     topicfs_topic_failed                             gauge, 0 or 1
 *
 * Counters count since the partition was opened (daemon start or topic
 * creation), as Prometheus expects of a counter that resets on restart.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compress.h"
#include "err.h"
#include "status.h"
#include "status_int.h"
#include "banned.h"

/* One partition in the snapshot. */
struct part_snap {
	const char *topic;		/* the topic's name, borrowed */
	uint32_t topic_id;
	uint32_t index;
	struct tfs_partition_info info;
};

/* One topic in the snapshot: its partitions are parts[first..first+n). */
struct topic_snap {
	struct tfs_topic *t;
	size_t first, n;
	bool explicit[TFS_CONF__COUNT];
};

struct snapshot {
	struct tfs_topic **topics;	/* referenced */
	size_t ntopics;
	struct topic_snap *ts;		/* ntopics of them */
	struct part_snap *parts;
	size_t nparts, cap;
	struct tfs_topic_failure *failed;	/* topics that did not load */
	size_t nfailed;
};

/* --- snapshot ------------------------------------------------------------- */

static void snap_add_part(struct snapshot *sn, struct tfs_topic *t,
			  uint32_t i, struct tfs_partition *p)
{
	if (sn->nparts == sn->cap) {
		sn->cap = sn->cap ? 2 * sn->cap : 16;
		sn->parts = tfs_realloc(sn->parts,
					sn->cap * sizeof(*sn->parts));
	}
	struct part_snap *ps = &sn->parts[sn->nparts++];

	ps->topic = tfs_topic_name(t);
	ps->topic_id = tfs_topic_id(t);
	ps->index = i;
	tfs_partition_info(p, &ps->info);
}

static void snap_topic(struct snapshot *sn, struct topic_snap *ts)
{
	struct tfs_topic *t = ts->t;
	uint32_t np = tfs_topic_partitions(t);

	tfs_topic_explicit(t, ts->explicit);
	ts->first = sn->nparts;
	for (uint32_t i = 0; i < np; i++) {
		struct tfs_partition *p = tfs_topic_partition(t, i);

		/* NULL: the topic was deleted meanwhile; show what we have. */
		if (!p)
			break;
		snap_add_part(sn, t, i, p);
		tfs_partition_unref(p);
	}
	ts->n = sn->nparts - ts->first;
}

static void snapshot_take(struct tfs_store *s, struct snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->topics = tfs_store_topics(s, &sn->ntopics);
	sn->ts = tfs_calloc(sn->ntopics ? sn->ntopics : 1, sizeof(*sn->ts));
	for (size_t i = 0; i < sn->ntopics; i++) {
		sn->ts[i].t = sn->topics[i];
		snap_topic(sn, &sn->ts[i]);
	}
	sn->nfailed = tfs_store_failed_topics(s, &sn->failed);
}

static void snapshot_release(struct snapshot *sn)
{
	tfs_store_topics_free(sn->topics, sn->ntopics);
	free(sn->ts);
	free(sn->parts);
	free(sn->failed);
}

/* --- JSON ----------------------------------------------------------------- */

void status_put_int(json_t *o, const char *key, uint64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* A string, or null when s is NULL or not valid UTF-8. */
static json_t *str_or_null(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;

	return j ? j : json_null();
}

static json_t *timestamp_or_null(int64_t ms)
{
	return ms ? json_integer((json_int_t)ms) : json_null();
}

/* ms since the Unix epoch as "2024-11-22T08:00:00.123Z". */
static json_t *iso8601(int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char buf[64];
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	return json_string(buf);
}

static json_t *node_json(const struct tfs_node_info *n)
{
	json_t *o = json_object();
	int64_t up = tfs_mono_ms() - n->started_mono_ms;

	json_object_set_new(o, "name", str_or_null(n->node));
	json_object_set_new(o, "version", str_or_null(n->version));
	status_put_int(o, "pid", (uint64_t)getpid());
	json_object_set_new(o, "mountpoint", str_or_null(n->mountpoint));
	json_object_set_new(o, "data_dir", str_or_null(n->data_dir));
	json_object_set_new(o, "uptime_seconds", json_real(up / 1000.0));
	status_put_int(o, "open_handles", n->open_handles);
	status_put_int(o, "parked_reads", n->parked_reads);
	json_object_set_new(o, "mode", json_string(n->cluster ? "cluster"
							     : "standalone"));
	if (n->cluster)
		status_put_int(o, "id", tfs_cluster_node_id(n->cluster));

	struct tfs_zcache_stats zs;
	json_t *fc = json_object();

	tfs_zcache_stats(&zs);
	status_put_int(fc, "hits", zs.hits);
	status_put_int(fc, "misses", zs.misses);
	status_put_int(fc, "bytes", zs.bytes);
	status_put_int(fc, "frames", zs.frames);
	json_object_set_new(o, "frame_cache", fc);
	return o;
}

/* Every topic-scoped key, effective value, then the list of overrides. */
static json_t *config_json(const struct topic_snap *ts)
{
	json_t *o = json_object(), *over = json_array();
	char buf[128];

	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const struct tfs_conf_desc *d = tfs_conf_desc(k);

		if (d->scope != TFS_SCOPE_TOPIC)
			continue;
		tfs_topic_get_config(ts->t, k, buf, sizeof(buf));
		json_object_set_new(o, d->name, json_string(buf));
		if (ts->explicit[k])
			json_array_append_new(over, json_string(d->name));
	}
	json_object_set_new(o, "overridden", over);
	return o;
}

/* The replica set of a standalone partition: this node alone. */
static json_t *self_list(const struct tfs_node_info *n)
{
	json_t *a = json_array();

	json_array_append_new(a, str_or_null(n->node));
	return a;
}

/* "state" (and "error" when failed) of a partition. */
static void state_json(json_t *o, const struct tfs_partition_info *i)
{
	if (i->failed) {
		json_object_set_new(o, "state", json_string("failed"));
		json_object_set_new(o, "error",
				    json_string(tfs_strerror(i->failed)));
	} else {
		json_object_set_new(o, "state",
				    json_string(i->corrupt_batches ? "corrupt"
								   : "ok"));
	}
}

/* Offsets and sizes of one partition. */
static void partition_offsets(json_t *o, const struct tfs_partition_info *i)
{
	status_put_int(o, "start", i->start);
	status_put_int(o, "end", i->hw);
	status_put_int(o, "log_end", i->end);
	status_put_int(o, "durable", i->durable);
	status_put_int(o, "start_record", i->start_record);
	status_put_int(o, "records", i->hw_record);
	status_put_int(o, "bytes", i->hw - i->start);
	status_put_int(o, "disk_bytes", i->disk_bytes);
	status_put_int(o, "segments", i->segments);
}

/* Retention and compression of one partition. */
static void partition_storage(json_t *o, const struct tfs_partition_info *i)
{
	status_put_int(o, "logical_bytes", i->logical_bytes);
	status_put_int(o, "data_bytes", i->data_bytes);
	status_put_int(o, "compressed_segments", i->compressed_segments);
	json_object_set_new(o, "compression_ratio",
			    i->data_bytes ? json_real((double)i->logical_bytes /
						      (double)i->data_bytes)
					  : json_null());
	json_object_set_new(o, "last_retention",
			    i->last_retention ? iso8601(i->last_retention)
					      : json_null());
	status_put_int(o, "deleted_bytes", i->deleted_bytes);
	status_put_int(o, "deleted_segments", i->deleted_segments);
	status_put_int(o, "compressions", i->compressions);
}

static void partition_counters(json_t *o, const struct tfs_partition_info *i)
{
	status_put_int(o, "appends", i->appends);
	status_put_int(o, "append_bytes", i->append_bytes);
	status_put_int(o, "append_records", i->append_records);
	status_put_int(o, "fsyncs", i->fsyncs);
	status_put_int(o, "reads", i->reads);
	status_put_int(o, "read_bytes", i->read_bytes);
	json_object_set_new(o, "first_timestamp",
			    timestamp_or_null(i->first_ts));
	json_object_set_new(o, "last_timestamp",
			    timestamp_or_null(i->last_ts));
}

static json_t *partition_json(const struct part_snap *ps,
			      const struct tfs_node_info *n)
{
	const struct tfs_partition_info *i = &ps->info;
	json_t *o = json_object();

	status_put_int(o, "partition", ps->index);
	partition_offsets(o, i);
	partition_storage(o, i);
	partition_counters(o, i);
	if (n->cluster) {
		status_cluster_partition(o, n, ps->topic_id, ps->index);
	} else {
		status_put_int(o, "epoch", i->epoch);
		json_object_set_new(o, "leader", json_string("local"));
		json_object_set_new(o, "replicas", self_list(n));
		json_object_set_new(o, "isr", self_list(n));
	}
	status_put_int(o, "lag", i->end - i->hw);
	status_put_int(o, "waiters", i->waiters);
	status_put_int(o, "corrupt_batches", i->corrupt_batches);
	status_put_int(o, "repaired_batches", i->repaired_batches);
	state_json(o, i);
	return o;
}

static json_t *topic_json(const struct snapshot *sn,
			  const struct topic_snap *ts,
			  const struct tfs_node_info *n)
{
	json_t *o = json_object(), *parts = json_array();

	json_object_set_new(o, "name", json_string(tfs_topic_name(ts->t)));
	json_object_set_new(o, "state", json_string("ok"));
	status_put_int(o, "id", tfs_topic_id(ts->t));
	status_put_int(o, "partition_count", ts->n);
	json_object_set_new(o, "created", iso8601(tfs_topic_created(ts->t)));
	json_object_set_new(o, "config", config_json(ts));
	for (size_t i = 0; i < ts->n; i++)
		json_array_append_new(parts,
				      partition_json(&sn->parts[ts->first + i],
						     n));
	json_object_set_new(o, "partitions", parts);
	return o;
}

/* A topic that could not be loaded: its name, why, and nothing else. */
static json_t *failed_json(const struct tfs_topic_failure *f)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", str_or_null(f->name));
	json_object_set_new(o, "state", json_string("failed"));
	json_object_set_new(o, "error", str_or_null(f->error));
	return o;
}

static int dump_to_buf(const char *p, size_t n, void *arg)
{
	tfs_buf_add(arg, p, n);
	return 0;
}

char *tfs_status_json(struct tfs_store *s, const struct tfs_node_info *n,
		      size_t *len)
{
	struct tfs_buf b = TFS_BUF_INIT;
	struct snapshot sn;
	json_t *root = json_object(), *topics = json_array();

	snapshot_take(s, &sn);
	json_object_set_new(root, "node", node_json(n));
	if (n->cluster)
		json_object_set_new(root, "cluster", status_cluster_json(n));
	/* Loaded and failed topics, merged in name order. */
	for (size_t i = 0, f = 0; i < sn.ntopics || f < sn.nfailed;) {
		if (f < sn.nfailed &&
		    (i == sn.ntopics ||
		     strcmp(sn.failed[f].name, tfs_topic_name(sn.ts[i].t)) < 0))
			json_array_append_new(topics,
					      failed_json(&sn.failed[f++]));
		else
			json_array_append_new(topics,
					      topic_json(&sn, &sn.ts[i++], n));
	}
	json_object_set_new(root, "topics", topics);
	snapshot_release(&sn);

	/* 15 digits print the millisecond uptime without binary noise. */
	json_dump_callback(root, dump_to_buf, &b,
			   JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	json_decref(root);
	tfs_buf_add(&b, "\n", 1);
	return tfs_buf_detach(&b, len);
}

/* --- Prometheus text ------------------------------------------------------ */

void tfs_status_escape_label(struct tfs_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\':
			tfs_buf_add(b, "\\\\", 2);
			break;
		case '"':
			tfs_buf_add(b, "\\\"", 2);
			break;
		case '\n':
			tfs_buf_add(b, "\\n", 2);
			break;
		default:
			tfs_buf_add(b, s, 1);
		}
	}
}

/* The # HELP and # TYPE lines of a family (help holds no '\\' or '\n'). */
void status_family_header(struct tfs_buf *b, const char *name,
			  const char *type, const char *help)
{
	tfs_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		     type);
}

enum value_kind {
	VAL_U64,		/* a uint64_t field, as is */
	VAL_MS_AS_SECONDS,	/* an int64_t field of ms, as seconds */
	VAL_NONZERO,		/* an int field, as 0 or 1 */
};

struct family {
	const char *name, *type, *help;
	enum value_kind kind;
	size_t off;		/* of the field in struct tfs_partition_info */
};

#define FIELD(kind, f) kind, offsetof(struct tfs_partition_info, f)

static const struct family part_families[] = {
	{ "topicfs_partition_start_bytes", "gauge",
	  "First retained byte offset of the partition.",
	  FIELD(VAL_U64, start) },
	{ "topicfs_partition_end_bytes", "gauge",
	  "Committed end (high watermark): the partition file's size.",
	  FIELD(VAL_U64, hw) },
	{ "topicfs_partition_log_end_bytes", "gauge",
	  "Log end: every appended byte, committed or not.",
	  FIELD(VAL_U64, end) },
	{ "topicfs_partition_durable_bytes", "gauge",
	  "Bytes below this offset are on stable storage.",
	  FIELD(VAL_U64, durable) },
	{ "topicfs_partition_records", "gauge",
	  "Records ever committed: the record offset of the next one.",
	  FIELD(VAL_U64, hw_record) },
	{ "topicfs_partition_start_record", "gauge",
	  "Record offset of the first retained record.",
	  FIELD(VAL_U64, start_record) },
	{ "topicfs_partition_disk_bytes", "gauge",
	  "Bytes of the partition's segment and index files on disk.",
	  FIELD(VAL_U64, disk_bytes) },
	{ "topicfs_partition_segments", "gauge",
	  "Segments of the partition.", FIELD(VAL_U64, segments) },
	{ "topicfs_partition_compressed_segments", "gauge",
	  "Segments stored as zstd frames.",
	  FIELD(VAL_U64, compressed_segments) },
	{ "topicfs_partition_logical_bytes", "gauge",
	  "Retained bytes as readers see them (end minus start).",
	  FIELD(VAL_U64, logical_bytes) },
	{ "topicfs_partition_data_bytes", "gauge",
	  "Bytes of the .log and .zst files: logical_bytes / data_bytes is "
	  "the compression ratio.",
	  FIELD(VAL_U64, data_bytes) },
	{ "topicfs_partition_retention_deleted_bytes_total", "counter",
	  "Logical bytes deleted by retention since the partition was opened.",
	  FIELD(VAL_U64, deleted_bytes) },
	{ "topicfs_partition_retention_deleted_segments_total", "counter",
	  "Segments deleted by retention since the partition was opened.",
	  FIELD(VAL_U64, deleted_segments) },
	{ "topicfs_partition_last_retention_timestamp_seconds", "gauge",
	  "When retention last ran on the partition, Unix seconds (0: never).",
	  FIELD(VAL_MS_AS_SECONDS, last_retention) },
	{ "topicfs_partition_compressions_total", "counter",
	  "Segments compressed since the partition was opened.",
	  FIELD(VAL_U64, compressions) },
	{ "topicfs_partition_appends_total", "counter",
	  "Batches appended since the partition was opened.",
	  FIELD(VAL_U64, appends) },
	{ "topicfs_partition_append_bytes_total", "counter",
	  "Bytes appended since the partition was opened.",
	  FIELD(VAL_U64, append_bytes) },
	{ "topicfs_partition_append_records_total", "counter",
	  "Records appended since the partition was opened.",
	  FIELD(VAL_U64, append_records) },
	{ "topicfs_partition_fsyncs_total", "counter",
	  "Sync rounds (fsyncs of the partition's files) since it was opened.",
	  FIELD(VAL_U64, fsyncs) },
	{ "topicfs_partition_reads_total", "counter",
	  "Reads served since the partition was opened.",
	  FIELD(VAL_U64, reads) },
	{ "topicfs_partition_read_bytes_total", "counter",
	  "Bytes read since the partition was opened.",
	  FIELD(VAL_U64, read_bytes) },
	{ "topicfs_partition_last_append_timestamp_seconds", "gauge",
	  "Commit time of the newest batch, Unix seconds (0 if none).",
	  FIELD(VAL_MS_AS_SECONDS, last_ts) },
	{ "topicfs_partition_failed", "gauge",
	  "1 if the partition refuses writes after an I/O error, else 0.",
	  FIELD(VAL_NONZERO, failed) },
	{ "topicfs_partition_corrupt_batches", "gauge",
	  "Batches found damaged at rest (bytes or index entry) and not "
	  "repaired.",
	  FIELD(VAL_U64, corrupt_batches) },
	{ "topicfs_partition_repaired_batches_total", "counter",
	  "Damaged batches repaired since the partition was opened.",
	  FIELD(VAL_U64, repaired_batches) },
};

static void add_value(struct tfs_buf *b, const struct family *f,
		      const struct tfs_partition_info *i)
{
	const char *field = (const char *)i + f->off;
	uint64_t u;
	int64_t ms;
	int bad;

	switch (f->kind) {
	case VAL_U64:
		memcpy(&u, field, sizeof(u));
		tfs_buf_addf(b, "%" PRIu64 "\n", u);
		break;
	case VAL_MS_AS_SECONDS:
		memcpy(&ms, field, sizeof(ms));
		tfs_buf_addf(b, "%" PRId64 ".%03d\n", ms / 1000,
			     (int)(ms % 1000));
		break;
	case VAL_NONZERO:
		memcpy(&bad, field, sizeof(bad));
		tfs_buf_addf(b, "%d\n", bad != 0);
		break;
	}
}

static void partition_family(struct tfs_buf *b, const struct family *f,
			     const struct snapshot *sn)
{
	status_family_header(b, f->name, f->type, f->help);
	for (size_t i = 0; i < sn->nparts; i++) {
		const struct part_snap *ps = &sn->parts[i];

		tfs_buf_addf(b, "%s{topic=\"", f->name);
		tfs_status_escape_label(b, ps->topic);
		tfs_buf_addf(b, "\",partition=\"%" PRIu32 "\"} ", ps->index);
		add_value(b, f, &ps->info);
	}
}

static void topic_failed_sample(struct tfs_buf *b, const char *topic, int v)
{
	tfs_buf_addf(b, "topicfs_topic_failed{topic=\"");
	tfs_status_escape_label(b, topic);
	tfs_buf_addf(b, "\"} %d\n", v);
}

/* 1 for each topic that failed to load, 0 for each loaded one. */
static void topic_failed_family(struct tfs_buf *b, const struct snapshot *sn)
{
	status_family_header(b, "topicfs_topic_failed", "gauge",
		      "1 if the topic could not be loaded at start (see "
		      ".topicfs/status for why), 0 if it serves.");
	for (size_t i = 0, f = 0; i < sn->ntopics || f < sn->nfailed;) {
		if (f < sn->nfailed &&
		    (i == sn->ntopics ||
		     strcmp(sn->failed[f].name,
			    tfs_topic_name(sn->ts[i].t)) < 0))
			topic_failed_sample(b, sn->failed[f++].name, 1);
		else
			topic_failed_sample(b, tfs_topic_name(sn->ts[i++].t),
					    0);
	}
}

static void node_metrics(struct tfs_buf *b, const struct tfs_node_info *n,
			 size_t ntopics)
{
	int64_t up = tfs_mono_ms() - n->started_mono_ms;

	status_family_header(b, "topicfs_info", "gauge",
		      "Version and node name of this topicfs daemon.");
	tfs_buf_add(b, "topicfs_info{version=\"", 22);
	tfs_status_escape_label(b, n->version ? n->version : "");
	tfs_buf_add(b, "\",node=\"", 8);
	tfs_status_escape_label(b, n->node ? n->node : "");
	tfs_buf_add(b, "\"} 1\n", 5);
	status_family_header(b, "topicfs_uptime_seconds", "gauge",
		      "Seconds since the daemon started.");
	tfs_buf_addf(b, "topicfs_uptime_seconds %" PRId64 ".%03d\n",
		     up / 1000, (int)(up % 1000));
	status_family_header(b, "topicfs_open_handles", "gauge",
		      "Files open on the mount.");
	tfs_buf_addf(b, "topicfs_open_handles %" PRIu64 "\n",
		     n->open_handles);
	status_family_header(b, "topicfs_parked_reads", "gauge",
		      ".follow reads waiting for data.");
	tfs_buf_addf(b, "topicfs_parked_reads %" PRIu64 "\n",
		     n->parked_reads);
	status_family_header(b, "topicfs_topics", "gauge", "Topics in the store.");
	tfs_buf_addf(b, "topicfs_topics %zu\n", ntopics);

	struct tfs_zcache_stats zs;

	tfs_zcache_stats(&zs);
	status_family_header(b, "topicfs_frame_cache_hits_total", "counter",
		      "Reads of compressed data served from the frame cache.");
	tfs_buf_addf(b, "topicfs_frame_cache_hits_total %" PRIu64 "\n",
		     zs.hits);
	status_family_header(b, "topicfs_frame_cache_misses_total", "counter",
		      "Frames decompressed for reads.");
	tfs_buf_addf(b, "topicfs_frame_cache_misses_total %" PRIu64 "\n",
		     zs.misses);
	status_family_header(b, "topicfs_frame_cache_bytes", "gauge",
		      "Bytes of decompressed frames held in the cache.");
	tfs_buf_addf(b, "topicfs_frame_cache_bytes %" PRIu64 "\n", zs.bytes);
}

char *tfs_status_metrics(struct tfs_store *s, const struct tfs_node_info *n,
			 size_t *len)
{
	struct tfs_buf b = TFS_BUF_INIT;
	struct snapshot sn;

	snapshot_take(s, &sn);
	node_metrics(&b, n, sn.ntopics);
	for (size_t i = 0; i < TFS_ARRAY_SIZE(part_families); i++)
		partition_family(&b, &part_families[i], &sn);
	topic_failed_family(&b, &sn);
	if (n->cluster) {
		struct status_part *parts =
			tfs_calloc(sn.nparts ? sn.nparts : 1, sizeof(*parts));

		for (size_t i = 0; i < sn.nparts; i++)
			parts[i] = (struct status_part){ sn.parts[i].topic,
							 sn.parts[i].topic_id,
							 sn.parts[i].index };
		status_cluster_metrics(&b, n, parts, sn.nparts);
		free(parts);
	}
	snapshot_release(&sn);
	return tfs_buf_detach(&b, len);
}
