/* Unit tests of what provider answers mean and of the retry backoff. */
#include "http.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

static void
test_classify(void)
{
	CHECK_EQ_INT(push_classify(200, CURLE_OK, NULL), PUSH_OK);
	CHECK_EQ_INT(push_classify(204, CURLE_OK, ""), PUSH_OK);
	CHECK_EQ_INT(push_classify(404, CURLE_OK, NULL), PUSH_DEAD);
	CHECK_EQ_INT(
		push_classify(410, CURLE_OK, "{\"reason\":\"Unregistered\"}"),
		PUSH_DEAD);
	CHECK_EQ_INT(push_classify(400, CURLE_OK,
				   "{\"errorCode\":\"UNREGISTERED\"}"),
		     PUSH_DEAD);
	CHECK_EQ_INT(push_classify(400, CURLE_OK, "{\"reason\":\"BadTopic\"}"),
		     PUSH_DROP);
	CHECK_EQ_INT(push_classify(401, CURLE_OK, NULL), PUSH_DROP);
	CHECK_EQ_INT(push_classify(403, CURLE_OK, NULL), PUSH_DROP);
	CHECK_EQ_INT(push_classify(429, CURLE_OK, NULL), PUSH_RETRY);
	CHECK_EQ_INT(push_classify(500, CURLE_OK, NULL), PUSH_RETRY);
	CHECK_EQ_INT(push_classify(503, CURLE_OK, NULL), PUSH_RETRY);
	CHECK_EQ_INT(push_classify(0, CURLE_OPERATION_TIMEDOUT, NULL),
		     PUSH_RETRY);
	CHECK_EQ_INT(push_classify(0, CURLE_COULDNT_CONNECT, NULL), PUSH_RETRY);
	CHECK_EQ_INT(push_classify(302, CURLE_OK, NULL), PUSH_DROP);
}

static void
test_backoff(void)
{
	/* Exponential: base, 2 base, 4 base, ... jittered into [half, full]. */
	CHECK_EQ_INT(push_backoff_ms(1, 1000, 60000, -1, 0.0), 500);
	CHECK_EQ_INT(push_backoff_ms(1, 1000, 60000, -1, 0.999), 999);
	CHECK_EQ_INT(push_backoff_ms(3, 1000, 60000, -1, 0.0), 2000);
	CHECK_EQ_INT(push_backoff_ms(3, 1000, 60000, -1, 0.5), 3000);
	/* Capped. */
	CHECK_EQ_INT(push_backoff_ms(40, 1000, 60000, -1, 0.0), 30000);
	CHECK_EQ_INT(push_backoff_ms(40, 1000, 60000, -1, 0.999), 59970);
	/* Retry-After wins when longer, up to ten minutes. */
	CHECK_EQ_INT(push_backoff_ms(1, 1000, 60000, 5, 0.0), 5000);
	CHECK_EQ_INT(push_backoff_ms(5, 1000, 60000, 1, 0.999), 15992);
	CHECK_EQ_INT(push_backoff_ms(1, 1000, 60000, 99999, 0.0), 600000);
}

TEST_MAIN(TEST(test_classify), TEST(test_backoff))
