/* proto.h -- encoding of the client protocol's server messages that more than
 * one process builds (events are encoded by the hub live and by workers on
 * replay, and must be byte-identical), and JSON input checks. */
#ifndef HERALD_PROTO_H
#define HERALD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "buf.h"

/* Appends {"type":"event","room":..,"seq":..,"epoch":..,"event":..,"data":..,"ts":..}.
 * data is JSON text inserted verbatim. */
void proto_event(struct buf *b, const char *room, int64_t seq, const char *epoch,
		 const char *event, const char *data, size_t data_len, const char *ts);
/* Where proto_event_at put the parts another protocol's frame is built from
 * (offsets into b from where the event starts): the event name as a JSON
 * string literal, the data, and the timestamp. */
struct proto_event_pos {
	size_t event_off, event_len, data_off, data_len, ts_off;
};
void proto_event_at(struct buf *b, const char *room, int64_t seq, const char *epoch,
		    const char *event, const char *data, size_t data_len, const char *ts,
		    struct proto_event_pos *pos);
/* Appends the IPC_DELIVER frame (ipc.h) of a stored message: what the hub
 * routes to workers and hands to Redis, and what a primary serves an edge
 * that fills a gap. The event is encoded once, here, for every receiver. */
void proto_deliver_frame(struct buf *b, const char *room, int64_t seq, const char *epoch,
			 int64_t gpos, const char *event, const char *data, size_t data_len,
			 const char *ts);

/* Parses a JSON text of at most max_depth nesting into *out, with jansson's
 * decoding flags added to JSON_REJECT_DUPLICATES. Returns 0, or -1 with a
 * client-safe message in err (syntax error, too deep, not an object). */
int proto_parse_object(const char *p, size_t n, int max_depth, size_t flags, json_t **out,
		       char *err, size_t errlen);
/* The text of the top-level member key of the object p[0..n), which must be
 * valid JSON (parsed by proto_parse_object first): publishers' data is kept
 * byte for byte. False when there is no such member. */
bool proto_member_raw(const char *p, size_t n, const char *key, const char **val, size_t *vlen);
/* A publish's data as written: the member data of p[0..n), or null. */
const char *proto_data(const char *p, size_t n, size_t *len);
/* Nesting depth of a JSON text (scanning brackets outside strings);
 * -1 when malformed strings make it unknowable. */
int proto_json_depth(const char *p, size_t n);

/* Appends `"id":<id>,` when the request carried an id (string or number). */
void proto_put_id(struct buf *b, const char *id_json);
/* The request's id as compact JSON text (malloc'ed), or NULL when absent or
 * of another type than string or number. */
char *proto_id_dup(json_t *req);

#endif
