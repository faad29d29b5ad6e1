/* Unit tests of the RPC rules that need no database: limits, who may
 * read what, paging, and the answers to bad requests and a dead server. */
#include "rpc.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

static void
test_limit(void)
{
	CHECK_EQ_INT(rpc_limit(0), 100);
	CHECK_EQ_INT(rpc_limit(1), 1);
	CHECK_EQ_INT(rpc_limit(1000), 1000);
	CHECK_EQ_INT(rpc_limit(1001), 1000);
	CHECK_EQ_INT(rpc_limit(UINT32_MAX), 1000);
}

static void
test_authorize(void)
{
	struct db_access none = { 0 };
	struct db_access member = { .room = true,
				    .member = true,
				    .last_seq = 9 };
	struct db_access left = { .room = true,
				  .member = true,
				  .left = true,
				  .left_after = 4,
				  .last_seq = 9 };
	struct db_access stranger = { .room = true, .last_seq = 9 };
	uint64_t cap = 77;

	CHECK_EQ_INT(rpc_authorize("dm:alice:bob", "bob", &none, &cap),
		     RPC_EMPTY_DM);
	CHECK_EQ_INT(cap, 0);
	CHECK_EQ_INT(rpc_authorize("dm:alice:bob", "carol", &none, &cap),
		     RPC_NOT_FOUND);
	CHECK_EQ_INT(rpc_authorize("dm:bob:alice", "bob", &none, &cap),
		     RPC_NOT_FOUND);
	CHECK_EQ_INT(rpc_authorize("g1", "bob", &none, &cap), RPC_NOT_FOUND);
	CHECK_EQ_INT(rpc_authorize("g1", "bob", &member, &cap), RPC_READ);
	CHECK_EQ_INT(cap, 9);
	CHECK_EQ_INT(rpc_authorize("g1", "bob", &left, &cap), RPC_READ);
	CHECK_EQ_INT(cap, 4);
	CHECK_EQ_INT(rpc_authorize("g1", "bob", &stranger, &cap),
		     RPC_FORBIDDEN);
}

static Parley__V1__Message **
messages(size_t n)
{
	Parley__V1__Message **msgs = xcalloc(n, sizeof(Parley__V1__Message *));

	for (size_t i = 0; i < n; i++) {
		msgs[i] = xmalloc(sizeof(**msgs));
		parley__v1__message__init(msgs[i]);
		msgs[i]->room_id = xstrdup("r");
		msgs[i]->sender_id = xstrdup("s");
		msgs[i]->client_msg_id = xstrdup("c");
		msgs[i]->body = xstrdup("b");
		msgs[i]->seq = i + 1;
	}
	return msgs;
}

static void
test_page(void)
{
	Parley__Internal__V1__StoreReply *rep = rpc_sync_result("r", 5);

	rpc_page(rep->sync_result, messages(3), 3, 2);
	CHECK(rep->sync_result->has_more);
	CHECK_EQ_INT(rep->sync_result->n_messages, 2);
	CHECK_EQ_INT(rep->sync_result->messages[1]->seq, 2);
	rpc_reverse(rep->sync_result->messages, 2);
	CHECK_EQ_INT(rep->sync_result->messages[0]->seq, 2);
	rpc_reply_free(rep);
	rep = rpc_sync_result("r", 5);
	rpc_page(rep->sync_result, messages(2), 2, 2);
	CHECK(!rep->sync_result->has_more);
	CHECK_EQ_INT(rep->sync_result->n_messages, 2);
	rpc_reply_free(rep);
}

static Parley__V1__RoomEvent *
event_at(uint64_t seq)
{
	Parley__V1__RoomEvent *e = xcalloc(1, sizeof(*e));

	parley__v1__room_event__init(e);
	e->room_id = xstrdup("r");
	e->name = xstrdup("");
	e->actor_id = xstrdup("");
	e->seq = seq;
	return e;
}

/* A page stops at RPC_PAGE_BYTES of bodies but keeps one message however
 * big; events past its new end are left for the next page. */
static void
test_trim(void)
{
	Parley__Internal__V1__StoreReply *rep = rpc_sync_result("r", 9);
	Parley__V1__SyncResult *sr = rep->sync_result;
	size_t big = 100 * 1024;

	sr->messages = messages(5);
	sr->n_messages = 5;
	for (size_t i = 0; i < 5; i++) {
		free(sr->messages[i]->body);
		sr->messages[i]->body = xmalloc(big + 1);
		memset(sr->messages[i]->body, 'x', big);
		sr->messages[i]->body[big] = 0;
	}
	sr->events = xcalloc(3, sizeof(*sr->events));
	sr->events[0] = event_at(0);
	sr->events[1] = event_at(2);
	sr->events[2] = event_at(4);
	sr->n_events = 3;
	CHECK_EQ_INT(rpc_trim(sr, RPC_PAGE_BYTES), 2 * big);
	CHECK_EQ_INT(sr->n_messages, 2);
	CHECK(sr->has_more);
	CHECK_EQ_INT(sr->n_events, 2);
	CHECK_EQ_INT(sr->events[1]->seq, 2);
	/* No budget left: still one message. */
	CHECK_EQ_INT(rpc_trim(sr, 0), big);
	CHECK_EQ_INT(sr->n_messages, 1);
	CHECK_EQ_INT(sr->n_events, 1);
	rpc_reply_free(rep);
	/* Within the budget: nothing changes. */
	rep = rpc_sync_result("r", 9);
	rep->sync_result->messages = messages(3);
	rep->sync_result->n_messages = 3;
	CHECK_EQ_INT(rpc_trim(rep->sync_result, 3), 3);
	CHECK_EQ_INT(rep->sync_result->n_messages, 3);
	CHECK(!rep->sync_result->has_more);
	rpc_reply_free(rep);
}

static void
test_page_end(void)
{
	CHECK_EQ_INT(rpc_page_end(0, 100, 5), 5);
	CHECK_EQ_INT(rpc_page_end(0, 5, 5), 5);
	CHECK_EQ_INT(rpc_page_end(0, 4, 5), 4);
	CHECK_EQ_INT(rpc_page_end(10, 3, 1000), 13);
	CHECK(rpc_page_end(UINT64_MAX - 2, 1000, UINT64_MAX) == UINT64_MAX);
}

static void
test_sync_from_cache(void)
{
	struct cache *c = cache_new(4, 8, 1 << 20, 1);
	Parley__Internal__V1__StoreReply *rep = rpc_sync_result("r", 12);
	Parley__V1__SyncResult *sr = rep->sync_result;

	for (uint64_t s = 3; s <= 12; s++)
		cache_add(c, "r", s, (int64_t)s * 10, "alice", "c", "body");
	CHECK(!rpc_from_cache(NULL, sr, 8, 100, 12));
	CHECK(!rpc_from_cache(c, sr, 3, 3, 12)); /* 4 is gone */
	CHECK(!rpc_from_cache(c, sr, 3, 9, 12)); /* more than a room holds */
	CHECK(rpc_from_cache(c, sr, 4, 100, 12));
	CHECK_EQ_INT(sr->n_messages, 8);
	CHECK(!sr->has_more);
	CHECK_EQ_INT(sr->messages[0]->seq, 5);
	CHECK_EQ_INT(sr->messages[7]->seq, 12);
	CHECK_EQ_INT(sr->messages[7]->ts_ms, 120);
	CHECK_EQ_STR(sr->messages[0]->room_id, "r");
	CHECK_EQ_STR(sr->messages[0]->sender_id, "alice");
	rpc_reply_free(rep);
	rep = rpc_sync_result("r", 12);
	CHECK(rpc_from_cache(c, rep->sync_result, 6, 2, 12));
	CHECK_EQ_INT(rep->sync_result->n_messages, 2);
	CHECK(rep->sync_result->has_more);
	rpc_reply_free(rep);
	/* A horizon below what the cache holds (a removed member). */
	rep = rpc_sync_result("r", 7);
	CHECK(rpc_from_cache(c, rep->sync_result, 5, 100, 7));
	CHECK_EQ_INT(rep->sync_result->n_messages, 2);
	CHECK_EQ_INT(rep->sync_result->messages[1]->seq, 7);
	rpc_reply_free(rep);
	cache_free(c);
}

static Parley__Internal__V1__StoreReply *
sync_as(struct db *db, const char *user, const char *room)
{
	Parley__Internal__V1__StoreRequest req =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;
	Parley__V1__Sync s = PARLEY__V1__SYNC__INIT;

	req.user_id = (char *)user;
	req.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC;
	req.sync = &s;
	s.room_id = (char *)room;
	return rpc_handle(db, NULL, &req);
}

static void
test_bad_requests(void)
{
	Parley__Internal__V1__StoreReply *rep;

	rep = sync_as(NULL, "no:colon", "g1");
	CHECK_EQ_INT(rep->reply_case,
		     PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR);
	CHECK_EQ_INT(rep->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	CHECK(!rep->error->retryable);
	rpc_reply_free(rep);
	rep = sync_as(NULL, "bob", "bad\xff");
	CHECK_EQ_INT(rep->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	rpc_reply_free(rep);
}

static void
test_dead_database_is_retryable(void)
{
	struct db *db = db_new("host=127.0.0.1 port=1 dbname=x user=x "
			       "connect_timeout=1",
			       "test");
	Parley__Internal__V1__StoreReply *rep = sync_as(db, "bob", "g1");

	CHECK_EQ_INT(rep->reply_case,
		     PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR);
	CHECK_EQ_INT(rep->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE);
	CHECK(rep->error->retryable);
	CHECK_EQ_STR(rep->error->room_id, "g1");
	rpc_reply_free(rep);
	db_free(db);
}

TEST_MAIN(TEST(test_limit), TEST(test_authorize), TEST(test_page),
	  TEST(test_trim), TEST(test_page_end), TEST(test_sync_from_cache),
	  TEST(test_bad_requests), TEST(test_dead_database_is_retryable))
