/*
 * fsops.h - the FUSE front end: mounts a store and serves the file contract
 * of docs/USAGE.md on libfuse's low-level API with the multi-threaded
 * loop.  This is the only module that includes libfuse headers.
 */
#ifndef TFS_FSOPS_H
#define TFS_FSOPS_H

#include <stdbool.h>

#include "store.h"

struct tfs_fs_config {
	const char *mountpoint;
	/*
	 * Options handed to libfuse as "-o" strings (allow_other,
	 * default_permissions, fsname=...), NULL-terminated; may be NULL.
	 */
	const char *const *fuse_opts;
	unsigned max_threads;		/* fuse.threads */
	bool clone_fd;			/* fuse.clone_fd */
	const char *version;
	/* Called once mounted, before requests are served (daemonisation,
	 * readiness notification).  May be NULL. */
	void (*ready)(void *arg);
	void *ready_arg;
};

/*
 * Mounts the store at cfg->mountpoint and serves requests until the file
 * system is unmounted or SIGINT/SIGTERM/SIGHUP arrives.  Then it answers
 * every parked request (`.follow` reads get end of file, fsyncs complete),
 * closes the partitions (sync and checkpoint) and unmounts.  Returns 0
 * after a clean run, or -errno when the mount failed (logged).
 */
int tfs_fs_run(struct tfs_store *store, const struct tfs_fs_config *cfg);

#endif
