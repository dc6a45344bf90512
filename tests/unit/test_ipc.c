/* test_ipc.c -- frame encoding and the bounds-checked field reader. */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "test.h"

static void test_roundtrip(void)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_PUBLISH);
	ipc_put_u64(&b, 42);
	ipc_put_u32(&b, 1);
	ipc_put_cstr(&b, "race:1");
	ipc_put_str(&b, "odds", 4);
	ipc_put_cstr(&b, NULL);
	ipc_put_u8(&b, 1);
	ipc_end(&b, m);

	uint16_t type;
	const uint8_t *payload;
	uint32_t plen;
	CHECK_EQ_INT(ipc_frame_next((uint8_t *)b.data, b.len, &type, &payload, &plen), (long)b.len);
	CHECK_EQ_INT(type, IPC_PUBLISH);
	struct ipc_reader r;
	ipc_reader_init(&r, payload, plen);
	CHECK_EQ_INT(ipc_get_u64(&r), 42);
	CHECK_EQ_INT(ipc_get_u32(&r), 1);
	char room[16];
	ipc_get_str(&r, room, sizeof(room));
	CHECK_EQ_STR(room, "race:1");
	size_t len;
	const char *ev = ipc_get_bytes(&r, &len);
	CHECK(len == 4 && memcmp(ev, "odds", 4) == 0);
	ipc_get_bytes(&r, &len);
	CHECK_EQ_INT(len, 0);
	CHECK_EQ_INT(ipc_get_u8(&r), 1);
	CHECK(ipc_reader_done(&r));
	buf_free(&b);
}

static void test_incomplete_and_invalid(void)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_ROOM_JOIN);
	ipc_put_cstr(&b, "global");
	ipc_end(&b, m);
	uint16_t type;
	const uint8_t *payload;
	uint32_t plen;
	for (size_t i = 0; i < b.len; i++)
		CHECK_EQ_INT(ipc_frame_next((uint8_t *)b.data, i, &type, &payload, &plen), 0);

	uint8_t bad[IPC_HEADER] = { 0 };
	CHECK_EQ_INT(ipc_frame_next(bad, sizeof(bad), &type, &payload, &plen), -1);   /* type 0 */
	uint16_t t = IPC_TYPE_MAX;
	memcpy(bad + 4, &t, 2);
	CHECK_EQ_INT(ipc_frame_next(bad, sizeof(bad), &type, &payload, &plen), -1);
	t = IPC_HELLO;
	uint32_t huge = IPC_MAX_PAYLOAD + 1;
	memcpy(bad, &huge, 4);
	memcpy(bad + 4, &t, 2);
	CHECK_EQ_INT(ipc_frame_next(bad, sizeof(bad), &type, &payload, &plen), -1);
	buf_free(&b);
}

static void test_reader_overrun(void)
{
	/* A string whose length runs past the payload. */
	uint8_t p[6] = { 10, 0, 0, 0, 'a', 'b' };
	struct ipc_reader r;
	ipc_reader_init(&r, p, sizeof(p));
	char s[32];
	ipc_get_str(&r, s, sizeof(s));
	CHECK(r.err);
	CHECK_EQ_STR(s, "");
	CHECK_EQ_INT(ipc_get_u64(&r), 0);
	CHECK(!ipc_reader_done(&r));

	/* A string that does not fit the caller's buffer, and one with a NUL. */
	uint8_t q[9] = { 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o' };
	ipc_reader_init(&r, q, sizeof(q));
	ipc_get_str(&r, s, 4);
	CHECK(r.err);
	uint8_t z[7] = { 3, 0, 0, 0, 'a', 0, 'b' };
	ipc_reader_init(&r, z, sizeof(z));
	ipc_get_str(&r, s, sizeof(s));
	CHECK(r.err);

	/* Leftover bytes are an error too. */
	uint8_t w[5] = { 1, 0, 0, 0, 9 };
	ipc_reader_init(&r, w, sizeof(w));
	CHECK_EQ_INT(ipc_get_u32(&r), 1);
	CHECK(!ipc_reader_done(&r));
}

TEST_MAIN("ipc", TEST(test_roundtrip), TEST(test_incomplete_and_invalid), TEST(test_reader_overrun))
