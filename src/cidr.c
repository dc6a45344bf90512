/* cidr.c -- IPv4/IPv6 addresses and CIDR lists for trusted_proxies, and
 * picking the client address out of X-Forwarded-For. */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const uint8_t cidr_v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

void cidr_addr_from_ipv4(uint32_t ip, struct cidr_addr *out)
{
	memcpy(out->b, cidr_v4_prefix, 12);
	memcpy(out->b + 12, &ip, 4);
}

static bool cidr_addr_is_v4(const struct cidr_addr *a)
{
	return memcmp(a->b, cidr_v4_prefix, 12) == 0;
}

int cidr_addr_parse(const char *s, size_t len, struct cidr_addr *out)
{
	char text[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len))
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, &v4) == 1) {
		cidr_addr_from_ipv4(v4.s_addr, out);
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->b) == 1)
		return 0;
	return -1;
}

void cidr_addr_format(const struct cidr_addr *a, char out[CIDR_ADDR_TEXT])
{
	if (cidr_addr_is_v4(a))
		inet_ntop(AF_INET, a->b + 12, out, CIDR_ADDR_TEXT);
	else
		inet_ntop(AF_INET6, a->b, out, CIDR_ADDR_TEXT);
}

bool cidr_match(const struct cidr *net, const struct cidr_addr *a)
{
	size_t whole = net->bits / 8;
	unsigned rest = net->bits % 8;

	if (memcmp(net->addr.b, a->b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (net->addr.b[whole] & mask) == (a->b[whole] & mask);
}

int cidr_parse(const char *s, size_t len, struct cidr *out)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	long bits;

	if (cidr_addr_parse(s, alen, &out->addr) < 0)
		return -1;
	bool v4 = cidr_addr_is_v4(&out->addr) && memchr(s, ':', alen) == NULL;
	int max = v4 ? 32 : 128;
	if (slash) {
		size_t blen = len - alen - 1;
		if (blen == 0 || blen > 3)
			return -1;
		bits = 0;
		for (size_t i = 0; i < blen; i++) {
			char c = slash[1 + i];
			if (c < '0' || c > '9')
				return -1;
			bits = bits * 10 + (c - '0');
		}
		if (bits > max)
			return -1;
	} else {
		bits = max;
	}
	out->bits = (uint8_t)(v4 ? 96 + bits : bits);
	/* Host bits must be zero: 10.0.0.1/8 is more likely a typo than intent. */
	for (unsigned i = out->bits; i < 128; i++)
		if (out->addr.b[i / 8] & (0x80 >> (i % 8)))
			return -1;
	return 0;
}

void cidr_list_free(struct cidr_list *l)
{
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

int cidr_list_parse(const char *text, struct cidr_list *out, char *err, size_t errlen)
{
	struct cidr_list l = { NULL, 0 };
	const char *p = text;

	while (*p != '\0') {
		size_t len = strcspn(p, ", \t");
		if (len == 0) {
			p++;
			continue;
		}
		struct cidr c;
		if (cidr_parse(p, len, &c) < 0) {
			snprintf(err, errlen, "'%.*s' is not an address or CIDR network (host bits must be zero)",
				 (int)MIN(len, 64), p);
			cidr_list_free(&l);
			return -1;
		}
		l.items = xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		l.items[l.n++] = c;
		p += len;
	}
	*out = l;
	return 0;
}

bool cidr_list_match(const struct cidr_list *l, const struct cidr_addr *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->items[i], a))
			return true;
	return false;
}

bool cidr_list_match_ipv4(const struct cidr_list *l, uint32_t ip)
{
	struct cidr_addr a;

	if (l->n == 0)
		return false;
	cidr_addr_from_ipv4(ip, &a);
	return cidr_list_match(l, &a);
}

/* One X-Forwarded-For entry, trimmed: "a.b.c.d", "a.b.c.d:port", "v6",
 * "[v6]" or "[v6]:port". */
static int cidr_entry_parse(const char *s, size_t len, struct cidr_addr *out)
{
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close)
			return -1;
		return cidr_addr_parse(s + 1, (size_t)(close - s - 1), out);
	}
	const char *colon = memchr(s, ':', len);
	if (colon && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL)
		len = (size_t)(colon - s);     /* one colon: IPv4 with a port */
	return cidr_addr_parse(s, len, out);
}

int cidr_forwarded_for(const struct cidr_list *trusted, const char *value, size_t len,
		       char out[CIDR_ADDR_TEXT])
{
	struct cidr_addr a;
	size_t end = len;

	for (;;) {
		size_t start = end;
		while (start > 0 && value[start - 1] != ',')
			start--;
		if (cidr_entry_parse(value + start, end - start, &a) < 0)
			return -1;
		if (!cidr_list_match(trusted, &a) || start == 0)
			break;
		end = start - 1;
	}
	cidr_addr_format(&a, out);
	return 0;
}
