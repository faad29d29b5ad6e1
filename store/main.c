/* parley-store: consumes the log into PostgreSQL and answers history,
 * sync and room-list requests. Environment -> config -> run. */
#include <string.h>

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "sig.h"
#include "store.h"

/* Kafka topic names: 1..249 of [A-Za-z0-9._-]. */
static const char *
store_topic(const char *name, const char *def)
{
	const char *t = config_str(name, def);
	size_t n = strlen(t);

	if (n == 0 || n > 249 ||
	    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789._-") != n)
		log_fatal(
			"config",
			"%s: want a Kafka topic name (1..249 of A-Z a-z 0-9 . _ -), got \"%s\"",
			name, t);
	return t;
}

void
store_config_load(struct store_config *cfg)
{
	char why[256];

	cfg->pg = config_require("PARLEY_PG");
	if (!db_conninfo_valid(cfg->pg, why, sizeof(why)))
		log_fatal(
			"config.invalid",
			"config: PARLEY_PG must be a libpq connection string: %s",
			why);
	cfg->brokers = config_str("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092");
	cfg->topic = store_topic("PARLEY_TOPIC", "parley.log");
	cfg->partitions = (int)config_int("PARLEY_PARTITIONS", 8, 1, 10000);
	cfg->group = config_str("PARLEY_STORE_GROUP", "parley-store");
	cfg->listen = config_url("PARLEY_STORE_LISTEN", "tcp://127.0.0.1:7301");
	cfg->batch_max = (int)config_int("PARLEY_STORE_BATCH", 500, 1, 100000);
	cfg->rpc_threads =
		(int)config_int("PARLEY_STORE_RPC_THREADS", 4, 1, 64);
	cfg->cache_rooms =
		(int)config_int("PARLEY_STORE_CACHE_ROOMS", 10000, 0, 10000000);
	cfg->cache_per_room =
		(int)config_int("PARLEY_STORE_CACHE_PER_ROOM", 256, 1, 100000);
	cfg->cache_bytes = config_int("PARLEY_STORE_CACHE_MB", 256, 1, 1 << 20)
			   << 20;
}

/* Metrics and the health server start before any other thread. */
static void
store_http_start(void)
{
	stats_init();
	if (httpd_start(config_str("PARLEY_HTTP_BIND", "127.0.0.1"),
			httpd_config_port(9301), ingest_ready) < 0)
		LOG_WARN("store.httpd", "no health/metrics endpoint");
}

int
main(void)
{
	struct store_config cfg;
	struct cache *cache;
	struct rpc *rpc;
	int rc;

	log_init("store");
	store_config_load(&cfg);
	rc = sig_install();
	if (rc < 0)
		log_fatal("store.signals", "cannot install signal handlers: %s",
			  strerror(-rc));
	store_http_start();
	cache = cache_new((size_t)cfg.cache_rooms, (size_t)cfg.cache_per_room,
			  (size_t)cfg.cache_bytes, 0);
	rpc = rpc_start(&cfg, cache);
	if (rpc == NULL)
		log_fatal("store.listen",
			  "PARLEY_STORE_LISTEN: cannot listen on %s",
			  cfg.listen);
	rc = ingest_run(&cfg, cache);
	rpc_stop(rpc);
	cache_free(cache);
	if (rc < 0 && !sig_stopping()) {
		LOG_ERROR("store.exit", "stopped: %s", strerror(-rc));
		return 1;
	}
	LOG_INFO("store.exit", "stopped");
	return 0;
}
