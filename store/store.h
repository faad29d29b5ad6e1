/* parley-store internals: configuration, the PostgreSQL layer (db.c), the
 * batch of row changes one Kafka batch makes (batch.c), text arrays for
 * multi-row statements (pgarr.c), the recent-messages cache (cache.c),
 * metrics (stats.c), ingest (ingest.c) and the RPC server (rpc.c). */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fold.h"
#include "map.h"
#include "metrics.h"
#include "parley/internal/v1/envelope.pb-c.h"
#include "parley/v1/client.pb-c.h"
#include "pg.h"

struct store_config {
	const char *pg;	     /* libpq conninfo */
	const char *brokers; /* Kafka bootstrap servers */
	const char *topic;
	int partitions;
	const char *group;
	const char *listen;  /* NNG rep url */
	int batch_max;	     /* records per transaction */
	int rpc_threads;     /* RPC workers, each with a connection */
	int cache_rooms;     /* rooms in the recent-messages cache; 0 = off */
	int cache_per_room;  /* messages kept per cached room */
	int64_t cache_bytes; /* memory bound of the cache */
};

/* Read and validate PARLEY_* variables; exits naming a bad one. */
void store_config_load(struct store_config *cfg);

/* ---- batch.c: what one batch of records changes in the database ----
 * Everything is copied out of the fold when a record is noted, so the
 * fold may be dropped at any time without touching a pending batch.
 * Rooms and members are coalesced: the last state noted wins, which is
 * the fold's state at the end of the batch. */
struct batch_room {
	char *id;
	char *name;
	char *creator; /* NULL for DMs */
	int kind;
	uint64_t last_seq;
	int64_t last_ts;
	int64_t created_ts;
	bool deleted;
};

struct batch_member {
	char *room_id;
	char *user_id;
	bool present; /* a member now (left_after NULL) */
	bool known;   /* joined/delivered/read below are the fold's */
	uint64_t joined_after, delivered, read;
	uint64_t left_after; /* when !present */
};

struct batch_message {
	char *room_id, *sender_id, *client_msg_id, *body;
	uint64_t seq;
	int64_t ts_ms;
};

/* A membership change: an accepted CreateRoom, AddMembers, RemoveMember
 * or Leave, keyed by its record's place in the log (part, offset) so a
 * replayed record cannot store it twice. */
struct batch_event {
	char *room_id, *actor;
	char *user_ids; /* valid user ids (which hold no ',') joined by ',' */
	int kind;	/* Parley__V1__RoomEventKind */
	int32_t part;
	int64_t offset;
	uint64_t after_seq; /* the room's last_seq when it happened */
	int64_t ts_ms;
};

struct batch_offset {
	int32_t part;
	int64_t expected; /* next_offset in the database now; -1 = no row */
	int64_t next;	  /* next_offset after this batch */
};

struct batch {
	struct map rooms;   /* room id -> struct batch_room * */
	struct map members; /* batch_member_key -> struct batch_member * */
	struct batch_message *msgs; /* in log order */
	size_t n_msgs, cap_msgs;
	struct batch_event *events; /* in log order */
	size_t n_events, cap_events;
	struct batch_offset *offs;
	size_t n_offs, cap_offs;
	size_t records, skipped, accepted, duplicates, rejected;
	size_t gaps; /* offsets skipped inside a partition (should be 0) */
};

void batch_init(struct batch *b);
void batch_release(struct batch *b);
/* Empty the batch for reuse. */
void batch_reset(struct batch *b);
/* Record the effect of one folded record (any verdict), read from
 * partition part at offset. Message bodies are kept as PostgreSQL will
 * store them (pgarr_text). */
void batch_note(struct batch *b, int32_t part, int64_t offset,
		const Parley__Log__V1__Record *rec,
		const struct fold_result *res);
/* Record that offset of part was consumed; expected is the partition's
 * next_offset in the database before the batch (-1: no row yet). */
void batch_offset(struct batch *b, int32_t part, int64_t expected,
		  int64_t offset);
/* True when the batch changes nothing (no records, no offsets). */
bool batch_empty(const struct batch *b);
/* The members map key of (room, user): unambiguous for any strings. */
char *batch_member_key(const char *room_id, const char *user_id);

/* ---- db.c: PostgreSQL (libpq) ----
 * One struct db is one connection, used by one thread only. Errors are
 * logged once here as "store.db_error" and returned as -errno: -ENOTCONN
 * when the connection is gone (reconnect with db_connect), -ESTALE when
 * another consumer moved our Kafka offsets, -EIO for anything else. */
struct db;

/* True when conninfo parses; else false with the reason in why. */
bool db_conninfo_valid(const char *conninfo, char *why, size_t len);
struct db *db_new(const char *conninfo, const char *name);
/* Closes the connection. db_free(NULL) is a no-op. */
void db_free(struct db *db);
/* Connect unless connected. 0 or -ENOTCONN. */
int db_connect(struct db *db);
bool db_connected(const struct db *db);

/* Apply missing schema migrations under an advisory lock. 0 or -errno. */
int db_migrate(struct db *db);

/* Set each element's offset to next_offset in kafka_offsets, or to
 * RD_KAFKA_OFFSET_BEGINNING when there is no row. 0 or -errno. */
int db_offsets_load(struct db *db, rd_kafka_topic_partition_list_t *parts);

/* Install rooms (with members and dedup window) of ids into f; ids not in
 * the database are left out. 0 or -errno (f may then hold some). */
int db_rooms_load(struct db *db, struct fold *f, const char *const *ids,
		  size_t n);

/* Write b and the offsets in one transaction. 0, -ESTALE when an offset
 * was not the expected one (nothing written), or -errno. On 0, *existed
 * is the number of b's messages that were already stored (the offsets
 * fence makes it 0; anything else means their rows are not b's). */
int db_batch_write(struct db *db, const char *topic, const struct batch *b,
		   size_t *existed);

/* ---- db.c: queries for the RPC server ---- */
struct db_access {
	bool room;   /* the room exists */
	bool member; /* user has a members row */
	bool left;   /* ... with left_after set */
	uint64_t left_after;
	uint64_t last_seq; /* room's last_seq */
};

int db_access(struct db *db, const char *room_id, const char *user,
	      struct db_access *out);

/* db_access, and in the same round trip the room events of a Sync page:
 * those with after <= after_seq <= min(end, the user's horizon), where the
 * horizon is last_seq, or for a removed member left_after and, at
 * left_after itself, no event after its removal. At most max_events, in
 * log order; none unless user is or was a member. *events is an xmalloc'd
 * array of heap events (free with db_events_free). 0 or -errno. */
int db_sync_access(struct db *db, const char *room_id, const char *user,
		   uint64_t after, uint64_t end, uint32_t max_events,
		   struct db_access *out, Parley__V1__RoomEvent ***events,
		   size_t *n);
void db_events_free(Parley__V1__RoomEvent **events, size_t n);
void db_event_free(Parley__V1__RoomEvent *e);

/* Messages of room with lo < seq <= hi, at most limit, ascending
 * (desc false) or descending. Fills *out (xmalloc'd array of heap
 * messages; free with db_messages_free) and *n. 0 or -errno. */
int db_messages(struct db *db, const char *room_id, uint64_t lo, uint64_t hi,
		uint32_t limit, bool desc, Parley__V1__Message ***out,
		size_t *n);
void db_messages_free(Parley__V1__Message **msgs, size_t n);
void db_message_free(Parley__V1__Message *m);

/* The rooms user is a member of, newest activity first. Same ownership
 * as db_messages. */
int db_rooms_of(struct db *db, const char *user, Parley__V1__RoomSummary ***out,
		size_t *n);
void db_rooms_free(Parley__V1__RoomSummary **rooms, size_t n);

/* A room and its current members for the server API's GetRoom. *out is
 * heap (free with parley__server__v1__get_room_response__free_unpacked,
 * NULL allocator: every part is malloc'd). 0, -ENOENT or -errno. */
int db_room_info(struct db *db, const char *room_id,
		 Parley__Server__V1__GetRoomResponse **out);

/* ---- cache.c: the recent-messages cache ----
 * Per room, the newest messages the ingest committed, as one contiguous
 * run of seqs (an append that does not follow the run restarts it), for
 * at most max_rooms rooms (least recently used evicted first) and about
 * max_bytes of messages. Committed messages never change, so whatever a
 * run holds is exactly what PostgreSQL holds: the cache never says which
 * seqs exist or who may read them, only what a message says. Thread-safe:
 * rooms hash to shards, each with its own mutex held only for lookups
 * and pointer moves; messages are reference-counted so readers copy
 * them outside the lock. A NULL cache is an empty, disabled one. */
struct cache_msg {
	unsigned refs; /* atomic; owned by cache.c */
	uint64_t seq;
	int64_t ts_ms;
	size_t size;				/* bytes charged to the cache */
	char *sender_id, *client_msg_id, *body; /* in the same block */
};

struct cache;

/* NULL (caching off) when max_rooms or per_room is 0. shards 0 = auto. */
struct cache *cache_new(size_t max_rooms, size_t per_room, size_t max_bytes,
			size_t shards);
/* cache_free(NULL) is a no-op. No reader may hold messages. */
void cache_free(struct cache *c);
/* Append message seq of room (strings copied). Call only once the
 * message is committed, and per room in seq order. */
void cache_add(struct cache *c, const char *room_id, uint64_t seq,
	       int64_t ts_ms, const char *sender_id, const char *client_msg_id,
	       const char *body);
/* When seqs lo..hi (lo <= hi) of room are all held: true, with out[0..
 * hi-lo] set to referenced messages in seq order (give each back with
 * cache_msg_put). Else false and out untouched. */
bool cache_get(struct cache *c, const char *room_id, uint64_t lo, uint64_t hi,
	       struct cache_msg **out);
void cache_msg_put(struct cache_msg *m);
/* Forget every room (readers' references stay valid). */
void cache_clear(struct cache *c);
/* Rooms held now, and the bytes charged for their messages. */
void cache_totals(const struct cache *c, size_t *rooms, size_t *bytes);

/* ---- stats.c: the store's Prometheus metrics (parley_store_*) ---- */
enum stats_rpc_kind {
	STATS_RPC_SYNC,
	STATS_RPC_HISTORY,
	STATS_RPC_LIST_ROOMS,
	STATS_RPC_OTHER,
	STATS_RPC_KINDS
};

struct stats {
	struct metric *records, *messages, *events, *batches, *batch_size;
	struct metric *commit_latency, *db_errors, *resyncs, *lag;
	struct metric *rpc[STATS_RPC_KINDS], *rpc_errors, *rpc_latency;
	struct metric *cache_hits, *cache_misses, *cache_rooms, *cache_bytes;
};

/* Register every metric; call once from main before any thread starts. */
void stats_init(void);
/* The metrics; all NULL (updates ignored) before stats_init, as in unit
 * tests. */
const struct stats *stats_get(void);

/* ---- ingest.c: Kafka -> fold -> PostgreSQL ---- */
/* Run until a stop signal, adding committed messages to cache (may be
 * NULL). 0 on a clean stop, -errno when start-up failed. */
int ingest_run(const struct store_config *cfg, struct cache *cache);
/* /readyz: the database was reachable at the last try and the consumer
 * group assigned us partitions at least once. Any thread. */
bool ingest_ready(void);

/* ---- rpc.c: Sync/History/ListRooms over an NNG rep socket ---- */
struct rpc;

/* Listen on cfg->listen and serve from cfg->rpc_threads threads, each with
 * its own database connection, reading recent messages from cache (may
 * be NULL). NULL (logged) when it cannot listen. */
struct rpc *rpc_start(const struct store_config *cfg, struct cache *cache);
/* Close the socket, join the thread, free. rpc_stop(NULL) is a no-op. */
void rpc_stop(struct rpc *r);

/* Answer one StoreRequest; returns the StoreReply to send (heap, free
 * with rpc_reply_free). Exposed for tests. */
Parley__Internal__V1__StoreReply *
rpc_handle(struct db *db, struct cache *cache,
	   const Parley__Internal__V1__StoreRequest *req);
void rpc_reply_free(Parley__Internal__V1__StoreReply *rep);

#endif
