/* Unit tests of the recent-messages cache as a data structure: runs,
 * gaps, replays, LRU and byte eviction, references, and readers racing a
 * writer. */
#include "cache.c" // NOLINT(bugprone-suspicious-include)

#include <stdio.h>

#include "test.h"

static void
add(struct cache *c, const char *room, uint64_t seq)
{
	char body[32];

	snprintf(body, sizeof(body), "m%llu", (unsigned long long)seq);
	cache_add(c, room, seq, (int64_t)seq * 10, "alice", "cid", body);
}

/* True when lo..hi of room are held with the bodies add() gave them. */
static bool
holds(struct cache *c, const char *room, uint64_t lo, uint64_t hi)
{
	struct cache_msg *out[64];
	char body[32];
	bool ok;

	if (!cache_get(c, room, lo, hi, out))
		return false;
	ok = true;
	for (uint64_t s = lo; s <= hi; s++) {
		snprintf(body, sizeof(body), "m%llu", (unsigned long long)s);
		ok = ok && out[s - lo]->seq == s &&
		     strcmp(out[s - lo]->body, body) == 0 &&
		     out[s - lo]->ts_ms == (int64_t)s * 10;
		cache_msg_put(out[s - lo]);
	}
	return ok;
}

static size_t
rooms_of(const struct cache *c)
{
	size_t rooms, bytes;

	cache_totals(c, &rooms, &bytes);
	return rooms;
}

static void
test_disabled(void)
{
	struct cache_msg *out[1];

	CHECK(cache_new(0, 256, 1 << 20, 0) == NULL);
	CHECK(cache_new(10, 0, 1 << 20, 0) == NULL);
	add(NULL, "r", 1);
	CHECK(!cache_get(NULL, "r", 1, 1, out));
	cache_clear(NULL);
	CHECK_EQ_INT(rooms_of(NULL), 0);
	cache_free(NULL);
}

static void
test_run_keeps_newest(void)
{
	struct cache *c = cache_new(10, 4, 1 << 20, 1);

	CHECK(!holds(c, "r", 1, 1));
	for (uint64_t s = 1; s <= 10; s++)
		add(c, "r", s);
	CHECK(holds(c, "r", 7, 10));
	CHECK(holds(c, "r", 8, 9));
	CHECK(!holds(c, "r", 6, 10));
	CHECK(!holds(c, "r", 10, 11));
	CHECK(!holds(c, "r", 9, 8));
	CHECK(!holds(c, "other", 7, 7));
	CHECK_EQ_INT(rooms_of(c), 1);
	cache_free(c);
}

static void
test_gap_restarts_run(void)
{
	struct cache *c = cache_new(10, 8, 1 << 20, 1);

	add(c, "r", 3);
	add(c, "r", 4);
	add(c, "r", 6); /* 5 was committed by someone else */
	CHECK(holds(c, "r", 6, 6));
	CHECK(!holds(c, "r", 4, 4));
	CHECK(!holds(c, "r", 5, 6));
	add(c, "r", 7);
	CHECK(holds(c, "r", 6, 7));
	cache_free(c);
}

static void
test_replay_changes_nothing(void)
{
	struct cache *c = cache_new(10, 8, 1 << 20, 1);
	struct cache_msg *out[1];

	add(c, "r", 1);
	add(c, "r", 2);
	cache_add(c, "r", 2, 0, "mallory", "x", "other");
	cache_add(c, "r", 1, 0, "mallory", "x", "other");
	CHECK(holds(c, "r", 1, 2));
	CHECK(cache_get(c, "r", 2, 2, out));
	if (!test_current_failed_) {
		CHECK_EQ_STR(out[0]->sender_id, "alice");
		CHECK_EQ_STR(out[0]->client_msg_id, "cid");
		cache_msg_put(out[0]);
	}
	cache_free(c);
}

static void
test_lru_rooms(void)
{
	struct cache *c = cache_new(2, 8, 1 << 20, 1);

	add(c, "a", 1);
	add(c, "b", 1);
	CHECK(holds(c, "a", 1, 1)); /* a is now the most recent */
	add(c, "c", 1);
	CHECK_EQ_INT(rooms_of(c), 2);
	CHECK(holds(c, "a", 1, 1));
	CHECK(!holds(c, "b", 1, 1));
	CHECK(holds(c, "c", 1, 1));
	add(c, "c", 2); /* c most recent: a goes next */
	add(c, "d", 5);
	CHECK(!holds(c, "a", 1, 1));
	CHECK(holds(c, "c", 1, 2));
	CHECK(holds(c, "d", 5, 5));
	cache_clear(c);
	CHECK_EQ_INT(rooms_of(c), 0);
	CHECK(!holds(c, "c", 1, 1));
	cache_free(c);
}

static void
test_shards_share_the_room_limit(void)
{
	struct cache *c = cache_new(40, 2, 1 << 20, 8);
	char room[16];

	for (int i = 0; i < 1000; i++) {
		snprintf(room, sizeof(room), "room%d", i);
		add(c, room, 1);
	}
	CHECK(rooms_of(c) <= 40);
	CHECK(rooms_of(c) >= 8);
	CHECK(holds(c, "room999", 1, 1));
	cache_free(c);
	c = cache_new(3, 2, 1 << 20, 0); /* never more shards than rooms */
	CHECK_EQ_INT(c->n_shards, 3);
	cache_free(c);
}

static void
test_byte_budget(void)
{
	size_t one = sizeof(struct cache_msg) + strlen("alice") +
		     strlen("cid") + strlen("m1") + 3;
	struct cache *c = cache_new(100, 100, 4 * one, 1);
	size_t rooms, bytes;

	add(c, "a", 1);
	add(c, "a", 2);
	add(c, "b", 1);
	add(c, "b", 2);
	cache_totals(c, &rooms, &bytes);
	CHECK_EQ_INT(rooms, 2);
	CHECK_EQ_INT(bytes, 4 * one);
	add(c, "b", 3); /* over budget: the least recent room goes */
	CHECK(!holds(c, "a", 1, 1));
	CHECK(holds(c, "b", 1, 3));
	add(c, "b", 4);
	add(c, "b", 5); /* one room over budget: its oldest go */
	CHECK(!holds(c, "b", 1, 1));
	CHECK(holds(c, "b", 2, 5));
	cache_totals(c, &rooms, &bytes);
	CHECK(bytes <= 4 * one + 8);
	cache_free(c);
}

static void
test_references_outlive_eviction(void)
{
	struct cache *c = cache_new(1, 2, 1 << 20, 1);
	struct cache_msg *out[2];

	add(c, "a", 1);
	add(c, "a", 2);
	CHECK(cache_get(c, "a", 1, 2, out));
	add(c, "a", 3); /* 1 leaves the ring */
	add(c, "b", 1); /* a leaves the cache */
	cache_clear(c);
	CHECK_EQ_STR(out[0]->body, "m1");
	CHECK_EQ_STR(out[1]->body, "m2");
	cache_msg_put(out[0]);
	cache_msg_put(out[1]);
	cache_free(c);
}

/* One writer appends to 8 rooms while readers check what they get. */
#define RACE_ROOMS 8
#define RACE_SEQS  2500

struct race {
	struct cache *c;
	int started, done, bad, hits;
	uint64_t last[RACE_ROOMS]; /* newest seq added per room */
};

static void *
race_writer(void *arg)
{
	struct race *r = arg;
	char room[16];

	while (__atomic_load_n(&r->started, __ATOMIC_ACQUIRE) < 3)
		;
	for (uint64_t s = 1; s <= RACE_SEQS; s++) {
		for (int k = 0; k < RACE_ROOMS; k++) {
			snprintf(room, sizeof(room), "r%d", k);
			add(r->c, room, s);
			__atomic_store_n(&r->last[k], s, __ATOMIC_RELEASE);
		}
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Read the newest 16 of room k; count wrong seqs and hits. */
static void
race_read(struct race *r, unsigned k)
{
	uint64_t last = __atomic_load_n(&r->last[k], __ATOMIC_ACQUIRE);
	struct cache_msg *out[16] = { NULL };
	char room[16];

	if (last < 16)
		return;
	snprintf(room, sizeof(room), "r%u", k);
	if (!cache_get(r->c, room, last - 15, last, out))
		return;
	__atomic_add_fetch(&r->hits, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 16; i++) {
		if (out[i] == NULL || out[i]->seq != last - 15 + (uint64_t)i ||
		    strcmp(out[i]->sender_id, "alice") != 0)
			__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
		cache_msg_put(out[i]);
	}
}

static void *
race_reader(void *arg)
{
	struct race *r = arg;
	unsigned i = 0;

	__atomic_add_fetch(&r->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
		race_read(r, i++ % RACE_ROOMS);
	for (unsigned k = 0; k < RACE_ROOMS; k++)
		race_read(r, k);
	return NULL;
}

static void
test_readers_race_a_writer(void)
{
	struct race r = { .c = cache_new(16, 64, 1 << 20, 2) };
	pthread_t w, rd[3];

	for (int i = 0; i < 3; i++)
		pthread_create(&rd[i], NULL, race_reader, &r);
	pthread_create(&w, NULL, race_writer, &r);
	pthread_join(w, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(rd[i], NULL);
	CHECK_EQ_INT(r.bad, 0);
	CHECK(r.hits >= 3 * RACE_ROOMS);
	CHECK_EQ_INT(rooms_of(r.c), RACE_ROOMS);
	cache_free(r.c);
}

TEST_MAIN(TEST(test_disabled), TEST(test_run_keeps_newest),
	  TEST(test_gap_restarts_run), TEST(test_replay_changes_nothing),
	  TEST(test_lru_rooms), TEST(test_shards_share_the_room_limit),
	  TEST(test_byte_budget), TEST(test_references_outlive_eviction),
	  TEST(test_readers_race_a_writer))
