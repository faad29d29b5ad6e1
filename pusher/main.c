/* parley-pusher: push notifications for messages to devices of members
 * with no live session. Environment -> config -> run (docs/CONFIG.md). */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "pusher.h"
#include "sig.h"

/* Kafka topic names: 1..249 of [A-Za-z0-9._-]. */
static const char *
pusher_topic(const char *name, const char *def)
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

/* An http(s) URL, or NULL when unset. */
static const char *
pusher_http_url(const char *name)
{
	const char *u = config_str(name, NULL);

	if (u && strncmp(u, "http://", 7) != 0 &&
	    strncmp(u, "https://", 8) != 0)
		log_fatal("config",
			  "%s: want an http:// or https:// URL, got \"%s\"",
			  name, u);
	return u;
}

/* A provider: its URL and its credential, inline or in a file. */
static void
pusher_provider(struct pusher_config *cfg, int p, const char *url,
		const char *cred, const char *file)
{
	cfg->url[p] = pusher_http_url(url);
	cfg->cred[p] = cred ? config_str(cred, NULL) : NULL;
	cfg->cred_file[p] = file ? config_str(file, NULL) : NULL;
	if (cfg->cred[p] && cfg->cred_file[p])
		log_fatal("config", "%s and %s: set one of them, not both",
			  cred, file);
}

static void
pusher_config_providers(struct pusher_config *cfg)
{
	pusher_provider(cfg, PUSH_FCM, "PARLEY_FCM_URL", "PARLEY_FCM_TOKEN",
			"PARLEY_FCM_TOKEN_FILE");
	pusher_provider(cfg, PUSH_APNS, "PARLEY_APNS_URL", "PARLEY_APNS_TOKEN",
			"PARLEY_APNS_TOKEN_FILE");
	cfg->apns_topic = config_str("PARLEY_APNS_TOPIC", NULL);
	cfg->apns_cert = config_str("PARLEY_APNS_CERT", NULL);
	cfg->apns_key = config_str("PARLEY_APNS_KEY", NULL);
	pusher_provider(cfg, PUSH_WEBHOOK, "PARLEY_WEBHOOK_URL", NULL, NULL);
	if (cfg->url[PUSH_WEBHOOK])
		cfg->cred[PUSH_WEBHOOK] =
			config_secret("PARLEY_WEBHOOK_SECRET", 16);
	for (int p = 0; p < PUSH_PLATFORMS; p++)
		if (cfg->url[p])
			LOG_INFO("pusher.provider", "%s pushes go to %s",
				 push_platform_name(p), cfg->url[p]);
}

static void
pusher_config_timing(struct pusher_config *cfg)
{
	cfg->grace_ms = config_int("PARLEY_PUSH_GRACE_MS", 2000, 0, 3600000);
	cfg->coalesce_ms =
		config_int("PARLEY_PUSH_COALESCE_MS", 10000, 0, 86400000);
	cfg->timeout_ms =
		(int)config_int("PARLEY_PUSH_TIMEOUT_MS", 5000, 100, 600000);
	cfg->attempts = (int)config_int("PARLEY_PUSH_ATTEMPTS", 5, 1, 100);
	cfg->retry_ms = config_int("PARLEY_PUSH_RETRY_MS", 1000, 1, 3600000);
	cfg->retry_max_ms =
		config_int("PARLEY_PUSH_RETRY_MAX_MS", 60000, 1, 86400000);
	cfg->max_age_ms = config_int("PARLEY_PUSH_MAX_AGE_MS", 600000, 1,
				     30LL * 86400000);
	cfg->presence_timeout_ms = (int)config_int(
		"PARLEY_PUSH_PRESENCE_TIMEOUT_MS", 1000, 10, 60000);
}

void
pusher_config_load(struct pusher_config *cfg)
{
	char why[256];

	memset(cfg, 0, sizeof(*cfg));
	cfg->pg = config_require("PARLEY_PG");
	if (!db_conninfo_valid(cfg->pg, why, sizeof(why)))
		log_fatal("config.invalid",
			  "PARLEY_PG must be a libpq connection string: %s",
			  why);
	cfg->brokers = config_str("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092");
	cfg->topic = pusher_topic("PARLEY_TOPIC", "parley.log");
	cfg->partitions = (int)config_int("PARLEY_PARTITIONS", 8, 1, 10000);
	cfg->group = config_str("PARLEY_PUSHER_GROUP", "parley-pusher");
	cfg->listen =
		config_url("PARLEY_PUSHER_LISTEN", "tcp://127.0.0.1:7501");
	cfg->presence_url =
		config_url("PARLEY_PRESENCE_URL", "tcp://127.0.0.1:7401");
	pusher_config_timing(cfg);
	cfg->preview = config_bool("PARLEY_PUSH_PREVIEW", 1);
	cfg->preview_chars =
		(int)config_int("PARLEY_PUSH_PREVIEW_CHARS", 100, 1, 4000);
	cfg->concurrency =
		(int)config_int("PARLEY_PUSH_CONCURRENCY", 256, 1, 100000);
	cfg->max_devices =
		(int)config_int("PARLEY_PUSH_MAX_DEVICES", 20, 1, 10000);
	cfg->backlog = config_int("PARLEY_PUSH_BACKLOG", 100000, 100, 1 << 30);
	pusher_config_providers(cfg);
}

/* Migrate before serving device registrations (they need the tables),
 * retrying while the database is not up. 0 or -errno. */
static int
pusher_migrate(const struct pusher_config *cfg)
{
	struct db *db = db_new(cfg->pg, "parley-pusher-migrate");
	int rc;

	for (;;) {
		rc = db_connect(db);
		if (rc == 0)
			rc = db_migrate(db);
		if (rc != -ENOTCONN || sig_stopping())
			break;
		poll(NULL, 0, 1000);
	}
	db_free(db);
	return rc;
}

int
main(void)
{
	struct pusher_config cfg;
	struct devices *dev;
	int rc;

	log_init("pusher");
	pusher_config_load(&cfg);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_fatal("pusher.curl", "curl_global_init failed");
	rc = sig_install();
	if (rc < 0)
		log_fatal("pusher.signals",
			  "cannot install signal handlers: %s", strerror(-rc));
	stats_init();
	if (httpd_start(config_str("PARLEY_HTTP_BIND", "127.0.0.1"),
			httpd_config_port(9501), engine_ready) < 0)
		LOG_WARN("pusher.httpd", "no health/metrics endpoint");
	rc = pusher_migrate(&cfg);
	if (rc < 0 && sig_stopping())
		return 0;
	if (rc < 0) {
		LOG_ERROR("pusher.exit", "cannot migrate the database: %s",
			  strerror(-rc));
		return 1;
	}
	dev = devices_start(&cfg);
	if (dev == NULL)
		log_fatal("pusher.listen",
			  "PARLEY_PUSHER_LISTEN: cannot listen on %s",
			  cfg.listen);
	rc = engine_run(&cfg);
	devices_stop(dev);
	curl_global_cleanup();
	if (rc < 0 && !sig_stopping()) {
		LOG_ERROR("pusher.exit", "stopped: %s", strerror(-rc));
		return 1;
	}
	LOG_INFO("pusher.exit", "stopped");
	return 0;
}
