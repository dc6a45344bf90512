/* test_ws.c -- unit tests for ws.c (frame decoding and encoding, every protocol
 * error and close code, limits, byte-at-a-time input) and utf8.c. */
#include <sodium.h>
#include <stdlib.h>

#include "buf.h"
#include "utf8.h"
#include "util.h"
#include "ws.h"
#include "test.h"

#define FIN 0x80
#define BIG (2u << 20)    /* max_message for readers that should never hit it */

/* The masking key of RFC 6455 §5.7's examples. */
static const uint8_t test_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Appends a frame with first byte b0 (FIN, RSV bits and opcode as given) to
 * out, masked with test_key when mask. form 0 encodes the length in the
 * shortest form; 16 and 64 force that extended form. */
static void put_frame(struct buf *out, uint8_t b0, const void *payload, size_t n,
		      bool mask, int form)
{
	uint8_t h[WS_MAX_HEADER], mb = mask ? 0x80 : 0;
	size_t hl = 0;

	h[hl++] = b0;
	if (form == 0 && n < 126) {
		h[hl++] = (uint8_t)(mb | n);
	} else if (form == 16 || (form == 0 && n <= 0xffff)) {
		h[hl++] = mb | 126;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	} else {
		h[hl++] = mb | 127;
		for (int i = 0; i < 8; i++)
			h[hl++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	}
	if (mask) {
		memcpy(h + hl, test_key, 4);
		hl += 4;
	}
	buf_append(out, h, hl);
	size_t at = out->len;
	buf_append(out, payload, n);
	if (mask)
		for (size_t i = 0; i < n; i++)
			out->data[at + i] ^= (char)test_key[i & 3];
}

/* put_frame for a NUL-terminated payload, masked, shortest length form. */
static void put_str(struct buf *out, uint8_t b0, const char *s)
{
	put_frame(out, b0, s, strlen(s), true, 0);
}

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	return p;
}

/* One ws_reader_next over b[off..). */
static size_t next(struct ws_reader *r, struct buf *b, size_t off, struct ws_event *ev,
		   bool *have)
{
	memset(ev, 0x5a, sizeof(*ev));
	return ws_reader_next(r, (uint8_t *)b->data + off, b->len - off, ev, have);
}

static bool payload_is(const struct ws_event *ev, const void *p, size_t n)
{
	return ev->len == n && (n == 0 || memcmp(ev->payload, p, n) == 0);
}

/* Feeds b to a fresh reader and checks that the first event is a failure
 * with code, reported with nothing consumed, and that the reader stays
 * failed. */
static void expect_fail_buf(struct buf *b, bool require_mask, size_t max, int code, int line)
{
	struct ws_reader r;
	struct ws_event ev;
	bool have;
	size_t off = 0, n;
	int failures = test_failures;

	ws_reader_init(&r, max, require_mask);
	for (;;) {
		n = next(&r, b, off, &ev, &have);
		if (have && ev.kind == WS_EV_FAIL)
			break;
		CHECK(n > 0 || have);
		if (n == 0 && !have)
			break;
		off += n;
	}
	CHECK(have);
	CHECK_EQ_INT(ev.kind, WS_EV_FAIL);
	CHECK_EQ_INT(ev.close_code, code);
	CHECK_EQ_INT(n, 0);

	/* Sticky: even a valid frame now reports the same failure. */
	struct buf ok = { 0 };
	put_frame(&ok, FIN | WS_OP_TEXT, "x", 1, require_mask, 0);
	n = next(&r, &ok, 0, &ev, &have);
	CHECK_EQ_INT(n, 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == code);
	buf_free(&ok);
	ws_reader_free(&r);
	if (test_failures != failures)
		fprintf(stderr, "  (expectation at line %d)\n", line);
}

#define expect_fail(b, mask, code) expect_fail_buf(b, mask, BIG, code, __LINE__)

/* ---- encoding --------------------------------------------------------------- */

static const size_t test_lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000, 1u << 20 };

static size_t header_len(size_t n)
{
	return n < 126 ? 2 : n <= 0xffff ? 4 : 10;
}

static void test_encode_lengths(void)
{
	uint8_t h[WS_MAX_HEADER];
	static const uint8_t mask[4] = { 1, 2, 3, 4 };

	for (size_t i = 0; i < ARRAY_SIZE(test_lens); i++) {
		size_t n = test_lens[i], hl = header_len(n);

		CHECK_EQ_INT(ws_header_encode(h, WS_OP_BINARY, true, n, NULL), hl);
		CHECK_EQ_INT(h[0], 0x82);
		if (hl == 2) {
			CHECK_EQ_INT(h[1], n);
		} else if (hl == 4) {
			CHECK_EQ_INT(h[1], 126);
			CHECK_EQ_INT(h[2] << 8 | h[3], n);
		} else {
			uint64_t v = 0;
			CHECK_EQ_INT(h[1], 127);
			for (int k = 0; k < 8; k++)
				v = v << 8 | h[2 + k];
			CHECK_EQ_INT(v, n);
		}

		CHECK_EQ_INT(ws_header_encode(h, WS_OP_TEXT, false, n, mask), hl + 4);
		CHECK_EQ_INT(h[0], 0x01);
		CHECK(h[1] & 0x80);
		CHECK(memcmp(h + hl, mask, 4) == 0);
	}

	CHECK_EQ_INT(ws_header_encode(h, WS_OP_PING, true, 0x0123456789abcdefULL, NULL), 10);
	static const uint8_t big[] = { 0x89, 127, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	CHECK(memcmp(h, big, sizeof(big)) == 0);
}

/* ws_frame_new output, decoded by a client-side reader. */
static void test_frame_new(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(test_lens); i++) {
		size_t n = test_lens[i], hl = header_len(n);
		uint8_t *p = pattern(n);
		struct sbuf *f = ws_frame_new(WS_OP_BINARY, p, n);
		struct ws_reader r;
		struct ws_event ev;
		bool have;

		CHECK_EQ_INT(f->refs, 1);
		CHECK_EQ_INT(f->len, hl + n);
		CHECK_EQ_INT((uint8_t)f->data[0], 0x82);
		CHECK(((uint8_t)f->data[1] & 0x80) == 0);
		CHECK(memcmp(f->data + hl, p, n) == 0);

		ws_reader_init(&r, BIG, false);
		size_t used = ws_reader_next(&r, (uint8_t *)f->data, f->len, &ev, &have);
		CHECK_EQ_INT(used, f->len);
		CHECK(have && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_BINARY);
		CHECK(payload_is(&ev, p, n));
		ws_reader_free(&r);
		sbuf_unref(f);
		free(p);
	}

	struct sbuf *ping = ws_frame_new(WS_OP_PING, NULL, 0);
	CHECK_EQ_INT(ping->len, 2);
	CHECK(memcmp(ping->data, "\x89\x00", 2) == 0);
	sbuf_unref(ping);
}

/* ws_frame_append_masked output, decoded by a server-side reader. */
static void test_frame_masked(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(test_lens); i++) {
		size_t n = test_lens[i], hl = header_len(n) + 4;
		uint8_t *p = pattern(n);
		struct buf out = { 0 };
		struct ws_reader r;
		struct ws_event ev;
		bool have;

		buf_append(&out, "xyz", 3);    /* it appends */
		ws_frame_append_masked(&out, WS_OP_TEXT, p, n);
		CHECK_EQ_INT(out.len, 3 + hl + n);
		CHECK(memcmp(out.data, "xyz", 3) == 0);
		CHECK_EQ_INT((uint8_t)out.data[3], 0x81);
		CHECK((uint8_t)out.data[4] & 0x80);

		/* Payload bytes are not valid UTF-8, so decode as binary. */
		out.data[3] = (char)(FIN | WS_OP_BINARY);
		ws_reader_init(&r, BIG, true);
		size_t used = next(&r, &out, 3, &ev, &have);
		CHECK_EQ_INT(used, hl + n);
		CHECK(have && ev.kind == WS_EV_MESSAGE);
		CHECK(payload_is(&ev, p, n));
		ws_reader_free(&r);
		buf_free(&out);
		free(p);
	}

	/* Two frames get different keys (2^-32 chance of a false failure). */
	struct buf a = { 0 };
	ws_frame_append_masked(&a, WS_OP_PING, NULL, 0);
	ws_frame_append_masked(&a, WS_OP_PING, NULL, 0);
	CHECK_EQ_INT(a.len, 12);
	CHECK(memcmp(a.data + 2, a.data + 8, 4) != 0);
	buf_free(&a);
}

/* ---- decoding --------------------------------------------------------------- */

static void check_decode(size_t n, bool mask, int form)
{
	uint8_t *p = pattern(n);
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;

	/* One byte in front, so the payload is at an odd address. */
	buf_append(&b, "-", 1);
	put_frame(&b, FIN | WS_OP_BINARY, p, n, mask, form);
	ws_reader_init(&r, BIG, mask);
	size_t used = next(&r, &b, 1, &ev, &have);
	CHECK_EQ_INT(used, b.len - 1);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_BINARY);
	CHECK(payload_is(&ev, p, n));
	/* Unfragmented messages are delivered in place. */
	CHECK((const char *)ev.payload == b.data + b.len - n);
	ws_reader_free(&r);
	buf_free(&b);
	free(p);
}

static void test_decode_lengths(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(test_lens); i++) {
		check_decode(test_lens[i], true, 0);
		check_decode(test_lens[i], false, 0);
	}
	/* Every tail length of the word-at-a-time unmasking. */
	for (size_t n = 0; n <= 40; n++)
		check_decode(n, true, 0);
	/* Non-minimal length encodings are allowed. */
	static const size_t small[] = { 0, 5, 125, 126, 1000 };
	for (size_t i = 0; i < ARRAY_SIZE(small); i++) {
		check_decode(small[i], true, 16);
		check_decode(small[i], true, 64);
		check_decode(small[i], false, 64);
	}
}

static void test_need_more(void)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;

	put_frame(&b, FIN | WS_OP_TEXT, "hello", 5, true, 64);
	ws_reader_init(&r, BIG, true);
	for (size_t len = 0; len < b.len; len++) {
		size_t n = ws_reader_next(&r, (uint8_t *)b.data, len, &ev, &have);
		CHECK_EQ_INT(n, 0);
		CHECK(!have);
	}
	/* Short calls left the masked bytes alone. */
	CHECK(next(&r, &b, 0, &ev, &have) == b.len);
	CHECK(have && payload_is(&ev, "hello", 5));
	ws_reader_free(&r);
	buf_free(&b);
}

static void test_mask_rules(void)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;

	/* Server: unmasked frames, data or control, are a protocol error. */
	put_frame(&b, FIN | WS_OP_TEXT, "hi", 2, false, 0);
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_PING, "", 0, false, 0);
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_CLOSE, "\x03\xe8", 2, false, 0);
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);

	/* Client: masked frames from the server are a protocol error. */
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_TEXT, "hi", 2, true, 0);
	expect_fail(&b, false, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_PONG, "", 0, true, 0);
	expect_fail(&b, false, WS_CLOSE_PROTOCOL);

	/* And the right way round is accepted. */
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_TEXT, "hi", 2, true, 0);
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), 8);
	CHECK(have && ev.kind == WS_EV_MESSAGE && payload_is(&ev, "hi", 2));
	ws_reader_free(&r);
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_TEXT, "hi", 2, false, 0);
	ws_reader_init(&r, BIG, false);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), 4);
	CHECK(have && ev.kind == WS_EV_MESSAGE && payload_is(&ev, "hi", 2));
	ws_reader_free(&r);

	/* A masking violation is reported from the first two bytes alone. */
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(ws_reader_next(&r, (uint8_t *)b.data, 2, &ev, &have), 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_PROTOCOL);
	ws_reader_free(&r);
	buf_free(&b);
}

/* "Hello, " + ping + "wor" + "ld! €" with the ping between fragments, then
 * a plain message: the reassembly buffer is reset between messages. */
static void test_fragmentation(void)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;
	size_t off = 0, n, f1, f2, f3, f4;

	put_str(&b, WS_OP_TEXT, "Hello, ");
	f1 = b.len;
	put_str(&b, FIN | WS_OP_PING, "p");
	f2 = b.len;
	put_str(&b, WS_OP_CONT, "wor");
	f3 = b.len;
	put_str(&b, FIN | WS_OP_CONT, "ld! \xe2\x82\xac");
	f4 = b.len;
	put_str(&b, FIN | WS_OP_TEXT, "next");

	ws_reader_init(&r, BIG, true);
	n = next(&r, &b, off, &ev, &have);
	CHECK_EQ_INT(n, f1);
	CHECK(!have);
	off += n;
	n = next(&r, &b, off, &ev, &have);
	CHECK_EQ_INT(n, f2 - f1);
	CHECK(have && ev.kind == WS_EV_PING && payload_is(&ev, "p", 1));
	off += n;
	n = next(&r, &b, off, &ev, &have);
	CHECK_EQ_INT(n, f3 - f2);
	CHECK(!have);
	off += n;
	n = next(&r, &b, off, &ev, &have);
	CHECK_EQ_INT(n, f4 - f3);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_TEXT);
	CHECK(payload_is(&ev, "Hello, world! \xe2\x82\xac", 17));
	off += n;
	n = next(&r, &b, off, &ev, &have);
	CHECK_EQ_INT(n, b.len - off);
	CHECK(have && ev.kind == WS_EV_MESSAGE && payload_is(&ev, "next", 4));
	CHECK_EQ_INT(r.msg.len, 0);

	/* Binary, with an empty first fragment and a pong in between. */
	buf_reset(&b);
	put_str(&b, WS_OP_BINARY, "");
	put_frame(&b, WS_OP_CONT, "\x00\xff", 2, true, 0);
	put_str(&b, FIN | WS_OP_PONG, "x");
	put_frame(&b, FIN | WS_OP_CONT, "\xc0", 1, true, 0);
	off = 0;
	CHECK_EQ_INT(next(&r, &b, off, &ev, &have), 6);
	CHECK(!have);
	off += 6;
	CHECK_EQ_INT(next(&r, &b, off, &ev, &have), 8);
	CHECK(!have);
	off += 8;
	CHECK_EQ_INT(next(&r, &b, off, &ev, &have), 7);
	CHECK(have && ev.kind == WS_EV_PONG && payload_is(&ev, "x", 1));
	off += 7;
	CHECK_EQ_INT(next(&r, &b, off, &ev, &have), 7);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_BINARY);
	CHECK(payload_is(&ev, "\x00\xff\xc0", 3));

	/* A fragmented message of nothing still has a payload pointer. */
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "");
	put_str(&b, WS_OP_CONT, "");
	put_str(&b, FIN | WS_OP_CONT, "");
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), 6);
	CHECK(!have);
	CHECK_EQ_INT(next(&r, &b, 6, &ev, &have), 6);
	CHECK(!have);
	CHECK_EQ_INT(next(&r, &b, 12, &ev, &have), 6);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.opcode == WS_OP_TEXT);
	CHECK(ev.len == 0 && ev.payload != NULL);

	/* A big fragmented message, then a small one. */
	uint8_t *p = pattern(30000);
	buf_reset(&b);
	put_frame(&b, WS_OP_BINARY, p, 10000, true, 0);
	put_frame(&b, WS_OP_CONT, p + 10000, 10000, true, 0);
	put_frame(&b, FIN | WS_OP_CONT, p + 20000, 10000, true, 0);
	put_str(&b, WS_OP_TEXT, "a");
	put_str(&b, FIN | WS_OP_CONT, "b");
	off = 0;
	int events = 0;
	while ((n = next(&r, &b, off, &ev, &have)) > 0) {
		off += n;
		if (!have)
			continue;
		CHECK(ev.kind == WS_EV_MESSAGE);
		if (events++ == 0)
			CHECK(payload_is(&ev, p, 30000));
		else
			CHECK(payload_is(&ev, "ab", 2));
	}
	CHECK_EQ_INT(events, 2);
	CHECK_EQ_INT(off, b.len);
	free(p);

	ws_reader_free(&r);
	buf_free(&b);
}

static void test_protocol_errors(void)
{
	struct buf b = { 0 };
	static const uint8_t rsv[] = { 0x40, 0x20, 0x10, 0x70 };
	static const int bad_ops[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf };
	uint8_t p[200];

	memset(p, 'a', sizeof(p));
	for (size_t i = 0; i < ARRAY_SIZE(rsv); i++) {
		buf_reset(&b);
		put_str(&b, (uint8_t)(FIN | rsv[i] | WS_OP_TEXT), "x");
		expect_fail(&b, true, WS_CLOSE_PROTOCOL);
		buf_reset(&b);
		put_str(&b, (uint8_t)(FIN | rsv[i] | WS_OP_PING), "x");
		expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad_ops); i++) {
		buf_reset(&b);
		put_str(&b, (uint8_t)(FIN | bad_ops[i]), "");
		expect_fail(&b, true, WS_CLOSE_PROTOCOL);
		buf_reset(&b);
		put_frame(&b, (uint8_t)bad_ops[i], "", 0, false, 0);
		expect_fail(&b, false, WS_CLOSE_PROTOCOL);
	}

	/* Control frames: at most 125 bytes, never fragmented. */
	static const int ctl[] = { WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE };
	for (size_t i = 0; i < ARRAY_SIZE(ctl); i++) {
		buf_reset(&b);
		put_frame(&b, (uint8_t)(FIN | ctl[i]), p, 126, true, 0);
		expect_fail(&b, true, WS_CLOSE_PROTOCOL);
		buf_reset(&b);
		put_frame(&b, (uint8_t)(FIN | ctl[i]), p, 5, true, 64);
		expect_fail(&b, true, WS_CLOSE_PROTOCOL);
		buf_reset(&b);
		put_frame(&b, (uint8_t)ctl[i], "\x03\xe8", 2, true, 0);
		expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	}
	struct ws_reader r;
	struct ws_event ev;
	bool have;
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_PING, p, 125, true, 0);
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
	CHECK(have && ev.kind == WS_EV_PING && payload_is(&ev, p, 125));
	ws_reader_free(&r);

	/* Continuation order. */
	buf_reset(&b);
	put_str(&b, FIN | WS_OP_CONT, "x");
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_str(&b, WS_OP_CONT, "x");
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "x");
	put_str(&b, FIN | WS_OP_TEXT, "y");
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_str(&b, WS_OP_BINARY, "x");
	put_str(&b, FIN | WS_OP_PING, "");
	put_str(&b, WS_OP_BINARY, "y");
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "x");
	put_str(&b, FIN | WS_OP_CONT, "y");
	put_str(&b, FIN | WS_OP_CONT, "z");    /* the message already ended */
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);

	/* A 64-bit length with the top bit set. */
	static const uint8_t huge[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4 };
	buf_reset(&b);
	buf_append(&b, huge, sizeof(huge));
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);

	/* Fail fast: header errors need only the first two bytes. */
	static const uint8_t two[][2] = {
		{ 0xc1, 0x80 }, { 0x83, 0x80 }, { 0x09, 0x80 }, { 0x89, 0xfe },
		{ 0x80, 0x80 }, { 0x81, 0x00 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(two); i++) {
		ws_reader_init(&r, BIG, true);
		CHECK_EQ_INT(ws_reader_next(&r, (uint8_t *)two[i], 2, &ev, &have), 0);
		CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_PROTOCOL);
		ws_reader_free(&r);
	}
	buf_free(&b);
}

/* ---- close frames ----------------------------------------------------------- */

static const struct { int code; bool valid; } test_codes[] = {
	{ -1, false }, { 0, false }, { 1, false }, { 999, false },
	{ 1000, true }, { 1001, true }, { 1002, true }, { 1003, true },
	{ 1004, false }, { 1005, false }, { 1006, false },
	{ 1007, true }, { 1008, true }, { 1009, true }, { 1010, true }, { 1011, true },
	{ 1012, false }, { 1013, false }, { 1014, false }, { 1015, false }, { 1016, false },
	{ 1100, false }, { 2000, false }, { 2999, false },
	{ 3000, true }, { 3999, true }, { 4000, true }, { 4001, true }, { 4999, true },
	{ 5000, false }, { 65535, false }, { 70000, false },
};

static void test_close_codes(void)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;

	for (size_t i = 0; i < ARRAY_SIZE(test_codes); i++) {
		int code = test_codes[i].code;
		CHECK_EQ_INT(ws_close_code_valid(code), test_codes[i].valid);
		if (code < 0 || code > 65535)
			continue;

		uint8_t p[4] = { (uint8_t)(code >> 8), (uint8_t)code, 'o', 'k' };
		buf_reset(&b);
		put_frame(&b, FIN | WS_OP_CLOSE, p, 4, true, 0);
		if (!test_codes[i].valid) {
			expect_fail(&b, true, WS_CLOSE_PROTOCOL);
			continue;
		}
		ws_reader_init(&r, BIG, true);
		CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
		CHECK(have && ev.kind == WS_EV_CLOSE);
		CHECK_EQ_INT(ev.close_code, code);
		CHECK(payload_is(&ev, "ok", 2));
		ws_reader_free(&r);
	}
	buf_free(&b);
}

static void expect_close(const void *p, size_t n, int code, const char *reason)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;

	put_frame(&b, FIN | WS_OP_CLOSE, p, n, true, 0);
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
	CHECK(have && ev.kind == WS_EV_CLOSE);
	CHECK_EQ_INT(ev.close_code, code);
	CHECK(ev.payload != NULL);
	CHECK(payload_is(&ev, reason, strlen(reason)));
	ws_reader_free(&r);
	buf_free(&b);
}

static void test_close_frames(void)
{
	struct buf b = { 0 };

	expect_close("", 0, WS_CLOSE_NO_STATUS, "");
	expect_close("\x03\xe8", 2, 1000, "");
	expect_close("\x03\xe9" "bye", 5, 1001, "bye");
	expect_close("\x0f\xa1" "\xe2\x82\xac", 5, 4001, "\xe2\x82\xac");

	put_frame(&b, FIN | WS_OP_CLOSE, "\x03", 1, true, 0);
	expect_fail(&b, true, WS_CLOSE_PROTOCOL);
	static const char *bad[] = {
		"\x03\xe8\xff", "\x03\xe8ok\xc0\xaf", "\x03\xe8\xe2\x82", "\x03\xe8\xed\xa0\x80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		buf_reset(&b);
		put_str(&b, FIN | WS_OP_CLOSE, bad[i]);
		expect_fail(&b, true, WS_CLOSE_BAD_DATA);
	}

	/* The longest reason that fits. */
	uint8_t p[125];
	p[0] = 0x03;
	p[1] = 0xe8;
	memset(p + 2, 'r', 123);
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_CLOSE, p, 125, true, 0);
	struct ws_reader r;
	struct ws_event ev;
	bool have;
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
	CHECK(have && ev.kind == WS_EV_CLOSE && ev.len == 123);
	ws_reader_free(&r);
	buf_free(&b);
}

static void test_close_payload(void)
{
	uint8_t out[125];
	char reason[300];

	CHECK_EQ_INT(ws_close_payload(out, 1000, "bye"), 5);
	CHECK(memcmp(out, "\x03\xe8" "bye", 5) == 0);
	CHECK_EQ_INT(ws_close_payload(out, 4008, NULL), 2);
	CHECK(memcmp(out, "\x0f\xa8", 2) == 0);
	CHECK_EQ_INT(ws_close_payload(out, 1001, ""), 2);

	memset(reason, 'a', 200);
	reason[200] = '\0';
	CHECK_EQ_INT(ws_close_payload(out, 1000, reason), 125);
	memset(reason, 'a', 123);
	reason[123] = '\0';
	CHECK_EQ_INT(ws_close_payload(out, 1000, reason), 125);

	/* Truncation never splits a code point: "€" straddles byte 123. */
	memset(reason, 'a', 122);
	strcpy(reason + 122, "\xe2\x82\xac tail");
	size_t n = ws_close_payload(out, 1000, reason);
	CHECK_EQ_INT(n, 124);
	CHECK(utf8_valid(out + 2, n - 2));
	memset(reason, 'a', 120);
	strcpy(reason + 120, "\xe2\x82\xac tail");    /* fits exactly */
	CHECK_EQ_INT(ws_close_payload(out, 1000, reason), 125);
	CHECK(memcmp(out + 122, "\xe2\x82\xac", 3) == 0);
	memset(reason, 'a', 121);
	strcpy(reason + 121, "\xf0\x9f\x98\x80");
	n = ws_close_payload(out, 1000, reason);
	CHECK_EQ_INT(n, 123);
	CHECK(utf8_valid(out + 2, n - 2));

	/* What we build, we accept. */
	memset(reason, 'a', 121);
	reason[121] = '\0';
	expect_close(out, n, 1000, reason);
}

/* ---- limits ----------------------------------------------------------------- */

static void test_max_message(void)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;
	uint8_t *p = pattern(2000);

	/* Exactly max_message is fine. */
	put_frame(&b, FIN | WS_OP_BINARY, p, 1000, true, 0);
	ws_reader_init(&r, 1000, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.len == 1000);
	ws_reader_free(&r);

	/* One more byte fails from the length field alone, before the mask key
	 * or any payload has arrived. */
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_BINARY, p, 1001, true, 0);
	ws_reader_init(&r, 1000, true);
	CHECK_EQ_INT(ws_reader_next(&r, (uint8_t *)b.data, 3, &ev, &have), 0);
	CHECK(!have);
	CHECK_EQ_INT(ws_reader_next(&r, (uint8_t *)b.data, 4, &ev, &have), 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_TOO_BIG);
	ws_reader_free(&r);
	expect_fail_buf(&b, true, 1000, WS_CLOSE_TOO_BIG, __LINE__);

	/* 64-bit lengths: huge is too big; the top bit set is a protocol error. */
	static const uint8_t h62[] = { 0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0 };
	ws_reader_init(&r, 1000, true);
	CHECK_EQ_INT(ws_reader_next(&r, (uint8_t *)h62, sizeof(h62), &ev, &have), 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_TOO_BIG);
	ws_reader_free(&r);

	/* Accumulated fragments: 600 + 400 fits, 600 + 401 fails at the second
	 * header. Control frames in between do not count. */
	buf_reset(&b);
	memset(p, 'a', 2000);
	put_frame(&b, WS_OP_TEXT, p, 600, true, 0);
	size_t f1 = b.len;
	put_frame(&b, FIN | WS_OP_PING, p, 125, true, 0);
	size_t f2 = b.len;
	put_frame(&b, FIN | WS_OP_CONT, p, 400, true, 0);
	ws_reader_init(&r, 1000, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), f1);
	CHECK(!have);
	CHECK_EQ_INT(next(&r, &b, f1, &ev, &have), f2 - f1);
	CHECK(have && ev.kind == WS_EV_PING);
	CHECK_EQ_INT(next(&r, &b, f2, &ev, &have), b.len - f2);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.len == 1000);
	ws_reader_free(&r);

	buf_reset(&b);
	put_frame(&b, WS_OP_TEXT, p, 600, true, 0);
	f1 = b.len;
	put_frame(&b, FIN | WS_OP_CONT, p, 401, true, 0);
	ws_reader_init(&r, 1000, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), f1);
	CHECK(!have);
	CHECK_EQ_INT(ws_reader_next(&r, (uint8_t *)b.data + f1, 4, &ev, &have), 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_TOO_BIG);
	ws_reader_free(&r);
	/* Decoding unmasked the first frame in place: build it again. */
	buf_reset(&b);
	put_frame(&b, WS_OP_TEXT, p, 600, true, 0);
	put_frame(&b, FIN | WS_OP_CONT, p, 401, true, 0);
	expect_fail_buf(&b, true, 1000, WS_CLOSE_TOO_BIG, __LINE__);

	/* Many small fragments add up too. */
	buf_reset(&b);
	put_frame(&b, WS_OP_BINARY, p, 100, true, 0);
	for (int i = 0; i < 10; i++)
		put_frame(&b, WS_OP_CONT, p, 100, true, 0);
	expect_fail_buf(&b, true, 1000, WS_CLOSE_TOO_BIG, __LINE__);

	/* Control frames are not held to max_message. */
	buf_reset(&b);
	put_frame(&b, FIN | WS_OP_PING, p, 100, true, 0);
	ws_reader_init(&r, 10, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
	CHECK(have && ev.kind == WS_EV_PING);
	ws_reader_free(&r);

	buf_free(&b);
	free(p);
}

/* ---- byte-at-a-time input --------------------------------------------------- */

struct rec {
	int kind, opcode, code;
	size_t len;
	char data[400];
};

/* Decodes b growing the input one byte at a time, as a slow peer would
 * deliver it. Every call must consume nothing until its frame is complete,
 * then exactly that frame. Returns the number of events, stopping at a close. */
static int feed_bytewise(struct ws_reader *r, struct buf *b, struct rec *recs, int max)
{
	size_t off = 0, avail = 0;
	int nrec = 0;

	while (off < b->len && nrec < max) {
		struct ws_event ev;
		bool have;
		size_t n = ws_reader_next(r, (uint8_t *)b->data + off, avail, &ev, &have);
		if (n == 0 && !have) {
			if (avail == b->len - off)
				break;
			avail++;
			continue;
		}
		CHECK_EQ_INT(n, avail);    /* nothing consumed before completion */
		off += n;
		avail = 0;
		if (!have)
			continue;
		struct rec *e = &recs[nrec++];
		e->kind = (int)ev.kind;
		e->opcode = ev.opcode;
		e->code = ev.close_code;
		e->len = ev.len;
		if (ev.len > 0)
			memcpy(e->data, ev.payload, MIN(ev.len, sizeof(e->data)));
		if (ev.kind == WS_EV_CLOSE || ev.kind == WS_EV_FAIL)
			break;
	}
	CHECK_EQ_INT(off, b->len);
	return nrec;
}

static void test_byte_by_byte(void)
{
	for (int side = 0; side < 2; side++) {
		bool mask = side == 0;
		struct buf b = { 0 };
		struct ws_reader r;
		struct rec recs[10];
		uint8_t *p = pattern(300);

		put_frame(&b, WS_OP_TEXT, "frag", 4, mask, 0);
		put_frame(&b, FIN | WS_OP_PING, "hi", 2, mask, 0);
		put_frame(&b, WS_OP_CONT, "ment \xe2\x9c", 7, mask, 0);
		put_frame(&b, FIN | WS_OP_CONT, "\x93", 1, mask, 0);
		put_frame(&b, FIN | WS_OP_BINARY, p, 300, mask, 0);
		put_frame(&b, FIN | WS_OP_PONG, "", 0, mask, 0);
		put_frame(&b, FIN | WS_OP_TEXT, "done", 4, mask, 64);
		put_frame(&b, FIN | WS_OP_CLOSE, "\x03\xe8" "bye", 5, mask, 0);

		ws_reader_init(&r, 4096, mask);
		int n = feed_bytewise(&r, &b, recs, 10);
		CHECK_EQ_INT(n, 5 + 1);
		CHECK(recs[0].kind == WS_EV_PING && recs[0].len == 2 && !memcmp(recs[0].data, "hi", 2));
		CHECK(recs[1].kind == WS_EV_MESSAGE && recs[1].opcode == WS_OP_TEXT);
		CHECK(recs[1].len == 12 && !memcmp(recs[1].data, "fragment \xe2\x9c\x93", 12));
		CHECK(recs[2].kind == WS_EV_MESSAGE && recs[2].opcode == WS_OP_BINARY);
		CHECK(recs[2].len == 300 && !memcmp(recs[2].data, p, 300));
		CHECK(recs[3].kind == WS_EV_PONG && recs[3].len == 0);
		CHECK(recs[4].kind == WS_EV_MESSAGE && recs[4].len == 4 && !memcmp(recs[4].data, "done", 4));
		CHECK(recs[5].kind == WS_EV_CLOSE && recs[5].code == 1000);
		CHECK(recs[5].len == 3 && !memcmp(recs[5].data, "bye", 3));
		ws_reader_free(&r);
		buf_free(&b);
		free(p);
	}

	/* A failure in the middle of a byte-fed stream. */
	struct buf b = { 0 };
	struct ws_reader r;
	put_str(&b, WS_OP_TEXT, "ab");
	put_str(&b, WS_OP_CONT, "c\xc1");
	ws_reader_init(&r, 4096, true);
	size_t off = 0, avail = 0;
	struct ws_event ev;
	bool have;
	while (avail <= b.len - off) {
		size_t n = ws_reader_next(&r, (uint8_t *)b.data + off, avail, &ev, &have);
		if (have)
			break;
		if (n == 0) {
			avail++;
		} else {
			off += n;
			avail = 0;
		}
	}
	CHECK(have);
	CHECK(ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_BAD_DATA);
	CHECK_EQ_INT(off, 8);
	CHECK_EQ_INT(avail, b.len - off);
	ws_reader_free(&r);
	buf_free(&b);
}

/* ---- UTF-8 in text messages ------------------------------------------------- */

static void test_text_utf8(void)
{
	struct buf b = { 0 };
	struct ws_reader r;
	struct ws_event ev;
	bool have;

	put_str(&b, FIN | WS_OP_TEXT, "ok\xc0\xaf");
	expect_fail(&b, true, WS_CLOSE_BAD_DATA);
	/* The same bytes as binary are fine. */
	buf_reset(&b);
	put_str(&b, FIN | WS_OP_BINARY, "ok\xc0\xaf");
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), b.len);
	CHECK(have && ev.kind == WS_EV_MESSAGE && ev.len == 4);
	ws_reader_free(&r);

	/* The first fragment is bad: fail there, FIN never needed. */
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "ok\xed\xa0\x80");
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_BAD_DATA);
	ws_reader_free(&r);

	/* An invalid continuation in the second fragment, before FIN. */
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "a\xe2");
	size_t f1 = b.len;
	put_str(&b, WS_OP_CONT, "\x28");
	put_str(&b, FIN | WS_OP_CONT, "b");
	ws_reader_init(&r, BIG, true);
	CHECK_EQ_INT(next(&r, &b, 0, &ev, &have), f1);
	CHECK(!have);
	CHECK_EQ_INT(next(&r, &b, f1, &ev, &have), 0);
	CHECK(have && ev.kind == WS_EV_FAIL && ev.close_code == WS_CLOSE_BAD_DATA);
	ws_reader_free(&r);

	/* A code point split across fragments is fine. */
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "\xe2\x82");
	put_str(&b, FIN | WS_OP_CONT, "\xac");
	put_str(&b, WS_OP_TEXT, "\xf0");
	put_str(&b, WS_OP_CONT, "\x9f");
	put_str(&b, FIN | WS_OP_PING, "\xff");    /* pings are not text */
	put_str(&b, WS_OP_CONT, "\x98");
	put_str(&b, FIN | WS_OP_CONT, "\x80");
	ws_reader_init(&r, BIG, true);
	size_t off = 0, n;
	int msgs = 0;
	while ((n = next(&r, &b, off, &ev, &have)) > 0) {
		off += n;
		if (have && ev.kind == WS_EV_MESSAGE) {
			if (msgs++ == 0)
				CHECK(payload_is(&ev, "\xe2\x82\xac", 3));
			else
				CHECK(payload_is(&ev, "\xf0\x9f\x98\x80", 4));
		}
	}
	CHECK_EQ_INT(msgs, 2);
	CHECK_EQ_INT(off, b.len);
	ws_reader_free(&r);

	/* Truncated at FIN. */
	buf_reset(&b);
	put_str(&b, WS_OP_TEXT, "a\xe2");
	put_str(&b, FIN | WS_OP_CONT, "\x82");
	expect_fail(&b, true, WS_CLOSE_BAD_DATA);
	buf_reset(&b);
	put_str(&b, FIN | WS_OP_TEXT, "a\xf0\x9f\x98");
	expect_fail(&b, true, WS_CLOSE_BAD_DATA);

	/* A new message starts from a clean UTF-8 state. */
	buf_reset(&b);
	put_str(&b, WS_OP_BINARY, "\xe2");
	put_str(&b, FIN | WS_OP_CONT, "");
	put_str(&b, WS_OP_TEXT, "\x82\xac");
	expect_fail(&b, true, WS_CLOSE_BAD_DATA);
	buf_free(&b);
}

/* ---- the UTF-8 validator ---------------------------------------------------- */

/* A plain decoder to hold the automaton against. */
static bool ref_valid(const uint8_t *s, size_t n)
{
	static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		uint32_t cp;
		size_t k;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			cp = c & 0x1f;
			k = 1;
		} else if ((c & 0xf0) == 0xe0) {
			cp = c & 0x0f;
			k = 2;
		} else if ((c & 0xf8) == 0xf0) {
			cp = c & 0x07;
			k = 3;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static bool valid_str(const char *s)
{
	return utf8_valid((const uint8_t *)s, strlen(s));
}

static void test_utf8_cases(void)
{
	static const char *good[] = {
		"", "plain ascii", "\x7f",
		"\xc2\x80", "\xdf\xbf",                       /* U+0080, U+07FF */
		"\xe0\xa0\x80", "\xed\x9f\xbf",               /* U+0800, U+D7FF */
		"\xee\x80\x80", "\xef\xbf\xbf",               /* U+E000, U+FFFF */
		"\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",       /* U+10000, U+10FFFF */
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",   /* κόσμε */
	};
	static const char *bad[] = {
		"\xc0\x80", "\xc0\xaf", "\xc1\xbf",           /* overlong 2-byte */
		"\xe0\x80\x80", "\xe0\x9f\xbf",               /* overlong 3-byte */
		"\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",       /* overlong 4-byte */
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80",  /* surrogates */
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf",  /* > U+10FFFF */
		"\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80", "\xfe", "\xff",
		"\x80", "\xbf", "a\x80z",                       /* lone continuation */
		"\xc2", "\xe2\x82", "\xf0\x9f\x98", "a\xe2",  /* truncated */
		"\xc2\x41", "\xe2\x28\xa1", "\xf0\x9f\x28\x80",   /* bad continuation */
		"\xc2\xc2\x80",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		CHECK(valid_str(good[i]));
		CHECK(ref_valid((const uint8_t *)good[i], strlen(good[i])));
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (valid_str(bad[i]))
			fprintf(stderr, "accepted bad case %zu\n", i);
		CHECK(!valid_str(bad[i]));
		CHECK(!ref_valid((const uint8_t *)bad[i], strlen(bad[i])));
	}
}

static uint32_t feed_str(uint32_t state, const char *s)
{
	return utf8_feed(state, (const uint8_t *)s, strlen(s));
}

static void test_utf8_incremental(void)
{
	uint32_t st;

	st = feed_str(UTF8_ACCEPT, "\xe2");
	CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
	st = feed_str(st, "\x82");
	CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
	CHECK_EQ_INT(feed_str(st, "\xac"), UTF8_ACCEPT);
	CHECK_EQ_INT(feed_str(st, "a"), UTF8_REJECT);

	/* Fail fast: rejected at the byte that cannot continue, not later. */
	static const char *early[] = {
		"\xc0", "\xc1", "\xf5", "\xff", "\x80", "\xe0\x80", "\xe0\x9f", "\xed\xa0",
		"\xed\xbf", "\xf0\x80", "\xf0\x8f", "\xf4\x90", "\xf4\xbf", "\xe2\x28",
	};
	for (size_t i = 0; i < ARRAY_SIZE(early); i++)
		CHECK_EQ_INT(feed_str(UTF8_ACCEPT, early[i]), UTF8_REJECT);
	/* Prefixes that can still complete are not rejected. */
	static const char *open[] = { "\xc2", "\xe0\xa0", "\xed\x9f", "\xf0\x90", "\xf4\x8f\xbf" };
	for (size_t i = 0; i < ARRAY_SIZE(open); i++) {
		st = feed_str(UTF8_ACCEPT, open[i]);
		CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
	}

	/* REJECT is absorbing; unknown states are rejected. */
	CHECK_EQ_INT(feed_str(UTF8_REJECT, "a"), UTF8_REJECT);
	CHECK_EQ_INT(utf8_feed(UTF8_REJECT, NULL, 0), UTF8_REJECT);
	CHECK_EQ_INT(utf8_feed(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
	CHECK_EQ_INT(feed_str(12345, "a"), UTF8_REJECT);

	/* Every split of a valid mixed string is accepted. */
	const char *mixed = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf";
	size_t n = strlen(mixed);
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			st = utf8_feed(UTF8_ACCEPT, (const uint8_t *)mixed, i);
			st = utf8_feed(st, (const uint8_t *)mixed + i, j - i);
			st = utf8_feed(st, (const uint8_t *)mixed + j, n - j);
			CHECK_EQ_INT(st, UTF8_ACCEPT);
		}
	}
}

/* The ASCII fast path: bad bytes and sequences at every offset of a run,
 * from aligned and unaligned starts. */
static void test_utf8_ascii_runs(void)
{
	uint8_t s[80];

	for (size_t start = 0; start < 8; start++) {
		for (size_t len = 1; len <= 40; len++) {
			for (size_t pos = 0; pos < len; pos++) {
				uint8_t *p = s + start;
				memset(p, 'a', len);
				p[pos] = 0x80;
				CHECK(!utf8_valid(p, len));
				/* A lead byte followed by ASCII or by nothing. */
				p[pos] = 0xc3;
				CHECK(!utf8_valid(p, len));
				uint32_t st = utf8_feed(UTF8_ACCEPT, p, pos + 1);
				CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
				if (pos + 1 < len) {
					p[pos + 1] = 0xa9;
					CHECK(utf8_valid(p, len));
				}
			}
			memset(s + start, 'a', len);
			CHECK(utf8_valid(s + start, len));
		}
	}
}

/* Every 1- and 2-byte input, every 3-byte input with a non-ASCII lead, and
 * 4-byte inputs built from the bytes around each boundary: the automaton
 * agrees with the plain decoder. */
static void test_utf8_exhaustive(void)
{
	static const uint8_t edge[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	uint8_t s[4];
	int mismatches = 0;

	for (unsigned a = 0; a < 256; a++) {
		s[0] = (uint8_t)a;
		mismatches += utf8_valid(s, 1) != ref_valid(s, 1);
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (uint8_t)b;
			mismatches += utf8_valid(s, 2) != ref_valid(s, 2);
			if (a < 0xc0)
				continue;
			for (unsigned c = 0; c < 256; c++) {
				s[2] = (uint8_t)c;
				mismatches += utf8_valid(s, 3) != ref_valid(s, 3);
			}
		}
	}
	for (unsigned a = 0xf0; a < 0x100; a++)
		for (size_t b = 0; b < ARRAY_SIZE(edge); b++)
			for (size_t c = 0; c < ARRAY_SIZE(edge); c++)
				for (size_t d = 0; d < ARRAY_SIZE(edge); d++) {
					s[0] = (uint8_t)a;
					s[1] = edge[b];
					s[2] = edge[c];
					s[3] = edge[d];
					mismatches += utf8_valid(s, 4) != ref_valid(s, 4);
				}
	CHECK_EQ_INT(mismatches, 0);
}

static void test_init(void)
{
	CHECK(sodium_init() >= 0);
}

TEST_MAIN("ws",
	  TEST(test_init),
	  TEST(test_encode_lengths),
	  TEST(test_frame_new),
	  TEST(test_frame_masked),
	  TEST(test_decode_lengths),
	  TEST(test_need_more),
	  TEST(test_mask_rules),
	  TEST(test_fragmentation),
	  TEST(test_protocol_errors),
	  TEST(test_close_codes),
	  TEST(test_close_frames),
	  TEST(test_close_payload),
	  TEST(test_max_message),
	  TEST(test_byte_by_byte),
	  TEST(test_text_utf8),
	  TEST(test_utf8_cases),
	  TEST(test_utf8_incremental),
	  TEST(test_utf8_ascii_runs),
	  TEST(test_utf8_exhaustive))
