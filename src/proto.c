/* proto.c -- shared encoding of client protocol messages, and JSON checks. */
#include "proto.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

void proto_event(struct buf *b, const char *room, int64_t seq, const char *epoch,
		 const char *event, const char *data, size_t data_len, const char *ts)
{
	buf_appends(b, "{\"type\":\"event\",\"room\":");
	buf_append_json_str(b, room, strlen(room));
	buf_printf(b, ",\"seq\":%lld,\"epoch\":\"%s\",\"event\":", (long long)seq, epoch);
	buf_append_json_str(b, event, strlen(event));
	buf_appends(b, ",\"data\":");
	buf_append(b, data, data_len);
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

int proto_parse_object(const char *p, size_t n, int max_depth, json_t **out,
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
	json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
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
