/* The recent-messages cache (rules in store.h): rooms hash to shards, each
 * with a mutex, a map and an LRU list; a room is a ring of reference-counted
 * messages holding one contiguous run of seqs. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "xalloc.h"

#define CACHE_SHARDS   16
#define CACHE_RING_MIN 16

struct cache_room {
	char *id;
	struct cache_msg **ring;
	size_t head, len, cap;
	uint64_t first;			/* seq of ring[head] when len > 0 */
	struct cache_room *prev, *next; /* LRU list: prev is more recent */
};

struct cache_shard {
	pthread_mutex_t lock;
	struct map rooms; /* id -> struct cache_room * */
	struct cache_room *mru, *lru;
	size_t n_rooms, max_rooms;
	size_t bytes, max_bytes;
};

struct cache {
	struct cache_shard *shards;
	size_t n_shards;
	size_t per_room;
};

/* ---- messages ---- */

static struct cache_msg *
cache_msg_new(uint64_t seq, int64_t ts_ms, const char *sender, const char *cmid,
	      const char *body)
{
	size_t ls = strlen(sender) + 1, lc = strlen(cmid) + 1;
	size_t lb = strlen(body) + 1;
	struct cache_msg *m = xmalloc(sizeof(*m) + ls + lc + lb);
	char *p = (char *)(m + 1);

	m->refs = 1;
	m->seq = seq;
	m->ts_ms = ts_ms;
	m->size = sizeof(*m) + ls + lc + lb;
	m->sender_id = memcpy(p, sender, ls);
	m->client_msg_id = memcpy(p + ls, cmid, lc);
	m->body = memcpy(p + ls + lc, body, lb);
	return m;
}

static void
cache_msg_ref(struct cache_msg *m)
{
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void
cache_msg_put(struct cache_msg *m)
{
	if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(m);
}

/* ---- rooms (shard lock held) ---- */

/* The i-th oldest slot (i < cap; head < cap, so one wrap at most). */
static struct cache_msg **
cache_room_at(struct cache_room *r, size_t i)
{
	size_t k = r->head + i;

	return &r->ring[k >= r->cap ? k - r->cap : k];
}

static uint64_t
cache_room_last(const struct cache_room *r)
{
	return r->first + r->len - 1;
}

static void
cache_room_drop_oldest(struct cache_shard *sh, struct cache_room *r)
{
	struct cache_msg *m = *cache_room_at(r, 0);

	sh->bytes -= m->size;
	cache_msg_put(m);
	r->head = r->head + 1 == r->cap ? 0 : r->head + 1;
	r->len--;
	r->first++;
}

static void
cache_room_empty(struct cache_shard *sh, struct cache_room *r)
{
	for (size_t i = 0; i < r->len; i++) {
		struct cache_msg **slot = cache_room_at(r, i);

		sh->bytes -= (*slot)->size;
		cache_msg_put(*slot);
		*slot = NULL;
	}
	r->head = r->len = 0;
}

static void
cache_room_grow(struct cache_room *r, size_t cap)
{
	struct cache_msg **ring = xcalloc(cap, sizeof(struct cache_msg *));

	for (size_t i = 0; i < r->len; i++)
		ring[i] = *cache_room_at(r, i);
	free(r->ring);
	r->ring = ring;
	r->cap = cap;
	r->head = 0;
}

/* Add m after the run; the oldest goes when the room is full. */
static void
cache_room_push(struct cache *c, struct cache_shard *sh, struct cache_room *r,
		struct cache_msg *m)
{
	if (r->len == r->cap && r->cap < c->per_room)
		cache_room_grow(r, r->cap * 2 < c->per_room ? r->cap * 2
							    : c->per_room);
	if (r->len == r->cap)
		cache_room_drop_oldest(sh, r);
	if (r->len == 0)
		r->first = m->seq;
	*cache_room_at(r, r->len++) = m;
	sh->bytes += m->size;
}

/* ---- the LRU list of a shard ---- */

static void
cache_lru_unlink(struct cache_shard *sh, struct cache_room *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		sh->mru = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		sh->lru = r->prev;
	r->prev = r->next = NULL;
}

static void
cache_lru_push(struct cache_shard *sh, struct cache_room *r)
{
	r->next = sh->mru;
	if (sh->mru)
		sh->mru->prev = r;
	sh->mru = r;
	if (sh->lru == NULL)
		sh->lru = r;
}

static void
cache_lru_touch(struct cache_shard *sh, struct cache_room *r)
{
	if (sh->mru != r) {
		cache_lru_unlink(sh, r);
		cache_lru_push(sh, r);
	}
}

static void
cache_evict(struct cache_shard *sh, struct cache_room *r)
{
	cache_lru_unlink(sh, r);
	map_del(&sh->rooms, r->id);
	cache_room_empty(sh, r);
	sh->n_rooms--;
	free(r->ring);
	free(r->id);
	free(r);
}

/* The room, made (evicting the least recent one if full) and touched.
 * A ring starts small and doubles up to per_room (never 0). */
static struct cache_room *
cache_room(struct cache *c, struct cache_shard *sh, const char *room_id)
{
	struct cache_room *r = map_get(&sh->rooms, room_id);

	if (r) {
		cache_lru_touch(sh, r);
		return r;
	}
	if (sh->n_rooms >= sh->max_rooms)
		cache_evict(sh, sh->lru);
	r = xcalloc(1, sizeof(*r));
	r->id = xstrdup(room_id);
	r->cap = c->per_room < CACHE_RING_MIN ? c->per_room : CACHE_RING_MIN;
	r->ring = xcalloc(r->cap, sizeof(struct cache_msg *));
	map_put(&sh->rooms, room_id, r);
	cache_lru_push(sh, r);
	sh->n_rooms++;
	return r;
}

/* Over the byte budget: other rooms go first (least recent first), then
 * r's oldest messages; its newest message always stays. */
static void
cache_trim(struct cache_shard *sh, struct cache_room *r)
{
	while (sh->bytes > sh->max_bytes) {
		if (sh->lru != r)
			cache_evict(sh, sh->lru);
		else if (r->len > 1)
			cache_room_drop_oldest(sh, r);
		else
			break;
	}
}

/* ---- the cache ---- */

static struct cache_shard *
cache_shard(const struct cache *c, const char *room_id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)room_id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &c->shards[h % c->n_shards];
}

struct cache *
cache_new(size_t max_rooms, size_t per_room, size_t max_bytes, size_t shards)
{
	struct cache *c;

	if (max_rooms == 0 || per_room == 0)
		return NULL;
	if (shards == 0)
		shards = CACHE_SHARDS;
	if (shards > max_rooms)
		shards = max_rooms;
	c = xcalloc(1, sizeof(*c));
	c->n_shards = shards;
	c->per_room = per_room;
	c->shards = xcalloc(shards, sizeof(*c->shards));
	for (size_t i = 0; i < shards; i++) {
		struct cache_shard *sh = &c->shards[i];

		pthread_mutex_init(&sh->lock, NULL);
		map_init(&sh->rooms);
		sh->max_rooms = max_rooms / shards + (i < max_rooms % shards);
		sh->max_bytes = max_bytes / shards ? max_bytes / shards : 1;
	}
	return c;
}

void
cache_clear(struct cache *c)
{
	for (size_t i = 0; c && i < c->n_shards; i++) {
		struct cache_shard *sh = &c->shards[i];

		pthread_mutex_lock(&sh->lock);
		while (sh->lru)
			cache_evict(sh, sh->lru);
		pthread_mutex_unlock(&sh->lock);
	}
}

void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	cache_clear(c);
	for (size_t i = 0; i < c->n_shards; i++) {
		pthread_mutex_destroy(&c->shards[i].lock);
		map_release(&c->shards[i].rooms);
	}
	free(c->shards);
	free(c);
}

void
cache_add(struct cache *c, const char *room_id, uint64_t seq, int64_t ts_ms,
	  const char *sender_id, const char *client_msg_id, const char *body)
{
	struct cache_msg *m;
	struct cache_shard *sh;
	struct cache_room *r;

	if (c == NULL)
		return;
	m = cache_msg_new(seq, ts_ms, sender_id, client_msg_id, body);
	sh = cache_shard(c, room_id);
	pthread_mutex_lock(&sh->lock);
	r = cache_room(c, sh, room_id);
	if (r->len > 0 && seq <= cache_room_last(r)) {
		cache_msg_put(m); /* held already, or older than the run */
	} else {
		/* A gap: what came between is unknown here, so start over. */
		if (r->len > 0 && seq != cache_room_last(r) + 1)
			cache_room_empty(sh, r);
		cache_room_push(c, sh, r, m);
		cache_trim(sh, r);
	}
	pthread_mutex_unlock(&sh->lock);
}

bool
cache_get(struct cache *c, const char *room_id, uint64_t lo, uint64_t hi,
	  struct cache_msg **out)
{
	struct cache_shard *sh;
	struct cache_room *r;
	bool held;

	if (c == NULL || lo > hi || hi - lo >= c->per_room)
		return false;
	sh = cache_shard(c, room_id);
	pthread_mutex_lock(&sh->lock);
	r = map_get(&sh->rooms, room_id);
	held = r && r->len > 0 && lo >= r->first && hi <= cache_room_last(r);
	if (held) {
		for (uint64_t s = lo; s <= hi; s++) {
			out[s - lo] = *cache_room_at(r, s - r->first);
			cache_msg_ref(out[s - lo]);
		}
		cache_lru_touch(sh, r);
	}
	pthread_mutex_unlock(&sh->lock);
	return held;
}

void
cache_totals(const struct cache *c, size_t *rooms, size_t *bytes)
{
	*rooms = *bytes = 0;
	for (size_t i = 0; c && i < c->n_shards; i++) {
		struct cache_shard *sh = &c->shards[i];

		pthread_mutex_lock(&sh->lock);
		*rooms += sh->n_rooms;
		*bytes += sh->bytes;
		pthread_mutex_unlock(&sh->lock);
	}
}
