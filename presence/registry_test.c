/* Unit tests of the session registry: changes and versions, full replace,
 * lease expiry, several devices per user, forgetting offline users, the
 * coalesced user feed. */
#include "registry.c"

#include "test.h"

#define GW_A "tcp://10.0.0.1:7500"
#define GW_B "tcp://10.0.0.2:7500"

/* What the observer saw: counts and the last change. */
struct seen {
	int ups, downs;
	char last[128];
};

static void
on_change(void *ctx, const struct registry_session *s, bool up)
{
	struct seen *seen = ctx;

	if (up)
		seen->ups++;
	else
		seen->downs++;
	snprintf(seen->last, sizeof(seen->last), "%s %s/%s@%s",
		 up ? "up" : "down", s->user_id, s->session_id, s->gateway);
}

static struct registry *
new_registry(struct seen *seen)
{
	struct registry *r = registry_new();

	memset(seen, 0, sizeof(*seen));
	registry_set_observer(r, on_change, seen);
	registry_set_clock(r, 1000000, 1000);
	return r;
}

static struct registry_session
sess(const char *user, const char *id, const char *gw)
{
	struct registry_session s = { user, id, gw, 0 };

	return s;
}

static bool
online(const struct registry *r, const char *user)
{
	struct registry_user_state st;

	registry_user_state(r, user, &st);
	return st.online;
}

static int64_t
last_seen(const struct registry *r, const char *user)
{
	struct registry_user_state st;

	registry_user_state(r, user, &st);
	return st.last_seen_ms;
}

static void
test_up_down(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session s = sess("alice", "s1", GW_A);

	CHECK_EQ_INT(registry_up(r, &s), 1);
	CHECK_EQ_INT(registry_count(r), 1);
	CHECK(online(r, "alice"));
	CHECK_EQ_INT(last_seen(r, "alice"), 1000000);
	CHECK_EQ_STR(seen.last, "up alice/s1@" GW_A);
	registry_set_clock(r, 1000500, 1500);
	CHECK_EQ_INT(registry_down(r, GW_A, "s1"), 1);
	CHECK_EQ_INT(registry_count(r), 0);
	CHECK(!online(r, "alice"));
	CHECK_EQ_INT(last_seen(r, "alice"), 1000500);
	CHECK_EQ_STR(seen.last, "down alice/s1@" GW_A);
	CHECK_EQ_INT(registry_down(r, GW_A, "s1"), 0);
	CHECK_EQ_INT(registry_down(r, GW_B, "nope"), 0);
	CHECK_EQ_INT(registry_version(r), 2);
	registry_free(r);
}

static void
test_duplicate_up_is_no_change(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session s = sess("alice", "s1", GW_A);

	CHECK_EQ_INT(registry_up(r, &s), 1);
	s.since_ms = 42;
	CHECK_EQ_INT(registry_up(r, &s), 0);
	CHECK_EQ_INT(registry_version(r), 1);
	CHECK_EQ_INT(seen.ups, 1);
	registry_free(r);
}

static void
test_same_id_other_user_moves(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s1", GW_A);

	CHECK_EQ_INT(registry_up(r, &a), 1);
	CHECK_EQ_INT(registry_up(r, &b), 2);
	CHECK(!online(r, "alice"));
	CHECK(online(r, "bob"));
	CHECK_EQ_INT(registry_count(r), 1);
	CHECK_EQ_INT(seen.downs, 1);
	CHECK_EQ_INT(registry_version(r), 3);
	registry_free(r);
}

static void
test_same_id_on_two_gateways(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("alice", "s1", GW_B);

	CHECK_EQ_INT(registry_up(r, &a), 1);
	CHECK_EQ_INT(registry_up(r, &b), 1);
	CHECK_EQ_INT(registry_count(r), 2);
	CHECK_EQ_INT(registry_down(r, GW_A, "s1"), 1);
	CHECK(online(r, "alice"));
	registry_free(r);
}

static void
test_invalid(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session s = sess("", "s1", GW_A);
	char big[REGISTRY_MAX_ID + 2];

	CHECK_EQ_INT(registry_up(r, &s), -EINVAL);
	s = sess("alice", "s1", "tcp://x\n:1");
	CHECK_EQ_INT(registry_up(r, &s), -EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = sess("alice", big, GW_A);
	CHECK_EQ_INT(registry_up(r, &s), -EINVAL);
	CHECK_EQ_INT(registry_down(r, "", "s1"), -EINVAL);
	CHECK_EQ_INT(registry_touch(r, ""), -EINVAL);
	CHECK_EQ_INT(registry_version(r), 0);
	CHECK_EQ_INT(registry_count(r), 0);
	registry_free(r);
}

static void
test_full_replace(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session old[] = {
		sess("alice", "s1", GW_A),
		sess("bob", "s2", GW_A),
		sess("carol", "s3", GW_A),
	};
	struct registry_session other = sess("dave", "s9", GW_B);
	struct registry_session now[] = {
		sess("bob", "s2", GW_A),
		sess("erin", "s4", GW_A),
	};

	CHECK_EQ_INT(registry_replace_gateway(r, GW_A, old, 3), 3);
	CHECK_EQ_INT(registry_up(r, &other), 1);
	CHECK_EQ_INT(registry_replace_gateway(r, GW_A, old, 3), 0);
	CHECK_EQ_INT(registry_replace_gateway(r, GW_A, now, 2), 3);
	CHECK(!online(r, "alice"));
	CHECK(online(r, "bob"));
	CHECK(!online(r, "carol"));
	CHECK(online(r, "erin"));
	CHECK(online(r, "dave"));
	CHECK_EQ_INT(registry_count(r), 3);
	CHECK_EQ_INT(registry_version(r), 7);
	CHECK_EQ_INT(registry_replace_gateway(r, GW_A, NULL, 0), 2);
	CHECK_EQ_INT(registry_count(r), 1);
	registry_free(r);
}

static void
test_full_replace_rejects_foreign_gateway(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session ups[] = {
		sess("alice", "s1", GW_A),
		sess("bob", "s2", GW_B),
	};

	CHECK_EQ_INT(registry_replace_gateway(r, GW_A, ups, 2), -EINVAL);
	CHECK_EQ_INT(registry_count(r), 0);
	CHECK_EQ_INT(registry_version(r), 0);
	registry_free(r);
}

static void
test_expiry(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_B);

	registry_touch(r, GW_A);
	registry_up(r, &a);
	registry_touch(r, GW_B);
	registry_up(r, &b);
	registry_set_clock(r, 1010000, 11000);
	registry_touch(r, GW_B);
	registry_set_clock(r, 1014999, 15999);
	CHECK_EQ_INT(registry_expire(r, 15000), 0);
	CHECK(registry_stale_gateway(r, 15000) == NULL);
	registry_set_clock(r, 1016000, 16000);
	CHECK_EQ_STR(registry_stale_gateway(r, 15000), GW_A);
	CHECK_EQ_INT(registry_expire(r, 15000), 1);
	CHECK(!online(r, "alice"));
	/* Ended when its gateway last reported, not when we noticed. */
	CHECK_EQ_INT(last_seen(r, "alice"), 1000000);
	CHECK(online(r, "bob"));
	CHECK_EQ_INT(registry_gateway_count(r), 1);
	CHECK_EQ_INT(registry_version(r), 3);
	registry_set_clock(r, 1030000, 30000);
	CHECK_EQ_INT(registry_expire(r, 15000), 1);
	CHECK_EQ_INT(registry_gateway_count(r), 0);
	CHECK_EQ_INT(registry_drop_gateway(r, GW_A), 0);
	registry_free(r);
}

static void
test_idle_gateway_expires_quietly(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);

	registry_touch(r, GW_A);
	registry_set_clock(r, 1100000, 100000);
	CHECK_EQ_INT(registry_expire(r, 15000), 0);
	CHECK_EQ_INT(registry_gateway_count(r), 0);
	CHECK_EQ_INT(registry_version(r), 0);
	registry_free(r);
}

static void
test_multi_device(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session phone = sess("alice", "p", GW_A);
	struct registry_session laptop = sess("alice", "l", GW_B);

	CHECK_EQ_INT(last_seen(r, "alice"), 0);
	registry_up(r, &phone);
	registry_up(r, &laptop);
	registry_set_clock(r, 1000100, 1100);
	registry_down(r, GW_A, "p");
	CHECK(online(r, "alice"));
	CHECK_EQ_INT(last_seen(r, "alice"), 1000100);
	registry_set_clock(r, 1000200, 1200);
	registry_down(r, GW_B, "l");
	CHECK(!online(r, "alice"));
	registry_set_clock(r, 1000900, 1900);
	CHECK_EQ_INT(last_seen(r, "alice"), 1000200);
	registry_up(r, &phone);
	CHECK(online(r, "alice"));
	CHECK_EQ_INT(last_seen(r, "alice"), 1000900);
	CHECK_EQ_INT(registry_user_count(r), 1);
	registry_free(r);
}

static void
test_forget(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_A);

	registry_up(r, &a);
	registry_up(r, &b);
	registry_down(r, GW_A, "s1");
	registry_set_clock(r, 1000000 + 1000, 2000);
	registry_down(r, GW_A, "s2");
	registry_up(r, &a);
	registry_down(r, GW_A, "s1");
	/* Now bob went offline at +1000, alice at +1000 after him. */
	registry_set_clock(r, 1000000 + 1000 + REGISTRY_FORGET_MS, 3000);
	CHECK_EQ_INT(registry_forget(r, REGISTRY_FORGET_MS), 0);
	registry_set_clock(r, 1000000 + 1001 + REGISTRY_FORGET_MS, 3000);
	CHECK_EQ_INT(registry_forget(r, REGISTRY_FORGET_MS), 2);
	CHECK_EQ_INT(last_seen(r, "alice"), 0);
	CHECK_EQ_INT(registry_user_count(r), 0);
	registry_free(r);
}

static void
test_forget_keeps_online_and_recent(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_A);

	registry_up(r, &a);
	registry_up(r, &b);
	registry_down(r, GW_A, "s2");
	registry_set_clock(r, 1000000 + 10, 2000);
	registry_up(r, &b);
	registry_down(r, GW_A, "s2");
	registry_set_clock(r, 1000000 + 5 + REGISTRY_FORGET_MS, 3000);
	CHECK_EQ_INT(registry_forget(r, REGISTRY_FORGET_MS), 0);
	CHECK(online(r, "alice"));
	CHECK_EQ_INT(last_seen(r, "bob"), 1000010);
	registry_free(r);
}

static void
test_snapshot_iteration(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session in[] = {
		sess("alice", "s1", GW_A),
		sess("bob", "s2", GW_A),
		sess("alice", "s3", GW_B),
	};
	const struct registry_session *s;
	size_t pos = 0, n = 0;
	int alice = 0;

	in[2].since_ms = 77;
	for (size_t i = 0; i < 3; i++)
		registry_up(r, &in[i]);
	while (registry_next(r, &pos, &s)) {
		n++;
		alice += strcmp(s->user_id, "alice") == 0;
		if (strcmp(s->session_id, "s3") == 0)
			CHECK_EQ_INT(s->since_ms, 77);
		else
			CHECK_EQ_INT(s->since_ms, 1000000);
	}
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(alice, 2);
	registry_free(r);
}

static void
test_version_counts_changes(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_A);

	registry_up(r, &a);
	registry_up(r, &a);
	registry_up(r, &b);
	registry_down(r, GW_A, "zzz");
	registry_touch(r, GW_A);
	CHECK_EQ_INT(registry_version(r), 2);
	registry_drop_gateway(r, GW_A);
	CHECK_EQ_INT(registry_version(r), 4);
	CHECK_EQ_INT(seen.ups + seen.downs, 4);
	registry_free(r);
}

static void
test_free_null(void)
{
	registry_free(NULL);
}

/* The user feed: what one registry_take_users call emitted, as
 * "user:on@last_seen" items joined by spaces, in user order. */
struct taken {
	char items[8][64];
	size_t n;
	char text[512];
};

static void
on_take(void *ctx, const char *user_id, const struct registry_user_state *st)
{
	struct taken *t = ctx;

	if (t->n < 8)
		snprintf(t->items[t->n++], sizeof(t->items[0]), "%s:%s@%lld",
			 user_id, st->online ? "on" : "off",
			 (long long)st->last_seen_ms);
}

static int
cmp_item(const void *a, const void *b)
{
	return strcmp(a, b);
}

static const char *
take(struct registry *r)
{
	static struct taken t;
	size_t n;

	memset(&t, 0, sizeof(t));
	n = registry_take_users(r, on_take, &t);
	qsort(t.items, t.n, sizeof(t.items[0]), cmp_item);
	for (size_t i = 0; i < t.n; i++)
		snprintf(t.text + strlen(t.text),
			 sizeof(t.text) - strlen(t.text), "%s%s", i ? " " : "",
			 t.items[i]);
	if (n != t.n)
		snprintf(t.text, sizeof(t.text), "count %zu != %zu", n, t.n);
	return t.text;
}

static void
test_take_users_reports_changes_once(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_A);

	CHECK_EQ_STR(take(r), "");
	registry_up(r, &a);
	registry_up(r, &b);
	CHECK_EQ_STR(take(r), "alice:on@1000000 bob:on@1000000");
	CHECK_EQ_STR(take(r), "");
	registry_set_clock(r, 1000700, 1700);
	registry_down(r, GW_A, "s1");
	CHECK_EQ_STR(take(r), "alice:off@1000700");
	CHECK_EQ_STR(take(r), "");
	/* The feed moves no version: routers' logic is unaffected. */
	CHECK_EQ_INT(registry_version(r), 3);
	registry_free(r);
}

static void
test_take_users_coalesces_flapping(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a1 = sess("alice", "s1", GW_A);
	struct registry_session a2 = sess("alice", "s2", GW_B);
	struct registry_session b = sess("bob", "s3", GW_A);

	registry_up(r, &a1);
	CHECK_EQ_STR(take(r), "alice:on@1000000");
	/* Reconnect within the window: down then up, nothing to say. */
	registry_down(r, GW_A, "s1");
	registry_up(r, &a2);
	/* A user never reported who comes and goes: nothing either. */
	registry_up(r, &b);
	registry_down(r, GW_A, "s3");
	CHECK_EQ_STR(take(r), "");
	/* Several flaps ending offline: one report. */
	registry_down(r, GW_B, "s2");
	registry_up(r, &a1);
	registry_down(r, GW_A, "s1");
	CHECK_EQ_STR(take(r), "alice:off@1000000");
	CHECK_EQ_INT(registry_version(r), 8);
	registry_free(r);
}

static void
test_take_users_multi_device(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a1 = sess("alice", "s1", GW_A);
	struct registry_session a2 = sess("alice", "s2", GW_B);

	registry_up(r, &a1);
	registry_up(r, &a2);
	CHECK_EQ_STR(take(r), "alice:on@1000000");
	registry_down(r, GW_A, "s1");
	CHECK_EQ_STR(take(r), "");
	registry_set_clock(r, 1000900, 1900);
	registry_down(r, GW_B, "s2");
	CHECK_EQ_STR(take(r), "alice:off@1000900");
	registry_free(r);
}

static void
test_take_users_gateway_drop(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_A);
	struct registry_session b2 = sess("bob", "s3", GW_B);

	registry_up(r, &a);
	registry_up(r, &b);
	registry_up(r, &b2);
	CHECK_EQ_STR(take(r), "alice:on@1000000 bob:on@1000000");
	registry_set_clock(r, 1020000, 21000);
	CHECK_EQ_INT(registry_drop_gateway(r, GW_A), 2);
	/* alice was last known alive at GW_A's last report; bob stays on. */
	CHECK_EQ_STR(take(r), "alice:off@1000000");
	registry_free(r);
}

static void
test_take_users_forgotten_with_user(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s2", GW_A);

	registry_up(r, &a);
	CHECK_EQ_STR(take(r), "alice:on@1000000");
	registry_down(r, GW_A, "s1");
	CHECK_EQ_STR(take(r), "alice:off@1000000");
	/* bob is still marked when he is forgotten. */
	registry_up(r, &b);
	registry_down(r, GW_A, "s2");
	registry_set_clock(r, 1000000 + REGISTRY_FORGET_MS + 1, 2000);
	CHECK_EQ_INT(registry_forget(r, REGISTRY_FORGET_MS), 2);
	CHECK_EQ_INT(registry_user_count(r), 0);
	CHECK_EQ_INT(map_count(&r->marked), 0);
	CHECK_EQ_STR(take(r), "");
	/* A forgotten user starts again from "offline". */
	registry_up(r, &a);
	CHECK_EQ_STR(take(r), "alice:on@87400001");
	registry_free(r);
}

static void
test_take_users_session_moves(void)
{
	struct seen seen;
	struct registry *r = new_registry(&seen);
	struct registry_session a = sess("alice", "s1", GW_A);
	struct registry_session b = sess("bob", "s1", GW_A);

	registry_up(r, &a);
	CHECK_EQ_STR(take(r), "alice:on@1000000");
	registry_up(r, &b);
	CHECK_EQ_STR(take(r), "alice:off@1000000 bob:on@1000000");
	registry_free(r);
}

TEST_MAIN(TEST(test_up_down), TEST(test_duplicate_up_is_no_change),
	  TEST(test_same_id_other_user_moves),
	  TEST(test_same_id_on_two_gateways), TEST(test_invalid),
	  TEST(test_full_replace),
	  TEST(test_full_replace_rejects_foreign_gateway), TEST(test_expiry),
	  TEST(test_idle_gateway_expires_quietly), TEST(test_multi_device),
	  TEST(test_forget), TEST(test_forget_keeps_online_and_recent),
	  TEST(test_snapshot_iteration), TEST(test_version_counts_changes),
	  TEST(test_free_null), TEST(test_take_users_reports_changes_once),
	  TEST(test_take_users_coalesces_flapping),
	  TEST(test_take_users_multi_device),
	  TEST(test_take_users_gateway_drop),
	  TEST(test_take_users_forgotten_with_user),
	  TEST(test_take_users_session_moves))
