/* test_webhook.c -- unit tests for webhook.c: the Standard Webhooks reference
 * signature, secrets, globs, the retry schedule with its jitter bounds and
 * Retry-After. */

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "webhook.h"
#include "test.h"

/* The reference vector published with the Standard Webhooks specification. */
static void test_reference_signature(void)
{
	struct buf b = { 0 };
	const char body[] = "{\"test\": 2432232314}";
	CHECK_EQ_INT(webhook_sign(&b, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				  "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body)), 0);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* The bare base64 key signs the same; a changed byte anywhere does not. */
	b.len = 0;
	webhook_sign(&b, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		     1614265330, body, strlen(body));
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	b.len = 0;
	webhook_sign(&b, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		     1614265331, body, strlen(body));
	buf_append(&b, "", 1);
	CHECK(strcmp(b.data, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
	buf_free(&b);
}

static void test_secrets(void)
{
	char a[WEBHOOK_SECRET_MAX], c[WEBHOOK_SECRET_MAX];
	uint8_t key[WEBHOOK_KEY_MAX];
	webhook_secret_new(a);
	webhook_secret_new(c);
	CHECK(strncmp(a, "whsec_", 6) == 0);
	CHECK(strcmp(a, c) != 0);
	CHECK_EQ_INT(webhook_secret_key(a, key), WEBHOOK_SECRET_BYTES);
	CHECK_EQ_INT(webhook_secret_key("whsec_", key), -1);
	CHECK_EQ_INT(webhook_secret_key("whsec_not base64!", key), -1);
	CHECK_EQ_INT(webhook_secret_key("", key), -1);
	struct buf b = { 0 };
	CHECK_EQ_INT(webhook_sign(&b, "whsec_***", "id", 1, "x", 1), -1);
	buf_free(&b);
}

static void test_globs(void)
{
	CHECK(webhook_glob("*", "anything.at.all"));
	CHECK(webhook_glob("*", ""));
	CHECK(webhook_glob("workflow.*", "workflow.approved"));
	CHECK(!webhook_glob("workflow.*", "workflows.approved"));
	CHECK(!webhook_glob("workflow.*", "workflow"));
	CHECK(webhook_glob("order.created", "order.created"));
	CHECK(!webhook_glob("order.created", "order.createdx"));
	CHECK(!webhook_glob("order.created", "orderXcreated"));   /* the dot is literal */
	CHECK(webhook_glob("race:*", "race:42"));
	CHECK(webhook_glob("*:4?", "race:42"));
	CHECK(!webhook_glob("*:4?", "race:4"));
	CHECK(webhook_glob("a*b*c", "aXXbYYc"));
	CHECK(!webhook_glob("a*b*c", "aXXbYY"));
	CHECK(webhook_glob("**x", "yyx"));
}

static void test_schedule(void)
{
	struct webhook_schedule s;
	CHECK_EQ_INT(webhook_schedule_parse(&s, "0,5,300"), 0);
	CHECK_EQ_INT(s.n, 3);
	CHECK_EQ_INT(s.delay_s[2], 300);
	CHECK_EQ_INT(webhook_schedule_parse(&s, " 1 , 2 "), 0);
	CHECK_EQ_INT(s.n, 2);
	CHECK_EQ_INT(webhook_schedule_parse(&s, ""), -1);
	CHECK_EQ_INT(webhook_schedule_parse(&s, "1,,2"), -1);
	CHECK_EQ_INT(webhook_schedule_parse(&s, "1,-2"), -1);
	CHECK_EQ_INT(webhook_schedule_parse(&s, "1,x"), -1);
	CHECK_EQ_INT(webhook_schedule_parse(&s, "1,"), -1);
	CHECK_EQ_INT(s.n, 2);   /* unchanged by failures */

	webhook_schedule_parse(&s, "0,5,300");
	/* Failed once: step 1 (5 s) stretched by at most 10 %. */
	CHECK_EQ_INT(webhook_next_delay_ms(&s, 1, 0, 0), 5000);
	CHECK(webhook_next_delay_ms(&s, 1, UINT32_MAX, 0) < 5500);
	CHECK(webhook_next_delay_ms(&s, 1, UINT32_MAX, 0) >= 5499);
	CHECK_EQ_INT(webhook_next_delay_ms(&s, 2, 0, 0), 300000);
	/* The last step repeats. */
	CHECK_EQ_INT(webhook_next_delay_ms(&s, 9, 0, 0), 300000);
	/* Retry-After replaces a shorter step, never a longer one. */
	CHECK_EQ_INT(webhook_next_delay_ms(&s, 1, 0, 60), 60000);
	CHECK_EQ_INT(webhook_next_delay_ms(&s, 2, 0, 60), 300000);
	for (uint32_t r = 0; r < 4000000000u; r += 400000000u) {
		int64_t d = webhook_next_delay_ms(&s, 2, r, 0);
		CHECK(d >= 300000 && d < 330000);
	}
}

static void test_retry_after(void)
{
	const int64_t now = 784111777;   /* Sun, 06 Nov 1994 08:49:37 GMT */
	CHECK_EQ_INT(webhook_retry_after("120", 3, now), 120);
	CHECK_EQ_INT(webhook_retry_after(" 7 ", 3, now), 7);
	CHECK_EQ_INT(webhook_retry_after("0", 1, now), 0);
	CHECK_EQ_INT(webhook_retry_after("1.5", 3, now), -1);
	CHECK_EQ_INT(webhook_retry_after("-1", 2, now), -1);
	CHECK_EQ_INT(webhook_retry_after("", 0, now), -1);
	const char *d = "Sun, 06 Nov 1994 08:50:37 GMT";
	CHECK_EQ_INT(webhook_retry_after(d, strlen(d), now), 60);
	d = "Sun, 06 Nov 1994 08:40:00 GMT";     /* in the past: now */
	CHECK_EQ_INT(webhook_retry_after(d, strlen(d), now), 0);
	d = "Sun, 06 Nov 1994 08:50:37 UTC";
	CHECK_EQ_INT(webhook_retry_after(d, strlen(d), now), -1);
	d = "Sun, 06 Foo 1994 08:50:37 GMT";
	CHECK_EQ_INT(webhook_retry_after(d, strlen(d), now), -1);
	d = "Sun, 06 Nov 1994 08:50:37 GMT trailing";
	CHECK_EQ_INT(webhook_retry_after(d, strlen(d), now), -1);
}

TEST_MAIN("webhook",
	  TEST(test_reference_signature),
	  TEST(test_secrets),
	  TEST(test_globs),
	  TEST(test_schedule),
	  TEST(test_retry_after))
