/* test_cidr.c -- unit tests for cidr.c: address and network parsing, CIDR
 * matching over IPv4 and IPv6, lists, and X-Forwarded-For. */

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "cidr.h"
#include "test.h"

static bool match_text(const char *net, const char *addr)
{
	struct cidr c;
	struct cidr_addr a;
	if (cidr_parse(net, strlen(net), &c) < 0 || cidr_addr_parse(addr, strlen(addr), &a) < 0)
		return false;
	return cidr_match(&c, &a);
}

static void test_parse(void)
{
	static const char *const good[] = {
		"127.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "192.168.1.0/24", "172.16.0.0/12",
		"::1", "::/0", "fd00::/8", "2001:db8::/32", "::ffff:10.0.0.0/104", "1.2.3.4/32",
	};
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.1/8", "10.0.0/8", "256.0.0.0",
		"10.0.0.0/8x", "10.0.0.0/-1", "::1/129", "fd00::1/8", "example.com", "1.2.3.4/0008",
		"1.2.3.4 ", "::g",
	};
	struct cidr c;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(cidr_parse(good[i], strlen(good[i]), &c) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = cidr_parse(bad[i], strlen(bad[i]), &c);
		if (r == 0)
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
		CHECK(r < 0);
	}
	CHECK(cidr_parse("10.0.0.0/8", 10, &c) == 0);
	CHECK_EQ_INT(c.bits, 104);
	CHECK(cidr_parse("10.0.0.0/8", 4, &c) < 0);    /* length-bounded: "10.0" */
}

static void test_match(void)
{
	CHECK(match_text("127.0.0.1", "127.0.0.1"));
	CHECK(!match_text("127.0.0.1", "127.0.0.2"));
	CHECK(match_text("10.0.0.0/8", "10.255.3.4"));
	CHECK(!match_text("10.0.0.0/8", "11.0.0.0"));
	CHECK(match_text("172.16.0.0/12", "172.31.255.255"));
	CHECK(!match_text("172.16.0.0/12", "172.32.0.0"));
	CHECK(match_text("192.168.1.128/25", "192.168.1.200"));
	CHECK(!match_text("192.168.1.128/25", "192.168.1.127"));
	CHECK(match_text("0.0.0.0/0", "8.8.8.8"));
	CHECK(!match_text("0.0.0.0/0", "2001:db8::1"));   /* an IPv4 net holds IPv4 only */
	CHECK(match_text("::/0", "2001:db8::1"));
	CHECK(match_text("::/0", "1.2.3.4"));             /* IPv4-mapped is in ::/0 */
	CHECK(match_text("fd00::/8", "fdab:1::9"));
	CHECK(!match_text("fd00::/8", "fe80::1"));
	CHECK(match_text("::1", "::1"));
	CHECK(!match_text("::1", "127.0.0.1"));
	CHECK(match_text("2001:db8::/33", "2001:db8:7fff::1"));
	CHECK(!match_text("2001:db8::/33", "2001:db8:8000::1"));
	CHECK(match_text("10.0.0.0/8", "::ffff:10.1.2.3"));  /* mapped form of IPv4 */
}

static void test_list(void)
{
	struct cidr_list l;
	char err[128];
	CHECK(cidr_list_parse("", &l, err, sizeof(err)) == 0);
	CHECK_EQ_INT(l.n, 0);
	CHECK(!cidr_list_match_ipv4(&l, htonl(0x7f000001)));
	cidr_list_free(&l);

	CHECK(cidr_list_parse("127.0.0.1, 10.0.0.0/8  fd00::/8,", &l, err, sizeof(err)) == 0);
	CHECK_EQ_INT(l.n, 3);
	CHECK(cidr_list_match_ipv4(&l, htonl(0x7f000001)));
	CHECK(cidr_list_match_ipv4(&l, htonl(0x0a010203)));
	CHECK(!cidr_list_match_ipv4(&l, htonl(0x7f000002)));
	cidr_list_free(&l);
	CHECK(l.items == NULL && l.n == 0);

	CHECK(cidr_list_parse("127.0.0.1, nope/3", &l, err, sizeof(err)) < 0);
	CHECK(strstr(err, "nope/3") != NULL);
	CHECK(l.items == NULL && l.n == 0);
}

static void test_format(void)
{
	struct cidr_addr a;
	char out[CIDR_ADDR_TEXT];
	CHECK(cidr_addr_parse("::ffff:1.2.3.4", 14, &a) == 0);
	cidr_addr_format(&a, out);
	CHECK_EQ_STR(out, "1.2.3.4");
	CHECK(cidr_addr_parse("2001:DB8:0:0::1", 15, &a) == 0);
	cidr_addr_format(&a, out);
	CHECK_EQ_STR(out, "2001:db8::1");
	cidr_addr_from_ipv4(htonl(0xc0a80001), &a);
	cidr_addr_format(&a, out);
	CHECK_EQ_STR(out, "192.168.0.1");
}

static const char *xff(const char *trusted, const char *value)
{
	static char out[CIDR_ADDR_TEXT];
	struct cidr_list l;
	char err[128];
	if (cidr_list_parse(trusted, &l, err, sizeof(err)) < 0)
		return "list error";
	strcpy(out, "untouched");
	int r = cidr_forwarded_for(&l, value, strlen(value), out);
	cidr_list_free(&l);
	return r < 0 ? "error" : out;
}

static void test_forwarded_for(void)
{
	CHECK_EQ_STR(xff("127.0.0.1", "203.0.113.7"), "203.0.113.7");
	/* a client's own header is kept by the proxy, which appends the peer:
	 * the rightmost untrusted entry is the client, not what it claimed */
	CHECK_EQ_STR(xff("127.0.0.1", "6.6.6.6, 203.0.113.7"), "203.0.113.7");
	/* a chain of trusted proxies is skipped */
	CHECK_EQ_STR(xff("127.0.0.1, 10.0.0.0/8", "203.0.113.7, 10.1.1.1, 10.2.2.2"), "203.0.113.7");
	/* all trusted: the leftmost */
	CHECK_EQ_STR(xff("10.0.0.0/8", "10.1.1.1,10.2.2.2"), "10.1.1.1");
	CHECK_EQ_STR(xff("127.0.0.1", "2001:db8::5"), "2001:db8::5");
	CHECK_EQ_STR(xff("127.0.0.1", "[2001:db8::5]:4711"), "2001:db8::5");
	CHECK_EQ_STR(xff("127.0.0.1", "  198.51.100.2:8080 "), "198.51.100.2");
	CHECK_EQ_STR(xff("127.0.0.1", "::ffff:198.51.100.2"), "198.51.100.2");
	/* garbage where it is examined: the peer stands */
	CHECK_EQ_STR(xff("127.0.0.1", ""), "error");
	CHECK_EQ_STR(xff("127.0.0.1", "unknown"), "error");
	CHECK_EQ_STR(xff("127.0.0.1", "1.2.3.4,"), "error");
	CHECK_EQ_STR(xff("127.0.0.1", "1.2.3.4, 127.0.0.1, x"), "error");
	CHECK_EQ_STR(xff("127.0.0.1", "[::1"), "error");
	/* garbage left of the client is never examined */
	CHECK_EQ_STR(xff("127.0.0.1", "x y z, 203.0.113.9"), "203.0.113.9");
	CHECK_EQ_STR(xff("127.0.0.1", ",203.0.113.9"), "203.0.113.9");
}

TEST_MAIN("cidr", TEST(test_parse), TEST(test_match), TEST(test_list), TEST(test_format),
	  TEST(test_forwarded_for))
