/* jwt.c -- JSON Web Tokens: HS256 and EdDSA signatures through libsodium,
 * header and claims through jansson. Anything else is rejected. */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "jwt.h"
#include "log.h"
#include "util.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* Claim times are clamped to +-2^62 seconds so that adding or subtracting
 * the leeway can never overflow; no meaningful date is anywhere near. */
#define JWT_TIME_LIMIT ((int64_t)1 << 62)

enum jwt_alg { JWT_ALG_HS256, JWT_ALG_EDDSA };

static const char jwt_header_hs256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char jwt_header_eddsa[] = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";

/* libsodium wants sodium_init() before use; the daemon calls it at start-up,
 * but tests, tools and fuzzers reach this module directly. */
static void jwt_sodium_init(void)
{
	static bool done;

	if (done)
		return;
	if (sodium_init() < 0)
		fatal("event=sodium_init_failed");
	done = true;
}

/* ---------------------------------------------------------------- helpers */

/* Decodes one base64url part. Fails unless every byte of s is consumed: this
 * rejects padding, whitespace and any byte outside the URL-safe alphabet, and
 * libsodium itself rejects non-canonical trailing bits. */
static int jwt_b64_decode(const char *s, size_t n, uint8_t *out, size_t outlen,
			  size_t *got)
{
	const char *end = NULL;

	if (n == 0)
		return -1;
	if (sodium_base642bin(out, outlen, s, n, NULL, got, &end, B64URL) != 0)
		return -1;
	return end == s + n ? 0 : -1;
}

/* Appends n bytes of p to dst as base64url without padding; returns the
 * number of characters written (dst is NUL-terminated after them). */
static size_t jwt_b64_append(char *dst, size_t room, const void *p, size_t n)
{
	sodium_bin2base64(dst, room, p, n, B64URL);
	return strlen(dst);
}

static void jwt_hmac(const uint8_t *key, size_t keylen, const void *msg, size_t len,
		     uint8_t mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;

	/* The _init/_update/_final API takes keys of any length, unlike
	 * crypto_auth_hmacsha256() which wants exactly 32 bytes. */
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, msg, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

static int64_t jwt_clamp_time(int64_t t)
{
	return t > JWT_TIME_LIMIT ? JWT_TIME_LIMIT : t < -JWT_TIME_LIMIT ? -JWT_TIME_LIMIT : t;
}

/* Reads the optional NumericDate claim name (integer or real seconds).
 * Returns 1 and sets *out when present, 0 when absent, -1 when not a number. */
static int jwt_claim_time(const json_t *payload, const char *name, int64_t *out)
{
	const json_t *v = json_object_get(payload, name);

	*out = 0;
	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		*out = jwt_clamp_time(json_integer_value(v));
	} else if (json_is_real(v)) {
		/* Clamp before converting: casting an out-of-range double to an
		 * integer is undefined. jansson never yields NaN or infinity. */
		double d = json_real_value(v);
		if (d >= (double)JWT_TIME_LIMIT)
			*out = JWT_TIME_LIMIT;
		else if (d <= -(double)JWT_TIME_LIMIT)
			*out = -JWT_TIME_LIMIT;
		else
			*out = (int64_t)d;
	} else {
		return -1;
	}
	return 1;
}

/* True when v is absent or an array whose elements are all strings. */
static bool jwt_string_array_ok(const json_t *v)
{
	size_t i;
	json_t *e;

	if (v == NULL)
		return true;
	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e))
			return false;
	}
	return true;
}

/* Copies an array of strings already checked by jwt_string_array_ok. */
static void jwt_string_array_copy(const json_t *v, char ***out, size_t *n)
{
	size_t i;
	json_t *e;

	*out = NULL;
	*n = 0;
	if (v == NULL || json_array_size(v) == 0)
		return;
	*out = xcalloc(json_array_size(v), sizeof(char *));
	json_array_foreach(v, i, e)
		(*out)[i] = xstrndup(json_string_value(e), json_string_length(e));
	*n = json_array_size(v);
}

/* True when aud (a string or an array of strings) names want. */
static bool jwt_aud_contains(const json_t *aud, const char *want)
{
	size_t i;
	json_t *e;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, e) {
		if (json_is_string(e) && strcmp(json_string_value(e), want) == 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------- verify */

/* Reads the header's alg and checks that a key is configured for it. */
static enum jwt_result jwt_check_header(const json_t *hdr, const struct jwt_keys *keys,
					enum jwt_alg *alg)
{
	const json_t *a = json_object_get(hdr, "alg");
	const char *s;

	if (!json_is_string(a))
		return JWT_BAD_ALG;
	s = json_string_value(a);
	/* An empty HS256 secret would let anyone mint tokens: it counts as none. */
	if (strcmp(s, "HS256") == 0 && keys->hs256_secret != NULL && keys->hs256_len > 0)
		*alg = JWT_ALG_HS256;
	else if (strcmp(s, "EdDSA") == 0 && keys->ed25519_pk != NULL)
		*alg = JWT_ALG_EDDSA;
	else
		return JWT_BAD_ALG;
	/* RFC 7515 4.1.11: extensions listed in crit must be understood, and
	 * we understand none. */
	if (json_object_get(hdr, "crit") != NULL)
		return JWT_MALFORMED;
	return JWT_OK;
}

static enum jwt_result jwt_check_signature(enum jwt_alg alg, const struct jwt_keys *keys,
					   const char *input, size_t inlen,
					   const uint8_t *sig, size_t siglen)
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	int rc;

	if (alg == JWT_ALG_HS256) {
		if (siglen != sizeof(mac))
			return JWT_BAD_SIGNATURE;
		jwt_hmac(keys->hs256_secret, keys->hs256_len, input, inlen, mac);
		rc = sodium_memcmp(mac, sig, sizeof(mac));
		sodium_memzero(mac, sizeof(mac));
		return rc == 0 ? JWT_OK : JWT_BAD_SIGNATURE;
	}
	if (siglen != crypto_sign_BYTES)
		return JWT_BAD_SIGNATURE;
	rc = crypto_sign_verify_detached(sig, (const unsigned char *)input, inlen,
					 keys->ed25519_pk);
	return rc == 0 ? JWT_OK : JWT_BAD_SIGNATURE;
}

/* Checks the claims of a verified payload and, on JWT_OK, copies them to out. */
static enum jwt_result jwt_check_claims(const json_t *pl, const struct jwt_keys *keys,
					int64_t now, struct jwt_claims *out)
{
	const json_t *sub = json_object_get(pl, "sub");
	const json_t *roles = json_object_get(pl, "roles");
	const json_t *rooms = json_object_get(pl, "rooms");
	int64_t exp, nbf, iat;
	int has_exp, has_nbf, has_iat;
	int64_t leeway = keys->leeway > 0 ? keys->leeway : 0;

	has_exp = jwt_claim_time(pl, "exp", &exp);
	has_nbf = jwt_claim_time(pl, "nbf", &nbf);
	has_iat = jwt_claim_time(pl, "iat", &iat);
	if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
		return JWT_MALFORMED;
	if (sub != NULL && !json_is_string(sub))
		return JWT_MALFORMED;
	if (!jwt_string_array_ok(roles) || !jwt_string_array_ok(rooms))
		return JWT_MALFORMED;

	now = jwt_clamp_time(now);
	if (has_exp && exp + leeway <= now)
		return JWT_EXPIRED;
	if (has_nbf && nbf - leeway > now)
		return JWT_NOT_YET_VALID;
	if (has_iat && iat - leeway > now)
		return JWT_NOT_YET_VALID;

	if (keys->issuer != NULL) {
		const json_t *iss = json_object_get(pl, "iss");
		if (!json_is_string(iss) || strcmp(json_string_value(iss), keys->issuer) != 0)
			return JWT_BAD_ISSUER;
	}
	if (keys->audience != NULL &&
	    !jwt_aud_contains(json_object_get(pl, "aud"), keys->audience))
		return JWT_BAD_AUDIENCE;

	if (out != NULL) {
		/* jansson rejects \u0000 in strings, so C strings lose nothing. */
		if (sub != NULL)
			out->sub = xstrndup(json_string_value(sub), json_string_length(sub));
		jwt_string_array_copy(roles, &out->roles, &out->nroles);
		jwt_string_array_copy(rooms, &out->rooms, &out->nrooms);
		out->exp = exp;
		out->nbf = nbf;
		out->iat = iat;
	}
	return JWT_OK;
}

/* Order matters: structure, header and signature are checked before the
 * payload is even parsed, so no claim of an unauthenticated token is used. */
enum jwt_result jwt_verify(const char *token, size_t len, const struct jwt_keys *keys,
			   int64_t now, struct jwt_claims *out)
{
	const char *dot1, *dot2, *end;
	uint8_t *bin = NULL, *hbin, *pbin, *sbin;
	size_t hlen, plen, slen, left;
	json_t *hdr = NULL, *pl = NULL;
	enum jwt_alg alg = JWT_ALG_HS256;
	enum jwt_result r = JWT_MALFORMED;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (token == NULL || keys == NULL || len == 0 || len > JWT_MAX_LEN)
		return JWT_MALFORMED;
	jwt_sodium_init();

	/* Exactly three parts: two dots. Empty parts fail to decode below. */
	end = token + len;
	if ((dot1 = memchr(token, '.', len)) == NULL)
		return JWT_MALFORMED;
	if ((dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1))) == NULL)
		return JWT_MALFORMED;
	if (memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
		return JWT_MALFORMED;

	/* The three decoded parts together are shorter than the token. */
	bin = xmalloc(len);
	hbin = bin;
	if (jwt_b64_decode(token, (size_t)(dot1 - token), hbin, len, &hlen) < 0)
		goto fail;
	pbin = hbin + hlen;
	left = len - hlen;
	if (jwt_b64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), pbin, left, &plen) < 0)
		goto fail;
	sbin = pbin + plen;
	left -= plen;
	if (jwt_b64_decode(dot2 + 1, (size_t)(end - dot2 - 1), sbin, left, &slen) < 0)
		goto fail;

	hdr = json_loadb((const char *)hbin, hlen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(hdr))
		goto fail;
	if ((r = jwt_check_header(hdr, keys, &alg)) != JWT_OK)
		goto fail;
	r = jwt_check_signature(alg, keys, token, (size_t)(dot2 - token), sbin, slen);
	if (r != JWT_OK)
		goto fail;

	pl = json_loadb((const char *)pbin, plen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(pl)) {
		r = JWT_MALFORMED;
		goto fail;
	}
	r = jwt_check_claims(pl, keys, now, out);

fail:
	json_decref(hdr);
	json_decref(pl);
	free(bin);
	return r;
}

void jwt_claims_free(struct jwt_claims *c)
{
	if (c == NULL)
		return;
	free(c->sub);
	for (size_t i = 0; i < c->nroles; i++)
		free(c->roles[i]);
	free(c->roles);
	for (size_t i = 0; i < c->nrooms; i++)
		free(c->rooms[i]);
	free(c->rooms);
	memset(c, 0, sizeof(*c));
}

const char *jwt_result_str(enum jwt_result r)
{
	switch (r) {
	case JWT_OK:            return "ok";
	case JWT_MALFORMED:     return "malformed";
	case JWT_BAD_ALG:       return "bad_alg";
	case JWT_BAD_SIGNATURE: return "bad_signature";
	case JWT_EXPIRED:       return "expired";
	case JWT_NOT_YET_VALID: return "not_yet_valid";
	case JWT_BAD_ISSUER:    return "bad_issuer";
	case JWT_BAD_AUDIENCE:  return "bad_audience";
	}
	return "unknown";
}

/* ---------------------------------------------------------------- sign */

/* Builds header.claims.signature; key is the HS256 secret or the 64-byte
 * Ed25519 secret key. */
static char *jwt_sign(enum jwt_alg alg, const char *claims_json,
		      const uint8_t *key, size_t keylen)
{
	const char *header = alg == JWT_ALG_HS256 ? jwt_header_hs256 : jwt_header_eddsa;
	size_t hlen = strlen(header), clen = strlen(claims_json);
	uint8_t sig[crypto_sign_BYTES];
	size_t siglen, cap, n;
	char *tok;

	/* Each encoded length counts a NUL, which leaves room for the dots. */
	cap = sodium_base64_encoded_len(hlen, B64URL) +
	      sodium_base64_encoded_len(clen, B64URL) +
	      sodium_base64_encoded_len(sizeof(sig), B64URL);
	tok = xmalloc(cap);
	n = jwt_b64_append(tok, cap, header, hlen);
	tok[n++] = '.';
	n += jwt_b64_append(tok + n, cap - n, claims_json, clen);

	if (alg == JWT_ALG_HS256) {
		jwt_hmac(key, keylen, tok, n, sig);
		siglen = crypto_auth_hmacsha256_BYTES;
	} else {
		unsigned long long sl;
		crypto_sign_detached(sig, &sl, (const unsigned char *)tok, n, key);
		siglen = (size_t)sl;
	}
	tok[n++] = '.';
	jwt_b64_append(tok + n, cap - n, sig, siglen);
	sodium_memzero(sig, sizeof(sig));
	return tok;
}

char *jwt_sign_hs256(const char *claims_json, const uint8_t *secret, size_t secret_len)
{
	jwt_sodium_init();
	return jwt_sign(JWT_ALG_HS256, claims_json, secret, secret_len);
}

char *jwt_sign_eddsa(const char *claims_json, const uint8_t sk[64])
{
	jwt_sodium_init();
	return jwt_sign(JWT_ALG_EDDSA, claims_json, sk, crypto_sign_SECRETKEYBYTES);
}
