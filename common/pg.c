/* PostgreSQL helpers shared by the store and the pusher (see pg.h). */
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xalloc.h"

/* After a failed connect, further attempts fail at once for this long. */
#define PG_RETRY_MS 500
/* SQLSTATE undefined_table. */
#define PG_UNDEFINED_TABLE "42P01"

static int64_t
pg_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
pg_conninfo_valid(const char *conninfo, char *why, size_t len)
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

void
pg_init(struct pg *pg, const char *conninfo, const char *name, const char *svc,
	struct metric *errors)
{
	memset(pg, 0, sizeof(*pg));
	pg->conninfo = xstrdup(conninfo);
	pg->name = xstrdup(name);
	pg->svc = svc;
	pg->errors = errors;
}

void
pg_release(struct pg *pg)
{
	PQfinish(pg->conn);
	pg->conn = NULL;
	free(pg->conninfo);
	free(pg->name);
}

bool
pg_connected(const struct pg *pg)
{
	return pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

/* libpq messages span lines; logs want one. The line's id is
 * "<svc>.<event>". */
static void
pg_log(const struct pg *pg, enum log_level level, const char *event,
       const char *what, const char *msg)
{
	char line[512], id[64];
	size_t n = 0;

	snprintf(id, sizeof(id), "%s.%s", pg->svc, event);

	for (; msg && *msg && n < sizeof(line) - 1; msg++)
		line[n++] = (*msg == '\n' || *msg == '\t') ? ' ' : *msg;
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n] = '\0';
	log_write(level, id, "%s: %s", what, line);
}

/* Server notices (e.g. "terminating connection due to administrator
 * command") as JSON log lines instead of libpq's bare stderr text. */
static void
pg_on_notice(void *arg, const char *msg)
{
	pg_log(arg, LOG_LEVEL_WARN, "db_notice", "notice", msg);
}

int
pg_connect(struct pg *pg)
{
	const char *keys[] = { "connect_timeout", "application_name", "dbname",
			       NULL };
	const char *vals[] = { "5", pg->name, pg->conninfo, NULL };

	if (pg_connected(pg))
		return 0;
	if (pg_mono_ms() < pg->retry_at_ms)
		return -ENOTCONN;
	PQfinish(pg->conn);
	/* Expanding dbname lets the conninfo override the defaults before. */
	pg->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		pg_log(pg, LOG_LEVEL_ERROR, "db_connect", "connect",
		       PQerrorMessage(pg->conn));
		PQfinish(pg->conn);
		pg->conn = NULL;
		pg->retry_at_ms = pg_mono_ms() + PG_RETRY_MS;
		return -ENOTCONN;
	}
	PQsetNoticeProcessor(pg->conn, pg_on_notice, pg);
	{
		char id[64], version[16];

		snprintf(id, sizeof(id), "%s.db_connected", pg->svc);
		snprintf(version, sizeof(version), "%d",
			 PQserverVersion(pg->conn));
		LOG_INFO(id, "%s connected to PostgreSQL %s", pg->name,
			 version);
	}
	return 0;
}

int
pg_fail(struct pg *pg, PGresult *res, const char *what)
{
	const char *state =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int rc = pg_connected(pg) ? -EIO : -ENOTCONN;

	if (pg->missing_table_again && state &&
	    strcmp(state, PG_UNDEFINED_TABLE) == 0) {
		rc = -EAGAIN;
		pg_log(pg, LOG_LEVEL_DEBUG, "db_no_table", what,
		       "waiting for the table to be created");
	} else {
		if (pg->errors)
			metric_add(pg->errors, 1);
		pg_log(pg, LOG_LEVEL_ERROR, "db_error", what,
		       res ? PQresultErrorMessage(res)
			   : PQerrorMessage(pg->conn));
	}
	PQclear(res);
	return rc;
}

PGresult *
pg_exec(struct pg *pg, const char *what, const char *sql, int n,
	const char *const *params, int *rc)
{
	PGresult *res;
	ExecStatusType st;

	if (!pg_connected(pg)) {
		*rc = -ENOTCONN;
		return NULL;
	}
	res = PQexecParams(pg->conn, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	*rc = pg_fail(pg, res, what);
	return NULL;
}

int
pg_run(struct pg *pg, const char *what, const char *sql, int n,
       const char *const *params)
{
	int rc = 0;
	PGresult *res = pg_exec(pg, what, sql, n, params, &rc);

	PQclear(res);
	return rc;
}

int
pg_run_script(struct pg *pg, const char *what, const char *sql)
{
	PGresult *res;
	ExecStatusType st;

	if (!pg_connected(pg))
		return -ENOTCONN;
	res = PQexec(pg->conn, sql);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		PQclear(res);
		return 0;
	}
	return pg_fail(pg, res, what);
}

void
pg_rollback(struct pg *pg)
{
	if (pg_connected(pg) && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
		PQclear(PQexec(pg->conn, "ROLLBACK"));
}

int
pg_tx(struct pg *pg, const char *what, int (*body)(struct pg *, void *),
      void *arg)
{
	int rc = pg_run(pg, what, "BEGIN", 0, NULL);

	if (rc == 0)
		rc = body(pg, arg);
	if (rc == 0)
		rc = pg_run(pg, what, "COMMIT", 0, NULL);
	if (rc < 0)
		pg_rollback(pg);
	return rc;
}

int64_t
pg_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

uint64_t
pg_u64(const PGresult *res, int row, int col)
{
	return strtoull(PQgetvalue(res, row, col), NULL, 10);
}

bool
pg_bool(const PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col)[0] == 't';
}

/* ---- migrations ---- */

struct pg_migration_set {
	const char *table, *lock_key;
	const char *const *migrations;
	size_t n;
};

static int
pg_migrate_locked(struct pg *pg, void *arg)
{
	const struct pg_migration_set *m = arg;
	char sql[256], num[16], id[64];
	const char *params[] = { num };
	int version = 0, rc;
	PGresult *res;

	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%s)",
		 m->lock_key);
	rc = pg_run(pg, "migrate lock", sql, 0, NULL);
	/* No "already exists, skipping" notice at every start. */
	if (rc == 0)
		rc = pg_run(pg, "quiet",
			    "SET LOCAL client_min_messages = warning", 0, NULL);
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE IF NOT EXISTS %s ("
		 " version integer PRIMARY KEY,"
		 " applied_at timestamptz NOT NULL DEFAULT now())",
		 m->table);
	if (rc == 0)
		rc = pg_run(pg, "migrations table", sql, 0, NULL);
	if (rc < 0)
		return rc;
	snprintf(sql, sizeof(sql), "SELECT coalesce(max(version), 0) FROM %s",
		 m->table);
	res = pg_exec(pg, "schema version", sql, 0, NULL, &rc);
	if (res == NULL)
		return rc;
	version = (int)pg_i64(res, 0, 0);
	PQclear(res);
	snprintf(id, sizeof(id), "%s.migrate", pg->svc);
	if (version > (int)m->n)
		LOG_WARN(id,
			 "schema version %d is newer than this binary's %zu",
			 version, m->n);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s (version) VALUES ($1::integer)", m->table);
	while (rc == 0 && version < (int)m->n) {
		rc = pg_run_script(pg, "migration", m->migrations[version]);
		snprintf(num, sizeof(num), "%d", ++version);
		if (rc == 0)
			rc = pg_run(pg, "migration record", sql, 1, params);
		if (rc == 0)
			LOG_INFO(id, "applied migration %d of %s", version,
				 m->table);
	}
	return rc;
}

int
pg_migrate(struct pg *pg, const char *table, const char *lock_key,
	   const char *const *migrations, size_t n)
{
	struct pg_migration_set m = { table, lock_key, migrations, n };

	return pg_tx(pg, "migrate", pg_migrate_locked, &m);
}
