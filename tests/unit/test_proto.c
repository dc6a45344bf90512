/* test_proto.c -- the event envelope, JSON input checks, and the raw member
 * lookup that keeps publishers' data byte for byte. */
#include <stdlib.h>

#include "proto.h"
#include "test.h"

/* proto_member_raw on a NUL-terminated text; returns a malloc'ed copy of the
 * member's text, or NULL when absent. */
static char *member(const char *json, const char *key)
{
	const char *v;
	size_t n;
	if (!proto_member_raw(json, strlen(json), key, &v, &n))
		return NULL;
	char *out = malloc(n + 1);
	memcpy(out, v, n);
	out[n] = '\0';
	return out;
}

static void check_member(const char *json, const char *key, const char *want)
{
	char *got = member(json, key);
	if (want)
		CHECK_EQ_STR(got, want);
	else
		CHECK(got == NULL);
	free(got);
}

static void test_member_raw(void)
{
	/* Numbers, escapes and spacing come out exactly as written. */
	check_member("{\"room\":\"r\",\"data\":{\"price\":1.10,\"e\":1E3,\"s\":\"caf\\u00e9\"}}",
		     "data", "{\"price\":1.10,\"e\":1E3,\"s\":\"caf\\u00e9\"}");
	check_member("{\"data\":123456789012345678901234567890}", "data",
		     "123456789012345678901234567890");
	check_member("{ \"a\" : 1 , \"data\" :\t[ 1, [2], {\"x\":\"]}\"} ] }", "data",
		     "[ 1, [2], {\"x\":\"]}\"} ]");
	check_member("{\"data\":-0.5e-3}", "data", "-0.5e-3");
	check_member("{\"data\":\"a \\\" } quote\",\"b\":2}", "data", "\"a \\\" } quote\"");
	check_member("{\"data\":null}", "data", "null");
	check_member("{\"data\":true,\"x\":1}", "data", "true");
	/* Only top-level members count; a key equal to "data" nested deeper or in
	 * a value does not. */
	check_member("{\"x\":{\"data\":1},\"y\":\"data\"}", "data", NULL);
	check_member("{\"x\":{\"data\":1},\"data\":2}", "data", "2");
	/* An escaped key is compared decoded. */
	check_member("{\"\\u0064ata\":[3]}", "data", "[3]");
	check_member("{\"dat\":1,\"datas\":2}", "data", NULL);
	check_member("{}", "data", NULL);
	check_member("[1]", "data", NULL);
	/* A publish without data publishes null. */
	size_t n;
	const char *d = proto_data("{\"event\":\"e\"}", 13, &n);
	CHECK(n == 4 && memcmp(d, "null", 4) == 0);
	d = proto_data("{\"data\": [1] }", 14, &n);
	CHECK(n == 3 && memcmp(d, "[1]", 3) == 0);
}

static void test_event(void)
{
	struct buf b = { 0 };
	proto_event(&b, "race:1", 7, "00112233aabbccdd", "odds\"x", "{\"a\":1.10}", 10,
		    "2026-11-23T10:00:00.000Z");
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "{\"type\":\"event\",\"room\":\"race:1\",\"seq\":7,"
			     "\"epoch\":\"00112233aabbccdd\",\"event\":\"odds\\\"x\","
			     "\"data\":{\"a\":1.10},\"ts\":\"2026-11-23T10:00:00.000Z\"}");
	buf_free(&b);
}

static void test_parse_object(void)
{
	json_t *v;
	char err[160];
	CHECK_EQ_INT(proto_parse_object("{\"a\":[[1]]}", 11, 3, 0, &v, err, sizeof(err)), 0);
	json_decref(v);
	CHECK_EQ_INT(proto_parse_object("{\"a\":[[1]]}", 11, 2, 0, &v, err, sizeof(err)), -1);
	CHECK(v == NULL && strstr(err, "deeper") != NULL);
	CHECK_EQ_INT(proto_parse_object("[1]", 3, 8, 0, &v, err, sizeof(err)), -1);
	CHECK(strstr(err, "object") != NULL);
	CHECK_EQ_INT(proto_parse_object("{\"a\":1,\"a\":2}", 13, 8, 0, &v, err, sizeof(err)), -1);
	CHECK_EQ_INT(proto_parse_object("{\"a\":", 5, 8, 0, &v, err, sizeof(err)), -1);
	CHECK(strstr(err, "invalid JSON") != NULL);
	/* Integers beyond 64 bits: an error, unless read as reals. */
	const char *big = "{\"n\":123456789012345678901234567890}";
	CHECK_EQ_INT(proto_parse_object(big, strlen(big), 8, 0, &v, err, sizeof(err)), -1);
	CHECK_EQ_INT(proto_parse_object(big, strlen(big), 8, JSON_DECODE_INT_AS_REAL, &v, err,
					sizeof(err)), 0);
	json_decref(v);
	/* Brackets inside strings do not count as nesting. */
	CHECK_EQ_INT(proto_json_depth("{\"a\":\"[[[[\"}", 12), 1);
	CHECK_EQ_INT(proto_json_depth("{\"a\":\"\\\"[[\"}", 12), 1);
	CHECK_EQ_INT(proto_json_depth("\"open", 5), -1);
}

static void test_ids(void)
{
	json_t *req = json_pack("{s:s}", "id", "a\"b");
	char *id = proto_id_dup(req);
	CHECK_EQ_STR(id, "\"a\\\"b\"");
	struct buf b = { 0 };
	proto_put_id(&b, id);
	proto_put_id(&b, NULL);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "\"id\":\"a\\\"b\",");
	buf_free(&b);
	free(id);
	json_decref(req);
	req = json_pack("{s:i}", "id", 42);
	id = proto_id_dup(req);
	CHECK_EQ_STR(id, "42");
	free(id);
	json_decref(req);
	req = json_pack("{s:[]}", "id");
	CHECK(proto_id_dup(req) == NULL);
	json_decref(req);
}

TEST_MAIN("proto",
	  TEST(test_member_raw),
	  TEST(test_event),
	  TEST(test_parse_object),
	  TEST(test_ids))
