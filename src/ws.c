/* ws.c -- RFC 6455 frames: decoding with message reassembly and every check the
 * protocol asks for, encoding, close payloads and the handshake's accept key. */
#include "ws.h"

#include <string.h>
#include <sodium.h>

#include "sha1.h"
#include "utf8.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* After its message is delivered, a reassembly buffer bigger than this is
 * freed rather than kept: one large fragmented message should not pin
 * max_message bytes to an otherwise idle connection. */
#define WS_MSG_KEEP 4096

_Static_assert(sodium_base64_ENCODED_LEN(SHA1_LEN, sodium_base64_VARIANT_ORIGINAL)
	       == WS_ACCEPT_LEN + 1, "WS_ACCEPT_LEN does not match base64 of a SHA-1");

/* What an empty reassembled message points at, so payload is never NULL. */
static const uint8_t ws_empty[1];

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t load_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* XORs p with the 4-byte key, 8 bytes at a time: the key repeats every 4 bytes
 * so a doubled key lines up with every 8-byte step from the payload's start.
 * memcpy keeps it legal for unaligned p and compiles to plain loads. Masking
 * and unmasking are the same operation. */
static void ws_mask(uint8_t *p, size_t n, const uint8_t key[4])
{
	uint8_t k8[8];
	uint64_t k;
	size_t i = 0;

	memcpy(k8, key, 4);
	memcpy(k8 + 4, key, 4);
	memcpy(&k, k8, 8);
	for (; n - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		w ^= k;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= key[i & 3];
}

static void ws_event_set(struct ws_event *ev, enum ws_event_kind kind, int opcode,
			 const uint8_t *payload, size_t len, int close_code)
{
	ev->kind = kind;
	ev->opcode = opcode;
	ev->payload = payload;
	ev->len = len;
	ev->close_code = close_code;
}

/* Fails the reader for good: msg_opcode holds -code from now on, so every
 * later call reports the same failure instead of decoding bytes that may
 * already have been unmasked in place. */
static size_t ws_reader_fail(struct ws_reader *r, struct ws_event *ev, bool *have_event,
			     int code)
{
	r->msg_opcode = -code;
	ws_event_set(ev, WS_EV_FAIL, 0, NULL, 0, code);
	*have_event = true;
	return 0;
}

/* ---- decoding --------------------------------------------------------------- */

void ws_reader_init(struct ws_reader *r, size_t max_message, bool require_mask)
{
	memset(r, 0, sizeof(*r));
	r->max_message = max_message;
	r->require_mask = require_mask;
	r->utf8_state = UTF8_ACCEPT;
}

void ws_reader_free(struct ws_reader *r)
{
	buf_free(&r->msg);
	r->msg_opcode = 0;
	r->utf8_state = UTF8_ACCEPT;
}

/* The frame is complete and unmasked: p[0..n) is a close frame's payload. */
static size_t ws_reader_close(struct ws_reader *r, const uint8_t *p, size_t n, size_t used,
			      struct ws_event *ev, bool *have_event)
{
	if (n == 0) {
		ws_event_set(ev, WS_EV_CLOSE, WS_OP_CLOSE, p, 0, WS_CLOSE_NO_STATUS);
		*have_event = true;
		return used;
	}
	if (n == 1)
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	int code = (int)load_be(p, 2);
	if (!ws_close_code_valid(code))
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	if (!utf8_valid(p + 2, n - 2))
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_BAD_DATA);
	ws_event_set(ev, WS_EV_CLOSE, WS_OP_CLOSE, p + 2, n - 2, code);
	*have_event = true;
	return used;
}

/* Exact semantics, beyond ws.h:
 * - A frame is consumed whole or not at all: nothing in `in` is touched (no
 *   unmasking) until the whole frame is there, so the caller may call again
 *   with the same bytes plus more.
 * - Every WS_EV_FAIL returns 0 and leaves the reader failed: later calls
 *   return 0 with the same WS_EV_FAIL, whatever they are given. The caller
 *   fails the connection with ev->close_code and drops the rest of its input.
 * - Checks run as soon as the bytes they need have arrived: RSV bits, opcode,
 *   mask bit, control frame rules and continuation order on the first two
 *   bytes; the 64-bit length's top bit and max_message (1009) once the length
 *   field is in, before the mask key or any payload; UTF-8 of a text fragment
 *   when that fragment is complete (1007 at the first bad fragment, or at the
 *   final fragment when it leaves a code point unfinished).
 * - max_message bounds a message's total payload: one unfragmented frame, or
 *   the sum of a fragmented message's frames. Control frames do not count. */
size_t ws_reader_next(struct ws_reader *r, uint8_t *in, size_t len,
		      struct ws_event *ev, bool *have_event)
{
	*have_event = false;
	if (r->msg_opcode < 0)
		return ws_reader_fail(r, ev, have_event, -r->msg_opcode);
	if (r->msg_opcode == 0 && r->msg.cap > 0) {
		/* The last reassembled message was delivered by the previous call. */
		if (r->msg.cap > WS_MSG_KEEP)
			buf_free(&r->msg);
		else
			buf_reset(&r->msg);
	}
	if (len < 2)
		return 0;

	bool fin = in[0] & 0x80;
	int op = in[0] & 0x0f;
	bool masked = in[1] & 0x80;
	bool control = op & 0x08;
	uint64_t plen = in[1] & 0x7f;
	size_t hlen = 2;

	if (in[0] & 0x70)
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);  /* no extensions */
	switch (op) {
	case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY:
	case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
		break;
	default:
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	}
	/* Clients must mask, servers must not (RFC 6455 §5.1). */
	if (masked != r->require_mask)
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	if (control) {
		if (!fin || plen > 125)
			return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	} else if (op == WS_OP_CONT ? r->msg_opcode == 0 : r->msg_opcode != 0) {
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	}

	/* Non-minimal length encodings are legal (§5.2 only says "should"). */
	if (plen == 126) {
		if (len < 4)
			return 0;
		plen = load_be(in + 2, 2);
		hlen = 4;
	} else if (plen == 127) {
		if (len < 10)
			return 0;
		plen = load_be(in + 2, 8);
		hlen = 10;
		if (plen >> 63)
			return ws_reader_fail(r, ev, have_event, WS_CLOSE_PROTOCOL);
	}
	/* r->msg.len is 0 unless a fragmented message is in progress. */
	if (!control && (r->msg.len > r->max_message || plen > r->max_message - r->msg.len))
		return ws_reader_fail(r, ev, have_event, WS_CLOSE_TOO_BIG);

	if (masked)
		hlen += 4;
	if (len < hlen || len - hlen < plen)
		return 0;
	uint8_t *p = in + hlen;
	size_t n = (size_t)plen;    /* fits: <= 125 or <= max_message */
	size_t used = hlen + n;
	if (masked)
		ws_mask(p, n, in + hlen - 4);

	switch (op) {
	case WS_OP_PING:
		ws_event_set(ev, WS_EV_PING, op, p, n, 0);
		*have_event = true;
		return used;
	case WS_OP_PONG:
		ws_event_set(ev, WS_EV_PONG, op, p, n, 0);
		*have_event = true;
		return used;
	case WS_OP_CLOSE:
		return ws_reader_close(r, p, n, used, ev, have_event);
	}

	if (fin && op != WS_OP_CONT) {
		/* Unfragmented: the common case, delivered in place without a copy. */
		if (op == WS_OP_TEXT && !utf8_valid(p, n))
			return ws_reader_fail(r, ev, have_event, WS_CLOSE_BAD_DATA);
		ws_event_set(ev, WS_EV_MESSAGE, op, p, n, 0);
		*have_event = true;
		return used;
	}

	if (op != WS_OP_CONT) {
		r->msg_opcode = op;
		r->utf8_state = UTF8_ACCEPT;
	}
	if (r->msg_opcode == WS_OP_TEXT) {
		r->utf8_state = utf8_feed(r->utf8_state, p, n);
		if (r->utf8_state == UTF8_REJECT || (fin && r->utf8_state != UTF8_ACCEPT))
			return ws_reader_fail(r, ev, have_event, WS_CLOSE_BAD_DATA);
	}
	buf_append(&r->msg, p, n);
	if (!fin)
		return used;

	/* The buffer is reset by the next call, so the payload stays valid until then. */
	ws_event_set(ev, WS_EV_MESSAGE, r->msg_opcode,
		     r->msg.len ? (const uint8_t *)r->msg.data : ws_empty, r->msg.len, 0);
	*have_event = true;
	r->msg_opcode = 0;
	return used;
}

/* ---- encoding --------------------------------------------------------------- */

size_t ws_header_encode(uint8_t *out, int opcode, bool fin, uint64_t len,
			const uint8_t *mask)
{
	uint8_t mask_bit = mask ? 0x80 : 0;
	size_t n;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		out[1] = (uint8_t)(mask_bit | len);
		n = 2;
	} else if (len <= 0xffff) {
		out[1] = mask_bit | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = mask_bit | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

struct sbuf *ws_frame_new(int opcode, const void *payload, size_t len)
{
	uint8_t h[WS_MAX_HEADER];
	size_t hlen = ws_header_encode(h, opcode, true, len, NULL);
	struct sbuf *f = sbuf_new(hlen + len);

	memcpy(f->data, h, hlen);
	if (len > 0)
		memcpy(f->data + hlen, payload, len);
	return f;
}

void ws_frame_append_masked(struct buf *out, int opcode, const void *payload, size_t len)
{
	uint8_t mask[4], h[WS_MAX_HEADER];

	/* RFC 6455 §5.3: the key must be unpredictable, to defeat cache poisoning
	 * through intermediaries. */
	randombytes_buf(mask, sizeof(mask));
	size_t hlen = ws_header_encode(h, opcode, true, len, mask);
	buf_reserve(out, hlen + len);
	uint8_t *p = (uint8_t *)out->data + out->len;
	memcpy(p, h, hlen);
	if (len > 0) {
		memcpy(p + hlen, payload, len);
		ws_mask(p + hlen, len, mask);
	}
	out->len += hlen + len;
}

size_t ws_close_payload(uint8_t *out, int code, const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;

	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	if (n > 123) {
		/* Cut on a code point boundary: a split sequence would make the peer
		 * fail us with 1007. */
		n = 123;
		while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80)
			n--;
	}
	if (n > 0)
		memcpy(out + 2, reason, n);
	return 2 + n;
}

/* 1004-1006 and 1015 are reserved and never sent; 1012-2999 are unassigned or
 * reserved for the protocol; 3000-4999 belong to libraries and applications. */
bool ws_close_code_valid(int code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
	       (code >= 3000 && code <= 4999);
}

/* ---- handshake -------------------------------------------------------------- */

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
	struct sha1_ctx c;
	uint8_t digest[SHA1_LEN];

	sha1_init(&c);
	sha1_update(&c, key, key_len);
	sha1_update(&c, WS_GUID, sizeof(WS_GUID) - 1);
	sha1_final(&c, digest);
	sodium_bin2base64(out, WS_ACCEPT_LEN + 1, digest, sizeof(digest),
			  sodium_base64_VARIANT_ORIGINAL);
}
