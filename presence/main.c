/* parley-presence: the registry of live sessions. Reads its configuration
 * from the environment and runs the service until SIGINT/SIGTERM. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "presence.h"
#include "sig.h"

int
main(void)
{
	struct presence_config cfg;
	int rv;

	log_init("presence");
	cfg.listen_url =
		config_url("PARLEY_PRESENCE_LISTEN", "tcp://127.0.0.1:7401");
	cfg.pub_url = config_url("PARLEY_PRESENCE_PUB", "tcp://127.0.0.1:7402");
	cfg.lease_ms = config_int("PARLEY_PRESENCE_LEASE_MS", 15000, 1000,
				  24 * 3600 * 1000);
	cfg.heartbeat_ms =
		config_int("PARLEY_PRESENCE_HEARTBEAT_MS", 1000, 10, 60000);
	cfg.coalesce_ms =
		config_int("PARLEY_PRESENCE_COALESCE_MS", 1000, 10, 60000);
	if (httpd_start(config_str("PARLEY_HTTP_BIND", "127.0.0.1"),
			httpd_config_port(9401), NULL) < 0)
		LOG_WARN("presence.httpd", "no health/metrics endpoint");
	if ((rv = sig_install()) < 0)
		log_fatal("presence.signals",
			  "cannot install signal handlers: %s", strerror(-rv));
	return presence_run(&cfg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
