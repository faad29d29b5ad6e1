/* The store's consumer loop: Kafka records in batches, folded exactly as
 * the routers fold them, written to PostgreSQL in one transaction with the
 * offsets they cover, then added to the recent-messages cache. Kafka never
 * keeps our offsets: PostgreSQL does. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "log.h"
#include "sig.h"
#include "store.h"
#include "utf8.h"
#include "xalloc.h"

/* expected[] of a partition we do not own. */
#define INGEST_UNOWNED INT64_MIN
/* How long a batch waits for more records after its first. */
#define INGEST_LINGER_MS 20
/* Bytes of records per batch at most, whatever PARLEY_STORE_BATCH says. */
#define INGEST_BATCH_BYTES (8u << 20)
/* Reconnect backoff bounds. */
#define INGEST_BACKOFF_MIN_MS 100
#define INGEST_BACKOFF_MAX_MS 5000
/* Rooms the fold may hold; past it the fold is dropped after a commit
 * (always safe: the database holds exactly its state) and rooms reload
 * as they are used, so memory stays bounded however many rooms exist. */
#define INGEST_MAX_ROOMS 100000
#define INGEST_STATS_MS	 10000
/* How often the consumer lag gauge is computed (from librdkafka's cached
 * high watermarks: no broker round trip). */
#define INGEST_LAG_MS 1000

/* Readiness, read by the health server's thread. */
static atomic_bool ingest_db_up;
static atomic_bool ingest_assigned;

struct ingest {
	const struct store_config *cfg;
	struct db *db;
	struct fold *fold;
	struct cache *cache; /* may be NULL */
	struct kafka_consumer *kc;
	rd_kafka_message_t **msgs; /* the batch being collected */
	size_t n_msgs, cap_msgs;
	/* Per partition: next_offset in the database (-1: no row yet), or
	 * INGEST_UNOWNED. Records below it are stale and skipped. */
	int64_t *expected;
	int32_t n_parts;
	struct batch batch;
	struct map absent; /* room ids the database lacks, during a flush */
	bool resync;	   /* the fold and positions must be reloaded */
	int backoff_ms;
	uint64_t stat_records, stat_msgs, stat_batches;
	int64_t stat_at_ms, lag_at_ms;
};

bool
ingest_ready(void)
{
	return atomic_load(&ingest_db_up) && atomic_load(&ingest_assigned);
}

static int64_t
ingest_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fold ---- */

static int
on_load(void *ctx, struct fold *f, const char *room_id)
{
	struct ingest *ing = ctx;
	int rc;

	if (map_get(&ing->absent, room_id))
		return 0;
	rc = db_rooms_load(ing->db, f, &room_id, 1);
	if (rc == 0 && fold_room_get(f, room_id) == NULL)
		map_put(&ing->absent, room_id, ing);
	return rc;
}

/* Forget all room state; rooms reload from the database when next seen. */
static void
ingest_fold_reset(struct ingest *ing)
{
	fold_free(ing->fold);
	ing->fold = fold_new();
	fold_set_loader(ing->fold, on_load, ing);
}

/* ---- partitions ---- */

static void
ingest_set_expected(struct ingest *ing, int32_t part, int64_t next)
{
	if (part < 0)
		return;
	if (part >= ing->n_parts) {
		int32_t n = part + 1;

		ing->expected = xrealloc(ing->expected,
					 (size_t)n * sizeof(*ing->expected));
		for (int32_t i = ing->n_parts; i < n; i++)
			ing->expected[i] = INGEST_UNOWNED;
		ing->n_parts = n;
	}
	ing->expected[part] = next;
}

static int64_t
ingest_expected(const struct ingest *ing, int32_t part)
{
	if (part < 0 || part >= ing->n_parts)
		return INGEST_UNOWNED;
	return ing->expected[part];
}

/* Remember the positions db_offsets_load put into parts. */
static void
ingest_note_positions(struct ingest *ing,
		      const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		int64_t off = parts->elems[i].offset;

		ingest_set_expected(ing, parts->elems[i].partition,
				    off >= 0 ? off : -1);
	}
}

/* ---- batches ---- */

static void
ingest_drop_msgs(struct ingest *ing)
{
	for (size_t i = 0; i < ing->n_msgs; i++)
		rd_kafka_message_destroy(ing->msgs[i]);
	ing->n_msgs = 0;
}

/* The record in m, or NULL (logged) when it cannot be used. */
static Parley__Log__V1__Record *
ingest_decode(const rd_kafka_message_t *m)
{
	Parley__Log__V1__Record *rec;

	rec = parley__log__v1__record__unpack(NULL, m->len, m->payload);
	if (rec && !utf8_valid(rec->room_id)) {
		parley__log__v1__record__free_unpacked(rec, NULL);
		rec = NULL;
	}
	if (rec == NULL)
		LOG_WARN("store.bad_record",
			 "partition %d offset %lld: undecodable record skipped",
			 (int)m->partition, (long long)m->offset);
	return rec;
}

/* Load, in three queries, every room of recs the fold lacks; rooms the
 * database lacks too are remembered so the loader does not ask again. */
static int
ingest_prefetch(struct ingest *ing, Parley__Log__V1__Record **recs, size_t n)
{
	const char **ids = xcalloc(n ? n : 1, sizeof(*ids));
	struct map want;
	size_t k = 0;
	int rc;

	map_init(&want);
	for (size_t i = 0; i < n; i++) {
		const char *id = recs[i] ? recs[i]->room_id : NULL;

		if (id && !fold_room_get(ing->fold, id) &&
		    !map_get(&want, id)) {
			map_put(&want, id, ing);
			ids[k++] = id;
		}
	}
	rc = db_rooms_load(ing->db, ing->fold, ids, k);
	for (size_t i = 0; rc == 0 && i < k; i++)
		if (!fold_room_get(ing->fold, ids[i]))
			map_put(&ing->absent, ids[i], ing);
	map_release(&want);
	free(ids);
	return rc;
}

/* True when m is at or past our position in its partition. */
static bool
ingest_current(const struct ingest *ing, const rd_kafka_message_t *m)
{
	int64_t exp = ingest_expected(ing, m->partition);

	if (exp == INGEST_UNOWNED || m->offset < exp) {
		LOG_DEBUG(
			"store.stale_record",
			"partition %d offset %lld is behind our position %lld",
			(int)m->partition, (long long)m->offset,
			(long long)exp);
		return false;
	}
	return true;
}

static int
ingest_fold_one(struct ingest *ing, const rd_kafka_message_t *m,
		const Parley__Log__V1__Record *rec)
{
	struct fold_result res;
	int rc = 0;

	if (rec == NULL)
		ing->batch.skipped++;
	else if ((rc = fold_apply(ing->fold, rec, &res)) == 0)
		batch_note(&ing->batch, m->partition, m->offset, rec, &res);
	if (rc == 0)
		batch_offset(&ing->batch, m->partition,
			     ingest_expected(ing, m->partition), m->offset);
	return rc;
}

/* Fold the collected records into ing->batch. 0 or -errno. */
static int
ingest_fold_all(struct ingest *ing)
{
	Parley__Log__V1__Record **recs;
	size_t n = 0;
	int rc;

	recs = xcalloc(ing->n_msgs, sizeof(Parley__Log__V1__Record *));
	for (size_t i = 0; i < ing->n_msgs; i++)
		if (ingest_current(ing, ing->msgs[i]))
			ing->msgs[n++] = ing->msgs[i];
		else
			rd_kafka_message_destroy(ing->msgs[i]);
	ing->n_msgs = n;
	for (size_t i = 0; i < n; i++)
		recs[i] = ingest_decode(ing->msgs[i]);
	rc = ingest_prefetch(ing, recs, n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = ingest_fold_one(ing, ing->msgs[i], recs[i]);
	for (size_t i = 0; i < n; i++)
		parley__log__v1__record__free_unpacked(recs[i], NULL);
	free(recs);
	return rc;
}

/* Forget the cache: after a failure we no longer know for sure what is
 * committed, and a cleared cache is always right. */
static void
ingest_cache_clear(struct ingest *ing)
{
	cache_clear(ing->cache);
	metric_set(stats_get()->cache_rooms, 0);
	metric_set(stats_get()->cache_bytes, 0);
}

/* The database may now be behind the fold and our positions: drop the
 * fold and reload positions before consuming again. */
static void
ingest_fail(struct ingest *ing, int rc)
{
	LOG_ERROR(
		"store.batch_failed",
		"batch of %zu records rolled back: %s; reloading from the database",
		ing->n_msgs, strerror(-rc));
	ingest_fold_reset(ing);
	ingest_cache_clear(ing);
	ing->resync = true;
	atomic_store(&ingest_db_up, db_connected(ing->db));
}

/* The batch is committed: its messages may now be read from memory. */
static void
ingest_cache_fill(struct ingest *ing, size_t existed)
{
	const struct batch *b = &ing->batch;
	size_t rooms, bytes;

	if (ing->cache == NULL)
		return;
	if (existed) { /* rows not ours: do not vouch for anything */
		ingest_cache_clear(ing);
		return;
	}
	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct batch_message *m = &b->msgs[i];

		cache_add(ing->cache, m->room_id, m->seq, m->ts_ms,
			  m->sender_id, m->client_msg_id, m->body);
	}
	cache_totals(ing->cache, &rooms, &bytes);
	metric_set(stats_get()->cache_rooms, (int64_t)rooms);
	metric_set(stats_get()->cache_bytes, (int64_t)bytes);
}

static void
ingest_count_batch(const struct batch *b, double commit_s)
{
	const struct stats *st = stats_get();

	metric_add(st->records, (int64_t)(b->records + b->skipped));
	metric_add(st->messages, (int64_t)b->n_msgs);
	metric_add(st->events, (int64_t)b->n_events);
	metric_add(st->batches, 1);
	metric_observe(st->batch_size, (double)(b->records + b->skipped));
	metric_observe(st->commit_latency, commit_s);
}

static void
ingest_log_batch(struct ingest *ing, int64_t t0)
{
	const struct batch *b = &ing->batch;

	ing->stat_records += b->records + b->skipped;
	ing->stat_msgs += b->n_msgs;
	ing->stat_batches++;
	LOG_DEBUG(
		"store.batch",
		"%zu records (%zu accepted, %zu duplicate, %zu rejected, %zu skipped): %zu messages, %zu rooms, %zu members in %lld ms",
		b->records, b->accepted, b->duplicates, b->rejected, b->skipped,
		b->n_msgs, map_count(&b->rooms), map_count(&b->members),
		(long long)(ingest_now_ms() - t0));
}

/* At debug level, one line per committed message with its trace id (the
 * same the gateway and the router log for it). */
static void
ingest_log_rows(const struct batch *b)
{
	char trace[LOG_TRACE_LEN];

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct batch_message *m = &b->msgs[i];

		log_trace_id(m->room_id, m->sender_id, m->client_msg_id, trace);
		log_write_trace(LOG_LEVEL_DEBUG, "store.row", trace,
				"room %s seq %llu stored", m->room_id,
				(unsigned long long)m->seq);
	}
}

/* Write the folded batch in one transaction. 0 or -errno. */
static int
ingest_commit(struct ingest *ing)
{
	struct timespec t0, t1;
	size_t existed = 0;
	int rc;

	if (batch_empty(&ing->batch))
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = db_batch_write(ing->db, ing->cfg->topic, &ing->batch, &existed);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0)
		return rc;
	atomic_store(&ingest_db_up, true);
	ingest_count_batch(&ing->batch,
			   (double)(t1.tv_sec - t0.tv_sec) +
				   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	ingest_cache_fill(ing, existed);
	ingest_log_rows(&ing->batch);
	return 0;
}

/* Fold and commit what was collected. 0 or -errno (then rolled back). */
static int
ingest_flush(struct ingest *ing)
{
	int64_t t0 = ingest_now_ms();
	int rc;

	if (ing->n_msgs == 0)
		return 0;
	rc = ingest_fold_all(ing);
	if (rc == 0)
		rc = ingest_commit(ing);
	if (rc == 0) {
		for (size_t i = 0; i < ing->batch.n_offs; i++)
			ingest_set_expected(ing, ing->batch.offs[i].part,
					    ing->batch.offs[i].next);
		ingest_log_batch(ing, t0);
		if (fold_room_count(ing->fold) > INGEST_MAX_ROOMS)
			ingest_fold_reset(ing);
		if (ing->batch.gaps)
			LOG_WARN(
				"store.offset_gap",
				"%zu records followed a gap in their partition's offsets",
				ing->batch.gaps);
	} else {
		ingest_fail(ing, rc);
	}
	ingest_drop_msgs(ing);
	batch_reset(&ing->batch);
	map_release(&ing->absent);
	map_init(&ing->absent);
	return rc;
}

/* ---- rebalances (called from inside kafka_consumer_poll) ---- */

static void
on_assign(void *ctx, struct kafka_consumer *c,
	  rd_kafka_topic_partition_list_t *parts)
{
	struct ingest *ing = ctx;
	int rc;

	(void)c;
	ingest_flush(ing);
	rc = db_connect(ing->db);
	if (rc == 0)
		rc = db_offsets_load(ing->db, parts);
	atomic_store(&ingest_db_up, rc == 0);
	if (rc < 0) {
		/* Positions unknown: consume nothing until resync seeks. */
		ing->resync = true;
		LOG_WARN(
			"store.assign",
			"assigned %d partitions; positions unknown until the database is back",
			parts->cnt);
		return;
	}
	ingest_note_positions(ing, parts);
	atomic_store(&ingest_assigned, true);
	LOG_INFO("store.assign", "assigned %d partitions", parts->cnt);
}

static void
on_revoke(void *ctx, struct kafka_consumer *c,
	  const rd_kafka_topic_partition_list_t *parts)
{
	struct ingest *ing = ctx;

	(void)c;
	/* Commit what we hold so the next owner starts after it. */
	ingest_flush(ing);
	for (int i = 0; i < parts->cnt; i++)
		ingest_set_expected(ing, parts->elems[i].partition,
				    INGEST_UNOWNED);
	ingest_fold_reset(ing);
	LOG_INFO("store.revoke", "revoked %d partitions", parts->cnt);
}

static const struct kafka_consumer_ops ingest_ops = {
	.on_assign = on_assign,
	.on_revoke = on_revoke,
	.gather_ms = INGEST_LINGER_MS,
};

/* ---- recovery ---- */

/* Seek every assigned partition to its next_offset in the database. */
static int
ingest_seek(struct ingest *ing, rd_kafka_topic_partition_list_t *parts)
{
	int rc = db_offsets_load(ing->db, parts);

	if (rc == 0)
		rc = kafka_consumer_seek(ing->kc, parts, 5000);
	if (rc < 0)
		return rc;
	ingest_note_positions(ing, parts);
	return 0;
}

/* Reconnect, reload positions and seek: the database is the truth. */
static int
ingest_resync(struct ingest *ing)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_resp_err_t err;
	int rc = db_connect(ing->db);

	atomic_store(&ingest_db_up, rc == 0);
	if (rc < 0)
		return rc;
	err = rd_kafka_assignment(kafka_consumer_handle(ing->kc), &parts);
	if (err) {
		LOG_WARN("store.seek", "assignment: %s", rd_kafka_err2str(err));
		return kafka_err(err);
	}
	rc = parts->cnt ? ingest_seek(ing, parts) : 0;
	if (rc == 0) {
		ingest_fold_reset(ing);
		ingest_cache_clear(ing);
		metric_add(stats_get()->resyncs, 1);
		ing->resync = false;
		ing->backoff_ms = 0;
		LOG_INFO("store.resync",
			 "%d partitions back at the database's offsets",
			 parts->cnt);
	}
	rd_kafka_topic_partition_list_destroy(parts);
	return rc;
}

/* Wait out the backoff while still serving the consumer (so the group
 * keeps us and rebalances run), dropping whatever it delivers. */
static void
ingest_backoff(struct ingest *ing)
{
	int64_t until;

	ing->backoff_ms =
		ing->backoff_ms ? ing->backoff_ms * 2 : INGEST_BACKOFF_MIN_MS;
	if (ing->backoff_ms > INGEST_BACKOFF_MAX_MS)
		ing->backoff_ms = INGEST_BACKOFF_MAX_MS;
	until = ingest_now_ms() + ing->backoff_ms;
	while (!sig_stopping() && ingest_now_ms() < until) {
		rd_kafka_message_t *m = kafka_consumer_poll(ing->kc, 100);

		if (m)
			rd_kafka_message_destroy(m);
	}
}

/* ---- the loop ---- */

static void
ingest_push(struct ingest *ing, rd_kafka_message_t *m)
{
	if (ing->n_msgs == ing->cap_msgs) {
		ing->cap_msgs = ing->cap_msgs ? ing->cap_msgs * 2 : 256;
		ing->msgs =
			xrealloc(ing->msgs,
				 ing->cap_msgs * sizeof(rd_kafka_message_t *));
	}
	ing->msgs[ing->n_msgs++] = m;
}

/* Collect up to batch_max records or INGEST_BATCH_BYTES, for at most
 * INGEST_LINGER_MS after the first; returns early when nothing comes
 * within 100 ms. */
static void
ingest_collect(struct ingest *ing)
{
	int64_t deadline = 0;
	size_t bytes = 0;

	while (ing->n_msgs < (size_t)ing->cfg->batch_max &&
	       bytes < INGEST_BATCH_BYTES && !sig_stopping()) {
		int64_t wait = deadline ? deadline - ingest_now_ms() : 100;
		rd_kafka_message_t *m;

		if (wait <= 0)
			break;
		m = kafka_consumer_poll(ing->kc, (int)wait);
		if (ing->resync) { /* a rebalance callback failed */
			if (m)
				rd_kafka_message_destroy(m);
			break;
		}
		if (m == NULL && deadline == 0)
			break;
		if (m == NULL)
			continue;
		ingest_push(ing, m);
		bytes += m->len;
		if (deadline == 0)
			deadline = ingest_now_ms() + INGEST_LINGER_MS;
	}
}

static void
ingest_stats(struct ingest *ing)
{
	int64_t now = ingest_now_ms();

	if (now - ing->stat_at_ms < INGEST_STATS_MS)
		return;
	if (ing->stat_records)
		LOG_INFO(
			"store.progress",
			"%llu records, %llu messages in %llu batches; %zu rooms held",
			(unsigned long long)ing->stat_records,
			(unsigned long long)ing->stat_msgs,
			(unsigned long long)ing->stat_batches,
			fold_room_count(ing->fold));
	ing->stat_records = ing->stat_msgs = ing->stat_batches = 0;
	ing->stat_at_ms = now;
}

/* Records of partition p past what the database holds, from the high
 * watermark librdkafka learnt from its last fetch (0 when not owned). */
static int64_t
ingest_part_lag(struct ingest *ing, rd_kafka_t *rk, int32_t p)
{
	int64_t from = ing->expected[p], lo, hi;

	if (from == INGEST_UNOWNED ||
	    rd_kafka_get_watermark_offsets(rk, ing->cfg->topic, p, &lo, &hi) !=
		    RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	if (from < 0) /* no row yet: we start at the beginning */
		from = lo > 0 ? lo : 0;
	return hi > from ? hi - from : 0;
}

static void
ingest_lag(struct ingest *ing)
{
	rd_kafka_t *rk = kafka_consumer_handle(ing->kc);
	int64_t now = ingest_now_ms(), lag = 0;

	if (now - ing->lag_at_ms < INGEST_LAG_MS)
		return;
	ing->lag_at_ms = now;
	for (int32_t p = 0; p < ing->n_parts; p++)
		lag += ingest_part_lag(ing, rk, p);
	metric_set(stats_get()->lag, lag);
}

static void
ingest_loop(struct ingest *ing)
{
	while (!sig_stopping()) {
		if (ing->resync) {
			if (ingest_resync(ing) < 0)
				ingest_backoff(ing);
			continue;
		}
		ingest_collect(ing);
		if (ingest_flush(ing) < 0)
			ingest_backoff(ing);
		ingest_stats(ing);
		ingest_lag(ing);
	}
}

/* Create the topic if missing, waiting up to a minute for the brokers
 * in short steps, so a stop signal is not kept waiting. */
static int
ingest_topic(const struct store_config *cfg)
{
	int rc = -ETIMEDOUT;

	for (int i = 0; i < 12 && !sig_stopping(); i++) {
		rc = kafka_ensure_topic(cfg->brokers, cfg->topic,
					cfg->partitions, 5000);
		if (rc == 0 || rc == -EINVAL)
			break;
	}
	return rc;
}

/* Connect and migrate, retrying while the database is not up. */
static int
ingest_db_start(struct ingest *ing)
{
	int rc;

	for (;;) {
		rc = db_connect(ing->db);
		if (rc == 0)
			rc = db_migrate(ing->db);
		atomic_store(&ingest_db_up, rc == 0);
		if (rc != -ENOTCONN || sig_stopping())
			return rc;
		poll(NULL, 0, 1000);
	}
}

static void
ingest_release(struct ingest *ing)
{
	/* Closing the consumer may call on_revoke, which uses the rest. */
	kafka_consumer_free(ing->kc);
	ingest_drop_msgs(ing);
	free(ing->msgs);
	free(ing->expected);
	batch_release(&ing->batch);
	map_release(&ing->absent);
	fold_free(ing->fold);
	db_free(ing->db);
}

int
ingest_run(const struct store_config *cfg, struct cache *cache)
{
	struct ingest ing = { .cfg = cfg, .cache = cache };
	int rc;

	batch_init(&ing.batch);
	map_init(&ing.absent);
	ing.db = db_new(cfg->pg, "parley-store");
	ingest_fold_reset(&ing);
	rc = ingest_topic(cfg);
	if (rc == 0)
		rc = ingest_db_start(&ing);
	if (rc == 0 && !sig_stopping()) {
		ing.kc =
			kafka_consumer_new(cfg->brokers, cfg->group, cfg->topic,
					   false, &ingest_ops, &ing);
		rc = ing.kc ? 0 : -EINVAL;
	}
	if (rc == 0 && ing.kc) {
		LOG_INFO("store.start", "consuming %s as %s", cfg->topic,
			 cfg->group);
		ingest_loop(&ing);
	}
	ingest_release(&ing);
	return rc;
}
