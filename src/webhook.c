/* webhook.c -- secrets, Standard Webhooks signatures, globs, the retry
 * schedule and Retry-After. */
#include "webhook.h"

#include <ctype.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "log.h"
#include "util.h"

#define B64 sodium_base64_VARIANT_ORIGINAL

/* sodium_init() is idempotent and cheap after the first call; the tools and
 * fuzzers reach this module without the daemon's start-up. */
static void webhook_sodium_init(void)
{
	if (sodium_init() < 0)
		fatal("event=sodium_init_failed");
}

void webhook_secret_new(char *out)
{
	uint8_t key[WEBHOOK_SECRET_BYTES];

	webhook_sodium_init();
	randombytes_buf(key, sizeof(key));
	memcpy(out, WEBHOOK_SECRET_PREFIX, sizeof(WEBHOOK_SECRET_PREFIX) - 1);
	sodium_bin2base64(out + sizeof(WEBHOOK_SECRET_PREFIX) - 1,
			  WEBHOOK_SECRET_MAX - (sizeof(WEBHOOK_SECRET_PREFIX) - 1), key, sizeof(key), B64);
	sodium_memzero(key, sizeof(key));
}

int webhook_secret_key(const char *secret, uint8_t *key)
{
	size_t n = strlen(secret), got;
	const char *end;

	if (n > WEBHOOK_SECRET_MAX)
		return -1;
	if (strncmp(secret, WEBHOOK_SECRET_PREFIX, sizeof(WEBHOOK_SECRET_PREFIX) - 1) == 0) {
		secret += sizeof(WEBHOOK_SECRET_PREFIX) - 1;
		n -= sizeof(WEBHOOK_SECRET_PREFIX) - 1;
	}
	webhook_sodium_init();
	if (n == 0 || sodium_base642bin(key, WEBHOOK_KEY_MAX, secret, n, NULL, &got, &end, B64) != 0 ||
	    end != secret + n || got == 0)
		return -1;
	return (int)got;
}

int webhook_sign(struct buf *out, const char *secret, const char *id, int64_t timestamp,
		 const char *body, size_t len)
{
	uint8_t key[WEBHOOK_KEY_MAX], mac[crypto_auth_hmacsha256_BYTES];
	char ts[24], sig[sodium_base64_ENCODED_LEN(sizeof(mac), B64)];
	crypto_auth_hmacsha256_state st;
	int klen = webhook_secret_key(secret, key);

	if (klen < 0)
		return -1;
	int tlen = snprintf(ts, sizeof(ts), "%lld", (long long)timestamp);
	crypto_auth_hmacsha256_init(&st, key, (size_t)klen);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, strlen(id));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, (size_t)tlen);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(key, sizeof(key));
	sodium_bin2base64(sig, sizeof(sig), mac, sizeof(mac), B64);
	buf_appends(out, "v1,");
	buf_appends(out, sig);
	return 0;
}

bool webhook_glob(const char *p, const char *s)
{
	/* Iterative, with one backtrack point: linear in practice, and no
	 * pattern can make it recurse. */
	const char *star = NULL, *retry = NULL;

	while (*s) {
		if (*p == '*') {
			star = p++;
			retry = s;
		} else if (*p == '?' || *p == *s) {
			p++;
			s++;
		} else if (star) {
			p = star + 1;
			s = ++retry;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

int webhook_schedule_parse(struct webhook_schedule *out, const char *text)
{
	struct webhook_schedule s = { .n = 0 };
	const char *p = text;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!isdigit((unsigned char)*p) || s.n == WEBHOOK_SCHEDULE_MAX)
			return -1;
		int64_t v = 0;
		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (*p++ - '0');
			if (v > 365LL * 86400)
				return -1;
		}
		s.delay_s[s.n++] = v;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (*p++ != ',')
			return -1;
	}
	*out = s;
	return 0;
}

int64_t webhook_next_delay_ms(const struct webhook_schedule *s, unsigned failed, uint32_t rnd,
			      int64_t retry_after_s)
{
	size_t step = failed < s->n ? failed : s->n - 1;
	int64_t base = s->delay_s[step] * 1000;
	int64_t delay = base + (int64_t)((double)base * 0.1 * ((double)rnd / 4294967296.0));
	return MAX(delay, retry_after_s * 1000);
}

int64_t webhook_retry_after(const char *v, size_t len, int64_t now_s)
{
	char text[64];

	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, v, len);
	text[len] = '\0';
	if (isdigit((unsigned char)text[0])) {
		int64_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)text[i]))
				return -1;
			n = n * 10 + (text[i] - '0');
			if (n > 365LL * 86400)
				return -1;
		}
		return n;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char wday[4], mon[4];
	int day, year, h, m, sec, used = 0;
	if (sscanf(text, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wday, &day, mon,
		   &year, &h, &m, &sec, &used) != 7 || (size_t)used != len)
		return -1;
	const char *mp = strstr(months, mon);
	if (strlen(mon) != 3 || !mp || (mp - months) % 3 || day < 1 || day > 31 || h > 23 ||
	    m > 59 || sec > 60 || year < 1970)
		return -1;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = (int)(mp - months) / 3, .tm_mday = day,
			 .tm_hour = h, .tm_min = m, .tm_sec = sec };
	int64_t at = (int64_t)timegm(&tm);
	return at > now_s ? MIN(at - now_s, 365LL * 86400) : 0;
}
