/*
 * log.c - leveled logging to stderr or syslog.
 *
 * In the foreground each line goes to stderr with a UTC timestamp and the
 * level; after tfs_log_use_syslog() lines go to syslog with the matching
 * priority.  A single write() per line keeps concurrent lines whole.
 *
 * Escaping.  Messages carry bytes nobody vetted: topic names a user typed
 * (a rejected mkdir is logged with the name it was given), paths, peers'
 * words.  So every message, whatever its destination, is formatted first
 * and then passed through tfs_log_escape(), which writes
 *
 *   a byte below 0x20 other than tab, and 0x7f   as \xHH (lower-case hex)
 *   a backslash                                  as \\
 *
 * and every other byte as it is (bytes from 0x80 up included, so UTF-8
 * stays readable).  A log line is therefore always one line, a name cannot
 * forge a line of its own or move a terminal's cursor, and the escaped
 * text decodes back to the original unambiguously (a literal "\x0a" in a
 * message is logged as "\\x0a").  A message too long for a line is cut
 * between two escapes, never inside one.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#include "log.h"
#include "banned.h"

/* Longest message before escaping, and longest line written. */
#define MSG_MAX 2048
#define LINE_MAX_BYTES 4096

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

size_t tfs_log_escape(char *dst, size_t len, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (!len)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		char esc[4];
		size_t k;

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			k = 4;
		} else if (c == '\\') {
			esc[0] = esc[1] = '\\';
			k = 2;
		} else {
			esc[0] = (char)c;
			k = 1;
		}
		if (o + k > len - 1)
			break;
		for (size_t j = 0; j < k; j++)
			dst[o++] = esc[j];
	}
	dst[o] = '\0';
	return o;
}

void tfs_log(enum tfs_log_level level, const char *fmt, ...)
{
	char msg[MSG_MAX], line[LINE_MAX_BYTES];
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	msg[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (atomic_load(&log_syslog)) {
		tfs_log_escape(line, sizeof(line), msg, strlen(msg));
		syslog(level_prio[level], "%s", line);
		return;
	}

	struct timeval tv;
	struct tm tm;
	size_t p;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	p = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	p += (size_t)snprintf(line + p, sizeof(line) - p,
			      ".%03ldZ topicfs[%d] %s: ",
			      (long)(tv.tv_usec / 1000), (int)getpid(),
			      level_names[level]);
	/* Leave room for the newline. */
	p += tfs_log_escape(line + p, sizeof(line) - p - 1, msg, strlen(msg));
	line[p++] = '\n';
	/* One write so lines from several threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, p);
	(void)w;
}

bool tfs_log_due(atomic_llong *last, int64_t every_ms)
{
	int64_t now = tfs_mono_ms();
	long long was = atomic_load(last);

	return (was == 0 || now - was >= every_ms) &&
	       atomic_compare_exchange_strong(last, &was, now);
}
