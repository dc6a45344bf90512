/* proto.c -- shared encoding of client protocol messages, and JSON checks. */
#include "proto.h"

#include <stdio.h>
#include <string.h>

#include "ipc.h"
#include "util.h"

void proto_event(struct buf *b, const char *room, int64_t seq, const char *epoch,
		 const char *event, const char *data, size_t data_len, const char *ts)
{
	proto_event_at(b, room, seq, epoch, event, data, data_len, ts, NULL);
}

void proto_event_at(struct buf *b, const char *room, int64_t seq, const char *epoch,
		    const char *event, const char *data, size_t data_len, const char *ts,
		    struct proto_event_pos *pos)
{
	size_t start = b->len, at;
	buf_appends(b, "{\"type\":\"event\",\"room\":");
	buf_append_json_str(b, room, strlen(room));
	buf_printf(b, ",\"seq\":%lld,\"epoch\":\"%s\",\"event\":", (long long)seq, epoch);
	at = b->len;
	buf_append_json_str(b, event, strlen(event));
	if (pos) {
		pos->event_off = at - start;
		pos->event_len = b->len - at;
	}
	buf_appends(b, ",\"data\":");
	if (pos)
		pos->data_off = b->len - start;
	buf_append(b, data, data_len);
	if (pos) {
		pos->data_len = data_len;
		pos->ts_off = b->len - start + 7;     /* past ,"ts":" */
	}
	buf_printf(b, ",\"ts\":\"%s\"}", ts);
}

int proto_json_depth(const char *p, size_t n)
{
	int depth = 0, max = 0;
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '{' || ch == '[') {
			if (++depth > max)
				max = depth;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
	}
	return in_str ? -1 : max;
}

int proto_parse_object(const char *p, size_t n, int max_depth, size_t flags, json_t **out,
		       char *err, size_t errlen)
{
	*out = NULL;
	/* Checked before parsing: jansson would recurse as deep as the input. */
	int depth = proto_json_depth(p, n);
	if (depth > max_depth) {
		snprintf(err, errlen, "JSON nested deeper than %d", max_depth);
		return -1;
	}
	json_error_t jerr;
	json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES | flags, &jerr);
	if (!v) {
		snprintf(err, errlen, "invalid JSON: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		snprintf(err, errlen, "expected a JSON object");
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- raw member text (the input was validated by jansson already) ---- */

static size_t skip_ws(const char *p, size_t i, size_t n)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return i;
}

/* p[i] is the opening quote; returns the index after the closing one. */
static size_t skip_string(const char *p, size_t i, size_t n)
{
	for (i++; i < n && p[i] != '"'; i++)
		if (p[i] == '\\')
			i++;
	return i + 1;
}

static size_t skip_value(const char *p, size_t i, size_t n)
{
	if (p[i] == '"')
		return skip_string(p, i, n);
	if (p[i] == '{' || p[i] == '[') {
		int depth = 0;
		while (i < n) {
			if (p[i] == '"') {
				i = skip_string(p, i, n);
				continue;
			}
			if (p[i] == '{' || p[i] == '[')
				depth++;
			else if ((p[i] == '}' || p[i] == ']') && --depth == 0)
				return i + 1;
			i++;
		}
		return n;
	}
	while (i < n && !strchr(",}] \t\r\n", p[i]))
		i++;
	return i;
}

/* Whether the JSON string literal p[0..len) (quotes included) spells key. */
static bool key_equals(const char *p, size_t len, const char *key)
{
	if (!memchr(p, '\\', len))
		return len == strlen(key) + 2 && memcmp(p + 1, key, len - 2) == 0;
	json_t *k = json_loadb(p, len, JSON_DECODE_ANY, NULL);
	bool eq = k && strcmp(json_string_value(k), key) == 0;
	json_decref(k);
	return eq;
}

bool proto_member_raw(const char *p, size_t n, const char *key, const char **val, size_t *vlen)
{
	size_t i = skip_ws(p, 0, n);
	if (i >= n || p[i] != '{')
		return false;
	for (i = skip_ws(p, i + 1, n); i < n && p[i] == '"';) {
		size_t k = i;
		i = skip_string(p, i, n);
		bool match = key_equals(p + k, i - k, key);
		i = skip_ws(p, skip_ws(p, i, n) + 1, n);   /* past the colon */
		size_t end = skip_value(p, i, n);
		if (match) {
			*val = p + i;
			*vlen = end - i;
			return true;
		}
		i = skip_ws(p, end, n);
		if (i < n && p[i] == ',')
			i = skip_ws(p, i + 1, n);
	}
	return false;
}

const char *proto_data(const char *p, size_t n, size_t *len)
{
	const char *v;
	if (proto_member_raw(p, n, "data", &v, len))
		return v;
	*len = 4;
	return "null";
}

void proto_put_id(struct buf *b, const char *id_json)
{
	if (id_json)
		buf_printf(b, "\"id\":%s,", id_json);
}

char *proto_id_dup(json_t *req)
{
	json_t *id = json_object_get(req, "id");
	if (!id || !(json_is_string(id) || json_is_integer(id) || json_is_real(id)))
		return NULL;
	return json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
}

void proto_deliver_frame(struct buf *b, const char *room, int64_t seq, const char *epoch,
			 int64_t gpos, const char *event, const char *data, size_t data_len,
			 const char *ts)
{
	size_t m = ipc_begin(b, IPC_DELIVER);
	ipc_put_cstr(b, room);
	ipc_put_u64(b, (uint64_t)seq);
	ipc_put_cstr(b, epoch);
	ipc_put_u64(b, (uint64_t)gpos);
	size_t pos_at = b->len;
	for (int i = 0; i < 5; i++)
		ipc_put_u32(b, 0);
	size_t len_at = b->len;
	ipc_put_u32(b, 0);
	size_t start = b->len;
	struct proto_event_pos pos;
	proto_event_at(b, room, seq, epoch, event, data, data_len, ts, &pos);
	uint32_t plen = (uint32_t)(b->len - start);
	memcpy(b->data + len_at, &plen, 4);
	uint32_t offs[5] = { (uint32_t)pos.event_off, (uint32_t)pos.event_len,
			     (uint32_t)pos.data_off, (uint32_t)pos.data_len, (uint32_t)pos.ts_off };
	memcpy(b->data + pos_at, offs, sizeof(offs));
	ipc_end(b, m);
}
