/*
 * sysio.h - the system calls the store makes, behind one table so a test
 * can fail the Nth call of any of them (SQLite's test_syscall.c).
 *
 * Every store module calls tfs_sys_*() instead of the libc function.  In
 * production the only cost is one relaxed atomic load per call.  A test
 * arms a fault with tfs_sys_fault(): the nth call of op from now on fails
 * with err; TFS_FAULT_STICKY makes every later call of any faultable op
 * fail too (a crash at that point: the test then reopens the store from
 * what reached the files); TFS_FAULT_SHORT makes a pwrite write half its
 * bytes before failing (a torn write).
 *
 * A test can also install an observer called after every successful call
 * (to track, for example, the size of each file at its last fsync and so
 * model a power loss).
 */
#ifndef TFS_SYSIO_H
#define TFS_SYSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

enum tfs_sys_op {
	TFS_SYS_OPENAT,
	TFS_SYS_PWRITE,
	TFS_SYS_PREAD,
	TFS_SYS_FSYNC,		/* fsync and fdatasync */
	TFS_SYS_RENAMEAT,
	TFS_SYS_UNLINKAT,
	TFS_SYS_FTRUNCATE,
	TFS_SYS_MKDIRAT,
	TFS_SYS__COUNT
};

enum {
	TFS_FAULT_STICKY = 1 << 0,
	TFS_FAULT_SHORT = 1 << 1,
};

/* Arms a fault: the nth (1-based) call of op from now fails with -err. */
void tfs_sys_fault(enum tfs_sys_op op, unsigned nth, int err, unsigned flags);
/* Disarms every fault and clears the sticky state. */
void tfs_sys_fault_clear(void);
/* True once a fault fired (sticky or not) since the last clear. */
bool tfs_sys_fault_fired(void);
/* Calls of op since the program started (for tests that step through N). */
unsigned long tfs_sys_calls(enum tfs_sys_op op);

typedef void (*tfs_sys_observer_fn)(enum tfs_sys_op op, int fd,
				    const char *name, off_t off, size_t len);
void tfs_sys_observe(tfs_sys_observer_fn fn);

/*
 * The wrappers: each returns what the libc call returns on success and
 * -errno on failure (never sets a caller-visible errno convention).
 * tfs_sys_pwrite and tfs_sys_pread loop over short transfers; pread
 * returns fewer bytes only at end of file.
 */
int tfs_sys_openat(int dirfd, const char *name, int flags, mode_t mode);
ssize_t tfs_sys_pwrite(int fd, const void *buf, size_t len, off_t off);
/* pwritev that loops over short writes; counts as TFS_SYS_PWRITE. */
ssize_t tfs_sys_pwritev(int fd, const struct iovec *iov, int iovcnt,
			off_t off);
ssize_t tfs_sys_pread(int fd, void *buf, size_t len, off_t off);
int tfs_sys_fsync(int fd);
int tfs_sys_fdatasync(int fd);
int tfs_sys_renameat(int olddirfd, const char *oldname, int newdirfd,
		     const char *newname);
int tfs_sys_unlinkat(int dirfd, const char *name, int flags);
int tfs_sys_ftruncate(int fd, off_t len);
int tfs_sys_mkdirat(int dirfd, const char *name, mode_t mode);
int tfs_sys_close(int fd);

/*
 * Writes a small file atomically and durably: name.tmp is written, fsynced,
 * renamed over name, and the directory is fsynced.  Returns 0 or -errno;
 * on failure name is unchanged and the temporary file is removed.
 */
int tfs_sys_write_atomic(int dirfd, const char *name, const void *buf,
			 size_t len);
/* Reads a whole small file (up to max bytes) into a malloc'd buffer. */
int tfs_sys_read_file(int dirfd, const char *name, size_t max, char **out,
		      size_t *len);

#endif
