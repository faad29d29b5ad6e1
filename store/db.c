/* PostgreSQL for parley-store (libpq): connection, schema migrations,
 * fold snapshots, batch writes fenced by the Kafka offsets they cover, and
 * the read queries of the RPC server. libpq errors become -errno here. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "store.h"
#include "xalloc.h"

/* pg_advisory_xact_lock key of the migrations ("parley" in ASCII). */
#define DB_MIGRATE_LOCK "112971108101121"

struct db {
	struct pg pg;
};

/* Migrations: append only, never edit one that has shipped. Each runs in
 * the start-up transaction and is recorded in schema_migrations. */
static const char *const db_migrations[] = {
	/* 1: rooms, members, messages and the store's Kafka offsets. */
	"CREATE TABLE rooms ("
	" room_id text PRIMARY KEY,"
	" kind smallint NOT NULL,"
	" name text NOT NULL DEFAULT '',"
	" last_seq bigint NOT NULL DEFAULT 0,"
	" last_ts bigint NOT NULL DEFAULT 0,"
	" created_ts bigint NOT NULL DEFAULT 0);"
	"CREATE TABLE members ("
	" room_id text NOT NULL,"
	" user_id text NOT NULL,"
	" joined_after bigint NOT NULL DEFAULT 0,"
	" left_after bigint,"
	" delivered_seq bigint NOT NULL DEFAULT 0,"
	" read_seq bigint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (room_id, user_id));"
	"CREATE INDEX members_user ON members (user_id)"
	" WHERE left_after IS NULL;"
	"CREATE TABLE messages ("
	" room_id text NOT NULL,"
	" seq bigint NOT NULL,"
	" sender_id text NOT NULL,"
	" client_msg_id text NOT NULL,"
	" body text NOT NULL,"
	" ts_ms bigint NOT NULL,"
	" PRIMARY KEY (room_id, seq));"
	"CREATE INDEX messages_client_id"
	" ON messages (room_id, sender_id, client_msg_id);"
	"CREATE INDEX messages_ts ON messages (room_id, ts_ms);"
	"CREATE TABLE kafka_offsets ("
	" topic text NOT NULL,"
	" part integer NOT NULL,"
	" next_offset bigint NOT NULL,"
	" PRIMARY KEY (topic, part));",
	/* 2: who created a group room (the fold lets only them remove
	 * others, so a snapshot must carry it). */
	"ALTER TABLE rooms ADD COLUMN creator text;",
	/* 3: membership changes, returned by Sync. The key is the record's
	 * place in the log, so a replayed record adds nothing; a room's
	 * records share one partition, so offsets order its events. */
	"CREATE TABLE room_events ("
	" room_id text NOT NULL,"
	" part integer NOT NULL,"
	" kafka_offset bigint NOT NULL,"
	" after_seq bigint NOT NULL,"
	" kind smallint NOT NULL,"
	" actor text NOT NULL,"
	" user_ids text[] NOT NULL,"
	" ts_ms bigint NOT NULL,"
	" PRIMARY KEY (room_id, part, kafka_offset));"
	"CREATE INDEX room_events_after ON room_events (room_id, after_seq);",
	/* 4: DeleteRoom closes a room for good (the fold rejects everything
	 * after it, so a snapshot must carry it). */
	"ALTER TABLE rooms ADD COLUMN deleted boolean NOT NULL DEFAULT false;",
};

#define DB_N_MIGRATIONS (sizeof(db_migrations) / sizeof(db_migrations[0]))

bool
db_conninfo_valid(const char *conninfo, char *why, size_t len)
{
	return pg_conninfo_valid(conninfo, why, len);
}

struct db *
db_new(const char *conninfo, const char *name)
{
	struct db *db = xcalloc(1, sizeof(*db));

	pg_init(&db->pg, conninfo, name, "store", stats_get()->db_errors);
	return db;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	pg_release(&db->pg);
	free(db);
}

bool
db_connected(const struct db *db)
{
	return pg_connected(&db->pg);
}

int
db_connect(struct db *db)
{
	return pg_connect(&db->pg);
}

int
db_migrate(struct db *db)
{
	return pg_migrate(&db->pg, "schema_migrations", DB_MIGRATE_LOCK,
			  db_migrations, DB_N_MIGRATIONS);
}

/* ---- offsets ---- */

int
db_offsets_load(struct db *db, rd_kafka_topic_partition_list_t *parts)
{
	const char *params[1];
	PGresult *res;
	int rc = 0;

	if (parts->cnt == 0)
		return 0;
	params[0] = parts->elems[0].topic;
	res = pg_exec(&db->pg, "load offsets",
		      "SELECT part, next_offset FROM kafka_offsets"
		      " WHERE topic = $1",
		      1, params, &rc);
	if (res == NULL)
		return rc;
	for (int i = 0; i < parts->cnt; i++)
		parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
	for (int row = 0; row < PQntuples(res); row++) {
		int32_t part = (int32_t)pg_i64(res, row, 0);

		for (int i = 0; i < parts->cnt; i++)
			if (parts->elems[i].partition == part)
				parts->elems[i].offset = pg_i64(res, row, 1);
	}
	PQclear(res);
	return 0;
}

/* ---- fold snapshots ---- */

/* Install the rooms rows of ids the fold does not hold yet; fresh maps
 * each id installed here to its room, so members and dedup entries go
 * only to rooms this call loaded. */
static int
db_load_room_rows(struct db *db, struct fold *f, const char *ids,
		  struct map *fresh)
{
	const char *params[] = { ids };
	int rc = 0;
	PGresult *res = pg_exec(&db->pg, "load rooms",
				"SELECT room_id, kind, name, last_seq, last_ts,"
				" creator, deleted FROM rooms"
				" WHERE room_id = ANY($1::text[])",
				1, params, &rc);

	if (res == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		struct fold_room *r;

		if (fold_room_get(f, id))
			continue;
		r = fold_room_new(f, id, (enum fold_kind)pg_i64(res, i, 1),
				  PQgetvalue(res, i, 2));
		r->last_seq = pg_u64(res, i, 3);
		r->last_ts = pg_i64(res, i, 4);
		if (!PQgetisnull(res, i, 5))
			fold_room_set_creator(r, PQgetvalue(res, i, 5));
		r->deleted = pg_bool(res, i, 6);
		map_put(fresh, id, r);
	}
	PQclear(res);
	return 0;
}

static int
db_load_members(struct db *db, const char *ids, struct map *fresh)
{
	const char *params[] = { ids };
	int rc = 0;
	PGresult *res = pg_exec(&db->pg, "load members",
				"SELECT room_id, user_id, joined_after,"
				" delivered_seq, read_seq FROM members"
				" WHERE room_id = ANY($1::text[])"
				" AND left_after IS NULL",
				1, params, &rc);

	if (res == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		struct fold_room *r = map_get(fresh, PQgetvalue(res, i, 0));
		struct fold_member m = {
			.joined_after = pg_u64(res, i, 2),
			.delivered = pg_u64(res, i, 3),
			.read = pg_u64(res, i, 4),
		};

		if (r)
			fold_room_set_member(r, PQgetvalue(res, i, 1), &m);
	}
	PQclear(res);
	return 0;
}

/* The dedup window of each room: its newest FOLD_DEDUP_MAX messages no
 * older than FOLD_DEDUP_WINDOW_MS before the room's time, in seq order
 * (room time never goes back, so ts order is seq order). */
static int
db_load_dedup(struct db *db, const char *ids, struct map *fresh)
{
	char window[24], max[24];
	const char *params[] = { ids, window, max };
	int rc = 0;
	PGresult *res;

	snprintf(window, sizeof(window), "%lld",
		 (long long)FOLD_DEDUP_WINDOW_MS);
	snprintf(max, sizeof(max), "%d", FOLD_DEDUP_MAX);
	res = pg_exec(&db->pg, "load dedup",
		      "SELECT r.room_id, d.sender_id, d.client_msg_id, d.seq,"
		      " d.ts_ms FROM rooms r CROSS JOIN LATERAL ("
		      "  SELECT m.sender_id, m.client_msg_id, m.seq, m.ts_ms"
		      "  FROM messages m WHERE m.room_id = r.room_id"
		      "  AND m.ts_ms >= r.last_ts - $2::bigint"
		      "  ORDER BY m.ts_ms DESC, m.seq DESC LIMIT $3::bigint) d"
		      " WHERE r.room_id = ANY($1::text[])"
		      " ORDER BY r.room_id, d.seq",
		      3, params, &rc);
	if (res == NULL)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		struct fold_room *r = map_get(fresh, PQgetvalue(res, i, 0));

		if (r)
			fold_room_add_dedup(
				r, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				pg_u64(res, i, 3), pg_i64(res, i, 4));
	}
	PQclear(res);
	return 0;
}

int
db_rooms_load(struct db *db, struct fold *f, const char *const *ids, size_t n)
{
	struct pgarr arr;
	struct map fresh;
	int rc;

	if (n == 0)
		return 0;
	pgarr_init(&arr);
	map_init(&fresh);
	for (size_t i = 0; i < n; i++)
		pgarr_add_str(&arr, ids[i]);
	rc = db_load_room_rows(db, f, pgarr_str(&arr), &fresh);
	if (rc == 0 && map_count(&fresh) > 0)
		rc = db_load_members(db, pgarr_str(&arr), &fresh);
	if (rc == 0 && map_count(&fresh) > 0)
		rc = db_load_dedup(db, pgarr_str(&arr), &fresh);
	map_release(&fresh);
	pgarr_release(&arr);
	return rc;
}

/* ---- batch writes ---- */

/* Columns of one multi-row statement. */
#define DB_MAX_COLS 8

struct db_cols {
	struct pgarr col[DB_MAX_COLS];
	const char *params[DB_MAX_COLS + 1];
	int n;
};

static void
db_cols_init(struct db_cols *c, int n)
{
	c->n = n;
	for (int i = 0; i < n; i++)
		pgarr_init(&c->col[i]);
}

static void
db_cols_release(struct db_cols *c)
{
	for (int i = 0; i < c->n; i++)
		pgarr_release(&c->col[i]);
}

/* The parameters: first, when not NULL, then one array per column. */
static const char *const *
db_cols_params(struct db_cols *c, const char *first)
{
	int k = 0;

	if (first)
		c->params[k++] = first;
	for (int i = 0; i < c->n; i++)
		c->params[k++] = pgarr_str(&c->col[i]);
	return c->params;
}

static int
db_write_rooms(struct db *db, const struct batch *b)
{
	struct db_cols c;
	size_t pos = 0;
	const char *key;
	void *val;
	int rc;

	if (map_count(&b->rooms) == 0)
		return 0;
	db_cols_init(&c, 8);
	while (map_next(&b->rooms, &pos, &key, &val)) {
		const struct batch_room *r = val;

		pgarr_add_str(&c.col[7], r->deleted ? "t" : "f");
		pgarr_add_str(&c.col[0], r->id);
		pgarr_add_i64(&c.col[1], r->kind);
		pgarr_add_str(&c.col[2], r->name);
		pgarr_add_i64(&c.col[3], (int64_t)r->last_seq);
		pgarr_add_i64(&c.col[4], r->last_ts);
		pgarr_add_i64(&c.col[5], r->created_ts);
		if (r->creator)
			pgarr_add_str(&c.col[6], r->creator);
		else
			pgarr_add_null(&c.col[6]);
	}
	rc = pg_run(&db->pg, "write rooms",
		    "INSERT INTO rooms (room_id, kind, name, last_seq, last_ts,"
		    " created_ts, creator, deleted) SELECT * FROM"
		    " unnest($1::text[], $2::smallint[], $3::text[],"
		    " $4::bigint[], $5::bigint[], $6::bigint[], $7::text[],"
		    " $8::boolean[]) ON CONFLICT (room_id) DO UPDATE"
		    " SET last_seq = EXCLUDED.last_seq,"
		    " last_ts = EXCLUDED.last_ts,"
		    " creator = coalesce(EXCLUDED.creator, rooms.creator),"
		    " deleted = rooms.deleted OR EXCLUDED.deleted",
		    8, db_cols_params(&c, NULL));
	db_cols_release(&c);
	return rc;
}

/* Members whose state the fold told us: written whole. */
static int
db_write_members_known(struct db *db, const struct batch *b)
{
	struct db_cols c;
	size_t pos = 0, n = 0;
	const char *key;
	void *val;
	int rc = 0;

	db_cols_init(&c, 6);
	while (map_next(&b->members, &pos, &key, &val)) {
		const struct batch_member *m = val;

		if (!m->known)
			continue;
		n++;
		pgarr_add_str(&c.col[0], m->room_id);
		pgarr_add_str(&c.col[1], m->user_id);
		pgarr_add_i64(&c.col[2], (int64_t)m->joined_after);
		if (m->present)
			pgarr_add_null(&c.col[3]);
		else
			pgarr_add_i64(&c.col[3], (int64_t)m->left_after);
		pgarr_add_i64(&c.col[4], (int64_t)m->delivered);
		pgarr_add_i64(&c.col[5], (int64_t)m->read);
	}
	if (n)
		rc = pg_run(
			&db->pg, "write members",
			"INSERT INTO members (room_id, user_id, joined_after,"
			" left_after, delivered_seq, read_seq) SELECT * FROM"
			" unnest($1::text[], $2::text[], $3::bigint[],"
			" $4::bigint[], $5::bigint[], $6::bigint[])"
			" ON CONFLICT (room_id, user_id) DO UPDATE SET"
			" joined_after = EXCLUDED.joined_after,"
			" left_after = EXCLUDED.left_after,"
			" delivered_seq = EXCLUDED.delivered_seq,"
			" read_seq = EXCLUDED.read_seq",
			6, db_cols_params(&c, NULL));
	db_cols_release(&c);
	return rc;
}

/* Members removed without the batch knowing the rest of their row: only
 * left_after changes. */
static int
db_write_members_left(struct db *db, const struct batch *b)
{
	struct db_cols c;
	size_t pos = 0, n = 0;
	const char *key;
	void *val;
	int rc = 0;

	db_cols_init(&c, 3);
	while (map_next(&b->members, &pos, &key, &val)) {
		const struct batch_member *m = val;

		if (m->known)
			continue;
		n++;
		pgarr_add_str(&c.col[0], m->room_id);
		pgarr_add_str(&c.col[1], m->user_id);
		pgarr_add_i64(&c.col[2], (int64_t)m->left_after);
	}
	if (n)
		rc = pg_run(&db->pg, "write leaves",
			    "UPDATE members m SET left_after = v.left_after"
			    " FROM unnest($1::text[], $2::text[], $3::bigint[])"
			    " AS v(room_id, user_id, left_after)"
			    " WHERE m.room_id = v.room_id"
			    " AND m.user_id = v.user_id",
			    3, db_cols_params(&c, NULL));
	db_cols_release(&c);
	return rc;
}

static int
db_write_messages(struct db *db, const struct batch *b, size_t *existed)
{
	struct db_cols c;
	PGresult *res;
	int rc = 0;

	if (b->n_msgs == 0)
		return 0;
	db_cols_init(&c, 6);
	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct batch_message *m = &b->msgs[i];

		pgarr_add_str(&c.col[0], m->room_id);
		pgarr_add_i64(&c.col[1], (int64_t)m->seq);
		pgarr_add_str(&c.col[2], m->sender_id);
		pgarr_add_str(&c.col[3], m->client_msg_id);
		pgarr_add_str(&c.col[4], m->body);
		pgarr_add_i64(&c.col[5], m->ts_ms);
	}
	res = pg_exec(&db->pg, "write messages",
		      "INSERT INTO messages (room_id, seq, sender_id,"
		      " client_msg_id, body, ts_ms) SELECT * FROM unnest("
		      "$1::text[], $2::bigint[], $3::text[], $4::text[],"
		      " $5::text[], $6::bigint[]) ON CONFLICT DO NOTHING",
		      6, db_cols_params(&c, NULL), &rc);
	db_cols_release(&c);
	/* The offsets fence makes this impossible; say so if it happens. */
	if (res && strtoull(PQcmdTuples(res), NULL, 10) != b->n_msgs) {
		*existed = b->n_msgs - strtoull(PQcmdTuples(res), NULL, 10);
		LOG_WARN(
			"store.rows_existed",
			"%s of %zu messages inserted: the others were already there",
			PQcmdTuples(res), b->n_msgs);
	}
	PQclear(res);
	return rc;
}

static int
db_write_events(struct db *db, const struct batch *b)
{
	struct db_cols c;
	int rc;

	if (b->n_events == 0)
		return 0;
	db_cols_init(&c, 8);
	for (size_t i = 0; i < b->n_events; i++) {
		const struct batch_event *e = &b->events[i];

		pgarr_add_str(&c.col[0], e->room_id);
		pgarr_add_i64(&c.col[1], e->part);
		pgarr_add_i64(&c.col[2], e->offset);
		pgarr_add_i64(&c.col[3], (int64_t)e->after_seq);
		pgarr_add_i64(&c.col[4], e->kind);
		pgarr_add_str(&c.col[5], e->actor);
		pgarr_add_str(&c.col[6], e->user_ids);
		pgarr_add_i64(&c.col[7], e->ts_ms);
	}
	rc = pg_run(&db->pg, "write room events",
		    "INSERT INTO room_events (room_id, part, kafka_offset,"
		    " after_seq, kind, actor, user_ids, ts_ms)"
		    " SELECT v.r, v.p, v.o, v.a, v.k, v.actor,"
		    " string_to_array(v.u, ','), v.ts FROM unnest($1::text[],"
		    " $2::integer[], $3::bigint[], $4::bigint[],"
		    " $5::smallint[], $6::text[], $7::text[], $8::bigint[])"
		    " AS v(r, p, o, a, k, actor, u, ts) ON CONFLICT DO NOTHING",
		    8, db_cols_params(&c, NULL));
	db_cols_release(&c);
	return rc;
}

/* Move each partition's next_offset from expected to next, in the same
 * transaction as the rows. Any other value means another consumer wrote
 * this partition meanwhile: -ESTALE, and the caller rolls back. */
static int
db_write_offsets(struct db *db, const char *topic, const struct batch *b)
{
	struct db_cols c;
	PGresult *res;
	int rc = 0;

	db_cols_init(&c, 3);
	for (size_t i = 0; i < b->n_offs; i++) {
		pgarr_add_i64(&c.col[0], b->offs[i].part);
		pgarr_add_i64(&c.col[1], b->offs[i].expected);
		pgarr_add_i64(&c.col[2], b->offs[i].next);
	}
	res = pg_exec(
		&db->pg, "write offsets",
		"WITH v AS (SELECT * FROM unnest($2::integer[],"
		" $3::bigint[], $4::bigint[]) AS v(part, expected, next)),"
		" upd AS (UPDATE kafka_offsets k SET next_offset = v.next"
		"  FROM v WHERE k.topic = $1 AND k.part = v.part"
		"  AND k.next_offset = v.expected RETURNING k.part),"
		" ins AS (INSERT INTO kafka_offsets (topic, part,"
		"  next_offset) SELECT $1, v.part, v.next FROM v"
		"  WHERE v.expected < 0 ON CONFLICT DO NOTHING"
		"  RETURNING part)"
		" SELECT (SELECT count(*) FROM upd) +"
		" (SELECT count(*) FROM ins)",
		4, db_cols_params(&c, topic), &rc);
	db_cols_release(&c);
	if (res == NULL)
		return rc;
	if (pg_u64(res, 0, 0) != b->n_offs) {
		LOG_WARN(
			"store.fenced",
			"offsets of %s moved by another consumer: %s of %zu partitions matched",
			topic, PQgetvalue(res, 0, 0), b->n_offs);
		rc = -ESTALE;
	}
	PQclear(res);
	return rc;
}

/* The offsets go first: a stale writer stops before touching a row, and
 * writers of one partition queue on its offsets row. */
int
db_batch_write(struct db *db, const char *topic, const struct batch *b,
	       size_t *existed)
{
	int rc = pg_run(&db->pg, "begin", "BEGIN", 0, NULL);

	*existed = 0;
	if (rc == 0 && b->n_offs)
		rc = db_write_offsets(db, topic, b);
	if (rc == 0)
		rc = db_write_rooms(db, b);
	if (rc == 0)
		rc = db_write_members_known(db, b);
	if (rc == 0)
		rc = db_write_members_left(db, b);
	if (rc == 0)
		rc = db_write_messages(db, b, existed);
	if (rc == 0)
		rc = db_write_events(db, b);
	if (rc == 0)
		rc = pg_run(&db->pg, "commit", "COMMIT", 0, NULL);
	if (rc < 0)
		pg_rollback(&db->pg);
	return rc;
}

/* ---- RPC queries ---- */

/* Fill out from columns 0-3 (last_seq, member, left, left_after) of the
 * first row, if any. */
static void
db_access_row(const PGresult *res, struct db_access *out)
{
	memset(out, 0, sizeof(*out));
	if (PQntuples(res) == 0)
		return;
	out->room = true;
	out->last_seq = pg_u64(res, 0, 0);
	out->member = pg_bool(res, 0, 1);
	out->left = pg_bool(res, 0, 2);
	out->left_after = pg_u64(res, 0, 3);
}

int
db_access(struct db *db, const char *room_id, const char *user,
	  struct db_access *out)
{
	const char *params[] = { room_id, user };
	int rc = 0;
	PGresult *res = pg_exec(&db->pg, "access",
				"SELECT r.last_seq, m.user_id IS NOT NULL,"
				" m.left_after IS NOT NULL,"
				" coalesce(m.left_after, 0) FROM rooms r"
				" LEFT JOIN members m ON m.room_id = r.room_id"
				" AND m.user_id = $2 WHERE r.room_id = $1",
				2, params, &rc);

	if (res == NULL)
		return rc;
	db_access_row(res, out);
	PQclear(res);
	return 0;
}

/* Access and events in one statement: one row per event, or one row with
 * NULL events. gone_at is the offset of a removed member's removal (kinds
 * 3 and 4: MEMBER_REMOVED, MEMBER_LEFT, or 5, DELETED, naming it among
 * others): at left_after it sees the events
 * up to it, not those after. */
static const char db_sync_access_sql[] =
	"WITH a AS (SELECT r.last_seq, r.name, m.user_id IS NOT NULL AS member,"
	"  m.left_after FROM rooms r LEFT JOIN members m"
	"  ON m.room_id = r.room_id AND m.user_id = $2 WHERE r.room_id = $1),"
	" h AS (SELECT a.*, least(coalesce(a.left_after, a.last_seq),"
	"  a.last_seq, $4::bigint) AS hi, (SELECT max(x.kafka_offset)"
	"  FROM room_events x WHERE a.left_after IS NOT NULL"
	"  AND x.room_id = $1 AND x.after_seq = a.left_after"
	"  AND ((x.kind IN (3, 4) AND x.user_ids = ARRAY[$2])"
	"  OR (x.kind = 5 AND $2 = ANY(x.user_ids)))) AS gone_at FROM a)"
	" SELECT h.last_seq, h.member, h.left_after IS NOT NULL,"
	" coalesce(h.left_after, 0), h.name, e.kind, e.actor,"
	" array_to_string(e.user_ids, ','), e.after_seq, e.ts_ms FROM h"
	" LEFT JOIN LATERAL (SELECT x.* FROM room_events x WHERE h.member"
	"  AND x.room_id = $1 AND x.after_seq >= $3::bigint"
	"  AND x.after_seq <= h.hi AND (h.left_after IS NULL"
	"  OR x.after_seq < h.left_after OR x.kafka_offset <= h.gone_at)"
	"  ORDER BY x.after_seq, x.part, x.kafka_offset LIMIT $5::bigint) e"
	" ON true ORDER BY e.after_seq, e.part, e.kafka_offset";

/* Split s at ',' into heap strings. */
static char **
db_split_ids(const char *s, size_t *n)
{
	const char *p = s;
	size_t cap = 1;
	char **ids;

	for (const char *c = s; *c; c++)
		cap += *c == ',';
	ids = xcalloc(cap, sizeof(*ids));
	*n = 0;
	while (*s && p) {
		const char *comma = strchr(p, ',');

		ids[(*n)++] =
			comma ? xstrndup(p, (size_t)(comma - p)) : xstrdup(p);
		p = comma ? comma + 1 : NULL;
	}
	return ids;
}

static Parley__V1__RoomEvent *
db_event_row(const PGresult *res, int row, const char *room_id)
{
	Parley__V1__RoomEvent *e = xmalloc(sizeof(*e));

	parley__v1__room_event__init(e);
	e->room_id = xstrdup(room_id);
	e->name = xstrdup(PQgetvalue(res, row, 4));
	e->kind = (Parley__V1__RoomEventKind)pg_i64(res, row, 5);
	e->actor_id = xstrdup(PQgetvalue(res, row, 6));
	e->user_ids = db_split_ids(PQgetvalue(res, row, 7), &e->n_user_ids);
	e->seq = pg_u64(res, row, 8);
	e->ts_ms = pg_i64(res, row, 9);
	return e;
}

static void
db_events_rows(const PGresult *res, const char *room_id,
	       Parley__V1__RoomEvent ***events, size_t *n)
{
	int rows = PQntuples(res);

	*n = 0;
	*events = xcalloc(rows ? (size_t)rows : 1,
			  sizeof(Parley__V1__RoomEvent *));
	for (int i = 0; i < rows; i++)
		if (!PQgetisnull(res, i, 5))
			(*events)[(*n)++] = db_event_row(res, i, room_id);
}

/* A uint64 as a bigint parameter, clamped to INT64_MAX. */
static void
db_param_u64(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%" PRIu64, v > INT64_MAX ? INT64_MAX : v);
}

int
db_sync_access(struct db *db, const char *room_id, const char *user,
	       uint64_t after, uint64_t end, uint32_t max_events,
	       struct db_access *out, Parley__V1__RoomEvent ***events,
	       size_t *n)
{
	char safter[24], send[24], smax[16];
	const char *params[] = { room_id, user, safter, send, smax };
	int rc = 0;
	PGresult *res;

	db_param_u64(safter, sizeof(safter), after);
	db_param_u64(send, sizeof(send), end);
	snprintf(smax, sizeof(smax), "%" PRIu32, max_events);
	res = pg_exec(&db->pg, "sync access", db_sync_access_sql, 5, params,
		      &rc);
	if (res == NULL)
		return rc;
	db_access_row(res, out);
	db_events_rows(res, room_id, events, n);
	PQclear(res);
	return 0;
}

void
db_event_free(Parley__V1__RoomEvent *e)
{
	for (size_t i = 0; i < e->n_user_ids; i++)
		free(e->user_ids[i]);
	free(e->user_ids);
	free(e->room_id);
	free(e->name);
	free(e->actor_id);
	free(e);
}

void
db_events_free(Parley__V1__RoomEvent **events, size_t n)
{
	for (size_t i = 0; events && i < n; i++)
		db_event_free(events[i]);
	free(events);
}

static Parley__V1__Message *
db_message_row(const PGresult *res, int row, const char *room_id)
{
	Parley__V1__Message *m = xmalloc(sizeof(*m));

	parley__v1__message__init(m);
	m->room_id = xstrdup(room_id);
	m->seq = pg_u64(res, row, 0);
	m->sender_id = xstrdup(PQgetvalue(res, row, 1));
	m->client_msg_id = xstrdup(PQgetvalue(res, row, 2));
	m->body = xstrdup(PQgetvalue(res, row, 3));
	m->ts_ms = pg_i64(res, row, 4);
	return m;
}

int
db_messages(struct db *db, const char *room_id, uint64_t lo, uint64_t hi,
	    uint32_t limit, bool desc, Parley__V1__Message ***out, size_t *n)
{
	char slo[24], shi[24], slim[16];
	const char *params[] = { room_id, slo, shi, slim };
	int rc = 0;
	PGresult *res;

	db_param_u64(slo, sizeof(slo), lo);
	db_param_u64(shi, sizeof(shi), hi);
	snprintf(slim, sizeof(slim), "%" PRIu32, limit);
	res = pg_exec(&db->pg, "messages",
		      desc ? "SELECT seq, sender_id, client_msg_id, body, ts_ms"
			     " FROM messages WHERE room_id = $1"
			     " AND seq > $2::bigint AND seq <= $3::bigint"
			     " ORDER BY seq DESC LIMIT $4::bigint"
			   : "SELECT seq, sender_id, client_msg_id, body, ts_ms"
			     " FROM messages WHERE room_id = $1"
			     " AND seq > $2::bigint AND seq <= $3::bigint"
			     " ORDER BY seq LIMIT $4::bigint",
		      4, params, &rc);
	if (res == NULL)
		return rc;
	*n = (size_t)PQntuples(res);
	*out = xcalloc(*n ? *n : 1, sizeof(Parley__V1__Message *));
	for (size_t i = 0; i < *n; i++)
		(*out)[i] = db_message_row(res, (int)i, room_id);
	PQclear(res);
	return 0;
}

void
db_message_free(Parley__V1__Message *m)
{
	free(m->room_id);
	free(m->sender_id);
	free(m->client_msg_id);
	free(m->body);
	free(m);
}

void
db_messages_free(Parley__V1__Message **msgs, size_t n)
{
	for (size_t i = 0; msgs && i < n; i++)
		db_message_free(msgs[i]);
	free(msgs);
}

static Parley__V1__RoomSummary *
db_room_row(const PGresult *res, int row)
{
	Parley__V1__RoomSummary *s = xmalloc(sizeof(*s));

	parley__v1__room_summary__init(s);
	s->room_id = xstrdup(PQgetvalue(res, row, 0));
	s->kind = (Parley__V1__RoomKind)pg_i64(res, row, 1);
	s->name = xstrdup(PQgetvalue(res, row, 2));
	s->last_seq = pg_u64(res, row, 3);
	s->read_seq = pg_u64(res, row, 4);
	s->delivered_seq = pg_u64(res, row, 5);
	s->unread = pg_u64(res, row, 6);
	return s;
}

int
db_rooms_of(struct db *db, const char *user, Parley__V1__RoomSummary ***out,
	    size_t *n)
{
	const char *params[] = { user };
	int rc = 0;
	PGresult *res = pg_exec(&db->pg, "rooms of user",
				"SELECT r.room_id, r.kind, r.name, r.last_seq,"
				" m.read_seq, m.delivered_seq, (SELECT count(*)"
				"  FROM messages x WHERE x.room_id = m.room_id"
				"  AND x.seq > m.read_seq"
				"  AND x.sender_id <> m.user_id)"
				" FROM members m JOIN rooms r"
				" ON r.room_id = m.room_id"
				" WHERE m.user_id = $1 AND m.left_after IS NULL"
				" ORDER BY r.last_ts DESC, r.room_id",
				1, params, &rc);

	if (res == NULL)
		return rc;
	*n = (size_t)PQntuples(res);
	*out = xcalloc(*n ? *n : 1, sizeof(Parley__V1__RoomSummary *));
	for (size_t i = 0; i < *n; i++)
		(*out)[i] = db_room_row(res, (int)i);
	PQclear(res);
	return 0;
}

void
db_rooms_free(Parley__V1__RoomSummary **rooms, size_t n)
{
	for (size_t i = 0; rooms && i < n; i++) {
		free(rooms[i]->room_id);
		free(rooms[i]->name);
		free(rooms[i]);
	}
	free(rooms);
}

/* The members of a room (current ones) into g, from the rows of res. */
static void
db_info_members(const PGresult *res, Parley__Server__V1__GetRoomResponse *g)
{
	g->n_members = (size_t)PQntuples(res);
	g->members =
		xcalloc(g->n_members ? g->n_members : 1, sizeof(*g->members));
	for (size_t i = 0; i < g->n_members; i++) {
		Parley__Server__V1__Member *m = xmalloc(sizeof(*m));

		parley__server__v1__member__init(m);
		m->user_id = xstrdup(PQgetvalue(res, (int)i, 0));
		m->joined_after = pg_u64(res, (int)i, 1);
		m->delivered_seq = pg_u64(res, (int)i, 2);
		m->read_seq = pg_u64(res, (int)i, 3);
		g->members[i] = m;
	}
}

int
db_room_info(struct db *db, const char *room_id,
	     Parley__Server__V1__GetRoomResponse **out)
{
	const char *params[] = { room_id };
	Parley__Server__V1__GetRoomResponse *g;
	int rc = 0;
	PGresult *res = pg_exec(&db->pg, "room info",
				"SELECT kind, name, coalesce(creator, ''),"
				" last_seq, last_ts, deleted FROM rooms"
				" WHERE room_id = $1",
				1, params, &rc);

	if (res == NULL)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return -ENOENT;
	}
	g = xmalloc(sizeof(*g));
	parley__server__v1__get_room_response__init(g);
	g->room_id = xstrdup(room_id);
	g->kind = (Parley__Server__V1__RoomKind)pg_i64(res, 0, 0);
	g->name = xstrdup(PQgetvalue(res, 0, 1));
	g->creator = xstrdup(PQgetvalue(res, 0, 2));
	g->last_seq = pg_u64(res, 0, 3);
	g->last_ts_ms = pg_i64(res, 0, 4);
	g->deleted = pg_bool(res, 0, 5);
	PQclear(res);
	res = pg_exec(&db->pg, "room members",
		      "SELECT user_id, joined_after, delivered_seq, read_seq"
		      " FROM members WHERE room_id = $1 AND left_after IS NULL"
		      " ORDER BY user_id",
		      1, params, &rc);
	if (res == NULL) {
		parley__server__v1__get_room_response__free_unpacked(g, NULL);
		return rc;
	}
	db_info_members(res, g);
	PQclear(res);
	*out = g;
	return 0;
}
