/* Revocation epochs in a compacted Kafka topic: the admin's producer
 * (`parley revoke`) and the gateways' reader thread. */
#include "revoke.h"

#include "jwt.h"
#include "kafka.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REVOKE_EPOCH_DIGITS 15
#define REVOKE_POLL_MS	    200
#define REVOKE_TOPIC_MS	    2000

char *
revoke_topic(const char *log_topic)
{
	return xasprintf("%s.revocations", log_topic);
}

bool
revoke_parse(const void *value, size_t len, int64_t *epoch)
{
	const char *p = value;
	int64_t v = 0;

	if (p == NULL || len == 0 || len > REVOKE_EPOCH_DIGITS)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*epoch = v;
	return true;
}

bool
revoke_applies(int64_t epoch, bool has_iat, int64_t iat)
{
	return epoch > 0 && (!has_iat || iat < epoch);
}

/* ---- the producer ---- */

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

int
revoke_publish(const char *brokers, const char *topic, const char *user,
	       int64_t epoch, int timeout_ms)
{
	struct revoke_wait w = { false, 0 };
	struct kafka_producer *p;
	char value[32];
	int rc, n;

	if (!jwt_valid_user(user) || epoch <= 0)
		return -EINVAL;
	rc = kafka_ensure_compacted_topic(brokers, topic, timeout_ms);
	if (rc < 0)
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

/* ---- the reader ---- */

struct revoke_reader {
	char *brokers, *topic;
	void (*on_epoch)(void *ctx, const char *user, int64_t epoch);
	void *ctx;
	pthread_t thread;
	int stop; /* atomic */
	rd_kafka_t *rk;
};

static bool
revoke_stopping(struct revoke_reader *r)
{
	return __atomic_load_n(&r->stop, __ATOMIC_RELAXED) != 0;
}

/* Partitions of the topic, or -errno while it is not known yet. */
static int
revoke_partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int n = -ENOENT;

	if (rd_kafka_metadata(rk, 0, t, &md, REVOKE_TOPIC_MS) ==
		    RD_KAFKA_RESP_ERR_NO_ERROR &&
	    md->topic_cnt == 1 && md->topics[0].err == 0)
		n = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(t);
	return n;
}

/* Assign every partition from its first offset (no group, no commits:
 * each gateway reads everything, every time it starts). */
static int
revoke_assign(struct revoke_reader *r)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t err;
	int n;

	while ((n = revoke_partitions(r->rk, r->topic)) <= 0) {
		if (revoke_stopping(r))
			return -ECANCELED;
		kafka_ensure_compacted_topic(r->brokers, r->topic,
					     REVOKE_TOPIC_MS);
	}
	l = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, r->topic, i)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	err = rd_kafka_assign(r->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (err)
		LOG_ERROR("revoke.assign", "revocations: cannot assign: %s",
			  rd_kafka_err2str(err));
	return err ? -EIO : 0;
}

static void
revoke_record(struct revoke_reader *r, const rd_kafka_message_t *m)
{
	char user[JWT_SUB_MAX + 1];
	int64_t epoch;

	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			LOG_WARN("revoke.consume", "revocations: %s",
				 rd_kafka_message_errstr(m));
		return;
	}
	if (m->key_len == 0 || m->key_len > JWT_SUB_MAX ||
	    !revoke_parse(m->payload, m->len, &epoch)) {
		LOG_WARN("revoke.bad_record", "revocations: bad record at %lld",
			 (long long)m->offset);
		return;
	}
	memcpy(user, m->key, m->key_len);
	user[m->key_len] = '\0';
	if (!jwt_valid_user(user))
		return;
	r->on_epoch(r->ctx, user, epoch);
}

static void *
revoke_run(void *arg)
{
	struct revoke_reader *r = arg;
	rd_kafka_message_t *m;

	if (revoke_assign(r) < 0)
		return NULL;
	LOG_INFO("revoke.reading", "reading revocations from %s", r->topic);
	while (!revoke_stopping(r)) {
		m = rd_kafka_consumer_poll(r->rk, REVOKE_POLL_MS);
		if (m == NULL)
			continue;
		revoke_record(r, m);
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

struct revoke_reader *
revoke_reader_new(const char *brokers, const char *topic,
		  void (*on_epoch)(void *ctx, const char *user, int64_t epoch),
		  void *ctx)
{
	struct revoke_reader *r = xcalloc(1, sizeof(*r));
	rd_kafka_conf_t *conf = kafka_conf_base(brokers);
	char err[256], group[96];

	r->brokers = xstrdup(brokers);
	r->topic = xstrdup(topic);
	r->on_epoch = on_epoch;
	r->ctx = ctx;
	/* assign() needs a group id; no group is joined and nothing is
	 * committed, so a private one is as good as any. */
	snprintf(group, sizeof(group), "parley-revocations-%p-%ld", (void *)r,
		 (long)getpid());
	rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
	rd_kafka_conf_set(conf, "enable.partition.eof", "false", NULL, 0);
	r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (r->rk == NULL) {
		LOG_ERROR("revoke.consumer", "revocations consumer: %s", err);
		free(r->brokers);
		free(r->topic);
		free(r);
		return NULL;
	}
	rd_kafka_poll_set_consumer(r->rk);
	if (pthread_create(&r->thread, NULL, revoke_run, r) != 0)
		log_fatal("revoke.thread",
			  "cannot start the revocations reader");
	return r;
}

void
revoke_reader_free(struct revoke_reader *r)
{
	if (r == NULL)
		return;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	pthread_join(r->thread, NULL);
	rd_kafka_consumer_close(r->rk);
	rd_kafka_destroy(r->rk);
	free(r->brokers);
	free(r->topic);
	free(r);
}
