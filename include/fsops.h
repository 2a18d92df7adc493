/*
 * fsops.h - the FUSE front end: mounts a store and serves the file contract
 * of docs/USAGE.md on libfuse's low-level API with the multi-threaded
 * loop.  This module (fsops*.c) is the only one that includes libfuse.
 *
 * Lifecycle, driven by main, which owns the process's start-up, signals
 * and stop order (docs/DESIGN.md):
 *
 *   tfs_fs_mount   make the session and mount (no request served yet)
 *   tfs_fs_serve   serve requests until the file system is unmounted or
 *                  tfs_fs_exit is called
 *   tfs_fs_close   answer every parked request, drop open files, unmount
 *
 * tfs_fs_exit is async-signal-safe: main's SIGTERM/SIGINT/SIGHUP handler
 * calls it.
 */
#ifndef TFS_FSOPS_H
#define TFS_FSOPS_H

#include <stdbool.h>

#include "cluster.h"
#include "produce.h"
#include "remote.h"
#include "repl.h"
#include "store.h"

struct tfs_fs;

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
	/* In a cluster, all set; standalone, all NULL. */
	struct tfs_cluster *cluster;
	struct tfs_produce *produce;
	struct tfs_repl *repl;
	struct tfs_repair *repair;
	struct tfs_remote *remote;	/* reads without a local replica */
	const _Atomic unsigned long long *peer_refused;
};

/*
 * Creates the FUSE session for store and mounts it at cfg->mountpoint
 * (cfg and the strings it points to must outlive the session).  Returns
 * 0, -EINVAL for options libfuse refuses, or -EIO when the mount failed
 * (logged).
 */
int tfs_fs_mount(struct tfs_store *store, const struct tfs_fs_config *cfg,
		 struct tfs_fs **out);

/*
 * Serves requests on the calling thread and the loop's workers until the
 * file system is unmounted or tfs_fs_exit is called.  Returns 0, or
 * -errno when the loop failed (logged).
 */
int tfs_fs_serve(struct tfs_fs *fs);

/* Makes tfs_fs_serve return soon.  Async-signal-safe. */
void tfs_fs_exit(struct tfs_fs *fs);

/*
 * After tfs_fs_serve returned (or instead of it): answers every parked
 * request (.follow reads get end of file, fsyncs complete as the store's
 * partitions close), frees the open files the kernel never released,
 * unmounts and frees fs.  The store stays open.  NULL is fine.
 */
void tfs_fs_close(struct tfs_fs *fs);

#endif
