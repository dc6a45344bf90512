/* test_sio.c -- the Engine.IO and Socket.IO packet codecs (eiopkt.c,
 * siopkt.c), and the storage recovery relies on (global positions, sessions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eiopkt.h"
#include "siopkt.h"
#include "store.h"
#include "test.h"

static void test_eio_types(void)
{
	CHECK_EQ_INT(eiopkt_type("4hello", 6), EIO_MESSAGE);
	CHECK_EQ_INT(eiopkt_type("2", 1), EIO_PING);
	CHECK_EQ_INT(eiopkt_type("6", 1), EIO_NOOP);
	CHECK_EQ_INT(eiopkt_type("", 0), -1);
	CHECK_EQ_INT(eiopkt_type("7", 1), -1);
	CHECK_EQ_INT(eiopkt_type("abc", 3), -1);
}

static void test_eio_payload(void)
{
	const char *p = "4test1\x1e" "4test2\x1e" "bAQIDBA==";
	size_t pos = 0, n;
	const char *pkt;
	CHECK_EQ_INT(eiopkt_payload_next(p, strlen(p), &pos, &pkt, &n), 1);
	CHECK(n == 6 && memcmp(pkt, "4test1", 6) == 0);
	CHECK_EQ_INT(eiopkt_payload_next(p, strlen(p), &pos, &pkt, &n), 1);
	CHECK(n == 6 && memcmp(pkt, "4test2", 6) == 0);
	CHECK_EQ_INT(eiopkt_payload_next(p, strlen(p), &pos, &pkt, &n), 1);
	CHECK(n == 9 && pkt[0] == 'b');
	uint8_t bin[16];
	CHECK_EQ_INT(eiopkt_b64_decode(pkt + 1, n - 1, bin, sizeof(bin)), 4);
	CHECK(bin[0] == 1 && bin[3] == 4);
	CHECK_EQ_INT(eiopkt_payload_next(p, strlen(p), &pos, &pkt, &n), 0);
	/* empty packets are malformed: an empty payload, a trailing separator */
	pos = 0;
	CHECK_EQ_INT(eiopkt_payload_next("", 0, &pos, &pkt, &n), -1);
	pos = 0;
	CHECK_EQ_INT(eiopkt_payload_next("4a\x1e", 3, &pos, &pkt, &n), 1);
	CHECK_EQ_INT(eiopkt_payload_next("4a\x1e", 3, &pos, &pkt, &n), -1);
	CHECK_EQ_INT(eiopkt_payload_next("4a\x1e", 3, &pos, &pkt, &n), 0);
	CHECK_EQ_INT(eiopkt_b64_decode("!!", 2, bin, sizeof(bin)), -1);
	CHECK_EQ_INT(eiopkt_b64_decode("AQIDBAUGBwgJCgsMDQ4PEBES", 24, bin, 4), -1);
	struct buf b = { 0 };
	eiopkt_put_binary(&b, "\x01\x02\x03\x04", 4);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "bAQIDBA==");
	buf_free(&b);
}

static void test_eio_query(void)
{
	struct eiopkt_query q;
	const char *s = "EIO=4&transport=polling&t=abc&sid=00ab";
	CHECK_EQ_INT(eiopkt_query_parse(s, strlen(s), &q), 0);
	CHECK_EQ_STR(q.eio, "4");
	CHECK_EQ_STR(q.transport, "polling");
	CHECK_EQ_STR(q.sid, "00ab");
	CHECK_EQ_INT(eiopkt_query_parse(NULL, 0, &q), 0);
	CHECK_EQ_STR(q.sid, "");
	char longq[200];
	snprintf(longq, sizeof(longq), "EIO=4&sid=%0100d", 0);
	CHECK_EQ_INT(eiopkt_query_parse(longq, strlen(longq), &q), -1);
}

static int parse(const char *s, struct siopkt *p)
{
	return siopkt_parse(s, strlen(s), p);
}

static void test_sio_parse(void)
{
	struct siopkt p;
	CHECK_EQ_INT(parse("0", &p), 0);
	CHECK(p.type == SIO_CONNECT && p.nsp_len == 1 && p.id == -1 && p.data_len == 0);
	CHECK_EQ_INT(parse("0/custom,{\"token\":\"abc\"}", &p), 0);
	CHECK(p.nsp_len == 7 && memcmp(p.nsp, "/custom", 7) == 0);
	CHECK(p.data_len == 15 && p.data[0] == '{');
	CHECK_EQ_INT(parse("0/custom", &p), 0);
	CHECK(p.nsp_len == 7 && p.data_len == 0);
	CHECK_EQ_INT(parse("2456[\"message-with-ack\",1]", &p), 0);
	CHECK(p.type == SIO_EVENT && p.id == 456 && p.data[0] == '[');
	CHECK_EQ_INT(parse("52-789[\"m\",{\"_placeholder\":true,\"num\":0}]", &p), 0);
	CHECK(p.type == SIO_BINARY_EVENT && p.attachments == 2 && p.id == 789);
	CHECK_EQ_INT(parse("3/admin,12[]", &p), 0);
	CHECK(p.type == SIO_ACK && p.id == 12 && p.nsp_len == 6);
	/* malformed headers */
	CHECK_EQ_INT(parse("", &p), -1);
	CHECK_EQ_INT(parse("7", &p), -1);
	CHECK_EQ_INT(parse("abc", &p), -1);
	CHECK_EQ_INT(parse("5[\"x\"]", &p), -1);          /* no attachment count */
	CHECK_EQ_INT(parse("51[\"x\"]", &p), -1);         /* no dash */
	CHECK_EQ_INT(parse("5999-[\"x\"]", &p), -1);      /* too many */
	CHECK_EQ_INT(parse("3[]", &p), -1);               /* an ack needs an id */
	CHECK_EQ_INT(parse("012", &p), -1);               /* no id on CONNECT */
	CHECK_EQ_INT(parse("299999999999999999999[]", &p), -1);
	/* "42abc[...]": the id is not digits: the payload is not JSON (caller) */
	CHECK_EQ_INT(parse("2abc[\"x\"]", &p), 0);
	CHECK(p.id == -1 && p.data[0] == 'a');
}

static void test_sio_encode(void)
{
	struct buf b = { 0 };
	siopkt_put_header(&b, SIO_BINARY_ACK, 2, "/custom", 789);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "62-/custom,789");
	buf_reset(&b);
	siopkt_put_header(&b, SIO_CONNECT, 0, "/", -1);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "0");
	buf_reset(&b);
	siopkt_event(&b, "/", "\"odds\"", 6, "race:7", 3, "2026-01-02T03:04:05.678Z",
		     "{\"p\":1}", 7, 42);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "42[\"odds\",{\"type\":\"odds\",\"room\":\"race:7\",\"seq\":3,"
		     "\"timestamp\":\"2026-01-02T03:04:05.678Z\",\"data\":{\"p\":1}},\"42\"]");
	buf_reset(&b);
	siopkt_event(&b, "/x", "\"e\"", 3, "r", 1, "t", "null", 4, -1);
	buf_append(&b, "", 1);
	CHECK_EQ_STR(b.data, "42/x,[\"e\",{\"type\":\"e\",\"room\":\"r\",\"seq\":1,"
		     "\"timestamp\":\"t\",\"data\":null}]");
	buf_free(&b);
}

static int history_cb(const struct store_message *m, void *arg)
{
	int64_t *gpos = arg;
	gpos[m->seq - 1] = m->gpos;
	return 0;
}

static void test_store_recovery(void)
{
	char dir[] = "/tmp/herald-sio-XXXXXX", path[64], err[256];
	if (!mkdtemp(dir))
		return;
	snprintf(path, sizeof(path), "%s/h.db", dir);
	struct store *s = store_open(path, false, false, err, sizeof(err));
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_EQ_INT(store_max_gpos(s), 0);
	struct store_room a, b;
	CHECK_EQ_INT(store_room_get(s, "race:1", true, &a), 1);
	CHECK_EQ_INT(store_room_get(s, "race:2", true, &b), 1);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_message_add(s, a.id, 1, 7, "e", "1", 1, "t", NULL, 0), 0);
	CHECK_EQ_INT(store_room_set_seq(s, a.id, 1, 7), 0);
	CHECK_EQ_INT(store_message_add(s, b.id, 1, 8, "e", "2", 1, "t", NULL, 0), 0);
	CHECK_EQ_INT(store_room_set_seq(s, b.id, 1, 8), 0);
	CHECK_EQ_INT(store_message_add(s, a.id, 2, 9, "e", "3", 1, "t", NULL, 0), 0);
	CHECK_EQ_INT(store_room_set_seq(s, a.id, 2, 9), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	/* the counter resumes from the rooms, without reading the messages */
	CHECK_EQ_INT(store_max_gpos(s), 9);
	int64_t gpos[2] = { 0, 0 };
	CHECK_EQ_INT(store_history(s, "race:1", 0, 10, history_cb, gpos), 2);
	CHECK(gpos[0] == 7 && gpos[1] == 9);

	struct store_sio_session ss = { "pid1", "sid1", "alice", "{\"race:1\":[0,\"e\"]}" };
	CHECK_EQ_INT(store_sio_put(s, &ss, 1000), 0);
	json_t *row = NULL;
	CHECK_EQ_INT(store_sio_get(s, "pid1", &row), 1);
	CHECK_EQ_STR(json_string_value(json_object_get(row, "sid")), "sid1");
	CHECK_EQ_STR(json_string_value(json_object_get(row, "user")), "alice");
	CHECK_EQ_INT(json_integer_value(json_object_get(row, "updated_ms")), 1000);
	CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(
		json_object_get(row, "rooms"), "race:1"), 0)), 0);
	json_decref(row);
	CHECK_EQ_INT(store_sio_touch(s, "pid1", 5000), 0);
	CHECK_EQ_INT(store_sio_get(s, "pid1", &row), 1);
	CHECK_EQ_INT(json_integer_value(json_object_get(row, "updated_ms")), 5000);
	json_decref(row);
	ss.user = NULL;
	ss.pid = "pid2";
	CHECK_EQ_INT(store_sio_put(s, &ss, 2000), 0);
	CHECK_EQ_INT(store_sio_get(s, "pid2", &row), 1);
	CHECK(json_is_null(json_object_get(row, "user")));
	json_decref(row);
	CHECK_EQ_INT(store_sio_prune(s, 3000, 10), 1);       /* pid2 only */
	CHECK_EQ_INT(store_sio_get(s, "pid2", &row), 0);
	CHECK_EQ_INT(store_sio_get(s, "pid1", &row), 1);
	json_decref(row);
	store_close(s);
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char p[96];
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
	rmdir(dir);
}

TEST_MAIN("sio",
	  TEST(test_eio_types),
	  TEST(test_eio_payload),
	  TEST(test_eio_query),
	  TEST(test_sio_parse),
	  TEST(test_sio_encode),
	  TEST(test_store_recovery))
