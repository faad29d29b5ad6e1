/* HS256 JWT minting and verification: strict base64url, a small strict
 * scanner for the flat JSON objects of the header and the claims, and
 * HMAC-SHA256 from OpenSSL compared in constant time. */
#include "jwt.h"

#include "xalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

/* Longest token accepted; anything longer is rejected unread. */
#define JWT_TOKEN_MAX 8192
/* Deepest nesting of skipped JSON values (the top object is depth 1). */
#define JWT_JSON_DEPTH	16
#define JWT_MAC_LEN	32
#define JWT_MAC_B64_LEN 43
/* Keys longer than this are nobody we know and are only skipped. */
#define JWT_KEY_MAX 16

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
	bool has_sub;
	bool has_exp;
	bool has_iat;
};

static int
jwt_claim_int(struct jwt_json *j, bool *seen, int64_t *v)
{
	if (*seen || jwt_json_int(j, v) != 0)
		return -EBADMSG;
	*seen = true;
	return 0;
}

static int
on_claim_member(struct jwt_json *j, const char *key, void *ctx)
{
	struct jwt_payload *p = ctx;
	size_t len;

	if (strcmp(key, "exp") == 0)
		return jwt_claim_int(j, &p->has_exp, &p->c.exp);
	if (strcmp(key, "iat") == 0)
		return jwt_claim_int(j, &p->has_iat, &p->c.iat);
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

/* -EBADMSG for a malformed header, -EPERM for any algorithm but HS256. */
static int
jwt_check_header(const struct jwt_parts *t, unsigned char *buf, size_t cap)
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
	return strcmp(h.alg, "HS256") == 0 ? 0 : -EPERM;
}

static int
jwt_check_sig(const char *secret, const struct jwt_parts *t)
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

/* The header is checked before the signature and the claims are parsed
 * only once the signature holds, so forged input reaches little code. */
int
jwt_verify(const char *secret, const char *token, int64_t now,
	   struct jwt_claims *out)
{
	unsigned char buf[JWT_TOKEN_MAX];
	struct jwt_payload p = { 0 };
	struct jwt_parts t;
	int rv;

	if ((rv = jwt_split(token, &t)) != 0 ||
	    (rv = jwt_check_header(&t, buf, sizeof(buf))) != 0 ||
	    (rv = jwt_check_sig(secret, &t)) != 0 ||
	    (rv = jwt_read_claims(&t, buf, sizeof(buf), &p)) != 0)
		return rv;
	if (p.c.exp <= now)
		return -EKEYEXPIRED;
	*out = p.c;
	return 0;
}

/* Also returns NULL if OpenSSL cannot compute the HMAC. */
char *
jwt_sign(const char *secret, const char *sub, int64_t now, int64_t exp)
{
	static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	unsigned char mac[JWT_MAC_LEN];
	char body[JWT_SUB_MAX + 64], text[512], sig[64];
	size_t len;
	int n;

	if (!jwt_valid_user(sub))
		return NULL;
	n = snprintf(body, sizeof(body),
		     "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}", sub,
		     (long long)now, (long long)exp);
	if (n < 0 || (size_t)n >= sizeof(body))
		return NULL;
	len = jwt_b64_encode(text, head, strlen(head));
	text[len++] = '.';
	len += jwt_b64_encode(text + len, body, (size_t)n);
	if (!jwt_hmac(secret, text, len, mac))
		return NULL;
	jwt_b64_encode(sig, mac, sizeof(mac));
	return xasprintf("%s.%s", text, sig);
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
