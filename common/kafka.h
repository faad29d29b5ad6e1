/* librdkafka wrappers: an idempotent acks=all producer whose every message
 * comes back exactly once as a delivery report, and a consumer that stores
 * an offset only when the caller says the record is processed. Kafka error
 * codes become -errno here and are logged once here. */
#ifndef PARLEY_KAFKA_H
#define PARLEY_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest Kafka message (record batch) parley produces, fetches and lets
 * its topic hold: producer message.max.bytes, consumer
 * fetch.message.max.bytes, and the topic's max.message.bytes when the
 * router creates it. A record carries at most PARLEY_MAX_BODY (64 KiB by
 * default, 1 MiB at most) of body plus ids under 2 KiB, so one always
 * fits. PARLEY_KAFKA_MESSAGE_MAX_BYTES and PARLEY_KAFKA_FETCH_MESSAGE_MAX_BYTES
 * override the client sides (docs/CONFIG.md). */
#define KAFKA_MESSAGE_MAX "2097152"

struct kafka_delivery {
	void *opaque;	   /* as given to kafka_produce */
	const void *value; /* the record as produced (valid in the call) */
	size_t len;
	int err;	      /* 0 or -errno */
	bool maybe_persisted; /* err set but the broker may have it (G1) */
	int32_t partition;
	int64_t offset;
};

struct kafka_producer;

/* A producer with enable.idempotence=true, acks=all, and delivery timeout
 * delivery_timeout_ms. Extra librdkafka properties come from the
 * environment as PARLEY_KAFKA_<NAME> (dots as underscores) — see
 * docs/CONFIG.md. Returns NULL (logged) on bad configuration. */
struct kafka_producer *kafka_producer_new(
	const char *brokers, int delivery_timeout_ms,
	void (*on_delivery)(void *ctx, const struct kafka_delivery *d),
	void *ctx);
/* The same, but reports come only for records that failed: success costs
 * the caller no wake-up. opaque must then own nothing (it is not returned
 * for records that succeed); the failed record's value identifies it. */
struct kafka_producer *kafka_producer_new_errors_only(
	const char *brokers, int delivery_timeout_ms,
	void (*on_delivery)(void *ctx, const struct kafka_delivery *d),
	void *ctx);
/* Pace topic (of partitions partitions, as its metadata says): while one
 * of its partitions has 5 or more records handed to librdkafka and not yet
 * reported, later records of that partition wait here and go out together
 * when reports come in (in kafka_producer_poll), in order. Without this an
 * idempotent librdkafka 2.0.2 producer, which then may not start another
 * request for the partition (it counts messages against its limit of five
 * requests), busy-polls its broker thread until the broker answers.
 * A no-op when idempotence is off. Records keep their key's partition
 * (murmur2, as kafka_partition_of). */
void kafka_producer_pace(struct kafka_producer *p, const char *topic,
			 int32_t partitions);
/* Stops; waits up to timeout_ms for outstanding deliveries, whose reports
 * still arrive. kafka_producer_free(NULL) is a no-op. */
void kafka_producer_free(struct kafka_producer *p, int timeout_ms);

/* Queue one record (copied). opaque comes back in its delivery report,
 * which always arrives when this returns 0. -ENOBUFS when the local queue
 * is full, -EINVAL on a bad topic. */
int kafka_produce(struct kafka_producer *p, const char *topic, const char *key,
		  const void *value, size_t len, void *opaque);
/* Serve delivery reports, waiting up to timeout_ms. Returns how many. */
int kafka_producer_poll(struct kafka_producer *p, int timeout_ms);
/* Records queued, held by pacing, or in flight. */
int kafka_producer_outq(struct kafka_producer *p);
/* A descriptor that polls readable when reports wait (drain it with
 * kafka_producer_poll(p, 0); it is reset there). */
int kafka_producer_fd(struct kafka_producer *p);

/* Consumer. */
struct kafka_consumer;

struct kafka_consumer_ops {
	/* After the group gave us parts and before fetching starts: set
	 * each element's offset to where to start (it is
	 * RD_KAFKA_OFFSET_INVALID = the committed offset, by default). */
	void (*on_assign)(void *ctx, struct kafka_consumer *c,
			  rd_kafka_topic_partition_list_t *parts);
	/* Before parts are taken away. */
	void (*on_revoke)(void *ctx, struct kafka_consumer *c,
			  const rd_kafka_topic_partition_list_t *parts);
	/* 0 for a consumer on the latency path (a waiting fetch is answered
	 * as soon as one record arrives). A consumer off it (the store, the
	 * pusher) sets how long the broker may hold a fetch to gather
	 * KAFKA_GATHER_BYTES: fewer, fuller fetches cost Kafka less. */
	int gather_ms;
};

#define KAFKA_GATHER_BYTES "65536"

/* Join group on topic. Offsets: enable.auto.offset.store=false; with
 * commit true they are committed to Kafka automatically once stored via
 * kafka_consumer_store; with commit false nothing is committed (the
 * caller keeps offsets itself, as the store does in PostgreSQL).
 * Returns NULL (logged) on failure. */
struct kafka_consumer *kafka_consumer_new(const char *brokers,
					  const char *group, const char *topic,
					  bool commit,
					  const struct kafka_consumer_ops *ops,
					  void *ctx);
/* Commit what was stored, leave the group, free. NULL is a no-op. */
void kafka_consumer_free(struct kafka_consumer *c);

/* The next record, waiting up to timeout_ms; NULL when none (errors are
 * logged and skipped). The caller frees it with rd_kafka_message_destroy. */
rd_kafka_message_t *kafka_consumer_poll(struct kafka_consumer *c,
					int timeout_ms);
/* Mark m processed: its offset + 1 will be committed. 0 or -errno. */
int kafka_consumer_store(struct kafka_consumer *c, const rd_kafka_message_t *m);
/* Fill parts' offsets with the group's committed offsets. 0 or -errno. */
int kafka_consumer_committed(struct kafka_consumer *c,
			     rd_kafka_topic_partition_list_t *parts,
			     int timeout_ms);
/* Seek each of parts to its offset (waiting up to timeout_ms); 0, or -EIO
 * (logged) when the seek or any partition's failed. */
int kafka_consumer_seek(struct kafka_consumer *c,
			rd_kafka_topic_partition_list_t *parts, int timeout_ms);
/* A descriptor that polls readable when records or events wait. */
int kafka_consumer_fd(struct kafka_consumer *c);
/* The underlying handle, for calls this wrapper does not cover. */
rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c);

/* Create topic with partitions if it does not exist (retention forever:
 * the log is the system of record). Waits up to timeout_ms, retrying while
 * the broker is not up yet. 0 or -errno. */
int kafka_ensure_topic(const char *brokers, const char *topic, int partitions,
		       int timeout_ms);

/* Create topic, one partition, cleanup.policy=compact (the newest value
 * of each key is kept forever), if it does not exist. As above. */
int kafka_ensure_compacted_topic(const char *brokers, const char *topic,
				 int timeout_ms);

/* A librdkafka configuration with bootstrap.servers, parley's logging and
 * every PARLEY_KAFKA_<NAME> property of the environment (SSL, SASL, ...),
 * for clients this wrapper does not cover. The caller owns it. */
rd_kafka_conf_t *kafka_conf_base(const char *brokers);

/* The number of partitions of topic (from broker metadata), or -errno. */
int kafka_producer_partitions(struct kafka_producer *p, const char *topic,
			      int timeout_ms);

/* The partition of key among n, as the producer's murmur2 partitioner
 * (Java-compatible) picks it. */
int32_t kafka_partition_of(const char *key, int32_t n);

/* A librdkafka error as -errno. */
int kafka_err(rd_kafka_resp_err_t err);

#endif
