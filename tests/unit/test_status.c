/*
 * Unit tests for the status module: the JSON of .topicfs/status parsed
 * back and checked field by field (values, key order, topic order, config
 * and overrides, a failed partition), the Prometheus text of
 * .topicfs/metrics checked line by line against the exposition syntax
 * (HELP/TYPE once per family, before its samples, samples grouped) and
 * for its values, and the label escaping.
 *
 * With TFS_STATUS_PRINT set in the environment, also prints both files for
 * a store with one topic of two partitions: the examples in docs/STATUS.md.
 */
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"
#include "conf.h"
#include "err.h"
#include "log.h"
#include "partition.h"
#include "status.h"
#include "store.h"
#include "util.h"

static struct tl_env tl;

static const struct tfs_node_info node = {
	.version = "0.1.0",
	.node = "node-a",
	.mountpoint = "/mnt/log",
	.data_dir = "/var/lib/topicfs",
	.open_handles = 3,
	.parked_reads = 1,
};

/* Appends text (whole lines) as one batch to partition i of t. */
static int append_text(struct tfs_topic *t, uint32_t i, const char *text)
{
	struct tfs_partition *p = tfs_topic_partition(t, i);
	int rc;

	if (!p)
		return -ENOENT;
	rc = tl_append_text(p, text);
	tfs_partition_unref(p);
	return rc;
}

static struct tfs_store *open_store(const char *name)
{
	char dir[128];
	struct tfs_store *s = NULL;

	snprintf(dir, sizeof(dir), "%s/%s", tl.root, name);
	if (tfs_store_open(dir, &tl.conf, &s))
		return NULL;
	return s;
}

/* --- label escaping ------------------------------------------------------- */

static bool escapes_to(const char *in, const char *want)
{
	struct tfs_buf b = TFS_BUF_INIT;
	bool ok;

	tfs_status_escape_label(&b, in);
	ok = b.len == strlen(want) && memcmp(b.data ? b.data : "", want,
					     b.len) == 0;
	if (!ok)
		fprintf(stderr, "  escape: got [%s], want [%s]\n",
			b.data ? b.data : "", want);
	tfs_buf_release(&b);
	return ok;
}

static void test_escape(void)
{
	TEST("label escaping: backslash, double quote, newline");
	CHECK(escapes_to("", ""));
	CHECK(escapes_to("plain.topic-1_x", "plain.topic-1_x"));
	CHECK(escapes_to("a\"b", "a\\\"b"));
	CHECK(escapes_to("a\\b", "a\\\\b"));
	CHECK(escapes_to("a\nb", "a\\nb"));
	CHECK(escapes_to("\"\\\n\t", "\\\"\\\\\\n\t"));
}

/* --- JSON ----------------------------------------------------------------- */

/* True if object o has exactly the keys in want, in that order. */
static bool keys_are(json_t *o, const char *const *want)
{
	void *it = json_object_iter(o);
	size_t i = 0;

	for (; it; it = json_object_iter_next(o, it), i++) {
		if (!want[i] || strcmp(json_object_iter_key(it), want[i])) {
			fprintf(stderr, "  key %zu: got %s, want %s\n", i,
				json_object_iter_key(it),
				want[i] ? want[i] : "(end)");
			return false;
		}
	}
	return want[i] == NULL;
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : -12345;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(not a string)";
}

static const char *const node_keys[] = {
	"name", "version", "pid", "mountpoint", "data_dir",
	"uptime_seconds", "open_handles", "parked_reads", "mode",
	"frame_cache", NULL
};
static const char *const topic_keys[] = {
	"name", "state", "id", "partition_count", "created", "config",
	"partitions", NULL
};
static const char *const part_keys[] = {
	"partition", "start", "end", "log_end", "durable", "start_record",
	"records", "bytes", "disk_bytes", "segments", "logical_bytes",
	"data_bytes", "compressed_segments", "compression_ratio",
	"last_retention", "deleted_bytes", "deleted_segments",
	"compressions", "appends",
	"append_bytes", "append_records", "fsyncs", "reads", "read_bytes",
	"first_timestamp", "last_timestamp", "epoch", "leader", "replicas",
	"isr", "lag", "waiters", "corrupt_batches", "repaired_batches",
	"state", NULL
};

static void check_node(json_t *n)
{
	CHECK(keys_are(n, node_keys));
	CHECK(!strcmp(jstr(n, "name"), "node-a"));
	CHECK(!strcmp(jstr(n, "version"), "0.1.0"));
	CHECK(!strcmp(jstr(n, "mountpoint"), "/mnt/log"));
	CHECK(!strcmp(jstr(n, "data_dir"), "/var/lib/topicfs"));
	CHECK(!strcmp(jstr(n, "mode"), "standalone"));
	CHECK_EQ(jint(n, "pid"), getpid());
	CHECK_EQ(jint(n, "open_handles"), 3);
	CHECK_EQ(jint(n, "parked_reads"), 1);
	json_t *up = json_object_get(n, "uptime_seconds");
	CHECK(json_is_real(up) && json_real_value(up) >= 0 &&
	      json_real_value(up) < 60);
}

static void check_config(json_t *cfg, bool overridden)
{
	char want[128];
	size_t keys = 0;

	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const struct tfs_conf_desc *d = tfs_conf_desc(k);

		if (d->scope != TFS_SCOPE_TOPIC)
			continue;
		keys++;
		if (overridden && k == TFS_CONF_RETENTION_MS)
			snprintf(want, sizeof(want), "3600000");
		else if (overridden && k == TFS_CONF_COMPRESSION)
			snprintf(want, sizeof(want), "zstd");
		else
			tfs_conf_format(k, d->def, want, sizeof(want));
		CHECKF(!strcmp(jstr(cfg, d->name), want), "%s: %s, want %s",
		       d->name, jstr(cfg, d->name), want);
	}
	CHECK_EQ(json_object_size(cfg), keys + 1);
	json_t *over = json_object_get(cfg, "overridden");
	CHECK(json_is_array(over));
	CHECK_EQ(json_array_size(over), overridden ? 2 : 0);
	if (overridden && json_array_size(over) == 2) {
		/* Table order, not the order they were set in. */
		CHECK(!strcmp(json_string_value(json_array_get(over, 0)),
			      "retention.ms"));
		CHECK(!strcmp(json_string_value(json_array_get(over, 1)),
			      "compression"));
	}
}

/* zeta/0: "one\ntwo\n" then "three\n"; zeta/1: "x\n". */
static void check_zeta_parts(json_t *parts)
{
	json_t *p0 = json_array_get(parts, 0), *p1 = json_array_get(parts, 1);

	CHECK_EQ(json_array_size(parts), 2);
	CHECK(keys_are(p0, part_keys));
	CHECK_EQ(jint(p0, "partition"), 0);
	CHECK_EQ(jint(p0, "start"), 0);
	CHECK_EQ(jint(p0, "end"), 14);
	CHECK_EQ(jint(p0, "log_end"), 14);
	CHECK_EQ(jint(p0, "start_record"), 0);
	CHECK_EQ(jint(p0, "records"), 3);
	CHECK_EQ(jint(p0, "bytes"), 14);
	CHECK_EQ(jint(p0, "segments"), 1);
	CHECK(jint(p0, "disk_bytes") > 14);
	CHECK_EQ(jint(p0, "appends"), 2);
	CHECK_EQ(jint(p0, "append_bytes"), 14);
	CHECK_EQ(jint(p0, "append_records"), 3);
	CHECK_EQ(jint(p0, "lag"), 0);
	CHECK_EQ(jint(p0, "waiters"), 0);
	CHECK(jint(p0, "first_timestamp") > 1600000000000LL);
	CHECK(jint(p0, "last_timestamp") >= jint(p0, "first_timestamp"));
	CHECK(!strcmp(jstr(p0, "leader"), "local"));
	CHECK(!strcmp(jstr(p0, "state"), "ok"));
	CHECK_EQ(jint(p0, "corrupt_batches"), 0);
	CHECK_EQ(jint(p0, "repaired_batches"), 0);
	CHECK(!json_object_get(p0, "error"));
	CHECK(!strcmp(json_string_value(json_array_get(
			      json_object_get(p0, "isr"), 0)), "node-a"));
	CHECK_EQ(json_array_size(json_object_get(p0, "replicas")), 1);
	CHECK_EQ(jint(p1, "partition"), 1);
	CHECK_EQ(jint(p1, "end"), 2);
	CHECK_EQ(jint(p1, "records"), 1);
	CHECK_EQ(jint(p1, "appends"), 1);
}

static void check_alpha_part(json_t *p)
{
	CHECK_EQ(jint(p, "end"), 0);
	CHECK_EQ(jint(p, "records"), 0);
	CHECK_EQ(jint(p, "appends"), 0);
	CHECK(json_is_null(json_object_get(p, "first_timestamp")));
	CHECK(json_is_null(json_object_get(p, "last_timestamp")));
	CHECKF(!strcmp(jstr(p, "state"), "failed"), "state %s",
	       jstr(p, "state"));
	CHECKF(!strcmp(jstr(p, "error"), "Input/output error"), "error %s",
	       jstr(p, "error"));
	CHECK_EQ(jint(p, "corrupt_batches"), 0);
}

static void check_json(const char *text, size_t len)
{
	json_error_t err;
	json_t *root = json_loads(text, 0, &err);
	static const char *const root_keys[] = { "node", "topics", NULL };

	CHECK_EQ(len, strlen(text));
	CHECK(len > 0 && text[len - 1] == '\n');
	CHECK(strncmp(text, "{\n  \"node\": {\n    \"name\"", 24) == 0);
	CHECKF(root != NULL, "line %d: %s", err.line, err.text);
	if (!root)
		return;
	CHECK(keys_are(root, root_keys));
	check_node(json_object_get(root, "node"));

	json_t *topics = json_object_get(root, "topics");
	json_t *alpha = json_array_get(topics, 0);
	json_t *zeta = json_array_get(topics, 1);
	CHECK_EQ(json_array_size(topics), 2);
	CHECK(!strcmp(jstr(alpha, "name"), "alpha"));
	CHECK(!strcmp(jstr(zeta, "name"), "zeta"));
	CHECK(keys_are(zeta, topic_keys));
	CHECK(!strcmp(jstr(zeta, "state"), "ok"));
	CHECK_EQ(jint(zeta, "partition_count"), 2);
	CHECK_EQ(jint(alpha, "partition_count"), 1);
	CHECK(jint(zeta, "id") > 0 && jint(zeta, "id") != jint(alpha, "id"));
	const char *created = jstr(zeta, "created");
	CHECKF(strlen(created) == 24 && created[4] == '-' &&
	       created[10] == 'T' && created[19] == '.' && created[23] == 'Z',
	       "created %s", created);
	check_config(json_object_get(zeta, "config"), true);
	check_config(json_object_get(alpha, "config"), false);
	check_zeta_parts(json_object_get(zeta, "partitions"));
	check_alpha_part(json_array_get(json_object_get(alpha, "partitions"),
					0));
	json_decref(root);
}

/* --- metrics -------------------------------------------------------------- */

#define MAX_FAMILIES 64

struct family_seen {
	char name[96];
	int help, type, samples;
};

struct metrics_check {
	regex_t sample;
	struct family_seen fam[MAX_FAMILIES];
	int nfam;
	int cur;		/* family of the last # TYPE line, or -1 */
	int bad_lines;
};

static struct family_seen *family(struct metrics_check *m, const char *name,
				  size_t len)
{
	for (int i = 0; i < m->nfam; i++)
		if (strlen(m->fam[i].name) == len &&
		    !memcmp(m->fam[i].name, name, len))
			return &m->fam[i];
	if (m->nfam == MAX_FAMILIES || len >= sizeof(m->fam[0].name))
		return NULL;
	struct family_seen *f = &m->fam[m->nfam++];
	memcpy(f->name, name, len);
	f->name[len] = '\0';
	return f;
}

/* "# HELP name text" or "# TYPE name type". */
static void comment_line(struct metrics_check *m, const char *line)
{
	bool help = !strncmp(line, "# HELP ", 7);
	const char *name = line + 7, *sp = strchr(name, ' ');
	struct family_seen *f;

	if ((!help && strncmp(line, "# TYPE ", 7)) || !sp ||
	    !(f = family(m, name, (size_t)(sp - name)))) {
		CHECKF(false, "bad comment line: %s", line);
		return;
	}
	CHECKF(f->samples == 0, "%s: HELP/TYPE after samples", f->name);
	if (help) {
		CHECKF(++f->help == 1, "%s: HELP twice", f->name);
		return;
	}
	CHECKF(++f->type == 1, "%s: TYPE twice", f->name);
	CHECKF(f->help == 1, "%s: TYPE before HELP", f->name);
	CHECKF(!strcmp(sp + 1, "gauge") || !strcmp(sp + 1, "counter"),
	       "%s: type %s", f->name, sp + 1);
	m->cur = (int)(f - m->fam);
}

static void sample_line(struct metrics_check *m, const char *line)
{
	size_t len = strcspn(line, "{ ");
	struct family_seen *f = family(m, line, len);

	if (regexec(&m->sample, line, 0, NULL, 0) != 0 || !f) {
		CHECKF(false, "bad sample line: %s", line);
		m->bad_lines++;
		return;
	}
	CHECKF(f->type == 1 && m->cur == (int)(f - m->fam),
	       "%s: sample outside its family's group", f->name);
	f->samples++;
}

static void check_syntax(const char *text, struct metrics_check *m)
{
	char *copy = tfs_strdup(text), *save = NULL;
	static const char *sample_re =
		"^[a-zA-Z_:][a-zA-Z0-9_:]*"
		"(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
		"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})?"
		" -?[0-9]+(\\.[0-9]+)?$";

	memset(m, 0, sizeof(*m));
	m->cur = -1;
	CHECK_EQ(regcomp(&m->sample, sample_re, REG_EXTENDED | REG_NOSUB), 0);
	CHECK(text[0] && text[strlen(text) - 1] == '\n');
	for (char *l = strtok_r(copy, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#')
			comment_line(m, l);
		else
			sample_line(m, l);
	}
	regfree(&m->sample);
	free(copy);
	for (int i = 0; i < m->nfam; i++)
		CHECKF(m->fam[i].help == 1 && m->fam[i].type == 1,
		       "%s: no HELP or TYPE", m->fam[i].name);
}

/* The value of the sample whose name and labels are exactly series. */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (!strncmp(l, series, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
		if (!strchr(l, '\n'))
			break;
	}
	fprintf(stderr, "  no sample %s\n", series);
	return -1;
}

static double part_value(const char *text, const char *metric,
			 const char *topic, int p)
{
	char series[256];

	snprintf(series, sizeof(series), "topicfs_partition_%s{topic=\"%s\","
		 "partition=\"%d\"}", metric, topic, p);
	return value_of(text, series);
}

static void check_metric_values(const char *text)
{
	CHECK(value_of(text, "topicfs_info{version=\"0.1.0\","
			     "node=\"node-a\"}") == 1);
	CHECK(value_of(text, "topicfs_topics") == 2);
	CHECK(value_of(text, "topicfs_open_handles") == 3);
	CHECK(value_of(text, "topicfs_parked_reads") == 1);
	CHECK(value_of(text, "topicfs_uptime_seconds") >= 0);
	CHECK(part_value(text, "end_bytes", "zeta", 0) == 14);
	CHECK(part_value(text, "log_end_bytes", "zeta", 0) == 14);
	CHECK(part_value(text, "start_bytes", "zeta", 0) == 0);
	CHECK(part_value(text, "records", "zeta", 0) == 3);
	CHECK(part_value(text, "start_record", "zeta", 0) == 0);
	CHECK(part_value(text, "segments", "zeta", 0) == 1);
	CHECK(part_value(text, "disk_bytes", "zeta", 0) > 14);
	CHECK(part_value(text, "appends_total", "zeta", 0) == 2);
	CHECK(part_value(text, "append_bytes_total", "zeta", 0) == 14);
	CHECK(part_value(text, "append_records_total", "zeta", 0) == 3);
	CHECK(part_value(text, "reads_total", "zeta", 0) == 0);
	CHECK(part_value(text, "end_bytes", "zeta", 1) == 2);
	CHECK(part_value(text, "records", "zeta", 1) == 1);
	CHECK(part_value(text, "last_append_timestamp_seconds", "zeta", 0) >
	      1.6e9);
	CHECK(part_value(text, "last_append_timestamp_seconds", "alpha",
			 0) == 0);
	CHECK(part_value(text, "failed", "zeta", 0) == 0);
	CHECK(part_value(text, "failed", "alpha", 0) == 1);
	CHECK(part_value(text, "corrupt_batches", "zeta", 0) == 0);
	CHECK(part_value(text, "repaired_batches_total", "zeta", 0) == 0);
	CHECK(value_of(text, "topicfs_topic_failed{topic=\"zeta\"}") == 0);
	CHECK(value_of(text, "topicfs_topic_failed{topic=\"alpha\"}") == 0);
}

static void check_metrics(const char *text, size_t len)
{
	struct metrics_check m;
	static const char *const want[] = {
		"topicfs_info", "topicfs_uptime_seconds",
		"topicfs_open_handles", "topicfs_parked_reads",
		"topicfs_topics", "topicfs_frame_cache_hits_total",
		"topicfs_frame_cache_misses_total", "topicfs_frame_cache_bytes",
		"topicfs_partition_start_bytes",
		"topicfs_partition_end_bytes",
		"topicfs_partition_log_end_bytes",
		"topicfs_partition_durable_bytes", "topicfs_partition_records",
		"topicfs_partition_start_record",
		"topicfs_partition_disk_bytes", "topicfs_partition_segments",
		"topicfs_partition_compressed_segments",
		"topicfs_partition_logical_bytes",
		"topicfs_partition_data_bytes",
		"topicfs_partition_retention_deleted_bytes_total",
		"topicfs_partition_retention_deleted_segments_total",
		"topicfs_partition_last_retention_timestamp_seconds",
		"topicfs_partition_compressions_total",
		"topicfs_partition_appends_total",
		"topicfs_partition_append_bytes_total",
		"topicfs_partition_append_records_total",
		"topicfs_partition_fsyncs_total",
		"topicfs_partition_reads_total",
		"topicfs_partition_read_bytes_total",
		"topicfs_partition_last_append_timestamp_seconds",
		"topicfs_partition_failed",
		"topicfs_partition_corrupt_batches",
		"topicfs_partition_repaired_batches_total",
		"topicfs_topic_failed",
	};

	CHECK_EQ(len, strlen(text));
	check_syntax(text, &m);
	CHECK_EQ(m.bad_lines, 0);
	CHECK_EQ(m.nfam, TFS_ARRAY_SIZE(want));
	for (size_t i = 0; i < TFS_ARRAY_SIZE(want); i++) {
		struct family_seen *f = family(&m, want[i], strlen(want[i]));
		/* Three partitions and two topics in all; node families
		 * have one sample. */
		int samples =
			!strncmp(want[i], "topicfs_partition_", 18) ? 3
			: !strncmp(want[i], "topicfs_topic_", 14)   ? 2
								    : 1;

		CHECKF(f && f->samples == samples, "%s: %d samples", want[i],
		       f ? f->samples : -1);
	}
	CHECK(strstr(text, "# TYPE topicfs_partition_appends_total counter\n"));
	CHECK(strstr(text, "# TYPE topicfs_partition_end_bytes gauge\n"));
	check_metric_values(text);
}

/* --- the store ------------------------------------------------------------ */

static void test_status(void)
{
	struct tfs_store *s;
	struct tfs_topic *zeta, *alpha;
	char err[256];
	size_t len;

	TEST("status JSON and metrics of a store with two topics");
	s = open_store("two");
	CHECK(s != NULL);
	if (!s)
		return;
	/* Created out of name order: the output must sort them. */
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "zeta" }, &zeta), 0);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "alpha" }, &alpha), 0);
	CHECK_EQ(tfs_topic_set_partitions(zeta, 2), 0);
	CHECK_EQ(tfs_topic_set_config(zeta, "compression", "zstd", err,
				      sizeof(err)), 0);
	CHECK_EQ(tfs_topic_set_config(zeta, "retention.ms", "1h", err,
				      sizeof(err)), 0);
	CHECK_EQ(append_text(zeta, 0, "one\ntwo\n"), 0);
	CHECK_EQ(append_text(zeta, 0, "three\n"), 0);
	CHECK_EQ(append_text(zeta, 1, "x\n"), 0);
	struct tfs_partition *p = tfs_topic_partition(alpha, 0);
	CHECK(p != NULL);
	if (p) {
		tfs_partition_fail(p, -EIO);
		tfs_partition_unref(p);
	}

	struct tfs_node_info n = node;
	n.started_mono_ms = tfs_mono_ms();
	char *json = tfs_status_json(s, &n, &len);
	check_json(json, len);
	free(json);
	char *metrics = tfs_status_metrics(s, &n, &len);
	check_metrics(metrics, len);
	free(metrics);

	tfs_topic_unref(zeta);
	tfs_topic_unref(alpha);
	tfs_store_close(s);
}

static void test_empty(void)
{
	struct tfs_store *s;
	size_t len;

	TEST("status of an empty store");
	s = open_store("empty");
	CHECK(s != NULL);
	if (!s)
		return;
	struct tfs_node_info n = node;
	n.started_mono_ms = tfs_mono_ms();
	n.mountpoint = NULL;
	char *json = tfs_status_json(s, &n, &len);
	json_t *root = json_loads(json, 0, NULL);
	CHECK(root && json_array_size(json_object_get(root, "topics")) == 0);
	CHECK(json_is_null(json_object_get(json_object_get(root, "node"),
					   "mountpoint")));
	json_decref(root);
	free(json);
	char *metrics = tfs_status_metrics(s, &n, &len);
	struct metrics_check m;
	check_syntax(metrics, &m);
	CHECK_EQ(m.bad_lines, 0);
	CHECK(value_of(metrics, "topicfs_topics") == 0);
	free(metrics);
	tfs_store_close(s);
}

/* Overwrites DIR/topics/NAME/topic.json of store dir name. */
static void spoil_topic_json(const char *store, const char *topic,
			     const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/topics/%s/topic.json", tl.root,
		 store, topic);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_failed_topic(void)
{
	struct tfs_store *s;
	struct tfs_topic_failure *f;
	size_t len, n;

	TEST("a topic that cannot load is listed as failed, with its error");
	s = open_store("failed");
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "good" }, NULL), 0);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "bad" }, NULL), 0);
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "worse" }, NULL), 0);
	tfs_store_close(s);
	spoil_topic_json("failed", "bad", "{\"config\": {");
	spoil_topic_json("failed", "worse", "");
	s = open_store("failed");
	CHECK(s != NULL);
	if (!s)
		return;
	n = tfs_store_failed_topics(s, &f);
	CHECK_EQ(n, 2);
	if (n == 2) {
		CHECK(!strcmp(f[0].name, "bad") && !strcmp(f[1].name, "worse"));
		CHECKF(strstr(f[0].error, "topic.json") != NULL, "error: %s",
		       f[0].error);
	}
	free(f);
	/* Its name stays taken. */
	CHECK_EQ(tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "bad" }, NULL), -EEXIST);

	struct tfs_node_info ni = node;
	ni.started_mono_ms = tfs_mono_ms();
	char *json = tfs_status_json(s, &ni, &len);
	json_t *root = json_loads(json, 0, NULL), *topics, *bad, *good;
	static const char *const failed_keys[] = { "name", "state", "error",
						   NULL };

	topics = json_object_get(root, "topics");
	CHECK_EQ(json_array_size(topics), 3);
	bad = json_array_get(topics, 0);
	good = json_array_get(topics, 1);
	CHECK(!strcmp(jstr(bad, "name"), "bad"));
	CHECK(keys_are(bad, failed_keys));
	CHECK(!strcmp(jstr(bad, "state"), "failed"));
	CHECK(strstr(jstr(bad, "error"), "topic.json") != NULL);
	CHECK(!strcmp(jstr(good, "name"), "good"));
	CHECK(!strcmp(jstr(good, "state"), "ok"));
	CHECK(!strcmp(jstr(json_array_get(topics, 2), "name"), "worse"));
	json_decref(root);
	free(json);

	char *metrics = tfs_status_metrics(s, &ni, &len);
	struct metrics_check m;

	check_syntax(metrics, &m);
	CHECK_EQ(m.bad_lines, 0);
	CHECK(value_of(metrics, "topicfs_topic_failed{topic=\"bad\"}") == 1);
	CHECK(value_of(metrics, "topicfs_topic_failed{topic=\"worse\"}") == 1);
	CHECK(value_of(metrics, "topicfs_topic_failed{topic=\"good\"}") == 0);
	CHECK(value_of(metrics, "topicfs_topics") == 1);
	free(metrics);
	tfs_store_close(s);
}

/* The examples of docs/STATUS.md: one topic, two partitions. */
static void print_example(void)
{
	struct tfs_store *s = open_store("example");
	struct tfs_topic *t;
	char err[256];

	if (!s || tfs_store_create_topic(s, &(struct tfs_topic_spec){ .name = "tweets" }, &t))
		return;
	tfs_topic_set_partitions(t, 2);
	tfs_topic_set_config(t, "retention.ms", "7d", err, sizeof(err));
	append_text(t, 0, "{\"user\":1,\"text\":\"hi\"}\n");
	append_text(t, 0, "{\"user\":2,\"text\":\"hello\"}\n"
			  "{\"user\":3,\"text\":\"hey\"}\n");
	append_text(t, 1, "{\"user\":4,\"text\":\"yo\"}\n");

	struct tfs_node_info n = node;
	n.started_mono_ms = tfs_mono_ms() - 3723456;
	char *json = tfs_status_json(s, &n, NULL);
	char *metrics = tfs_status_metrics(s, &n, NULL);
	printf("%s\n%s", json, metrics);
	free(json);
	free(metrics);
	tfs_topic_unref(t);
	tfs_store_close(s);
}

int main(void)
{
	if (tl_env_init(&tl, "status", 0))
		return 1;

	test_escape();
	test_status();
	test_empty();
	test_failed_topic();
	if (getenv("TFS_STATUS_PRINT"))
		print_example();

	tl_env_release(&tl);
	return check_done();
}
