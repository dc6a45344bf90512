/* fuzz_ipc.c -- libFuzzer target for the IPC decoder: framing, then every
 * message type's field layout read the way the hub and workers read it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

static void read_fields(uint16_t type, struct ipc_reader *r)
{
	char s[256];
	size_t len;
	switch (type) {
	case IPC_HELLO:
		ipc_get_u32(r); ipc_get_u32(r); ipc_get_u32(r); ipc_get_u32(r);
		break;
	case IPC_PUBLISH: {
		ipc_get_u64(r);
		uint32_t n = ipc_get_u32(r);
		for (uint32_t i = 0; i < n && !r->err; i++)
			ipc_get_str(r, s, sizeof(s));
		ipc_get_bytes(r, &len); ipc_get_bytes(r, &len); ipc_get_bytes(r, &len);
		ipc_get_u8(r);
		break;
	}
	case IPC_DELIVER:
		ipc_get_str(r, s, sizeof(s)); ipc_get_u64(r); ipc_get_str(r, s, sizeof(s));
		ipc_get_u64(r);
		for (int i = 0; i < 5; i++)
			ipc_get_u32(r);
		ipc_get_bytes(r, &len);
		break;
	case IPC_REPLY:
		ipc_get_u64(r); ipc_get_u32(r); ipc_get_bytes(r, &len);
		break;
	case IPC_WEBHOOK_RESULT:
		ipc_get_u64(r); ipc_get_u32(r); ipc_get_u32(r); ipc_get_u32(r);
		ipc_get_bytes(r, &len); ipc_get_u64(r); ipc_get_u32(r);
		break;
	case IPC_WEBHOOK_SETTLED:
		ipc_get_u64(r); ipc_get_str(r, s, sizeof(s)); ipc_get_u8(r); ipc_get_u32(r);
		ipc_get_u64(r);
		break;
	default:
		while (!r->err && r->left)
			ipc_get_bytes(r, &len);
	}
	ipc_reader_done(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	size_t off = 0;
	for (;;) {
		uint16_t type;
		const uint8_t *payload;
		uint32_t plen;
		long n = ipc_frame_next(copy + off, size - off, &type, &payload, &plen);
		if (n <= 0)
			break;
		struct ipc_reader r;
		ipc_reader_init(&r, payload, plen);
		read_fields(type, &r);
		off += (size_t)n;
	}
	free(copy);
	return 0;
}
