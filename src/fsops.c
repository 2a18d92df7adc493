/*
 * fsops.c - the FUSE session: mount, serve, stop, and the watcher that
 * ends parked reads after a lazy unmount.  The operations are in
 * fsops_ns.c (namespace) and fsops_io.c (open files).
 *
 * The writeback cache and asynchronous direct I/O are turned off: both
 * corrupt appends (docs/DESIGN.md).  main owns the signals and the order
 * in which the process stops; this module only makes the loop return
 * (tfs_fs_exit) and answers what is parked (tfs_fs_close).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fsops_int.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/*
 * A lazy unmount (umount -l, fusermount3 -u -z) detaches the mount at
 * once, but the kernel keeps the connection, and so this daemon, until
 * the last open file is closed; a reader parked at the end of a .follow
 * file would never close it.  This thread watches the mount table; once
 * our mount has left it, parked reads get end of file and no read parks
 * any more, so readers finish and close.  Writers that still hold files
 * keep writing until they close them; then the kernel ends the session as
 * after a plain unmount.
 *
 * The mount is known by its device number, read from the mount table
 * before and after mounting (the new fuse.topicfs entry), so the watcher
 * never sends a request to its own file system.
 */
struct mount_watch {
	struct tfs_fs *fs;
	char dev[32];		/* " maj:min " of our mount */
	int stop;		/* eventfd: the loop has ended */
	pthread_t thread;
};

/* Appends the " maj:min " of every fuse.topicfs mount to b. */
static void topicfs_devs(struct tfs_buf *b)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned id, parent;
		char dev[24];

		if (!strstr(line, " - fuse.topicfs ") ||
		    sscanf(line, "%u %u %23s", &id, &parent, dev) != 3)
			continue;
		tfs_buf_addf(b, " %s ", dev);
	}
	fclose(f);
}

/* Finds the device of the mount that appeared since `before`. */
static bool find_new_mount(const char *before, char *dev, size_t len)
{
	struct tfs_buf now = TFS_BUF_INIT;
	bool found = false;

	topicfs_devs(&now);
	for (char *p = now.data; p && *p && !found;) {
		char *end = strchr(p + 1, ' ');

		if (!end)
			break;
		size_t n = (size_t)(end - p + 1);
		if (n < len) {
			memcpy(dev, p, n);
			dev[n] = '\0';
			found = !strstr(before ? before : "", dev);
		}
		p = end + 1;
	}
	tfs_buf_release(&now);
	return found;
}

static bool still_mounted(const char *dev)
{
	struct tfs_buf now = TFS_BUF_INIT;
	bool found;

	topicfs_devs(&now);
	found = now.data && strstr(now.data, dev);
	tfs_buf_release(&now);
	return found;
}

static void *mount_watch_fn(void *arg)
{
	struct mount_watch *mw = arg;
	int mfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	struct pollfd pfd[2] = {
		{ .fd = mfd, .events = POLLPRI },
		{ .fd = mw->stop, .events = POLLIN },
	};

	pthread_setname_np(pthread_self(), "tfs-mountwatch");
	if (mfd < 0)
		return NULL;
	/* POLLPRI on mountinfo: the mount table changed. */
	while (poll(pfd, 2, -1) >= 0 || errno == EINTR) {
		if (pfd[1].revents)
			break;
		if ((pfd[0].revents & (POLLPRI | POLLERR)) &&
		    !still_mounted(mw->dev)) {
			tfs_info("%s was detached: parked reads end, writes go "
				 "on until their files close",
				 mw->fs->mountpoint);
			atomic_store(&mw->fs->detached, true);
			tfs_store_end_waits(mw->fs->store, TFS_ESHUTDOWN);
			break;
		}
	}
	close(mfd);
	return NULL;
}

/* Starts the watcher of fs's new mount; NULL when it cannot (logged). */
static struct mount_watch *watch_start(struct tfs_fs *fs, const char *before)
{
	struct mount_watch *mw = tfs_calloc(1, sizeof(*mw));

	mw->fs = fs;
	mw->stop = -1;
	if (!find_new_mount(before, mw->dev, sizeof(mw->dev))) {
		tfs_warn("cannot find the new mount in /proc/self/mountinfo: "
			 "a lazy unmount will wait for parked readers");
		goto out_free;
	}
	mw->stop = eventfd(0, EFD_CLOEXEC);
	if (mw->stop < 0)
		goto out_free;
	if (pthread_create(&mw->thread, NULL, mount_watch_fn, mw) != 0) {
		close(mw->stop);
		goto out_free;
	}
	return mw;

out_free:
	free(mw);
	return NULL;
}

static void watch_stop(struct mount_watch *mw)
{
	uint64_t one = 1;

	if (!mw)
		return;
	if (write(mw->stop, &one, sizeof(one)) != sizeof(one))
		tfs_warn("mount watcher: %s", strerror(errno));
	pthread_join(mw->thread, NULL);
	close(mw->stop);
	free(mw);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Both corrupt appends here (docs/DESIGN.md). */
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ASYNC_DIO);
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->max_write = 1 << 20;
	tfs_debug("fuse: protocol %u.%u, max_write %u", conn->proto_major,
		  conn->proto_minor, conn->max_write);
}

static const struct fuse_lowlevel_ops ops = {
	.init = fs_init,
	.lookup = fsops_lookup,
	.getattr = fsops_getattr,
	.setattr = fsops_setattr,
	.mknod = fsops_mknod,
	.mkdir = fsops_mkdir,
	.unlink = fsops_unlink,
	.rmdir = fsops_rmdir,
	.symlink = fsops_symlink,
	.rename = fsops_rename,
	.link = fsops_link,
	.open = fsops_open,
	.read = fsops_read,
	.write = fsops_write,
	.flush = fsops_flush,
	.release = fsops_release,
	.fsync = fsops_fsync,
	.opendir = fsops_opendir,
	.readdir = fsops_readdir,
	.releasedir = fsops_releasedir,
	.statfs = fsops_statfs,
	.setxattr = fsops_setxattr,
	.getxattr = fsops_getxattr,
	.listxattr = fsops_listxattr,
	.removexattr = fsops_removexattr,
	.create = fsops_create,
	.poll = fsops_poll,
	.lseek = fsops_lseek,
};

/* Frees handles the kernel never released (the connection went away). */
static void drop_handles(struct tfs_fs *fs)
{
	for (;;) {
		struct handle *h = NULL;

		pthread_mutex_lock(&fs->lock);
		if (!tfs_list_empty(&fs->handles))
			h = tfs_container_of(fs->handles.next, struct handle,
					     link);
		pthread_mutex_unlock(&fs->lock);
		if (!h)
			break;
		fsops_poll_release(h);
		/* Only the open reference can be left once readers were
		 * answered. */
		pthread_mutex_lock(&fs->lock);
		tfs_list_del(&h->link);
		tfs_list_init(&h->link);
		pthread_mutex_unlock(&fs->lock);
		fsops_handle_unref(h);
	}
}

static struct fuse_session *new_session(struct tfs_fs *fs,
					const struct tfs_fs_config *cfg)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;

	fuse_opt_add_arg(&args, "topicfs");
	for (const char *const *o = cfg->fuse_opts; o && *o; o++) {
		fuse_opt_add_arg(&args, "-o");
		fuse_opt_add_arg(&args, *o);
	}
	se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	fuse_opt_free_args(&args);
	return se;
}

int tfs_fs_mount(struct tfs_store *store, const struct tfs_fs_config *cfg,
		 struct tfs_fs **out)
{
	struct tfs_fs *fs = tfs_calloc(1, sizeof(*fs));
	struct tfs_buf before = TFS_BUF_INIT;
	struct tfs_topic_perms def;

	fs->store = store;
	fs->conf = tfs_store_conf(store);
	fs->cfg = cfg;
	fs->mountpoint = cfg->mountpoint;
	fs->version = cfg->version;
	fs->started_wall = tfs_now_ms();
	/* .topicfs belongs to the owner of what root makes. */
	tfs_store_new_topic_perms(store, 0, 0, 0, &def);
	fs->uid = def.dir.uid;
	fs->gid = def.dir.gid;
	fs->cluster = cfg->cluster;
	fs->produce = cfg->produce;
	fs->remote = cfg->remote;
	pthread_mutex_init(&fs->lock, NULL);
	tfs_list_init(&fs->handles);
	fs->se = new_session(fs, cfg);
	if (!fs->se) {
		tfs_err("cannot create the FUSE session (bad mount options?)");
		pthread_mutex_destroy(&fs->lock);
		free(fs);
		return -EINVAL;
	}
	topicfs_devs(&before);
	if (fuse_session_mount(fs->se, cfg->mountpoint) != 0) {
		tfs_err("cannot mount at %s", cfg->mountpoint);
		tfs_buf_release(&before);
		fuse_session_destroy(fs->se);
		pthread_mutex_destroy(&fs->lock);
		free(fs);
		return -EIO;
	}
	fs->watch = watch_start(fs, before.data);
	tfs_buf_release(&before);
	tfs_info("mounted %s at %s", tfs_store_dir(store), cfg->mountpoint);
	*out = fs;
	return 0;
}

int tfs_fs_serve(struct tfs_fs *fs)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int rc;

	fuse_loop_cfg_set_clone_fd(lc, fs->cfg->clone_fd);
	fuse_loop_cfg_set_max_threads(lc, fs->cfg->max_threads);
	fuse_loop_cfg_set_idle_threads(lc, fs->cfg->max_threads);
	rc = fuse_session_loop_mt(fs->se, lc);
	fuse_loop_cfg_destroy(lc);
	/* After a lazy unmount the kernel ends the connection when the last
	 * file closes, with ENODEV or, depending on timing, ECONNABORTED:
	 * either is the expected end then, not an error. */
	if (rc == -ECONNABORTED && atomic_load(&fs->detached))
		rc = 0;
	if (rc < 0) {
		tfs_err("FUSE loop: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

void tfs_fs_exit(struct tfs_fs *fs)
{
	/* What libfuse's own signal handler does: a flag the loop checks
	 * whenever a read of /dev/fuse is interrupted. */
	fuse_session_exit(fs->se);
}

void tfs_fs_close(struct tfs_fs *fs)
{
	if (!fs)
		return;
	tfs_info("unmounting %s", fs->mountpoint);
	watch_stop(fs->watch);
	/* Answer every parked request while the connection still exists. */
	tfs_store_shutdown_readers(fs->store);
	drop_handles(fs);
	fuse_session_unmount(fs->se);
	fuse_session_destroy(fs->se);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}
