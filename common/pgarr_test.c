/* Unit tests of the PostgreSQL array literals and the UTF-8 check. */
#include "pgarr.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

static void
test_empty(void)
{
	struct pgarr a;

	pgarr_init(&a);
	CHECK_EQ_STR(pgarr_str(&a), "{}");
	pgarr_add_i64(&a, 7);
	CHECK_EQ_STR(pgarr_str(&a), "{7}");
	pgarr_release(&a);
}

static void
test_strings_are_quoted_and_escaped(void)
{
	struct pgarr a;

	pgarr_init(&a);
	pgarr_add_str(&a, "plain");
	pgarr_add_str(&a, "a \"quote\" and \\ backslash");
	pgarr_add_str(&a, "");
	pgarr_add_str(&a, "NULL");
	pgarr_add_null(&a);
	pgarr_add_str(&a, "{,}");
	CHECK_EQ_STR(pgarr_str(&a), "{\"plain\",\"a \\\"quote\\\" and \\\\ "
				    "backslash\",\"\",\"NULL\",NULL,\"{,}\"}");
	CHECK_EQ_INT(a.n, 6);
	pgarr_release(&a);
}

static void
test_adding_after_reading(void)
{
	struct pgarr a;

	pgarr_init(&a);
	pgarr_add_i64(&a, -1);
	CHECK_EQ_STR(pgarr_str(&a), "{-1}");
	pgarr_add_i64(&a, INT64_MAX);
	CHECK_EQ_STR(pgarr_str(&a), "{-1,9223372036854775807}");
	pgarr_release(&a);
}

static void
test_grows(void)
{
	struct pgarr a;
	char want[16];

	pgarr_init(&a);
	for (int i = 0; i < 10000; i++)
		pgarr_add_str(&a, "0123456789");
	CHECK_EQ_INT(strlen(pgarr_str(&a)), 2 + 10000 * 12 + 9999);
	snprintf(want, sizeof(want), "%.13s", pgarr_str(&a));
	CHECK_EQ_STR(want, "{\"0123456789\"");
	pgarr_release(&a);
}

static void
test_utf8_valid(void)
{
	CHECK(utf8_valid(""));
	CHECK(utf8_valid("hello"));
	CHECK(utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
	CHECK(!utf8_valid("\xc3"));		/* truncated */
	CHECK(!utf8_valid("\xc0\xaf"));		/* overlong */
	CHECK(!utf8_valid("\xe0\x80\xaf"));	/* overlong */
	CHECK(!utf8_valid("\xed\xa0\x80"));	/* surrogate */
	CHECK(!utf8_valid("\xf4\x90\x80\x80")); /* > U+10FFFF */
	CHECK(!utf8_valid("\xff"));
	CHECK(!utf8_valid("ok\x80"));
}

static void
test_bad_utf8_is_replaced(void)
{
	struct pgarr a;

	pgarr_init(&a);
	pgarr_add_str(&a, "a\xff"
			  "b\xc3");
	CHECK_EQ_STR(pgarr_str(&a), "{\"a\xef\xbf\xbd"
				    "b\xef\xbf\xbd\"}");
	CHECK(utf8_valid(pgarr_str(&a)));
	pgarr_release(&a);
}

TEST_MAIN(TEST(test_empty), TEST(test_strings_are_quoted_and_escaped),
	  TEST(test_adding_after_reading), TEST(test_grows),
	  TEST(test_utf8_valid), TEST(test_bad_utf8_is_replaced))
