/* fuzz_webhook.c -- libFuzzer target for webhook.c: Retry-After values,
 * retry schedules and globs from untrusted bytes, and the signature, which
 * must not depend on anything but its inputs. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;

	/* A receiver's header, as the courier reads it. */
	int64_t after = webhook_retry_after(p, size, 1700000000);
	if (after < -1 || after > 365LL * 86400)
		abort();

	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	struct webhook_schedule s;
	if (webhook_schedule_parse(&s, text) == 0) {
		if (s.n < 1 || s.n > WEBHOOK_SCHEDULE_MAX)
			abort();
		for (unsigned failed = 1; failed < 40; failed++) {
			int64_t d = webhook_next_delay_ms(&s, failed, (uint32_t)failed * 2654435761u, 0);
			int64_t base = s.delay_s[failed < s.n ? failed : s.n - 1] * 1000;
			if (d < base || d > base + base / 10)
				abort();
		}
	}

	/* The first line as a pattern, the rest as the subject; a pattern always
	 * matches itself when it has no wildcard. */
	char *nl = memchr(text, '\n', size);
	if (nl) {
		*nl = '\0';
		(void)webhook_glob(text, nl + 1);
		if (!strpbrk(text, "*?") && !webhook_glob(text, text))
			abort();
	}

	/* Signing the input twice gives the same signature. */
	struct buf a = { 0 }, b = { 0 };
	const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	if (webhook_sign(&a, secret, "msg_1", 1, p, size) < 0 ||
	    webhook_sign(&b, secret, "msg_1", 1, p, size) < 0 || a.len != b.len ||
	    memcmp(a.data, b.data, a.len) != 0)
		abort();
	buf_free(&a);
	buf_free(&b);
	uint8_t key[WEBHOOK_KEY_MAX];
	(void)webhook_secret_key(text, key);
	free(text);
	return 0;
}
