/* The router's event loop: one thread polls the ingress socket, the Kafka
 * producer and consumer, and presence publications, then flushes one batch
 * per gateway per turn. */
#include "router.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sig.h"
#include "xalloc.h"

#define ROUTER_SETTLE_MS 500

int64_t
router_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
router_reply(struct router *r, const char *gateway, const char *session_id,
	     const Parley__V1__ServerFrame *f)
{
	Parley__Internal__V1__Delivery d = PARLEY__INTERNAL__V1__DELIVERY__INIT;
	size_t n = parley__v1__server_frame__get_packed_size(f);
	uint8_t *buf = xmalloc(n ? n : 1);

	if (gateway == NULL || gateway[0] == '\0')
		goto out;
	parley__v1__server_frame__pack(f, buf);
	d.session_id = (char *)session_id;
	d.frame.data = buf;
	d.frame.len = n;
	fanout_add(r, gateway, &d);
out:
	free(buf);
}

void
router_error(struct router *r, const char *gateway, const char *session_id,
	     uint64_t request_id, int code, const char *msg, bool retryable,
	     const char *room_id, const char *client_msg_id)
{
	Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
	Parley__V1__Error e = PARLEY__V1__ERROR__INIT;

	e.code = code;
	e.message = (char *)msg;
	e.retryable = retryable;
	e.room_id = (char *)(room_id ? room_id : "");
	e.client_msg_id = (char *)(client_msg_id ? client_msg_id : "");
	f.request_id = request_id;
	f.msg_case = PARLEY__V1__SERVER_FRAME__MSG_ERROR;
	f.error = &e;
	router_reply(r, gateway, session_id, &f);
}

static const double ROUTER_BATCH_BOUNDS[] = { 1,  2,   4,   8,	 16,   32,
					      64, 128, 256, 512, 1024, 4096 };
#define ROUTER_BATCH_BOUNDS_N \
	(sizeof(ROUTER_BATCH_BOUNDS) / sizeof(ROUTER_BATCH_BOUNDS[0]))

static struct router_metrics *
router_metrics(void)
{
	static struct router_metrics m;

	m.commands = metrics_counter("parley_router_commands_total",
				     "Client commands received from gateways.");
	m.records = metrics_counter("parley_router_records_total",
				    "Log records folded.");
	m.acks = metrics_counter("parley_router_acks_total", "SendAcks sent.");
	m.duplicates = metrics_counter("parley_router_duplicates_total",
				       "Sends recognised as retries (G2).");
	m.rejected = metrics_counter("parley_router_rejected_total",
				     "Records the fold rejected.");
	m.deliveries =
		metrics_counter("parley_router_deliveries_total",
				"Recipients named in fan-out deliveries.");
	m.batches = metrics_counter("parley_router_batches_total",
				    "NNG messages sent to gateways.");
	m.dropped = metrics_counter("parley_router_dropped_batches_total",
				    "Batches a gateway did not take.");
	m.produce_errors = metrics_counter("parley_router_produce_errors_total",
					   "Records Kafka did not take.");
	m.ack_latency = metrics_histogram(
		"parley_router_ack_latency_seconds",
		"From ingress to SendAck, through Kafka.",
		METRICS_LATENCY_BOUNDS, METRICS_LATENCY_BOUNDS_N);
	m.partitions = metrics_gauge("parley_router_partitions",
				     "Partitions this router folds.");
	m.fanout_steps = metrics_counter(
		"parley_router_fanout_steps_total",
		"Fan-out work: one per gateway plus one per online recipient.");
	m.batch_size = metrics_histogram(
		"parley_router_batch_size",
		"Deliveries per NNG message sent to a gateway.",
		ROUTER_BATCH_BOUNDS, ROUTER_BATCH_BOUNDS_N);
	m.lag = metrics_gauge(
		"parley_router_consumer_lag",
		"Records in owned partitions past this router's position.");
	return &m;
}

static void
router_on_presence(void *ctx, const char *user, const char *gateway, bool up)
{
	online_presence(ctx, user, gateway, up);
}

static void
router_on_user(void *ctx, const char *user, bool online, int64_t last_seen_ms)
{
	eph_user_presence(ctx, user, online, last_seen_ms);
}

static void
router_on_reset(void *ctx)
{
	online_reset(ctx);
}

static int
router_open(struct router *r)
{
	int rc;

	r->m = router_metrics();
	map_init(&r->gateways);
	rc = kafka_ensure_topic(r->cfg.brokers, r->cfg.topic, r->cfg.partitions,
				60000);
	if (rc < 0)
		return rc;
	r->producer = kafka_producer_new_errors_only(r->cfg.brokers,
						     r->cfg.delivery_timeout_ms,
						     ingress_on_delivery, r);
	if (r->producer == NULL)
		return -EINVAL;
	r->n_partitions =
		kafka_producer_partitions(r->producer, r->cfg.topic, 10000);
	if (r->n_partitions <= 0 || r->n_partitions > ROUTER_MAX_PARTITIONS) {
		LOG_ERROR("router.partitions",
			  "topic %s has %d partitions "
			  "(at most %d)",
			  r->cfg.topic, r->n_partitions, ROUTER_MAX_PARTITIONS);
		return -EINVAL;
	}
	kafka_producer_pace(r->producer, r->cfg.topic, r->n_partitions);
	eph_init(r);
	r->replica.on_user = router_on_user;
	r->replica.on_change = router_on_presence;
	r->replica.on_reset = router_on_reset;
	r->replica.ctx = r;
	if ((rc = replica_open(&r->replica, r->cfg.presence_url,
			       r->cfg.presence_pub)) < 0)
		return rc;
	if ((rc = owner_open(r)) < 0)
		return rc;
	return ingress_open(r);
}

/* Wait until something is ready (or 100 ms, for timers). */
static void
router_wait(struct router *r, int timeout_ms)
{
	struct pollfd fds[5] = {
		{ .fd = sig_fd(), .events = POLLIN },
		{ .fd = kafka_producer_fd(r->producer), .events = POLLIN },
		{ .fd = kafka_consumer_fd(r->consumer), .events = POLLIN },
		{ .fd = -1, .events = POLLIN },
		{ .fd = -1, .events = POLLIN },
	};

	bus_recv_fd(r->ingress, &fds[3].fd);
	bus_recv_fd(r->replica.sub, &fds[4].fd);
	if (poll(fds, 5, timeout_ms) < 0 && errno != EINTR)
		LOG_WARN("router.poll", "poll: %s", strerror(errno));
}

/* One turn of the loop; true when work was left for the next turn. */
static bool
router_turn(struct router *r)
{
	bool more = ingress_drain(r);

	kafka_producer_poll(r->producer, 0);
	int64_t now = router_now_ms();

	replica_drain(&r->replica, now);
	more |= owner_drain(r);
	if (now >= r->next_tick_ms) {
		eph_tick(r, now);
		r->next_tick_ms = now + 200;
	}
	if (now >= r->next_lag_ms) {
		owner_lag(r);
		r->next_lag_ms = now + 1000;
	}
	fanout_flush(r);
	return more;
}

/* Fold, for a short while, what we just produced, so its senders get their
 * acks from us rather than from the next owner. */
static void
router_settle(struct router *r)
{
	int64_t end = router_now_ms() + ROUTER_SETTLE_MS;

	while (r->consumer && router_now_ms() < end) {
		struct pollfd p = { .fd = kafka_consumer_fd(r->consumer),
				    .events = POLLIN };

		poll(&p, 1, 50);
		owner_drain(r);
		fanout_flush(r);
	}
}

/* Stop order: no new commands, answer those in flight, hand partitions
 * over (committing what was folded), then the last deliveries. */
static void
router_close(struct router *r)
{
	if (r->ingress.id)
		nng_close(r->ingress);
	kafka_producer_free(r->producer, 5000);
	router_settle(r);
	owner_close(r);
	fanout_flush(r);
	replica_close(&r->replica);
	fanout_close(r);
	eph_release(r);
}

int
router_run(const struct router_config *cfg)
{
	struct router *r = xcalloc(1, sizeof(*r));
	int rc;

	r->cfg = *cfg;
	rc = router_open(r);
	if (rc == 0) {
		LOG_INFO("router.start", "router up: ingress %s, topic %s",
			 cfg->listen, cfg->topic);
		bool more = false;

		while (!sig_stopping()) {
			router_wait(r, more ? 0 : 100);
			more = router_turn(r);
		}
		LOG_INFO("router.stop", "stopping: %llu records folded",
			 (unsigned long long)metric_value(r->m->records));
	} else {
		LOG_ERROR("router.start_failed", "start-up failed: %s",
			  strerror(-rc));
	}
	router_close(r);
	free(r);
	return rc;
}
