/*
 * testlib.h - set-up and helpers the unit tests share instead of copying:
 * a scratch directory per program, quiet logs, the environment partitions
 * need (configuration, worker pools, a fresh directory per case), appends
 * whose completion is checked, and reading a partition's committed bytes
 * the way the FUSE module does (file extents and decompressed frames).
 */
#ifndef TFS_TESTLIB_H
#define TFS_TESTLIB_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "partition.h"
#include "workers.h"

/* Logs only errors unless TFS_TEST_VERBOSE is set. */
static inline void tl_quiet_log(void)
{
	tfs_log_set_level(getenv("TFS_TEST_VERBOSE") ? TFS_LOG_DEBUG
						     : TFS_LOG_ERROR);
}

/* Makes /tmp/tfs-NAME-XXXXXX in root and quiets the log.  Returns 0 or
 * -1. */
static inline int tl_setup(const char *name, char *root, size_t len)
{
	snprintf(root, len, "/tmp/tfs-%s-XXXXXX", name);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return -1;
	}
	tl_quiet_log();
	return 0;
}

static inline void tl_cleanup(const char *root)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
}

/*
 * What the partition and store tests share: a scratch directory, the
 * default configuration, and the pools a partition runs its syncs on
 * (fsyncer only if asked: with it the index fsync runs on another thread,
 * so the order of faults in the syscall table is no longer fixed).
 */
struct tl_env {
	char root[64];
	struct tfs_conf conf;
	struct tfs_workers *syncer, *fsyncer;
	int cases;		/* directories handed out by tl_new_dir */
};

enum { TL_FSYNCER = 1 };

/* Returns 0, or -1 after printing why. */
static inline int tl_env_init(struct tl_env *e, const char *name,
			      unsigned flags)
{
	memset(e, 0, sizeof(*e));
	if (tl_setup(name, e->root, sizeof(e->root)))
		return -1;
	tfs_conf_init(&e->conf);
	if (tfs_workers_start(2, "test-sync", &e->syncer) ||
	    ((flags & TL_FSYNCER) &&
	     tfs_workers_start(2, "test-fsync", &e->fsyncer))) {
		fprintf(stderr, "cannot start the worker pools\n");
		return -1;
	}
	return 0;
}

/* Stops the pools, frees the configuration, removes the directory. */
static inline void tl_env_release(struct tl_env *e)
{
	tfs_workers_stop(e->syncer);
	tfs_workers_stop(e->fsyncer);
	tfs_conf_release(&e->conf);
	tl_cleanup(e->root);
}

/* A fresh directory root/caseN for one case; returns an O_DIRECTORY fd
 * (the caller closes it) or -1. */
static inline int tl_new_dir(struct tl_env *e)
{
	char name[32];
	int rfd = open(e->root, O_RDONLY | O_DIRECTORY), fd;

	snprintf(name, sizeof(name), "case%d", e->cases++);
	mkdirat(rfd, name, 0755);
	fd = openat(rfd, name, O_RDONLY | O_DIRECTORY);
	close(rfd);
	return fd;
}

/* Settings from the default configuration with segment.bytes changed;
 * the caller unrefs them. */
static inline struct tfs_settings *tl_settings(struct tl_env *e,
					       int64_t segment_bytes)
{
	struct tfs_settings *s = tfs_settings_new(&e->conf);

	atomic_store(&s->v[TFS_CONF_SEGMENT_BYTES], segment_bytes);
	return s;
}

/* Opens (creating) partition 0 "t/0" in dirfd, standalone. */
static inline int tl_open_part(struct tl_env *e, int dirfd,
			       struct tfs_settings *st,
			       struct tfs_partition **p)
{
	struct tfs_partition_env env = {
		.syncer = e->syncer,
		.fsyncer = e->fsyncer,
		.settings = st,
		.name = "t/0",
		.role = TFS_ROLE_STANDALONE,
	};
	return tfs_partition_open(dirfd, 0, &env, true, p);
}

/* An append whose completion is recorded: calls and the last status. */
struct done_rec {
	struct tfs_append a;
	int calls, status;
};

static inline void on_done(struct tfs_append *a, int status)
{
	struct done_rec *d = tfs_container_of(a, struct done_rec, a);

	d->calls++;
	d->status = status;
}

/* Appends text (whole lines) as one batch with flags, recording its
 * completion in d; returns the append's code. */
static inline int tl_append(struct tfs_partition *p, const char *text,
			    unsigned flags, struct done_rec *d)
{
	struct iovec iov = { (void *)text, strlen(text) };

	memset(d, 0, sizeof(*d));
	d->a.iov = &iov;
	d->a.iovcnt = 1;
	d->a.flags = flags;
	d->a.done = on_done;
	return tfs_partition_append(p, &d->a);
}

/* Appends text (whole lines) as one batch; returns its code, or -1 if the
 * append succeeded but its completion did not come exactly once with 0
 * (a standalone partition completes before returning). */
static inline int tl_append_text(struct tfs_partition *p, const char *text)
{
	struct done_rec d;
	int rc = tl_append(p, text, 0, &d);

	if (rc == 0 && (d.calls != 1 || d.status))
		return -1;
	return rc;
}

/* Reads [off, off + len) of committed bytes into buf; returns the bytes
 * read (fewer at the end) or a negative code. */
static inline ssize_t tl_read_at(struct tfs_partition *p, uint64_t off,
				 char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct tfs_readv rv;
		int rc = tfs_partition_read(p, off + got, len - got, &rv);
		ssize_t n;

		if (rc)
			return rc;
		if (rv.len == 0)
			break;
		n = tfs_readv_copy(&rv, 0, buf + got, rv.len);
		tfs_readv_release(&rv);
		if (n < 0)
			return n;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* True if the committed bytes from off to the end are exactly the string
 * want; says what differs on stderr otherwise. */
static inline bool tl_content_is(struct tfs_partition *p, uint64_t off,
				 const char *want)
{
	size_t n = strlen(want);
	char *buf = tfs_malloc(n + 1);
	ssize_t r = tl_read_at(p, off, buf, n + 1);
	bool ok = r == (ssize_t)n && memcmp(buf, want, n) == 0;

	if (!ok)
		fprintf(stderr, "  content from %llu: got %zd bytes, want %zu%s\n",
			(unsigned long long)off, r, n,
			r == (ssize_t)n ? " (they differ)" : "");
	free(buf);
	return ok;
}

#endif
