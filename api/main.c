/* parley-api: reads its configuration from the environment and serves the
 * server API until SIGINT or SIGTERM (see api.h and docs/SERVER_API.md). */
#include "api.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "sig.h"

int
main(void)
{
	struct api_config cfg;

	log_init("api");
	cfg.listen = config_url("PARLEY_API_LISTEN", "tcp://127.0.0.1:7601");
	cfg.key = config_secret("PARLEY_API_KEY", 16);
	cfg.nng_listen = config_url("PARLEY_API_NNG", "tcp://127.0.0.1:7602");
	cfg.routers = config_str("PARLEY_ROUTERS", "tcp://127.0.0.1:7201");
	cfg.store_url = config_url("PARLEY_STORE_URL", "tcp://127.0.0.1:7301");
	cfg.presence_url =
		config_url("PARLEY_PRESENCE_URL", "tcp://127.0.0.1:7401");
	cfg.pusher_url =
		config_url("PARLEY_PUSHER_URL", "tcp://127.0.0.1:7501");
	cfg.workers = (int)config_int("PARLEY_API_WORKERS", 16, 1, 1024);
	cfg.max_request = (int)config_int("PARLEY_API_MAX_REQUEST", 1 << 20,
					  1024, 16 << 20);
	cfg.timeout_ms =
		(int)config_int("PARLEY_API_TIMEOUT_MS", 10000, 100, 120000);
	cfg.brokers = config_str("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092");
	cfg.topic = config_str("PARLEY_TOPIC", "parley.log");
	if (httpd_start(config_str("PARLEY_HTTP_BIND", "127.0.0.1"),
			httpd_config_port(9601), NULL) < 0)
		LOG_WARN("api.httpd", "no health/metrics endpoint");
	if (sig_install() < 0)
		log_fatal("api.signals", "cannot install signal handlers");
	return api_run(&cfg) == 0 ? 0 : 1;
}
