/* log.h -- one line per event, key=value, with levels; to stderr or a file. */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* name: the process's role, printed in every line ("master", "worker 2"). */
void log_init(const char *name, enum log_level level, const char *file);
void log_set_name(const char *name);
void log_set_level(enum log_level level);
/* Reopens the log file (SIGUSR1); no-op when logging to stderr. */
void log_reopen(void);
int log_level_parse(const char *s, enum log_level *out);

/* fmt is the rest of the line in key=value form: log_info("event=listen addr=%s", a). */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Logs at ERROR and exits with status 1: for start-up failures and broken invariants. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
