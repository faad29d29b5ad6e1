/* parley-pusher internals: configuration, the offset ledger (ledger.c),
 * provider payloads (payload.c), libcurl's multi interface (http.c),
 * presence lookups (lookup.c), PostgreSQL (db.c), device registration
 * (devices.c), metrics (stats.c) and the engine that ties them together
 * (engine.c: the loop and records; slots.c: decisions; jobs.c: pushes).
 * docs/CONFIG.md, section parley-pusher, says how it decides and why a
 * restart sends nothing twice. */
#ifndef PARLEY_PUSHER_H
#define PARLEY_PUSHER_H

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "metrics.h"
#include "parley/internal/v1/envelope.pb-c.h"
#include "parley/log/v1/record.pb-c.h"

/* A device's platform picks its provider. */
enum push_platform { PUSH_FCM, PUSH_APNS, PUSH_WEBHOOK, PUSH_PLATFORMS };

/* Longest device token accepted at registration (FCM tokens are ~160
 * bytes, APNs 64 hex digits; webhook tokens are the integrator's ids). */
#define PUSH_TOKEN_MAX 4096

struct pusher_config {
	const char *pg;	     /* libpq conninfo (the store's database) */
	const char *brokers; /* Kafka bootstrap servers */
	const char *topic;
	int partitions;
	const char *group;	  /* consumer group (assignment only) */
	const char *listen;	  /* NNG rep url for device registration */
	const char *presence_url; /* presence's request/reply url */
	int presence_timeout_ms;
	int64_t grace_ms;    /* decide this long after a message's time */
	int64_t coalesce_ms; /* at most one push per device and room per */
	int timeout_ms;	     /* per provider request */
	int attempts;	     /* tries of one push on 5xx/429/timeouts */
	int64_t retry_ms;    /* first backoff; doubles per attempt */
	int64_t retry_max_ms;
	int64_t max_age_ms; /* older messages get no push at all */
	bool preview;	    /* false: "new message" instead of the body */
	int preview_chars;
	int concurrency; /* provider requests in flight at most */
	int max_devices; /* per user; registering more drops the oldest */
	int64_t backlog; /* records waiting before consuming pauses */
	/* Providers: a platform whose url is NULL is not configured. */
	const char *url[PUSH_PLATFORMS];
	const char *cred[PUSH_PLATFORMS];      /* bearer token or secret */
	const char *cred_file[PUSH_PLATFORMS]; /* re-read when it changes */
	const char *apns_topic;
	const char *apns_cert, *apns_key; /* TLS client certificate (PEM) */
};

/* Read and validate PARLEY_* variables; exits naming a bad one. */
void pusher_config_load(struct pusher_config *cfg);

/* "fcm", "apns", "webhook" -> platform, or -1. */
int push_platform_parse(const char *name);
const char *push_platform_name(int platform);

/* ---- ledger.c: which offsets of each partition may be stored ----
 * Every consumed record takes a hold on its (partition, offset); work
 * that still depends on the record (waiting for the store, a pending
 * push, a push in flight) keeps a reference. The offset that may be
 * stored for a partition is the oldest record still referenced, or the
 * next one to consume: a restart resumes there and redoes only work
 * that was not finished. Each assignment of a partition gets a new epoch,
 * so a hold taken before a rebalance never touches the new records. */
struct push_hold {
	int32_t part; /* -1: no hold */
	uint32_t epoch;
	int64_t offset;
};

struct ledger_entry {
	int64_t offset;
	uint32_t refs;
};

struct ledger_part {
	bool owned;
	bool known; /* the start position is known */
	uint32_t epoch;
	int64_t next;	/* next offset to consume; -1 = from the first seen */
	int64_t stored; /* offset last written to the database; -1 none */
	struct ledger_entry *ring;
	size_t head, len, cap;
};

/* Embedded: ledger_init/ledger_release. */
struct ledger {
	struct ledger_part *parts;
	int32_t n;
	uint32_t epochs;
};

void ledger_init(struct ledger *l);
void ledger_release(struct ledger *l);
/* Own part from offset start (-1: wherever the first record is); known
 * false until ledger_set_start when the position could not be read. */
void ledger_assign(struct ledger *l, int32_t part, int64_t start, bool known);
void ledger_set_start(struct ledger *l, int32_t part, int64_t start);
void ledger_revoke(struct ledger *l, int32_t part);
bool ledger_owned(const struct ledger *l, int32_t part);
/* Take a record: 0 with *h referencing it once, -ESTALE when part is not
 * owned or its position unknown, -EALREADY when offset is behind. */
int ledger_take(struct ledger *l, int32_t part, int64_t offset,
		struct push_hold *h);
/* Another reference to h's record (a no-op for a stale or empty hold). */
void ledger_ref(struct ledger *l, const struct push_hold *h);
/* Drop one reference; a stale or empty hold is ignored. */
void ledger_unref(struct ledger *l, const struct push_hold *h);
/* The offset that may be stored for part, or -1 when none is known. */
int64_t ledger_safe(const struct ledger *l, int32_t part);
/* Forget unreferenced records below the safe offset (after storing). */
void ledger_trim(struct ledger *l, int32_t part);
/* Records held (referenced or not yet trimmed) in every partition. */
size_t ledger_size(const struct ledger *l);

/* ---- payload.c: provider request bodies and signatures ---- */
struct push_msg {
	int platform;
	const char *token, *user, *room, *sender, *preview;
	uint64_t seq, badge;
	int64_t ts_ms;
	const char *collapse; /* payload_collapse_key of room */
	const char *push_id;  /* payload_push_id */
};

/* Per-room collapse key: "parley-" + 24 hex digits of SHA-256(room), so
 * any room id fits FCM's and APNs's limits (apns-collapse-id <= 64). */
#define PAYLOAD_COLLAPSE_LEN (7 + 24 + 1)
void payload_collapse_key(const char *room, char out[PAYLOAD_COLLAPSE_LEN]);
/* A UUID-shaped id of (platform, token, room, seq): the same push always
 * has the same id (APNs's apns-id; X-Parley-Push-Id on webhooks). */
#define PAYLOAD_PUSH_ID_LEN 37
void payload_push_id(int platform, const char *token, const char *room,
		     uint64_t seq, char out[PAYLOAD_PUSH_ID_LEN]);
/* The JSON body for m's platform; a heap string the caller frees. */
char *payload_body(const struct push_msg *m);
/* "sha256=" + hex HMAC-SHA256(secret, body). */
#define PAYLOAD_SIG_LEN (7 + 64 + 1)
int payload_sign(const char *secret, const char *body, size_t len,
		 char out[PAYLOAD_SIG_LEN]);

/* ---- http.c: provider requests on libcurl's multi interface ----
 * Requests run concurrently on one thread; nothing here blocks except
 * http_poll, which also watches the caller's descriptors. */
struct http_req {
	/* Set by the caller; owned by the request (http_req_free). */
	char *url;
	struct curl_slist *headers;
	char *body;
	int timeout_ms;
	const char *cert, *key; /* TLS client certificate; borrowed */
	void *arg;
	/* Set when done. */
	long status;  /* HTTP status, 0 when none came */
	CURLcode err; /* CURLE_OK or why the transfer failed */
	char *resp;   /* response body (first 4 KiB), NUL-terminated */
	size_t resp_len;
	int64_t retry_after_s; /* Retry-After in seconds, -1 when absent */
	double seconds;	       /* total time */
	/* Private. */
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
};

struct http;

/* max_conns caps connections per host and in total. NULL on failure. */
struct http *http_new(int max_conns);
/* Free; cancel every running request first. NULL is a no-op. */
void http_free(struct http *h);
/* Abort r if it runs; it never comes back from http_next_done. */
void http_cancel(struct http *h, struct http_req *r);
/* Start r; it comes back from http_next_done. 0 or -EIO. */
int http_start(struct http *h, struct http_req *r);
/* Wait until a transfer or one of fds needs attention, at most
 * timeout_ms; then drive transfers. 0 or -EIO. */
int http_poll(struct http *h, struct curl_waitfd *fds, unsigned n,
	      int timeout_ms);
/* A finished request, or NULL. */
struct http_req *http_next_done(struct http *h);
/* Requests started and not handed back yet. */
size_t http_running(const struct http *h);
/* Free r and what it owns; NULL is a no-op. */
void http_req_free(struct http_req *r);

/* What a provider's answer means for the push. */
enum push_outcome {
	PUSH_OK,    /* accepted */
	PUSH_RETRY, /* 5xx, 429, timeout, connection error: try again */
	PUSH_DEAD,  /* 404, 410 or "unregistered": delete the device */
	PUSH_DROP,  /* any other answer: log and give up */
};

enum push_outcome push_classify(long status, CURLcode err, const char *body);
/* Backoff before attempt n+1 (n >= 1 failed attempts): base * 2^(n-1),
 * at most max, jittered to [half, full] by r in [0, 1); at least
 * Retry-After (retry_after_s >= 0), up to 10 minutes. */
int64_t push_backoff_ms(int n, int64_t base, int64_t max, int64_t retry_after_s,
			double r);

/* ---- lookup.c: asynchronous presence lookups ----
 * One request at a time on an NNG req context; the answer is announced
 * on a descriptor the engine polls. */
struct lookup;

struct lookup *lookup_new(const char *url, int timeout_ms);
void lookup_free(struct lookup *l);
/* Ask for users' states. 0, -EBUSY while one is in flight, or -errno. */
int lookup_start(struct lookup *l, char *const *users, size_t n);
/* Descriptor that polls readable when the answer (or failure) came. */
int lookup_fd(const struct lookup *l);
bool lookup_busy(const struct lookup *l);
/* The answer: 1 with online set to user ids of online users (values are
 * non-NULL markers), 0 when nothing came yet, -errno when it failed (then
 * presence is unknown). Either way the lookup is free again. */
int lookup_take(struct lookup *l, struct map *online);

/* ---- db.c: PostgreSQL ----
 * One struct db is one connection, used by one thread. Errors are logged
 * here as "pusher.db_error" and returned as -ENOTCONN (reconnect) or
 * -EIO. The pusher's own tables come from its own migrations, recorded
 * in pusher_migrations; the store's tables are only read. */
struct db;

bool db_conninfo_valid(const char *conninfo, char *why, size_t len);
struct db *db_new(const char *conninfo, const char *name);
void db_free(struct db *db);
int db_connect(struct db *db);
bool db_connected(const struct db *db);
int db_migrate(struct db *db);

/* Set each element's offset from push_offsets, or to the beginning. */
int db_offsets_load(struct db *db, rd_kafka_topic_partition_list_t *parts);
/* The store's next_offset of partitions 0..n-1 into next[] (-1: none). */
int db_store_offsets(struct db *db, const char *topic, int64_t *next,
		     int32_t n);

/* A Post record whose message is to be found. */
struct db_post {
	const char *room, *sender, *cid;
};

/* One device that may need a push for a message. */
struct db_cand {
	size_t post;   /* index into the posts given */
	uint64_t seq;  /* the message's seq */
	char *preview; /* "" when previews are off */
	char *user;
	int platform;
	char *token;
	uint64_t sent_seq; /* push_sent for (device, room) */
	int64_t sent_ms;
};

/* For each post persisted by the store: its message, and every device
 * of every member who may need a push (a member now, not the sender,
 * joined before it, delivered marker below it, device's last push below
 * it). *out is an xmalloc'd array (db_cands_free). 0 or -errno. */
int db_resolve(struct db *db, const struct db_post *posts, size_t n,
	       int preview_chars, struct db_cand **out, size_t *n_out);
void db_cands_free(struct db_cand *c, size_t n);

/* A (device, room) to decide about now. */
struct db_check {
	const char *user, *room, *token;
	int platform;
	/* Out. */
	bool member, device;
	uint64_t delivered;
};

/* Fill each check's out fields, and badge[i] with the unread count of
 * users[i] over all rooms. 0 or -errno. */
int db_decide(struct db *db, struct db_check *checks, size_t n,
	      char *const *users, uint64_t *badge, size_t n_users);

/* Results of finished pushes, written in one transaction. */
struct db_sent {
	int platform;
	const char *token, *room;
	uint64_t seq;
	int64_t sent_ms;
};
struct db_dead {
	int platform;
	const char *token;
	int64_t before_ms; /* registrations after this stay */
};
struct db_offset {
	int32_t part;
	int64_t next;
};

int db_record(struct db *db, const char *topic, const struct db_sent *sent,
	      size_t n_sent, const struct db_dead *dead, size_t n_dead,
	      const struct db_offset *offs, size_t n_offs);

/* Register a device of user, dropping the user's oldest beyond max. */
int db_device_add(struct db *db, const char *user, int platform,
		  const char *token, int max);
/* Remove user's device with token (any platform). 0 or -errno. */
int db_device_remove(struct db *db, const char *user, const char *token);

/* ---- devices.c: RegisterDevice / UnregisterDevice over NNG ----
 * A request is a parley.internal.v1.Command (the gateway's user id and
 * the client frame); the reply a parley.v1.ServerFrame (Ok or Error,
 * with the frame's request_id). */
struct devices;

struct devices *devices_start(const struct pusher_config *cfg);
void devices_stop(struct devices *d);
/* Why platform/token cannot be registered, or NULL when they can. */
const char *devices_invalid(const struct pusher_config *cfg,
			    const char *platform, const char *token);
/* Answer one Command; a heap ServerFrame (free with devices_reply_free).
 * Exposed for tests (db NULL answers as if the database failed). */
Parley__V1__ServerFrame *devices_handle(const struct pusher_config *cfg,
					struct db *db,
					const Parley__Internal__V1__Command *c);
void devices_reply_free(Parley__V1__ServerFrame *f);

/* ---- stats.c: metrics (parley_pusher_*) ---- */
struct stats {
	struct metric *records, *sent, *coalesced, *retried, *failed;
	struct metric *dead, *skipped_online, *skipped_delivered;
	struct metric *queue, *inflight, *latency, *db_errors;
	struct metric *devices_added, *devices_removed;
};

void stats_init(void);
const struct stats *stats_get(void);

/* ---- the engine (engine.c, slots.c, jobs.c), one thread ----
 * Records: every consumed record takes a ledger hold. A Post waits in
 * `wait` until the store's kafka_offsets shows it persisted; then one
 * query finds its message and the devices that may need a push, and the
 * record's hold goes (each slot that takes the message keeps its own).
 * Slots: one per (device, room), holding what was last pushed and what
 * waits (the newest seq; the hold of the first waiting message's
 * record). A slot is due at first message time + grace, and never
 * before its last push + the coalescing window. Due slots are decided
 * in rounds: presence lookup, then one query for markers, membership,
 * device and badge; a slot that still needs a push becomes a job.
 * Jobs: one provider request (and its retries) for one slot; finished
 * jobs are recorded in one transaction with the offsets they free. */
struct job;

struct engine_rec {
	struct push_hold hold;
	int64_t ts_ms;
	char *room, *sender, *cid;
};

struct slot {
	char *key; /* platform "\n" token "\n" room */
	int platform;
	char *token, *room, *user;
	uint64_t sent_seq; /* newest seq a provider accepted */
	int64_t sent_ms;   /* when that push started (wall clock) */
	uint64_t want_seq; /* newest waiting seq; 0: nothing waits */
	char *sender, *preview;
	int64_t ts_ms;	/* the newest waiting message's time */
	int64_t due_ms; /* when to decide (wall clock) */
	struct push_hold hold;
	struct job *job; /* in flight or waiting to be recorded */
	bool deciding;	 /* in the round under way */
	bool gone;	 /* the device was removed */
};

struct job {
	struct slot *slot; /* outlives the job */
	uint64_t seq, badge;
	char *sender, *preview;
	int64_t ts_ms;
	struct push_hold hold;
	int attempts;
	int64_t next_at_ms; /* next attempt (wall clock) */
	int64_t started_ms; /* first attempt (wall clock) */
	struct http_req *req;
	enum push_outcome outcome;
	struct job *next; /* in the queue */
};

/* A credential from the environment or a file re-read when it changes
 * (short-lived provider tokens are refreshed by something else). */
struct cred {
	const char *value;
	const char *file;
	char *cached;
	int64_t checked_ms;
	int64_t mtime_ns;
};

struct engine {
	const struct pusher_config *cfg;
	struct db *db;
	struct kafka_consumer *kc;
	struct ledger ledger;
	struct lookup *lookup;
	struct http *http;
	struct cred creds[PUSH_PLATFORMS];
	uint64_t rng;
	bool resync;   /* assigned positions unknown: reload and seek */
	bool paused;   /* consumption paused: too much work waiting */
	bool more;     /* the consumer may hold more records now */
	bool stopping; /* draining: start no new requests */
	/* Records waiting for the store. */
	struct engine_rec *wait;
	size_t n_wait, cap_wait;
	int64_t *store_next;
	int32_t n_store;
	int64_t store_poll_ms;
	/* Slots. */
	struct map slots;
	size_t n_pending;
	int64_t next_due_ms;
	int64_t gc_ms;
	/* The decision round. */
	struct slot **round;
	size_t n_round;
	/* Jobs: waiting to start (first or again), and done. */
	struct job *queue;
	size_t n_jobs;
	struct job **done;
	size_t n_done, cap_done;
	int64_t flush_ms; /* next offsets-only write */
};

/* engine.c */
int engine_run(const struct pusher_config *cfg);
bool engine_ready(void);
int64_t engine_now_ms(void);
/* A uniform double in [0, 1). */
double engine_random(struct engine *e);

/* slots.c */
/* Offer message seq of a resolved record to the candidate's slot. */
void slots_offer(struct engine *e, const struct engine_rec *rec,
		 const struct db_cand *c);
/* Start or finish a decision round when one is due or answered. */
void slots_round(struct engine *e);
/* Drop waiting work of partition part (revoked). */
void slots_drop_part(struct engine *e, int32_t part);
/* The device is gone: forget its slots. */
void slots_forget_device(struct engine *e, int platform, const char *token);
/* Delete idle slots whose window has passed. */
void slots_gc(struct engine *e);
/* A slot's job was recorded: apply its outcome, free the job. */
void slots_job_done(struct engine *e, struct slot *s, struct job *j);
void slots_free_all(struct engine *e);

/* jobs.c */
/* A push of s's waiting messages with badge; the slot's wait moves in. */
void jobs_new(struct engine *e, struct slot *s, uint64_t badge);
/* Hand finished requests over and start queued ones. */
void jobs_run(struct engine *e);
/* Record finished jobs and movable offsets in one transaction; force
 * writes offsets even when nothing finished. 0 or -errno. */
int jobs_flush(struct engine *e, bool force);
/* Milliseconds until a queued job may start (INT64_MAX: none). */
int64_t jobs_next_ms(const struct engine *e);
/* Cancel what runs and free every job (at exit). */
void jobs_free_all(struct engine *e);

#endif
