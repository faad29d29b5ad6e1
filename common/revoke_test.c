/* Unit tests for revoke.c: record values and which tokens an epoch ends. */
#include "revoke.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

static void
test_parse(void)
{
	int64_t e = 0;

	CHECK(revoke_parse("1764290000", 10, &e));
	CHECK_EQ_INT(e, 1764290000);
	CHECK(!revoke_parse("", 0, &e));
	CHECK(!revoke_parse(NULL, 0, &e));
	CHECK(!revoke_parse("-5", 2, &e));
	CHECK(!revoke_parse("12a", 3, &e));
	CHECK(!revoke_parse("1234567890123456", 16, &e));
	CHECK(!revoke_parse("1 ", 2, &e));
}

static void
test_applies(void)
{
	CHECK(!revoke_applies(0, true, 100));
	CHECK(revoke_applies(100, true, 99));
	CHECK(!revoke_applies(100, true, 100)); /* issued at the epoch: ok */
	CHECK(!revoke_applies(100, true, 101));
	CHECK(revoke_applies(100, false, 0)); /* no iat: cannot be newer */
	CHECK(!revoke_applies(0, false, 0));
}

static void
test_topic(void)
{
	char *t = revoke_topic("parley.log");

	CHECK_EQ_STR(t, "parley.log.revocations");
	free(t);
}

TEST_MAIN(TEST(test_parse), TEST(test_applies), TEST(test_topic))
