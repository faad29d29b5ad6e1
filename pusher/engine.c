/* The pusher's loop: consume the log, wait until the store persisted each
 * Post, find who may need a push, and drive slots and provider requests.
 * One thread; Kafka, presence answers and provider sockets all wake the
 * one curl_multi_poll. Kafka never keeps our offsets: PostgreSQL does. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kafka.h"
#include "log.h"
#include "pusher.h"
#include "sig.h"
#include "utf8.h"
#include "xalloc.h"

/* How long Kafka may hold a fetch to gather records: pushes wait for the
 * store's commit anyway. */
#define ENGINE_GATHER_MS 50
/* Records taken from the consumer per loop turn at most. */
#define ENGINE_CONSUME_MAX 1000
/* How often the store's offsets are read while records wait (each read
 * that finds new ones resolves them in one query: fewer, larger). */
#define ENGINE_STORE_POLL_MS  100
#define ENGINE_STORE_RETRY_MS 500
/* Records resolved per query at most. */
#define ENGINE_RESOLVE_MAX 1000
/* Offsets of records that needed no push are written this often. */
#define ENGINE_FLUSH_MS 1000
#define ENGINE_IDLE_MS	500
/* At a stop, pushes in flight get this long to finish. */
#define ENGINE_DRAIN_MS 3000

static atomic_bool engine_db_up;
static atomic_bool engine_assigned;

bool
engine_ready(void)
{
	return atomic_load(&engine_db_up) && atomic_load(&engine_assigned);
}

int64_t
engine_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double
engine_random(struct engine *e)
{
	/* xorshift64*: jitter only, no need for anything stronger. */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return (double)((e->rng * 2685821657736338717ULL) >> 11) /
	       (double)(1ULL << 53);
}

/* ---- records ---- */

static void
engine_rec_free(struct engine_rec *r)
{
	free(r->room);
	free(r->sender);
	free(r->cid);
}

/* Wait for the store: a Post worth a push. */
static void
engine_wait_add(struct engine *e, const struct push_hold *h,
		const Parley__Log__V1__Record *rec)
{
	struct engine_rec *r;

	if (e->n_wait == e->cap_wait) {
		e->cap_wait = e->cap_wait ? e->cap_wait * 2 : 256;
		e->wait = xrealloc(e->wait, e->cap_wait * sizeof(*e->wait));
	}
	r = &e->wait[e->n_wait++];
	r->hold = *h;
	r->ts_ms = rec->ts_ms;
	r->room = xstrdup(rec->room_id);
	r->sender = xstrdup(rec->actor);
	r->cid = xstrdup(rec->post->client_msg_id);
}

/* True when rec is a Post that may still deserve a push. */
static bool
engine_wanted(const struct engine *e, const Parley__Log__V1__Record *rec)
{
	if (rec == NULL || rec->body_case != PARLEY__LOG__V1__RECORD__BODY_POST)
		return false;
	/* Strings PostgreSQL would refuse: the fold rejected these anyway. */
	if (!utf8_valid(rec->room_id) || !utf8_valid(rec->actor) ||
	    !utf8_valid(rec->post->client_msg_id))
		return false;
	return rec->ts_ms >= engine_now_ms() - e->cfg->max_age_ms;
}

static void
engine_take(struct engine *e, const rd_kafka_message_t *m)
{
	Parley__Log__V1__Record *rec;
	struct push_hold h;

	metric_add(stats_get()->records, 1);
	if (ledger_take(&e->ledger, m->partition, m->offset, &h) < 0)
		return;
	rec = parley__log__v1__record__unpack(NULL, m->len, m->payload);
	if (engine_wanted(e, rec))
		engine_wait_add(e, &h, rec);
	else
		ledger_unref(&e->ledger, &h);
	parley__log__v1__record__free_unpacked(rec, NULL);
}

/* ---- waiting for the store ---- */

static bool
engine_persisted(const struct engine *e, const struct engine_rec *r)
{
	int32_t p = r->hold.part;

	return p >= 0 && p < e->n_store && e->store_next[p] > r->hold.offset;
}

/* Resolve up to ENGINE_RESOLVE_MAX persisted records: their messages'
 * candidates go to slots, then the records are done. */
static int
engine_resolve(struct engine *e)
{
	struct db_post *posts = xcalloc(ENGINE_RESOLVE_MAX, sizeof(*posts));
	size_t *idx = xcalloc(ENGINE_RESOLVE_MAX, sizeof(*idx));
	struct db_cand *cands = NULL;
	size_t n = 0, nc = 0, keep = 0;
	int rc;

	for (size_t i = 0; i < e->n_wait && n < ENGINE_RESOLVE_MAX; i++) {
		if (!engine_persisted(e, &e->wait[i]))
			continue;
		posts[n] = (struct db_post){ e->wait[i].room, e->wait[i].sender,
					     e->wait[i].cid };
		idx[n++] = i;
	}
	rc = n ? db_resolve(e->db, posts, n,
			    e->cfg->preview ? e->cfg->preview_chars : 0, &cands,
			    &nc)
	       : 0;
	for (size_t i = 0; rc == 0 && i < nc; i++)
		slots_offer(e, &e->wait[idx[cands[i].post]], &cands[i]);
	db_cands_free(cands, nc);
	for (size_t i = 0, k = 0; rc == 0 && i < e->n_wait; i++) {
		if (k < n && idx[k] == i) {
			ledger_unref(&e->ledger, &e->wait[i].hold);
			engine_rec_free(&e->wait[i]);
			k++;
		} else {
			e->wait[keep++] = e->wait[i];
		}
	}
	if (rc == 0)
		e->n_wait = keep;
	if (rc == 0 && n == ENGINE_RESOLVE_MAX)
		e->store_poll_ms = 0; /* more may be ready: go on at once */
	free(posts);
	free(idx);
	return rc;
}

static void
engine_store_poll(struct engine *e)
{
	int64_t now = engine_now_ms();
	int rc;

	if (e->n_wait == 0 || now < e->store_poll_ms)
		return;
	e->store_poll_ms = now + ENGINE_STORE_POLL_MS;
	if (e->n_store < e->ledger.n) {
		e->n_store = e->ledger.n;
		e->store_next = xrealloc(e->store_next,
					 (size_t)e->n_store * sizeof(int64_t));
	}
	rc = db_connect(e->db);
	if (rc == 0)
		rc = db_store_offsets(e->db, e->cfg->topic, e->store_next,
				      e->n_store);
	if (rc == 0)
		rc = engine_resolve(e);
	atomic_store(&engine_db_up, db_connected(e->db));
	if (rc < 0)
		e->store_poll_ms = now + ENGINE_STORE_RETRY_MS;
}

/* ---- rebalances (inside kafka_consumer_poll) ---- */

static void
on_assign(void *ctx, struct kafka_consumer *c,
	  rd_kafka_topic_partition_list_t *parts)
{
	struct engine *e = ctx;
	int rc = db_connect(e->db);

	(void)c;
	if (rc == 0)
		rc = db_offsets_load(e->db, parts);
	for (int i = 0; i < parts->cnt; i++) {
		int64_t off = parts->elems[i].offset;

		ledger_assign(&e->ledger, parts->elems[i].partition,
			      off >= 0 ? off : -1, rc == 0);
	}
	atomic_store(&engine_db_up, rc == 0);
	if (rc < 0) {
		e->resync = true;
		LOG_WARN(
			"pusher.assign",
			"assigned %d partitions; positions unknown until the database is back",
			parts->cnt);
		return;
	}
	atomic_store(&engine_assigned, true);
	LOG_INFO("pusher.assign", "assigned %d partitions", parts->cnt);
}

/* Drop waiting records of part (their holds die with the ledger's). */
static void
engine_drop_part(struct engine *e, int32_t part)
{
	size_t keep = 0;

	for (size_t i = 0; i < e->n_wait; i++) {
		if (e->wait[i].hold.part == part)
			engine_rec_free(&e->wait[i]);
		else
			e->wait[keep++] = e->wait[i];
	}
	e->n_wait = keep;
	slots_drop_part(e, part);
}

static void
on_revoke(void *ctx, struct kafka_consumer *c,
	  const rd_kafka_topic_partition_list_t *parts)
{
	struct engine *e = ctx;

	(void)c;
	/* Store what is done so the next owner starts after it. */
	jobs_flush(e, true);
	for (int i = 0; i < parts->cnt; i++) {
		engine_drop_part(e, parts->elems[i].partition);
		ledger_revoke(&e->ledger, parts->elems[i].partition);
	}
	LOG_INFO("pusher.revoke", "revoked %d partitions", parts->cnt);
}

static const struct kafka_consumer_ops engine_ops = {
	.on_assign = on_assign,
	.on_revoke = on_revoke,
	.gather_ms = ENGINE_GATHER_MS,
};

/* Reload the positions of the assignment from the database and seek. */
static int
engine_seek(struct engine *e, rd_kafka_topic_partition_list_t *parts)
{
	int rc = db_offsets_load(e->db, parts);

	if (rc == 0)
		rc = kafka_consumer_seek(e->kc, parts, 5000);
	if (rc < 0)
		return rc;
	for (int i = 0; i < parts->cnt; i++) {
		int64_t off = parts->elems[i].offset;

		ledger_set_start(&e->ledger, parts->elems[i].partition,
				 off >= 0 ? off : -1);
	}
	return 0;
}

static void
engine_resync(struct engine *e)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	int rc = db_connect(e->db);

	if (rc == 0 &&
	    rd_kafka_assignment(kafka_consumer_handle(e->kc), &parts) != 0)
		rc = -EIO;
	if (rc == 0 && parts->cnt)
		rc = engine_seek(e, parts);
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	atomic_store(&engine_db_up, db_connected(e->db));
	if (rc < 0)
		return; /* again next turn; db_connect paces itself */
	e->resync = false;
	atomic_store(&engine_assigned, true);
	LOG_INFO("pusher.resync", "positions loaded from the database");
}

/* ---- consuming ---- */

/* Work waiting, plus a share of the records the ledger still holds (it
 * grows when offsets cannot be stored). */
static size_t
engine_backlog(const struct engine *e)
{
	return e->n_wait + e->n_pending + e->n_jobs +
	       ledger_size(&e->ledger) / 8;
}

/* Pause or resume every assigned partition (bounded memory while the
 * store or the providers are behind). */
static void
engine_pause(struct engine *e, bool pause)
{
	rd_kafka_t *rk = kafka_consumer_handle(e->kc);
	rd_kafka_topic_partition_list_t *parts = NULL;

	if (e->paused == pause || rd_kafka_assignment(rk, &parts) != 0)
		return;
	if (pause)
		rd_kafka_pause_partitions(rk, parts);
	else
		rd_kafka_resume_partitions(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	e->paused = pause;
	LOG_INFO("pusher.backlog", "%s consuming: %zu records and pushes wait",
		 pause ? "paused" : "resumed", engine_backlog(e));
}

static void
engine_consume(struct engine *e)
{
	size_t backlog = engine_backlog(e);

	if (backlog >= (size_t)e->cfg->backlog)
		engine_pause(e, true);
	else if (backlog < (size_t)e->cfg->backlog / 2)
		engine_pause(e, false);
	e->more = false;
	for (int i = 0; i < ENGINE_CONSUME_MAX; i++) {
		rd_kafka_message_t *m = kafka_consumer_poll(e->kc, 0);

		if (m == NULL)
			return;
		if (!e->resync)
			engine_take(e, m);
		rd_kafka_message_destroy(m);
	}
	e->more = true;
}

/* ---- the loop ---- */

static int64_t
engine_min(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* How long the loop may sleep. */
static int
engine_timeout(const struct engine *e)
{
	int64_t now = engine_now_ms(), t = ENGINE_IDLE_MS;

	if (e->more || e->resync)
		return e->resync ? 100 : 0;
	if (e->n_wait)
		t = engine_min(t, e->store_poll_ms - now);
	if (e->n_round == 0 && e->n_pending)
		t = engine_min(t, e->next_due_ms - now);
	t = engine_min(t, jobs_next_ms(e));
	if (e->n_done)
		t = engine_min(t, 100);
	return t < 0 ? 0 : (int)t;
}

static void
engine_wait(struct engine *e)
{
	struct curl_waitfd fds[3];
	unsigned n = 0;

	fds[n++] = (struct curl_waitfd){ kafka_consumer_fd(e->kc),
					 CURL_WAIT_POLLIN, 0 };
	fds[n++] = (struct curl_waitfd){ sig_fd(), CURL_WAIT_POLLIN, 0 };
	if (e->lookup)
		fds[n++] = (struct curl_waitfd){ lookup_fd(e->lookup),
						 CURL_WAIT_POLLIN, 0 };
	http_poll(e->http, fds, n, engine_timeout(e));
}

static void
engine_gauges(struct engine *e)
{
	metric_set(stats_get()->queue, (int64_t)engine_backlog(e));
	metric_set(stats_get()->inflight, (int64_t)http_running(e->http));
}

static void
engine_loop(struct engine *e)
{
	while (!sig_stopping()) {
		engine_wait(e);
		if (e->resync)
			engine_resync(e);
		engine_consume(e);
		engine_store_poll(e);
		slots_round(e);
		jobs_run(e);
		if (e->n_done || engine_now_ms() >= e->flush_ms) {
			jobs_flush(e, engine_now_ms() >= e->flush_ms);
			e->flush_ms = engine_now_ms() + ENGINE_FLUSH_MS;
		}
		slots_gc(e);
		engine_gauges(e);
	}
}

/* Let pushes in flight finish (briefly), record them and the offsets. */
static void
engine_drain(struct engine *e)
{
	int64_t until = engine_now_ms() + ENGINE_DRAIN_MS;

	e->stopping = true;
	while (http_running(e->http) && engine_now_ms() < until) {
		http_poll(e->http, NULL, 0, 100);
		jobs_run(e);
	}
	jobs_flush(e, true);
	LOG_INFO("pusher.drain", "stopped with %zu pushes unfinished",
		 e->n_jobs);
}

/* Connect and migrate, retrying while the database is not up. */
static int
engine_db_start(struct engine *e)
{
	int rc;

	for (;;) {
		rc = db_connect(e->db);
		if (rc == 0)
			rc = db_migrate(e->db);
		atomic_store(&engine_db_up, rc == 0);
		if (rc != -ENOTCONN || sig_stopping())
			return rc;
		poll(NULL, 0, 1000);
	}
}

/* Create the topic if missing, waiting up to a minute for the brokers. */
static int
engine_topic(const struct pusher_config *cfg)
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

static void
engine_init(struct engine *e, const struct pusher_config *cfg)
{
	memset(e, 0, sizeof(*e));
	e->cfg = cfg;
	ledger_init(&e->ledger);
	map_init(&e->slots);
	e->next_due_ms = INT64_MAX;
	for (int p = 0; p < PUSH_PLATFORMS; p++) {
		e->creds[p].value = cfg->cred[p];
		e->creds[p].file = cfg->cred_file[p];
	}
	if (getrandom(&e->rng, sizeof(e->rng), 0) != sizeof(e->rng) || !e->rng)
		e->rng = (uint64_t)engine_now_ms() | 1;
	e->db = db_new(cfg->pg, "parley-pusher");
	e->http = http_new(cfg->concurrency);
	e->lookup = lookup_new(cfg->presence_url, cfg->presence_timeout_ms);
}

static void
engine_release(struct engine *e)
{
	/* Closing the consumer may call on_revoke, which uses the rest. */
	kafka_consumer_free(e->kc);
	jobs_free_all(e);
	slots_free_all(e);
	for (size_t i = 0; i < e->n_wait; i++)
		engine_rec_free(&e->wait[i]);
	free(e->wait);
	free(e->store_next);
	free(e->round);
	free(e->done);
	for (int p = 0; p < PUSH_PLATFORMS; p++)
		free(e->creds[p].cached);
	map_release(&e->slots);
	ledger_release(&e->ledger);
	lookup_free(e->lookup);
	http_free(e->http);
	db_free(e->db);
}

int
engine_run(const struct pusher_config *cfg)
{
	struct engine e;
	int rc;

	engine_init(&e, cfg);
	rc = e.http ? 0 : -ENOMEM;
	if (rc == 0)
		rc = engine_topic(cfg);
	if (rc == 0)
		rc = engine_db_start(&e);
	if (rc == 0 && !sig_stopping()) {
		e.kc = kafka_consumer_new(cfg->brokers, cfg->group, cfg->topic,
					  false, &engine_ops, &e);
		rc = e.kc ? 0 : -EINVAL;
	}
	if (rc == 0 && e.kc) {
		LOG_INFO("pusher.start", "consuming %s as %s", cfg->topic,
			 cfg->group);
		engine_loop(&e);
		engine_drain(&e);
	}
	engine_release(&e);
	return rc;
}
