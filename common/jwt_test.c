/* Unit tests for jwt.c: base64url, the JSON scanner, and token checks
 * against vectors computed outside parley (Python's hmac and hashlib). */
#include "jwt.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

#include <stdlib.h>

#define SECRET "parley-test-secret-0123456789abcdef"
#define NOW    1800000000
#define EXP    1900000000

/* Python: header {"alg":"HS256","typ":"JWT"}, payload
 * {"sub":"alice","iat":1700000000,"exp":1900000000}, key SECRET. */
static const char vector_alice[] =
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxOTAwMDAwMDAwfQ."
	"89Z-p_NVZLWLNT0ySJFK8qTmL3XeghD_Q5hkVG8KwZg";

/* Python: header { "typ" : "JWT", "alg" : "HS256" }, payload
 * {"exp":1900000000, "sub":"bo\u0062", "nested":{"a":[1,2.5e3,{"b":null}],
 * "c":true}, "iat":-5}, key SECRET. */
static const char vector_nested[] =
	"eyAidHlwIiA6ICJKV1QiLCAiYWxnIiA6ICJIUzI1NiIgfQ."
	"eyJleHAiOjE5MDAwMDAwMDAsICJzdWIiOiJib1x1MDA2MiIsICJuZXN0ZWQiOnsiYSI6Wz"
	"EsMi41ZTMseyJiIjpudWxsfV0sImMiOnRydWV9LCAiaWF0IjotNX0."
	"JEwTSuzKSkSx0gmJpqR_68o0KV72W7XDGk7_KESJHac";

/* The example token of jwt.io (key "your-256-bit-secret"): a valid
 * signature over claims that have no "exp". */
static const char vector_jwtio[] =
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MD"
	"IyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/* A token over arbitrary header and payload JSON, signed with secret. */
static char *
make_token(const char *secret, const char *head, const char *body)
{
	size_t hl = strlen(head), bl = strlen(body), len;
	char *t = xmalloc(4 * (hl + bl) / 3 + 64);
	unsigned char mac[JWT_MAC_LEN];

	len = jwt_b64_encode(t, head, hl);
	t[len++] = '.';
	len += jwt_b64_encode(t + len, body, bl);
	if (!jwt_hmac(secret, t, len, mac))
		abort();
	t[len++] = '.';
	jwt_b64_encode(t + len, mac, sizeof(mac));
	return t;
}

static const char std_head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verify a token made from body with the standard header. */
static int
verify_body(const char *body, struct jwt_claims *c)
{
	char *t = make_token(SECRET, std_head, body);
	int rv = jwt_verify(SECRET, t, NOW, c);

	free(t);
	return rv;
}

static int
verify_head(const char *head)
{
	char *t = make_token(SECRET, head,
			     "{\"sub\":\"alice\",\"exp\":1900000000}");
	struct jwt_claims c;
	int rv = jwt_verify(SECRET, t, NOW, &c);

	free(t);
	return rv;
}

static void
test_b64_round_trip(void)
{
	const unsigned char in[] = { 0x00, 0xff, 0xfb, 0xef, 0x10, 0x7e, 0x3f };
	unsigned char out[16];
	char enc[16];
	size_t n, len;

	for (n = 0; n <= sizeof(in); n++) {
		len = jwt_b64_encode(enc, in, n);
		CHECK_EQ_INT(len, (4 * n + 2) / 3);
		CHECK_EQ_INT(jwt_b64_decode(enc, len, out, sizeof(out), &len),
			     0);
		CHECK_EQ_INT(len, n);
		CHECK(memcmp(in, out, n) == 0);
	}
	jwt_b64_encode(enc, "\xfb\xff", 2);
	CHECK_EQ_STR(enc, "-_8");
	jwt_b64_encode(enc, "hello", 5);
	CHECK_EQ_STR(enc, "aGVsbG8");
}

static void
test_b64_rejects(void)
{
	unsigned char out[16];
	size_t len = 99;

	CHECK_EQ_INT(jwt_b64_decode("aGVsbG8=", 8, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(jwt_b64_decode("aGV+bG8", 7, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(jwt_b64_decode("aGV/bG8", 7, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(jwt_b64_decode("aGV bG8", 7, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(jwt_b64_decode("aGV\0bG8", 7, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(jwt_b64_decode("aGVsb", 5, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(jwt_b64_decode("aGVsA", 5, out, 16, &len), -EBADMSG);
	/* "QQ" is the canonical "A"; "QR" leaves a set bit behind. */
	CHECK_EQ_INT(jwt_b64_decode("QR", 2, out, 16, &len), -EBADMSG);
	CHECK_EQ_INT(len, 99);
	CHECK_EQ_INT(jwt_b64_decode("QQ", 2, out, 16, &len), 0);
	CHECK_EQ_INT(len, 1);
	CHECK_EQ_INT(out[0], 'A');
	CHECK_EQ_INT(jwt_b64_decode("aGVsbG8", 7, out, 4, &len), -EBADMSG);
}

static int
json_string_of(const char *in, char *out, size_t cap, size_t *len)
{
	struct jwt_json j = { in, in + strlen(in) };
	int rv = jwt_json_string(&j, out, cap, len);

	return rv == 0 && j.p != j.end ? -EBADMSG : rv;
}

static void
test_json_strings(void)
{
	char out[32] = "";
	size_t len = 0;

	CHECK_EQ_INT(json_string_of("\"a\\\"b\\\\c\\/\\n\\t\"", out, 32, &len),
		     0);
	CHECK_EQ_STR(out, "a\"b\\c/\n\t");
	CHECK_EQ_INT(json_string_of("\"\\u00e9\\u20ac\"", out, 32, &len), 0);
	CHECK_EQ_STR(out, "\xc3\xa9\xe2\x82\xac");
	CHECK_EQ_INT(json_string_of("\"\\ud83d\\ude00\"", out, 32, &len), 0);
	CHECK_EQ_STR(out, "\xf0\x9f\x98\x80");
	CHECK_EQ_INT(json_string_of("\"\\ud83d\"", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"\\ude00\"", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"\\u0000\"", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"\\u12G4\"", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"\\x\"", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"a\nb\"", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"abc", out, 32, &len), -EBADMSG);
	CHECK_EQ_INT(json_string_of("\"abc\\", out, 32, &len), -EBADMSG);
	/* Too long for the buffer: reported by length, still terminated. */
	CHECK_EQ_INT(json_string_of("\"abcdefgh\"", out, 4, &len), 0);
	CHECK_EQ_INT(len, 8);
	CHECK(strlen(out) < 4);
}

static int
json_int_of(const char *in, int64_t *v)
{
	struct jwt_json j = { in, in + strlen(in) };
	int rv = jwt_json_int(&j, v);

	return rv == 0 && j.p != j.end ? -EBADMSG : rv;
}

static void
test_json_ints(void)
{
	int64_t v = 0;

	CHECK_EQ_INT(json_int_of("0", &v), 0);
	CHECK_EQ_INT(v, 0);
	CHECK_EQ_INT(json_int_of("-42", &v), 0);
	CHECK_EQ_INT(v, -42);
	CHECK_EQ_INT(json_int_of("9223372036854775807", &v), 0);
	CHECK_EQ_INT(v, INT64_MAX);
	CHECK_EQ_INT(json_int_of("9223372036854775808", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("99999999999999999999", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("012", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("1.5", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("1e3", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("-", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("\"5\"", &v), -EBADMSG);
	CHECK_EQ_INT(json_int_of("+5", &v), -EBADMSG);
}

static int
json_skip_of(const char *in)
{
	return jwt_json_parse(in, strlen(in), NULL, NULL);
}

static void
test_json_skip(void)
{
	char deep[128] = "{\"a\":", ok[128] = "{\"a\":";
	int i;

	CHECK_EQ_INT(json_skip_of("{}"), 0);
	CHECK_EQ_INT(json_skip_of(" { \"a\" : [ 1 , -2.5E+3 , 0.1e-2 , "
				  "true , false , null , \"x\" , { } , [ ] ] "
				  "} \n"),
		     0);
	CHECK_EQ_INT(json_skip_of("{\"a\":1,}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\":[1,]}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\":01}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\":1.}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\":tru}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\" 1}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{a:1}"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\":1} x"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("[1]"), -EBADMSG);
	CHECK_EQ_INT(json_skip_of("{\"a\":1"), -EBADMSG);
	/* The top object is depth 1: 15 arrays inside it fit, 16 do not. */
	for (i = 0; i < 15; i++)
		strcat(ok, "[");
	for (i = 0; i < 15; i++)
		strcat(ok, "]");
	strcat(ok, "}");
	CHECK_EQ_INT(json_skip_of(ok), 0);
	for (i = 0; i < 16; i++)
		strcat(deep, "[");
	for (i = 0; i < 16; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	CHECK_EQ_INT(json_skip_of(deep), -EBADMSG);
}

static void
test_known_vector(void)
{
	struct jwt_claims c;
	char *t;

	memset(&c, 0, sizeof(c));
	CHECK_EQ_INT(jwt_verify(SECRET, vector_alice, NOW, &c), 0);
	CHECK_EQ_STR(c.sub, "alice");
	CHECK_EQ_INT(c.exp, 1900000000);
	CHECK_EQ_INT(c.iat, 1700000000);
	/* Minting the same claims gives the very same bytes. */
	t = jwt_sign(SECRET, "alice", 1700000000, 1900000000);
	CHECK_EQ_STR(t, vector_alice);
	free(t);
}

static void
test_nested_vector(void)
{
	struct jwt_claims c;

	memset(&c, 0, sizeof(c));
	CHECK_EQ_INT(jwt_verify(SECRET, vector_nested, NOW, &c), 0);
	CHECK_EQ_STR(c.sub, "bob");
	CHECK_EQ_INT(c.exp, 1900000000);
	CHECK_EQ_INT(c.iat, -5);
}

static void
test_jwtio_vector_has_no_exp(void)
{
	struct jwt_parts t = { 0 };
	struct jwt_claims c;

	CHECK_EQ_INT(jwt_split(vector_jwtio, &t), 0);
	CHECK_EQ_INT(jwt_check_hmac_sig("your-256-bit-secret", &t), 0);
	CHECK_EQ_INT(jwt_check_hmac_sig(SECRET, &t), -EPERM);
	CHECK_EQ_INT(jwt_verify("your-256-bit-secret", vector_jwtio, NOW, &c),
		     -EBADMSG);
}

static void
test_round_trip(void)
{
	struct jwt_claims c = { .exp = 0 };
	char *t = jwt_sign(SECRET, "carol.x@example-1_2", 1000, 2000);

	CHECK(t != NULL);
	CHECK_EQ_INT(jwt_verify(SECRET, t, 1999, &c), 0);
	CHECK_EQ_STR(c.sub, "carol.x@example-1_2");
	CHECK_EQ_INT(c.exp, 2000);
	CHECK_EQ_INT(c.iat, 1000);
	free(t);
}

static void
test_tampered_payload(void)
{
	struct jwt_claims c;
	char *good = jwt_sign(SECRET, "alice", NOW, EXP);
	char *forged = make_token("other", std_head,
				  "{\"sub\":\"admin\",\"exp\":1900000000}");
	char *mixed;

	/* admin's claims under alice's signature. */
	mixed = xasprintf("%.*s%s", (int)(strrchr(forged, '.') - forged),
			  forged, strrchr(good, '.'));
	CHECK_EQ_INT(jwt_verify(SECRET, mixed, NOW, &c), -EPERM);
	/* One changed character of the payload. */
	good[40] = good[40] == 'A' ? 'B' : 'A';
	CHECK_EQ_INT(jwt_verify(SECRET, good, NOW, &c), -EPERM);
	free(good);
	free(forged);
	free(mixed);
}

static void
test_tampered_signature(void)
{
	struct jwt_claims c;
	char *t = jwt_sign(SECRET, "alice", NOW, EXP);
	char *last = t + strlen(t) - 2;

	*last = *last == 'A' ? 'B' : 'A';
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EPERM);
	t[strlen(t) - 1] = '\0'; /* 42 characters */
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EPERM);
	*strrchr(t, '.') = '\0';
	strcat(t, ".");
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EPERM);
	free(t);
}

static void
test_wrong_secret(void)
{
	struct jwt_claims c;
	char *t = jwt_sign(SECRET, "alice", NOW, EXP);

	CHECK_EQ_INT(jwt_verify(SECRET "x", t, NOW, &c), -EPERM);
	CHECK_EQ_INT(jwt_verify("", t, NOW, &c), -EPERM);
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), 0);
	free(t);
}

static void
test_alg_none(void)
{
	struct jwt_claims c;
	char *t = make_token(SECRET, "{\"alg\":\"none\",\"typ\":\"JWT\"}",
			     "{\"sub\":\"alice\",\"exp\":1900000000}");

	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EPERM);
	/* The classic attack: no signature at all. */
	*(strrchr(t, '.') + 1) = '\0';
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EPERM);
	free(t);
}

static void
test_other_algs(void)
{
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS512\"}"), -EPERM);
	CHECK_EQ_INT(verify_head("{\"alg\":\"hs256\"}"), -EPERM);
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS256x\"}"), -EPERM);
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS256HS256HS256HS256\"}"), -EPERM);
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS256\"}"), 0);
	CHECK_EQ_INT(verify_head("{\"typ\":\"JWT\"}"), -EBADMSG);
	CHECK_EQ_INT(verify_head("{\"alg\":256}"), -EBADMSG);
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS256\",\"alg\":\"none\"}"),
		     -EBADMSG);
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS256\",\"crit\":[\"x\"]}"),
		     -EBADMSG);
	CHECK_EQ_INT(verify_head("{\"alg\":\"HS256\",\"kid\":{\"a\":[1]}}"), 0);
	CHECK_EQ_INT(verify_head("[\"alg\",\"HS256\"]"), -EBADMSG);
}

static void
test_expired(void)
{
	struct jwt_claims c;
	char *t = jwt_sign(SECRET, "alice", 100, 200);

	CHECK_EQ_INT(jwt_verify(SECRET, t, 199, &c), 0);
	CHECK_EQ_INT(jwt_verify(SECRET, t, 200, &c), -EKEYEXPIRED);
	CHECK_EQ_INT(jwt_verify(SECRET, t, 201, &c), -EKEYEXPIRED);
	free(t);
}

static void
test_claims(void)
{
	struct jwt_claims c;

	CHECK_EQ_INT(verify_body("{\"sub\":\"alice\"}", &c), -EBADMSG);
	CHECK_EQ_INT(verify_body("{\"exp\":1900000000}", &c), -EBADMSG);
	CHECK_EQ_INT(
		verify_body("{\"sub\":\"alice\",\"exp\":\"1900000000\"}", &c),
		-EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":\"alice\",\"exp\":1.9e9}", &c),
		     -EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":\"alice\",\"exp\":1900000000,"
				 "\"iat\":\"x\"}",
				 &c),
		     -EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":\"alice\",\"exp\":1900000000,"
				 "\"exp\":1900000001}",
				 &c),
		     -EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":\"al:ice\",\"exp\":1900000000}", &c),
		     -EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":\"\",\"exp\":1900000000}", &c),
		     -EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":7,\"exp\":1900000000}", &c),
		     -EBADMSG);
	CHECK_EQ_INT(
		verify_body("{\"sub\":\"alice\",\"exp\":1900000000} {}", &c),
		-EBADMSG);
	CHECK_EQ_INT(verify_body("{\"sub\":\"alice\",\"exp\":1900000000,"
				 "\"verylongclaimname\":[{},{\"sub\":1}]}",
				 &c),
		     0);
	CHECK_EQ_STR(c.sub, "alice");
}

static void
test_sub_length(void)
{
	char sub[JWT_SUB_MAX + 2], body[256];
	struct jwt_claims c;

	memset(sub, 'a', sizeof(sub));
	sub[JWT_SUB_MAX] = '\0';
	snprintf(body, sizeof(body), "{\"sub\":\"%s\",\"exp\":1900000000}",
		 sub);
	CHECK_EQ_INT(verify_body(body, &c), 0);
	CHECK_EQ_INT(strlen(c.sub), JWT_SUB_MAX);
	sub[JWT_SUB_MAX] = 'a';
	sub[JWT_SUB_MAX + 1] = '\0';
	snprintf(body, sizeof(body), "{\"sub\":\"%s\",\"exp\":1900000000}",
		 sub);
	CHECK_EQ_INT(verify_body(body, &c), -EBADMSG);
}

static void
test_malformed(void)
{
	struct jwt_claims c;
	char *t = jwt_sign(SECRET, "alice", NOW, EXP);
	char *bad;

	CHECK_EQ_INT(jwt_verify(SECRET, "", NOW, &c), -EBADMSG);
	CHECK_EQ_INT(jwt_verify(SECRET, "abc", NOW, &c), -EBADMSG);
	CHECK_EQ_INT(jwt_verify(SECRET, "a.b", NOW, &c), -EBADMSG);
	CHECK_EQ_INT(jwt_verify(SECRET, "..", NOW, &c), -EBADMSG);
	bad = xasprintf("%s.", t);
	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EBADMSG);
	free(bad);
	bad = xasprintf(".%s", t);
	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EBADMSG);
	free(bad);
	/* A character outside base64url in the header or in the payload. */
	bad = xstrdup(t);
	bad[3] = '*';
	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EBADMSG);
	strcpy(bad, t);
	bad[strchr(t, '.') - t + 3] = '+';
	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EPERM);
	strcpy(bad, t);
	bad[strlen(t) - 3] = '=';
	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EBADMSG);
	free(bad);
	free(t);
}

/* The payload is only decoded after the signature holds, so a bad payload
 * character under a valid signature is the case that reaches the decoder. */
static void
test_malformed_signed_payload(void)
{
	unsigned char mac[JWT_MAC_LEN];
	struct jwt_claims c;
	char t[256], sig[64];
	size_t len;

	len = jwt_b64_encode(t, std_head, strlen(std_head));
	strcpy(t + len, ".eyJzdWIiOi*A");
	len = strlen(t);
	CHECK(jwt_hmac(SECRET, t, len, mac));
	jwt_b64_encode(sig, mac, sizeof(mac));
	snprintf(t + len, sizeof(t) - len, ".%s", sig);
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EBADMSG);
}

/* A validly signed token of exactly JWT_TOKEN_MAX bytes passes and one a
 * little longer is refused for its size alone. */
static void
test_huge(void)
{
	char *body = xmalloc(JWT_TOKEN_MAX + 128), *t;
	bool seen_max = false, seen_over = false;
	struct jwt_claims c;
	size_t n, len;

	for (size_t pad = 5900; !seen_over; pad++) {
		n = (size_t)snprintf(body, 128,
				     "{\"sub\":\"alice\",\"exp\":1900000000,"
				     "\"pad\":\"");
		memset(body + n, 'p', pad);
		strcpy(body + n + pad, "\"}");
		t = make_token(SECRET, std_head, body);
		len = strlen(t);
		if (len == JWT_TOKEN_MAX) {
			CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), 0);
			seen_max = true;
		} else if (len > JWT_TOKEN_MAX) {
			CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EBADMSG);
			seen_over = true;
		}
		free(t);
	}
	CHECK(seen_max);
	t = xmalloc(100000);
	memset(t, 'a', 99999);
	t[99999] = '\0';
	CHECK_EQ_INT(jwt_verify(SECRET, t, NOW, &c), -EBADMSG);
	free(t);
	free(body);
}

static void
test_too_many_dots(void)
{
	struct jwt_claims c;
	char *t = jwt_sign(SECRET, "alice", NOW, EXP);
	char *bad = xasprintf("%s.", t);

	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EBADMSG);
	free(bad);
	bad = xasprintf("%s.%s", t, strrchr(t, '.') + 1);
	CHECK_EQ_INT(jwt_verify(SECRET, bad, NOW, &c), -EBADMSG);
	free(bad);
	free(t);
}

static bool
claims_equal(const struct jwt_claims *a, const struct jwt_claims *b)
{
	return memcmp(a->sub, b->sub, sizeof(a->sub)) == 0 &&
	       a->exp == b->exp && a->iat == b->iat;
}

static void
test_out_untouched_on_error(void)
{
	struct jwt_claims c, before;
	char *t = jwt_sign(SECRET, "alice", 100, 200);

	memset(&c, 0x5a, sizeof(c));
	before = c;
	CHECK_EQ_INT(jwt_verify(SECRET, t, 300, &c), -EKEYEXPIRED);
	CHECK(claims_equal(&c, &before));
	CHECK_EQ_INT(jwt_verify("wrong", t, 150, &c), -EPERM);
	CHECK(claims_equal(&c, &before));
	free(t);
}

static void
test_valid_user(void)
{
	char s[JWT_SUB_MAX + 2];

	CHECK(jwt_valid_user("alice"));
	CHECK(jwt_valid_user("A-z_0.9@x"));
	CHECK(!jwt_valid_user(""));
	CHECK(!jwt_valid_user("al:ice"));
	CHECK(!jwt_valid_user("al ice"));
	CHECK(!jwt_valid_user("al/ice"));
	CHECK(!jwt_valid_user("\xc3\xa9"));
	memset(s, 'u', sizeof(s));
	s[JWT_SUB_MAX] = '\0';
	CHECK(jwt_valid_user(s));
	s[JWT_SUB_MAX] = 'u';
	s[JWT_SUB_MAX + 1] = '\0';
	CHECK(!jwt_valid_user(s));
}

static void
test_sign_rejects_bad_sub(void)
{
	CHECK(jwt_sign(SECRET, "", NOW, EXP) == NULL);
	CHECK(jwt_sign(SECRET, "a:b", NOW, EXP) == NULL);
	CHECK(jwt_sign(SECRET, "a\"b", NOW, EXP) == NULL);
}

/* ---- RS256, ES256, policies (RFC 8725) ---- */

/* Python's cryptography: a fresh RSA-2048 and P-256 key pair; the tokens
 * carry {"sub":"alice","iat":1700000000,"exp":1900000000,"aud":"parley",
 * "iss":"https://id.example"}, signed with the private halves. */
static const char rsa_pub[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyCR6ef3KGsmzabbXKVNB\n"
	"eaKpZF4BgelyIkBDeslNYPbnIMXvi7ccrxyDb2OG+fqQTEvDVW0lca79LeNRnq4S\n"
	"7IsJ9o4s1ire4prVSydTWvjTHxEYNMuPgmhloVCnKxEoo2SW0oBPzQQjSjc5KqNr\n"
	"0p6k3moqaGxIwfGJoIPcPbuwa6xBhGY2ZnsF2JUzHrZvdk0Km2ZdTfguiRusmApK\n"
	"VxRyeDrZWk8vv0eGw6TiT7hDumnz7L3kqsi7Koomnqc8xOaRkLOscTQjx/XJVGT6\n"
	"OPvOYxbymLHd9/mkIS/9zPga3pzYlCnG/s3ewI3LPljJpQiAhZih39FGFk7+5Xri\n"
	"SQIDAQAB\n"
	"-----END PUBLIC KEY-----\n";

static const char rs256_vector[] =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxOTAwMDAwMDAwLCJhdW"
	"QiOiJwYXJsZXkiLCJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUifQ."
	"rk4oxUuMlLYwve524G1QP-dmsWCyLFa6P6LzbIiTmFHGLHEzT3jSCgrLHQcgWZv2jzU2e4"
	"Qg_-BwMyygzsV_EmpZNLPyJr8ELrDZW4IoCqb5gxQcuoCHOlcOrOa3VSM628hSoD3YrHiN"
	"pjEV3-1fFV9-crvIImlL2uVwXajNZuoC2ZFOjKhfvpcvvXQOx6UwZvh5A6tVJ7LNPBxb_5"
	"iLh0BkjWNfZAadbHBBPcVroeTHkFpP67PyFD14w_wsMzg9oohTbCgh7X2vmrC_FV33bKC7"
	"jl-LQBSSx_mCKRYC-tJpLRf1rmiM6SdDjwVO1OgWYww74Z9kUFRyWy8cLG6kIQ";

static const char ec_pub[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzp3BIrF8J5ApLkQAo7W+10jE91DZ\n"
	"vq9LAO0WsqfY9UZl1VENbvp9PEJTS/foNBRI4tnaBnLjQzMDBMoGi09RyQ==\n"
	"-----END PUBLIC KEY-----\n";

static const char es256_vector[] =
	"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxOTAwMDAwMDAwLCJhdW"
	"QiOiJwYXJsZXkiLCJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUifQ."
	"EgkluSW9cnqrzGFOZY1-OFNGHLWpDgu-cGJaN7dbkC1gKLu6qr2wqT0xWdFQBLH1rIHTcH"
	"Bi8KTlEbrWnwHO3g";

static struct jwt_key *
pem_key(enum jwt_alg alg, const char *pem)
{
	char err[128];
	struct jwt_key *k = jwt_key_new_pem(alg, pem, err, sizeof(err));

	if (k == NULL)
		fprintf(stderr, "key: %s\n", err);
	return k;
}

static int
check_with(const struct jwt_key *k, const char *token, int64_t now,
	   const char *aud, const char *iss)
{
	struct jwt_policy pol = { k, 0, aud, iss };
	struct jwt_claims c;

	return jwt_check(&pol, token, now, &c);
}

static void
test_rs256_vector(void)
{
	struct jwt_key *k = pem_key(JWT_RS256, rsa_pub);
	struct jwt_policy pol = { k, 0, "parley", "https://id.example" };
	struct jwt_claims c = { 0 };
	char *t;

	CHECK(k != NULL);
	CHECK_EQ_INT(jwt_check(&pol, rs256_vector, NOW, &c), 0);
	CHECK_EQ_STR(c.sub, "alice");
	CHECK(c.has_iat);
	CHECK_EQ_INT(c.iat, 1700000000);
	/* One flipped signature bit, one flipped payload character. */
	t = xstrdup(rs256_vector);
	t[strlen(t) - 3] ^= 1;
	CHECK_EQ_INT(check_with(k, t, NOW, NULL, NULL), -EPERM);
	free(t);
	t = xstrdup(rs256_vector);
	t[40] = t[40] == 'a' ? 'b' : 'a';
	CHECK(check_with(k, t, NOW, NULL, NULL) != 0);
	free(t);
	jwt_key_free(k);
}

static void
test_es256_vector(void)
{
	struct jwt_key *k = pem_key(JWT_ES256, ec_pub);
	char *t;

	CHECK(k != NULL);
	CHECK_EQ_INT(check_with(k, es256_vector, NOW, "parley", NULL), 0);
	t = xstrdup(es256_vector);
	t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
	CHECK(check_with(k, t, NOW, NULL, NULL) != 0);
	/* A signature of the wrong length. */
	t[strlen(t) - 4] = '\0';
	CHECK(check_with(k, t, NOW, NULL, NULL) != 0);
	free(t);
	jwt_key_free(k);
}

static void
test_key_types(void)
{
	char err[128];

	/* The key pins the algorithm: a key of the other kind is refused. */
	CHECK(jwt_key_new_pem(JWT_RS256, ec_pub, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "RSA") != NULL);
	CHECK(jwt_key_new_pem(JWT_ES256, rsa_pub, err, sizeof(err)) == NULL);
	CHECK(jwt_key_new_pem(JWT_HS256, rsa_pub, err, sizeof(err)) == NULL);
	CHECK(jwt_key_new_pem(JWT_RS256, "not a pem", err, sizeof(err)) ==
	      NULL);
	CHECK_EQ_INT(jwt_alg_parse("RS256"), JWT_RS256);
	CHECK_EQ_INT(jwt_alg_parse("ES256"), JWT_ES256);
	CHECK_EQ_INT(jwt_alg_parse("HS256"), JWT_HS256);
	CHECK_EQ_INT(jwt_alg_parse("none"), -1);
	CHECK_EQ_INT(jwt_alg_parse("rs256"), -1);
}

/* A token of each algorithm is refused under a key of any other one. */
static void
test_alg_pinned(void)
{
	struct jwt_key *rk = pem_key(JWT_RS256, rsa_pub);
	struct jwt_key *ek = pem_key(JWT_ES256, ec_pub);
	struct jwt_key *hk = jwt_key_new_hmac(SECRET);
	char *hs = jwt_sign(SECRET, "alice", NOW, EXP);

	CHECK_EQ_INT(check_with(rk, es256_vector, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(ek, rs256_vector, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(hk, rs256_vector, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(hk, es256_vector, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(rk, hs, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(ek, hs, NOW, NULL, NULL), -EPERM);
	free(hs);
	jwt_key_free(rk);
	jwt_key_free(ek);
	jwt_key_free(hk);
}

/* The classic confusion: an HS256 token whose HMAC key is the server's
 * RSA public key (text the attacker knows). Refused with RS256 pinned. */
static void
test_alg_confusion(void)
{
	struct jwt_key *rk = pem_key(JWT_RS256, rsa_pub);
	struct jwt_key *ek = pem_key(JWT_ES256, ec_pub);
	char *t = make_token(rsa_pub, std_head,
			     "{\"sub\":\"mallory\",\"exp\":1900000000}");
	char *u = make_token(ec_pub, std_head,
			     "{\"sub\":\"mallory\",\"exp\":1900000000}");
	char *v = make_token(rsa_pub, "{\"alg\":\"RS256\"}",
			     "{\"sub\":\"mallory\",\"exp\":1900000000}");

	CHECK_EQ_INT(check_with(rk, t, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(ek, u, NOW, NULL, NULL), -EPERM);
	/* Header says RS256, "signature" is an HMAC with the public key. */
	CHECK_EQ_INT(check_with(rk, v, NOW, NULL, NULL), -EPERM);
	free(t);
	free(u);
	free(v);
	jwt_key_free(rk);
	jwt_key_free(ek);
}

static void
test_none_under_every_key(void)
{
	struct jwt_key *rk = pem_key(JWT_RS256, rsa_pub);
	struct jwt_key *ek = pem_key(JWT_ES256, ec_pub);
	struct jwt_claims c;
	/* {"alg":"none"}.{"sub":"alice","exp":1900000000}. */
	static const char none[] =
		"eyJhbGciOiJub25lIn0."
		"eyJzdWIiOiJhbGljZSIsImV4cCI6MTkwMDAwMDAwMH0.";

	CHECK_EQ_INT(check_with(rk, none, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(check_with(ek, none, NOW, NULL, NULL), -EPERM);
	CHECK_EQ_INT(jwt_verify(SECRET, none, NOW, &c), -EPERM);
	jwt_key_free(rk);
	jwt_key_free(ek);
}

static void
test_aud_iss(void)
{
	struct jwt_key *k = jwt_key_new_hmac(SECRET);
	char *one = make_token(SECRET, std_head,
			       "{\"sub\":\"a\",\"exp\":1900000000,"
			       "\"aud\":\"parley\",\"iss\":\"idp\"}");
	char *arr = make_token(SECRET, std_head,
			       "{\"sub\":\"a\",\"exp\":1900000000,"
			       "\"aud\":[\"x\",\"parley\"]}");
	char *none = make_token(SECRET, std_head,
				"{\"sub\":\"a\",\"exp\":1900000000}");
	char *bad = make_token(SECRET, std_head,
			       "{\"sub\":\"a\",\"exp\":1900000000,"
			       "\"aud\":{\"x\":1}}");

	CHECK_EQ_INT(check_with(k, one, NOW, "parley", "idp"), 0);
	CHECK_EQ_INT(check_with(k, one, NOW, "other", NULL), -EACCES);
	CHECK_EQ_INT(check_with(k, one, NOW, NULL, "idp2"), -EACCES);
	CHECK_EQ_INT(check_with(k, arr, NOW, "parley", NULL), 0);
	CHECK_EQ_INT(check_with(k, arr, NOW, "parle", NULL), -EACCES);
	CHECK_EQ_INT(check_with(k, none, NOW, "parley", NULL), -EACCES);
	CHECK_EQ_INT(check_with(k, none, NOW, NULL, "idp"), -EACCES);
	CHECK_EQ_INT(check_with(k, none, NOW, NULL, NULL), 0);
	/* Not checked, still well-formed: an object is malformed. */
	CHECK_EQ_INT(check_with(k, bad, NOW, NULL, NULL), -EBADMSG);
	free(one);
	free(arr);
	free(none);
	free(bad);
	jwt_key_free(k);
}

static void
test_leeway(void)
{
	struct jwt_key *k = jwt_key_new_hmac(SECRET);
	struct jwt_policy pol = { k, 30, NULL, NULL };
	struct jwt_claims c;
	char *nbf = make_token(SECRET, std_head,
			       "{\"sub\":\"a\",\"exp\":1900000000,"
			       "\"nbf\":1800000020}");
	char *iat = make_token(SECRET, std_head,
			       "{\"sub\":\"a\",\"exp\":1900000000,"
			       "\"iat\":1800000100}");
	char *exp = jwt_sign(SECRET, "a", NOW - 100, NOW - 10);

	CHECK_EQ_INT(jwt_check(&pol, nbf, NOW, &c), 0);
	CHECK_EQ_INT(jwt_check(&pol, nbf, NOW - 11, &c), -EKEYREJECTED);
	CHECK_EQ_INT(jwt_check(&pol, iat, NOW, &c), -EKEYREJECTED);
	CHECK_EQ_INT(jwt_check(&pol, iat, NOW + 70, &c), 0);
	/* Expired 10 s ago: inside 30 s of leeway, not inside 5. */
	CHECK_EQ_INT(jwt_check(&pol, exp, NOW, &c), 0);
	pol.leeway_s = 5;
	CHECK_EQ_INT(jwt_check(&pol, exp, NOW, &c), -EKEYEXPIRED);
	free(nbf);
	free(iat);
	free(exp);
	jwt_key_free(k);
}

/* Keys made here (OpenSSL) sign; the minted tokens verify with the
 * public half only, and carry the claims asked for. */
static char *
pem_of(EVP_PKEY *pk, bool private_key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (private_key)
		PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_bio_PUBKEY(b, pk);
	n = BIO_get_mem_data(b, &data);
	out = xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void
mint_round_trip(enum jwt_alg alg, EVP_PKEY *pk)
{
	char *priv = pem_of(pk, true), *pub = pem_of(pk, false), *t;
	struct jwt_key *sk = pem_key(alg, priv), *vk = pem_key(alg, pub);
	struct jwt_mint m = {
		"bob", NOW - 5, NOW + 60, NOW - 5, "parley", "idp"
	};
	struct jwt_policy pol = { vk, 0, "parley", "idp" };
	struct jwt_claims c = { 0 };

	CHECK(sk != NULL && vk != NULL);
	t = jwt_mint(sk, &m);
	CHECK(t != NULL);
	CHECK_EQ_INT(jwt_check(&pol, t, NOW, &c), 0);
	CHECK_EQ_STR(c.sub, "bob");
	CHECK_EQ_INT(c.exp, NOW + 60);
	/* A public key cannot sign. */
	CHECK(jwt_mint(vk, &m) == NULL);
	m.aud = "bad\"aud";
	CHECK(jwt_mint(sk, &m) == NULL);
	free(t);
	free(priv);
	free(pub);
	jwt_key_free(sk);
	jwt_key_free(vk);
}

static void
test_mint_rs256_es256(void)
{
	EVP_PKEY *rk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ek = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char *pem, err[128];

	CHECK(rk && ek && small && p384);
	mint_round_trip(JWT_RS256, rk);
	mint_round_trip(JWT_ES256, ek);
	pem = pem_of(small, false);
	CHECK(jwt_key_new_pem(JWT_RS256, pem, err, sizeof(err)) == NULL);
	free(pem);
	pem = pem_of(p384, false);
	CHECK(jwt_key_new_pem(JWT_ES256, pem, err, sizeof(err)) == NULL);
	free(pem);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ek);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p384);
}

TEST_MAIN(TEST(test_b64_round_trip), TEST(test_b64_rejects),
	  TEST(test_json_strings), TEST(test_json_ints), TEST(test_json_skip),
	  TEST(test_known_vector), TEST(test_nested_vector),
	  TEST(test_jwtio_vector_has_no_exp), TEST(test_round_trip),
	  TEST(test_tampered_payload), TEST(test_tampered_signature),
	  TEST(test_wrong_secret), TEST(test_alg_none), TEST(test_other_algs),
	  TEST(test_expired), TEST(test_claims), TEST(test_sub_length),
	  TEST(test_malformed), TEST(test_malformed_signed_payload),
	  TEST(test_huge), TEST(test_too_many_dots),
	  TEST(test_out_untouched_on_error), TEST(test_valid_user),
	  TEST(test_sign_rejects_bad_sub), TEST(test_rs256_vector),
	  TEST(test_es256_vector), TEST(test_key_types), TEST(test_alg_pinned),
	  TEST(test_alg_confusion), TEST(test_none_under_every_key),
	  TEST(test_aud_iss), TEST(test_leeway), TEST(test_mint_rs256_es256))
