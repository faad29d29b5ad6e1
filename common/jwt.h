/* JSON Web Tokens (RFC 7519, with the rules of RFC 8725) minted and
 * verified with OpenSSL. The algorithm is pinned by the key: a token
 * passes only when its "alg" is exactly the key's (HS256, RS256 or ES256),
 * so "none" and algorithm confusion (an HS256 token "signed" with an RSA
 * public key) never pass. HMACs are compared in constant time. "exp" is
 * required; "nbf" and "iat" are honoured with a leeway; "aud" and "iss"
 * are checked when the policy names them. */
#ifndef PARLEY_JWT_H
#define PARLEY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_SUB_MAX 128

struct jwt_claims {
	char sub[JWT_SUB_MAX + 1];
	int64_t exp;
	int64_t iat; /* 0 when the token has none (has_iat false) */
	bool has_iat;
};

enum jwt_alg { JWT_HS256, JWT_RS256, JWT_ES256 };

/* A key pinned to one algorithm: an HMAC secret, or an RSA (>= 2048 bits)
 * or P-256 key; a public key verifies, a private key signs and verifies.
 * Heap: jwt_key_new_* / jwt_key_free (NULL is a no-op). */
struct jwt_key;

/* An HS256 key (the secret is copied). */
struct jwt_key *jwt_key_new_hmac(const char *secret);
/* A key for alg (RS256 or ES256) from PEM text: a public key
 * (SubjectPublicKeyInfo) or a private key. NULL when the text holds no
 * such key or the key does not fit alg (an EC key for RS256, a short RSA
 * key, another curve); err (cap bytes) then says why, never the key. */
struct jwt_key *jwt_key_new_pem(enum jwt_alg alg, const char *pem, char *err,
				size_t cap);
void jwt_key_free(struct jwt_key *k);
enum jwt_alg jwt_key_alg(const struct jwt_key *k);
/* "HS256", "RS256", "ES256"; jwt_alg_parse gives -1 for anything else. */
const char *jwt_alg_name(enum jwt_alg alg);
int jwt_alg_parse(const char *name);

/* What jwt_check demands besides the signature and "exp". */
struct jwt_policy {
	const struct jwt_key *key;
	int64_t leeway_s;     /* clock skew allowed for exp, nbf and iat */
	const char *audience; /* NULL: "aud" not checked */
	const char *issuer;   /* NULL: "iss" not checked */
};

/* Verify token under policy at time now (unix seconds). On success fills
 * out and returns 0; out is left untouched on error. Errors:
 *   -EBADMSG     malformed token or claims (no "sub" or "exp" included)
 *   -EPERM       "alg" is not the key's, or the signature is wrong
 *   -EKEYEXPIRED exp + leeway <= now
 *   -EKEYREJECTED nbf or iat later than now + leeway (not yet valid)
 *   -EACCES      "aud" or "iss" missing or not the configured one
 *   -EINVAL      the policy has no key */
int jwt_check(const struct jwt_policy *policy, const char *token, int64_t now,
	      struct jwt_claims *out);

/* What jwt_mint puts in a token; strings NULL to leave the claim out. */
struct jwt_mint {
	const char *sub;
	int64_t iat;
	int64_t exp;
	int64_t nbf; /* 0: no "nbf" */
	const char *aud;
	const char *iss;
};

/* Mint a token signed with k (which must hold a secret or a private
 * key). A heap string the caller frees; NULL when sub is not a valid user
 * id, aud or iss is not a plain string of up to 256 printable ASCII
 * characters without quotes or backslashes, or OpenSSL fails. */
char *jwt_mint(const struct jwt_key *k, const struct jwt_mint *m);

/* Mint an HS256 token for sub expiring at exp (unix seconds), iat = now.
 * Returns a heap string the caller frees. Aborts only on allocation
 * failure; returns NULL when sub is empty, too long or not a valid user
 * id. */
char *jwt_sign(const char *secret, const char *sub, int64_t now, int64_t exp);

/* jwt_check with an HS256 key of secret, no leeway and no audience or
 * issuer: -EKEYEXPIRED when exp <= now. */
int jwt_verify(const char *secret, const char *token, int64_t now,
	       struct jwt_claims *out);

/* True when s is a valid user id: 1..128 bytes of [A-Za-z0-9_.@-] and no
 * ':' (room ids use it as a separator). */
bool jwt_valid_user(const char *s);

#endif
