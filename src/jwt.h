/* jwt.h -- JSON Web Tokens (RFC 7519) with HS256 and EdDSA (Ed25519), libsodium only.
 * Every other algorithm, "none" included, is rejected. */
#ifndef HERALD_JWT_H
#define HERALD_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192

struct jwt_keys {
	const uint8_t *hs256_secret;    /* NULL: HS256 not accepted */
	size_t hs256_len;
	const uint8_t *ed25519_pk;      /* 32 bytes; NULL: EdDSA not accepted */
	const char *issuer;             /* checked when non-NULL */
	const char *audience;           /* checked when non-NULL (aud string or array) */
	int leeway;                     /* seconds of clock skew allowed */
};

struct jwt_claims {
	char *sub;                      /* NULL when absent */
	char **roles;
	size_t nroles;
	char **rooms;                   /* room globs */
	size_t nrooms;
	int64_t exp;                    /* 0 when absent */
	int64_t nbf;
	int64_t iat;
};

enum jwt_result {
	JWT_OK = 0,
	JWT_MALFORMED,      /* not three base64url parts, bad JSON, wrong claim types */
	JWT_BAD_ALG,        /* alg not HS256/EdDSA, or no key configured for it */
	JWT_BAD_SIGNATURE,
	JWT_EXPIRED,        /* exp + leeway <= now */
	JWT_NOT_YET_VALID,  /* nbf - leeway > now, or iat - leeway > now */
	JWT_BAD_ISSUER,
	JWT_BAD_AUDIENCE,
};

/* Verifies token at time now (seconds since the epoch). On JWT_OK fills out,
 * which the caller frees with jwt_claims_free. */
enum jwt_result jwt_verify(const char *token, size_t len, const struct jwt_keys *keys,
			   int64_t now, struct jwt_claims *out);
void jwt_claims_free(struct jwt_claims *c);
const char *jwt_result_str(enum jwt_result r);

/* Signs claims_json (a JSON object text) with HS256; returns a malloc'ed token. */
char *jwt_sign_hs256(const char *claims_json, const uint8_t *secret, size_t secret_len);
/* Signs with EdDSA; sk is a 64-byte libsodium Ed25519 secret key. */
char *jwt_sign_eddsa(const char *claims_json, const uint8_t sk[64]);

#endif
