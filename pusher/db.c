/* PostgreSQL for parley-pusher (libpq): its own tables (devices, offsets,
 * what was pushed) from its own migrations, and reads of the store's
 * tables (messages, members, kafka_offsets). libpq errors become -errno
 * here and are logged once here. */
#if defined(__has_include) && __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pusher.h"
#include "xalloc.h"

#define DB_RETRY_MS 500
/* pg_advisory_xact_lock key of our migrations ("pusher" in ASCII); the
 * store's is another, so both may migrate at once. */
#define DB_MIGRATE_LOCK "112117115104101114"
/* Unread messages counted per room for a badge at most. */
#define DB_BADGE_ROOM_MAX "10000"
/* SQLSTATE undefined_table: the store has not created its tables yet. */
#define DB_UNDEFINED_TABLE "42P01"

struct db {
	char *conninfo;
	char *name;
	PGconn *conn;
	int64_t retry_at_ms;
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

static int64_t
db_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
db_conninfo_valid(const char *conninfo, char *why, size_t len)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

	if (opts == NULL) {
		snprintf(why, len, "%s", err ? err : "out of memory");
		why[strcspn(why, "\n")] = '\0';
	}
	PQconninfoFree(opts);
	PQfreemem(err);
	return opts != NULL;
}

struct db *
db_new(const char *conninfo, const char *name)
{
	struct db *db = xcalloc(1, sizeof(*db));

	db->conninfo = xstrdup(conninfo);
	db->name = xstrdup(name);
	return db;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	PQfinish(db->conn);
	free(db->conninfo);
	free(db->name);
	free(db);
}

bool
db_connected(const struct db *db)
{
	return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

/* libpq messages span lines; logs want one. */
static void
db_log(enum log_level level, const char *id, const char *what, const char *msg)
{
	char line[512];
	size_t n = 0;

	for (; msg && *msg && n < sizeof(line) - 1; msg++)
		line[n++] = (*msg == '\n' || *msg == '\t') ? ' ' : *msg;
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n] = '\0';
	log_write(level, id, "%s: %s", what, line);
}

static void
db_on_notice(void *arg, const char *msg)
{
	(void)arg;
	db_log(LOG_LEVEL_WARN, "pusher.db_notice", "notice", msg);
}

int
db_connect(struct db *db)
{
	const char *keys[] = { "connect_timeout", "application_name", "dbname",
			       NULL };
	const char *vals[] = { "5", db->name, db->conninfo, NULL };

	if (db_connected(db))
		return 0;
	if (db_mono_ms() < db->retry_at_ms)
		return -ENOTCONN;
	PQfinish(db->conn);
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		db_log(LOG_LEVEL_ERROR, "pusher.db_connect", "connect",
		       PQerrorMessage(db->conn));
		PQfinish(db->conn);
		db->conn = NULL;
		db->retry_at_ms = db_mono_ms() + DB_RETRY_MS;
		return -ENOTCONN;
	}
	PQsetNoticeProcessor(db->conn, db_on_notice, db);
	LOG_INFO("pusher.db_connected", "%s connected to PostgreSQL %d",
		 db->name, PQserverVersion(db->conn));
	return 0;
}

static int
db_fail(struct db *db, PGresult *res, const char *what)
{
	const char *state =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int rc = db_connected(db) ? -EIO : -ENOTCONN;

	if (state && strcmp(state, DB_UNDEFINED_TABLE) == 0) {
		rc = -EAGAIN; /* the store's tables are not there yet */
		LOG_DEBUG("pusher.db_no_table",
			  "%s: waiting for the store's tables", what);
	} else {
		metric_add(stats_get()->db_errors, 1);
		db_log(LOG_LEVEL_ERROR, "pusher.db_error", what,
		       res ? PQresultErrorMessage(res)
			   : PQerrorMessage(db->conn));
	}
	PQclear(res);
	return rc;
}

/* One statement with text parameters: the result (caller clears it), or
 * NULL with *rc set. */
static PGresult *
db_exec(struct db *db, const char *what, const char *sql, int n,
	const char *const *params, int *rc)
{
	PGresult *res;
	ExecStatusType st;

	if (!db_connected(db)) {
		*rc = -ENOTCONN;
		return NULL;
	}
	res = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	*rc = db_fail(db, res, what);
	return NULL;
}

static int
db_run(struct db *db, const char *what, const char *sql, int n,
       const char *const *params)
{
	int rc = 0;
	PGresult *res = db_exec(db, what, sql, n, params, &rc);

	PQclear(res);
	return rc;
}

static void
db_rollback(struct db *db)
{
	if (db_connected(db) && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		PQclear(PQexec(db->conn, "ROLLBACK"));
}

/* BEGIN; body; COMMIT — rolled back when anything failed. */
static int
db_tx(struct db *db, const char *what, int (*body)(struct db *, void *),
      void *arg)
{
	int rc = db_run(db, what, "BEGIN", 0, NULL);

	if (rc == 0)
		rc = body(db, arg);
	if (rc == 0)
		rc = db_run(db, what, "COMMIT", 0, NULL);
	if (rc < 0)
		db_rollback(db);
	return rc;
}

static int64_t
db_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static uint64_t
db_u64(const PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

static bool
db_bool(const PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col)[0] == 't';
}

/* ---- text-format array literals: one parameter per column ---- */

struct dbarr {
	char *buf;
	size_t len, cap;
};

static void
dbarr_put(struct dbarr *a, const char *s, size_t n)
{
	if (a->len + n + 2 > a->cap) {
		a->cap = (a->len + n + 2) * 2;
		a->buf = xrealloc(a->buf, a->cap);
	}
	memcpy(a->buf + a->len, s, n);
	a->len += n;
	a->buf[a->len] = '\0';
}

static void
dbarr_sep(struct dbarr *a)
{
	dbarr_put(a, a->len ? "," : "{", 1);
}

static void
dbarr_str(struct dbarr *a, const char *s)
{
	dbarr_sep(a);
	dbarr_put(a, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			dbarr_put(a, "\\", 1);
		dbarr_put(a, s, 1);
	}
	dbarr_put(a, "\"", 1);
}

static void
dbarr_i64(struct dbarr *a, int64_t v)
{
	char num[24];

	dbarr_sep(a);
	snprintf(num, sizeof(num), "%lld", (long long)v);
	dbarr_put(a, num, strlen(num));
}

/* The literal; "{}" when empty. Valid until the next change. */
static const char *
dbarr_text(struct dbarr *a)
{
	if (a->len == 0)
		dbarr_put(a, "{", 1);
	if (a->buf[a->len - 1] != '}')
		dbarr_put(a, "}", 1);
	return a->buf;
}

static void
dbarr_free(struct dbarr *arrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(arrs[i].buf);
}

/* ---- migrations ---- */

static int
db_migrate_locked(struct db *db, void *arg)
{
	char num[16];
	const char *params[] = { num };
	int version = 0, rc;
	PGresult *res;

	(void)arg;
	rc = db_run(db, "migrate lock",
		    "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK ")", 0,
		    NULL);
	/* No "already exists, skipping" notice at every start. */
	if (rc == 0)
		rc = db_run(db, "quiet",
			    "SET LOCAL client_min_messages = warning", 0, NULL);
	if (rc == 0)
		rc = db_run(db, "migrations table",
			    "CREATE TABLE IF NOT EXISTS pusher_migrations ("
			    " version integer PRIMARY KEY,"
			    " applied_at timestamptz NOT NULL DEFAULT now())",
			    0, NULL);
	if (rc < 0)
		return rc;
	res = db_exec(db, "schema version",
		      "SELECT coalesce(max(version), 0) FROM pusher_migrations",
		      0, NULL, &rc);
	if (res == NULL)
		return rc;
	version = (int)db_i64(res, 0, 0);
	PQclear(res);
	while (rc == 0 && version < (int)DB_N_MIGRATIONS) {
		res = PQexec(db->conn, db_migrations[version]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return db_fail(db, res, "migration");
		PQclear(res);
		snprintf(num, sizeof(num), "%d", ++version);
		rc = db_run(db, "migration record",
			    "INSERT INTO pusher_migrations (version)"
			    " VALUES ($1::integer)",
			    1, params);
		if (rc == 0)
			LOG_INFO("pusher.migrate",
				 "applied pusher migration %d", version);
	}
	return rc;
}

int
db_migrate(struct db *db)
{
	return db_tx(db, "migrate", db_migrate_locked, NULL);
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
	res = db_exec(db, "load offsets",
		      "SELECT part, next_offset FROM push_offsets"
		      " WHERE topic = $1",
		      1, params, &rc);
	if (res == NULL)
		return rc;
	for (int i = 0; i < parts->cnt; i++)
		parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
	for (int row = 0; row < PQntuples(res); row++) {
		int32_t part = (int32_t)db_i64(res, row, 0);

		for (int i = 0; i < parts->cnt; i++)
			if (parts->elems[i].partition == part)
				parts->elems[i].offset = db_i64(res, row, 1);
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

	res = db_exec(db, "store offsets",
		      "SELECT part, next_offset FROM kafka_offsets"
		      " WHERE topic = $1",
		      1, params, &rc);
	if (res == NULL)
		return rc;
	for (int32_t i = 0; i < n; i++)
		next[i] = -1;
	for (int row = 0; row < PQntuples(res); row++) {
		int64_t part = db_i64(res, row, 0);

		if (part >= 0 && part < n)
			next[part] = db_i64(res, row, 1);
	}
	PQclear(res);
	return 0;
}

/* ---- candidates ---- */

/* The newest message of each post's (room, sender, client id) — the one
 * the post made, or the original a duplicate was folded into — and the
 * devices of members who may need a push for it. */
static const char db_resolve_sql[] =
	"WITH q AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
	"  WITH ORDINALITY AS q(room, sender, cid, i)),"
	" msg AS (SELECT q.i, q.room, q.sender, x.seq, x.body FROM q"
	"  CROSS JOIN LATERAL (SELECT seq, body FROM messages"
	"   WHERE room_id = q.room AND sender_id = q.sender"
	"   AND client_msg_id = q.cid ORDER BY seq DESC LIMIT 1) x)"
	" SELECT msg.i, msg.seq,"
	"  CASE WHEN $4::int = 0 THEN ''"
	"   WHEN char_length(msg.body) > $4::int"
	"   THEN left(msg.body, $4::int) || '\xe2\x80\xa6' ELSE msg.body END,"
	"  m.user_id, d.platform, d.token,"
	"  coalesce(s.seq, 0), coalesce(s.sent_ms, 0)"
	" FROM msg JOIN members m ON m.room_id = msg.room"
	"  AND m.left_after IS NULL AND m.user_id <> msg.sender"
	"  AND m.delivered_seq < msg.seq AND m.joined_after < msg.seq"
	" JOIN devices d ON d.user_id = m.user_id"
	" LEFT JOIN push_sent s ON s.platform = d.platform"
	"  AND s.token = d.token AND s.room_id = msg.room"
	" WHERE coalesce(s.seq, 0) < msg.seq"
	" ORDER BY msg.i";

static void
db_cand_row(const PGresult *res, int row, struct db_cand *c)
{
	c->post = (size_t)db_i64(res, row, 0) - 1;
	c->seq = db_u64(res, row, 1);
	c->preview = xstrdup(PQgetvalue(res, row, 2));
	c->user = xstrdup(PQgetvalue(res, row, 3));
	c->platform = push_platform_parse(PQgetvalue(res, row, 4));
	c->token = xstrdup(PQgetvalue(res, row, 5));
	c->sent_seq = db_u64(res, row, 6);
	c->sent_ms = db_i64(res, row, 7);
}

int
db_resolve(struct db *db, const struct db_post *posts, size_t n,
	   int preview_chars, struct db_cand **out, size_t *n_out)
{
	struct dbarr a[3] = { { 0 } };
	char chars[16];
	const char *params[4];
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		dbarr_str(&a[0], posts[i].room);
		dbarr_str(&a[1], posts[i].sender);
		dbarr_str(&a[2], posts[i].cid);
	}
	for (int i = 0; i < 3; i++)
		params[i] = dbarr_text(&a[i]);
	snprintf(chars, sizeof(chars), "%d", preview_chars);
	params[3] = chars;
	res = db_exec(db, "resolve posts", db_resolve_sql, 4, params, &rc);
	dbarr_free(a, 3);
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
	struct dbarr a[4] = { { 0 } };
	const char *params[4];
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		dbarr_str(&a[0], checks[i].user);
		dbarr_str(&a[1], checks[i].room);
		dbarr_str(&a[2], push_platform_name(checks[i].platform));
		dbarr_str(&a[3], checks[i].token);
	}
	for (int i = 0; i < 4; i++)
		params[i] = dbarr_text(&a[i]);
	res = db_exec(db, "check devices", db_check_sql, 4, params, &rc);
	dbarr_free(a, 4);
	if (res == NULL)
		return rc;
	for (int row = 0; row < PQntuples(res); row++) {
		int64_t i = db_i64(res, row, 0) - 1;

		if (i < 0 || (size_t)i >= n)
			continue;
		checks[i].delivered = db_u64(res, row, 1);
		checks[i].member = db_bool(res, row, 2);
		checks[i].device = db_bool(res, row, 3);
	}
	PQclear(res);
	return 0;
}

static int
db_badges(struct db *db, char *const *users, uint64_t *badge, size_t n)
{
	struct dbarr a = { 0 };
	const char *params[1];
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		dbarr_str(&a, users[i]);
		badge[i] = 0;
	}
	params[0] = dbarr_text(&a);
	res = db_exec(db, "badges", db_badge_sql, 1, params, &rc);
	free(a.buf);
	if (res == NULL)
		return rc;
	for (int row = 0; row < PQntuples(res); row++)
		for (size_t i = 0; i < n; i++)
			if (strcmp(users[i], PQgetvalue(res, row, 0)) == 0)
				badge[i] = db_u64(res, row, 1);
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
	struct dbarr a[5] = { { 0 } };
	const char *params[5];
	int rc;

	for (size_t i = 0; i < r->n_sent; i++) {
		dbarr_str(&a[0], push_platform_name(r->sent[i].platform));
		dbarr_str(&a[1], r->sent[i].token);
		dbarr_str(&a[2], r->sent[i].room);
		dbarr_i64(&a[3], (int64_t)r->sent[i].seq);
		dbarr_i64(&a[4], r->sent[i].sent_ms);
	}
	for (int i = 0; i < 5; i++)
		params[i] = dbarr_text(&a[i]);
	rc = db_run(
		db, "record pushes",
		"INSERT INTO push_sent (platform, token, room_id, seq,"
		" sent_ms) SELECT DISTINCT ON (p, t, r) * FROM unnest("
		"$1::text[], $2::text[], $3::text[], $4::bigint[],"
		" $5::bigint[]) AS q(p, t, r, s, ms) ORDER BY p, t, r, s DESC"
		" ON CONFLICT (platform, token, room_id) DO UPDATE SET"
		" seq = GREATEST(push_sent.seq, EXCLUDED.seq),"
		" sent_ms = GREATEST(push_sent.sent_ms, EXCLUDED.sent_ms)",
		5, params);
	dbarr_free(a, 5);
	return rc;
}

static int
db_write_dead(struct db *db, const struct db_results *r)
{
	struct dbarr a[3] = { { 0 } };
	const char *params[3];
	int rc;

	for (size_t i = 0; i < r->n_dead; i++) {
		dbarr_str(&a[0], push_platform_name(r->dead[i].platform));
		dbarr_str(&a[1], r->dead[i].token);
		dbarr_i64(&a[2], r->dead[i].before_ms);
	}
	for (int i = 0; i < 3; i++)
		params[i] = dbarr_text(&a[i]);
	rc = db_run(
		db, "remove dead devices",
		"WITH q AS (SELECT * FROM unnest($1::text[], $2::text[],"
		" $3::bigint[]) AS q(p, t, before)),"
		" gone AS (DELETE FROM devices v USING q"
		"  WHERE v.platform = q.p AND v.token = q.t"
		"  AND v.created_ms <= q.before"
		"  RETURNING v.platform, v.token)"
		" DELETE FROM push_sent s USING gone"
		" WHERE s.platform = gone.platform AND s.token = gone.token",
		3, params);
	dbarr_free(a, 3);
	return rc;
}

static int
db_write_offsets(struct db *db, const struct db_results *r)
{
	struct dbarr a[2] = { { 0 } };
	const char *params[3];
	int rc;

	for (size_t i = 0; i < r->n_offs; i++) {
		dbarr_i64(&a[0], r->offs[i].part);
		dbarr_i64(&a[1], r->offs[i].next);
	}
	params[0] = r->topic;
	params[1] = dbarr_text(&a[0]);
	params[2] = dbarr_text(&a[1]);
	rc = db_run(db, "store offsets",
		    "INSERT INTO push_offsets (topic, part, next_offset)"
		    " SELECT $1, * FROM unnest($2::integer[], $3::bigint[])"
		    " ON CONFLICT (topic, part) DO UPDATE"
		    " SET next_offset = EXCLUDED.next_offset",
		    3, params);
	dbarr_free(a, 2);
	return rc;
}

static int
db_write_results(struct db *db, void *arg)
{
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
	return db_tx(db, "record", db_write_results, &r);
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
db_device_add_tx(struct db *db, void *arg)
{
	const struct db_device *d = arg;
	char now[24], max[16];
	const char *params[] = { d->user, d->platform, d->token, now };
	const char *limit[] = { d->user, max };
	int rc;

	snprintf(now, sizeof(now), "%lld", (long long)db_wall_ms());
	snprintf(max, sizeof(max), "%d", d->max);
	/* A token that moves to another user forgets its pushes. */
	rc = db_run(
		db, "device moves",
		"DELETE FROM push_sent s USING devices v"
		" WHERE v.platform = $2 AND v.token = $3 AND v.user_id <> $1"
		" AND s.platform = v.platform AND s.token = v.token",
		3, params);
	if (rc == 0)
		rc = db_run(db, "device add",
			    "INSERT INTO devices (platform, token, user_id,"
			    " created_ms) VALUES ($2, $3, $1, $4::bigint)"
			    " ON CONFLICT (platform, token) DO UPDATE SET"
			    " user_id = EXCLUDED.user_id,"
			    " created_ms = EXCLUDED.created_ms",
			    4, params);
	if (rc == 0)
		rc = db_run(
			db, "device limit",
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

	return db_tx(db, "device add", db_device_add_tx, &d);
}

int
db_device_remove(struct db *db, const char *user, const char *token)
{
	const char *params[] = { user, token };

	return db_run(
		db, "device remove",
		"WITH gone AS (DELETE FROM devices"
		" WHERE user_id = $1 AND token = $2"
		" RETURNING platform, token)"
		" DELETE FROM push_sent s USING gone"
		" WHERE s.platform = gone.platform AND s.token = gone.token",
		2, params);
}
