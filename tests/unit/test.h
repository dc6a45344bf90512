/* test.h -- a tiny unit test harness: CHECK records a failure and goes on,
 * TEST_MAIN runs the listed tests and exits non-zero when any check failed. */
#ifndef HERALD_TEST_H
#define HERALD_TEST_H

#include <stdio.h>
#include <string.h>

static int test_checks, test_failures;

#define CHECK(cond) do { \
	test_checks++; \
	if (!(cond)) { \
		test_failures++; \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_EQ_INT(a, b) do { \
	long long a_ = (long long)(a), b_ = (long long)(b); \
	test_checks++; \
	if (a_ != b_) { \
		test_failures++; \
		fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
			__FILE__, __LINE__, #a, a_, #b, b_); \
	} \
} while (0)

#define CHECK_EQ_STR(a, b) do { \
	const char *a_ = (a), *b_ = (b); \
	test_checks++; \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
		test_failures++; \
		fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", \
			__FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} \
} while (0)

typedef void (*test_fn)(void);
struct test_case { const char *name; test_fn fn; };
#define TEST(fn) { #fn, fn }

static inline int test_run(const char *suite, const struct test_case *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int before = test_failures;
		t[i].fn();
		printf("%s %s/%s\n", test_failures == before ? "ok  " : "FAIL", suite, t[i].name);
	}
	printf("%s: %d checks, %d failed\n", suite, test_checks, test_failures);
	return test_failures ? 1 : 0;
}

#define TEST_MAIN(suite, ...) \
	int main(void) { \
		static const struct test_case tests_[] = { __VA_ARGS__ }; \
		return test_run(suite, tests_, sizeof(tests_) / sizeof(tests_[0])); \
	}

#endif
