/* fuzz_jwt.c -- libFuzzer target for jwt.c: arbitrary bytes as a token, with
 * both an HS256 secret and an Ed25519 key configured. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_secret[] = "fuzz-hs256-secret";
static uint8_t fuzz_pk[crypto_sign_PUBLICKEYBYTES], fuzz_sk[crypto_sign_SECRETKEYBYTES];

static void fuzz_setup(struct jwt_keys *k)
{
	static bool ready;
	uint8_t seed[crypto_sign_SEEDBYTES];

	if (!ready) {
		if (sodium_init() < 0)
			abort();
		/* A fixed seed keeps crashes reproducible. */
		memset(seed, 7, sizeof(seed));
		crypto_sign_seed_keypair(fuzz_pk, fuzz_sk, seed);
		ready = true;
	}
	memset(k, 0, sizeof(*k));
	k->hs256_secret = (const uint8_t *)fuzz_secret;
	k->hs256_len = sizeof(fuzz_secret) - 1;
	k->ed25519_pk = fuzz_pk;
	k->issuer = "fuzz-issuer";
	k->audience = "herald";
	k->leeway = 60;
}

static void fuzz_verify(const char *tok, size_t len, const struct jwt_keys *k)
{
	struct jwt_claims c;

	if (jwt_verify(tok, len, k, 1700000000, &c) == JWT_OK) {
		/* Touch what the caller would use, so ASan sees bad copies. */
		if (c.sub != NULL)
			(void)strlen(c.sub);
		for (size_t i = 0; i < c.nroles; i++)
			(void)strlen(c.roles[i]);
		for (size_t i = 0; i < c.nrooms; i++)
			(void)strlen(c.rooms[i]);
	}
	jwt_claims_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_keys k;
	char *claims, *tok;

	fuzz_setup(&k);

	/* The input as a token: structure, base64url, header, signatures. */
	fuzz_verify((const char *)data, size, &k);

	/* Random bytes almost never carry a valid signature, so also sign the
	 * input as the claims and verify that: this reaches the claim checks. */
	if (size > JWT_MAX_LEN)
		return 0;
	claims = malloc(size + 1);
	if (claims == NULL)
		return 0;
	memcpy(claims, data, size);
	claims[size] = '\0';
	tok = size > 0 && (data[0] & 1) ? jwt_sign_eddsa(claims, fuzz_sk)
					: jwt_sign_hs256(claims, (const uint8_t *)fuzz_secret,
							 sizeof(fuzz_secret) - 1);
	fuzz_verify(tok, strlen(tok), &k);
	free(tok);
	free(claims);
	return 0;
}
