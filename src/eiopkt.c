/* eiopkt.c -- Engine.IO v4 packet codec (see eiopkt.h). */
#include "eiopkt.h"

#include <string.h>
#include <sodium.h>

#include "http.h"

int eiopkt_type(const char *p, size_t n)
{
	if (n == 0 || p[0] < EIO_OPEN || p[0] > EIO_NOOP)
		return -1;
	return p[0];
}

int eiopkt_payload_next(const char *p, size_t n, size_t *pos, const char **pkt, size_t *len)
{
	if (*pos > n)
		return 0;
	if (*pos == n) {
		*pos = n + 1;
		return -1;
	}
	const char *start = p + *pos;
	const char *sep = memchr(start, EIO_SEPARATOR, n - *pos);
	size_t l = sep ? (size_t)(sep - start) : n - *pos;
	/* After the last packet *pos is n + 1; a trailing separator (or an
	 * empty payload) leaves an empty packet, which is malformed. */
	*pos = sep ? *pos + l + 1 : n + 1;
	if (l == 0)
		return -1;
	*pkt = start;
	*len = l;
	return 1;
}

long eiopkt_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t len = 0;
	const char *end = NULL;
	if (n == 0)
		return 0;
	if (sodium_base642bin(out, cap, in, n, NULL, &len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != in + n)
		return -1;
	return (long)len;
}

void eiopkt_put_binary(struct buf *b, const void *p, size_t n)
{
	size_t enc = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	buf_reserve(b, enc + 1);
	b->data[b->len++] = 'b';
	sodium_bin2base64(b->data + b->len, enc, p, n, sodium_base64_VARIANT_ORIGINAL);
	b->len += enc - 1;     /* without the NUL */
}

int eiopkt_query_parse(const char *query, size_t len, struct eiopkt_query *out)
{
	memset(out, 0, sizeof(*out));
	if (!query)
		return 0;
	if (http_query_param(query, len, "EIO", out->eio, sizeof(out->eio)) < 0)
		out->eio[0] = '\0';
	if (http_query_param(query, len, "transport", out->transport, sizeof(out->transport)) < 0)
		out->transport[0] = '\0';
	if (http_query_param(query, len, "sid", out->sid, sizeof(out->sid)) < 0) {
		out->sid[0] = '\0';
		/* Present but unreadable: not a handshake, an unknown session. */
		char probe[4];
		if (http_query_param(query, len, "sid", probe, sizeof(probe)) < 0 &&
		    (memcmp(query, "sid=", 4 < len ? 4 : len) == 0 || memmem(query, len, "&sid=", 5)))
			return -1;
	}
	return 0;
}
