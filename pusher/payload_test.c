/* Unit tests of provider payloads: HMAC signatures (RFC 4231 vector),
 * collapse keys, push ids, and JSON that stays valid whatever a message
 * body holds. */
#include "payload.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

static void
test_platforms(void)
{
	CHECK_EQ_INT(push_platform_parse("fcm"), PUSH_FCM);
	CHECK_EQ_INT(push_platform_parse("apns"), PUSH_APNS);
	CHECK_EQ_INT(push_platform_parse("webhook"), PUSH_WEBHOOK);
	CHECK_EQ_INT(push_platform_parse("FCM"), -1);
	CHECK_EQ_INT(push_platform_parse(""), -1);
	CHECK_EQ_INT(push_platform_parse(NULL), -1);
	CHECK_EQ_STR(push_platform_name(PUSH_APNS), "apns");
	CHECK_EQ_STR(push_platform_name(99), "?");
}

static void
test_sign_rfc4231(void)
{
	static const char body[] = "what do ya want for nothing?";
	char sig[PAYLOAD_SIG_LEN];

	CHECK_EQ_INT(payload_sign("Jefe", body, strlen(body), sig), 0);
	CHECK_EQ_STR(sig, "sha256=5bdcc146bf60754e6a042426089575c7"
			  "5a003f089d2739839dec58b964ec3843");
}

static void
test_ids(void)
{
	char a[PAYLOAD_COLLAPSE_LEN], b[PAYLOAD_COLLAPSE_LEN];
	char p[PAYLOAD_PUSH_ID_LEN], q[PAYLOAD_PUSH_ID_LEN];

	payload_collapse_key("dm:alice:bob", a);
	payload_collapse_key("dm:alice:bob", b);
	CHECK_EQ_STR(a, b);
	CHECK_EQ_INT(strlen(a), PAYLOAD_COLLAPSE_LEN - 1);
	CHECK(strncmp(a, "parley-", 7) == 0);
	payload_collapse_key("dm:alice:carol", b);
	CHECK(strcmp(a, b) != 0);
	payload_push_id(PUSH_FCM, "tok", "room", 7, p);
	payload_push_id(PUSH_FCM, "tok", "room", 7, q);
	CHECK_EQ_STR(p, q);
	CHECK_EQ_INT(strlen(p), 36);
	CHECK(p[8] == '-' && p[13] == '-' && p[18] == '-' && p[23] == '-');
	CHECK(p[14] == '8'); /* version nibble */
	payload_push_id(PUSH_FCM, "tok", "room", 8, q);
	CHECK(strcmp(p, q) != 0);
	payload_push_id(PUSH_APNS, "tok", "room", 7, q);
	CHECK(strcmp(p, q) != 0);
}

static struct push_msg
msg(int platform, const char *preview)
{
	struct push_msg m = {
		.platform = platform,
		.token = "T1",
		.user = "bob",
		.room = "dm:alice:bob",
		.sender = "alice",
		.preview = preview,
		.seq = 20,
		.badge = 21,
		.ts_ms = 1234,
		.collapse = "parley-0123",
		.push_id = "id-1",
	};

	return m;
}

static void
test_webhook_body(void)
{
	struct push_msg m = msg(PUSH_WEBHOOK, "a \"quote\"\n\\ \xff end");
	char *body = payload_body(&m);

	CHECK_EQ_STR(
		body,
		"{\"push_id\":\"id-1\",\"platform\":\"webhook\","
		"\"token\":\"T1\",\"user_id\":\"bob\","
		"\"room_id\":\"dm:alice:bob\",\"seq\":20,"
		"\"sender_id\":\"alice\","
		"\"preview\":\"a \\\"quote\\\"\\u000a\\\\ \xef\xbf\xbd end\","
		"\"badge\":21,\"collapse_key\":\"parley-0123\","
		"\"ts_ms\":1234}");
	free(body);
}

static void
test_fcm_body(void)
{
	struct push_msg m = msg(PUSH_FCM, "hi \xc3\xa9");
	char *body = payload_body(&m);

	CHECK(strstr(body, "{\"message\":{\"token\":\"T1\"") == body);
	CHECK(strstr(body, "\"notification\":{\"title\":\"alice\","
			   "\"body\":\"hi \xc3\xa9\"}") != NULL);
	/* FCM data values are strings. */
	CHECK(strstr(body, "\"seq\":\"20\"") != NULL);
	CHECK(strstr(body, "\"badge\":\"21\"") != NULL);
	CHECK(strstr(body, "\"collapse_key\":\"parley-0123\"") != NULL);
	CHECK(strstr(body, "\"apns-collapse-id\":\"parley-0123\"") != NULL);
	CHECK(strstr(body, "\"notification_count\":21") != NULL);
	free(body);
}

static void
test_apns_body(void)
{
	struct push_msg m = msg(PUSH_APNS, "new message");
	char *body = payload_body(&m);

	CHECK_EQ_STR(body,
		     "{\"aps\":{\"alert\":{\"title\":\"alice\","
		     "\"body\":\"new message\"},\"badge\":21,"
		     "\"sound\":\"default\",\"thread-id\":\"parley-0123\"},"
		     "\"room_id\":\"dm:alice:bob\",\"seq\":20,"
		     "\"sender_id\":\"alice\",\"push_id\":\"id-1\"}");
	free(body);
}

TEST_MAIN(TEST(test_platforms), TEST(test_sign_rfc4231), TEST(test_ids),
	  TEST(test_webhook_body), TEST(test_fcm_body), TEST(test_apns_body))
