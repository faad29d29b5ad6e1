/* libFuzzer target: tokens (common/jwt.c). The first byte picks what the
 * rest is: 0, the claims JSON of a token whose header and HS256 signature
 * are right (so the claims parser is reached); 1, the header JSON of a
 * token with good claims and signature; anything else, a whole token. A
 * token that verifies names a valid user and has not expired. */
#include <assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "jwt.h"

#define FUZZ_SECRET "fuzz-secret-0123456789-0123456789"
#define FUZZ_NOW    1700000000

/* base64url without padding of n bytes into out (4n/3 + 4 bytes). */
static size_t
fuzz_b64url(const uint8_t *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

	while (len > 0 && out[len - 1] == '=')
		len--;
	for (int i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	out[len] = '\0';
	return (size_t)len;
}

/* header.claims.signature, signed with FUZZ_SECRET; the caller frees. */
static char *
fuzz_token(const uint8_t *hdr, size_t nh, const uint8_t *claims, size_t nc)
{
	char *t = malloc(2 * (nh + nc) + 128);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	size_t n;

	if (t == NULL)
		abort();
	n = fuzz_b64url(hdr, nh, t);
	t[n++] = '.';
	n += fuzz_b64url(claims, nc, t + n);
	HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET),
	     (unsigned char *)t, n, mac, &mlen);
	t[n++] = '.';
	fuzz_b64url(mac, mlen, t + n);
	return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	static const char claims[] = "{\"sub\":\"alice\",\"exp\":1900000000}";
	struct jwt_claims c;
	char *tok;
	int rc;

	if (size == 0 || size > 16384)
		return 0;
	if (data[0] == 0)
		tok = fuzz_token((const uint8_t *)hdr, sizeof(hdr) - 1,
				 data + 1, size - 1);
	else if (data[0] == 1)
		tok = fuzz_token(data + 1, size - 1, (const uint8_t *)claims,
				 sizeof(claims) - 1);
	else
		tok = fuzz_cstr(data, size);
	rc = jwt_verify(FUZZ_SECRET, tok, FUZZ_NOW, &c);
	/* The errors jwt_check documents (no audience or issuer is set, so
	 * -EACCES cannot come). */
	assert(rc == 0 || rc == -EBADMSG || rc == -EPERM ||
	       rc == -EKEYEXPIRED || rc == -EKEYREJECTED);
	if (rc == 0)
		assert(jwt_valid_user(c.sub) && c.exp > FUZZ_NOW);
	free(tok);
	return 0;
}
