/* RevokeTokens: writes the user's revocation epoch (now, unix seconds) to
 * the compacted topic <PARLEY_TOPIC>.revocations in the record format the
 * gateways read (key = user id, value = the epoch as decimal text; the
 * newest record of a user wins), waiting for the broker's ack. Gateways
 * then refuse the user's tokens issued before it and close its sessions.
 * NOTE for the merge with the sec-auth branch: common/revoke.c's
 * revoke_publish does exactly this and should replace the body of
 * revoke_write (one call). */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "kafka.h"
#include "log.h"
#include "xalloc.h"

struct revoke_wait {
	bool done;
	int err;
};

static void
on_revoke_delivery(void *ctx, const struct kafka_delivery *d)
{
	struct revoke_wait *w = ctx;

	w->done = true;
	w->err = d->err;
}

/* Create the compacted one-partition topic unless it exists. */
static int
revoke_topic_ensure(const char *brokers, const char *topic, int timeout_ms)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	rd_kafka_t *rk;
	char err[256];
	int rc = -ETIMEDOUT;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err,
			      sizeof(err)) != RD_KAFKA_CONF_OK ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) ==
		    NULL) {
		LOG_ERROR("api.revoke_topic", "%s", err);
		return -EINVAL;
	}
	q = rd_kafka_queue_new(rk);
	nt = rd_kafka_NewTopic_new(topic, 1, -1, err, sizeof(err));
	if (nt) {
		rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
		rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
		ev = rd_kafka_queue_poll(q, timeout_ms);
		if (ev) {
			size_t n;
			const rd_kafka_topic_result_t **res =
				rd_kafka_CreateTopics_result_topics(
					rd_kafka_event_CreateTopics_result(ev),
					&n);
			rd_kafka_resp_err_t e =
				n ? rd_kafka_topic_result_error(res[0])
				  : rd_kafka_event_error(ev);

			rc = e == RD_KAFKA_RESP_ERR_NO_ERROR ||
					     e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS
				     ? 0
				     : kafka_err(e);
			rd_kafka_event_destroy(ev);
		}
		rd_kafka_NewTopic_destroy(nt);
	}
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return rc;
}

static int
revoke_write(const char *brokers, const char *topic, const char *user,
	     int64_t epoch, int timeout_ms)
{
	struct revoke_wait w = { false, 0 };
	struct kafka_producer *p;
	char value[32];
	int rc, n;

	if ((rc = revoke_topic_ensure(brokers, topic, timeout_ms)) < 0)
		return rc;
	p = kafka_producer_new(brokers, timeout_ms, on_revoke_delivery, &w);
	if (p == NULL)
		return -EINVAL;
	n = snprintf(value, sizeof(value), "%lld", (long long)epoch);
	rc = kafka_produce(p, topic, user, value, (size_t)n, NULL);
	while (rc == 0 && !w.done)
		kafka_producer_poll(p, 100);
	kafka_producer_free(p, 1000);
	return rc ? rc : w.err;
}

int
api_revoke(struct api *a, const char *user, int timeout_ms)
{
	char *topic = xasprintf("%s.revocations", a->cfg.topic);
	int rc = revoke_write(a->cfg.brokers, topic, user, (int64_t)time(NULL),
			      timeout_ms);

	if (rc == 0)
		LOG_INFO("api.revoked", "tokens of %s revoked", user);
	free(topic);
	return rc;
}
