/* siopkt.h -- Socket.IO v5 packet codec: the header of a packet (type,
 * attachments, namespace, ack id) around its JSON payload, and the encoding
 * of the packets herald sends. Pure: no I/O, no allocation when parsing. */
#ifndef HERALD_SIOPKT_H
#define HERALD_SIOPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

enum siopkt_type {
	SIO_CONNECT = 0, SIO_DISCONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR,
	SIO_BINARY_EVENT, SIO_BINARY_ACK,
};

#define SIO_MAX_ATTACHMENTS 64
#define SIO_NSP_MAX 128

struct siopkt {
	int type;                  /* enum siopkt_type */
	unsigned attachments;      /* binary packets that follow (BINARY_*) */
	const char *nsp;           /* namespace, "/" when absent */
	size_t nsp_len;
	int64_t id;                /* ack id, -1 when none */
	const char *data;          /* JSON payload text (unchecked), may be empty */
	size_t data_len;
};

/* Parses the Engine.IO message data p[0..n) as a Socket.IO packet header.
 * Pointers point into p. Returns 0, or -1 when the header is malformed
 * (unknown type, bad attachment count, namespace too long, id overflow,
 * an id on CONNECT, DISCONNECT or CONNECT_ERROR). The payload's JSON is the
 * caller's to check. */
int siopkt_parse(const char *p, size_t n, struct siopkt *out);

/* Appends a packet header: type, "N-" for binary types, "nsp," unless nsp is
 * "/" (or NULL), and the ack id when id >= 0. The payload follows. */
void siopkt_put_header(struct buf *b, int type, unsigned attachments, const char *nsp,
		       int64_t id);

/* Appends the Engine.IO message carrying a room event, as every Socket.IO
 * subscriber of namespace nsp receives it:
 *   4 2 [nsp,] [<event>, {"type":<event>,"room":..,"seq":..,"timestamp":..,
 *                         "data":<data>}, "<gpos>"]
 * event_json is the event name as a JSON string literal (quotes included),
 * data JSON text inserted verbatim; the offset (gpos) is left out when
 * gpos < 0. */
void siopkt_event(struct buf *b, const char *nsp, const char *event_json, size_t event_len,
		  const char *room, int64_t seq, const char *ts, const char *data,
		  size_t data_len, int64_t gpos);

#endif
