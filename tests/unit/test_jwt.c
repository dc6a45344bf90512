/* test_jwt.c -- unit tests for jwt.c: signatures, algorithm confusion,
 * time and issuer/audience claims, malformed tokens, claim extraction. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "jwt.h"
#include "test.h"

#define NOW ((int64_t)1700000000)

static const char secret[] = "s3cret-key-for-unit-tests-0123456789";
static uint8_t ed_pk[crypto_sign_PUBLICKEYBYTES], ed_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t other_pk[crypto_sign_PUBLICKEYBYTES], other_sk[crypto_sign_SECRETKEYBYTES];

/* ---------------------------------------------------------------- helpers */

static struct jwt_keys hs_keys(void)
{
	struct jwt_keys k = { 0 };
	k.hs256_secret = (const uint8_t *)secret;
	k.hs256_len = strlen(secret);
	return k;
}

static struct jwt_keys both_keys(void)
{
	struct jwt_keys k = hs_keys();
	k.ed25519_pk = ed_pk;
	return k;
}

static char *b64url(const void *p, size_t n)
{
	size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(cap);
	sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

/* header.payload (both JSON texts, encoded here) plus a raw signature part. */
static char *assemble(const char *header, const char *payload, const char *sig_part)
{
	char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
	size_t cap = strlen(h) + strlen(p) + strlen(sig_part) + 3;
	char *t = malloc(cap);
	snprintf(t, cap, "%s.%s.%s", h, p, sig_part);
	free(h);
	free(p);
	return t;
}

/* A token with any header, correctly signed with HMAC-SHA256 under key. */
static char *hmac_token(const char *header, const char *payload, const char *key)
{
	char *t = assemble(header, payload, "");
	size_t n = strlen(t) - 1;      /* without the trailing dot */
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *sig, *out;

	crypto_auth_hmacsha256_init(&st, (const uint8_t *)key, strlen(key));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)t, n);
	crypto_auth_hmacsha256_final(&st, mac);
	sig = b64url(mac, sizeof(mac));
	out = malloc(n + strlen(sig) + 2);
	memcpy(out, t, n);
	out[n] = '.';
	strcpy(out + n + 1, sig);
	free(sig);
	free(t);
	return out;
}

static char *hs(const char *payload)
{
	return jwt_sign_hs256(payload, (const uint8_t *)secret, strlen(secret));
}

static enum jwt_result verify(const char *tok, const struct jwt_keys *k)
{
	struct jwt_claims c;
	enum jwt_result r = jwt_verify(tok, strlen(tok), k, NOW, &c);
	jwt_claims_free(&c);
	return r;
}

/* Verifies payload signed with HS256 under the test secret. */
static enum jwt_result verify_hs(const char *payload, const struct jwt_keys *k)
{
	char *t = hs(payload);
	enum jwt_result r = verify(t, k);
	free(t);
	return r;
}

/* Returns the part'th part (0..2) of tok. */
static char *part(const char *tok, int n)
{
	const char *s = tok, *e;
	while (n-- > 0)
		s = strchr(s, '.') + 1;
	e = strchr(s, '.');
	return e ? strndup(s, (size_t)(e - s)) : strdup(s);
}

/* ---------------------------------------------------------------- tests */

static void test_hs256_valid(void)
{
	struct jwt_keys k = hs_keys();
	struct jwt_claims c;
	char *t = hs("{\"sub\":\"alice\",\"exp\":1700000060}");

	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, &c), JWT_OK);
	CHECK_EQ_STR(c.sub, "alice");
	CHECK_EQ_INT(c.exp, 1700000060);
	CHECK_EQ_INT(c.nroles, 0);
	CHECK(c.roles == NULL);
	jwt_claims_free(&c);
	/* The header is exactly the one the contract promises. */
	CHECK_EQ_INT(strncmp(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
	/* out may be NULL when only validity matters. */
	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, NULL), JWT_OK);
	/* Tokens without any claim are fine (exp is optional). */
	CHECK_EQ_INT(verify_hs("{}", &k), JWT_OK);
	free(t);
}

static void test_known_vector(void)
{
	/* The jwt.io HS256 example; it has no exp, so it verifies forever. */
	static const char tok[] =
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
		".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
		".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
	static const char key[] = "your-256-bit-secret";
	struct jwt_keys k = { 0 };
	struct jwt_claims c;
	char *mine;

	k.hs256_secret = (const uint8_t *)key;
	k.hs256_len = strlen(key);
	CHECK_EQ_INT(jwt_verify(tok, strlen(tok), &k, NOW, &c), JWT_OK);
	CHECK_EQ_STR(c.sub, "1234567890");
	CHECK_EQ_INT(c.iat, 1516239022);
	CHECK_EQ_INT(c.exp, 0);
	jwt_claims_free(&c);

	/* Signing the same claims reproduces the vector byte for byte. */
	mine = jwt_sign_hs256("{\"sub\":\"1234567890\",\"name\":\"John Doe\",\"iat\":1516239022}",
			      (const uint8_t *)key, strlen(key));
	CHECK_EQ_STR(mine, tok);
	free(mine);

	k.hs256_secret = (const uint8_t *)"your-256-bit-secreT";
	CHECK_EQ_INT(verify(tok, &k), JWT_BAD_SIGNATURE);
}

static void test_tampered(void)
{
	struct jwt_keys k = hs_keys();
	char *t = hs("{\"sub\":\"alice\",\"roles\":[\"user\"]}");
	char *evil = hs("{\"sub\":\"alice\",\"roles\":[\"admin\"]}");
	char *h = part(t, 0), *sig = part(t, 2), *evil_p = part(evil, 1);
	char *mixed = malloc(strlen(t) + strlen(evil) + 3);
	char *dot;

	/* A payload from another token with this token's signature. */
	sprintf(mixed, "%s.%s.%s", h, evil_p, sig);
	CHECK_EQ_INT(verify(mixed, &k), JWT_BAD_SIGNATURE);

	/* One changed payload character. */
	strcpy(mixed, t);
	dot = strchr(mixed, '.');
	dot[3] = dot[3] == 'A' ? 'B' : 'A';
	CHECK_EQ_INT(verify(mixed, &k), JWT_BAD_SIGNATURE);

	/* One changed signature character (the first: every bit of it counts). */
	strcpy(mixed, t);
	dot = strrchr(mixed, '.');
	dot[1] = dot[1] == 'A' ? 'B' : 'A';
	CHECK_EQ_INT(verify(mixed, &k), JWT_BAD_SIGNATURE);

	/* A truncated signature: still base64url, wrong length. */
	strcpy(mixed, t);
	mixed[strlen(mixed) - 4] = '\0';
	CHECK_EQ_INT(verify(mixed, &k), JWT_BAD_SIGNATURE);

	/* The changed claims verify on their own, of course. */
	CHECK_EQ_INT(verify(evil, &k), JWT_OK);

	free(t);
	free(evil);
	free(h);
	free(sig);
	free(evil_p);
	free(mixed);
}

static void test_wrong_key(void)
{
	struct jwt_keys k = hs_keys();
	char *t = jwt_sign_hs256("{\"sub\":\"alice\"}", (const uint8_t *)"other", 5);

	CHECK_EQ_INT(verify(t, &k), JWT_BAD_SIGNATURE);
	/* A secret that is a prefix of the right one is still wrong. */
	k.hs256_len--;
	free(t);
	t = hs("{\"sub\":\"alice\"}");
	CHECK_EQ_INT(verify(t, &k), JWT_BAD_SIGNATURE);
	free(t);
}

static void test_alg_none(void)
{
	struct jwt_keys k = both_keys();
	char *t;

	/* The classic unsigned token has an empty third part: not even well formed. */
	t = assemble("{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}", "");
	CHECK_EQ_INT(verify(t, &k), JWT_MALFORMED);
	free(t);
	/* With a signature attached, the algorithm is what gets it rejected. */
	t = hmac_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_BAD_ALG);
	free(t);
	t = hmac_token("{\"alg\":\"None\"}", "{\"sub\":\"admin\"}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_BAD_ALG);
	free(t);
	t = hmac_token("{\"alg\":\"\"}", "{\"sub\":\"admin\"}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_BAD_ALG);
	free(t);
}

static void test_other_algs(void)
{
	struct jwt_keys k = both_keys();
	uint8_t rsa_sig[256];
	char *sig, *t;

	/* RS256 with a signature of the right size for RSA-2048. */
	randombytes_buf(rsa_sig, sizeof(rsa_sig));
	sig = b64url(rsa_sig, sizeof(rsa_sig));
	t = assemble("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"sub\":\"alice\"}", sig);
	CHECK_EQ_INT(verify(t, &k), JWT_BAD_ALG);
	free(t);
	free(sig);

	/* HS512, and near misses of the accepted names, each carrying a valid
	 * HMAC-SHA256 signature: only the exact alg string may select HS256. */
	static const char *const headers[] = {
		"{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
		"{\"alg\":\"HS384\"}",
		"{\"alg\":\"hs256\"}",
		"{\"alg\":\"HS256 \"}",
		"{\"alg\":\"ES256\"}",
		"{\"alg\":\"eddsa\"}",
		"{\"alg\":\"Ed25519\"}",
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		t = hmac_token(headers[i], "{\"sub\":\"alice\"}", secret);
		CHECK_EQ_INT(verify(t, &k), JWT_BAD_ALG);
		free(t);
	}
}

static void test_missing_alg(void)
{
	struct jwt_keys k = both_keys();
	static const char *const headers[] = {
		"{\"typ\":\"JWT\"}",
		"{}",
		"{\"alg\":null}",
		"{\"alg\":256}",
		"{\"alg\":[\"HS256\"]}",
	};

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char *t = hmac_token(headers[i], "{\"sub\":\"alice\"}", secret);
		CHECK_EQ_INT(verify(t, &k), JWT_BAD_ALG);
		free(t);
	}
}

static void test_header_extras(void)
{
	struct jwt_keys k = hs_keys();
	char *t;

	/* Unknown header fields are fine... */
	t = hmac_token("{\"alg\":\"HS256\",\"kid\":\"k1\"}", "{}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_OK);
	free(t);
	/* ...but extensions marked critical are not understood. */
	t = hmac_token("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_MALFORMED);
	free(t);
	/* Duplicate keys could make two parsers disagree on the alg. */
	t = hmac_token("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_MALFORMED);
	free(t);
	t = hmac_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"admin\"}", secret);
	CHECK_EQ_INT(verify(t, &k), JWT_MALFORMED);
	free(t);
}

static void test_expiry(void)
{
	struct jwt_keys k = hs_keys();

	CHECK_EQ_INT(verify_hs("{\"exp\":1699999990}", &k), JWT_EXPIRED);
	CHECK_EQ_INT(verify_hs("{\"exp\":1700000000}", &k), JWT_EXPIRED);   /* exp == now */
	CHECK_EQ_INT(verify_hs("{\"exp\":1700000001}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"exp\":0}", &k), JWT_EXPIRED);

	k.leeway = 30;
	CHECK_EQ_INT(verify_hs("{\"exp\":1699999990}", &k), JWT_OK);        /* within leeway */
	CHECK_EQ_INT(verify_hs("{\"exp\":1699999971}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"exp\":1699999970}", &k), JWT_EXPIRED);   /* exp + leeway == now */

	/* A negative leeway is no leeway. */
	k.leeway = -100;
	CHECK_EQ_INT(verify_hs("{\"exp\":1700000001}", &k), JWT_OK);
}

static void test_not_yet_valid(void)
{
	struct jwt_keys k = hs_keys();

	CHECK_EQ_INT(verify_hs("{\"nbf\":1700000100}", &k), JWT_NOT_YET_VALID);
	CHECK_EQ_INT(verify_hs("{\"nbf\":1700000000}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iat\":1700000100}", &k), JWT_NOT_YET_VALID);
	CHECK_EQ_INT(verify_hs("{\"iat\":1700000000}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iat\":1600000000,\"nbf\":1600000000,\"exp\":1800000000}", &k),
		     JWT_OK);

	k.leeway = 100;
	CHECK_EQ_INT(verify_hs("{\"nbf\":1700000100}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"nbf\":1700000101}", &k), JWT_NOT_YET_VALID);
	CHECK_EQ_INT(verify_hs("{\"iat\":1700000100}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iat\":1700000101}", &k), JWT_NOT_YET_VALID);
}

static void test_time_types(void)
{
	struct jwt_keys k = hs_keys();
	struct jwt_claims c;
	char *t;

	/* Reals are NumericDates too. */
	t = hs("{\"exp\":1700000060.5,\"iat\":1699999999.9}");
	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, &c), JWT_OK);
	CHECK_EQ_INT(c.exp, 1700000060);
	CHECK_EQ_INT(c.iat, 1699999999);
	jwt_claims_free(&c);
	free(t);
	CHECK_EQ_INT(verify_hs("{\"exp\":1.6e9}", &k), JWT_EXPIRED);

	/* Extremes neither overflow nor wrap around. */
	CHECK_EQ_INT(verify_hs("{\"exp\":9223372036854775807}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"exp\":-9223372036854775808}", &k), JWT_EXPIRED);
	CHECK_EQ_INT(verify_hs("{\"exp\":1e300}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"exp\":-1e300}", &k), JWT_EXPIRED);
	CHECK_EQ_INT(verify_hs("{\"nbf\":9223372036854775807}", &k), JWT_NOT_YET_VALID);
	CHECK_EQ_INT(verify_hs("{\"nbf\":-9223372036854775808}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iat\":1e300}", &k), JWT_NOT_YET_VALID);
	k.leeway = 2147483647;
	CHECK_EQ_INT(verify_hs("{\"exp\":9223372036854775807}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"nbf\":-9223372036854775808}", &k), JWT_OK);
	k.leeway = 0;
	/* Integers beyond 64 bits are not valid JSON numbers for jansson. */
	CHECK_EQ_INT(verify_hs("{\"exp\":99999999999999999999}", &k), JWT_MALFORMED);

	CHECK_EQ_INT(verify_hs("{\"exp\":\"1800000000\"}", &k), JWT_MALFORMED);
	CHECK_EQ_INT(verify_hs("{\"exp\":true}", &k), JWT_MALFORMED);
	CHECK_EQ_INT(verify_hs("{\"exp\":null}", &k), JWT_MALFORMED);
	CHECK_EQ_INT(verify_hs("{\"nbf\":[1]}", &k), JWT_MALFORMED);
	CHECK_EQ_INT(verify_hs("{\"iat\":{}}", &k), JWT_MALFORMED);
}

static void test_issuer(void)
{
	struct jwt_keys k = hs_keys();

	/* Not configured: any iss, or none, is accepted. */
	CHECK_EQ_INT(verify_hs("{\"iss\":\"anyone\"}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iss\":42}", &k), JWT_OK);

	k.issuer = "https://auth.example.com";
	CHECK_EQ_INT(verify_hs("{\"iss\":\"https://auth.example.com\"}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iss\":\"https://evil.example.com\"}", &k), JWT_BAD_ISSUER);
	CHECK_EQ_INT(verify_hs("{\"iss\":\"https://auth.example.com/\"}", &k), JWT_BAD_ISSUER);
	CHECK_EQ_INT(verify_hs("{\"iss\":\"https://auth.example.co\"}", &k), JWT_BAD_ISSUER);
	CHECK_EQ_INT(verify_hs("{\"sub\":\"alice\"}", &k), JWT_BAD_ISSUER);
	CHECK_EQ_INT(verify_hs("{\"iss\":[\"https://auth.example.com\"]}", &k), JWT_BAD_ISSUER);
	CHECK_EQ_INT(verify_hs("{\"iss\":null}", &k), JWT_BAD_ISSUER);
}

static void test_audience(void)
{
	struct jwt_keys k = hs_keys();

	CHECK_EQ_INT(verify_hs("{\"aud\":\"something-else\"}", &k), JWT_OK);

	k.audience = "herald";
	CHECK_EQ_INT(verify_hs("{\"aud\":\"herald\"}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"aud\":[\"billing\",\"herald\"]}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"aud\":[\"herald\"]}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"aud\":[1,\"herald\"]}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"aud\":\"heraldx\"}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"aud\":\"Herald\"}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"aud\":[\"billing\",\"shop\"]}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"aud\":[]}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"aud\":[[\"herald\"]]}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"aud\":{\"herald\":true}}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"sub\":\"alice\"}", &k), JWT_BAD_AUDIENCE);

	/* Both configured: both checked. */
	k.issuer = "idp";
	CHECK_EQ_INT(verify_hs("{\"iss\":\"idp\",\"aud\":[\"herald\"]}", &k), JWT_OK);
	CHECK_EQ_INT(verify_hs("{\"iss\":\"idp\",\"aud\":\"x\"}", &k), JWT_BAD_AUDIENCE);
	CHECK_EQ_INT(verify_hs("{\"iss\":\"x\",\"aud\":\"herald\"}", &k), JWT_BAD_ISSUER);
}

static void test_eddsa(void)
{
	struct jwt_keys k = { 0 };
	struct jwt_claims c;
	char *t = jwt_sign_eddsa("{\"sub\":\"carol\",\"rooms\":[\"race:*\"]}", ed_sk);
	char *tampered;

	CHECK_EQ_INT(strncmp(t, "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.", 37), 0);
	k.ed25519_pk = ed_pk;
	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, &c), JWT_OK);
	CHECK_EQ_STR(c.sub, "carol");
	CHECK_EQ_INT(c.nrooms, 1);
	if (c.nrooms == 1)
		CHECK_EQ_STR(c.rooms[0], "race:*");
	jwt_claims_free(&c);

	/* Another key pair's public key. */
	k.ed25519_pk = other_pk;
	CHECK_EQ_INT(verify(t, &k), JWT_BAD_SIGNATURE);
	k.ed25519_pk = ed_pk;

	/* A token signed by the other key pair. */
	tampered = jwt_sign_eddsa("{\"sub\":\"carol\",\"rooms\":[\"race:*\"]}", other_sk);
	CHECK_EQ_INT(verify(tampered, &k), JWT_BAD_SIGNATURE);
	free(tampered);

	/* One changed signature character. */
	tampered = strdup(t);
	{
		char *dot = strrchr(tampered, '.');
		dot[1] = dot[1] == 'A' ? 'B' : 'A';
	}
	CHECK_EQ_INT(verify(tampered, &k), JWT_BAD_SIGNATURE);
	free(tampered);

	/* A signature of the wrong length (an HS256-sized one). */
	{
		uint8_t short_sig[32] = { 1 };
		char *z = b64url(short_sig, sizeof(short_sig));
		tampered = assemble("{\"alg\":\"EdDSA\"}", "{\"sub\":\"carol\"}", z);
		CHECK_EQ_INT(verify(tampered, &k), JWT_BAD_SIGNATURE);
		free(tampered);
		free(z);
	}

	/* An all-zero signature must not pass either. */
	{
		uint8_t zero[crypto_sign_BYTES] = { 0 };
		char *z = b64url(zero, sizeof(zero));
		tampered = assemble("{\"alg\":\"EdDSA\"}", "{\"sub\":\"carol\"}", z);
		CHECK_EQ_INT(verify(tampered, &k), JWT_BAD_SIGNATURE);
		free(tampered);
		free(z);
	}

	/* A secret being configured for HS256 changes nothing for EdDSA. */
	k = both_keys();
	CHECK_EQ_INT(verify(t, &k), JWT_OK);
	free(t);
}

static void test_alg_key_mismatch(void)
{
	struct jwt_keys k;
	char *ed = jwt_sign_eddsa("{\"sub\":\"carol\"}", ed_sk);
	char *h = hs("{\"sub\":\"carol\"}");

	/* EdDSA token, only an HS256 secret configured. */
	k = hs_keys();
	CHECK_EQ_INT(verify(ed, &k), JWT_BAD_ALG);

	/* HS256 token, only an Ed25519 key configured: the public key must never
	 * be usable as an HMAC secret. */
	memset(&k, 0, sizeof(k));
	k.ed25519_pk = ed_pk;
	CHECK_EQ_INT(verify(h, &k), JWT_BAD_ALG);
	{
		char *conf = jwt_sign_hs256("{\"sub\":\"carol\"}", ed_pk, sizeof(ed_pk));
		CHECK_EQ_INT(verify(conf, &k), JWT_BAD_ALG);
		free(conf);
	}

	/* No key at all; an empty HS256 secret counts as none. */
	memset(&k, 0, sizeof(k));
	CHECK_EQ_INT(verify(ed, &k), JWT_BAD_ALG);
	CHECK_EQ_INT(verify(h, &k), JWT_BAD_ALG);
	k.hs256_secret = (const uint8_t *)"";
	k.hs256_len = 0;
	{
		char *empty = jwt_sign_hs256("{\"sub\":\"carol\"}", (const uint8_t *)"", 0);
		CHECK_EQ_INT(verify(empty, &k), JWT_BAD_ALG);
		free(empty);
	}
	free(ed);
	free(h);
}

static void test_malformed_structure(void)
{
	struct jwt_keys k = both_keys();
	char *t = hs("{\"sub\":\"alice\"}");
	char *h = part(t, 0), *p = part(t, 1), *s = part(t, 2);
	char buf[1024];
	struct jwt_claims c;

	CHECK_EQ_INT(verify(t, &k), JWT_OK);

#define MAL(...) do { \
		snprintf(buf, sizeof(buf), __VA_ARGS__); \
		CHECK_EQ_INT(verify(buf, &k), JWT_MALFORMED); \
	} while (0)
	MAL("%s.%s", h, p);                     /* two parts */
	MAL("%s.%s.%s.%s", h, p, s, s);         /* four parts */
	MAL("%s.%s.%s.", h, p, s);              /* trailing dot */
	MAL(".%s.%s", p, s);                    /* empty header */
	MAL("%s..%s", h, s);                    /* empty payload */
	MAL("%s.%s.", h, p);                    /* empty signature */
	MAL("..");
	MAL(".");
	MAL("%s", "");
	MAL("%s", "not a token");
	MAL("%s.%s=.%s", h, p, s);              /* padding */
	MAL("%s.%s.%s=", h, p, s);
	MAL("%s==.%s.%s", h, p, s);
	MAL(" %s.%s.%s", h, p, s);              /* whitespace */
	MAL("%s.%s.%s ", h, p, s);
	MAL("%s.%s.%s\n", h, p, s);
	MAL("%s. %s.%s", h, p, s);
	MAL("%s.%s.%s", h, "eyJzdWIiOi+hbGljZSJ9", s);  /* standard, not URL-safe, alphabet */
	MAL("%s.%s.%s", h, "eyJzdWIiOi/hbGljZSJ9", s);
	MAL("%s.%s.%s", h, "eyJzdWIiOi*hbGljZSJ9", s);  /* not base64 at all */
	MAL("%s.%sA.%s", h, p, s);              /* impossible length (4n+1) */
	MAL("%s.%s.%s%%", h, p, s);
#undef MAL

	/* A base64url string with non-zero unused trailing bits is not canonical:
	 * the 43-character HS256 signature carries 2 spare bits. */
	{
		size_t n;
		snprintf(buf, sizeof(buf), "%s.%s.%s", h, p, s);
		n = strlen(buf);
		CHECK_EQ_INT(strlen(s), 43);
		buf[n - 1] = (char)(buf[n - 1] ^ 1);
		CHECK_EQ_INT(jwt_verify(buf, n, &k, NOW, NULL), JWT_MALFORMED);
	}

	/* An embedded NUL, counted in len. */
	snprintf(buf, sizeof(buf), "%s.%s.%s", h, p, s);
	CHECK_EQ_INT(jwt_verify(buf, strlen(buf) + 1, &k, NOW, NULL), JWT_MALFORMED);
	/* len shorter than the string: the token is cut, so the signature is wrong. */
	CHECK(jwt_verify(buf, strlen(buf) - 1, &k, NOW, NULL) != JWT_OK);

	/* Degenerate arguments. */
	CHECK_EQ_INT(jwt_verify(NULL, 0, &k, NOW, NULL), JWT_MALFORMED);
	CHECK_EQ_INT(jwt_verify(buf, 0, &k, NOW, NULL), JWT_MALFORMED);
	CHECK_EQ_INT(jwt_verify(buf, strlen(buf), NULL, NOW, NULL), JWT_MALFORMED);

	/* out is zeroed on failure, so freeing it is always safe. */
	memset(&c, 0xa5, sizeof(c));
	CHECK_EQ_INT(jwt_verify("x.y", 3, &k, NOW, &c), JWT_MALFORMED);
	CHECK(c.sub == NULL && c.roles == NULL && c.rooms == NULL && c.nroles == 0);
	jwt_claims_free(&c);

	free(t);
	free(h);
	free(p);
	free(s);
}

static void test_too_long(void)
{
	struct jwt_keys k = hs_keys();
	size_t n = JWT_MAX_LEN;
	char *payload = malloc(n + 32), *t;

	/* A correctly signed token just over the limit. */
	strcpy(payload, "{\"pad\":\"");
	memset(payload + 8, 'x', n);
	strcpy(payload + 8 + n * 3 / 4 - 40, "\"}");
	t = hs(payload);
	CHECK(strlen(t) > JWT_MAX_LEN);
	CHECK_EQ_INT(verify(t, &k), JWT_MALFORMED);
	free(t);

	/* A somewhat shorter one is fine. */
	strcpy(payload + 8 + n * 3 / 4 - 300, "\"}");
	t = hs(payload);
	CHECK(strlen(t) <= JWT_MAX_LEN);
	CHECK_EQ_INT(verify(t, &k), JWT_OK);
	free(t);
	free(payload);
}

static void test_malformed_json(void)
{
	struct jwt_keys k = hs_keys();
	char *t;

	/* Header not JSON, not an object. */
	static const char *const headers[] = {
		"not json", "[\"HS256\"]", "\"HS256\"", "42", "null",
		"{\"alg\":\"HS256\"", "{\"alg\":\"HS256\"} trailing",
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		t = hmac_token(headers[i], "{\"sub\":\"alice\"}", secret);
		CHECK_EQ_INT(verify(t, &k), JWT_MALFORMED);
		free(t);
	}

	/* Payload signed correctly but not a JSON object. */
	static const char *const payloads[] = {
		"not json", "[]", "\"alice\"", "1", "{\"sub\":\"alice\"", "{\"sub\":\"a\\u0000b\"}",
	};
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
		CHECK_EQ_INT(verify_hs(payloads[i], &k), JWT_MALFORMED);
}

static void test_malformed_claims(void)
{
	struct jwt_keys k = hs_keys();
	static const char *const payloads[] = {
		"{\"sub\":42}",
		"{\"sub\":null}",
		"{\"sub\":[\"alice\"]}",
		"{\"sub\":true}",
		"{\"roles\":\"admin\"}",
		"{\"roles\":[\"admin\",1]}",
		"{\"roles\":[[\"admin\"]]}",
		"{\"roles\":{\"admin\":true}}",
		"{\"roles\":null}",
		"{\"rooms\":\"market:*\"}",
		"{\"rooms\":[\"market:*\",null]}",
		"{\"rooms\":42}",
	};

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
		CHECK_EQ_INT(verify_hs(payloads[i], &k), JWT_MALFORMED);
	/* Empty arrays and unknown claims are fine. */
	CHECK_EQ_INT(verify_hs("{\"roles\":[],\"rooms\":[],\"extra\":{\"a\":[1,2]}}", &k), JWT_OK);
}

static void test_claims(void)
{
	struct jwt_keys k = hs_keys();
	struct jwt_claims c;
	char *t = hs("{\"sub\":\"bob\",\"exp\":1700003600,\"nbf\":1699999000,\"iat\":1699998000,"
		     "\"roles\":[\"admin\",\"ops\"],\"rooms\":[\"market:*\",\"race:42\",\"\"],"
		     "\"name\":\"Bob \\u00e9\"}");

	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, &c), JWT_OK);
	CHECK_EQ_STR(c.sub, "bob");
	CHECK_EQ_INT(c.exp, 1700003600);
	CHECK_EQ_INT(c.nbf, 1699999000);
	CHECK_EQ_INT(c.iat, 1699998000);
	CHECK_EQ_INT(c.nroles, 2);
	if (c.nroles == 2) {
		CHECK_EQ_STR(c.roles[0], "admin");
		CHECK_EQ_STR(c.roles[1], "ops");
	}
	CHECK_EQ_INT(c.nrooms, 3);
	if (c.nrooms == 3) {
		CHECK_EQ_STR(c.rooms[0], "market:*");
		CHECK_EQ_STR(c.rooms[1], "race:42");
		CHECK_EQ_STR(c.rooms[2], "");
	}
	jwt_claims_free(&c);
	CHECK(c.sub == NULL && c.roles == NULL && c.rooms == NULL);
	CHECK_EQ_INT(c.nroles + c.nrooms, 0);
	CHECK_EQ_INT(c.exp, 0);
	jwt_claims_free(&c);    /* twice is harmless */
	jwt_claims_free(NULL);
	free(t);

	/* No sub: an authenticated token without a user. */
	t = hs("{\"roles\":[\"svc\"]}");
	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, &c), JWT_OK);
	CHECK(c.sub == NULL);
	CHECK_EQ_INT(c.nroles, 1);
	CHECK_EQ_INT(c.exp, 0);
	jwt_claims_free(&c);
	free(t);

	/* Unicode in sub survives as UTF-8. */
	t = hs("{\"sub\":\"j\\u00fcrgen\"}");
	CHECK_EQ_INT(jwt_verify(t, strlen(t), &k, NOW, &c), JWT_OK);
	CHECK_EQ_STR(c.sub, "j\xc3\xbcrgen");
	jwt_claims_free(&c);
	free(t);
}

static void test_result_str(void)
{
	CHECK_EQ_STR(jwt_result_str(JWT_OK), "ok");
	CHECK_EQ_STR(jwt_result_str(JWT_MALFORMED), "malformed");
	CHECK_EQ_STR(jwt_result_str(JWT_BAD_ALG), "bad_alg");
	CHECK_EQ_STR(jwt_result_str(JWT_BAD_SIGNATURE), "bad_signature");
	CHECK_EQ_STR(jwt_result_str(JWT_EXPIRED), "expired");
	CHECK_EQ_STR(jwt_result_str(JWT_NOT_YET_VALID), "not_yet_valid");
	CHECK_EQ_STR(jwt_result_str(JWT_BAD_ISSUER), "bad_issuer");
	CHECK_EQ_STR(jwt_result_str(JWT_BAD_AUDIENCE), "bad_audience");
	CHECK_EQ_STR(jwt_result_str((enum jwt_result)99), "unknown");
}

static void test_setup(void)
{
	CHECK(sodium_init() >= 0);
	crypto_sign_keypair(ed_pk, ed_sk);
	crypto_sign_keypair(other_pk, other_sk);
}

TEST_MAIN("jwt",
	TEST(test_setup),
	TEST(test_hs256_valid),
	TEST(test_known_vector),
	TEST(test_tampered),
	TEST(test_wrong_key),
	TEST(test_alg_none),
	TEST(test_other_algs),
	TEST(test_missing_alg),
	TEST(test_header_extras),
	TEST(test_expiry),
	TEST(test_not_yet_valid),
	TEST(test_time_types),
	TEST(test_issuer),
	TEST(test_audience),
	TEST(test_eddsa),
	TEST(test_alg_key_mismatch),
	TEST(test_malformed_structure),
	TEST(test_too_long),
	TEST(test_malformed_json),
	TEST(test_malformed_claims),
	TEST(test_claims),
	TEST(test_result_str))
