/* PostgreSQL through libpq, as the store and the pusher use it: one
 * connection per struct pg (one thread), reconnects paced, statements with
 * text parameters, libpq's multi-line messages logged as one line, failures
 * as -errno (-ENOTCONN when the connection is gone), and schema migrations
 * under an advisory lock. Log ids are "<svc>.db_connect", "<svc>.db_error",
 * "<svc>.db_notice" and "<svc>.migrate". */
#ifndef PARLEY_PG_H
#define PARLEY_PG_H

#if defined(__has_include) && __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct pg {
	char *conninfo;
	char *name;	 /* application_name */
	const char *svc; /* log id prefix (static) */
	PGconn *conn;
	int64_t retry_at_ms;
	struct metric *errors; /* counts failed statements; may be NULL */
	/* undefined_table is -EAGAIN, logged at debug (the pusher reads
	 * tables the store creates). */
	bool missing_table_again;
};

/* Whether libpq can parse conninfo; why (one line) when not. */
bool pg_conninfo_valid(const char *conninfo, char *why, size_t len);
void pg_init(struct pg *pg, const char *conninfo, const char *name,
	     const char *svc, struct metric *errors);
/* Closes the connection and frees what pg_init took. */
void pg_release(struct pg *pg);
bool pg_connected(const struct pg *pg);
/* Connect unless connected; after a failure, further calls fail at once
 * for 500 ms, so a burst of requests does not wait for each. 0 or
 * -ENOTCONN. */
int pg_connect(struct pg *pg);

/* Log a failed result (what names the statement) and clear it: -EIO,
 * -ENOTCONN when the connection died, -EAGAIN as missing_table_again. */
int pg_fail(struct pg *pg, PGresult *res, const char *what);
/* One statement with text parameters: the result (the caller clears it),
 * or NULL with *rc set. */
PGresult *pg_exec(struct pg *pg, const char *what, const char *sql, int n,
		  const char *const *params, int *rc);
/* A statement whose result does not matter. 0 or -errno. */
int pg_run(struct pg *pg, const char *what, const char *sql, int n,
	   const char *const *params);
/* Several statements in one string (simple query protocol). */
int pg_run_script(struct pg *pg, const char *what, const char *sql);
/* Roll back an open transaction, if any. */
void pg_rollback(struct pg *pg);
/* BEGIN; body(pg, arg); COMMIT — rolled back when anything failed. */
int pg_tx(struct pg *pg, const char *what, int (*body)(struct pg *, void *),
	  void *arg);

int64_t pg_i64(const PGresult *res, int row, int col);
uint64_t pg_u64(const PGresult *res, int row, int col);
bool pg_bool(const PGresult *res, int row, int col);

/* Bring the schema to migrations[0..n) in one transaction, under
 * pg_advisory_xact_lock(lock_key), recording each in table (created if
 * missing). Append only: never edit a migration that has shipped. */
int pg_migrate(struct pg *pg, const char *table, const char *lock_key,
	       const char *const *migrations, size_t n);

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
/* pgarr_release on each of n. */
void pgarr_release_all(struct pgarr *arrs, size_t n);
void pgarr_add_str(struct pgarr *a, const char *s);
void pgarr_add_i64(struct pgarr *a, int64_t v);
void pgarr_add_null(struct pgarr *a);
/* The literal, e.g. {"a","b\"c",NULL}; valid until the next change. */
const char *pgarr_str(struct pgarr *a);
/* The text PostgreSQL holds once s went through pgarr_add_str: a heap copy
 * with U+FFFD for each byte that does not start valid UTF-8. */
char *pgarr_text(const char *s);

#endif
