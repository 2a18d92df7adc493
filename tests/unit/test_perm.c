/*
 * Unit tests for owners and modes in the store: the defaults (uid, gid,
 * umask), getters and setters of the root, topics and partitions,
 * persistence across a reopen (topic.json and meta), topic.json files
 * written before permissions existed, invalid values from callers and
 * from disk, growth, the cluster's apply, and a failed save.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"
#include "conf.h"
#include "err.h"
#include "store.h"
#include "sysio.h"
#include "util.h"

static char root[64];
static int counter;

/* A configuration with the given overrides ("key", "value", ..., NULL).
 * The flusher stays quiet so that armed syscall faults hit our calls. */
static void make_conf(struct tfs_conf *c, ...)
{
	va_list ap;
	const char *k;
	char err[256];

	tfs_conf_init(c);
	if (tfs_conf_set(c, "flush.ms", "1d", err, sizeof(err)))
		abort();
	va_start(ap, c);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);

		if (tfs_conf_set(c, k, v, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			abort();
		}
	}
	va_end(ap);
}

static char *new_store_dir(void)
{
	return tfs_asprintf("%s/s%d", root, counter++);
}

static bool perm_is(const struct tfs_perm *p, uint32_t uid, uint32_t gid,
		    uint32_t mode)
{
	if (p->uid == uid && p->gid == gid && p->mode == mode)
		return true;
	fprintf(stderr, "  perm: %u %u %04o, want %u %u %04o\n", p->uid,
		p->gid, p->mode, uid, gid, mode);
	return false;
}

static bool part_is(struct tfs_topic *t, uint32_t i, uint32_t uid, uint32_t gid,
		    uint32_t mode)
{
	struct tfs_perm p = { 0 };

	return tfs_topic_get_part_perm(t, i, &p) == 0 &&
	       perm_is(&p, uid, gid, mode);
}

static bool dir_is(struct tfs_topic *t, uint32_t uid, uint32_t gid,
		   uint32_t mode)
{
	struct tfs_perm p;

	tfs_topic_get_perm(t, &p);
	return perm_is(&p, uid, gid, mode);
}

static int create(struct tfs_store *s, const char *name, uint32_t parts,
		  const struct tfs_topic_perms *perms, struct tfs_topic **out)
{
	return tfs_store_create_topic(
		s,
		&(struct tfs_topic_spec){ .name = name, .partitions = parts,
					  .perms = perms },
		out);
}

/* Reads DIR/rel into a string (or NULL). */
static char *slurp(const char *dir, const char *rel)
{
	char *path = tfs_asprintf("%s/%s", dir, rel), *text = NULL;
	int rc = tfs_sys_read_file(AT_FDCWD, path, 1 << 20, &text, NULL);

	free(path);
	return rc ? NULL : text;
}

static void spew(const char *dir, const char *rel, const char *text)
{
	char *path = tfs_asprintf("%s/%s", dir, rel);
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f)) {
		perror(path);
		abort();
	}
	free(path);
}

static void test_defaults(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_perm p;
	struct tfs_topic_perms tp;
	char *dir = new_store_dir();
	uint32_t uid = (uint32_t)geteuid(), gid = (uint32_t)getegid();

	TEST("defaults: the daemon's ids, dirs 0755, partitions 0644");
	make_conf(&c, NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	tfs_store_root_perm(s, &p);
	CHECK(perm_is(&p, uid, gid, 0755));
	CHECK_EQ(create(s, "t", 2, NULL, &t), 0);
	CHECK(dir_is(t, uid, gid, 0755));
	CHECK(part_is(t, 0, uid, gid, 0644));
	CHECK(part_is(t, 1, uid, gid, 0644));
	CHECK_EQ(tfs_topic_get_part_perm(t, 2, &p), -ENOENT);
	tfs_topic_get_perms(t, &tp);
	CHECK(perm_is(&tp.dir, uid, gid, 0755));
	CHECK(perm_is(&tp.parts, uid, gid, 0644));
	CHECK_EQ(tp.noverrides, 0);
	tfs_topic_perms_release(&tp);
	tfs_topic_unref(t);

	TEST("mkdir's perms: a user's own ids, root's become the defaults");
	tfs_store_new_topic_perms(s, 1000, 100, 0775, &tp);
	CHECK(perm_is(&tp.dir, 1000, 100, 0755));
	CHECK(perm_is(&tp.parts, 1000, 100, 0644));
	CHECK(tp.noverrides == 0 && tp.overrides == NULL);
	tfs_store_new_topic_perms(s, 0, 0, 01777, &tp);
	CHECK(perm_is(&tp.dir, uid, gid, 01755));
	CHECK(perm_is(&tp.parts, uid, gid, 0644));
	CHECK_EQ(create(s, "mine", 1, &tp, &t), 0);
	CHECK(dir_is(t, uid, gid, 01755));
	tfs_topic_unref(t);
	tfs_store_close(s);
	tfs_conf_release(&c);

	TEST("uid, gid and umask keys");
	make_conf(&c, "uid", "12", "gid", "34", "umask", "027", NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	tfs_store_root_perm(s, &p);
	CHECK(perm_is(&p, 12, 34, 0755));
	CHECK_EQ(create(s, "u", 1, NULL, &t), 0);
	CHECK(dir_is(t, 12, 34, 0750));
	CHECK(part_is(t, 0, 12, 34, 0640));
	tfs_topic_unref(t);
	/* Topics made before keep what they got. */
	t = tfs_store_find_topic(s, "t");
	CHECK(t && dir_is(t, uid, gid, 0755) && part_is(t, 1, uid, gid, 0644));
	tfs_topic_unref(t);
	tfs_store_new_topic_perms(s, 1000, 100, 0777, &tp);
	CHECK(perm_is(&tp.dir, 1000, 100, 0750));
	CHECK(perm_is(&tp.parts, 1000, 100, 0640));
	tfs_store_close(s);
	tfs_conf_release(&c);
	free(dir);
}

static void test_set_reopen(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_perm p;
	struct tfs_topic_perms tp;
	char *dir = new_store_dir(), *text;

	TEST("set and get: root, topic directory, one partition");
	make_conf(&c, "uid", "0", "gid", "0", NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	CHECK_EQ(create(s, "web", 3, NULL, &t), 0);
	CHECK_EQ(tfs_store_set_root_perm(s, &(struct tfs_perm){ 0, 0, 01777 }),
		 0);
	CHECK_EQ(tfs_topic_set_perm(t, &(struct tfs_perm){ 33, 4, 02770 }), 0);
	CHECK_EQ(tfs_topic_set_part_perm(t, 1,
					 &(struct tfs_perm){ 65534, 0, 0666 }),
		 0);
	CHECK(dir_is(t, 33, 4, 02770));
	/* One partition only: the others and the default stay. */
	CHECK(part_is(t, 0, 0, 0, 0644));
	CHECK(part_is(t, 1, 65534, 0, 0666));
	CHECK(part_is(t, 2, 0, 0, 0644));
	tfs_topic_get_perms(t, &tp);
	CHECK(perm_is(&tp.parts, 0, 0, 0644));
	CHECK(tp.noverrides == 1 && tp.overrides[0].partition == 1 &&
	      perm_is(&tp.overrides[0].perm, 65534, 0, 0666));
	tfs_topic_perms_release(&tp);
	CHECK(tp.overrides == NULL && tp.noverrides == 0);
	tfs_topic_perms_release(NULL);
	tfs_topic_unref(t);
	tfs_store_close(s);

	TEST("persisted: topic.json has the override, meta the mode only");
	text = slurp(dir, "topics/web/topic.json");
	CHECK(text && strstr(text, "\"65534\"") == NULL);
	CHECK(text && strstr(text, "\"1\": {") != NULL);
	CHECK(text && strstr(text, "\"mode\": \"2770\"") != NULL);
	free(text);
	text = slurp(dir, "meta");
	CHECKF(text && !strcmp(text, "topicfs-store 1\nnext_topic_id 2\n"
				     "root.mode 1777\n"),
	       "%s", text ? text : "(none)");
	free(text);

	TEST("reopen: every owner and mode as set");
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	tfs_store_root_perm(s, &p);
	CHECK(perm_is(&p, 0, 0, 01777));
	t = tfs_store_find_topic(s, "web");
	CHECK(t != NULL);
	if (!t)
		goto out;
	CHECK(dir_is(t, 33, 4, 02770));
	CHECK(part_is(t, 0, 0, 0, 0644));
	CHECK(part_is(t, 1, 65534, 0, 0666));
	CHECK(part_is(t, 2, 0, 0, 0644));

	TEST("an override set back to the default is no override");
	p = (struct tfs_perm){ 0, 0, 0644 };
	CHECK_EQ(tfs_topic_set_part_perm(t, 1, &p), 0);
	tfs_topic_get_perms(t, &tp);
	CHECK_EQ(tp.noverrides, 0);
	tfs_topic_perms_release(&tp);

	TEST("growth: new partitions get the directory's owner, 0666 & ~umask");
	CHECK_EQ(tfs_topic_set_partitions(t, 5), 0);
	CHECK(part_is(t, 2, 0, 0, 0644));
	CHECK(part_is(t, 3, 33, 4, 0644));
	CHECK(part_is(t, 4, 33, 4, 0644));
	tfs_topic_unref(t);

	TEST("root: fields back at their defaults are not recorded");
	CHECK_EQ(tfs_store_set_root_perm(s, &(struct tfs_perm){ 7, 0, 0755 }),
		 0);
	tfs_store_close(s);
	text = slurp(dir, "meta");
	CHECKF(text && !strcmp(text, "topicfs-store 1\nnext_topic_id 2\n"
				     "root.uid 7\n"),
	       "%s", text ? text : "(none)");
	free(text);
	tfs_conf_release(&c);
	/* The gid follows the key; the recorded uid stays. */
	make_conf(&c, "uid", "0", "gid", "5", NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	tfs_store_root_perm(s, &p);
	CHECK(perm_is(&p, 7, 5, 0755));
	t = tfs_store_find_topic(s, "web");
	CHECK(t && part_is(t, 3, 33, 4, 0644) && part_is(t, 4, 33, 4, 0644) &&
	      part_is(t, 1, 0, 0, 0644));
	tfs_topic_unref(t);
out:
	tfs_store_close(s);
	tfs_conf_release(&c);
	free(dir);
}

/* Replaces topic.json of topic name in dir by text. */
static void put_topic_json(const char *dir, const char *name, const char *text)
{
	char *rel = tfs_asprintf("topics/%s/topic.json", name);

	spew(dir, rel, text);
	free(rel);
}

static void test_old_topic_json(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	char *dir = new_store_dir(), *text;

	TEST("a topic.json without perm: defaults, recorded at the next write");
	make_conf(&c, NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	CHECK_EQ(create(s, "old", 2, NULL, NULL), 0);
	tfs_store_close(s);
	/* As written before permissions existed (and meta too). */
	put_topic_json(dir, "old",
		       "{\n  \"config\": {},\n  \"created\": 1795310357919,\n"
		       "  \"id\": 1,\n  \"name\": \"old\",\n"
		       "  \"partitions\": 2,\n  \"version\": 1\n}\n");
	spew(dir, "meta", "topicfs-store 1\nnext_topic_id 2\n");
	tfs_conf_release(&c);
	make_conf(&c, "uid", "1000", "gid", "1001", "umask", "002", NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	t = tfs_store_find_topic(s, "old");
	CHECK(t != NULL);
	if (!t) {
		tfs_store_close(s);
		goto out;
	}
	CHECK(dir_is(t, 1000, 1001, 0775));
	CHECK(part_is(t, 0, 1000, 1001, 0664));
	CHECK(part_is(t, 1, 1000, 1001, 0664));
	CHECK_EQ(tfs_topic_created(t), 1795310357919);
	char err[128];
	CHECK_EQ(tfs_topic_set_config(t, "retention.ms", "1d", err,
				      sizeof(err)),
		 0);
	tfs_topic_unref(t);
	tfs_store_close(s);
	text = slurp(dir, "topics/old/topic.json");
	CHECK(text && strstr(text, "\"perm\"") && strstr(text, "\"0664\"") &&
	      strstr(text, "1001"));
	free(text);
	tfs_conf_release(&c);
	/* Recorded now: another umask no longer changes it. */
	make_conf(&c, "umask", "077", NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	t = tfs_store_find_topic(s, "old");
	CHECK(t && dir_is(t, 1000, 1001, 0775) &&
	      part_is(t, 1, 1000, 1001, 0664));
	tfs_topic_unref(t);
	tfs_store_close(s);
out:
	tfs_conf_release(&c);
	free(dir);
}

static void test_invalid(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_perm p;
	char *dir = new_store_dir();
	struct tfs_perm_override two[] = {
		{ 1, { 5, 5, 0600 } },
		{ 1, { 6, 6, 0600 } },
	};
	struct tfs_topic_perms tp = {
		.dir = { 1, 1, 0755 },
		.parts = { 1, 1, 0644 },
	};

	TEST("invalid permissions from callers are refused, nothing changes");
	make_conf(&c, NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	CHECK_EQ(create(s, "t", 2, NULL, &t), 0);
	tfs_topic_get_perm(t, &p);
	CHECK_EQ(tfs_topic_set_perm(t, &(struct tfs_perm){ 4294967295u, 0,
							   0755 }),
		 -EINVAL);
	CHECK_EQ(tfs_topic_set_perm(t, &(struct tfs_perm){ 0, 4294967295u,
							   0755 }),
		 -EINVAL);
	CHECK_EQ(tfs_topic_set_perm(t, &(struct tfs_perm){ 0, 0, 04755 }),
		 -EINVAL);
	CHECK_EQ(tfs_topic_set_perm(t, &(struct tfs_perm){ 0, 0, 010755 }),
		 -EINVAL);
	CHECK(dir_is(t, p.uid, p.gid, 0755));
	struct tfs_perm q = { 0, 0, 01644 };
	CHECK_EQ(tfs_topic_set_part_perm(t, 0, &q), -EINVAL);
	q.mode = 02644;
	CHECK_EQ(tfs_topic_set_part_perm(t, 0, &q), -EINVAL);
	q.mode = 0644;
	CHECK_EQ(tfs_topic_set_part_perm(t, 2, &q), -ENOENT);
	CHECK(part_is(t, 0, p.uid, p.gid, 0644));
	CHECK_EQ(tfs_store_set_root_perm(s, &(struct tfs_perm){ 0, 0, 04777 }),
		 -EINVAL);
	CHECK_EQ(tfs_store_set_root_perm(s, &(struct tfs_perm){ 4294967295u, 0,
								0755 }),
		 -EINVAL);
	CHECK_EQ(tfs_store_set_root_perm(s, &(struct tfs_perm){ 4294967294u,
								4294967294u,
								03777 }),
		 0);
	tfs_topic_unref(t);

	TEST("invalid permissions in a spec: nothing is created");
	tp.dir.mode = 0644 | S_ISUID;
	CHECK_EQ(create(s, "a", 2, &tp, NULL), -EINVAL);
	tp.dir.mode = 0755;
	tp.parts.mode = 01644;
	CHECK_EQ(create(s, "a", 2, &tp, NULL), -EINVAL);
	tp.parts.mode = 0644;
	tp.overrides = two;
	tp.noverrides = 2;
	CHECK_EQ(create(s, "a", 2, &tp, NULL), -EINVAL);	/* twice */
	two[1].partition = 2;
	/* Past the end. */
	CHECK_EQ(create(s, "a", 2, &tp, NULL), -EINVAL);
	two[1].partition = 0;
	two[1].perm.mode = 04600;
	CHECK_EQ(create(s, "a", 2, &tp, NULL), -EINVAL);
	CHECK(tfs_store_find_topic(s, "a") == NULL);
	char *path = tfs_asprintf("%s/topics/a", dir);
	CHECK(access(path, F_OK) != 0);
	free(path);
	two[1].perm.mode = 0660;
	CHECK_EQ(create(s, "a", 2, &tp, &t), 0);
	CHECK(part_is(t, 0, 6, 6, 0660) && part_is(t, 1, 5, 5, 0600));
	tfs_topic_unref(t);
	tfs_store_close(s);
	tfs_conf_release(&c);
	free(dir);
}

/* Whether the store at dir opens with topic "bad" unavailable and "good"
 * served, once bad's topic.json has perm (a JSON text) instead. */
static bool bad_perm_refused(const char *perm)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	char *dir = new_store_dir(), *text;
	bool ok;

	make_conf(&c, NULL);
	if (tfs_store_open(dir, &c, &s))
		abort();
	create(s, "bad", 2, NULL, NULL);
	create(s, "good", 1, NULL, NULL);
	tfs_store_close(s);
	text = tfs_asprintf("{\"config\": {}, \"created\": 1, \"id\": 1, "
			    "\"name\": \"bad\", \"partitions\": 2, "
			    "\"version\": 1, \"perm\": %s}",
			    perm);
	put_topic_json(dir, "bad", text);
	free(text);
	ok = tfs_store_open(dir, &c, &s) == 0;
	if (ok) {
		t = tfs_store_find_topic(s, "good");
		ok = t && !tfs_store_find_topic(s, "bad");
		tfs_topic_unref(t);
		tfs_store_close(s);
	}
	if (!ok)
		fprintf(stderr, "  perm %s was not refused\n", perm);
	tfs_conf_release(&c);
	free(dir);
	return ok;
}

#define OK_PERM "{\"uid\": 1, \"gid\": 2, \"mode\": \"0644\"}"

static void test_invalid_on_disk(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_perm p;
	char *dir;

	TEST("bad perm in topic.json: that topic is not loaded, others are");
	CHECK(bad_perm_refused("[]"));
	CHECK(bad_perm_refused("{\"dir\": " OK_PERM "}"));
	CHECK(bad_perm_refused("{\"partitions\": " OK_PERM "}"));
	CHECK(bad_perm_refused("{\"dir\": {\"uid\": 1, \"gid\": 2, \"mode\": "
			       "\"0999\"}, \"partitions\": " OK_PERM "}"));
	CHECK(bad_perm_refused("{\"dir\": {\"uid\": 1, \"gid\": 2, \"mode\": "
			       "\"04755\"}, \"partitions\": " OK_PERM "}"));
	CHECK(bad_perm_refused("{\"dir\": {\"uid\": 1, \"gid\": 2, \"mode\": "
			       "493}, \"partitions\": " OK_PERM "}"));
	CHECK(bad_perm_refused("{\"dir\": {\"uid\": -1, \"gid\": 2, \"mode\": "
			       "\"0755\"}, \"partitions\": " OK_PERM "}"));
	CHECK(bad_perm_refused("{\"dir\": {\"uid\": 4294967295, \"gid\": 2, "
			       "\"mode\": \"0755\"}, \"partitions\": " OK_PERM
			       "}"));
	CHECK(bad_perm_refused("{\"dir\": " OK_PERM ", \"partitions\": "
			       "{\"uid\": 1, \"gid\": 2, "
			       "\"mode\": \"01644\"}}"));
	CHECK(bad_perm_refused("{\"dir\": " OK_PERM ", \"partitions\": " OK_PERM
			       ", \"overrides\": {\"2\": " OK_PERM "}}"));
	CHECK(bad_perm_refused("{\"dir\": " OK_PERM ", \"partitions\": " OK_PERM
			       ", \"overrides\": {\"01\": " OK_PERM "}}"));
	CHECK(bad_perm_refused("{\"dir\": " OK_PERM ", \"partitions\": " OK_PERM
			       ", \"overrides\": {\"x\": " OK_PERM "}}"));
	CHECK(bad_perm_refused("{\"dir\": " OK_PERM ", \"partitions\": " OK_PERM
			       ", \"overrides\": []}"));

	TEST("meta: bad root fields refuse the store, unknown keys do not");
	make_conf(&c, NULL);
	dir = new_store_dir();
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	tfs_store_close(s);
	static const char *const bad[] = {
		"topicfs-store 1\nnext_topic_id 2\nroot.mode 0999\n",
		"topicfs-store 1\nnext_topic_id 2\nroot.mode 4755\n",
		"topicfs-store 1\nnext_topic_id 2\nroot.uid 4294967295\n",
		"topicfs-store 1\nnext_topic_id 2\nroot.gid -1\n",
		"topicfs-store 1\nnext_topic_id 2\nroot.uid\n",
		"topicfs-store 1\nroot.uid 5\n",
		"topicfs-store 2\nnext_topic_id 2\n",
		"topicfs-store 1\nnext_topic_id 0\n",
	};
	for (size_t i = 0; i < TFS_ARRAY_SIZE(bad); i++) {
		spew(dir, "meta", bad[i]);
		CHECKF(tfs_store_open(dir, &c, &s) == TFS_ECORRUPT, "%s",
		       bad[i]);
	}
	spew(dir, "meta", "topicfs-store 1\nnext_topic_id 9\nroot.gid 3\n"
			  "some.future.key 1\n");
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	tfs_store_root_perm(s, &p);
	CHECK(perm_is(&p, (uint32_t)geteuid(), 3, 0755));
	CHECK_EQ(create(s, "n", 1, NULL, &t), 0);
	CHECK_EQ(tfs_topic_id(t), 9);
	tfs_topic_unref(t);
	tfs_store_close(s);
	tfs_conf_release(&c);
	free(dir);
}

static void test_apply(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_topic_perms tp;
	char *dir = new_store_dir();
	struct tfs_perm_override ov[] = {
		{ 3, { 70, 71, 0600 } },
		{ 0, { 80, 81, 0666 } },
	};
	struct tfs_topic_perms want = {
		.dir = { 10, 11, 0750 },
		.parts = { 10, 11, 0640 },
		.overrides = ov,
		.noverrides = 2,
	};

	TEST("apply: creates with the cluster's perms");
	make_conf(&c, NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	CHECK_EQ(tfs_store_apply_topic(
			 s,
			 &(struct tfs_topic_spec){ .name = "c", .id = 40,
						   .partitions = 4,
						   .perms = &want },
			 &t),
		 0);
	CHECK(t && dir_is(t, 10, 11, 0750) && part_is(t, 0, 80, 81, 0666) &&
	      part_is(t, 1, 10, 11, 0640) && part_is(t, 3, 70, 71, 0600));
	tfs_topic_get_perms(t, &tp);
	CHECK(tp.noverrides == 2 && tp.overrides[0].partition == 0 &&
	      tp.overrides[1].partition == 3);
	tfs_topic_perms_release(&tp);
	tfs_topic_unref(t);

	TEST("apply without perms leaves them; with perms sets exactly those");
	CHECK_EQ(tfs_store_apply_topic(
			 s, &(struct tfs_topic_spec){ .name = "c", .id = 40 },
			 &t),
		 0);
	CHECK(t && dir_is(t, 10, 11, 0750) && part_is(t, 3, 70, 71, 0600));
	tfs_topic_unref(t);
	/* Grown to 6 by the same apply: an override may name partition 5. */
	ov[0] = (struct tfs_perm_override){ 5, { 90, 91, 0604 } };
	want.noverrides = 1;
	want.dir.mode = 01777;
	CHECK_EQ(tfs_store_apply_topic(
			 s,
			 &(struct tfs_topic_spec){ .name = "c", .id = 40,
						   .partitions = 6,
						   .perms = &want },
			 &t),
		 0);
	CHECK(t && dir_is(t, 10, 11, 01777) && part_is(t, 0, 10, 11, 0640) &&
	      part_is(t, 3, 10, 11, 0640) && part_is(t, 5, 90, 91, 0604));
	tfs_topic_unref(t);

	TEST("tfs_topic_set_perms: all of a topic's at once, or nothing");
	t = tfs_store_find_topic(s, "c");
	CHECK(t != NULL);
	struct tfs_perm_override one = { 2, { 7, 7, 0600 } };
	struct tfs_topic_perms all = {
		.dir = { 5, 6, 0700 },
		.parts = { 5, 6, 0660 },
		.overrides = &one,
		.noverrides = 1,
	};
	CHECK_EQ(tfs_topic_set_perms(t, &all), 0);
	CHECK(dir_is(t, 5, 6, 0700) && part_is(t, 0, 5, 6, 0660) &&
	      part_is(t, 2, 7, 7, 0600) && part_is(t, 5, 5, 6, 0660));
	one.partition = 6;
	CHECK_EQ(tfs_topic_set_perms(t, &all), -EINVAL);
	one.partition = 2;
	all.parts.mode = 04660;
	CHECK_EQ(tfs_topic_set_perms(t, &all), -EINVAL);
	CHECK(dir_is(t, 5, 6, 0700) && part_is(t, 0, 5, 6, 0660));
	/* Back to what apply set, for the checks below. */
	ov[0] = (struct tfs_perm_override){ 5, { 90, 91, 0604 } };
	CHECK_EQ(tfs_topic_set_perms(t, &want), 0);
	tfs_topic_unref(t);

	TEST("apply: invalid perms change nothing");
	ov[0].partition = 6;
	CHECK_EQ(tfs_store_apply_topic(
			 s,
			 &(struct tfs_topic_spec){ .name = "c", .id = 40,
						   .perms = &want },
			 NULL),
		 -EINVAL);
	tfs_store_close(s);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	t = tfs_store_find_topic(s, "c");
	CHECK(t && dir_is(t, 10, 11, 01777) && part_is(t, 5, 90, 91, 0604) &&
	      part_is(t, 0, 10, 11, 0640));
	tfs_topic_unref(t);
	tfs_store_close(s);
	tfs_conf_release(&c);
	free(dir);
}

static void test_failed_save(void)
{
	struct tfs_conf c;
	struct tfs_store *s;
	struct tfs_topic *t;
	struct tfs_perm p, r;
	char *dir = new_store_dir();

	TEST("a failed save changes nothing, in memory or on disk");
	make_conf(&c, NULL);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	CHECK_EQ(create(s, "t", 1, NULL, &t), 0);
	tfs_store_root_perm(s, &p);
	tfs_sys_fault(TFS_SYS_RENAMEAT, 1, EIO, 0);
	CHECK_EQ(tfs_topic_set_perm(t, &(struct tfs_perm){ 1, 1, 0700 }), -EIO);
	tfs_sys_fault(TFS_SYS_FSYNC, 1, EIO, 0);
	r = (struct tfs_perm){ 1, 1, 0600 };
	CHECK_EQ(tfs_topic_set_part_perm(t, 0, &r), -EIO);
	tfs_sys_fault(TFS_SYS_PWRITE, 1, ENOSPC, 0);
	CHECK_EQ(tfs_store_set_root_perm(s, &(struct tfs_perm){ 0, 0, 01777 }),
		 -ENOSPC);
	tfs_sys_fault_clear();
	CHECK(dir_is(t, p.uid, p.gid, 0755) &&
	      part_is(t, 0, p.uid, p.gid, 0644));
	tfs_store_root_perm(s, &r);
	CHECK(perm_is(&r, p.uid, p.gid, 0755));
	tfs_topic_unref(t);
	tfs_store_close(s);
	CHECK_EQ(tfs_store_open(dir, &c, &s), 0);
	t = tfs_store_find_topic(s, "t");
	CHECK(t && dir_is(t, p.uid, p.gid, 0755) &&
	      part_is(t, 0, p.uid, p.gid, 0644));
	tfs_topic_unref(t);
	tfs_store_root_perm(s, &r);
	CHECK(perm_is(&r, p.uid, p.gid, 0755));
	tfs_store_close(s);
	tfs_conf_release(&c);
	free(dir);
}

int main(void)
{
	if (tl_setup("perm", root, sizeof(root)))
		return 1;
	test_defaults();
	test_set_reopen();
	test_old_topic_json();
	test_invalid();
	test_invalid_on_disk();
	test_apply();
	test_failed_save();
	tl_cleanup(root);
	return check_done();
}
