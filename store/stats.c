/* The store's Prometheus metrics (parley_store_*), registered once at
 * start-up and updated from the ingest, RPC and database code. The list
 * with meanings is in docs/CONFIG.md, section parley-store. */
#include <stdio.h>

#include "store.h"

static struct stats stats_;

/* Records per batch: 1 .. PARLEY_STORE_BATCH's default and beyond. */
static const double stats_batch_bounds[] = { 1,	   2,	 5,    10,  20,
					     50,   100,	 200,  500, 1000,
					     2000, 5000, 10000 };

static void
stats_init_ingest(struct stats *s)
{
	s->records = metrics_counter("parley_store_records_total",
				     "Log records consumed (any verdict).");
	s->messages = metrics_counter("parley_store_messages_total",
				      "Messages written to PostgreSQL.");
	s->events = metrics_counter("parley_store_room_events_total",
				    "Room events written to PostgreSQL.");
	s->batches = metrics_counter("parley_store_batches_total",
				     "Batches committed.");
	s->batch_size = metrics_histogram(
		"parley_store_batch_records", "Records per committed batch.",
		stats_batch_bounds,
		sizeof(stats_batch_bounds) / sizeof(stats_batch_bounds[0]));
	s->commit_latency = metrics_histogram(
		"parley_store_commit_latency_seconds",
		"Time to write and commit one batch.", METRICS_LATENCY_BOUNDS,
		METRICS_LATENCY_BOUNDS_N);
	s->db_errors = metrics_counter("parley_store_db_errors_total",
				       "Failed PostgreSQL statements.");
	s->resyncs = metrics_counter(
		"parley_store_resyncs_total",
		"Returns to the database's offsets after a failed batch.");
	s->lag =
		metrics_gauge("parley_store_consumer_lag",
			      "Records in owned partitions not yet committed.");
}

static void
stats_init_rpc(struct stats *s)
{
	static const char *const kinds[STATS_RPC_KINDS] = {
		[STATS_RPC_SYNC] = "sync",
		[STATS_RPC_HISTORY] = "history",
		[STATS_RPC_LIST_ROOMS] = "list_rooms",
		[STATS_RPC_OTHER] = "other",
	};
	char name[96];

	for (int i = 0; i < STATS_RPC_KINDS; i++) {
		snprintf(name, sizeof(name),
			 "parley_store_rpc_requests_total{kind=\"%s\"}",
			 kinds[i]);
		s->rpc[i] = metrics_counter(
			name, "Store requests answered, by kind.");
	}
	s->rpc_errors =
		metrics_counter("parley_store_rpc_errors_total",
				"Store requests answered with an Error.");
	s->rpc_latency = metrics_histogram("parley_store_rpc_latency_seconds",
					   "Time to answer one store request.",
					   METRICS_LATENCY_BOUNDS,
					   METRICS_LATENCY_BOUNDS_N);
}

static void
stats_init_cache(struct stats *s)
{
	s->cache_hits = metrics_counter(
		"parley_store_sync_cache_hits_total",
		"Syncs whose messages came from the recent-messages cache.");
	s->cache_misses = metrics_counter(
		"parley_store_sync_cache_misses_total",
		"Syncs whose messages the cache did not hold (read from PostgreSQL).");
	s->cache_rooms = metrics_gauge("parley_store_cache_rooms",
				       "Rooms in the recent-messages cache.");
	s->cache_bytes = metrics_gauge(
		"parley_store_cache_bytes",
		"Bytes of messages in the recent-messages cache.");
}

void
stats_init(void)
{
	stats_init_ingest(&stats_);
	stats_init_rpc(&stats_);
	stats_init_cache(&stats_);
}

const struct stats *
stats_get(void)
{
	return &stats_;
}
