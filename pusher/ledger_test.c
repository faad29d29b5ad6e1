/* Unit tests of the offset ledger: which offset may be stored while
 * records are still referenced, epochs across rebalances, trimming. */
#include "ledger.c" // NOLINT(bugprone-suspicious-include)

#include <errno.h>

#include "test.h"

static void
test_safe_follows_oldest_reference(void)
{
	struct ledger l;
	struct push_hold a, b, c;

	ledger_init(&l);
	ledger_assign(&l, 2, 10, true);
	CHECK_EQ_INT(ledger_safe(&l, 2), 10);
	CHECK_EQ_INT(ledger_take(&l, 2, 10, &a), 0);
	CHECK_EQ_INT(ledger_take(&l, 2, 11, &b), 0);
	CHECK_EQ_INT(ledger_take(&l, 2, 13, &c), 0); /* gaps are fine */
	CHECK_EQ_INT(ledger_safe(&l, 2), 10);
	ledger_unref(&l, &b);
	CHECK_EQ_INT(ledger_safe(&l, 2), 10);
	ledger_ref(&l, &a); /* a slot keeps the record */
	ledger_unref(&l, &a);
	CHECK_EQ_INT(ledger_safe(&l, 2), 10);
	ledger_unref(&l, &a);
	CHECK_EQ_INT(ledger_safe(&l, 2), 13);
	ledger_unref(&l, &c);
	CHECK_EQ_INT(ledger_safe(&l, 2), 14);
	CHECK_EQ_INT(ledger_size(&l), 3);
	ledger_trim(&l, 2);
	CHECK_EQ_INT(ledger_size(&l), 0);
	CHECK_EQ_INT(ledger_safe(&l, 2), 14);
	CHECK_EQ_INT(ledger_safe(&l, 0), -1); /* never assigned */
	ledger_release(&l);
}

static void
test_take_refuses_old_and_unowned(void)
{
	struct ledger l;
	struct push_hold h;

	ledger_init(&l);
	CHECK_EQ_INT(ledger_take(&l, 0, 5, &h), -ESTALE);
	ledger_assign(&l, 0, -1, true); /* from the first record seen */
	CHECK_EQ_INT(ledger_safe(&l, 0), -1);
	CHECK_EQ_INT(ledger_take(&l, 0, 7, &h), 0);
	CHECK_EQ_INT(ledger_take(&l, 0, 7, &h), -EALREADY);
	CHECK_EQ_INT(ledger_take(&l, 0, 3, &h), -EALREADY);
	ledger_assign(&l, 1, -1, false); /* position unknown */
	CHECK(!ledger_owned(&l, 1));
	CHECK_EQ_INT(ledger_take(&l, 1, 0, &h), -ESTALE);
	ledger_set_start(&l, 1, 40);
	CHECK(ledger_owned(&l, 1));
	CHECK_EQ_INT(ledger_take(&l, 1, 39, &h), -EALREADY);
	CHECK_EQ_INT(ledger_take(&l, 1, 40, &h), 0);
	ledger_release(&l);
}

static void
test_stale_hold_after_rebalance(void)
{
	struct ledger l;
	struct push_hold old, fresh;

	ledger_init(&l);
	ledger_assign(&l, 3, 0, true);
	CHECK_EQ_INT(ledger_take(&l, 3, 0, &old), 0);
	ledger_revoke(&l, 3);
	CHECK_EQ_INT(ledger_safe(&l, 3), -1);
	ledger_assign(&l, 3, 0, true);
	CHECK_EQ_INT(ledger_take(&l, 3, 0, &fresh), 0);
	ledger_unref(&l, &old); /* from before: must not free the new one */
	CHECK_EQ_INT(ledger_safe(&l, 3), 0);
	ledger_unref(&l, &fresh);
	CHECK_EQ_INT(ledger_safe(&l, 3), 1);
	ledger_release(&l);
}

static void
test_ring_grows_and_wraps(void)
{
	struct ledger l;
	struct push_hold h[500];

	ledger_init(&l);
	ledger_assign(&l, 0, 0, true);
	for (int round = 0; round < 3; round++) {
		int64_t base = (int64_t)round * 500;

		for (int i = 0; i < 500; i++)
			CHECK_EQ_INT(ledger_take(&l, 0, base + i, &h[i]), 0);
		for (int i = 499; i >= 1; i--)
			ledger_unref(&l, &h[i]);
		CHECK_EQ_INT(ledger_safe(&l, 0), base);
		ledger_unref(&l, &h[0]);
		CHECK_EQ_INT(ledger_safe(&l, 0), base + 500);
		ledger_trim(&l, 0);
		CHECK_EQ_INT(ledger_size(&l), 0);
	}
	ledger_release(&l);
}

TEST_MAIN(TEST(test_safe_follows_oldest_reference),
	  TEST(test_take_refuses_old_and_unowned),
	  TEST(test_stale_hold_after_rebalance),
	  TEST(test_ring_grows_and_wraps))
