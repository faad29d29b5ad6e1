/* parley-store internals: configuration, the PostgreSQL layer (db.c), the
 * batch of row changes one Kafka batch makes (batch.c), text arrays for
 * multi-row statements (pgarr.c), ingest (ingest.c) and the RPC server. */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fold.h"
#include "map.h"
#include "parley/internal/v1/envelope.pb-c.h"
#include "parley/v1/client.pb-c.h"

struct store_config {
	const char *pg;	     /* libpq conninfo */
	const char *brokers; /* Kafka bootstrap servers */
	const char *topic;
	int partitions;
	const char *group;
	const char *listen; /* NNG rep url */
	int batch_max;	    /* records per transaction */
	int rpc_threads;    /* RPC workers, each with a connection */
};

/* Read and validate PARLEY_* variables; exits naming a bad one. */
void store_config_load(struct store_config *cfg);

/* ---- pgarr.c: PostgreSQL text-format array literals ----
 * Multi-row statements take one array parameter per column and unnest
 * them, so a batch costs one round trip per table whatever its size.
 * Strings that are not valid UTF-8 are stored with U+FFFD in place of the
 * bad bytes: one bad record must never make a batch fail for ever. */
struct pgarr {
	char *buf;
	size_t len, cap;
	size_t n; /* elements */
};

void pgarr_init(struct pgarr *a);
void pgarr_release(struct pgarr *a);
void pgarr_add_str(struct pgarr *a, const char *s);
void pgarr_add_i64(struct pgarr *a, int64_t v);
void pgarr_add_null(struct pgarr *a);
/* The literal, e.g. {"a","b\"c",NULL}; valid until the next change. */
const char *pgarr_str(struct pgarr *a);

/* True when s is valid UTF-8 (no overlongs, no surrogates). */

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

struct batch_offset {
	int32_t part;
	int64_t expected; /* next_offset in the database now; -1 = no row */
	int64_t next;	  /* next_offset after this batch */
};

struct batch {
	struct map rooms;   /* room id -> struct batch_room * */
	struct map members; /* batch_member_key -> struct batch_member * */
	struct batch_message *msgs;
	size_t n_msgs, cap_msgs;
	struct batch_offset *offs;
	size_t n_offs, cap_offs;
	size_t records, skipped, accepted, duplicates, rejected;
	size_t gaps; /* offsets skipped inside a partition (should be 0) */
};

void batch_init(struct batch *b);
void batch_release(struct batch *b);
/* Empty the batch for reuse. */
void batch_reset(struct batch *b);
/* Record the effect of one folded record (any verdict). */
void batch_note(struct batch *b, const Parley__Log__V1__Record *rec,
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
 * was not the expected one (nothing written), or -errno. */
int db_batch_write(struct db *db, const char *topic, const struct batch *b);

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

/* ---- ingest.c: Kafka -> fold -> PostgreSQL ---- */
/* Run until a stop signal. 0 on a clean stop, -errno when start-up
 * failed. */
int ingest_run(const struct store_config *cfg);

/* ---- rpc.c: Sync/History/ListRooms over an NNG rep socket ---- */
struct rpc;

/* Listen on cfg->listen and serve from cfg->rpc_threads threads, each with
 * its own database connection. NULL (logged) when it cannot listen. */
struct rpc *rpc_start(const struct store_config *cfg);
/* Close the socket, join the thread, free. rpc_stop(NULL) is a no-op. */
void rpc_stop(struct rpc *r);

/* Answer one StoreRequest; returns the StoreReply to send (heap, free
 * with rpc_reply_free). Exposed for tests. */
Parley__Internal__V1__StoreReply *
rpc_handle(struct db *db, const Parley__Internal__V1__StoreRequest *req);
void rpc_reply_free(Parley__Internal__V1__StoreReply *rep);

#endif
