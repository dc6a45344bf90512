/* cidr.h -- IPv4/IPv6 addresses and CIDR lists (trusted_proxies), and the
 * client address a trusted proxy reports in X-Forwarded-For. */
#ifndef HERALD_CIDR_H
#define HERALD_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest address text written by cidr_addr_format, with its NUL. */
#define CIDR_ADDR_TEXT 46

/* An address as 16 bytes: IPv4 is stored IPv4-mapped (::ffff:a.b.c.d). */
struct cidr_addr {
	uint8_t b[16];
};

/* A network: the address and the prefix length in the 16-byte form. */
struct cidr {
	struct cidr_addr addr;
	uint8_t bits;           /* 0..128; an IPv4 /n is 96 + n */
};

struct cidr_list {
	struct cidr *items;
	size_t n;
};

/* Parses an address (IPv4 dotted quad or IPv6 text) from s[0..len).
 * Returns 0, or -1 when it is not one. */
int cidr_addr_parse(const char *s, size_t len, struct cidr_addr *out);
/* The IPv4 address ip (network order) in the 16-byte form. */
void cidr_addr_from_ipv4(uint32_t ip, struct cidr_addr *out);
/* Writes a's canonical text (dotted quad for IPv4) to out (CIDR_ADDR_TEXT bytes). */
void cidr_addr_format(const struct cidr_addr *a, char out[CIDR_ADDR_TEXT]);

/* Parses "ADDR" or "ADDR/BITS"; host bits beyond the prefix must be zero.
 * Returns 0, or -1 when malformed. */
int cidr_parse(const char *s, size_t len, struct cidr *out);
bool cidr_match(const struct cidr *net, const struct cidr_addr *a);

/* Parses a list separated by commas or blanks (empty: no entries) into out,
 * which the caller frees with cidr_list_free. Returns 0, or -1 with the bad
 * entry named in err. On error out is left empty. */
int cidr_list_parse(const char *text, struct cidr_list *out, char *err, size_t errlen);
void cidr_list_free(struct cidr_list *l);
bool cidr_list_match(const struct cidr_list *l, const struct cidr_addr *a);
bool cidr_list_match_ipv4(const struct cidr_list *l, uint32_t ip);

/* The client address in an X-Forwarded-For value sent by a trusted peer:
 * walking from the right (the entry the nearest proxy appended), the first
 * address that is not itself a trusted proxy; the leftmost when all are.
 * Entries may carry brackets or an IPv4 port. Writes the canonical text to
 * out and returns 0, or -1 (out untouched) when the value is empty or any
 * entry examined is not an address: then the peer's address stands. */
int cidr_forwarded_for(const struct cidr_list *trusted, const char *value, size_t len,
		       char out[CIDR_ADDR_TEXT]);

#endif
