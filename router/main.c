/* parley-router: reads its configuration from the environment and runs the
 * router until SIGINT or SIGTERM (see router.h and docs/CONFIG.md). */
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "router.h"
#include "sig.h"

int
main(void)
{
	struct router_config cfg;

	log_init("router");
	cfg.brokers = config_str("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092");
	cfg.topic = config_str("PARLEY_TOPIC", "parley.log");
	cfg.partitions = (int)config_int("PARLEY_PARTITIONS", 8, 1,
					 ROUTER_MAX_PARTITIONS);
	cfg.group = config_str("PARLEY_ROUTER_GROUP", "parley-router");
	cfg.listen = config_url("PARLEY_ROUTER_LISTEN", "tcp://127.0.0.1:7201");
	cfg.presence_url =
		config_url("PARLEY_PRESENCE_URL", "tcp://127.0.0.1:7401");
	cfg.presence_pub =
		config_url("PARLEY_PRESENCE_PUB", "tcp://127.0.0.1:7402");
	cfg.delivery_timeout_ms = (int)config_int("PARLEY_DELIVERY_TIMEOUT_MS",
						  10000, 1000, 300000);
	cfg.max_body =
		(int)config_int("PARLEY_MAX_BODY", 64 * 1024, 1, 1024 * 1024);
	cfg.max_members =
		(int)config_int("PARLEY_MAX_MEMBERS", 100000, 2, 10000000);
	cfg.typing_ttl_ms =
		(int)config_int("PARLEY_TYPING_TTL_MS", 6000, 500, 600000);
	cfg.presence_room_limit =
		(int)config_int("PARLEY_PRESENCE_ROOM_LIMIT", 100, 2, 100000);
	if (httpd_start(config_str("PARLEY_HTTP_BIND", "127.0.0.1"),
			httpd_config_port(9201), NULL) < 0)
		LOG_WARN("router.httpd", "no health/metrics endpoint");
	if (sig_install() < 0)
		log_fatal("router.signals", "cannot install signal handlers");
	return router_run(&cfg) == 0 ? 0 : 1;
}
