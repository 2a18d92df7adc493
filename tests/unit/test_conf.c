/*
 * Unit tests for the configuration module: the table, value parsing for
 * every type, ranges and -1, error messages, the config file (sections,
 * comments, line numbers), precedence, formatting and the reference.
 * Run from the repository root: it loads etc/topicfs.conf.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "conf.h"
#include "err.h"
#include "util.h"

static char tmpdir[] = "/tmp/test_conf.XXXXXX";
static char err[512];

#define KiB INT64_C(1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
#define TiB (GiB * 1024)

/* Writes n bytes of text to a fresh file in tmpdir; returns its path. */
static char *write_bytes(const char *name, const char *text, size_t n)
{
	char *path = tfs_asprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(2);
	}
	fwrite(text, 1, n, f);
	fclose(f);
	return path;
}

static char *write_file(const char *name, const char *text)
{
	return write_bytes(name, text, strlen(text));
}

/* Parses value for key; returns the value, or INT64_MIN on error. */
static int64_t parse(enum tfs_conf_key key, const char *value)
{
	int64_t v = 0;

	err[0] = '\0';
	if (tfs_conf_parse(key, value, &v, err, sizeof(err)) != 0)
		return INT64_MIN;
	return v;
}

/* Whether parsing value for key fails with a message containing want. */
static int fails_with(enum tfs_conf_key key, const char *value,
		      const char *want)
{
	int64_t v = 12345;
	int rc;

	err[0] = '\0';
	rc = tfs_conf_parse(key, value, &v, err, sizeof(err));
	if (rc != TFS_EBADCONF || v != 12345 || !strstr(err, want)) {
		fprintf(stderr,
			"  parse '%s': rc %d, err \"%s\", want \"%s\"\n", value,
			rc, err, want);
		return 0;
	}
	return 1;
}

static void test_table(void)
{
	TEST("table: every key is complete and findable");
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const struct tfs_conf_desc *d = tfs_conf_desc(k);

		CHECKF(d && d->name && d->doc && strlen(d->doc) > 40, "key %d",
		       k);
		if (!d || !d->name)
			continue;
		CHECK_EQ(tfs_conf_find(d->name), k);
		if (d->type == TFS_CONF_ENUM) {
			int n = 0;

			CHECKF(d->enum_values != NULL, "%s", d->name);
			while (d->enum_values && d->enum_values[n])
				n++;
			CHECKF(d->def >= 0 && d->def < n, "%s", d->name);
		} else if (d->type != TFS_CONF_BOOL &&
			   d->type != TFS_CONF_STRING) {
			CHECKF(d->min <= d->def && d->def <= d->max, "%s",
			       d->name);
		}
	}
	CHECK(tfs_conf_desc(TFS_CONF__COUNT) == NULL);
	CHECK(tfs_conf_desc((enum tfs_conf_key)-1) == NULL);
	CHECK_EQ(tfs_conf_find("no.such.key"), -1);
	CHECK_EQ(tfs_conf_find(""), -1);
	CHECK_EQ(tfs_conf_find("Segment.bytes"), -1);
	CHECK_EQ(tfs_conf_desc(TFS_CONF_RETENTION_MS)->scope, TFS_SCOPE_TOPIC);
	CHECK_EQ(tfs_conf_desc(TFS_CONF_FLUSH_MS)->scope, TFS_SCOPE_DAEMON);
}

static void test_defaults(void)
{
	struct tfs_conf c;

	TEST("defaults");
	tfs_conf_init(&c);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_LOG_LEVEL), 2);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_FUSE_THREADS), 8);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_FUSE_CLONE_FD), 1);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SYNC_THREADS), 2);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_FLUSH_MS), 1000);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_MAX_RECORD_BYTES), MiB);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_NUM_PARTITIONS), 1);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_DELETE_TOPIC_ENABLE), 1);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_CHECK_INTERVAL_MS),
		 300000);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_MS), 604800000);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_BYTES), -1);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), GiB);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_MS), 604800000);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_COMPRESSION),
		 TFS_COMPRESSION_NONE);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_COMPRESSION_LEVEL), 3);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_COMPRESSION_FRAME_BYTES), 262144);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_DURABILITY), TFS_DURABILITY_ASYNC);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_UID), -1);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_GID), -1);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_UMASK), 022);
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const char *def = tfs_conf_desc(k)->def_string;

		CHECKF(!c.set[k] && (def ? c.s[k] && !strcmp(c.s[k], def)
					 : !c.s[k]),
		       "key %d", k);
	}
	CHECK(!strcmp(c.s[TFS_CONF_CLUSTER_ETCD], ""));
	CHECK(!strcmp(c.s[TFS_CONF_LISTEN], ":7092"));
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_NODE_ID), 0);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_ACKS), TFS_ACKS_ALL);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_MIN_INSYNC_REPLICAS), 2);
	tfs_conf_release(&c);
	tfs_conf_release(&c);
}

static void test_bool(void)
{
	static const char *const yes[] = { "true", "yes", "on", "1", "TRUE",
					   "Yes", " on " };
	static const char *const no[] = { "false", "no", "off", "0", "False",
					  "NO", "\toff" };
	enum tfs_conf_key k = TFS_CONF_FUSE_CLONE_FD;

	TEST("bool values");
	for (size_t i = 0; i < TFS_ARRAY_SIZE(yes); i++)
		CHECKF(parse(k, yes[i]) == 1, "'%s': %s", yes[i], err);
	for (size_t i = 0; i < TFS_ARRAY_SIZE(no); i++)
		CHECKF(parse(k, no[i]) == 0, "'%s': %s", no[i], err);
	CHECK(fails_with(k, "2", "fuse.clone_fd: '2' is not a boolean"));
	CHECK(fails_with(k, "", "is not a boolean"));
	CHECK(fails_with(k, "truex", "is not a boolean"));
	CHECK(fails_with(k, "t", "is not a boolean"));
	CHECK(fails_with(k, "enabled", "is not a boolean"));
}

static void test_int(void)
{
	enum tfs_conf_key k = TFS_CONF_FUSE_THREADS;

	TEST("integer values and ranges");
	CHECK_EQ(parse(k, "1"), 1);
	CHECK_EQ(parse(k, "64"), 64);
	CHECK_EQ(parse(k, " 16\t"), 16);
	CHECK_EQ(parse(k, "016"), 16);
	CHECK_EQ(parse(TFS_CONF_NUM_PARTITIONS, "1048576"), 1048576);
	CHECK(fails_with(k, "0", "fuse.threads: '0' is out of range "
				 "(must be between 1 and 64)"));
	CHECK(fails_with(k, "65", "must be between 1 and 64"));
	CHECK(fails_with(k, "-1", "must be between 1 and 64"));
	CHECK(fails_with(k, "8x", "fuse.threads: '8x' is not an integer"));
	CHECK(fails_with(k, "8K", "is not an integer"));
	CHECK(fails_with(k, "0x10", "is not an integer"));
	CHECK(fails_with(k, "1.5", "is not an integer"));
	CHECK(fails_with(k, "+4", "is not an integer"));
	CHECK(fails_with(k, "", "is not an integer"));
	CHECK(fails_with(k, "-", "is not an integer"));
	CHECK(fails_with(k, "1 2", "is not an integer"));
	CHECK(fails_with(k, "99999999999999999999999", "out of range"));
	CHECK(fails_with(k, "-99999999999999999999999", "out of range"));
	CHECK(fails_with(TFS_CONF_NUM_PARTITIONS, "1048577",
			 "between 1 and 1048576"));
	CHECK(fails_with(TFS_CONF_COMPRESSION_LEVEL, "20",
			 "between 1 and 19"));
}

static void test_bytes(void)
{
	enum tfs_conf_key k = TFS_CONF_SEGMENT_BYTES;
	enum tfs_conf_key r = TFS_CONF_RETENTION_BYTES;

	TEST("size suffixes");
	CHECK_EQ(parse(k, "4096"), 4096);
	CHECK_EQ(parse(k, "8192B"), 8192);
	CHECK_EQ(parse(k, "4K"), 4 * KiB);
	CHECK_EQ(parse(k, "4KiB"), 4 * KiB);
	CHECK_EQ(parse(k, "4kib"), 4 * KiB);
	CHECK_EQ(parse(k, "4 k"), 4 * KiB);
	CHECK_EQ(parse(k, "64M"), 64 * MiB);
	CHECK_EQ(parse(k, "64 MiB"), 64 * MiB);
	CHECK_EQ(parse(k, "64mib"), 64 * MiB);
	CHECK_EQ(parse(k, "1G"), GiB);
	CHECK_EQ(parse(k, "16GiB"), 16 * GiB);
	CHECK_EQ(parse(k, "16 gIb "), 16 * GiB);
	CHECK_EQ(parse(r, "1T"), TiB);
	CHECK_EQ(parse(r, "3TiB"), 3 * TiB);
	CHECK_EQ(parse(r, "4194304TiB"), INT64_C(1) << 62);
	CHECK(fails_with(k, "12x", "segment.bytes: '12x' is not a size "
				   "(e.g. 64MiB)"));
	CHECK(fails_with(k, "1KB", "is not a size"));
	CHECK(fails_with(k, "1 K B", "is not a size"));
	CHECK(fails_with(k, "K", "is not a size"));
	CHECK(fails_with(k, "1.5G", "is not a size"));
	CHECK(fails_with(k, "1P", "is not a size"));

	TEST("size ranges");
	CHECK(fails_with(k, "1K", "segment.bytes: '1K' is out of range "
				  "(must be between 4KiB and 16GiB)"));
	CHECK(fails_with(k, "17G", "between 4KiB and 16GiB"));
	CHECK(fails_with(k, "4095", "between 4KiB and 16GiB"));
	CHECK_EQ(parse(k, "17179869184"), 16 * GiB);
	CHECK(fails_with(k, "17179869185", "out of range"));
	CHECK(fails_with(TFS_CONF_MAX_RECORD_BYTES, "65M",
			 "between 1 and 64MiB"));
	CHECK_EQ(parse(TFS_CONF_MAX_RECORD_BYTES, "1"), 1);
	CHECK(fails_with(TFS_CONF_COMPRESSION_FRAME_BYTES, "32M",
			 "between 4KiB and 16MiB"));
	/* 2^63 and beyond overflow and are reported as out of range. */
	CHECK(fails_with(r, "8388608TiB", "out of range"));
	CHECK(fails_with(r, "9223372036854775807T", "out of range"));
	CHECK(fails_with(r, "9223372036854775808", "out of range"));
	CHECK(fails_with(r, "4194305TiB", "(must be -1 or at least 0)"));
}

static void test_ms(void)
{
	enum tfs_conf_key k = TFS_CONF_SEGMENT_MS;

	TEST("duration units");
	CHECK_EQ(parse(k, "1000"), 1000);
	CHECK_EQ(parse(k, "1500ms"), 1500);
	CHECK_EQ(parse(k, "1s"), 1000);
	CHECK_EQ(parse(k, "90 s"), 90000);
	CHECK_EQ(parse(k, "5m"), 300000);
	CHECK_EQ(parse(k, "2h"), 7200000);
	CHECK_EQ(parse(k, "7d"), 604800000);
	CHECK_EQ(parse(k, "36500d"), INT64_C(36500) * 86400000);
	/* Values written with echo (xattrs) end in a newline. */
	CHECK_EQ(parse(k, "1d\n"), 86400000);
	CHECK_EQ(parse(TFS_CONF_FUSE_CLONE_FD, "off\n"), 0);
	CHECK_EQ(parse(TFS_CONF_DURABILITY, "sync\n"), TFS_DURABILITY_SYNC);
	CHECK(fails_with(k, "1M", "segment.ms: '1M' is not a duration"));
	CHECK(fails_with(k, "1S", "is not a duration"));
	CHECK(fails_with(k, "1w", "is not a duration"));
	CHECK(fails_with(k, "1h30m", "is not a duration"));
	CHECK(fails_with(k, "ms", "is not a duration"));

	TEST("duration ranges");
	CHECK(fails_with(k, "999", "segment.ms: '999' is out of range "
				   "(must be at least 1s)"));
	CHECK(fails_with(k, "999999999999999d", "out of range"));
	CHECK(fails_with(TFS_CONF_FLUSH_MS, "0", "between 1ms and 1d"));
	CHECK(fails_with(TFS_CONF_FLUSH_MS, "25h", "between 1ms and 1d"));
	CHECK_EQ(parse(TFS_CONF_FLUSH_MS, "1d"), 86400000);
	CHECK_EQ(parse(TFS_CONF_FLUSH_MS, "1"), 1);
	CHECK(fails_with(TFS_CONF_RETENTION_CHECK_INTERVAL_MS, "99ms",
			 "between 100ms and 1d"));
	CHECK_EQ(parse(TFS_CONF_RETENTION_CHECK_INTERVAL_MS, "100ms"), 100);
}

static void test_minus_one(void)
{
	TEST("-1 only where the minimum allows it");
	CHECK_EQ(parse(TFS_CONF_RETENTION_MS, "-1"), -1);
	CHECK_EQ(parse(TFS_CONF_RETENTION_MS, " -1 "), -1);
	CHECK_EQ(parse(TFS_CONF_RETENTION_BYTES, "-1"), -1);
	CHECK_EQ(parse(TFS_CONF_RETENTION_MS, "-1\n"), -1);
	CHECK_EQ(parse(TFS_CONF_RETENTION_MS, "0"), 0);
	CHECK_EQ(parse(TFS_CONF_RETENTION_BYTES, "0"), 0);
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-2",
			 "retention.ms: '-2' is out of range "
			 "(must be -1 or at least 0ms)"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-1s", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-1K", "out of range"));
	CHECK(fails_with(TFS_CONF_SEGMENT_BYTES, "-1", "out of range"));
	CHECK(fails_with(TFS_CONF_SEGMENT_MS, "-1", "out of range"));
	CHECK(fails_with(TFS_CONF_FLUSH_MS, "-1", "out of range"));
	CHECK(fails_with(TFS_CONF_MAX_RECORD_BYTES, "-1", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "--1", "is not a duration"));

	TEST("negative zeros and -1 with a unit are refused");
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-0",
			 "retention.ms: '-0' is out of range "
			 "(must be -1 or at least 0ms)"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, " -0 ", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-0\n", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-00", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-0ms", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-0 ms", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-0d", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-01", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-1ms", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-0",
			 "retention.bytes: '-0' is out of range "
			 "(must be -1 or at least 0)"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-0K", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-0KiB", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-000", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-1B", "out of range"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-01", "out of range"));
	/* Keys whose minimum is 0 or more refuse them as well. */
	CHECK(fails_with(TFS_CONF_COMPRESSION_CACHE_BYTES, "-0",
			 "out of range"));
	CHECK(fails_with(TFS_CONF_COMPRESSION_LEVEL, "-0", "out of range"));
	CHECK(fails_with(TFS_CONF_FUSE_THREADS, "-00", "out of range"));
	/* Syntax errors are still reported as such. */
	CHECK(fails_with(TFS_CONF_RETENTION_MS, "-0x", "is not a duration"));
	CHECK(fails_with(TFS_CONF_RETENTION_BYTES, "-0Q", "is not a size"));
	CHECK(fails_with(TFS_CONF_FUSE_THREADS, "-0K", "is not an integer"));
}

static void test_owner_keys(void)
{
	char buf[16];

	TEST("uid, gid: -1 or an id up to 4294967294");
	CHECK_EQ(parse(TFS_CONF_UID, "-1"), -1);
	CHECK_EQ(parse(TFS_CONF_UID, "0"), 0);
	CHECK_EQ(parse(TFS_CONF_UID, "65534"), 65534);
	CHECK_EQ(parse(TFS_CONF_GID, "4294967294"), 4294967294LL);
	CHECK(fails_with(TFS_CONF_UID, "4294967295",
			 "uid: '4294967295' is out of range (must be -1 or "
			 "between 0 and 4294967294)"));
	CHECK(fails_with(TFS_CONF_GID, "-2", "gid: '-2' is out of range"));
	CHECK(fails_with(TFS_CONF_UID, "nobody",
			 "uid: 'nobody' is not an integer"));
	CHECK(fails_with(TFS_CONF_GID, "99999999999999999999", "out of range"));

	TEST("umask: octal digits, at most 0777");
	CHECK_EQ(parse(TFS_CONF_UMASK, "022"), 022);
	CHECK_EQ(parse(TFS_CONF_UMASK, "22"), 022);
	CHECK_EQ(parse(TFS_CONF_UMASK, " 0027 "), 027);
	CHECK_EQ(parse(TFS_CONF_UMASK, "0"), 0);
	CHECK_EQ(parse(TFS_CONF_UMASK, "777"), 0777);
	CHECK_EQ(parse(TFS_CONF_UMASK, "0000000000000000000000000002"), 2);
	CHECK(fails_with(TFS_CONF_UMASK, "0999",
			 "umask: '0999' is not an octal mode (e.g. 022)"));
	CHECK(fails_with(TFS_CONF_UMASK, "18", "is not an octal mode"));
	CHECK(fails_with(TFS_CONF_UMASK, "", "is not an octal mode"));
	CHECK(fails_with(TFS_CONF_UMASK, "-1", "is not an octal mode"));
	CHECK(fails_with(TFS_CONF_UMASK, "0x12", "is not an octal mode"));
	CHECK(fails_with(TFS_CONF_UMASK, "02 2", "is not an octal mode"));
	CHECK(fails_with(TFS_CONF_UMASK, "1000",
			 "umask: '1000' is out of range (must be between 0 "
			 "and 0777)"));
	CHECK(fails_with(TFS_CONF_UMASK, "77777777777777777777777777",
			 "out of range"));
	tfs_conf_format(TFS_CONF_UMASK, 022, buf, sizeof(buf));
	CHECKF(!strcmp(buf, "022"), "%s", buf);
	tfs_conf_format(TFS_CONF_UMASK, 0, buf, sizeof(buf));
	CHECKF(!strcmp(buf, "0"), "%s", buf);
}

static void test_enum(void)
{
	TEST("enum values");
	CHECK_EQ(parse(TFS_CONF_COMPRESSION, "none"), TFS_COMPRESSION_NONE);
	CHECK_EQ(parse(TFS_CONF_COMPRESSION, "zstd"), TFS_COMPRESSION_ZSTD);
	CHECK_EQ(parse(TFS_CONF_COMPRESSION, " zstd "), TFS_COMPRESSION_ZSTD);
	CHECK_EQ(parse(TFS_CONF_DURABILITY, "sync"), TFS_DURABILITY_SYNC);
	CHECK_EQ(parse(TFS_CONF_DURABILITY, "async"), TFS_DURABILITY_ASYNC);
	CHECK_EQ(parse(TFS_CONF_LOG_LEVEL, "error"), 0);
	CHECK_EQ(parse(TFS_CONF_LOG_LEVEL, "debug"), 3);
	CHECK(fails_with(TFS_CONF_COMPRESSION, "gzip",
			 "compression: 'gzip' is not one of none, zstd"));
	CHECK(fails_with(TFS_CONF_COMPRESSION, "ZSTD", "is not one of"));
	CHECK(fails_with(TFS_CONF_COMPRESSION, "1", "is not one of"));
	CHECK(fails_with(TFS_CONF_COMPRESSION, "", "is not one of"));
	CHECK(fails_with(TFS_CONF_LOG_LEVEL, "warning",
			 "is not one of error, warn, info, debug"));
}

static void test_errors(void)
{
	struct tfs_conf c;
	int64_t v = 0;
	char small[8];

	TEST("messages: unknown keys, suggestions, small buffers");
	tfs_conf_init(&c);
	CHECK_EQ(tfs_conf_set(&c, "segment.byte", "1G", err, sizeof(err)),
		 TFS_EBADCONF);
	CHECKF(!strcmp(err, "unknown key 'segment.byte' (did you mean "
			    "'segment.bytes'?)"),
	       "%s", err);
	CHECK_EQ(tfs_conf_set(&c, "retention.msx", "1", err, sizeof(err)),
		 TFS_EBADCONF);
	CHECK(strstr(err, "did you mean 'retention.ms'?") != NULL);
	CHECK_EQ(tfs_conf_set(&c, "fuse_threads", "1", err, sizeof(err)),
		 TFS_EBADCONF);
	CHECK(strstr(err, "did you mean 'fuse.threads'?") != NULL);
	CHECK_EQ(tfs_conf_set(&c, "frobnicate", "1", err, sizeof(err)),
		 TFS_EBADCONF);
	CHECKF(!strcmp(err, "unknown key 'frobnicate'"), "%s", err);
	CHECK_EQ(tfs_conf_set(&c, "", "1", err, sizeof(err)), TFS_EBADCONF);
	CHECKF(!strcmp(err, "unknown key ''"), "%s", err);
	CHECK_EQ(tfs_conf_set(&c, "segment.bytes", NULL, err, sizeof(err)),
		 TFS_EBADCONF);
	CHECKF(!strcmp(err, "segment.bytes: missing value"), "%s", err);
	CHECK_EQ(tfs_conf_set(&c, "segment.bytes", "1", NULL, 0),
		 TFS_EBADCONF);
	CHECK_EQ(tfs_conf_set(&c, "segment.bytes", "x", small, sizeof(small)),
		 TFS_EBADCONF);
	CHECK_EQ(strlen(small), sizeof(small) - 1);
	CHECK_EQ(tfs_conf_parse(TFS_CONF__COUNT, "1", &v, err, sizeof(err)),
		 TFS_EBADCONF);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), GiB);
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		CHECKF(!c.set[k], "key %d set by a failed call", k);
	tfs_conf_release(&c);
}

static void test_set_copy(void)
{
	struct tfs_conf c, d;

	TEST("set and copy");
	tfs_conf_init(&c);
	CHECK_EQ(tfs_conf_set(&c, "segment.bytes", "64MiB", err, sizeof(err)),
		 0);
	CHECK_EQ(tfs_conf_set(&c, "durability", "sync", err, sizeof(err)), 0);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), 64 * MiB);
	CHECK(c.set[TFS_CONF_SEGMENT_BYTES] && c.set[TFS_CONF_DURABILITY]);
	CHECK(!c.set[TFS_CONF_SEGMENT_MS]);
	tfs_conf_copy(&d, &c);
	CHECK_EQ(tfs_conf_get(&d, TFS_CONF_SEGMENT_BYTES), 64 * MiB);
	CHECK_EQ(tfs_conf_get(&d, TFS_CONF_DURABILITY), TFS_DURABILITY_SYNC);
	CHECK(d.set[TFS_CONF_SEGMENT_BYTES]);
	CHECK_EQ(tfs_conf_set(&d, "segment.bytes", "1G", err, sizeof(err)), 0);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), 64 * MiB);
	tfs_conf_release(&c);
	tfs_conf_release(&d);
}

/* parse(format(v)) == v for the default, the bounds and every name. */
static void check_round_trip(enum tfs_conf_key k, int64_t v)
{
	const struct tfs_conf_desc *d = tfs_conf_desc(k);
	char buf[64];
	int n = tfs_conf_format(k, v, buf, sizeof(buf));

	CHECKF(n > 0 && (size_t)n == strlen(buf), "%s: length %d", d->name, n);
	CHECKF(parse(k, buf) == v, "%s: %lld formats as '%s': %s", d->name,
	       (long long)v, buf, err);
}

static void test_format(void)
{
	char buf[64];

	TEST("format round-trips for every key");
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const struct tfs_conf_desc *d = tfs_conf_desc(k);

		if (d->type == TFS_CONF_STRING) {
			/* Strings are stored as given. */
			struct tfs_conf t;

			tfs_conf_init(&t);
			CHECKF(tfs_conf_set(&t, d->name, "some value", err,
					    sizeof(err)) == 0,
			       "%s: %s", d->name, err);
			CHECK(t.set[k] && !strcmp(t.s[k], "some value"));
			tfs_conf_release(&t);
			continue;
		}
		check_round_trip(k, d->def);
		if (d->type == TFS_CONF_BOOL) {
			check_round_trip(k, 0);
			check_round_trip(k, 1);
		} else if (d->type == TFS_CONF_ENUM) {
			for (int i = 0; d->enum_values[i]; i++)
				check_round_trip(k, i);
		} else if (d->type != TFS_CONF_STRING) {
			check_round_trip(k, d->min);
			check_round_trip(k, d->max);
		}
	}

	TEST("format output");
	tfs_conf_format(TFS_CONF_SEGMENT_BYTES, GiB, buf, sizeof(buf));
	CHECK(!strcmp(buf, "1073741824"));
	tfs_conf_format(TFS_CONF_FUSE_CLONE_FD, 1, buf, sizeof(buf));
	CHECK(!strcmp(buf, "true"));
	tfs_conf_format(TFS_CONF_DELETE_TOPIC_ENABLE, 0, buf, sizeof(buf));
	CHECK(!strcmp(buf, "false"));
	tfs_conf_format(TFS_CONF_COMPRESSION, TFS_COMPRESSION_ZSTD, buf,
			sizeof(buf));
	CHECK(!strcmp(buf, "zstd"));
	tfs_conf_format(TFS_CONF_COMPRESSION, 7, buf, sizeof(buf));
	CHECK(!strcmp(buf, "7"));
	CHECK_EQ(tfs_conf_format(TFS_CONF_LOG_LEVEL, 3, buf, 3), 5);
	CHECK(!strcmp(buf, "de"));
	CHECK_EQ(tfs_conf_format(TFS_CONF_RETENTION_MS, -1, NULL, 0), 2);
}

/* Loads text as a config file on top of the defaults into *c. */
static int load_text(struct tfs_conf *c, const char *name, const char *text)
{
	char *path = write_file(name, text);
	int rc;

	tfs_conf_init(c);
	err[0] = '\0';
	rc = tfs_conf_load_file(c, path, err, sizeof(err));
	free(path);
	return rc;
}

/* Whether loading text fails with err equal to "<tmpdir>/name:want". */
static int load_fails(const char *name, const char *text, const char *want)
{
	struct tfs_conf c;
	char *full = tfs_asprintf("%s/%s:%s", tmpdir, name, want);
	int rc = load_text(&c, name, text), ok = 1;

	if (rc != TFS_EBADCONF || strcmp(err, full)) {
		fprintf(stderr, "  load %s: rc %d, err \"%s\"\n  want \"%s\"\n",
			name, rc, err, full);
		ok = 0;
	}
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		if (c.set[k])
			ok = 0;
	free(full);
	tfs_conf_release(&c);
	return ok;
}

static void test_file(void)
{
	struct tfs_conf c;

	TEST("file: top level, [topicfs], comments, blanks, CRLF");
	CHECK_EQ(load_text(&c, "good.conf",
			   "# a comment\n"
			   "; another comment\n"
			   "\n"
			   "fuse.threads = 4\n"
			   "   sync.threads=3   \n"
			   "\tflush.ms = 250ms # inline comment\n"
			   "[topicfs]\n"
			   "  segment.bytes = 64 MiB ; inline comment\n"
			   "    retention.ms = 1d\n"
			   "compression=zstd\r\n"
			   "durability = sync\n"
			   "  # indented comment\n"
			   "[ topicfs ]\n"
			   "fuse.threads = 6\n"),
		 0);
	CHECKF(err[0] == '\0', "%s", err);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_FUSE_THREADS), 6);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SYNC_THREADS), 3);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_FLUSH_MS), 250);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), 64 * MiB);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_MS), 86400000);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_COMPRESSION), TFS_COMPRESSION_ZSTD);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_DURABILITY), TFS_DURABILITY_SYNC);
	CHECK(c.set[TFS_CONF_FUSE_THREADS] && c.set[TFS_CONF_DURABILITY]);
	CHECK(!c.set[TFS_CONF_SEGMENT_MS]);
	tfs_conf_release(&c);

	TEST("file: empty, comments only, long comment lines");
	CHECK_EQ(load_text(&c, "empty.conf", ""), 0);
	tfs_conf_release(&c);
	char *longc = tfs_malloc(3000);
	memset(longc, '#', 2998);
	longc[2998] = '\n';
	longc[2999] = '\0';
	CHECK_EQ(load_text(&c, "longcomment.conf", longc), 0);
	tfs_conf_release(&c);
	CHECK_EQ(load_text(&c, "noeol.conf", "num.partitions = 12"), 0);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_NUM_PARTITIONS), 12);
	tfs_conf_release(&c);

	TEST("file: the first bad line is reported with path and line");
	CHECK(load_fails("badval.conf",
			 "# ok\nfuse.threads = 4\n\nsegment.bytes = 12x\n"
			 "fuse.threads = 99\n",
			 "4: segment.bytes: '12x' is not a size (e.g. 64MiB)"));
	CHECK(load_fails("range.conf", "[topicfs]\nfuse.threads = 99\n",
			 "2: fuse.threads: '99' is out of range "
			 "(must be between 1 and 64)"));
	CHECK(load_fails("unknown.conf", "\n\n\nretention.m = 5\n",
			 "4: unknown key 'retention.m' (did you mean "
			 "'retention.ms'?)"));
	CHECK(load_fails("section.conf",
			 "fuse.threads = 4\n[kafka]\nretention.ms = 1\n",
			 "2: unknown section [kafka] (keys go at the top "
			 "level or under [topicfs])"));
	CHECK(load_fails("emptysection.conf", "# x\n[other]\n",
			 "2: unknown section [other] (keys go at the top "
			 "level or under [topicfs])"));
	CHECK(load_fails("syntax.conf", "fuse.threads = 4\njust words\n",
			 "2: expected 'key = value' or '[topicfs]'"));
	CHECK(load_fails("bracket.conf", "[topicfs\n",
			 "1: expected 'key = value' or '[topicfs]'"));
	CHECK(load_fails("syntaxfirst.conf",
			 "a\nfuse.threads = 99\nsegment.bytes = x\n",
			 "1: expected 'key = value' or '[topicfs]'"));
	CHECK(load_fails("valuefirst.conf",
			 "fuse.threads = 99\nwords\n",
			 "1: fuse.threads: '99' is out of range "
			 "(must be between 1 and 64)"));
	CHECK(load_fails("emptyvalue.conf", "compression =\n",
			 "1: compression: '' is not one of none, zstd"));
	CHECK(load_fails("emptyname.conf", "= 5\n", "1: unknown key ''"));
	CHECK(load_fails("hash.conf", "durability = sync#x\n",
			 "1: durability: 'sync#x' is not one of async, sync"));
	char *nul = write_bytes("nul2.conf", "fuse.threads = 4\nx\0y = 1\n",
				24);
	tfs_conf_init(&c);
	CHECK_EQ(tfs_conf_load_file(&c, nul, err, sizeof(err)), TFS_EBADCONF);
	CHECK(strstr(err, "nul2.conf:2: line contains a NUL byte") != NULL);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_FUSE_THREADS), 8);
	tfs_conf_release(&c);
	free(nul);

	char *longv = tfs_malloc(600);
	strcpy(longv, "log.level = ");
	memset(longv + 12, 'x', 500);
	strcpy(longv + 512, "\n");
	tfs_conf_init(&c);
	char *lpath = write_file("longline.conf", longv);
	CHECK_EQ(tfs_conf_load_file(&c, lpath, err, sizeof(err)),
		 TFS_EBADCONF);
	CHECKF(strstr(err, "longline.conf:1: line is longer than") != NULL,
	       "%s", err);
	tfs_conf_release(&c);
	free(lpath);
	free(longv);
	free(longc);
}

static void test_file_errors(void)
{
	struct tfs_conf c;
	char *path;

	TEST("file: a failed load leaves the configuration unchanged");
	tfs_conf_init(&c);
	tfs_conf_set(&c, "retention.ms", "5s", err, sizeof(err));
	path = write_file("partial.conf",
			  "segment.bytes = 64M\nretention.ms = 1h\nbad\n");
	CHECK_EQ(tfs_conf_load_file(&c, path, err, sizeof(err)), TFS_EBADCONF);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), GiB);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_MS), 5000);
	CHECK(!c.set[TFS_CONF_SEGMENT_BYTES] && c.set[TFS_CONF_RETENTION_MS]);
	free(path);

	TEST("file: missing file, directory");
	path = tfs_asprintf("%s/missing.conf", tmpdir);
	CHECK_EQ(tfs_conf_load_file(&c, path, err, sizeof(err)), -ENOENT);
	CHECKF(strstr(err, "missing.conf: No such file or directory") != NULL,
	       "%s", err);
	free(path);
	CHECK_EQ(tfs_conf_load_file(&c, tmpdir, err, sizeof(err)), -EISDIR);
	CHECKF(strstr(err, tmpdir) != NULL, "%s", err);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_MS), 5000);
	tfs_conf_release(&c);
}

static void test_precedence(void)
{
	struct tfs_conf c;
	char *path;

	TEST("precedence: defaults < file < set (-o)");
	tfs_conf_init(&c);
	path = write_file("prec.conf", "segment.bytes = 64MiB\n"
				       "retention.ms = 1d\n");
	CHECK_EQ(tfs_conf_load_file(&c, path, err, sizeof(err)), 0);
	CHECK_EQ(tfs_conf_set(&c, "segment.bytes", "128MiB", err, sizeof(err)),
		 0);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_BYTES), 128 * MiB);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_RETENTION_MS), 86400000);
	CHECK_EQ(tfs_conf_get(&c, TFS_CONF_SEGMENT_MS), 604800000);
	CHECK(c.set[TFS_CONF_SEGMENT_BYTES] && c.set[TFS_CONF_RETENTION_MS]);
	CHECK(!c.set[TFS_CONF_SEGMENT_MS]);
	tfs_conf_release(&c);
	free(path);
}

/*
 * etc/topicfs.conf parses as is (everything commented out: the defaults),
 * and with every "# key = value" line uncommented it sets every key to
 * its default: the example can neither miss a key nor show a wrong default.
 */
static void test_example(void)
{
	struct tfs_conf c;
	struct tfs_buf b = TFS_BUF_INIT;
	char line[512];
	bool seen[TFS_CONF__COUNT] = { false };
	FILE *f;
	char *path;

	TEST("etc/topicfs.conf loads and lists every key with its default");
	tfs_conf_init(&c);
	CHECKF(tfs_conf_load_file(&c, "etc/topicfs.conf", err, sizeof(err)) ==
		       0,
	       "%s", err);
	for (int k = 0; k < TFS_CONF__COUNT; k++)
		CHECKF(!c.set[k] && c.v[k] == tfs_conf_desc(k)->def, "key %d",
		       k);
	tfs_conf_release(&c);

	f = fopen("etc/topicfs.conf", "r");
	CHECK(f != NULL);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char name[64], value[64];
		int end = 0;

		/* Only "# key = value" lines, not prose that mentions keys;
		 * a string key's empty default is "# key =". */
		if (((sscanf(line, "# %63[a-z._] = %63s%n", name, value,
			     &end) == 2 &&
		      !strcmp(line + end, "\n")) ||
		     (sscanf(line, "# %63[a-z._] =%n", name, &end) == 1 &&
		      end > 0 && !strcmp(line + end, "\n"))) &&
		    tfs_conf_find(name) >= 0) {
			seen[tfs_conf_find(name)] = true;
			tfs_buf_addf(&b, "%s", line + 2);
		} else {
			tfs_buf_addf(&b, "%s", line);
		}
	}
	fclose(f);
	path = write_file("uncommented.conf", b.data);
	tfs_conf_init(&c);
	CHECKF(tfs_conf_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const struct tfs_conf_desc *d = tfs_conf_desc(k);

		CHECKF(seen[k] && c.set[k], "%s missing", d->name);
		if (d->type == TFS_CONF_STRING)
			CHECKF(c.s[k] && !strcmp(c.s[k], d->def_string),
			       "%s: '%s', default '%s'", d->name,
			       c.s[k] ? c.s[k] : "(null)", d->def_string);
		else
			CHECKF(c.v[k] == d->def, "%s: %lld, default %lld",
			       d->name, (long long)c.v[k], (long long)d->def);
	}
	tfs_conf_release(&c);
	tfs_buf_release(&b);
	free(path);
}

static void test_doc(void)
{
	char *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	FILE *f;

	TEST("the reference: every key, deterministic");
	f = open_memstream(&a, &na);
	tfs_conf_write_doc(f);
	fclose(f);
	f = open_memstream(&b, &nb);
	tfs_conf_write_doc(f);
	fclose(f);
	CHECK(na > 1000 && na == nb && !memcmp(a, b, na));
	CHECK(!strncmp(a, "# ", 2));
	CHECK(strstr(a, "user.topicfs.<key>") != NULL);
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		char *h = tfs_asprintf("\n### %s\n", tfs_conf_desc(k)->name);

		CHECKF(strstr(a, h) != NULL, "no heading for %s",
		       tfs_conf_desc(k)->name);
		free(h);
	}
	CHECK(strstr(a, "*Type:* bytes; *scope:* topic; *default:* `1GiB`;")
	      != NULL);

	TEST("the reference: no wrapped line reads as Markdown markup");
	for (char *line = a; line && *line;) {
		char *next = strchr(line, '\n');
		size_t d = strspn(line, "0123456789");

		if (*line == '#')
			CHECKF(!strncmp(line, "# topicfs", 9) ||
				       !strncmp(line, "## ", 3) ||
				       !strncmp(line, "### ", 4),
			       "%.40s", line);
		CHECKF(strncmp(line, "- ", 2) && strncmp(line, "* ", 2) &&
			       strncmp(line, "+ ", 2) && *line != '>' &&
			       !(d && (line[d] == '.' || line[d] == ')')),
		       "%.40s", line);
		line = next ? next + 1 : NULL;
	}
	free(a);
	free(b);
}

static void cleanup(void)
{
	char *cmd = tfs_asprintf("rm -rf '%s'", tmpdir);

	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_table();
	test_defaults();
	test_bool();
	test_int();
	test_bytes();
	test_ms();
	test_minus_one();
	test_owner_keys();
	test_enum();
	test_errors();
	test_set_copy();
	test_format();
	test_file();
	test_file_errors();
	test_precedence();
	test_example();
	test_doc();
	cleanup();
	return check_done();
}
