/* eiopkt.h -- Engine.IO v4 packet codec: packet types, the record-separated
 * payloads of HTTP long-polling, base64 binary packets. Pure: no I/O. */
#ifndef HERALD_EIOPKT_H
#define HERALD_EIOPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

enum eiopkt_type {
	EIO_OPEN = '0', EIO_CLOSE = '1', EIO_PING = '2', EIO_PONG = '3',
	EIO_MESSAGE = '4', EIO_UPGRADE = '5', EIO_NOOP = '6',
};

#define EIO_SEPARATOR '\x1e'   /* between packets of a polling payload */

/* The type of the text packet p[0..n) (one of enum eiopkt_type), or -1 when
 * it is empty or its first byte is no packet type. Its data is p[1..n). */
int eiopkt_type(const char *p, size_t n);

/* Iterates over the packets of a polling payload p[0..n): sets *pkt and *len to
 * the packet starting at *pos and moves *pos past it and its separator.
 * Returns 1 for a packet, 0 at the end, -1 when a packet is empty (a
 * malformed payload). Does not allocate. */
int eiopkt_payload_next(const char *p, size_t n, size_t *pos, const char **pkt, size_t *len);

/* Decodes the data of a "b" packet (base64, standard alphabet with padding)
 * into out (cap bytes). Returns the decoded length or -1 when malformed or
 * too long. */
long eiopkt_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);
/* Appends "b" + base64 of p[0..n) to b: a binary packet as sent by polling. */
void eiopkt_put_binary(struct buf *b, const void *p, size_t n);

/* Parses the query parameters Engine.IO needs from query[0..len) (NULL
 * allowed). Absent or unreadable values are empty strings; returns -1 when
 * a sid is present but unreadable (too long, bad escapes), else 0. */
struct eiopkt_query {
	char eio[8];
	char transport[16];
	char sid[48];
};
int eiopkt_query_parse(const char *query, size_t len, struct eiopkt_query *out);

#endif
