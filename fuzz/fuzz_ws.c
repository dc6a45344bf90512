/* fuzz_ws.c -- libFuzzer target for ws.c and utf8.c: arbitrary bytes as a
 * WebSocket stream, read as a server (masked input) and as a client. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "utf8.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small, so the 1009 paths are reached. */
#define FUZZ_MAX_MESSAGE 4096

/* What every event must satisfy, whatever the input. */
static void fuzz_check_event(const struct ws_event *ev, const uint8_t *in, size_t len)
{
	switch (ev->kind) {
	case WS_EV_MESSAGE:
		if (ev->len > FUZZ_MAX_MESSAGE || ev->payload == NULL)
			abort();
		if (ev->opcode == WS_OP_TEXT && !utf8_valid(ev->payload, ev->len))
			abort();
		if (ev->opcode != WS_OP_TEXT && ev->opcode != WS_OP_BINARY)
			abort();
		break;
	case WS_EV_PING:
	case WS_EV_PONG:
		if (ev->len > 125 || (ev->payload < in || ev->payload + ev->len > in + len))
			abort();
		break;
	case WS_EV_CLOSE:
		if (ev->close_code != WS_CLOSE_NO_STATUS && !ws_close_code_valid(ev->close_code))
			abort();
		if (!utf8_valid(ev->payload, ev->len))
			abort();
		break;
	case WS_EV_FAIL:
		if (ev->close_code != WS_CLOSE_PROTOCOL && ev->close_code != WS_CLOSE_BAD_DATA &&
		    ev->close_code != WS_CLOSE_TOO_BIG)
			abort();
		break;
	}
	/* Reading every byte lets ASan catch a payload that points outside. */
	volatile uint8_t sink = 0;
	for (size_t i = 0; i < ev->len; i++)
		sink ^= ev->payload[i];
	(void)sink;
}

/* A message re-encoded as the server would send it decodes to itself. */
static void fuzz_roundtrip(const struct ws_event *ev)
{
	struct sbuf *f = ws_frame_new(ev->opcode, ev->payload, ev->len);
	struct ws_reader r;
	struct ws_event back;
	bool have;

	ws_reader_init(&r, FUZZ_MAX_MESSAGE, false);
	if (ws_reader_next(&r, (uint8_t *)f->data, f->len, &back, &have) != f->len || !have ||
	    back.kind != WS_EV_MESSAGE || back.opcode != ev->opcode || back.len != ev->len ||
	    (ev->len > 0 && memcmp(back.payload, ev->payload, ev->len) != 0))
		abort();
	ws_reader_free(&r);
	sbuf_unref(f);
}

static void fuzz_read(const uint8_t *data, size_t size, bool require_mask)
{
	/* A heap copy of exactly size bytes: the reader unmasks in place, and
	 * ASan sees any read past the end. */
	uint8_t *in = malloc(size ? size : 1);
	struct ws_reader r;
	size_t off = 0;

	if (in == NULL)
		return;
	if (size > 0)
		memcpy(in, data, size);
	ws_reader_init(&r, FUZZ_MAX_MESSAGE, require_mask);
	for (;;) {
		struct ws_event ev;
		bool have = false;
		size_t n = ws_reader_next(&r, in + off, size - off, &ev, &have);

		if (n > size - off)
			abort();
		off += n;
		if (have) {
			fuzz_check_event(&ev, in, size);
			if (ev.kind == WS_EV_MESSAGE)
				fuzz_roundtrip(&ev);
			if (ev.kind == WS_EV_FAIL || ev.kind == WS_EV_CLOSE)
				break;
		}
		if (n == 0 && !have)
			break;
	}
	ws_reader_free(&r);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_read(data, size, true);
	fuzz_read(data, size, false);

	/* Any split of the input gives the same verdict as one pass. */
	bool valid = utf8_valid(data, size);
	size_t half = size / 2;
	uint32_t st = utf8_feed(UTF8_ACCEPT, data, half);
	if ((utf8_feed(st, data + half, size - half) == UTF8_ACCEPT) != valid)
		abort();

	/* A valid reason stays valid when cut to fit a close frame. */
	if (valid && size < 1024) {
		char reason[1024];
		uint8_t out[125];
		memcpy(reason, data, size);
		reason[size] = '\0';
		size_t n = ws_close_payload(out, WS_CLOSE_NORMAL, reason);
		if (n < 2 || n > 125 || !utf8_valid(out + 2, n - 2))
			abort();
	}
	return 0;
}
