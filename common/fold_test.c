/* Unit tests of the per-room fold: seq assignment, dedup window, DM ids,
 * membership, markers, and that two folds of one log agree. */
#include "fold.c"
#include "map.c"

#include "test.h"

static Parley__Log__V1__Post post_;
static Parley__Log__V1__Record rec_;

/* A Post record (static storage: valid until the next call). */
static Parley__Log__V1__Record *
mk_post(const char *room, const char *actor, const char *cmid, int64_t ts)
{
	parley__log__v1__record__init(&rec_);
	parley__log__v1__post__init(&post_);
	rec_.room_id = (char *)room;
	rec_.actor = (char *)actor;
	rec_.ts_ms = ts;
	post_.client_msg_id = (char *)cmid;
	post_.body = "hi";
	rec_.body_case = PARLEY__LOG__V1__RECORD__BODY_POST;
	rec_.post = &post_;
	return &rec_;
}

static struct fold_result
apply(struct fold *f, Parley__Log__V1__Record *r)
{
	struct fold_result res;

	CHECK_EQ_INT(fold_apply(f, r, &res), 0);
	return res;
}

static void
test_dm_ids(void)
{
	char a[130], b[130], *id;

	CHECK(fold_dm_parse("dm:alice:bob", a, b));
	CHECK_EQ_STR(a, "alice");
	CHECK_EQ_STR(b, "bob");
	CHECK(!fold_dm_parse("dm:bob:alice", a, b));
	CHECK(!fold_dm_parse("dm:alice:alice", a, b));
	CHECK(!fold_dm_parse("dm:alice", a, b));
	CHECK(!fold_dm_parse("dm:alice:bob:carol", a, b));
	CHECK(!fold_dm_parse("g:alice:bob", a, b));
	CHECK(!fold_dm_parse("dm::bob", a, b));
	id = fold_dm_id("bob", "alice");
	CHECK_EQ_STR(id, "dm:alice:bob");
	free(id);
	CHECK(fold_dm_id("bob", "bob") == NULL);
	CHECK(fold_dm_id("a:b", "c") == NULL);
}

static void
test_dense_seq(void)
{
	struct fold *f = fold_new();
	char id[32];

	for (int i = 1; i <= 200; i++) {
		struct fold_result res;

		snprintf(id, sizeof(id), "m%d", i);
		res = apply(f, mk_post("dm:alice:bob", i % 2 ? "alice" : "bob",
				       id, 1000 + i));
		CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
		CHECK_EQ_INT(res.seq, i);
		CHECK_EQ_INT(res.created, i == 1);
	}
	CHECK_EQ_INT(fold_room_get(f, "dm:alice:bob")->last_seq, 200);
	fold_free(f);
}

static void
test_dm_outsider_rejected(void)
{
	struct fold *f = fold_new();
	struct fold_result res;

	res = apply(f, mk_post("dm:alice:bob", "carol", "x", 1));
	CHECK_EQ_INT(res.verdict, FOLD_REJECTED);
	CHECK(fold_room_get(f, "dm:alice:bob") == NULL);
	apply(f, mk_post("dm:alice:bob", "alice", "x", 2));
	res = apply(f, mk_post("dm:alice:bob", "carol", "y", 3));
	CHECK_EQ_INT(res.verdict, FOLD_REJECTED);
	CHECK_EQ_INT(res.error, PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN);
	res = apply(f, mk_post("g:nope", "alice", "z", 4));
	CHECK_EQ_INT(res.error, PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND);
	fold_free(f);
}

static void
test_dedup_window(void)
{
	struct fold *f = fold_new();
	struct fold_result res;
	int64_t t0 = 1000000;

	CHECK_EQ_INT(apply(f, mk_post("dm:a:b", "a", "x", t0)).seq, 1);
	CHECK_EQ_INT(apply(f, mk_post("dm:a:b", "b", "x", t0 + 1)).seq, 2);
	res = apply(f, mk_post("dm:a:b", "a", "x", t0 + 3600 * 1000));
	CHECK_EQ_INT(res.verdict, FOLD_DUPLICATE);
	CHECK_EQ_INT(res.seq, 1);
	CHECK_EQ_INT(res.ts_ms, t0);
	/* A clock that goes back does not shorten or stretch the window. */
	res = apply(f, mk_post("dm:a:b", "a", "x", t0 - 5000));
	CHECK_EQ_INT(res.seq, 1);
	res = apply(f,
		    mk_post("dm:a:b", "a", "x", t0 + FOLD_DEDUP_WINDOW_MS - 1));
	CHECK_EQ_INT(res.verdict, FOLD_DUPLICATE);
	res = apply(f,
		    mk_post("dm:a:b", "a", "x", t0 + FOLD_DEDUP_WINDOW_MS + 1));
	CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
	CHECK_EQ_INT(res.seq, 3);
	fold_free(f);
}

static void
test_room_time_monotonic(void)
{
	struct fold *f = fold_new();

	CHECK_EQ_INT(apply(f, mk_post("dm:a:b", "a", "1", 500)).ts_ms, 500);
	CHECK_EQ_INT(apply(f, mk_post("dm:a:b", "a", "2", 400)).ts_ms, 500);
	CHECK_EQ_INT(apply(f, mk_post("dm:a:b", "a", "3", 600)).ts_ms, 600);
	fold_free(f);
}

/* Many ids: the ring grows and wraps and lookups still find them all. */
static void
test_ring_growth(void)
{
	struct fold *f = fold_new();
	char id[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%d", i);
		apply(f, mk_post("dm:a:b", "a", id, i));
	}
	for (int i = 0; i < 1000; i += 37) {
		struct fold_result res;

		snprintf(id, sizeof(id), "%d", i);
		res = apply(f, mk_post("dm:a:b", "a", id, 2000));
		CHECK_EQ_INT(res.verdict, FOLD_DUPLICATE);
		CHECK_EQ_INT(res.seq, i + 1);
	}
	fold_free(f);
}

static Parley__Log__V1__Record *
mk_group(const char *kind, const char *room, const char *actor, char **users,
	 size_t n)
{
	static Parley__Log__V1__CreateRoom c;
	static Parley__Log__V1__AddMembers a;
	static Parley__Log__V1__RemoveMember rm;

	parley__log__v1__record__init(&rec_);
	rec_.room_id = (char *)room;
	rec_.actor = (char *)actor;
	if (strcmp(kind, "create") == 0) {
		parley__log__v1__create_room__init(&c);
		c.name = "team";
		c.member_ids = users;
		c.n_member_ids = n;
		rec_.body_case = PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM;
		rec_.create_room = &c;
	} else if (strcmp(kind, "add") == 0) {
		parley__log__v1__add_members__init(&a);
		a.user_ids = users;
		a.n_user_ids = n;
		rec_.body_case = PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS;
		rec_.add_members = &a;
	} else {
		parley__log__v1__remove_member__init(&rm);
		rm.user_id = users[0];
		rec_.body_case = PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER;
		rec_.remove_member = &rm;
	}
	return &rec_;
}

static void
test_group_membership(void)
{
	struct fold *f = fold_new();
	char *bc[] = { "bob", "carol" }, *dave[] = { "dave" },
	     *carol[] = { "carol" };
	struct fold_result res;

	res = apply(f, mk_group("create", "g:1", "alice", bc, 2));
	CHECK(res.created);
	CHECK_EQ_INT(map_count(&res.room->members), 3);
	CHECK_EQ_INT(apply(f, mk_post("g:1", "carol", "c1", 1)).seq, 1);
	res = apply(f, mk_post("g:1", "dave", "d1", 2));
	CHECK_EQ_INT(res.error, PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN);
	CHECK_EQ_INT(apply(f, mk_group("add", "g:1", "bob", dave, 1)).verdict,
		     FOLD_ACCEPTED);
	CHECK_EQ_INT(fold_room_member(res.room, "dave")->joined_after, 1);
	CHECK_EQ_INT(apply(f, mk_post("g:1", "dave", "d1", 3)).seq, 2);
	res = apply(f, mk_group("remove", "g:1", "bob", carol, 1));
	CHECK_EQ_INT(res.error, PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN);
	res = apply(f, mk_group("remove", "g:1", "alice", carol, 1));
	CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
	CHECK_EQ_STR(res.removed, "carol");
	res = apply(f, mk_post("g:1", "carol", "c2", 4));
	CHECK_EQ_INT(res.verdict, FOLD_REJECTED);
	/* A retried create by a member is a duplicate, not a new room. */
	res = apply(f, mk_group("create", "g:1", "alice", bc, 2));
	CHECK_EQ_INT(res.verdict, FOLD_DUPLICATE);
	fold_free(f);
}

/* The member limit travels in the record: an add past it is refused, the
 * same by every folder; repeats and members already in do not count. */
static void
test_members_limit(void)
{
	struct fold *f = fold_new();
	char *b[] = { "bob" }, *cd[] = { "carol", "dave", "carol" },
	     *c[] = { "carol", "bob" }, *e[] = { "erin" };
	Parley__Log__V1__Record *r;
	struct fold_result res;

	apply(f, mk_group("create", "g:2", "alice", b, 1));
	r = mk_group("add", "g:2", "alice", cd, 3);
	r->add_members->max_members = 3;
	res = apply(f, r);
	CHECK_EQ_INT(res.error, PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN);
	CHECK(fold_room_member(res.room, "carol") == NULL);
	r = mk_group("add", "g:2", "alice", c, 2);
	r->add_members->max_members = 3;
	CHECK_EQ_INT(apply(f, r).verdict, FOLD_ACCEPTED);
	r = mk_group("add", "g:2", "alice", e, 1);
	r->add_members->max_members = 3;
	CHECK_EQ_INT(apply(f, r).verdict, FOLD_REJECTED);
	/* 0: no limit (records written before the field existed). */
	r = mk_group("add", "g:2", "alice", e, 1);
	CHECK_EQ_INT(apply(f, r).verdict, FOLD_ACCEPTED);
	fold_free(f);
}

static void
test_markers_forward_only(void)
{
	static Parley__Log__V1__Marker mk;
	struct fold *f = fold_new();
	struct fold_result res;

	for (int i = 0; i < 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "%d", i);
		apply(f, mk_post("dm:a:b", "a", id, i));
	}
	parley__log__v1__record__init(&rec_);
	parley__log__v1__marker__init(&mk);
	rec_.room_id = "dm:a:b";
	rec_.actor = "b";
	rec_.body_case = PARLEY__LOG__V1__RECORD__BODY_MARKER;
	rec_.marker = &mk;
	mk.read = true;
	mk.seq = 3;
	res = apply(f, &rec_);
	CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
	CHECK_EQ_INT(fold_room_member(res.room, "b")->delivered, 3);
	mk.seq = 2;
	CHECK_EQ_INT(apply(f, &rec_).verdict, FOLD_DUPLICATE);
	mk.seq = 99;
	res = apply(f, &rec_);
	CHECK_EQ_INT(res.seq, 5);
	CHECK_EQ_INT(fold_room_member(res.room, "b")->read, 5);
	fold_free(f);
}

/* A fold rebuilt from a snapshot (as the store does) and a fold that saw
 * the whole log give the same verdicts for the tail. */
static void
test_snapshot_agrees(void)
{
	struct fold *full = fold_new(), *snap = fold_new();
	struct fold_member m = { 0 };
	struct fold_room *r;
	char id[16];

	for (int i = 1; i <= 10; i++) {
		snprintf(id, sizeof(id), "%d", i);
		apply(full, mk_post("dm:a:b", "a", id, i * 10));
	}
	r = fold_room_new(snap, "dm:a:b", FOLD_DIRECT, "");
	fold_room_set_member(r, "a", &m);
	fold_room_set_member(r, "b", &m);
	r->last_seq = 10;
	r->last_ts = 100;
	for (int i = 1; i <= 10; i++) {
		snprintf(id, sizeof(id), "%d", i);
		fold_room_add_dedup(r, "a", id, i, i * 10);
	}
	for (int i = 5; i <= 15; i++) {
		struct fold_result x, y;

		snprintf(id, sizeof(id), "%d", i);
		x = apply(full, mk_post("dm:a:b", "a", id, 200 + i));
		y = apply(snap, mk_post("dm:a:b", "a", id, 200 + i));
		CHECK_EQ_INT(x.verdict, y.verdict);
		CHECK_EQ_INT(x.seq, y.seq);
	}
	fold_free(full);
	fold_free(snap);
}

/* Server API records skip the actor's checks: the system posts into a room
 * it is not in, removes a member the creator added, and its retried post
 * keeps its seq. A user record with the same content is still refused. */
static void
test_server_records(void)
{
	struct fold *f = fold_new();
	char *bob[] = { "bob" };
	struct fold_result res;

	apply(f, mk_group("create", "g:1", "alice", bob, 1));
	CHECK_EQ_INT(apply(f, mk_post("g:1", "system", "k1", 1)).error,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN);
	mk_post("g:1", "system", "k1", 2)->server = true;
	res = apply(f, &rec_);
	CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
	CHECK_EQ_INT(res.seq, 1);
	mk_post("g:1", "system", "k1", 3)->server = true;
	res = apply(f, &rec_);
	CHECK_EQ_INT(res.verdict, FOLD_DUPLICATE);
	CHECK_EQ_INT(res.seq, 1);
	CHECK(fold_room_member(res.room, "system") == NULL);
	mk_group("remove", "g:1", "system", bob, 1)->server = true;
	res = apply(f, &rec_);
	CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
	CHECK_EQ_STR(res.removed, "bob");
	fold_free(f);
}

/* DeleteRoom: only from the server API; removes every member (listed,
 * sorted), then rejects posts, adds and creates; a retry is a duplicate. */
static void
test_delete_room(void)
{
	struct fold *f = fold_new();
	char *bob[] = { "bob" };
	struct fold_result res;

	apply(f, mk_group("create", "g:1", "alice", bob, 1));
	CHECK_EQ_INT(apply(f, mk_post("g:1", "bob", "b1", 1)).seq, 1);
	parley__log__v1__record__init(&rec_);
	rec_.room_id = "g:1";
	rec_.actor = "alice";
	rec_.body_case = PARLEY__LOG__V1__RECORD__BODY_DELETE_ROOM;
	CHECK_EQ_INT(apply(f, &rec_).error,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN);
	rec_.server = true;
	res = apply(f, &rec_);
	CHECK_EQ_INT(res.verdict, FOLD_ACCEPTED);
	CHECK_EQ_INT(res.n_removed_all, 2);
	CHECK_EQ_STR(res.removed_all[0], "alice");
	CHECK_EQ_STR(res.removed_all[1], "bob");
	CHECK(res.room->deleted);
	CHECK_EQ_INT(map_count(&res.room->members), 0);
	CHECK_EQ_INT(apply(f, &rec_).verdict, FOLD_DUPLICATE);
	mk_post("g:1", "system", "s1", 2)->server = true;
	CHECK_EQ_INT(apply(f, &rec_).error,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND);
	mk_group("add", "g:1", "system", bob, 1)->server = true;
	CHECK_EQ_INT(apply(f, &rec_).error,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND);
	res = apply(f, mk_group("create", "g:1", "alice", bob, 1));
	CHECK_EQ_INT(res.verdict, FOLD_REJECTED);
	CHECK_EQ_INT(res.room->last_seq, 1);
	fold_free(f);
}

static void
test_map_basics(void)
{
	struct map m;
	char key[16];
	int vals[2000];

	map_init(&m);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		vals[i] = i;
		CHECK(map_put(&m, key, &vals[i]) == NULL);
	}
	for (int i = 0; i < 2000; i += 2) {
		snprintf(key, sizeof(key), "k%d", i);
		CHECK(map_del(&m, key) == &vals[i]);
	}
	CHECK_EQ_INT(map_count(&m), 1000);
	CHECK(map_get(&m, "k2") == NULL);
	CHECK(map_get(&m, "k3") == &vals[3]);
	CHECK(map_put(&m, "k3", &vals[0]) == &vals[3]);
	map_release(&m);
}

TEST_MAIN(TEST(test_dm_ids), TEST(test_dense_seq),
	  TEST(test_dm_outsider_rejected), TEST(test_dedup_window),
	  TEST(test_room_time_monotonic), TEST(test_ring_growth),
	  TEST(test_group_membership), TEST(test_members_limit),
	  TEST(test_markers_forward_only), TEST(test_snapshot_agrees),
	  TEST(test_server_records), TEST(test_delete_room),
	  TEST(test_map_basics))
