/* A tiny unit-test harness: each test file defines test functions, lists
 * them in TEST_MAIN and ends with the line "N passed, N failed". Test files
 * include the .c under test to reach its static functions. */
#ifndef PARLEY_TEST_H
#define PARLEY_TEST_H

#include <stdio.h>
#include <string.h>

static int test_failures_;
static int test_current_failed_;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			test_current_failed_ = 1;                              \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                \
	do {                                                              \
		long long a_ = (long long)(a), b_ = (long long)(b);       \
		if (a_ != b_) {                                           \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", \
				__FILE__, __LINE__, #a, a_, b_);          \
			test_current_failed_ = 1;                         \
		}                                                         \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                    \
	do {                                                                  \
		const char *a_ = (a), *b_ = (b);                              \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {        \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #a, a_ ? a_ : "(null)",   \
				b_ ? b_ : "(null)");                          \
			test_current_failed_ = 1;                             \
		}                                                             \
	} while (0)

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TEST_MAIN(...)                                                       \
	int main(void)                                                       \
	{                                                                    \
		static const struct test_case cases[] = { __VA_ARGS__ };     \
		int passed = 0, n = sizeof(cases) / sizeof(cases[0]);        \
		for (int i = 0; i < n; i++) {                                \
			test_current_failed_ = 0;                            \
			cases[i].fn();                                       \
			if (test_current_failed_) {                          \
				test_failures_++;                            \
				fprintf(stderr, "FAIL %s\n", cases[i].name); \
			} else {                                             \
				passed++;                                    \
			}                                                    \
		}                                                            \
		printf("%d passed, %d failed\n", passed, test_failures_);    \
		return test_failures_ ? 1 : 0;                               \
	}

#define TEST(fn)        \
	{               \
#fn, fn \
	}

#endif
