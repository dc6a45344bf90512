/* ws.h -- RFC 6455 WebSocket: frame decoding with message assembly and all of
 * the protocol's checks, frame encoding, and the handshake's accept key. */
#ifndef HERALD_WS_H
#define HERALD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "buf.h"

enum ws_opcode {
	WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA,
};

enum ws_close_code {
	WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_NO_STATUS = 1005, WS_CLOSE_BAD_DATA = 1007, WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_INTERNAL = 1011,
	WS_CLOSE_AUTH_TIMEOUT = 4001, WS_CLOSE_TOKEN_EXPIRED = 4003, WS_CLOSE_KICKED = 4008,
};

#define WS_MAX_HEADER 14        /* 2 + 8 (length) + 4 (mask) */
#define WS_ACCEPT_LEN 28        /* base64 of a SHA-1 */

enum ws_event_kind {
	WS_EV_MESSAGE,   /* a complete text or binary message */
	WS_EV_PING,
	WS_EV_PONG,
	WS_EV_CLOSE,     /* a valid close frame; close_code 1005 when it had no body */
	WS_EV_FAIL,      /* protocol violation: fail with close_code (1002, 1007, 1009) */
};

struct ws_event {
	enum ws_event_kind kind;
	int opcode;                 /* WS_EV_MESSAGE: WS_OP_TEXT or WS_OP_BINARY */
	const uint8_t *payload;     /* message or control payload (reason for close) */
	size_t len;
	int close_code;             /* WS_EV_CLOSE, WS_EV_FAIL */
};

/* Reassembles messages from frames and checks everything RFC 6455 asks:
 * masking, reserved bits and opcodes, control frames (<= 125 bytes, never
 * fragmented), continuation order, UTF-8 of text (incrementally, failing at
 * the first bad fragment) and of close reasons, close codes, max_message. */
struct ws_reader {
	size_t max_message;   /* 1009 beyond this */
	bool require_mask;    /* server side: true (1002 on an unmasked frame) */
	/* state */
	struct buf msg;       /* fragments of the message in progress */
	int msg_opcode;       /* 0 when no fragmented message is in progress */
	uint32_t utf8_state;
};

void ws_reader_init(struct ws_reader *r, size_t max_message, bool require_mask);
void ws_reader_free(struct ws_reader *r);

/* Decodes at most one frame from in[0..len), unmasking it in place. Returns
 * the number of bytes consumed and sets *have_event when ev was filled; a
 * frame that does not complete a message consumes bytes without an event.
 * Returns 0 when more bytes are needed (having already failed with
 * WS_EV_FAIL/1009 when the header announces too large a payload).
 * Every WS_EV_FAIL consumes nothing and leaves the reader failed: later calls
 * report the same failure whatever they are given, and the caller drops the
 * rest of the input.
 * ev->payload points into in or into r->msg, valid until the next call. */
size_t ws_reader_next(struct ws_reader *r, uint8_t *in, size_t len,
		      struct ws_event *ev, bool *have_event);

/* Writes a frame header (FIN set when fin) into out (WS_MAX_HEADER bytes);
 * with mask non-NULL the mask key is included (the caller masks the payload).
 * Returns the header length. */
size_t ws_header_encode(uint8_t *out, int opcode, bool fin, uint64_t len,
			const uint8_t *mask);
/* A complete unmasked frame in a shared buffer: what the server sends. */
struct sbuf *ws_frame_new(int opcode, const void *payload, size_t len);
/* Appends a complete masked frame (client side) with a random mask to out. */
void ws_frame_append_masked(struct buf *out, int opcode, const void *payload, size_t len);
/* A close frame payload: 2-byte code + reason (truncated to fit 125 bytes).
 * Returns its length; out holds 125 bytes. */
size_t ws_close_payload(uint8_t *out, int code, const char *reason);

/* True for codes a peer may send in a close frame (RFC 6455 §7.4). */
bool ws_close_code_valid(int code);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)),
 * WS_ACCEPT_LEN characters plus NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

#endif
