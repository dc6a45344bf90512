/* siopkt.c -- Socket.IO v5 packet codec (see siopkt.h). */
#include "siopkt.h"

#include <stdio.h>
#include <string.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int siopkt_parse(const char *p, size_t n, struct siopkt *out)
{
	size_t i = 0;
	memset(out, 0, sizeof(*out));
	out->nsp = "/";
	out->nsp_len = 1;
	out->id = -1;
	if (n == 0 || p[0] < '0' || p[0] > '6')
		return -1;
	out->type = p[i++] - '0';
	if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK) {
		size_t start = i;
		unsigned count = 0;
		while (i < n && is_digit(p[i])) {
			count = count * 10 + (unsigned)(p[i++] - '0');
			if (count > SIO_MAX_ATTACHMENTS)
				return -1;
		}
		if (i == start || i >= n || p[i] != '-')
			return -1;
		i++;
		out->attachments = count;
	}
	if (i < n && p[i] == '/') {
		size_t start = i;
		while (i < n && p[i] != ',')
			i++;
		out->nsp = p + start;
		out->nsp_len = i - start;
		if (out->nsp_len > SIO_NSP_MAX)
			return -1;
		if (i < n)
			i++;       /* the comma */
	}
	if (i < n && is_digit(p[i])) {
		int64_t id = 0;
		while (i < n && is_digit(p[i])) {
			if (id > (INT64_MAX - 9) / 10)
				return -1;
			id = id * 10 + (p[i++] - '0');
		}
		if (out->type != SIO_EVENT && out->type != SIO_ACK &&
		    out->type != SIO_BINARY_EVENT && out->type != SIO_BINARY_ACK)
			return -1;
		out->id = id;
	}
	if ((out->type == SIO_ACK || out->type == SIO_BINARY_ACK) && out->id < 0)
		return -1;
	out->data = p + i;
	out->data_len = n - i;
	return 0;
}

void siopkt_put_header(struct buf *b, int type, unsigned attachments, const char *nsp,
		       int64_t id)
{
	buf_printf(b, "%d", type);
	if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK)
		buf_printf(b, "%u-", attachments);
	if (nsp && strcmp(nsp, "/") != 0)
		buf_printf(b, "%s,", nsp);
	if (id >= 0)
		buf_printf(b, "%lld", (long long)id);
}

void siopkt_event(struct buf *b, const char *nsp, const char *event_json, size_t event_len,
		  const char *room, int64_t seq, const char *ts, const char *data,
		  size_t data_len, int64_t gpos)
{
	buf_appends(b, "4");
	siopkt_put_header(b, SIO_EVENT, 0, nsp, -1);
	buf_appends(b, "[");
	buf_append(b, event_json, event_len);
	buf_appends(b, ",{\"type\":");
	buf_append(b, event_json, event_len);
	buf_appends(b, ",\"room\":");
	buf_append_json_str(b, room, strlen(room));
	buf_printf(b, ",\"seq\":%lld,\"timestamp\":\"%s\",\"data\":", (long long)seq, ts);
	buf_append(b, data, data_len);
	buf_appends(b, "}");
	if (gpos >= 0)
		buf_printf(b, ",\"%lld\"", (long long)gpos);
	buf_appends(b, "]");
}
