/* test_codec.c -- SHA-1 test vectors, the WebSocket accept key, and the
 * libsodium base64 variants the handshake (ORIGINAL) and JWT (URLSAFE) rely on. */
#include <sodium.h>
#include <stdlib.h>

#include "sha1.h"
#include "util.h"
#include "ws.h"
#include "test.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void sha1_hex(const void *p, size_t n, char out[2 * SHA1_LEN + 1])
{
	uint8_t d[SHA1_LEN];
	sha1(p, n, d);
	hex(d, sizeof(d), out);
}

/* The same digest fed in pieces of chunk bytes. */
static void sha1_hex_chunked(const uint8_t *p, size_t n, size_t chunk, char out[2 * SHA1_LEN + 1])
{
	struct sha1_ctx c;
	uint8_t d[SHA1_LEN];

	sha1_init(&c);
	for (size_t i = 0; i < n; i += chunk)
		sha1_update(&c, p + i, n - i < chunk ? n - i : chunk);
	sha1_final(&c, d);
	hex(d, sizeof(d), out);
}

static void test_sha1_fips(void)
{
	char h[2 * SHA1_LEN + 1];

	sha1_hex("abc", 3, h);
	CHECK_EQ_STR(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
	sha1_hex("", 0, h);
	CHECK_EQ_STR(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	sha1_hex(NULL, 0, h);
	CHECK_EQ_STR(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	/* 448 bits: the padding no longer fits in the last block. */
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha1_hex(m448, strlen(m448), h);
	CHECK_EQ_STR(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
			   "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	sha1_hex(m896, strlen(m896), h);
	CHECK_EQ_STR(h, "a49b2446a02c645bf419f995b67091253a04a259");
}

static void test_sha1_million(void)
{
	static const size_t chunks[] = { 1, 3, 63, 64, 65, 1000, 4096 };
	char h[2 * SHA1_LEN + 1];
	size_t n = 1000000;
	uint8_t *a = malloc(n);

	memset(a, 'a', n);
	sha1_hex(a, n, h);
	CHECK_EQ_STR(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		sha1_hex_chunked(a, n, chunks[i], h);
		CHECK_EQ_STR(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	}
	free(a);
}

/* Lengths around the padding boundary (55/56 bytes) and block edges. */
static void test_sha1_boundaries(void)
{
	static const struct { size_t n; const char *hex; } v[] = {
		{ 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a" },
		{ 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699" },
		{ 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5" },
		{ 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d" },
		{ 65, "11655326c708d70319be2610e8a57d9a5b959d3b" },
		{ 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56" },
		{ 120, "f34c1488385346a55709ba056ddd08280dd4c6d6" },
		{ 128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0" },
	};
	uint8_t a[128];
	char h[2 * SHA1_LEN + 1];

	memset(a, 'a', sizeof(a));
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		sha1_hex(a, v[i].n, h);
		CHECK_EQ_STR(h, v[i].hex);
		sha1_hex_chunked(a, v[i].n, 7, h);
		CHECK_EQ_STR(h, v[i].hex);
	}

	/* Every byte value, from an odd address (no alignment assumptions). */
	uint8_t *all = malloc(1024 + 1);
	for (size_t i = 0; i < 1024; i++)
		all[i + 1] = (uint8_t)i;
	sha1_hex(all + 1, 1024, h);
	CHECK_EQ_STR(h, "5b00669c480d5cffbdfa8bdba99561160f2d1b77");
	free(all);
}

static void test_accept_key(void)
{
	char out[WS_ACCEPT_LEN + 1];
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";    /* RFC 6455 §1.3 */

	memset(out, 'x', sizeof(out));
	ws_accept_key(key, strlen(key), out);
	CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	CHECK_EQ_INT(strlen(out), WS_ACCEPT_LEN);

	/* Only key_len bytes are used: no NUL needed. */
	char padded[64];
	snprintf(padded, sizeof(padded), "%sGARBAGE", key);
	ws_accept_key(padded, strlen(key), out);
	CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* RFC 4648 §10. */
static const struct { const char *bin, *b64, *b64url; } b64_vectors[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void check_b64(const void *bin, size_t n, const char *expect, int variant)
{
	char enc[64];
	uint8_t dec[64];
	size_t dec_len = 12345;

	CHECK(sodium_base64_encoded_len(n, variant) == strlen(expect) + 1);
	sodium_bin2base64(enc, sizeof(enc), bin, n, variant);
	CHECK_EQ_STR(enc, expect);
	CHECK_EQ_INT(sodium_base642bin(dec, sizeof(dec), expect, strlen(expect), NULL,
				       &dec_len, NULL, variant), 0);
	CHECK_EQ_INT(dec_len, n);
	CHECK(memcmp(dec, bin, n) == 0);
}

static void test_base64_rfc4648(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(b64_vectors); i++) {
		const char *bin = b64_vectors[i].bin;
		check_b64(bin, strlen(bin), b64_vectors[i].b64, sodium_base64_VARIANT_ORIGINAL);
		check_b64(bin, strlen(bin), b64_vectors[i].b64url,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
}

/* The two alphabets differ in 62/63 ('+' '/' vs '-' '_'); decoding must not
 * accept the other variant's characters or padding where it has none. */
static void test_base64_alphabets(void)
{
	static const uint8_t bin[] = { 0xfb, 0xff, 0xbf };
	uint8_t dec[16];
	size_t dec_len;

	check_b64(bin, 3, "+/+/", sodium_base64_VARIANT_ORIGINAL);
	check_b64(bin, 3, "-_-_", sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	check_b64(bin, 2, "+/8=", sodium_base64_VARIANT_ORIGINAL);
	check_b64(bin, 2, "-_8", sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	CHECK_EQ_INT(sodium_base642bin(dec, sizeof(dec), "-_-_", 4, NULL, &dec_len, NULL,
				       sodium_base64_VARIANT_ORIGINAL), -1);
	CHECK_EQ_INT(sodium_base642bin(dec, sizeof(dec), "+/+/", 4, NULL, &dec_len, NULL,
				       sodium_base64_VARIANT_URLSAFE_NO_PADDING), -1);
	CHECK_EQ_INT(sodium_base642bin(dec, sizeof(dec), "Zg==", 4, NULL, &dec_len, NULL,
				       sodium_base64_VARIANT_URLSAFE_NO_PADDING), -1);
	/* Missing padding is an error where padding is required. */
	CHECK_EQ_INT(sodium_base642bin(dec, sizeof(dec), "Zg", 2, NULL, &dec_len, NULL,
				       sodium_base64_VARIANT_ORIGINAL), -1);
	/* Characters outside the alphabet, and output that does not fit. */
	CHECK_EQ_INT(sodium_base642bin(dec, sizeof(dec), "Zm9v!", 5, NULL, &dec_len, NULL,
				       sodium_base64_VARIANT_URLSAFE_NO_PADDING), -1);
	CHECK_EQ_INT(sodium_base642bin(dec, 2, "Zm9v", 4, NULL, &dec_len, NULL,
				       sodium_base64_VARIANT_URLSAFE_NO_PADDING), -1);
}

/* randombytes and the base64 helpers expect an initialised libsodium. */
static void test_init(void)
{
	CHECK(sodium_init() >= 0);
}

TEST_MAIN("codec",
	  TEST(test_init),
	  TEST(test_sha1_fips),
	  TEST(test_sha1_million),
	  TEST(test_sha1_boundaries),
	  TEST(test_accept_key),
	  TEST(test_base64_rfc4648),
	  TEST(test_base64_alphabets))
