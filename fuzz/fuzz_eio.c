/* fuzz_eio.c -- libFuzzer target for eiopkt.c: arbitrary bytes as an
 * Engine.IO polling payload (packets, base64 binary) and as a query string. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eiopkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t pos = 0, n;
	const char *pkt;
	int r, count = 0;
	while ((r = eiopkt_payload_next(p, size, &pos, &pkt, &n)) != 0) {
		if (++count > (int)size + 2)
			abort();          /* it must always progress */
		if (r < 0)
			continue;
		if (pkt < p || pkt + n > p + size || n == 0)
			abort();
		(void)eiopkt_type(pkt, n);
		if (pkt[0] == 'b') {
			uint8_t *bin = malloc(n);
			long len = eiopkt_b64_decode(pkt + 1, n - 1, bin, n);
			if (len > (long)n)
				abort();
			free(bin);
		}
	}
	struct eiopkt_query q;
	eiopkt_query_parse(p, size, &q);
	if (strlen(q.eio) >= sizeof(q.eio) || strlen(q.sid) >= sizeof(q.sid))
		abort();
	return 0;
}
