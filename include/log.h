/*
 * log.h - leveled logging: stderr in the foreground, syslog when
 * daemonized.  Thread-safe; one line per call.
 */
#ifndef TFS_LOG_H
#define TFS_LOG_H

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

void tfs_log(enum tfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define tfs_err(...) tfs_log(TFS_LOG_ERROR, __VA_ARGS__)
#define tfs_warn(...) tfs_log(TFS_LOG_WARN, __VA_ARGS__)
#define tfs_info(...) tfs_log(TFS_LOG_INFO, __VA_ARGS__)
#define tfs_debug(...)                                      \
	do {                                                \
		if (tfs_log_get_level() >= TFS_LOG_DEBUG)   \
			tfs_log(TFS_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
