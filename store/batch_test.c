/* Unit tests of the batch: folding records with the real fold and
 * checking the row changes the batch would write. */
#include "batch.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

/* Each folded record's offset in partition 0. */
static int64_t next_offset;

static void
fold_post(struct fold *f, struct batch *b, const char *room, const char *actor,
	  const char *cmid, int64_t ts)
{
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__Post p = PARLEY__LOG__V1__POST__INIT;
	struct fold_result res;

	r.room_id = (char *)room;
	r.actor = (char *)actor;
	r.ts_ms = ts;
	r.body_case = PARLEY__LOG__V1__RECORD__BODY_POST;
	r.post = &p;
	p.client_msg_id = (char *)cmid;
	p.body = (char *)"hello";
	CHECK_EQ_INT(fold_apply(f, &r, &res), 0);
	batch_note(b, 0, next_offset++, &r, &res);
}

static void
fold_rec(struct fold *f, struct batch *b, Parley__Log__V1__Record *r,
	 const char *room, const char *actor)
{
	struct fold_result res;

	r->room_id = (char *)room;
	r->actor = (char *)actor;
	r->ts_ms = 1000;
	CHECK_EQ_INT(fold_apply(f, r, &res), 0);
	batch_note(b, 0, next_offset++, r, &res);
}

static void
fold_create(struct fold *f, struct batch *b, const char *room,
	    const char *actor, char **members, size_t n)
{
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__CreateRoom c = PARLEY__LOG__V1__CREATE_ROOM__INIT;

	c.name = (char *)"team";
	c.member_ids = members;
	c.n_member_ids = n;
	r.body_case = PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM;
	r.create_room = &c;
	fold_rec(f, b, &r, room, actor);
}

static void
fold_remove(struct fold *f, struct batch *b, const char *room,
	    const char *actor, const char *user)
{
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__RemoveMember rm = PARLEY__LOG__V1__REMOVE_MEMBER__INIT;
	Parley__Log__V1__Leave lv = PARLEY__LOG__V1__LEAVE__INIT;

	if (user) {
		rm.user_id = (char *)user;
		r.body_case = PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER;
		r.remove_member = &rm;
	} else {
		r.body_case = PARLEY__LOG__V1__RECORD__BODY_LEAVE;
		r.leave = &lv;
	}
	fold_rec(f, b, &r, room, actor);
}

static void
fold_add(struct fold *f, struct batch *b, const char *room, const char *actor,
	 const char *user)
{
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__AddMembers a = PARLEY__LOG__V1__ADD_MEMBERS__INIT;
	char *ids[] = { (char *)user };

	a.user_ids = ids;
	a.n_user_ids = 1;
	r.body_case = PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS;
	r.add_members = &a;
	fold_rec(f, b, &r, room, actor);
}

static void
fold_mark(struct fold *f, struct batch *b, const char *room, const char *actor,
	  bool read, uint64_t seq)
{
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__Marker m = PARLEY__LOG__V1__MARKER__INIT;

	m.read = read;
	m.seq = seq;
	r.body_case = PARLEY__LOG__V1__RECORD__BODY_MARKER;
	r.marker = &m;
	fold_rec(f, b, &r, room, actor);
}

static struct batch_member *
member(struct batch *b, const char *room, const char *user)
{
	char *key = batch_member_key(room, user);
	struct batch_member *m = map_get(&b->members, key);

	free(key);
	return m;
}

static void
test_dm_first_post_creates_room(void)
{
	struct fold *f = fold_new();
	struct batch b;
	struct batch_room *r;

	batch_init(&b);
	fold_post(f, &b, "dm:alice:bob", "bob", "m1", 5000);
	CHECK_EQ_INT(b.accepted, 1);
	CHECK_EQ_INT(b.n_msgs, 1);
	CHECK_EQ_STR(b.msgs[0].room_id, "dm:alice:bob");
	CHECK_EQ_STR(b.msgs[0].sender_id, "bob");
	CHECK_EQ_STR(b.msgs[0].client_msg_id, "m1");
	CHECK_EQ_STR(b.msgs[0].body, "hello");
	CHECK_EQ_INT(b.msgs[0].seq, 1);
	CHECK_EQ_INT(b.msgs[0].ts_ms, 5000);
	r = map_get(&b.rooms, "dm:alice:bob");
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ_INT(r->kind, FOLD_DIRECT);
		CHECK_EQ_INT(r->last_seq, 1);
		CHECK_EQ_INT(r->last_ts, 5000);
		CHECK_EQ_INT(r->created_ts, 5000);
		CHECK(r->creator == NULL);
	}
	CHECK_EQ_INT(map_count(&b.members), 2);
	CHECK(member(&b, "dm:alice:bob", "alice") &&
	      member(&b, "dm:alice:bob", "alice")->present);
	CHECK(member(&b, "dm:alice:bob", "bob") &&
	      member(&b, "dm:alice:bob", "bob")->known);
	batch_release(&b);
	fold_free(f);
}

static void
test_duplicate_and_rejected_posts_add_no_message(void)
{
	struct fold *f = fold_new();
	struct batch b;

	batch_init(&b);
	fold_post(f, &b, "dm:alice:bob", "alice", "m1", 1000);
	fold_post(f, &b, "dm:alice:bob", "alice", "m1", 2000);
	fold_post(f, &b, "dm:alice:bob", "carol", "m2", 3000);
	fold_post(f, &b, "dm:alice:bob", "bob", "m1", 4000);
	CHECK_EQ_INT(b.records, 4);
	CHECK_EQ_INT(b.accepted, 2);
	CHECK_EQ_INT(b.duplicates, 1);
	CHECK_EQ_INT(b.rejected, 1);
	CHECK_EQ_INT(b.n_msgs, 2);
	CHECK_EQ_INT(b.msgs[1].seq, 2);
	CHECK_EQ_STR(b.msgs[1].sender_id, "bob");
	CHECK_EQ_INT(((struct batch_room *)map_get(&b.rooms, "dm:alice:bob"))
			     ->last_seq,
		     2);
	batch_release(&b);
	fold_free(f);
}

static void
test_group_membership_coalesces(void)
{
	struct fold *f = fold_new();
	char *ids[] = { (char *)"bob", (char *)"carol", (char *)"no:colon" };
	struct batch b;
	struct batch_member *m;

	batch_init(&b);
	fold_create(f, &b, "g1", "alice", ids, 3);
	CHECK_EQ_INT(map_count(&b.members), 3);
	fold_post(f, &b, "g1", "bob", "x", 1000);
	fold_remove(f, &b, "g1", "alice", "bob");
	fold_remove(f, &b, "g1", "carol", NULL);
	fold_post(f, &b, "g1", "alice", "y", 1000);
	fold_add(f, &b, "g1", "alice", "bob");
	m = member(&b, "g1", "bob");
	CHECK(m && m->present && m->known);
	if (m)
		CHECK_EQ_INT(m->joined_after, 2);
	m = member(&b, "g1", "carol");
	CHECK(m && !m->present && m->known);
	if (m)
		CHECK_EQ_INT(m->left_after, 1);
	CHECK(member(&b, "g1", "no:colon") == NULL);
	CHECK_EQ_STR(((struct batch_room *)map_get(&b.rooms, "g1"))->name,
		     "team");
	CHECK_EQ_STR(((struct batch_room *)map_get(&b.rooms, "g1"))->creator,
		     "alice");
	batch_release(&b);
	fold_free(f);
}

static void
test_loaded_room_removal_is_unknown(void)
{
	struct fold *f = fold_new();
	struct fold_member fm = { .joined_after = 0, .read = 3 };
	struct fold_room *r = fold_room_new(f, "g2", FOLD_GROUP, "old");
	struct batch b;
	struct batch_member *m;

	r->last_seq = 7;
	r->last_ts = 9000;
	fold_room_set_member(r, "alice", &fm);
	fold_room_set_member(r, "bob", &fm);
	batch_init(&b);
	fold_remove(f, &b, "g2", "bob", NULL);
	m = member(&b, "g2", "bob");
	CHECK(m && !m->present && !m->known);
	if (m)
		CHECK_EQ_INT(m->left_after, 7);
	CHECK(member(&b, "g2", "alice") == NULL);
	CHECK_EQ_INT(((struct batch_room *)map_get(&b.rooms, "g2"))->created_ts,
		     0);
	batch_release(&b);
	fold_free(f);
}

static void
test_markers_copy_member_state(void)
{
	struct fold *f = fold_new();
	struct batch b;
	struct batch_member *m;

	batch_init(&b);
	fold_post(f, &b, "dm:alice:bob", "alice", "1", 1);
	fold_post(f, &b, "dm:alice:bob", "alice", "2", 2);
	batch_reset(&b);
	fold_mark(f, &b, "dm:alice:bob", "bob", false, 1);
	fold_mark(f, &b, "dm:alice:bob", "bob", true, 99);
	fold_mark(f, &b, "dm:alice:bob", "bob", true, 1);
	CHECK_EQ_INT(b.accepted, 2);
	CHECK_EQ_INT(b.duplicates, 1);
	CHECK_EQ_INT(map_count(&b.members), 1);
	m = member(&b, "dm:alice:bob", "bob");
	CHECK(m != NULL);
	if (m) {
		CHECK_EQ_INT(m->read, 2);
		CHECK_EQ_INT(m->delivered, 2);
	}
	CHECK_EQ_INT(b.n_msgs, 0);
	batch_release(&b);
	fold_free(f);
}

static void
test_offsets(void)
{
	struct batch b;

	batch_init(&b);
	CHECK(batch_empty(&b));
	batch_offset(&b, 3, -1, 0);
	batch_offset(&b, 3, -1, 1);
	batch_offset(&b, 5, 40, 40);
	batch_offset(&b, 5, 40, 41);
	CHECK(!batch_empty(&b));
	CHECK_EQ_INT(b.n_offs, 2);
	CHECK_EQ_INT(b.offs[0].part, 3);
	CHECK_EQ_INT(b.offs[0].expected, -1);
	CHECK_EQ_INT(b.offs[0].next, 2);
	CHECK_EQ_INT(b.offs[1].expected, 40);
	CHECK_EQ_INT(b.offs[1].next, 42);
	CHECK_EQ_INT(b.gaps, 0);
	batch_offset(&b, 5, 40, 50);
	CHECK_EQ_INT(b.gaps, 1);
	CHECK_EQ_INT(b.offs[1].next, 51);
	batch_reset(&b);
	CHECK(batch_empty(&b));
	batch_release(&b);
}

static void
check_event(const struct batch_event *e, int kind, const char *actor,
	    const char *users, uint64_t after_seq)
{
	CHECK_EQ_INT(e->kind, kind);
	CHECK_EQ_STR(e->actor, actor);
	CHECK_EQ_STR(e->user_ids, users);
	CHECK_EQ_INT(e->after_seq, after_seq);
	CHECK_EQ_STR(e->room_id, "g1");
}

static void
test_room_events(void)
{
	struct fold *f = fold_new();
	char *ids[] = { (char *)"dave", (char *)"bob", (char *)"no:colon" };
	struct batch b;

	batch_init(&b);
	next_offset = 100;
	fold_create(f, &b, "g1", "carol", ids, 3);
	fold_post(f, &b, "g1", "bob", "x", 1000);
	fold_add(f, &b, "g1", "bob", "erin");
	fold_add(f, &b, "g1", "bob", "erin");	 /* duplicate: no event */
	fold_remove(f, &b, "g1", "bob", "dave"); /* not the creator */
	fold_remove(f, &b, "g1", "carol", "dave");
	fold_post(f, &b, "g1", "bob", "y", 1000);
	fold_remove(f, &b, "g1", "bob", NULL);
	CHECK_EQ_INT(b.n_events, 4);
	check_event(&b.events[0], 1, "carol", "bob,carol,dave", 0);
	CHECK_EQ_INT(b.events[0].offset, 100);
	CHECK_EQ_INT(b.events[0].part, 0);
	check_event(&b.events[1], 2, "bob", "erin", 1);
	CHECK_EQ_INT(b.events[1].offset, 102);
	check_event(&b.events[2], 3, "carol", "dave", 1);
	CHECK_EQ_INT(b.events[2].offset, 105);
	check_event(&b.events[3], 4, "bob", "bob", 2);
	CHECK_EQ_INT(b.events[3].ts_ms, 1000);
	batch_reset(&b);
	CHECK_EQ_INT(b.n_events, 0);
	fold_add(f, &b, "g1", "carol", "bob");
	CHECK_EQ_INT(b.n_events, 1);
	batch_release(&b);
	fold_free(f);
}

static void
test_bodies_are_stored_text(void)
{
	struct fold *f = fold_new();
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__Post p = PARLEY__LOG__V1__POST__INIT;
	struct fold_result res;
	struct batch b;

	batch_init(&b);
	r.room_id = (char *)"dm:alice:bob";
	r.actor = (char *)"alice";
	r.body_case = PARLEY__LOG__V1__RECORD__BODY_POST;
	r.post = &p;
	p.client_msg_id = (char *)"m";
	p.body = (char *)"a\xff"
			 "b\"c";
	CHECK_EQ_INT(fold_apply(f, &r, &res), 0);
	batch_note(&b, 0, 0, &r, &res);
	CHECK_EQ_STR(b.msgs[0].body, "a\xef\xbf\xbd"
				     "b\"c");
	batch_release(&b);
	fold_free(f);
}

static void
test_member_keys_are_unambiguous(void)
{
	char *k1 = batch_member_key("ab", "c");
	char *k2 = batch_member_key("a", "bc");

	CHECK(strcmp(k1, k2) != 0);
	free(k1);
	free(k2);
}

TEST_MAIN(TEST(test_dm_first_post_creates_room),
	  TEST(test_duplicate_and_rejected_posts_add_no_message),
	  TEST(test_group_membership_coalesces),
	  TEST(test_loaded_room_removal_is_unknown),
	  TEST(test_markers_copy_member_state), TEST(test_offsets),
	  TEST(test_room_events), TEST(test_bodies_are_stored_text),
	  TEST(test_member_keys_are_unambiguous))
