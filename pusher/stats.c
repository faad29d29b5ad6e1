/* The pusher's Prometheus metrics (parley_pusher_*), registered once at
 * start-up. The list with meanings is in docs/CONFIG.md, parley-pusher. */
#include "pusher.h"

static struct stats stats_;

static void
stats_init_pushes(struct stats *s)
{
	s->sent = metrics_counter("parley_pusher_pushes_sent_total",
				  "Pushes a provider accepted.");
	s->coalesced = metrics_counter(
		"parley_pusher_coalesced_total",
		"Messages folded into a later push of the same device and room.");
	s->retried = metrics_counter("parley_pusher_retries_total",
				     "Provider requests tried again.");
	s->failed = metrics_counter(
		"parley_pusher_failed_total",
		"Pushes given up: refused, or out of attempts.");
	s->dead = metrics_counter("parley_pusher_dead_tokens_total",
				  "Devices removed because the provider said "
				  "the token is gone.");
	s->skipped_online =
		metrics_counter("parley_pusher_skipped_online_total",
				"Pushes not sent because the user was online.");
	s->skipped_delivered = metrics_counter(
		"parley_pusher_skipped_delivered_total",
		"Pushes not sent because the user had the messages already.");
	s->latency = metrics_histogram("parley_pusher_provider_latency_seconds",
				       "Time of one provider request.",
				       METRICS_LATENCY_BOUNDS,
				       METRICS_LATENCY_BOUNDS_N);
}

void
stats_init(void)
{
	stats_init_pushes(&stats_);
	stats_.records = metrics_counter("parley_pusher_records_total",
					 "Log records consumed.");
	stats_.queue = metrics_gauge(
		"parley_pusher_queue",
		"Work waiting: records for the store, pending device pushes, "
		"pushes queued or in flight.");
	stats_.inflight = metrics_gauge("parley_pusher_inflight",
					"Provider requests in flight.");
	stats_.db_errors = metrics_counter("parley_pusher_db_errors_total",
					   "Failed PostgreSQL statements.");
	stats_.devices_added =
		metrics_counter("parley_pusher_devices_registered_total",
				"RegisterDevice requests stored.");
	stats_.devices_removed =
		metrics_counter("parley_pusher_devices_unregistered_total",
				"UnregisterDevice requests applied.");
}

const struct stats *
stats_get(void)
{
	return &stats_;
}
