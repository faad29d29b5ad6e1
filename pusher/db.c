/* PostgreSQL for parley-pusher (libpq): its own tables (devices, offsets,
 * what was pushed) from its own migrations, and reads of the store's
 * tables (messages, members, kafka_offsets). libpq errors become -errno
 * here and are logged once here. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "pusher.h"
#include "xalloc.h"

/* pg_advisory_xact_lock key of our migrations ("pusher" in ASCII); the
 * store's is another, so both may migrate at once. */
#define DB_MIGRATE_LOCK "112117115104101114"
/* Unread messages counted per room for a badge at most. */
#define DB_BADGE_ROOM_MAX "10000"

struct db {
	struct pg pg;
};

/* Migrations: append only, never edit one that has shipped. Recorded in
 * pusher_migrations, never in the store's schema_migrations. */
static const char *const db_migrations[] = {
	/* 1: devices, our Kafka offsets, the last push per device and room. */
	"CREATE TABLE devices ("
	" platform text NOT NULL,"
	" token text NOT NULL,"
	" user_id text NOT NULL,"
	" created_ms bigint NOT NULL,"
	" PRIMARY KEY (platform, token));"
	"CREATE INDEX devices_user ON devices (user_id);"
	"CREATE TABLE push_offsets ("
	" topic text NOT NULL,"
	" part integer NOT NULL,"
	" next_offset bigint NOT NULL,"
	" PRIMARY KEY (topic, part));"
	"CREATE TABLE push_sent ("
	" platform text NOT NULL,"
	" token text NOT NULL,"
	" room_id text NOT NULL,"
	" seq bigint NOT NULL,"
	" sent_ms bigint NOT NULL,"
	" PRIMARY KEY (platform, token, room_id));",
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

	pg_init(&db->pg, conninfo, name, "pusher", stats_get()->db_errors);
	db->pg.missing_table_again = true; /* the store's, until it made them */
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

/* The db of a pg_tx body's connection. */
static struct db *
db_of(struct pg *pg)
{
	return (struct db *)((char *)pg - offsetof(struct db, pg));
}

int
db_migrate(struct db *db)
{
	return pg_migrate(&db->pg, "pusher_migrations", DB_MIGRATE_LOCK,
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
		      "SELECT part, next_offset FROM push_offsets"
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

int
db_store_offsets(struct db *db, const char *topic, int64_t *next, int32_t n)
{
	const char *params[] = { topic };
	PGresult *res;
	int rc = 0;

	res = pg_exec(&db->pg, "store offsets",
		      "SELECT part, next_offset FROM kafka_offsets"
		      " WHERE topic = $1",
		      1, params, &rc);
	if (res == NULL)
		return rc;
	for (int32_t i = 0; i < n; i++)
		next[i] = -1;
	for (int row = 0; row < PQntuples(res); row++) {
		int64_t part = pg_i64(res, row, 0);

		if (part >= 0 && part < n)
			next[part] = pg_i64(res, row, 1);
	}
	PQclear(res);
	return 0;
}

/* ---- candidates ---- */

/* The newest message of each post's (room, sender, client id) — the one
 * the post made, or the original a duplicate was folded into — and the
 * devices of members who may need a push for it. The members with devices
 * are found once per room of the batch, not once per post: that join
 * costs an index probe per member, so per post it made PostgreSQL the
 * largest CPU user of big rooms (docs/PERFORMANCE.md). */
static const char db_resolve_sql[] =
	"WITH q AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
	"  WITH ORDINALITY AS q(room, sender, cid, i)),"
	" msg AS (SELECT q.i, q.room, q.sender, x.seq, x.body FROM q"
	"  CROSS JOIN LATERAL (SELECT seq, body FROM messages"
	"   WHERE room_id = q.room AND sender_id = q.sender"
	"   AND client_msg_id = q.cid ORDER BY seq DESC LIMIT 1) x),"
	" md AS MATERIALIZED (SELECT m.room_id, m.user_id, m.delivered_seq,"
	"  m.joined_after, d.platform, d.token"
	"  FROM (SELECT DISTINCT room FROM q) r"
	"  JOIN members m ON m.room_id = r.room AND m.left_after IS NULL"
	"  JOIN devices d ON d.user_id = m.user_id)"
	" SELECT msg.i, msg.seq,"
	"  CASE WHEN $4::int = 0 THEN ''"
	"   WHEN char_length(msg.body) > $4::int"
	"   THEN left(msg.body, $4::int) || '\xe2\x80\xa6' ELSE msg.body END,"
	"  md.user_id, md.platform, md.token,"
	"  coalesce(s.seq, 0), coalesce(s.sent_ms, 0)"
	" FROM msg JOIN md ON md.room_id = msg.room"
	"  AND md.user_id <> msg.sender"
	"  AND md.delivered_seq < msg.seq AND md.joined_after < msg.seq"
	" LEFT JOIN push_sent s ON s.platform = md.platform"
	"  AND s.token = md.token AND s.room_id = msg.room"
	" WHERE coalesce(s.seq, 0) < msg.seq"
	" ORDER BY msg.i";

static void
db_cand_row(const PGresult *res, int row, struct db_cand *c)
{
	c->post = (size_t)pg_i64(res, row, 0) - 1;
	c->seq = pg_u64(res, row, 1);
	c->preview = xstrdup(PQgetvalue(res, row, 2));
	c->user = xstrdup(PQgetvalue(res, row, 3));
	c->platform = push_platform_parse(PQgetvalue(res, row, 4));
	c->token = xstrdup(PQgetvalue(res, row, 5));
	c->sent_seq = pg_u64(res, row, 6);
	c->sent_ms = pg_i64(res, row, 7);
}

int
db_resolve(struct db *db, const struct db_post *posts, size_t n,
	   int preview_chars, struct db_cand **out, size_t *n_out)
{
	struct pgarr a[3] = { { 0 } };
	char chars[16];
	const char *params[4];
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		pgarr_add_str(&a[0], posts[i].room);
		pgarr_add_str(&a[1], posts[i].sender);
		pgarr_add_str(&a[2], posts[i].cid);
	}
	for (int i = 0; i < 3; i++)
		params[i] = pgarr_str(&a[i]);
	snprintf(chars, sizeof(chars), "%d", preview_chars);
	params[3] = chars;
	res = pg_exec(&db->pg, "resolve posts", db_resolve_sql, 4, params, &rc);
	pgarr_release_all(a, 3);
	if (res == NULL)
		return rc;
	*n_out = (size_t)PQntuples(res);
	*out = xcalloc(*n_out ? *n_out : 1, sizeof(**out));
	for (size_t i = 0; i < *n_out; i++)
		db_cand_row(res, (int)i, &(*out)[i]);
	PQclear(res);
	return 0;
}

void
db_cands_free(struct db_cand *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		free(c[i].preview);
		free(c[i].user);
		free(c[i].token);
	}
	free(c);
}

/* ---- decisions ---- */

static const char db_check_sql[] =
	"SELECT q.i, coalesce(m.delivered_seq, 0),"
	"  (m.user_id IS NOT NULL AND m.left_after IS NULL),"
	"  EXISTS (SELECT 1 FROM devices d WHERE d.platform = q.platform"
	"   AND d.token = q.token AND d.user_id = q.u)"
	" FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
	"  WITH ORDINALITY AS q(u, r, platform, token, i)"
	" LEFT JOIN members m ON m.room_id = q.r AND m.user_id = q.u";

/* Unread over every room of each user, as the store counts it (after the
 * read marker, not sent by the user), at most DB_BADGE_ROOM_MAX a room. */
static const char db_badge_sql[] =
	"SELECT m.user_id, sum((SELECT count(*) FROM (SELECT 1 FROM messages x"
	"  WHERE x.room_id = m.room_id AND x.seq > m.read_seq"
	"  AND x.sender_id <> m.user_id LIMIT " DB_BADGE_ROOM_MAX
	") c))::bigint"
	" FROM members m WHERE m.user_id = ANY($1::text[])"
	"  AND m.left_after IS NULL GROUP BY m.user_id";

static int
db_checks(struct db *db, struct db_check *checks, size_t n)
{
	struct pgarr a[4] = { { 0 } };
	const char *params[4];
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		pgarr_add_str(&a[0], checks[i].user);
		pgarr_add_str(&a[1], checks[i].room);
		pgarr_add_str(&a[2], push_platform_name(checks[i].platform));
		pgarr_add_str(&a[3], checks[i].token);
	}
	for (int i = 0; i < 4; i++)
		params[i] = pgarr_str(&a[i]);
	res = pg_exec(&db->pg, "check devices", db_check_sql, 4, params, &rc);
	pgarr_release_all(a, 4);
	if (res == NULL)
		return rc;
	for (int row = 0; row < PQntuples(res); row++) {
		int64_t i = pg_i64(res, row, 0) - 1;

		if (i < 0 || (size_t)i >= n)
			continue;
		checks[i].delivered = pg_u64(res, row, 1);
		checks[i].member = pg_bool(res, row, 2);
		checks[i].device = pg_bool(res, row, 3);
	}
	PQclear(res);
	return 0;
}

static int
db_badges(struct db *db, char *const *users, uint64_t *badge, size_t n)
{
	struct pgarr a = { 0 };
	const char *params[1];
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		pgarr_add_str(&a, users[i]);
		badge[i] = 0;
	}
	params[0] = pgarr_str(&a);
	res = pg_exec(&db->pg, "badges", db_badge_sql, 1, params, &rc);
	free(a.buf);
	if (res == NULL)
		return rc;
	for (int row = 0; row < PQntuples(res); row++)
		for (size_t i = 0; i < n; i++)
			if (strcmp(users[i], PQgetvalue(res, row, 0)) == 0)
				badge[i] = pg_u64(res, row, 1);
	PQclear(res);
	return 0;
}

int
db_decide(struct db *db, struct db_check *checks, size_t n, char *const *users,
	  uint64_t *badge, size_t n_users)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		checks[i].member = checks[i].device = false;
		checks[i].delivered = 0;
	}
	rc = db_checks(db, checks, n);
	if (rc == 0)
		rc = db_badges(db, users, badge, n_users);
	return rc;
}

/* ---- results ---- */

struct db_results {
	const char *topic;
	const struct db_sent *sent;
	size_t n_sent;
	const struct db_dead *dead;
	size_t n_dead;
	const struct db_offset *offs;
	size_t n_offs;
};

static int
db_write_sent(struct db *db, const struct db_results *r)
{
	struct pgarr a[5] = { { 0 } };
	const char *params[5];
	int rc;

	for (size_t i = 0; i < r->n_sent; i++) {
		pgarr_add_str(&a[0], push_platform_name(r->sent[i].platform));
		pgarr_add_str(&a[1], r->sent[i].token);
		pgarr_add_str(&a[2], r->sent[i].room);
		pgarr_add_i64(&a[3], (int64_t)r->sent[i].seq);
		pgarr_add_i64(&a[4], r->sent[i].sent_ms);
	}
	for (int i = 0; i < 5; i++)
		params[i] = pgarr_str(&a[i]);
	rc = pg_run(
		&db->pg, "record pushes",
		"INSERT INTO push_sent (platform, token, room_id, seq,"
		" sent_ms) SELECT DISTINCT ON (p, t, r) * FROM unnest("
		"$1::text[], $2::text[], $3::text[], $4::bigint[],"
		" $5::bigint[]) AS q(p, t, r, s, ms) ORDER BY p, t, r, s DESC"
		" ON CONFLICT (platform, token, room_id) DO UPDATE SET"
		" seq = GREATEST(push_sent.seq, EXCLUDED.seq),"
		" sent_ms = GREATEST(push_sent.sent_ms, EXCLUDED.sent_ms)",
		5, params);
	pgarr_release_all(a, 5);
	return rc;
}

static int
db_write_dead(struct db *db, const struct db_results *r)
{
	struct pgarr a[3] = { { 0 } };
	const char *params[3];
	int rc;

	for (size_t i = 0; i < r->n_dead; i++) {
		pgarr_add_str(&a[0], push_platform_name(r->dead[i].platform));
		pgarr_add_str(&a[1], r->dead[i].token);
		pgarr_add_i64(&a[2], r->dead[i].before_ms);
	}
	for (int i = 0; i < 3; i++)
		params[i] = pgarr_str(&a[i]);
	rc = pg_run(
		&db->pg, "remove dead devices",
		"WITH q AS (SELECT * FROM unnest($1::text[], $2::text[],"
		" $3::bigint[]) AS q(p, t, before)),"
		" gone AS (DELETE FROM devices v USING q"
		"  WHERE v.platform = q.p AND v.token = q.t"
		"  AND v.created_ms <= q.before"
		"  RETURNING v.platform, v.token)"
		" DELETE FROM push_sent s USING gone"
		" WHERE s.platform = gone.platform AND s.token = gone.token",
		3, params);
	pgarr_release_all(a, 3);
	return rc;
}

static int
db_write_offsets(struct db *db, const struct db_results *r)
{
	struct pgarr a[2] = { { 0 } };
	const char *params[3];
	int rc;

	for (size_t i = 0; i < r->n_offs; i++) {
		pgarr_add_i64(&a[0], r->offs[i].part);
		pgarr_add_i64(&a[1], r->offs[i].next);
	}
	params[0] = r->topic;
	params[1] = pgarr_str(&a[0]);
	params[2] = pgarr_str(&a[1]);
	rc = pg_run(&db->pg, "store offsets",
		    "INSERT INTO push_offsets (topic, part, next_offset)"
		    " SELECT $1, * FROM unnest($2::integer[], $3::bigint[])"
		    " ON CONFLICT (topic, part) DO UPDATE"
		    " SET next_offset = EXCLUDED.next_offset",
		    3, params);
	pgarr_release_all(a, 2);
	return rc;
}

static int
db_write_results(struct pg *pg, void *arg)
{
	struct db *db = db_of(pg);
	const struct db_results *r = arg;
	int rc = 0;

	if (r->n_sent)
		rc = db_write_sent(db, r);
	if (rc == 0 && r->n_dead)
		rc = db_write_dead(db, r);
	if (rc == 0 && r->n_offs)
		rc = db_write_offsets(db, r);
	return rc;
}

int
db_record(struct db *db, const char *topic, const struct db_sent *sent,
	  size_t n_sent, const struct db_dead *dead, size_t n_dead,
	  const struct db_offset *offs, size_t n_offs)
{
	struct db_results r = {
		topic, sent, n_sent, dead, n_dead, offs, n_offs
	};

	if (n_sent + n_dead + n_offs == 0)
		return 0;
	return pg_tx(&db->pg, "record", db_write_results, &r);
}

/* ---- devices ---- */

struct db_device {
	const char *user, *platform, *token;
	int max;
};

static int64_t
db_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
db_device_add_tx(struct pg *pg, void *arg)
{
	struct db *db = db_of(pg);
	const struct db_device *d = arg;
	char now[24], max[16];
	const char *params[] = { d->user, d->platform, d->token, now };
	const char *limit[] = { d->user, max };
	int rc;

	snprintf(now, sizeof(now), "%lld", (long long)db_wall_ms());
	snprintf(max, sizeof(max), "%d", d->max);
	/* A token that moves to another user forgets its pushes. */
	rc = pg_run(
		&db->pg, "device moves",
		"DELETE FROM push_sent s USING devices v"
		" WHERE v.platform = $2 AND v.token = $3 AND v.user_id <> $1"
		" AND s.platform = v.platform AND s.token = v.token",
		3, params);
	if (rc == 0)
		rc = pg_run(&db->pg, "device add",
			    "INSERT INTO devices (platform, token, user_id,"
			    " created_ms) VALUES ($2, $3, $1, $4::bigint)"
			    " ON CONFLICT (platform, token) DO UPDATE SET"
			    " user_id = EXCLUDED.user_id,"
			    " created_ms = EXCLUDED.created_ms",
			    4, params);
	if (rc == 0)
		rc = pg_run(
			&db->pg, "device limit",
			"WITH old AS (DELETE FROM devices WHERE"
			" (platform, token) IN (SELECT platform, token"
			"  FROM devices WHERE user_id = $1"
			"  ORDER BY created_ms DESC, platform, token"
			"  OFFSET $2::integer)"
			" RETURNING platform, token)"
			" DELETE FROM push_sent s USING old"
			" WHERE s.platform = old.platform AND s.token = old.token",
			2, limit);
	return rc;
}

int
db_device_add(struct db *db, const char *user, int platform, const char *token,
	      int max)
{
	struct db_device d = { user, push_platform_name(platform), token, max };

	return pg_tx(&db->pg, "device add", db_device_add_tx, &d);
}

int
db_device_remove(struct db *db, const char *user, const char *token)
{
	const char *params[] = { user, token };

	return pg_run(
		&db->pg, "device remove",
		"WITH gone AS (DELETE FROM devices"
		" WHERE user_id = $1 AND token = $2"
		" RETURNING platform, token)"
		" DELETE FROM push_sent s USING gone"
		" WHERE s.platform = gone.platform AND s.token = gone.token",
		2, params);
}
