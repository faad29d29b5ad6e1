/* parley-gateway: reads its configuration from the environment and serves
 * WebSocket clients until SIGINT or SIGTERM (docs/CONFIG.md). */
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "sig.h"
#include "xalloc.h"

int64_t
gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const double GW_BATCH_BOUNDS[] = { 1,  2,   4,	8,   16,   32,
					  64, 128, 256, 512, 1024, 4096 };
#define GW_BATCH_BOUNDS_N (sizeof(GW_BATCH_BOUNDS) / sizeof(GW_BATCH_BOUNDS[0]))

static struct gw_metrics *
gw_metrics(void)
{
	static struct gw_metrics m;

	m.connections = metrics_gauge("parley_gateway_connections",
				      "Open WebSocket connections.");
	m.sessions = metrics_gauge("parley_gateway_sessions",
				   "Authenticated sessions.");
	m.frames_in = metrics_counter("parley_gateway_frames_in_total",
				      "Client frames received.");
	m.frames_out = metrics_counter("parley_gateway_frames_out_total",
				       "Frames written to clients.");
	m.bytes_out = metrics_counter("parley_gateway_bytes_out_total",
				      "Payload bytes written to clients.");
	m.writes_coalesced = metrics_counter(
		"parley_gateway_writes_coalesced_total",
		"Writes that carried several frames to one client.");
	m.commands = metrics_counter("parley_gateway_commands_total",
				     "Commands forwarded to routers.");
	m.deliveries =
		metrics_counter("parley_gateway_deliveries_total",
				"Recipients named in router deliveries.");
	m.closes_slow = metrics_counter(
		"parley_gateway_closes_total{reason=\"too_slow\"}",
		"Connections closed by the gateway.");
	m.closes_auth =
		metrics_counter("parley_gateway_closes_total{reason=\"auth\"}",
				"Connections closed by the gateway.");
	m.closes_bad = metrics_counter(
		"parley_gateway_closes_total{reason=\"bad_input\"}",
		"Connections closed by the gateway.");
	m.sends = metrics_counter("parley_gateway_sends_total",
				  "Send commands forwarded to routers.");
	m.e2e_latency = metrics_histogram(
		"parley_gateway_e2e_latency_seconds",
		"Time from a message's append to the log to its delivery here.",
		METRICS_LATENCY_BOUNDS, METRICS_LATENCY_BOUNDS_N);
	m.delivery_batch = metrics_histogram(
		"parley_gateway_delivery_batch_size",
		"Deliveries per NNG message received from routers.",
		GW_BATCH_BOUNDS, GW_BATCH_BOUNDS_N);
	m.sse_streams = metrics_gauge("parley_gateway_sse_streams",
				      "Open SSE event streams with a session.");
	m.sse_resumes = metrics_counter("parley_gateway_sse_resumes_total",
					"SSE streams that resumed a session.");
	m.sse_posts =
		metrics_counter("parley_gateway_sse_posts_total",
				"POST /v1/send bodies handed to sessions.");
	m.closes_revoked = metrics_counter(
		"parley_gateway_closes_total{reason=\"revoked\"}",
		"Connections closed by the gateway.");
	m.closes_limit =
		metrics_counter("parley_gateway_closes_total{reason=\"limit\"}",
				"Connections closed by the gateway.");
	m.revocations = metrics_counter("parley_gateway_revocations_total",
					"Revocation records applied.");
	m.rate_limited =
		metrics_counter("parley_gateway_rate_limited_total",
				"Client frames refused by the send rate.");
	return &m;
}

static void
gw_config(struct gw_config *c)
{
	static const char *const loops[] = { "epoll", "poll", NULL };

	c->bind = config_str("PARLEY_GATEWAY_BIND", "127.0.0.1");
	c->port = (int)config_int("PARLEY_GATEWAY_PORT", 8080, 1, 65535);
	c->nng_listen =
		config_url("PARLEY_GATEWAY_NNG", "tcp://127.0.0.1:7101");
	c->routers = config_str("PARLEY_ROUTERS", "tcp://127.0.0.1:7201");
	c->store_url = config_url("PARLEY_STORE_URL", "tcp://127.0.0.1:7301");
	c->presence_url =
		config_url("PARLEY_PRESENCE_URL", "tcp://127.0.0.1:7401");
	c->presence_pub =
		config_url("PARLEY_PRESENCE_PUB", "tcp://127.0.0.1:7402");
	c->pusher_url = config_url("PARLEY_PUSHER_URL", "tcp://127.0.0.1:7501");
	auth_config(c);
	limits_config(c);
	c->auth_timeout_ms =
		(int)config_int("PARLEY_AUTH_TIMEOUT_MS", 10000, 100, 600000);
	c->max_frame = (int)config_int("PARLEY_MAX_FRAME", 64 * 1024 + 512,
				       1024, 16 << 20);
	c->outq_max =
		(int)config_int("PARLEY_OUTQ_MAX", 1 << 20, 4096, 1 << 30);
	c->sndbuf = (int)config_int("PARLEY_SNDBUF", 128 * 1024, 0, 64 << 20);
	c->ping_s = (int)config_int("PARLEY_PING_S", 25, 1, 3600);
	c->pong_timeout_s =
		(int)config_int("PARLEY_PONG_TIMEOUT_S", 60, 2, 7200);
	/* A ping must have time to be answered before the drop. */
	if (c->pong_timeout_s <= c->ping_s)
		log_fatal("config",
			  "PARLEY_PONG_TIMEOUT_S (%d) must be more than "
			  "PARLEY_PING_S (%d)",
			  c->pong_timeout_s, c->ping_s);
	c->rpc_timeout_ms =
		(int)config_int("PARLEY_RPC_TIMEOUT_MS", 5000, 100, 120000);
	c->drain_ms = (int)config_int("PARLEY_DRAIN_MS", 10000, 0, 600000);
	c->drain_batch = (int)config_int("PARLEY_DRAIN_BATCH", 500, 1, 1000000);
	c->loop = config_choice("PARLEY_GATEWAY_LOOP", GW_LOOP_EPOLL, loops);
	c->web_dir = config_str("PARLEY_GATEWAY_WEB_DIR", "");
	c->dev_tokens = config_bool("PARLEY_DEV_TOKENS", 0);
	c->sse_grace_ms =
		(int)config_int("PARLEY_SSE_GRACE_MS", 10000, 0, 600000);
	c->sse_ping_s = (int)config_int("PARLEY_SSE_PING_S", 15, 1, 3600);
	c->sse_replay_max = (int)config_int("PARLEY_SSE_REPLAY_MAX", 256 * 1024,
					    0, 1 << 30);
	c->sse_post_max = (int)config_int("PARLEY_SSE_POST_MAX", 256 * 1024,
					  1024, 64 << 20);
}

int
main(void)
{
	struct gateway *gw = xcalloc(1, sizeof(*gw));
	int rc;

	log_init("gateway");
	gw_config(&gw->cfg);
	web_config_log(&gw->cfg);
	if (getrandom(&gw->instance, sizeof(gw->instance), 0) < 0)
		log_fatal("gateway.random", "getrandom failed");
	gw->m = gw_metrics();
	map_init(&gw->sessions);
	map_init(&gw->users);
	map_init(&gw->per_ip);
	if (sig_install() < 0)
		log_fatal("gateway.signals", "cannot install signal handlers");
	rc = ws_run(gw);
	map_release(&gw->sessions);
	map_release(&gw->users);
	limits_free(gw);
	auth_free(gw);
	free(gw);
	return rc == 0 ? 0 : 1;
}
