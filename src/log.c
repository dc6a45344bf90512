/* log.c -- key=value log lines with a timestamp, level and process name. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char log_name[32] = "herald";
static enum log_level log_min = LOG_INFO;
static char *log_path;
static FILE *log_fp;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *name, enum log_level level, const char *file)
{
	log_set_name(name);
	log_min = level;
	free(log_path);
	log_path = file && *file ? xstrdup(file) : NULL;
	log_reopen();
}

void log_set_name(const char *name)
{
	snprintf(log_name, sizeof(log_name), "%s", name);
}

void log_set_level(enum log_level level)
{
	log_min = level;
}

void log_reopen(void)
{
	if (!log_path)
		return;
	FILE *fp = fopen(log_path, "a");
	if (!fp) {
		log_error("event=log_open_failed file=%s error=\"%s\"", log_path, strerror(errno));
		return;
	}
	setvbuf(fp, NULL, _IOLBF, 0);
	if (log_fp)
		fclose(log_fp);
	log_fp = fp;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

__attribute__((format(printf, 2, 0)))
static void log_write(enum log_level level, const char *fmt, va_list ap)
{
	char ts[UTIL_TS_LEN + 1], line[2048];
	ts_format(now_ms(), ts);
	int n = snprintf(line, sizeof(line), "ts=%s level=%s proc=\"%s\" pid=%d ", ts,
			 level_names[level], log_name, (int)getpid());
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write per line keeps lines of concurrent processes whole. */
	int fd = log_fp ? fileno(log_fp) : STDERR_FILENO;
	ssize_t w = write(fd, line, len);
	(void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level < log_min)
		return;
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_write(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
