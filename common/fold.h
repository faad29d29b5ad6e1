/* The per-room fold: applies log records of one partition, in partition
 * order, to room state. It is deterministic — it reads nothing but the
 * records and the state they built — so every process that folds a
 * partition (the owning router, the store, a router that took over after a
 * crash) reaches the same seq, the same membership and the same dedup
 * verdicts. See docs/ARCHITECTURE.md, "The fold".
 *
 * Rules:
 *  - A Post by a member gets seq = last_seq + 1 (messages only; room events
 *    take no seq and carry the last message seq they follow).
 *  - A Post whose (sender, client_msg_id) matches an accepted Post of the
 *    same room at most FOLD_DEDUP_WINDOW_MS older (by room time) is a
 *    duplicate and gets the original seq.
 *  - Room time: ts = max(record ts, room's last ts), so it never goes back.
 *  - "dm:A:B" (A < B, both valid user ids) is created by its first Post by
 *    A or B; only A and B may ever use it.
 *  - Group rooms are created by CreateRoom; members change only through
 *    AddMembers / RemoveMember / Leave records. Any member may add members;
 *    only the room's creator may remove others; anyone may leave.
 *  - Markers (delivered/read) only move forward, never past last_seq.
 *  - A record with server set (the server API, docs/SERVER_API.md) skips
 *    the actor's checks: it may post into any existing room, add and
 *    remove members of any group, and a retried CreateRoom of it is a
 *    duplicate whether or not its actor is still a member.
 *  - DeleteRoom (server records only) removes every member and closes the
 *    group: later posts, membership changes and creates of it are
 *    rejected (NOT_FOUND); a repeated DeleteRoom is a duplicate.
 *  - A record whose room id or client_msg_id is not valid UTF-8 is
 *    rejected (protobuf-c does not check; every folder must agree).
 *
 * Any state added to struct fold_room or fold_member must also be stored
 * by the store (a migration, its load in the loader and its write in the
 * batch), or a fold reloaded from PostgreSQL will disagree with the log. */
#ifndef PARLEY_FOLD_H
#define PARLEY_FOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "map.h"
#include "parley/log/v1/record.pb-c.h"

#define FOLD_DEDUP_WINDOW_MS (24LL * 3600 * 1000)
/* Hard cap of remembered ids per room, so a flooding room stays bounded;
 * the window is 24 h or the last FOLD_DEDUP_MAX posts, whichever is less. */
#define FOLD_DEDUP_MAX 1000000

enum fold_kind { FOLD_DIRECT = 1, FOLD_GROUP = 2 };

struct fold_member {
	uint64_t delivered;
	uint64_t read;
	uint64_t joined_after; /* last_seq when the member joined */
};

struct fold_dedup_entry {
	char *key; /* sender "\n" client_msg_id; owned by the ring */
	uint64_t seq;
	int64_t ts;
};

struct fold_room {
	char *id;
	char *name;
	char *creator; /* group rooms: who may remove members */
	enum fold_kind kind;
	uint64_t last_seq;
	int64_t last_ts;
	struct map members; /* user id -> struct fold_member * */
	struct map dedup;   /* key -> struct fold_dedup_entry * (in ring) */
	/* Accepted posts in seq order for eviction: a ring of entries. */
	struct fold_dedup_entry *ring;
	uint64_t ring_head, ring_len, ring_cap;
	bool deleted; /* DeleteRoom: closed, no members, nothing accepted */
};

enum fold_verdict {
	FOLD_ACCEPTED,	/* applied: a new message, room or membership change */
	FOLD_DUPLICATE, /* a retry of something already applied: no change */
	FOLD_REJECTED,	/* not allowed; error/reason say why; no change */
};

struct fold_result {
	enum fold_verdict verdict;
	struct fold_room *room; /* NULL when rejected for an unknown room */
	uint64_t seq;		/* Post: its seq; others: last_seq after */
	int64_t ts_ms;		/* room time of the record */
	bool created;		/* this record created the room */
	int error;		/* Parley__V1__ErrorCode when rejected */
	const char *reason;	/* static text when rejected */
	/* Members whose membership this record ended (RemoveMember/Leave). */
	const char *removed;
	/* DeleteRoom: every member it removed, sorted; owned by the fold and
	 * valid until the next fold_apply. */
	char **removed_all;
	size_t n_removed_all;
};

struct fold;

/* Called when a record names a room the fold does not hold, before the
 * record is applied: it may install the room from a snapshot with
 * fold_room_new and friends. Returns 0 or -errno (the apply then fails
 * with that error and changes nothing). */

struct fold *fold_new(void);
/* Frees every room. fold_free(NULL) is a no-op. */
void fold_free(struct fold *f);
void fold_set_loader(struct fold *f,
		     int (*load)(void *ctx, struct fold *f,
				 const char *room_id),
		     void *ctx);

/* Apply one record. Returns 0 with *out filled (any verdict), or -errno
 * when the loader failed (nothing changed; retry later). */
int fold_apply(struct fold *f, const Parley__Log__V1__Record *r,
	       struct fold_result *out);

/* The room's state, or NULL when the fold does not hold it. */
struct fold_room *fold_room_get(struct fold *f, const char *room_id);
/* Rooms held. */
size_t fold_room_count(const struct fold *f);

/* Snapshot loading (for loaders). fold_room_new installs an empty room
 * (replacing nothing: returns the existing one if present). */
struct fold_room *fold_room_new(struct fold *f, const char *room_id,
				enum fold_kind kind, const char *name);
void fold_room_set_member(struct fold_room *r, const char *user,
			  const struct fold_member *m);
void fold_room_set_creator(struct fold_room *r, const char *user);
void fold_room_add_dedup(struct fold_room *r, const char *sender,
			 const char *client_msg_id, uint64_t seq, int64_t ts);

/* The member record of user in room, or NULL when not a member. */
struct fold_member *fold_room_member(const struct fold_room *r,
				     const char *user);

/* DM room ids: true when id is "dm:A:B" with A < B valid user ids; fills
 * a and b (each at least 129 bytes) when not NULL. */
bool fold_dm_parse(const char *id, char *a, char *b);
/* The DM room id of two users (heap string), or NULL when they are equal
 * or not valid user ids. */
char *fold_dm_id(const char *u1, const char *u2);

#endif
