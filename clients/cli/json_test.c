/* Unit tests of the CLI's JSON writer: member syntax, nesting, escaping of
 * quotes and control characters, and UTF-8 passed through or replaced. */
#include "json.c"
#include "test.h"

/* The text of one string member {"s":...} with value s. */
static char *
quoted(const char *s)
{
	static char out[256];
	struct json j;

	json_init(&j);
	json_obj(&j, NULL);
	json_str(&j, "s", s);
	json_obj_end(&j);
	snprintf(out, sizeof(out), "%s", json_text(&j));
	json_release(&j);
	return out;
}

static void
test_scalars(void)
{
	struct json j;

	json_init(&j);
	json_begin(&j, "ack");
	json_u64(&j, "seq", UINT64_MAX);
	json_i64(&j, "ts_ms", -5);
	json_bool(&j, "duplicate", false);
	json_str(&j, "none", NULL);
	json_obj_end(&j);
	CHECK_EQ_STR(json_text(&j),
		     "{\"type\":\"ack\",\"seq\":18446744073709551615,"
		     "\"ts_ms\":-5,\"duplicate\":false,\"none\":\"\"}");
	json_release(&j);
}

static void
test_nesting(void)
{
	char *ids[] = { "bob", "carol" };
	struct json j;

	json_init(&j);
	json_begin(&j, "welcome");
	json_arr(&j, "rooms");
	json_obj(&j, NULL);
	json_u64(&j, "a", 1);
	json_obj_end(&j);
	json_obj(&j, NULL);
	json_obj_end(&j);
	json_arr_end(&j);
	json_str_array(&j, "members", ids, 2);
	json_str_array(&j, "empty", NULL, 0);
	json_obj_end(&j);
	CHECK_EQ_STR(json_text(&j),
		     "{\"type\":\"welcome\",\"rooms\":[{\"a\":1},{}],"
		     "\"members\":[\"bob\",\"carol\"],\"empty\":[]}");
	json_release(&j);
}

static void
test_escapes(void)
{
	CHECK_EQ_STR(quoted("say \"hi\" \\o/"),
		     "{\"s\":\"say \\\"hi\\\" \\\\o/\"}");
	CHECK_EQ_STR(quoted("a\nb\rc\td"), "{\"s\":\"a\\nb\\rc\\td\"}");
	CHECK_EQ_STR(quoted("\x01\x1f\x7f\b\f"),
		     "{\"s\":\"\\u0001\\u001f\\u007f\\u0008\\u000c\"}");
	CHECK_EQ_STR(quoted("</script>"), "{\"s\":\"</script>\"}");
}

static void
test_utf8_valid(void)
{
	CHECK_EQ_STR(quoted("h\xc3\xa9llo"), "{\"s\":\"h\xc3\xa9llo\"}");
	CHECK_EQ_STR(quoted("\xe2\x82\xac"), "{\"s\":\"\xe2\x82\xac\"}");
	CHECK_EQ_STR(quoted("\xf0\x9f\x98\x80"),
		     "{\"s\":\"\xf0\x9f\x98\x80\"}");
	CHECK_EQ_STR(quoted("\xf4\x8f\xbf\xbf"),
		     "{\"s\":\"\xf4\x8f\xbf\xbf\"}");
	CHECK_EQ_STR(quoted("\xed\x9f\xbf"), "{\"s\":\"\xed\x9f\xbf\"}");
}

static void
test_utf8_invalid(void)
{
	/* Lone continuation, overlong forms, a surrogate, beyond U+10FFFF,
	 * bytes that never occur, and a sequence cut short by the end. */
	CHECK_EQ_STR(quoted("a\x80z"), "{\"s\":\"a\\ufffdz\"}");
	CHECK_EQ_STR(quoted("\xc0\xaf"), "{\"s\":\"\\ufffd\\ufffd\"}");
	CHECK_EQ_STR(quoted("\xe0\x80\xaf"),
		     "{\"s\":\"\\ufffd\\ufffd\\ufffd\"}");
	CHECK_EQ_STR(quoted("\xed\xa0\x80"),
		     "{\"s\":\"\\ufffd\\ufffd\\ufffd\"}");
	CHECK_EQ_STR(quoted("\xf4\x90\x80\x80"),
		     "{\"s\":\"\\ufffd\\ufffd\\ufffd\\ufffd\"}");
	CHECK_EQ_STR(quoted("\xfe\xff"), "{\"s\":\"\\ufffd\\ufffd\"}");
	CHECK_EQ_STR(quoted("x\xe2\x82"), "{\"s\":\"x\\ufffd\\ufffd\"}");
	CHECK_EQ_STR(quoted("\xf0\x9f\x98"),
		     "{\"s\":\"\\ufffd\\ufffd\\ufffd\"}");
}

static void
test_print_line(void)
{
	char buf[128] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	struct json j;

	json_init(&j);
	json_begin(&j, "a");
	json_obj_end(&j);
	CHECK_EQ_INT(json_print_line(&j, f), 0);
	json_begin(&j, "b");
	json_obj_end(&j);
	CHECK_EQ_INT(json_print_line(&j, f), 0);
	fclose(f);
	CHECK_EQ_STR(buf, "{\"type\":\"a\"}\n{\"type\":\"b\"}\n");
	CHECK_EQ_STR(json_text(&j), "");
	json_release(&j);
}

static void
test_growth(void)
{
	char big[5000];
	struct json j;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_init(&j);
	json_str(&j, NULL, big);
	CHECK_EQ_INT(strlen(json_text(&j)), sizeof(big) - 1 + 2);
	json_release(&j);
}

TEST_MAIN(TEST(test_scalars), TEST(test_nesting), TEST(test_escapes),
	  TEST(test_utf8_valid), TEST(test_utf8_invalid), TEST(test_print_line),
	  TEST(test_growth))
