/*
 * log.c - leveled logging to stderr or syslog.
 *
 * In the foreground each line goes to stderr with a UTC timestamp and the
 * level; after tfs_log_use_syslog() lines go to syslog with the matching
 * priority.  A single write() per line keeps concurrent lines whole.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "banned.h"

static atomic_int log_level = TFS_LOG_INFO;
static atomic_bool log_syslog;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int level_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void tfs_log_use_syslog(void)
{
	openlog("topicfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	atomic_store(&log_syslog, true);
}

void tfs_log_set_level(enum tfs_log_level level)
{
	atomic_store(&log_level, level);
}

enum tfs_log_level tfs_log_get_level(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

void tfs_log(enum tfs_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	size_t n;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	if (atomic_load(&log_syslog)) {
		vsyslog(level_prio[level], fmt, ap);
		va_end(ap);
		return;
	}

	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ldZ topicfs[%d] %s: ",
		      (long)(tv.tv_usec / 1000), (int)getpid(),
		      level_names[level]);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write so lines from several threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
