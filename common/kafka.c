/* librdkafka wrappers (see kafka.h): configuration, delivery reports,
 * rebalances, offsets stored after processing, topic creation. Kafka
 * errors are translated to -errno and logged here, once. */
#include "kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

extern char **environ;

static int64_t kafka_now_ms(void);

/* librdkafka lets an idempotent producer start a ProduceRequest for a
 * partition only while fewer than this many of the partition's *messages*
 * are in flight (RD_KAFKA_IDEMP_MAX_INFLIGHT, meant as requests; see
 * kafka_producer_pace). */
#define KAFKA_PACE_INFLIGHT 5
/* Records held back by pacing, over all partitions, before kafka_produce
 * says -ENOBUFS (librdkafka's own queue.buffering.max.messages default). */
#define KAFKA_PACE_MAX_HELD 100000

/* A record held back until its partition's earlier records are answered. */
struct kafka_held {
	struct kafka_held *next;
	void *opaque;
	size_t key_len, len;
	char data[]; /* key, then value */
};

struct kafka_pace {
	int outstanding; /* handed to librdkafka, not yet reported */
	struct kafka_held *head, **tail;
};

struct kafka_producer {
	rd_kafka_t *rk;
	int pipe[2];	  /* main queue io events: readable when reports wait */
	bool errors_only; /* successes are counted, not passed on */
	bool idempotent;
	void (*on_delivery)(void *ctx, const struct kafka_delivery *d);
	void *ctx;
	/* kafka_producer_pace: the paced topic and its partitions */
	char *pace_topic;
	int32_t pace_n;
	struct kafka_pace *pace;
	int held;
};

struct kafka_consumer {
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;
	int pipe[2];
	bool commit;
	char *topic;
	const struct kafka_consumer_ops *ops;
	void *ctx;
};

int
kafka_err(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return 0;
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		return -ENOBUFS;
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return -ETIMEDOUT;
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		return -ECONNREFUSED;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		return -EMSGSIZE;
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
		return -ENOENT;
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
		return -EINVAL;
	case RD_KAFKA_RESP_ERR__FATAL:
		return -ENOTRECOVERABLE;
	default:
		return -EIO;
	}
}

/* Set one property; configuration errors are fatal at start-up. */
static void
kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
	       const char *origin)
{
	char err[256];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) ==
	    RD_KAFKA_CONF_OK)
		return;
	/* librdkafka's message quotes the value: not for secrets. */
	if (strstr(name, "password") || strstr(name, "secret") ||
	    strstr(name, "key"))
		log_fatal("kafka.config",
			  "%s: invalid value for %s (not shown)", origin, name);
	log_fatal("kafka.config", "%s: %s", origin, err);
}

/* PARLEY_KAFKA_SOCKET_TIMEOUT_MS=5000 -> socket.timeout.ms=5000. */
static void
kafka_conf_env(rd_kafka_conf_t *conf)
{
	static const char prefix[] = "PARLEY_KAFKA_";

	for (char **e = environ; *e; e++) {
		char name[128], var[160], *eq;
		size_t n;

		if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0 ||
		    strncmp(*e, "PARLEY_KAFKA_BROKERS=", 21) == 0)
			continue;
		eq = strchr(*e, '=');
		if (eq == NULL)
			continue;
		n = (size_t)(eq - *e) - (sizeof(prefix) - 1);
		if (n == 0 || n >= sizeof(name))
			continue;
		for (size_t i = 0; i < n; i++) {
			char ch = (*e)[sizeof(prefix) - 1 + i];

			name[i] = ch == '_' ? '.' : (char)(ch | 0x20);
		}
		name[n] = '\0';
		/* The variable's name only: its value may be a password. */
		snprintf(var, sizeof(var), "%.*s", (int)(eq - *e), *e);
		kafka_conf_set(conf, name, eq + 1, var);
	}
}

/* librdkafka's own log lines, as our JSON lines (syslog levels). */
static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum log_level l = level <= 3	? LOG_LEVEL_ERROR
			   : level <= 4 ? LOG_LEVEL_WARN
			   : level <= 6 ? LOG_LEVEL_INFO
					: LOG_LEVEL_DEBUG;

	log_write(l, "kafka.librdkafka", "%s: %s: %s", rd_kafka_name(rk), fac,
		  buf);
}

static rd_kafka_conf_t *
kafka_conf_new(const char *brokers)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set_log_cb(conf, on_log);
	kafka_conf_set(conf, "bootstrap.servers", brokers,
		       "PARLEY_KAFKA_BROKERS");
	kafka_conf_set(conf, "client.id", "parley", "client.id");
	kafka_conf_set(conf, "log_level", "4", "log_level");
	return conf;
}

rd_kafka_conf_t *
kafka_conf_base(const char *brokers)
{
	rd_kafka_conf_t *conf = kafka_conf_new(brokers);

	kafka_conf_env(conf);
	return conf;
}

static void
kafka_pipe_open(int p[2])
{
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
		log_fatal("kafka.pipe", "pipe2: %s", strerror(errno));
}

static void
kafka_pipe_drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Producer. */

static void
on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_producer *p = opaque;
	struct kafka_delivery d = {
		.opaque = m->_private,
		.value = m->payload,
		.len = m->len,
		.err = kafka_err(m->err),
		.partition = m->partition,
		.offset = m->offset,
	};

	if (p->pace != NULL && m->partition >= 0 && m->partition < p->pace_n &&
	    strcmp(rd_kafka_topic_name(m->rkt), p->pace_topic) == 0)
		p->pace[m->partition].outstanding--;
	(void)rk;
	if (m->err == 0 && p->errors_only)
		return;
	if (m->err) {
		d.maybe_persisted = rd_kafka_message_status(m) !=
				    RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
		LOG_WARN("kafka.delivery_failed", "produce failed: %s%s",
			 rd_kafka_err2str(m->err),
			 d.maybe_persisted ? " (maybe persisted)" : "");
	}
	p->on_delivery(p->ctx, &d);
}

static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)opaque;
	LOG_WARN("kafka.error", "%s: %s: %s", rd_kafka_name(rk),
		 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static struct kafka_producer *
kafka_producer_open(const char *brokers, int delivery_timeout_ms,
		    bool errors_only,
		    void (*on_delivery)(void *ctx,
					const struct kafka_delivery *d),
		    void *ctx)
{
	struct kafka_producer *p = xcalloc(1, sizeof(*p));
	rd_kafka_conf_t *conf = kafka_conf_new(brokers);
	char num[32], err[256];

	snprintf(num, sizeof(num), "%d", delivery_timeout_ms);
	kafka_conf_set(conf, "enable.idempotence", "true", "idempotence");
	kafka_conf_set(conf, "acks", "all", "acks");
	kafka_conf_set(conf, "delivery.timeout.ms", num, "delivery timeout");
	kafka_conf_set(conf, "linger.ms", "1", "linger.ms");
	kafka_conf_set(conf, "partitioner", "murmur2_random", "partitioner");
	kafka_conf_set(conf, "message.max.bytes", KAFKA_MESSAGE_MAX,
		       "message.max.bytes");
	kafka_conf_env(conf);
	/* errors_only: every report still comes back (pacing counts them),
	 * one wake-up per batch; only failures reach on_delivery. */
	p->errors_only = errors_only;
	size_t vlen = sizeof(num);
	p->idempotent = rd_kafka_conf_get(conf, "enable.idempotence", num,
					  &vlen) == RD_KAFKA_CONF_OK &&
			strcmp(num, "true") == 0;
	rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, p);
	p->on_delivery = on_delivery;
	p->ctx = ctx;
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (p->rk == NULL) {
		LOG_ERROR("kafka.producer_new", "%s", err);
		free(p);
		return NULL;
	}
	kafka_pipe_open(p->pipe);
	rd_kafka_queue_t *q = rd_kafka_queue_get_main(p->rk);
	rd_kafka_queue_io_event_enable(q, p->pipe[1], "1", 1);
	rd_kafka_queue_destroy(q);
	return p;
}

struct kafka_producer *
kafka_producer_new(const char *brokers, int delivery_timeout_ms,
		   void (*on_delivery)(void *ctx,
				       const struct kafka_delivery *d),
		   void *ctx)
{
	return kafka_producer_open(brokers, delivery_timeout_ms, false,
				   on_delivery, ctx);
}

struct kafka_producer *
kafka_producer_new_errors_only(
	const char *brokers, int delivery_timeout_ms,
	void (*on_delivery)(void *ctx, const struct kafka_delivery *d),
	void *ctx)
{
	return kafka_producer_open(brokers, delivery_timeout_ms, true,
				   on_delivery, ctx);
}

void
kafka_producer_free(struct kafka_producer *p, int timeout_ms)
{
	if (p == NULL)
		return;
	/* Held records go out as reports come in, so poll rather than
	 * rd_kafka_flush alone. */
	for (int64_t end = kafka_now_ms() + timeout_ms;
	     p->held > 0 && kafka_now_ms() < end;)
		kafka_producer_poll(p, 20);
	if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    p->held > 0)
		LOG_WARN("kafka.flush", "%d records not delivered at exit",
			 kafka_producer_outq(p));
	rd_kafka_destroy(p->rk);
	for (int32_t i = 0; p->pace && i < p->pace_n; i++)
		for (struct kafka_held *h = p->pace[i].head, *next; h;
		     h = next) {
			next = h->next;
			free(h);
		}
	free(p->pace);
	free(p->pace_topic);
	close(p->pipe[0]);
	close(p->pipe[1]);
	free(p);
}

/* Hand one record to librdkafka; partition -1 lets its partitioner pick. */
static int
kafka_produce_now(struct kafka_producer *p, const char *topic,
		  int32_t partition, const char *key, size_t key_len,
		  const void *value, size_t len, void *opaque)
{
	rd_kafka_resp_err_t err;

	/* RD_KAFKA_MSG_F_COPY: librdkafka copies value; we keep ours. */
	err = rd_kafka_producev(
		p->rk, RD_KAFKA_V_TOPIC(topic),
		RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
						   : partition),
		RD_KAFKA_V_KEY(key, key_len),
		RD_KAFKA_V_VALUE((void *)value, len),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
	if (err) {
		LOG_WARN("kafka.produce", "produce to %s: %s", topic,
			 rd_kafka_err2str(err));
		return kafka_err(err);
	}
	if (partition >= 0)
		p->pace[partition].outstanding++;
	return 0;
}

void
kafka_producer_pace(struct kafka_producer *p, const char *topic,
		    int32_t partitions)
{
	if (!p->idempotent || partitions <= 0 || p->pace != NULL)
		return;
	p->pace_topic = xstrdup(topic);
	p->pace_n = partitions;
	p->pace = xcalloc((size_t)partitions, sizeof(*p->pace));
	for (int32_t i = 0; i < partitions; i++)
		p->pace[i].tail = &p->pace[i].head;
}

/* Hand over what each partition held once it may send again: all of it at
 * once, so it leaves as one batch. A record librdkafka refuses for good is
 * reported failed (never sent: not persisted). */
static void
kafka_pace_release(struct kafka_producer *p)
{
	for (int32_t i = 0; i < p->pace_n && p->held > 0; i++) {
		struct kafka_pace *pc = &p->pace[i];

		if (pc->outstanding >= KAFKA_PACE_INFLIGHT)
			continue;
		while (pc->head != NULL) {
			struct kafka_held *h = pc->head;
			int rc = kafka_produce_now(
				p, p->pace_topic, i, h->data, h->key_len,
				h->data + h->key_len, h->len, h->opaque);

			if (rc == -ENOBUFS)
				break; /* librdkafka is full: next poll */
			if (rc < 0) {
				struct kafka_delivery d = {
					.opaque = h->opaque,
					.value = h->data + h->key_len,
					.len = h->len,
					.err = rc,
					.partition = i,
					.offset = -1,
				};

				p->on_delivery(p->ctx, &d);
			}
			pc->head = h->next;
			if (pc->head == NULL)
				pc->tail = &pc->head;
			p->held--;
			free(h);
		}
	}
}

int
kafka_produce(struct kafka_producer *p, const char *topic, const char *key,
	      const void *value, size_t len, void *opaque)
{
	size_t key_len = strlen(key);
	int32_t part;
	struct kafka_pace *pc;
	struct kafka_held *h;

	if (p->pace == NULL || strcmp(topic, p->pace_topic) != 0)
		return kafka_produce_now(p, topic, -1, key, key_len, value, len,
					 opaque);
	part = kafka_partition_of(key, p->pace_n);
	pc = &p->pace[part];
	if (pc->head == NULL && pc->outstanding < KAFKA_PACE_INFLIGHT)
		return kafka_produce_now(p, topic, part, key, key_len, value,
					 len, opaque);
	if (p->held >= KAFKA_PACE_MAX_HELD)
		return -ENOBUFS;
	h = xmalloc(sizeof(*h) + key_len + len);
	h->next = NULL;
	h->opaque = opaque;
	h->key_len = key_len;
	h->len = len;
	memcpy(h->data, key, key_len);
	memcpy(h->data + key_len, value, len);
	*pc->tail = h;
	pc->tail = &h->next;
	p->held++;
	return 0;
}

int
kafka_producer_poll(struct kafka_producer *p, int timeout_ms)
{
	int n;

	kafka_pipe_drain(p->pipe[0]);
	n = rd_kafka_poll(p->rk, timeout_ms);
	if (p->held > 0)
		kafka_pace_release(p);
	return n;
}

int
kafka_producer_outq(struct kafka_producer *p)
{
	return rd_kafka_outq_len(p->rk) + p->held;
}

int
kafka_producer_fd(struct kafka_producer *p)
{
	return p->pipe[0];
}

int
kafka_producer_partitions(struct kafka_producer *p, const char *topic,
			  int timeout_ms)
{
	rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	int n;

	err = rd_kafka_metadata(p->rk, 0, t, &md, timeout_ms);
	rd_kafka_topic_destroy(t);
	if (err) {
		LOG_WARN("kafka.metadata", "metadata of %s: %s", topic,
			 rd_kafka_err2str(err));
		return kafka_err(err);
	}
	n = md->topic_cnt == 1 && md->topics[0].err == 0
		    ? md->topics[0].partition_cnt
		    : -ENOENT;
	rd_kafka_metadata_destroy(md);
	return n;
}

int32_t
kafka_partition_of(const char *key, int32_t n)
{
	return rd_kafka_msg_partitioner_murmur2(NULL, key, strlen(key), n, NULL,
						NULL);
}

/* Consumer. */

static void
kafka_rebalance(struct kafka_consumer *c, rd_kafka_resp_err_t err,
		rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_resp_err_t rc;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		LOG_INFO("kafka.assign", "assigned %d partitions of %s",
			 parts->cnt, c->topic);
		if (c->ops && c->ops->on_assign)
			c->ops->on_assign(c->ctx, c, parts);
		rc = rd_kafka_assign(c->rk, parts);
	} else {
		LOG_INFO("kafka.revoke", "revoking %d partitions of %s",
			 parts->cnt, c->topic);
		if (c->ops && c->ops->on_revoke)
			c->ops->on_revoke(c->ctx, c, parts);
		/* Commit what was processed before another member starts. */
		if (c->commit)
			rd_kafka_commit(c->rk, NULL, 0);
		rc = rd_kafka_assign(c->rk, NULL);
	}
	if (rc)
		LOG_ERROR("kafka.assign_failed", "assign: %s",
			  rd_kafka_err2str(rc));
}

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
	     rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	(void)rk;
	kafka_rebalance(opaque, err, parts);
}

static void
kafka_consumer_conf(rd_kafka_conf_t *conf, const char *group, bool commit,
		    int gather_ms)
{
	char wait[16];

	kafka_conf_set(conf, "group.id", group, "group");
	kafka_conf_set(conf, "enable.auto.commit", commit ? "true" : "false",
		       "auto commit");
	kafka_conf_set(conf, "auto.commit.interval.ms", "200", "commit ms");
	kafka_conf_set(conf, "enable.auto.offset.store", "false", "store");
	kafka_conf_set(conf, "auto.offset.reset", "earliest", "reset");
	kafka_conf_set(conf, "session.timeout.ms", "6000", "session");
	kafka_conf_set(conf, "heartbeat.interval.ms", "500", "heartbeat");
	/* fetch.min.bytes is 1: the broker answers a waiting fetch as soon as
	 * a record arrives, so the wait costs no latency; it only bounds how
	 * often an idle consumer asks (10 ms made Kafka spend 17% of a core
	 * on three idle consumers, docs/PERFORMANCE.md). */
	snprintf(wait, sizeof(wait), "%d", gather_ms > 0 ? gather_ms : 100);
	kafka_conf_set(conf, "fetch.wait.max.ms", wait, "fetch wait");
	if (gather_ms > 0)
		kafka_conf_set(conf, "fetch.min.bytes", KAFKA_GATHER_BYTES,
			       "fetch.min.bytes");
	kafka_conf_set(conf, "isolation.level", "read_committed", "isolation");
	kafka_conf_set(conf, "fetch.message.max.bytes", KAFKA_MESSAGE_MAX,
		       "fetch.message.max.bytes");
	kafka_conf_env(conf);
}

struct kafka_consumer *
kafka_consumer_new(const char *brokers, const char *group, const char *topic,
		   bool commit, const struct kafka_consumer_ops *ops, void *ctx)
{
	struct kafka_consumer *c = xcalloc(1, sizeof(*c));
	rd_kafka_conf_t *conf = kafka_conf_new(brokers);
	rd_kafka_topic_partition_list_t *subs;
	rd_kafka_resp_err_t err;
	char errstr[256];

	kafka_consumer_conf(conf, group, commit, ops ? ops->gather_ms : 0);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, c);
	c->commit = commit;
	c->ops = ops;
	c->ctx = ctx;
	c->topic = xstrdup(topic);
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (c->rk == NULL) {
		LOG_ERROR("kafka.consumer_new", "%s", errstr);
		free(c->topic);
		free(c);
		return NULL;
	}
	rd_kafka_poll_set_consumer(c->rk);
	c->queue = rd_kafka_queue_get_consumer(c->rk);
	kafka_pipe_open(c->pipe);
	rd_kafka_queue_io_event_enable(c->queue, c->pipe[1], "1", 1);
	subs = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(c->rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (err) {
		LOG_ERROR("kafka.subscribe", "subscribe %s: %s", topic,
			  rd_kafka_err2str(err));
		kafka_consumer_free(c);
		return NULL;
	}
	return c;
}

void
kafka_consumer_free(struct kafka_consumer *c)
{
	if (c == NULL)
		return;
	rd_kafka_consumer_close(c->rk);
	rd_kafka_queue_destroy(c->queue);
	rd_kafka_destroy(c->rk);
	close(c->pipe[0]);
	close(c->pipe[1]);
	free(c->topic);
	free(c);
}

rd_kafka_message_t *
kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms)
{
	rd_kafka_message_t *m;

	kafka_pipe_drain(c->pipe[0]);
	m = rd_kafka_consumer_poll(c->rk, timeout_ms);
	if (m == NULL || m->err == 0)
		return m;
	if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
		LOG_WARN("kafka.consume", "consume: %s",
			 rd_kafka_message_errstr(m));
	rd_kafka_message_destroy(m);
	return NULL;
}

int
kafka_consumer_store(struct kafka_consumer *c, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t err;

	rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt),
					  m->partition)
		->offset = m->offset + 1;
	err = rd_kafka_offsets_store(c->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	return kafka_err(err);
}

int
kafka_consumer_committed(struct kafka_consumer *c,
			 rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
	rd_kafka_resp_err_t err = rd_kafka_committed(c->rk, parts, timeout_ms);

	if (err)
		LOG_WARN("kafka.committed", "committed offsets: %s",
			 rd_kafka_err2str(err));
	return kafka_err(err);
}

int
kafka_consumer_seek(struct kafka_consumer *c,
		    rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
	rd_kafka_error_t *err =
		rd_kafka_seek_partitions(c->rk, parts, timeout_ms);

	if (err) {
		LOG_WARN("kafka.seek", "seek: %s", rd_kafka_error_string(err));
		rd_kafka_error_destroy(err);
		return -EIO;
	}
	for (int i = 0; i < parts->cnt; i++) {
		if (parts->elems[i].err) {
			LOG_WARN("kafka.seek", "seek partition %d: %s",
				 (int)parts->elems[i].partition,
				 rd_kafka_err2str(parts->elems[i].err));
			return -EIO;
		}
	}
	return 0;
}

int
kafka_consumer_fd(struct kafka_consumer *c)
{
	return c->pipe[0];
}

rd_kafka_t *
kafka_consumer_handle(struct kafka_consumer *c)
{
	return c->rk;
}

/* Topics. */

static int64_t
kafka_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One CreateTopics round trip. 0, -EEXIST, or -errno. */
static int
kafka_create_once(rd_kafka_t *rk, const char *topic, int partitions,
		  bool compact, int timeout_ms)
{
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	const rd_kafka_topic_result_t **res;
	size_t n;
	int rc = -ETIMEDOUT;
	char err[256];

	nt = rd_kafka_NewTopic_new(topic, partitions, -1, err, sizeof(err));
	if (nt == NULL) {
		LOG_ERROR("kafka.topic", "topic %s: %s", topic, err);
		rd_kafka_queue_destroy(q);
		return -EINVAL;
	}
	rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
	if (compact)
		rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
	rd_kafka_NewTopic_set_config(nt, "max.message.bytes",
				     KAFKA_MESSAGE_MAX);
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, timeout_ms);
	if (ev && rd_kafka_event_error(ev))
		rc = kafka_err(rd_kafka_event_error(ev));
	else if (ev) {
		res = rd_kafka_CreateTopics_result_topics(
			rd_kafka_event_CreateTopics_result(ev), &n);
		rc = n ? kafka_err(rd_kafka_topic_result_error(res[0])) : -EIO;
		if (n && rd_kafka_topic_result_error(res[0]) ==
				 RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			rc = -EEXIST;
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	return rc;
}

static int
kafka_ensure(const char *brokers, const char *topic, int partitions,
	     bool compact, int timeout_ms)
{
	rd_kafka_conf_t *conf = kafka_conf_base(brokers);
	int64_t deadline = kafka_now_ms() + timeout_ms;
	char err[256];
	rd_kafka_t *rk;
	int rc;

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (rk == NULL) {
		LOG_ERROR("kafka.admin", "%s", err);
		return -EINVAL;
	}
	do {
		rc = kafka_create_once(rk, topic, partitions, compact, 5000);
		if (rc == 0 || rc == -EEXIST || rc == -EINVAL)
			break;
		usleep(300 * 1000);
	} while (kafka_now_ms() < deadline);
	rd_kafka_destroy(rk);
	if (rc == 0)
		LOG_INFO("kafka.topic_created",
			 "created topic %s with %d "
			 "partitions",
			 topic, partitions);
	else if (rc != -EEXIST)
		LOG_ERROR("kafka.topic", "cannot create topic %s: %s", topic,
			  strerror(-rc));
	return rc == -EEXIST ? 0 : rc;
}

int
kafka_ensure_topic(const char *brokers, const char *topic, int partitions,
		   int timeout_ms)
{
	return kafka_ensure(brokers, topic, partitions, false, timeout_ms);
}

int
kafka_ensure_compacted_topic(const char *brokers, const char *topic,
			     int timeout_ms)
{
	return kafka_ensure(brokers, topic, 1, true, timeout_ms);
}
