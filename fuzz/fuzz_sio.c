/* fuzz_sio.c -- libFuzzer target for siopkt.c: arbitrary bytes as a
 * Socket.IO packet; what parses is encoded again and must parse the same. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "siopkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct siopkt pkt;
	if (siopkt_parse(p, size, &pkt) < 0)
		return 0;
	if (pkt.type < SIO_CONNECT || pkt.type > SIO_BINARY_ACK ||
	    pkt.attachments > SIO_MAX_ATTACHMENTS || pkt.nsp_len > SIO_NSP_MAX ||
	    pkt.data < p || pkt.data + pkt.data_len != p + size ||
	    pkt.nsp_len == 0 || pkt.nsp[0] != '/')
		abort();
	/* The header, encoded again, must read back the same. */
	char nsp[SIO_NSP_MAX + 1];
	memcpy(nsp, pkt.nsp, pkt.nsp_len);
	nsp[pkt.nsp_len] = '\0';
	if (memchr(nsp, '\0', pkt.nsp_len) || strchr(nsp, ','))
		return 0;
	struct buf b = { 0 };
	siopkt_put_header(&b, pkt.type, pkt.attachments, nsp, pkt.id);
	buf_append(&b, "[]", 2);
	struct siopkt again;
	if (siopkt_parse(b.data, b.len, &again) < 0 || again.type != pkt.type ||
	    again.id != pkt.id || again.attachments != pkt.attachments ||
	    again.nsp_len != pkt.nsp_len)
		abort();
	buf_free(&b);
	return 0;
}
