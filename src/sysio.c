/*
 * sysio.c - the store's system calls behind a fault-injection table.
 *
 * See sysio.h.  Faults are for tests; the fast path is a single relaxed
 * load of `armed`.  All counters are atomics so faults can be armed while
 * other threads run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sysio.h"
#include "util.h"
#include "banned.h"

struct fault {
	atomic_uint countdown;	/* fires when it reaches 0 from 1 */
	int err;
	unsigned flags;
};

static atomic_bool armed;
static atomic_bool sticky_fired;
static atomic_bool any_fired;
static struct fault faults[TFS_SYS__COUNT];
static atomic_ulong calls[TFS_SYS__COUNT];
static tfs_sys_observer_fn observer;

void tfs_sys_fault(enum tfs_sys_op op, unsigned nth, int err, unsigned flags)
{
	faults[op].err = err;
	faults[op].flags = flags;
	atomic_store(&faults[op].countdown, nth);
	atomic_store(&armed, true);
}

void tfs_sys_fault_clear(void)
{
	for (int i = 0; i < TFS_SYS__COUNT; i++)
		atomic_store(&faults[i].countdown, 0);
	atomic_store(&sticky_fired, false);
	atomic_store(&any_fired, false);
	atomic_store(&armed, false);
}

bool tfs_sys_fault_fired(void)
{
	return atomic_load(&any_fired);
}

unsigned long tfs_sys_calls(enum tfs_sys_op op)
{
	return atomic_load(&calls[op]);
}

void tfs_sys_observe(tfs_sys_observer_fn fn)
{
	observer = fn;
}

/* Returns 0, or the -errno the call must fail with; *flags gets the mode. */
static int check(enum tfs_sys_op op, unsigned *flags)
{
	atomic_fetch_add_explicit(&calls[op], 1, memory_order_relaxed);
	*flags = 0;
	if (!atomic_load_explicit(&armed, memory_order_relaxed))
		return 0;
	if (atomic_load(&sticky_fired))
		return -EIO;

	unsigned c = atomic_load(&faults[op].countdown);
	while (c > 0) {
		if (atomic_compare_exchange_weak(&faults[op].countdown, &c,
						 c - 1))
			break;
	}
	if (c != 1)
		return 0;
	*flags = faults[op].flags;
	atomic_store(&any_fired, true);
	if (*flags & TFS_FAULT_STICKY)
		atomic_store(&sticky_fired, true);
	return -faults[op].err;
}

static void observe(enum tfs_sys_op op, int fd, const char *name, off_t off,
		    size_t len)
{
	if (observer)
		observer(op, fd, name, off, len);
}

int tfs_sys_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	unsigned ff;
	int rc = check(TFS_SYS_OPENAT, &ff);

	if (rc)
		return rc;
	int fd = openat(dirfd, name, flags | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	observe(TFS_SYS_OPENAT, fd, name, 0, (size_t)flags);
	return fd;
}

ssize_t tfs_sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	size_t done = 0;
	unsigned ff;
	int rc = check(TFS_SYS_PWRITE, &ff);

	if (rc) {
		if ((ff & TFS_FAULT_SHORT) && len > 1) {
			ssize_t w = pwrite(fd, p, len / 2, off);
			(void)w;
		}
		return rc;
	}
	while (done < len) {
		ssize_t w = pwrite(fd, p + done, len - done, off + (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		done += (size_t)w;
	}
	observe(TFS_SYS_PWRITE, fd, NULL, off, len);
	return (ssize_t)done;
}

ssize_t tfs_sys_pwritev(int fd, const struct iovec *iov, int iovcnt,
			off_t off)
{
	struct iovec local[8];
	size_t total = 0, done = 0;
	unsigned ff;
	int rc = check(TFS_SYS_PWRITE, &ff);

	if (iovcnt > (int)TFS_ARRAY_SIZE(local))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		local[i] = iov[i];
		total += iov[i].iov_len;
	}
	if (rc) {
		if ((ff & TFS_FAULT_SHORT) && total > 1 && iovcnt > 0) {
			ssize_t w = pwrite(fd, iov[0].iov_base,
					   TFS_MAX(iov[0].iov_len / 2, 1), off);
			(void)w;
		}
		return rc;
	}
	struct iovec *v = local;
	int n = iovcnt;
	while (done < total) {
		ssize_t w = pwritev(fd, v, n, off + (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		done += (size_t)w;
		/* Skip what was written: whole vectors, then part of one. */
		while (n > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	observe(TFS_SYS_PWRITE, fd, NULL, off, total);
	return (ssize_t)total;
}

ssize_t tfs_sys_pread(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t done = 0;
	unsigned ff;
	int rc = check(TFS_SYS_PREAD, &ff);

	if (rc)
		return rc;
	while (done < len) {
		ssize_t r = pread(fd, p + done, len - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int tfs_sys_fsync(int fd)
{
	unsigned ff;
	int rc = check(TFS_SYS_FSYNC, &ff);

	if (rc)
		return rc;
	if (fsync(fd) < 0)
		return -errno;
	observe(TFS_SYS_FSYNC, fd, NULL, 0, 0);
	return 0;
}

int tfs_sys_fdatasync(int fd)
{
	unsigned ff;
	int rc = check(TFS_SYS_FSYNC, &ff);

	if (rc)
		return rc;
	if (fdatasync(fd) < 0)
		return -errno;
	observe(TFS_SYS_FSYNC, fd, NULL, 0, 0);
	return 0;
}

int tfs_sys_renameat(int olddirfd, const char *oldname, int newdirfd,
		     const char *newname)
{
	unsigned ff;
	int rc = check(TFS_SYS_RENAMEAT, &ff);

	if (rc)
		return rc;
	if (renameat(olddirfd, oldname, newdirfd, newname) < 0)
		return -errno;
	observe(TFS_SYS_RENAMEAT, newdirfd, newname, 0, 0);
	return 0;
}

int tfs_sys_unlinkat(int dirfd, const char *name, int flags)
{
	unsigned ff;
	int rc = check(TFS_SYS_UNLINKAT, &ff);

	if (rc)
		return rc;
	if (unlinkat(dirfd, name, flags) < 0)
		return -errno;
	observe(TFS_SYS_UNLINKAT, dirfd, name, 0, 0);
	return 0;
}

int tfs_sys_ftruncate(int fd, off_t len)
{
	unsigned ff;
	int rc = check(TFS_SYS_FTRUNCATE, &ff);

	if (rc)
		return rc;
	if (ftruncate(fd, len) < 0)
		return -errno;
	observe(TFS_SYS_FTRUNCATE, fd, NULL, len, 0);
	return 0;
}

int tfs_sys_mkdirat(int dirfd, const char *name, mode_t mode)
{
	unsigned ff;
	int rc = check(TFS_SYS_MKDIRAT, &ff);

	if (rc)
		return rc;
	if (mkdirat(dirfd, name, mode) < 0)
		return -errno;
	observe(TFS_SYS_MKDIRAT, dirfd, name, 0, 0);
	return 0;
}

int tfs_sys_close(int fd)
{
	if (fd < 0)
		return 0;
	/* close() errors after a failed fsync are already reported there. */
	return close(fd) < 0 ? -errno : 0;
}

int tfs_sys_write_atomic(int dirfd, const char *name, const void *buf,
			 size_t len)
{
	char tmp[512];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = tfs_sys_openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	rc = (int)tfs_sys_pwrite(fd, buf, len, 0);
	if (rc < 0)
		goto out_unlink;
	rc = tfs_sys_fsync(fd);
	if (rc < 0)
		goto out_unlink;
	tfs_sys_close(fd);
	fd = -1;
	rc = tfs_sys_renameat(dirfd, tmp, dirfd, name);
	if (rc < 0)
		goto out_unlink;
	return tfs_sys_fsync(dirfd);

out_unlink:
	tfs_sys_close(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

int tfs_sys_read_file(int dirfd, const char *name, size_t max, char **out,
		      size_t *len)
{
	struct stat st;
	int fd = tfs_sys_openat(dirfd, name, O_RDONLY, 0);
	ssize_t r;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		tfs_sys_close(fd);
		return e;
	}
	if ((size_t)st.st_size > max) {
		tfs_sys_close(fd);
		return -EFBIG;
	}
	char *buf = tfs_malloc((size_t)st.st_size + 1);
	r = tfs_sys_pread(fd, buf, (size_t)st.st_size, 0);
	tfs_sys_close(fd);
	if (r < 0) {
		free(buf);
		return (int)r;
	}
	buf[r] = '\0';
	*out = buf;
	if (len)
		*len = (size_t)r;
	return 0;
}
