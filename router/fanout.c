/* Fan-out to gateways: one push socket and one batch per gateway address;
 * every delivery of a loop turn to the same gateway travels in one NNG
 * message. Deliveries are best effort (a lost one shows as a seq gap that
 * the client repairs with Sync); the log is the only copy that matters. */
#include <stdlib.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

/* Flush early when a batch grows past this. */
#define FANOUT_BATCH_BYTES (1u << 20)
/* NNG messages a gateway socket queues while (re)connecting. */
#define FANOUT_SENDBUF 1024

struct fanout_gw {
	nng_socket push;
	struct bus_batch batch;
	uint64_t dropped;
};

static struct fanout_gw *
fanout_gw_open(const char *url)
{
	struct fanout_gw *g = xcalloc(1, sizeof(*g));

	bus_batch_init(&g->batch);
	if (bus_open(&g->push, "push") < 0 ||
	    nng_socket_set_int(g->push, NNG_OPT_SENDBUF, FANOUT_SENDBUF) ||
	    bus_dial(g->push, url) < 0)
		LOG_WARN("router.gateway_dial", "cannot dial gateway %s", url);
	else
		LOG_INFO("router.gateway_dial", "dialing gateway %s", url);
	return g;
}

static void
fanout_send(struct router *r, const char *url, struct fanout_gw *g)
{
	size_t n = g->batch.count;
	nng_msg *m = bus_batch_take(&g->batch);

	if (m == NULL)
		return;
	metric_add(r->m->batches, 1);
	metric_observe(r->m->batch_size, (double)n);
	if (bus_send(g->push, m, true) == 0)
		return;
	metric_add(r->m->dropped, 1);
	if (g->dropped++ % 1000 == 0)
		LOG_WARN("router.fanout_drop",
			 "gateway %s not taking "
			 "deliveries (%llu batches dropped)",
			 url, (unsigned long long)g->dropped);
}

void
fanout_add(struct router *r, const char *gateway,
	   const Parley__Internal__V1__Delivery *d)
{
	struct fanout_gw *g = map_get(&r->gateways, gateway);

	if (g == NULL) {
		g = fanout_gw_open(gateway);
		map_put(&r->gateways, gateway, g);
	}
	bus_batch_add_pb(&g->batch, &d->base);
	if (bus_batch_bytes(&g->batch) >= FANOUT_BATCH_BYTES)
		fanout_send(r, gateway, g);
}

void
fanout_flush(struct router *r)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&r->gateways, &pos, &key, &val))
		fanout_send(r, key, val);
}

void
fanout_close(struct router *r)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&r->gateways, &pos, &key, &val)) {
		struct fanout_gw *g = val;

		bus_batch_release(&g->batch);
		nng_close(g->push);
		free(g);
	}
	map_release(&r->gateways);
}
