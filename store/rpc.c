/* The store's request/reply server: Sync, History and ListRooms read from
 * PostgreSQL by a few worker threads (one NNG rep context and one database
 * connection each), answering only what the asking user may see; a Sync's
 * messages come from the recent-messages cache when it holds the page.
 * One StoreRequest per NNG message, one StoreReply back. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "jwt.h"
#include "log.h"
#include "store.h"
#include "utf8.h"
#include "xalloc.h"

#define RPC_LIMIT_DEFAULT 100
#define RPC_LIMIT_MAX	  1000
/* Room events one Sync page carries at most (see docs/PROTOCOL.md). */
#define RPC_EVENTS_MAX	   1000
#define RPC_SYNC_ROOMS_MAX 100
/* A page stops once its message bodies reach RPC_PAGE_BYTES (it always
 * holds one message, so up to 64 KiB more); a SyncRooms answer once they
 * reach RPC_SYNC_ROOMS_BYTES in all (each room still gets one message).
 * Without it a page of 1000 messages of 64 KiB would be 64 MB, which the
 * gateway's outgoing queue bound (PARLEY_OUTQ_MAX) closes as too slow. */
#define RPC_PAGE_BYTES	     (256 * 1024)
#define RPC_SYNC_ROOMS_BYTES (1024 * 1024)

struct rpc_worker {
	nng_ctx ctx;
	nng_aio *aio;
	struct db *db;
	struct cache *cache; /* shared; may be NULL */
	pthread_t thread;
};

struct rpc {
	nng_socket sock;
	struct rpc_worker *workers;
	int n_workers;
};

/* ---- replies ---- */

static Parley__Internal__V1__StoreReply *
rpc_reply_new(void)
{
	Parley__Internal__V1__StoreReply *rep = xmalloc(sizeof(*rep));

	parley__internal__v1__store_reply__init(rep);
	return rep;
}

static Parley__Internal__V1__StoreReply *
rpc_error(int code, const char *msg, bool retryable, const char *room_id)
{
	Parley__Internal__V1__StoreReply *rep = rpc_reply_new();
	Parley__V1__Error *e = xmalloc(sizeof(*e));

	parley__v1__error__init(e);
	e->code = (Parley__V1__ErrorCode)code;
	e->message = xstrdup(msg);
	e->retryable = retryable;
	e->room_id = xstrdup(room_id ? room_id : "");
	rep->reply_case = PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR;
	rep->error = e;
	return rep;
}

/* The reply to a failed query: the database is down, or something
 * else went wrong (logged by db.c). */
static Parley__Internal__V1__StoreReply *
rpc_db_error(int rc, const char *room_id)
{
	if (rc == -ENOTCONN)
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
				 "history is unavailable, retry later", true,
				 room_id);
	return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
			 "history query failed", false, room_id);
}

static Parley__Internal__V1__StoreReply *
rpc_sync_result(const char *room_id, uint64_t last_seq)
{
	Parley__Internal__V1__StoreReply *rep = rpc_reply_new();
	Parley__V1__SyncResult *sr = xmalloc(sizeof(*sr));

	parley__v1__sync_result__init(sr);
	sr->room_id = xstrdup(room_id);
	sr->last_seq = last_seq;
	rep->reply_case = PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_RESULT;
	rep->sync_result = sr;
	return rep;
}

static void
rpc_sync_result_free(Parley__V1__SyncResult *sr)
{
	free(sr->room_id);
	db_messages_free(sr->messages, sr->n_messages);
	db_events_free(sr->events, sr->n_events);
	free(sr);
}

void
rpc_reply_free(Parley__Internal__V1__StoreReply *rep)
{
	if (rep == NULL)
		return;
	if (rep->reply_case ==
	    PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_ROOMS_RESULT) {
		Parley__V1__SyncRoomsResult *all = rep->sync_rooms_result;

		for (size_t i = 0; i < all->n_results; i++)
			rpc_sync_result_free(all->results[i]);
		free(all->results);
		free(all);
		free(rep);
		return;
	}
	if (rep->reply_case == PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR) {
		free(rep->error->message);
		free(rep->error->room_id);
		free(rep->error);
	} else if (rep->reply_case ==
		   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_RESULT) {
		rpc_sync_result_free(rep->sync_result);
	} else if (rep->reply_case ==
		   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM_LIST) {
		db_rooms_free(rep->room_list->rooms, rep->room_list->n_rooms);
		free(rep->room_list);
	} else if (rep->reply_case ==
		   PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM) {
		parley__server__v1__get_room_response__free_unpacked(rep->room,
								     NULL);
	}
	free(rep);
}

/* ---- requests ---- */

static uint32_t
rpc_limit(uint32_t asked)
{
	if (asked == 0)
		return RPC_LIMIT_DEFAULT;
	return asked > RPC_LIMIT_MAX ? RPC_LIMIT_MAX : asked;
}

enum rpc_verdict { RPC_READ, RPC_EMPTY_DM, RPC_NOT_FOUND, RPC_FORBIDDEN };

/* May user read room, and up to which seq (*cap)? A member reads up to
 * last_seq, a removed member up to when it left, and either user of a
 * DM nobody has written to yet sees an empty room. */
static enum rpc_verdict
rpc_authorize(const char *room_id, const char *user, const struct db_access *a,
	      uint64_t *cap)
{
	char u1[JWT_SUB_MAX + 1], u2[JWT_SUB_MAX + 1];

	*cap = 0;
	if (!a->room) {
		if (fold_dm_parse(room_id, u1, u2) &&
		    (strcmp(user, u1) == 0 || strcmp(user, u2) == 0))
			return RPC_EMPTY_DM;
		return RPC_NOT_FOUND;
	}
	if (!a->member)
		return RPC_FORBIDDEN;
	*cap = a->last_seq;
	if (a->left && a->left_after < *cap)
		*cap = a->left_after;
	return RPC_READ;
}

/* On RPC_READ returns NULL with *cap set, else the reply. */
static Parley__Internal__V1__StoreReply *
rpc_verdict(const char *room_id, const char *user, const struct db_access *a,
	    uint64_t *cap)
{
	switch (rpc_authorize(room_id, user, a, cap)) {
	case RPC_READ:
		return NULL;
	case RPC_EMPTY_DM:
		return rpc_sync_result(room_id, 0);
	case RPC_NOT_FOUND:
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				 "no such room", false, room_id);
	default:
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				 "not a member of this room", false, room_id);
	}
}

/* Check access; on RPC_READ returns NULL with *cap set, else the reply. */
static Parley__Internal__V1__StoreReply *
rpc_check(struct db *db, const char *room_id, const char *user, uint64_t *cap)
{
	struct db_access a;
	int rc = db_access(db, room_id, user, &a);

	if (rc < 0)
		return rpc_db_error(rc, room_id);
	return rpc_verdict(room_id, user, &a, cap);
}

/* The server API reads every message of an existing room. */
static Parley__Internal__V1__StoreReply *
rpc_check_server(struct db *db, const char *room_id, uint64_t *cap)
{
	struct db_access a;
	int rc = db_access(db, room_id, "", &a);

	if (rc < 0)
		return rpc_db_error(rc, room_id);
	if (!a.room)
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				 "no such room", false, room_id);
	*cap = a.last_seq;
	return NULL;
}

/* Make the first limit of msgs sr's page (the caller asked for limit + 1:
 * one more means has_more). sr takes the array over. */
static void
rpc_page(Parley__V1__SyncResult *sr, Parley__V1__Message **msgs, size_t n,
	 uint32_t limit)
{
	sr->has_more = n > limit;
	while (n > limit)
		db_message_free(msgs[--n]);
	sr->messages = msgs;
	sr->n_messages = n;
}

/* Keep sr's first messages while their bodies stay within budget (at
 * least one); the rest are freed and has_more is set. A Sync page's
 * events after its new end come with the next page instead. The body
 * bytes kept. */
static size_t
rpc_trim(Parley__V1__SyncResult *sr, size_t budget)
{
	size_t used = 0, keep = 0, ev = 0;

	while (keep < sr->n_messages) {
		size_t b = strlen(sr->messages[keep]->body);

		if (keep > 0 && used + b > budget)
			break;
		used += b;
		keep++;
	}
	if (keep == sr->n_messages)
		return used;
	sr->has_more = true;
	while (sr->n_messages > keep)
		db_message_free(sr->messages[--sr->n_messages]);
	for (size_t i = 0; i < sr->n_events; i++) {
		if (sr->events[i]->seq <= sr->messages[keep - 1]->seq)
			sr->events[ev++] = sr->events[i];
		else
			db_event_free(sr->events[i]);
	}
	sr->n_events = ev;
	return used;
}

/* The last seq of the page after `after` (< cap): seqs are dense. */
static uint64_t
rpc_page_end(uint64_t after, uint32_t limit, uint64_t cap)
{
	return cap - after > limit ? after + limit : cap;
}

static Parley__V1__Message *
rpc_message_copy(const char *room_id, const struct cache_msg *c)
{
	Parley__V1__Message *m = xmalloc(sizeof(*m));

	parley__v1__message__init(m);
	m->room_id = xstrdup(room_id);
	m->seq = c->seq;
	m->sender_id = xstrdup(c->sender_id);
	m->client_msg_id = xstrdup(c->client_msg_id);
	m->body = xstrdup(c->body);
	m->ts_ms = c->ts_ms;
	return m;
}

/* Fill sr's page after `after` from the cache if it holds all of it.
 * The copies are made outside the cache's lock. */
static bool
rpc_from_cache(struct cache *cache, Parley__V1__SyncResult *sr, uint64_t after,
	       uint32_t limit, uint64_t cap)
{
	uint64_t end = rpc_page_end(after, limit, cap);
	size_t n = (size_t)(end - after);
	struct cache_msg **held;

	if (cache == NULL)
		return false;
	held = xcalloc(n, sizeof(struct cache_msg *));
	if (!cache_get(cache, sr->room_id, after + 1, end, held)) {
		free(held);
		return false;
	}
	sr->messages = xcalloc(n, sizeof(Parley__V1__Message *));
	for (size_t i = 0; i < n; i++) {
		sr->messages[i] = rpc_message_copy(sr->room_id, held[i]);
		cache_msg_put(held[i]);
	}
	sr->n_messages = n;
	sr->has_more = end < cap;
	free(held);
	return true;
}

/* The messages of a Sync page after `after` (< cap). 0 or -errno. */
static int
rpc_sync_messages(struct db *db, struct cache *cache,
		  Parley__V1__SyncResult *sr, uint64_t after, uint32_t limit,
		  uint64_t cap)
{
	Parley__V1__Message **msgs;
	size_t n;
	int rc;

	if (rpc_from_cache(cache, sr, after, limit, cap)) {
		metric_add(stats_get()->cache_hits, 1);
		return 0;
	}
	if (cache)
		metric_add(stats_get()->cache_misses, 1);
	rc = db_messages(db, sr->room_id, after, cap, limit + 1, false, &msgs,
			 &n);
	if (rc == 0)
		rpc_page(sr, msgs, n, limit);
	return rc;
}

/* Authorization, the room's last_seq and the page's room events always
 * come from PostgreSQL (one round trip); only message rows may come from
 * the cache. So a cache that missed commits (another store wrote the
 * partition meanwhile) can only miss, never hide or leak a message. */
static Parley__Internal__V1__StoreReply *
rpc_sync(struct db *db, struct cache *cache, const char *user,
	 const Parley__V1__Sync *s, size_t *budget)
{
	uint32_t limit = rpc_limit(s->limit);
	uint64_t end = s->after_seq + limit, cap = 0;
	Parley__Internal__V1__StoreReply *rep;
	Parley__V1__RoomEvent **events;
	struct db_access a;
	size_t n_events, used;
	int rc;

	if (end < s->after_seq)
		end = UINT64_MAX;
	rc = db_sync_access(db, s->room_id, user, s->after_seq, end,
			    RPC_EVENTS_MAX, &a, &events, &n_events);
	if (rc < 0)
		return rpc_db_error(rc, s->room_id);
	rep = rpc_verdict(s->room_id, user, &a, &cap);
	if (rep) {
		db_events_free(events, n_events);
		return rep;
	}
	rep = rpc_sync_result(s->room_id, cap);
	rep->sync_result->events = events;
	rep->sync_result->n_events = n_events;
	if (s->after_seq >= cap)
		return rep;
	rc = rpc_sync_messages(db, cache, rep->sync_result, s->after_seq, limit,
			       cap);
	if (rc < 0) {
		rpc_reply_free(rep);
		return rpc_db_error(rc, s->room_id);
	}
	used = rpc_trim(rep->sync_result, *budget);
	*budget = used < *budget ? *budget - used : 0;
	return rep;
}

static void
rpc_reverse(Parley__V1__Message **msgs, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		Parley__V1__Message *t = msgs[i];

		msgs[i] = msgs[n - 1 - i];
		msgs[n - 1 - i] = t;
	}
}

static Parley__Internal__V1__StoreReply *
rpc_history(struct db *db, const char *user, bool server,
	    const Parley__V1__History *h)
{
	uint32_t limit = rpc_limit(h->limit);
	Parley__Internal__V1__StoreReply *rep;
	Parley__V1__Message **msgs;
	uint64_t cap = 0;
	size_t n;
	int rc;

	rep = server ? rpc_check_server(db, h->room_id, &cap)
		     : rpc_check(db, h->room_id, user, &cap);
	if (rep)
		return rep;
	rep = rpc_sync_result(h->room_id, cap);
	if (h->before_seq != 0 && h->before_seq - 1 < cap)
		cap = h->before_seq - 1;
	rc = db_messages(db, h->room_id, 0, cap, limit + 1, true, &msgs, &n);
	if (rc < 0) {
		rpc_reply_free(rep);
		return rpc_db_error(rc, h->room_id);
	}
	rpc_page(rep->sync_result, msgs, n, limit);
	rpc_trim(rep->sync_result, RPC_PAGE_BYTES); /* the newest are kept */
	rpc_reverse(msgs, rep->sync_result->n_messages);
	return rep;
}

static Parley__Internal__V1__StoreReply *
rpc_list_rooms(struct db *db, const char *user)
{
	Parley__Internal__V1__StoreReply *rep;
	Parley__V1__RoomSummary **rooms;
	Parley__V1__RoomList *rl;
	size_t n;
	int rc = db_rooms_of(db, user, &rooms, &n);

	if (rc < 0)
		return rpc_db_error(rc, NULL);
	rl = xmalloc(sizeof(*rl));
	parley__v1__room_list__init(rl);
	rl->rooms = rooms;
	rl->n_rooms = n;
	rep = rpc_reply_new();
	rep->reply_case = PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM_LIST;
	rep->room_list = rl;
	return rep;
}

static bool
rpc_unavailable(const Parley__Internal__V1__StoreReply *rep)
{
	return rep->reply_case ==
		       PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR &&
	       rep->error->code ==
		       PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE;
}

/* Launch sync: each room as a Sync of its own. A room the user may not
 * read is left out; the store being unavailable fails the whole request
 * (retryable). */
static Parley__Internal__V1__StoreReply *
rpc_sync_rooms(struct db *db, struct cache *cache, const char *user,
	       const Parley__V1__SyncRooms *req)
{
	Parley__V1__SyncRoomsResult *all;
	Parley__Internal__V1__StoreReply *rep;
	size_t left = RPC_SYNC_ROOMS_BYTES;

	if (req->n_rooms > RPC_SYNC_ROOMS_MAX)
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
				 "at most 100 rooms per SyncRooms", false,
				 NULL);
	all = xcalloc(1, sizeof(*all));
	parley__v1__sync_rooms_result__init(all);
	all->results = xcalloc(req->n_rooms + 1, sizeof(*all->results));
	for (size_t i = 0; i < req->n_rooms; i++) {
		Parley__Internal__V1__StoreReply *one;

		if (!utf8_valid(req->rooms[i]->room_id))
			continue;
		size_t given = left < RPC_PAGE_BYTES ? left : RPC_PAGE_BYTES;
		size_t budget = given;

		one = rpc_sync(db, cache, user, req->rooms[i], &budget);
		left -= given - budget;
		if (rpc_unavailable(one)) {
			rep = one;
			one = rpc_reply_new();
			one->reply_case =
				PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_ROOMS_RESULT;
			one->sync_rooms_result = all;
			rpc_reply_free(one);
			return rep;
		}
		if (one->reply_case ==
		    PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_RESULT) {
			all->results[all->n_results++] = one->sync_result;
			one->reply_case =
				PARLEY__INTERNAL__V1__STORE_REPLY__REPLY__NOT_SET;
		}
		rpc_reply_free(one);
	}
	rep = rpc_reply_new();
	rep->reply_case =
		PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_SYNC_ROOMS_RESULT;
	rep->sync_rooms_result = all;
	return rep;
}

/* The server API's GetRoom (server requests only: it lists members). */
static Parley__Internal__V1__StoreReply *
rpc_get_room(struct db *db, bool server,
	     const Parley__Server__V1__GetRoomRequest *g)
{
	Parley__Internal__V1__StoreReply *rep;
	Parley__Server__V1__GetRoomResponse *info;
	int rc;

	if (!server)
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				 "GetRoom is a server API call", false, NULL);
	rc = db_room_info(db, g->room_id, &info);
	if (rc == -ENOENT)
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				 "no such room", false, g->room_id);
	if (rc < 0)
		return rpc_db_error(rc, g->room_id);
	rep = rpc_reply_new();
	rep->reply_case = PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ROOM;
	rep->room = info;
	return rep;
}

/* The room a request names, or NULL for ListRooms. */
static const char *
rpc_room_of(const Parley__Internal__V1__StoreRequest *req)
{
	if (req->req_case == PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC)
		return req->sync->room_id;
	if (req->req_case == PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_HISTORY)
		return req->history->room_id;
	if (req->req_case == PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_GET_ROOM)
		return req->get_room->room_id;
	return NULL;
}

static Parley__Internal__V1__StoreReply *
rpc_dispatch(struct db *db, struct cache *cache,
	     const Parley__Internal__V1__StoreRequest *req)
{
	switch (req->req_case) {
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC:
		return rpc_sync(db, cache, req->user_id, req->sync,
				&(size_t){ RPC_PAGE_BYTES });
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_HISTORY:
		return rpc_history(db, req->user_id, req->server, req->history);
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_GET_ROOM:
		return rpc_get_room(db, req->server, req->get_room);
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS:
		return rpc_list_rooms(db, req->user_id);
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC_ROOMS:
		return rpc_sync_rooms(db, cache, req->user_id, req->sync_rooms);
	default:
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
				 "unknown store request", false, NULL);
	}
}

Parley__Internal__V1__StoreReply *
rpc_handle(struct db *db, struct cache *cache,
	   const Parley__Internal__V1__StoreRequest *req)
{
	const char *room = rpc_room_of(req);
	Parley__Internal__V1__StoreReply *rep;
	int rc;

	/* A server read names no user (GetRoom, History of any room). */
	if ((!req->server && !jwt_valid_user(req->user_id)) ||
	    (req->server && !room) || (room && !utf8_valid(room)))
		return rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
				 "bad user or room id", false, NULL);
	rc = db_connect(db);
	if (rc < 0)
		return rpc_db_error(rc, room);
	rep = rpc_dispatch(db, cache, req);
	/* A connection that died since the last request (a server restart)
	 * costs the client nothing: reads can be asked again. */
	if (rpc_unavailable(rep) && db_connect(db) == 0) {
		rpc_reply_free(rep);
		rep = rpc_dispatch(db, cache, req);
	}
	return rep;
}

/* ---- the server ---- */

static enum stats_rpc_kind
rpc_kind(const Parley__Internal__V1__StoreRequest *req)
{
	if (req == NULL)
		return STATS_RPC_OTHER;
	switch (req->req_case) {
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_SYNC:
		return STATS_RPC_SYNC;
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_HISTORY:
		return STATS_RPC_HISTORY;
	case PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS:
		return STATS_RPC_LIST_ROOMS;
	default:
		return STATS_RPC_OTHER;
	}
}

static double
rpc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
rpc_count(const Parley__Internal__V1__StoreRequest *req,
	  const Parley__Internal__V1__StoreReply *rep, double t0)
{
	const struct stats *st = stats_get();

	metric_add(st->rpc[rpc_kind(req)], 1);
	if (rep->reply_case == PARLEY__INTERNAL__V1__STORE_REPLY__REPLY_ERROR)
		metric_add(st->rpc_errors, 1);
	metric_observe(st->rpc_latency, rpc_now() - t0);
}

/* Decode, answer and encode one request message (freed here). */
static nng_msg *
rpc_serve(struct rpc_worker *w, nng_msg *in)
{
	Parley__Internal__V1__StoreRequest *req;
	Parley__Internal__V1__StoreReply *rep;
	double t0 = rpc_now();
	nng_msg *out;
	size_t len;

	req = parley__internal__v1__store_request__unpack(NULL, nng_msg_len(in),
							  nng_msg_body(in));
	nng_msg_free(in);
	if (req == NULL)
		rep = rpc_error(PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
				"undecodable store request", false, NULL);
	else
		rep = rpc_handle(w->db, w->cache, req);
	len = parley__internal__v1__store_reply__get_packed_size(rep);
	if (nng_msg_alloc(&out, len) != 0)
		abort(); /* out of memory, as xmalloc would */
	parley__internal__v1__store_reply__pack(rep, nng_msg_body(out));
	rpc_count(req, rep, t0);
	rpc_reply_free(rep);
	parley__internal__v1__store_request__free_unpacked(req, NULL);
	return out;
}

/* One synchronous step on the worker's context: 0 or an NNG error. */
static int
rpc_step(struct rpc_worker *w, bool send)
{
	if (send)
		nng_ctx_send(w->ctx, w->aio);
	else
		nng_ctx_recv(w->ctx, w->aio);
	nng_aio_wait(w->aio);
	return nng_aio_result(w->aio);
}

/* Receive, answer, reply, until the socket closes. */
static void *
rpc_main(void *arg)
{
	struct rpc_worker *w = arg;
	int rv;

	for (;;) {
		rv = rpc_step(w, false);
		if (rv == NNG_ECLOSED)
			break;
		if (rv != 0) {
			LOG_WARN("store.rpc_recv", "receive: %s",
				 nng_strerror(rv));
			continue;
		}
		nng_aio_set_msg(w->aio, rpc_serve(w, nng_aio_get_msg(w->aio)));
		rv = rpc_step(w, true);
		if (rv != 0) /* the message is still ours */
			nng_msg_free(nng_aio_get_msg(w->aio));
		if (rv == NNG_ECLOSED)
			break;
		if (rv != 0)
			LOG_WARN("store.rpc_send", "reply: %s",
				 nng_strerror(rv));
	}
	return NULL;
}

static void
rpc_worker_start(struct rpc_worker *w, nng_socket sock, const char *pg,
		 struct cache *cache)
{
	if (nng_ctx_open(&w->ctx, sock) != 0 ||
	    nng_aio_alloc(&w->aio, NULL, NULL) != 0)
		log_fatal("store.rpc_start", "cannot open an NNG context");
	w->db = db_new(pg, "parley-store-rpc");
	w->cache = cache;
	if (pthread_create(&w->thread, NULL, rpc_main, w) != 0)
		log_fatal("store.rpc_start", "cannot start an RPC thread");
}

struct rpc *
rpc_start(const struct store_config *cfg, struct cache *cache)
{
	struct rpc *r = xcalloc(1, sizeof(*r));
	sigset_t stop, old;

	if (bus_open(&r->sock, "rep") < 0) {
		free(r);
		return NULL;
	}
	if (bus_listen(r->sock, cfg->listen) < 0) {
		nng_close(r->sock);
		free(r);
		return NULL;
	}
	r->n_workers = cfg->rpc_threads;
	r->workers = xcalloc((size_t)r->n_workers, sizeof(*r->workers));
	/* Stop signals belong to the main thread, which drains the ingest. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	for (int i = 0; i < r->n_workers; i++)
		rpc_worker_start(&r->workers[i], r->sock, cfg->pg, cache);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	LOG_INFO("store.rpc_listen",
		 "serving store requests on %s with %d threads", cfg->listen,
		 r->n_workers);
	return r;
}

void
rpc_stop(struct rpc *r)
{
	if (r == NULL)
		return;
	/* Closing fails every pending receive with NNG_ECLOSED. */
	nng_close(r->sock);
	for (int i = 0; i < r->n_workers; i++) {
		pthread_join(r->workers[i].thread, NULL);
		nng_aio_free(r->workers[i].aio);
		db_free(r->workers[i].db);
	}
	free(r->workers);
	free(r);
}
