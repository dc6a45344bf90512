/* util.h -- allocation wrappers that die on out-of-memory, clocks, small helpers. */
#ifndef HERALD_UTIL_H
#define HERALD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Grows *arr (of *cap elements of size sz) so it holds at least need elements. */
void xgrow(void *arrp, size_t *cap, size_t need, size_t sz);

/* Wall clock in milliseconds since the epoch; monotonic clock in milliseconds. */
int64_t now_ms(void);
int64_t mono_ms(void);
/* Writes ms-since-epoch as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z"),
 * 24 characters plus NUL; out must hold UTIL_TS_LEN + 1 bytes. */
#define UTIL_TS_LEN 24
void ts_format(int64_t ms, char *out);

int set_nonblock(int fd);
int set_cloexec(int fd);

/* Fills out with n random bytes encoded as 2n lowercase hex digits plus NUL. */
void random_hex(char *out, size_t n);

/* Constant-time comparison of two strings; true when equal. */
bool str_equal_ct(const char *a, size_t alen, const char *b, size_t blen);

/* Parses "host:port" (IPv4 literal, "*" or "0.0.0.0" for any); 0 or -1. */
struct sockaddr_in;
int parse_hostport(const char *s, struct sockaddr_in *out);

/* Simple case-sensitive string hash (FNV-1a). */
uint64_t hash_str(const char *s, size_t len);

/* Process titles as shown by ps ("heraldd: worker 1"): proctitle_init keeps
 * argv's memory (moving environ away) so proctitle_set can overwrite it;
 * argv's strings are no longer valid after the first proctitle_set. */
void proctitle_init(int argc, char **argv);
void proctitle_set(const char *title);

#endif
