/* util.c -- allocation wrappers that die on out-of-memory, clocks, small helpers. */
#include "util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sodium.h>

#include "log.h"

static void *oom(size_t n)
{
	fatal("event=out_of_memory bytes=%zu", n);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom(n * size);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom(n);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void xgrow(void *arrp, size_t *cap, size_t need, size_t sz)
{
	void **arr = arrp;
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 2;   /* most arrays stay tiny: one per connection */
	while (c < need)
		c *= 2;
	*arr = xrealloc(*arr, c * sz);
	*cap = c;
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_format(int64_t ms, char *out)
{
	time_t secs = (time_t)(ms / 1000);
	unsigned frac = (unsigned)(ms % 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(out, UTIL_TS_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm);
	out[19] = '.';
	out[20] = (char)('0' + frac / 100);
	out[21] = (char)('0' + frac / 10 % 10);
	out[22] = (char)('0' + frac % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

void random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];
	while (n > 0) {
		size_t k = MIN(n, sizeof(b));
		randombytes_buf(b, k);
		for (size_t i = 0; i < k; i++) {
			*out++ = hex[b[i] >> 4];
			*out++ = hex[b[i] & 15];
		}
		n -= k;
	}
	*out = '\0';
}

bool str_equal_ct(const char *a, size_t alen, const char *b, size_t blen)
{
	/* Compare hashes so the time depends on neither string's content. */
	unsigned char ha[crypto_generichash_BYTES], hb[crypto_generichash_BYTES];
	crypto_generichash(ha, sizeof(ha), (const unsigned char *)a, alen, NULL, 0);
	crypto_generichash(hb, sizeof(hb), (const unsigned char *)b, blen, NULL, 0);
	return sodium_memcmp(ha, hb, sizeof(ha)) == 0 && alen == blen;
}

int parse_hostport(const char *s, struct sockaddr_in *out)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || !colon[1])
		return -1;
	char host[64];
	size_t hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (strcmp(host, "*") == 0)
		out->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -1;
	return 0;
}

uint64_t hash_str(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static char *title_start;
static size_t title_room;

void proctitle_init(int argc, char **argv)
{
	extern char **environ;
	if (argc == 0)
		return;
	char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	/* environ usually follows argv: move it to the heap to gain its room. */
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = xcalloc(n + 1, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		env[i] = xstrdup(environ[i]);
	}
	environ = env;
	title_start = argv[0];
	title_room = (size_t)(end - argv[0]);
}

void proctitle_set(const char *title)
{
	prctl(PR_SET_NAME, title, 0, 0, 0);
	if (!title_start || title_room < 2)
		return;
	memset(title_start, 0, title_room);
	snprintf(title_start, title_room, "%s", title);
}
