/* HS256 JSON Web Tokens (RFC 7519) minted and verified with OpenSSL.
 * Only HS256 is accepted: "alg" must say so, "none" never passes, and the
 * signature is compared in constant time. "exp" is required. */
#ifndef PARLEY_JWT_H
#define PARLEY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_SUB_MAX 128

struct jwt_claims {
	char sub[JWT_SUB_MAX + 1];
	int64_t exp;
	int64_t iat;
};

/* Mint a token for sub expiring at exp (unix seconds), iat = now. Returns
 * a heap string the caller frees. Aborts only on allocation failure;
 * returns NULL when sub is empty, too long or not a valid user id. */
char *jwt_sign(const char *secret, const char *sub, int64_t now, int64_t exp);

/* Verify token with secret at time now (unix seconds). On success fills
 * out and returns 0. Errors: -EBADMSG malformed token or claims, -EPERM
 * wrong algorithm or bad signature, -EKEYEXPIRED expired (exp <= now).
 * out is left untouched on error. */
int jwt_verify(const char *secret, const char *token, int64_t now,
	       struct jwt_claims *out);

/* True when s is a valid user id: 1..128 bytes of [A-Za-z0-9_.@-] and no
 * ':' (room ids use it as a separator). */
bool jwt_valid_user(const char *s);

#endif
