/* webhook.h -- the pure parts of webhook delivery (Standard Webhooks): secrets,
 * signatures, event and room globs, the retry schedule and Retry-After.
 * No I/O and no process state: shared by the hub (outbox), the courier, the
 * unit tests and the fuzz targets. */
#ifndef HERALD_WEBHOOK_H
#define HERALD_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_SECRET_BYTES 32          /* random bytes of a generated secret */
#define WEBHOOK_SECRET_MAX 128           /* longest secret accepted, prefix included */
#define WEBHOOK_KEY_MAX 64               /* longest decoded key */
#define WEBHOOK_SCHEDULE_MAX 32          /* steps in a retry schedule */

/* Writes a new secret, "whsec_" + base64 of WEBHOOK_SECRET_BYTES random bytes,
 * NUL-terminated, into out (WEBHOOK_SECRET_MAX bytes). */
void webhook_secret_new(char *out);

/* Decodes a secret ("whsec_" + standard base64, or the bare base64) into key;
 * returns the key length (1..WEBHOOK_KEY_MAX), or -1 when it is not valid. */
int webhook_secret_key(const char *secret, uint8_t *key);

/* Appends "v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>" to out.
 * Returns 0, or -1 when the secret is not valid. */
int webhook_sign(struct buf *out, const char *secret, const char *id, int64_t timestamp,
		 const char *body, size_t len);

/* Shell-style match of s against pattern: '*' any run of bytes, '?' one byte,
 * everything else (the dot included) literal. */
bool webhook_glob(const char *pattern, const char *s);

/* The retry schedule: delays in seconds, step i before attempt i+1. */
struct webhook_schedule {
	int64_t delay_s[WEBHOOK_SCHEDULE_MAX];
	size_t n;
};

/* Parses "0,5,300,..." (seconds, non-negative, 1..WEBHOOK_SCHEDULE_MAX steps).
 * Returns 0, or -1 with nothing changed. */
int webhook_schedule_parse(struct webhook_schedule *s, const char *text);

/* Milliseconds to wait after a delivery has failed `failed` times (>= 1)
 * before the next attempt: the step for that attempt (the last step repeats),
 * stretched by jitter in [0, 10 %) drawn from rnd (uniform over uint32_t),
 * and never less than retry_after_s. */
int64_t webhook_next_delay_ms(const struct webhook_schedule *s, unsigned failed,
			      uint32_t rnd, int64_t retry_after_s);

/* Seconds a Retry-After header value asks for: delay-seconds, or an HTTP-date
 * (IMF-fixdate) compared with now_s. Returns >= 0, or -1 when it is not valid. */
int64_t webhook_retry_after(const char *value, size_t len, int64_t now_s);

#endif
