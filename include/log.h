/*
 * log.h - leveled logging: stderr in the foreground, syslog when
 * daemonized.  Thread-safe; one line per call.  Every message is escaped
 * (see tfs_log_escape) so untrusted bytes in it cannot break or forge a
 * line.
 */
#ifndef TFS_LOG_H
#define TFS_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tfs_log_level {
	TFS_LOG_ERROR,
	TFS_LOG_WARN,
	TFS_LOG_INFO,
	TFS_LOG_DEBUG,
};

/* Sends later messages to syslog (ident "topicfs") instead of stderr. */
void tfs_log_use_syslog(void);
void tfs_log_set_level(enum tfs_log_level level);
enum tfs_log_level tfs_log_get_level(void);

/*
 * Formats a message and writes it as one line: "<UTC time> topicfs[<pid>]
 * <level>: <message>\n" on stderr, or the message alone to syslog.
 * Nothing happens when level is less severe than the current level.  The
 * formatted message is cut at 2047 bytes, then escaped.  Any thread.
 */
void tfs_log(enum tfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Copies n bytes of src to dst, escaped for a log line: a byte below 0x20
 * other than tab, and 0x7f, as "\xHH" (lower-case hex); a backslash as
 * "\\"; every other byte unchanged.  Writes at most len bytes including
 * the terminating NUL, cutting between two escapes, never inside one, and
 * returns the length written (without the NUL).  len 0 writes nothing.
 * Pure; any thread.
 */
size_t tfs_log_escape(char *dst, size_t len, const char *src, size_t n);

/*
 * For messages that could repeat fast (a peer refusing every request, a
 * failed repair retried each second): true at most once per every_ms for
 * the same *last, which holds the monotonic ms of the last time (0 at
 * first, so the first call is true).  Callers say in the message that
 * repeats are counted, not logged.  Any thread.
 */
bool tfs_log_due(atomic_llong *last, int64_t every_ms);

#define tfs_err(...) tfs_log(TFS_LOG_ERROR, __VA_ARGS__)
#define tfs_warn(...) tfs_log(TFS_LOG_WARN, __VA_ARGS__)
#define tfs_info(...) tfs_log(TFS_LOG_INFO, __VA_ARGS__)
#define tfs_debug(...)                                      \
	do {                                                \
		if (tfs_log_get_level() >= TFS_LOG_DEBUG)   \
			tfs_log(TFS_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
