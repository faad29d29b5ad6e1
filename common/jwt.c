/* JWT minting and verification: strict base64url, a small strict scanner
 * for the flat JSON objects of the header and the claims, HMAC-SHA256
 * compared in constant time, and RS256 / ES256 through OpenSSL's EVP. */
#include "jwt.h"

#include "xalloc.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest token accepted; anything longer is rejected unread. */
#define JWT_TOKEN_MAX 8192
/* Deepest nesting of skipped JSON values (the top object is depth 1). */
#define JWT_JSON_DEPTH	16
#define JWT_MAC_LEN	32
#define JWT_MAC_B64_LEN 43
/* Keys longer than this are nobody we know and are only skipped. */
#define JWT_KEY_MAX 16
/* Longest "aud" / "iss" string we compare (and mint). */
#define JWT_NAME_MAX 256
/* Largest signature: RSA 8192 bits. ES256's is r || s, 32 bytes each. */
#define JWT_SIG_MAX	 1024
#define JWT_ES256_LEN	 64
#define JWT_RSA_MIN_BITS 2048

struct jwt_key {
	enum jwt_alg alg;
	char *secret;	/* HS256 */
	EVP_PKEY *pkey; /* RS256, ES256 */
};

static const char jwt_b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- base64url without padding ---- */

/* Encode len bytes into dst, which holds at least 4 * (len + 2) / 3 + 1
 * bytes. Returns the characters written (dst is NUL-terminated). */
static size_t
jwt_b64_encode(char *dst, const void *src, size_t len)
{
	const unsigned char *s = src;
	size_t i, o = 0;
	unsigned long v;

	for (i = 0; i < len; i += 3) {
		v = (unsigned long)s[i] << 16;
		if (i + 1 < len)
			v |= (unsigned long)s[i + 1] << 8;
		if (i + 2 < len)
			v |= s[i + 2];
		dst[o++] = jwt_b64_chars[(v >> 18) & 63];
		dst[o++] = jwt_b64_chars[(v >> 12) & 63];
		if (i + 1 < len)
			dst[o++] = jwt_b64_chars[(v >> 6) & 63];
		if (i + 2 < len)
			dst[o++] = jwt_b64_chars[v & 63];
	}
	dst[o] = '\0';
	return o;
}

static int
jwt_b64_value(char c)
{
	const char *p = c ? strchr(jwt_b64_chars, c) : NULL;

	return p ? (int)(p - jwt_b64_chars) : -1;
}

/* Decode len characters into dst (cap bytes). Rejects padding, characters
 * outside the url alphabet, impossible lengths and non-zero leftover bits
 * (so each byte string has exactly one encoding). 0 or -EBADMSG. */
static int
jwt_b64_decode(const char *src, size_t len, unsigned char *dst, size_t cap,
	       size_t *out_len)
{
	size_t rem = len % 4, o = 0;
	unsigned long acc = 0;
	int bits = 0, v;

	if (rem == 1 || len / 4 * 3 + (rem ? rem - 1 : 0) > cap)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		if ((v = jwt_b64_value(src[i])) < 0)
			return -EBADMSG;
		acc = (acc << 6 | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dst[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (acc & ((1ul << bits) - 1))
		return -EBADMSG;
	*out_len = o;
	return 0;
}

/* ---- a strict scanner for flat JSON objects ---- */

struct jwt_json {
	const char *p;
	const char *end;
};

static int jwt_json_skip(struct jwt_json *j, int depth);

static void
jwt_json_ws(struct jwt_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
				 *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* Skip whitespace, then consume c if it comes next. */
static bool
jwt_json_eat(struct jwt_json *j, char c)
{
	jwt_json_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static bool
jwt_json_literal(struct jwt_json *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int
jwt_json_hex4(struct jwt_json *j, unsigned *out)
{
	unsigned v = 0;

	if (j->end - j->p < 4)
		return -EBADMSG;
	for (int i = 0; i < 4; i++) {
		char c = *j->p++;
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -EBADMSG;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

static size_t
jwt_utf8_put(char *buf, unsigned cp)
{
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | cp >> 6);
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | cp >> 18);
	buf[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	buf[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	buf[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A \uXXXX escape (the "\u" already read), surrogate pairs joined. \u0000
 * is refused: it would cut C strings short. */
static int
jwt_json_unicode(struct jwt_json *j, char *buf, size_t *n)
{
	unsigned cp, lo;

	if (jwt_json_hex4(j, &cp) != 0 || cp == 0 ||
	    (cp >= 0xdc00 && cp <= 0xdfff))
		return -EBADMSG;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (!jwt_json_literal(j, "\\u") || jwt_json_hex4(j, &lo) != 0 ||
		    lo < 0xdc00 || lo > 0xdfff)
			return -EBADMSG;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	*n = jwt_utf8_put(buf, cp);
	return 0;
}

/* One character of a string, escapes decoded, into buf (4 bytes). */
static int
jwt_json_char(struct jwt_json *j, char *buf, size_t *n)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;
	char c = *j->p++;

	*n = 1;
	if ((unsigned char)c < 0x20)
		return -EBADMSG;
	if (c != '\\') {
		buf[0] = c;
		return 0;
	}
	if (j->p >= j->end)
		return -EBADMSG;
	c = *j->p++;
	if (c == 'u')
		return jwt_json_unicode(j, buf, n);
	if (c == '\0' || (e = strchr(from, c)) == NULL)
		return -EBADMSG;
	buf[0] = to[e - from];
	return 0;
}

/* A string into out (cap bytes, NUL-terminated, may be NULL to skip).
 * *len is the decoded length even when it did not fit: the caller checks
 * *len < cap. */
static int
jwt_json_string(struct jwt_json *j, char *out, size_t cap, size_t *len)
{
	size_t n = 0, k;
	char buf[4];

	if (!jwt_json_eat(j, '"'))
		return -EBADMSG;
	while (j->p < j->end && *j->p != '"') {
		if (jwt_json_char(j, buf, &k) != 0)
			return -EBADMSG;
		if (out != NULL && n + k < cap)
			memcpy(out + n, buf, k);
		n += k;
	}
	if (j->p >= j->end)
		return -EBADMSG;
	j->p++;
	if (out != NULL && cap > 0)
		out[n < cap ? n : cap - 1] = '\0';
	*len = n;
	return 0;
}

static bool
jwt_is_digit(const struct jwt_json *j)
{
	return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

/* An integer in JSON syntax (no fraction, no exponent, no leading zero)
 * that fits in int64_t, INT64_MIN excluded. */
static int
jwt_json_int(struct jwt_json *j, int64_t *out)
{
	bool neg = jwt_json_eat(j, '-');
	uint64_t v = 0;

	if (!jwt_is_digit(j) || (*j->p == '0' && j->p + 1 < j->end &&
				 j->p[1] >= '0' && j->p[1] <= '9'))
		return -EBADMSG;
	while (jwt_is_digit(j)) {
		unsigned d = (unsigned)(*j->p++ - '0');

		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
		return -EBADMSG;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

static int
jwt_json_digits(struct jwt_json *j)
{
	if (!jwt_is_digit(j))
		return -EBADMSG;
	while (jwt_is_digit(j))
		j->p++;
	return 0;
}

/* Any JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
jwt_json_number_skip(struct jwt_json *j)
{
	jwt_json_eat(j, '-');
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (jwt_json_digits(j) != 0)
		return -EBADMSG;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (jwt_json_digits(j) != 0)
			return -EBADMSG;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (jwt_json_digits(j) != 0)
			return -EBADMSG;
	}
	return 0;
}

/* fn gets each member with its value still unread: it consumes the value
 * and returns 0, returns 1 to have it skipped, or returns -errno to stop. */
static int
jwt_json_member(struct jwt_json *j, int depth,
		int (*fn)(struct jwt_json *, const char *, void *), void *ctx)
{
	char key[JWT_KEY_MAX];
	size_t len;
	int rv = 1;

	if (jwt_json_string(j, key, sizeof(key), &len) != 0 ||
	    !jwt_json_eat(j, ':'))
		return -EBADMSG;
	if (len >= sizeof(key))
		key[0] = '\0';
	jwt_json_ws(j);
	if (fn != NULL)
		rv = fn(j, key, ctx);
	if (rv > 0)
		rv = jwt_json_skip(j, depth + 1);
	return rv;
}

/* An object whose members go to fn (NULL: all skipped). */
static int
jwt_json_object(struct jwt_json *j, int depth,
		int (*fn)(struct jwt_json *, const char *, void *), void *ctx)
{
	int rv;

	if (depth > JWT_JSON_DEPTH || !jwt_json_eat(j, '{'))
		return -EBADMSG;
	if (jwt_json_eat(j, '}'))
		return 0;
	do {
		if ((rv = jwt_json_member(j, depth, fn, ctx)) != 0)
			return rv;
	} while (jwt_json_eat(j, ','));
	return jwt_json_eat(j, '}') ? 0 : -EBADMSG;
}

static int
jwt_json_array_skip(struct jwt_json *j, int depth)
{
	if (depth > JWT_JSON_DEPTH || !jwt_json_eat(j, '['))
		return -EBADMSG;
	if (jwt_json_eat(j, ']'))
		return 0;
	do {
		if (jwt_json_skip(j, depth + 1) != 0)
			return -EBADMSG;
	} while (jwt_json_eat(j, ','));
	return jwt_json_eat(j, ']') ? 0 : -EBADMSG;
}

/* Skip one value of any kind, nested at most JWT_JSON_DEPTH deep. */
static int
jwt_json_skip(struct jwt_json *j, int depth)
{
	size_t len;

	jwt_json_ws(j);
	if (j->p >= j->end)
		return -EBADMSG;
	switch (*j->p) {
	case '"':
		return jwt_json_string(j, NULL, 0, &len);
	case '{':
		return jwt_json_object(j, depth, NULL, NULL);
	case '[':
		return jwt_json_array_skip(j, depth);
	case 't':
		return jwt_json_literal(j, "true") ? 0 : -EBADMSG;
	case 'f':
		return jwt_json_literal(j, "false") ? 0 : -EBADMSG;
	case 'n':
		return jwt_json_literal(j, "null") ? 0 : -EBADMSG;
	default:
		return jwt_json_number_skip(j);
	}
}

/* The whole of buf must be one object, whitespace around it allowed. */
static int
jwt_json_parse(const void *buf, size_t len,
	       int (*fn)(struct jwt_json *, const char *, void *), void *ctx)
{
	struct jwt_json j = { buf, (const char *)buf + len };
	int rv = jwt_json_object(&j, 1, fn, ctx);

	if (rv != 0)
		return rv;
	jwt_json_ws(&j);
	return j.p == j.end ? 0 : -EBADMSG;
}

/* ---- header and claims ---- */

struct jwt_header {
	char alg[16];
	bool has_alg;
	bool has_typ;
};

/* "crit" names extensions we would have to understand: refuse them. */
static int
on_header_member(struct jwt_json *j, const char *key, void *ctx)
{
	struct jwt_header *h = ctx;
	char typ[16];
	size_t len;

	if (strcmp(key, "crit") == 0)
		return -EBADMSG;
	if (strcmp(key, "alg") == 0) {
		if (h->has_alg ||
		    jwt_json_string(j, h->alg, sizeof(h->alg), &len) != 0)
			return -EBADMSG;
		if (len >= sizeof(h->alg))
			h->alg[0] = '\0'; /* too long for HS256 anyway */
		h->has_alg = true;
		return 0;
	}
	if (strcmp(key, "typ") == 0) {
		if (h->has_typ || jwt_json_string(j, typ, sizeof(typ), &len))
			return -EBADMSG;
		h->has_typ = true;
		return 0;
	}
	return 1;
}

struct jwt_payload {
	struct jwt_claims c;
	const char *want_aud; /* NULL: "aud" is only skipped */
	const char *want_iss;
	int64_t nbf;
	bool has_sub;
	bool has_exp;
	bool has_nbf;
	bool has_aud;
	bool aud_ok; /* "aud" is want_aud or an array holding it */
	bool has_iss;
	bool iss_ok;
};

static int
jwt_claim_int(struct jwt_json *j, bool *seen, int64_t *v)
{
	if (*seen || jwt_json_int(j, v) != 0)
		return -EBADMSG;
	*seen = true;
	return 0;
}

/* A string claim compared with want (NULL: compare nothing). */
static int
jwt_claim_name(struct jwt_json *j, const char *want, bool *ok)
{
	char v[JWT_NAME_MAX + 1];
	size_t len;

	if (jwt_json_string(j, v, sizeof(v), &len) != 0)
		return -EBADMSG;
	if (want != NULL && len < sizeof(v) && strcmp(v, want) == 0)
		*ok = true;
	return 0;
}

/* "aud": one string, or an array of strings (RFC 7519 4.1.3). */
static int
jwt_claim_aud(struct jwt_json *j, struct jwt_payload *p)
{
	if (p->has_aud)
		return -EBADMSG;
	p->has_aud = true;
	if (!jwt_json_eat(j, '['))
		return jwt_claim_name(j, p->want_aud, &p->aud_ok);
	if (jwt_json_eat(j, ']'))
		return 0;
	do {
		if (jwt_claim_name(j, p->want_aud, &p->aud_ok) != 0)
			return -EBADMSG;
	} while (jwt_json_eat(j, ','));
	return jwt_json_eat(j, ']') ? 0 : -EBADMSG;
}

static int
jwt_claim_iss(struct jwt_json *j, struct jwt_payload *p)
{
	if (p->has_iss)
		return -EBADMSG;
	p->has_iss = true;
	return jwt_claim_name(j, p->want_iss, &p->iss_ok);
}

static int
on_claim_member(struct jwt_json *j, const char *key, void *ctx)
{
	struct jwt_payload *p = ctx;
	size_t len;

	if (strcmp(key, "exp") == 0)
		return jwt_claim_int(j, &p->has_exp, &p->c.exp);
	if (strcmp(key, "iat") == 0)
		return jwt_claim_int(j, &p->c.has_iat, &p->c.iat);
	if (strcmp(key, "nbf") == 0)
		return jwt_claim_int(j, &p->has_nbf, &p->nbf);
	if (strcmp(key, "aud") == 0)
		return jwt_claim_aud(j, p);
	if (strcmp(key, "iss") == 0)
		return jwt_claim_iss(j, p);
	if (strcmp(key, "sub") != 0)
		return 1;
	if (p->has_sub ||
	    jwt_json_string(j, p->c.sub, sizeof(p->c.sub), &len) != 0 ||
	    len >= sizeof(p->c.sub) || !jwt_valid_user(p->c.sub))
		return -EBADMSG;
	p->has_sub = true;
	return 0;
}

/* ---- tokens ---- */

struct jwt_parts {
	const char *head, *body, *sig;
	size_t head_len, body_len, sig_len;
};

/* Exactly three dot-separated parts, the first two non-empty. */
static int
jwt_split(const char *token, struct jwt_parts *t)
{
	size_t len = strnlen(token, JWT_TOKEN_MAX + 1);
	const char *d1, *d2, *end = token + len;

	if (len > JWT_TOKEN_MAX || (d1 = memchr(token, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1))) == NULL ||
	    memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
		return -EBADMSG;
	t->head = token;
	t->head_len = (size_t)(d1 - token);
	t->body = d1 + 1;
	t->body_len = (size_t)(d2 - t->body);
	t->sig = d2 + 1;
	t->sig_len = (size_t)(end - t->sig);
	return t->head_len && t->body_len ? 0 : -EBADMSG;
}

static bool
jwt_hmac(const char *secret, const void *data, size_t len,
	 unsigned char mac[JWT_MAC_LEN])
{
	unsigned int n = 0;

	return HMAC(EVP_sha256(), secret, (int)strlen(secret), data, len, mac,
		    &n) != NULL &&
	       n == JWT_MAC_LEN;
}

/* ---- keys ---- */

const char *
jwt_alg_name(enum jwt_alg alg)
{
	return alg == JWT_RS256	  ? "RS256"
	       : alg == JWT_ES256 ? "ES256"
				  : "HS256";
}

int
jwt_alg_parse(const char *name)
{
	static const enum jwt_alg all[] = { JWT_HS256, JWT_RS256, JWT_ES256 };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(name, jwt_alg_name(all[i])) == 0)
			return (int)all[i];
	return -1;
}

enum jwt_alg
jwt_key_alg(const struct jwt_key *k)
{
	return k->alg;
}

struct jwt_key *
jwt_key_new_hmac(const char *secret)
{
	struct jwt_key *k = xcalloc(1, sizeof(*k));

	k->alg = JWT_HS256;
	k->secret = xstrdup(secret);
	return k;
}

void
jwt_key_free(struct jwt_key *k)
{
	if (k == NULL)
		return;
	if (k->secret) {
		OPENSSL_cleanse(k->secret, strlen(k->secret));
		free(k->secret);
	}
	EVP_PKEY_free(k->pkey);
	free(k);
}

/* Never prompt for a passphrase: an encrypted key simply does not load. */
static int
on_pem_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* A public key, else a private key, from PEM text. */
static EVP_PKEY *
jwt_pem_read(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k;

	if (b == NULL)
		return NULL;
	k = PEM_read_bio_PUBKEY(b, NULL, on_pem_password, NULL);
	if (k == NULL) {
		(void)BIO_reset(b);
		k = PEM_read_bio_PrivateKey(b, NULL, on_pem_password, NULL);
	}
	BIO_free(b);
	ERR_clear_error();
	return k;
}

/* NULL when pk fits alg, else why not. */
static const char *
jwt_key_misfit(enum jwt_alg alg, EVP_PKEY *pk)
{
	char group[64];
	size_t len = 0;

	if (alg == JWT_RS256) {
		if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)
			return "RS256 needs an RSA key";
		if (EVP_PKEY_get_bits(pk) < JWT_RSA_MIN_BITS)
			return "RS256 needs an RSA key of at least 2048 bits";
		return NULL;
	}
	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC)
		return "ES256 needs an EC key";
	if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &len) != 1 ||
	    strcmp(group, "prime256v1") != 0)
		return "ES256 needs a P-256 (prime256v1) key";
	return NULL;
}

struct jwt_key *
jwt_key_new_pem(enum jwt_alg alg, const char *pem, char *err, size_t cap)
{
	EVP_PKEY *pk;
	const char *why;
	struct jwt_key *k;

	if (alg == JWT_HS256) {
		snprintf(err, cap, "HS256 takes a secret, not a PEM key");
		return NULL;
	}
	if ((pk = jwt_pem_read(pem)) == NULL) {
		snprintf(err, cap, "no PEM public or private key found");
		return NULL;
	}
	if ((why = jwt_key_misfit(alg, pk)) != NULL) {
		snprintf(err, cap, "%s", why);
		EVP_PKEY_free(pk);
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->alg = alg;
	k->pkey = pk;
	return k;
}

/* ---- signatures ---- */

/* The JWS ES256 signature (r || s, 32 bytes each) as DER for OpenSSL.
 * Returns the DER length, 0 on failure; *der is freed with OPENSSL_free. */
static size_t
jwt_es_to_der(const unsigned char *raw, unsigned char **der)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL),
	       *s = BN_bin2bn(raw + 32, 32, NULL);
	int n = 0;

	if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
		r = s = NULL; /* owned by sig now */
		*der = NULL;
		n = i2d_ECDSA_SIG(sig, der);
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return n > 0 ? (size_t)n : 0;
}

/* DER from OpenSSL to r || s. 0 or -EIO. */
static int
jwt_der_to_es(const unsigned char *der, size_t len,
	      unsigned char raw[JWT_ES256_LEN])
{
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)len);
	const BIGNUM *r, *s;
	int rv = -EIO;

	if (sig == NULL)
		return -EIO;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) == 32 &&
	    BN_bn2binpad(s, raw + 32, 32) == 32)
		rv = 0;
	ECDSA_SIG_free(sig);
	return rv;
}

/* EVP verification of an RS256 or ES256 signature (DER for ES256). */
static bool
jwt_evp_verify(EVP_PKEY *pk, const unsigned char *sig, size_t sig_len,
	       const void *data, size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok =
		ctx != NULL &&
		EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
		EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;

	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static int
jwt_check_hmac_sig(const char *secret, const struct jwt_parts *t)
{
	unsigned char want[JWT_MAC_LEN], got[JWT_MAC_LEN];
	size_t len;

	/* 43 characters are exactly 32 bytes; other lengths cannot match. */
	if (t->sig_len != JWT_MAC_B64_LEN)
		return -EPERM;
	if (jwt_b64_decode(t->sig, t->sig_len, got, sizeof(got), &len) != 0)
		return -EBADMSG;
	if (!jwt_hmac(secret, t->head, (size_t)(t->sig - 1 - t->head), want))
		return -EPERM;
	return CRYPTO_memcmp(want, got, JWT_MAC_LEN) == 0 ? 0 : -EPERM;
}

/* Public-key signatures are checked by OpenSSL: nothing secret to leak by
 * timing, so no constant-time comparison of ours is involved. */
static int
jwt_check_pk_sig(const struct jwt_key *k, const struct jwt_parts *t)
{
	unsigned char sig[JWT_SIG_MAX], *der = NULL;
	size_t len, data_len = (size_t)(t->sig - 1 - t->head);
	bool ok;

	if (jwt_b64_decode(t->sig, t->sig_len, sig, sizeof(sig), &len) != 0)
		return -EBADMSG;
	if (k->alg == JWT_RS256)
		return jwt_evp_verify(k->pkey, sig, len, t->head, data_len)
			       ? 0
			       : -EPERM;
	if (len != JWT_ES256_LEN || (len = jwt_es_to_der(sig, &der)) == 0)
		return -EPERM;
	ok = jwt_evp_verify(k->pkey, der, len, t->head, data_len);
	OPENSSL_free(der);
	return ok ? 0 : -EPERM;
}

static int
jwt_check_sig(const struct jwt_key *k, const struct jwt_parts *t)
{
	if (k->alg == JWT_HS256)
		return jwt_check_hmac_sig(k->secret, t);
	return jwt_check_pk_sig(k, t);
}

/* -EBADMSG for a malformed header, -EPERM for any algorithm but the
 * key's: the token never chooses how it is verified (RFC 8725 3.1). */
static int
jwt_check_header(const struct jwt_parts *t, enum jwt_alg alg,
		 unsigned char *buf, size_t cap)
{
	struct jwt_header h = { 0 };
	size_t len;
	int rv;

	if (jwt_b64_decode(t->head, t->head_len, buf, cap, &len) != 0)
		return -EBADMSG;
	if ((rv = jwt_json_parse(buf, len, on_header_member, &h)) != 0)
		return rv;
	if (!h.has_alg)
		return -EBADMSG;
	return strcmp(h.alg, jwt_alg_name(alg)) == 0 ? 0 : -EPERM;
}

static int
jwt_read_claims(const struct jwt_parts *t, unsigned char *buf, size_t cap,
		struct jwt_payload *p)
{
	size_t len;
	int rv;

	if (jwt_b64_decode(t->body, t->body_len, buf, cap, &len) != 0)
		return -EBADMSG;
	if ((rv = jwt_json_parse(buf, len, on_claim_member, p)) != 0)
		return rv;
	return p->has_sub && p->has_exp ? 0 : -EBADMSG;
}

/* Times, then audience and issuer, of claims whose signature held. */
static int
jwt_check_claims(const struct jwt_policy *pol, const struct jwt_payload *p,
		 int64_t now)
{
	int64_t lw = pol->leeway_s;

	if (p->c.exp <= now - lw)
		return -EKEYEXPIRED;
	if ((p->has_nbf && p->nbf > now + lw) ||
	    (p->c.has_iat && p->c.iat > now + lw))
		return -EKEYREJECTED;
	if (pol->audience && !p->aud_ok)
		return -EACCES;
	if (pol->issuer && !p->iss_ok)
		return -EACCES;
	return 0;
}

/* The header is checked before the signature and the claims are parsed
 * only once the signature holds, so forged input reaches little code. */
int
jwt_check(const struct jwt_policy *pol, const char *token, int64_t now,
	  struct jwt_claims *out)
{
	unsigned char buf[JWT_TOKEN_MAX];
	struct jwt_payload p = { 0 };
	struct jwt_parts t;
	int rv;

	if (pol->key == NULL)
		return -EINVAL;
	p.want_aud = pol->audience;
	p.want_iss = pol->issuer;
	if ((rv = jwt_split(token, &t)) != 0 ||
	    (rv = jwt_check_header(&t, pol->key->alg, buf, sizeof(buf))) != 0 ||
	    (rv = jwt_check_sig(pol->key, &t)) != 0 ||
	    (rv = jwt_read_claims(&t, buf, sizeof(buf), &p)) != 0 ||
	    (rv = jwt_check_claims(pol, &p, now)) != 0)
		return rv;
	*out = p.c;
	return 0;
}

int
jwt_verify(const char *secret, const char *token, int64_t now,
	   struct jwt_claims *out)
{
	struct jwt_key k = { JWT_HS256, (char *)secret, NULL };
	struct jwt_policy pol = { &k, 0, NULL, NULL };

	return jwt_check(&pol, token, now, out);
}

/* ---- minting ---- */

/* aud and iss are minted verbatim inside quotes: plain ASCII only. */
static bool
jwt_plain_name(const char *s)
{
	size_t n = strnlen(s, JWT_NAME_MAX + 1);

	if (n == 0 || n > JWT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* The claims as JSON into a heap string; NULL on a bad field. */
static char *
jwt_mint_body(const struct jwt_mint *m)
{
	char nbf[40] = "", aud[JWT_NAME_MAX + 16] = "",
	     iss[JWT_NAME_MAX + 16] = "";

	if (!jwt_valid_user(m->sub) || (m->aud && !jwt_plain_name(m->aud)) ||
	    (m->iss && !jwt_plain_name(m->iss)))
		return NULL;
	if (m->nbf)
		snprintf(nbf, sizeof(nbf), ",\"nbf\":%lld", (long long)m->nbf);
	if (m->aud)
		snprintf(aud, sizeof(aud), ",\"aud\":\"%s\"", m->aud);
	if (m->iss)
		snprintf(iss, sizeof(iss), ",\"iss\":\"%s\"", m->iss);
	return xasprintf("{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld%s%s%s}",
			 m->sub, (long long)m->iat, (long long)m->exp, nbf, aud,
			 iss);
}

/* An RS256 or ES256 signature (JWS form) of data into sig. */
static int
jwt_pk_sign(EVP_PKEY *pk, enum jwt_alg alg, const char *data, size_t len,
	    unsigned char *sig, size_t *sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char der[JWT_SIG_MAX];
	size_t n = sizeof(der);
	int rv = -EIO;

	if (ctx != NULL &&
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
	    EVP_DigestSign(ctx, der, &n, (const unsigned char *)data, len) ==
		    1) {
		rv = 0;
		if (alg == JWT_ES256) {
			rv = jwt_der_to_es(der, n, sig);
			n = JWT_ES256_LEN;
		} else {
			memcpy(sig, der, n);
		}
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (rv == 0)
		*sig_len = n;
	return rv;
}

/* The signature of data under k, base64url-encoded into out (heap). */
static char *
jwt_sign_text(const struct jwt_key *k, const char *data, size_t len)
{
	unsigned char sig[JWT_SIG_MAX];
	size_t n = JWT_MAC_LEN;
	char *out;

	if (k->alg == JWT_HS256) {
		if (!jwt_hmac(k->secret, data, len, sig))
			return NULL;
	} else if (jwt_pk_sign(k->pkey, k->alg, data, len, sig, &n) != 0) {
		return NULL;
	}
	out = xmalloc(4 * (n + 2) / 3 + 1);
	jwt_b64_encode(out, sig, n);
	return out;
}

char *
jwt_mint(const struct jwt_key *k, const struct jwt_mint *m)
{
	char head[64], *body = jwt_mint_body(m), *text, *sig, *tok = NULL;
	size_t len, hl, bl;

	if (body == NULL)
		return NULL;
	hl = (size_t)snprintf(head, sizeof(head),
			      "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
			      jwt_alg_name(k->alg));
	bl = strlen(body);
	text = xmalloc(4 * (hl + bl + 4) / 3 + 8);
	len = jwt_b64_encode(text, head, hl);
	text[len++] = '.';
	len += jwt_b64_encode(text + len, body, bl);
	if ((sig = jwt_sign_text(k, text, len)) != NULL)
		tok = xasprintf("%s.%s", text, sig);
	free(sig);
	free(text);
	free(body);
	return tok;
}

/* Also returns NULL if OpenSSL cannot compute the HMAC. */
char *
jwt_sign(const char *secret, const char *sub, int64_t now, int64_t exp)
{
	struct jwt_key k = { JWT_HS256, (char *)secret, NULL };
	struct jwt_mint m = { sub, now, exp, 0, NULL, NULL };

	return jwt_mint(&k, &m);
}

bool
jwt_valid_user(const char *s)
{
	size_t n = strnlen(s, JWT_SUB_MAX + 1);

	if (n == 0 || n > JWT_SUB_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '@' || c == '-'))
			return false;
	}
	return true;
}
