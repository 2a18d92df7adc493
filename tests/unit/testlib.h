/*
 * testlib.h - helpers shared by the store-level unit tests: a scratch
 * directory per program and reading a partition's committed bytes the way
 * the FUSE module does (file extents and decompressed frames).
 */
#ifndef TFS_TESTLIB_H
#define TFS_TESTLIB_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "partition.h"

/* Makes /tmp/tfs-NAME-XXXXXX in root; logs only errors unless
 * TFS_TEST_VERBOSE is set.  Returns 0 or -1. */
static inline int tl_setup(const char *name, char *root, size_t len)
{
	snprintf(root, len, "/tmp/tfs-%s-XXXXXX", name);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return -1;
	}
	tfs_log_set_level(getenv("TFS_TEST_VERBOSE") ? TFS_LOG_DEBUG
						     : TFS_LOG_ERROR);
	return 0;
}

static inline void tl_cleanup(const char *root)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
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

#endif
