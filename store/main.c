/* parley-store: consumes the log into PostgreSQL and answers history,
 * sync and room-list requests. Environment -> config -> run. */
#include <string.h>

#include "config.h"
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
}

int
main(void)
{
	struct store_config cfg;
	struct rpc *rpc;
	int rc;

	log_init("store");
	store_config_load(&cfg);
	rc = sig_install();
	if (rc < 0)
		log_fatal("store.signals", "cannot install signal handlers: %s",
			  strerror(-rc));
	rpc = rpc_start(&cfg);
	if (rpc == NULL)
		log_fatal("store.listen",
			  "PARLEY_STORE_LISTEN: cannot listen on %s",
			  cfg.listen);
	rc = ingest_run(&cfg);
	rpc_stop(rpc);
	if (rc < 0 && !sig_stopping()) {
		LOG_ERROR("store.exit", "stopped: %s", strerror(-rc));
		return 1;
	}
	LOG_INFO("store.exit", "stopped");
	return 0;
}
