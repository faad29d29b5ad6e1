/* Graceful drain of a gateway on SIGTERM or SIGINT (see gateway.h): what
 * Kubernetes' preStop and terminationGracePeriod expect. */
#include "gateway.h"
#include "log.h"

/* After the deadline, connections that ignore our close get this long. */
#define DRAIN_HARD_MS 2000

void
drain_start(struct gateway *gw)
{
	gw->draining = true;
	gw->drain_deadline_ms = gw_now_ms() + gw->cfg.drain_ms;
	LOG_INFO("gateway.drain", "draining %zu connections (deadline %d ms)",
		 map_count(&gw->sessions), gw->cfg.drain_ms);
}

void
drain_step(struct gateway *gw)
{
	int64_t now = gw_now_ms();
	bool late = now >= gw->drain_deadline_ms;
	size_t pos = 0;
	const char *key;
	void *val;
	int closed = 0;

	while (closed < gw->cfg.drain_batch &&
	       map_next(&gw->sessions, &pos, &key, &val)) {
		struct gw_session *s = val;

		if (s->state == GW_CLOSING || (s->inflight > 0 && !late))
			continue;
		session_close(s, GW_CLOSE_GOING_AWAY,
			      "going away: reconnect to another gateway");
		closed++;
	}
	if (map_count(&gw->sessions) == 0 ||
	    now >= gw->drain_deadline_ms + DRAIN_HARD_MS) {
		LOG_INFO("gateway.drained", "drained; %zu connections left",
			 map_count(&gw->sessions));
		gw->stopped = true;
	}
}
