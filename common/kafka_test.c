/* Unit tests of the Kafka wrapper against librdkafka's mock cluster (the
 * only place the mock is used: integration tests run a real broker). */
#include "kafka.c"

#include <librdkafka/rdkafka_mock.h>
#include <sys/resource.h>

#include "test.h"

struct reports {
	int n, errors;
	long seen[64];
	char value[16]; /* the last failed record's value */
	size_t len;
};

static void
on_report(void *ctx, const struct kafka_delivery *d)
{
	struct reports *r = ctx;

	if (d->err) {
		r->errors++;
		r->len = d->len < sizeof(r->value) ? d->len : 0;
		memcpy(r->value, d->value, r->len);
	} else if (r->n < 64)
		r->seen[r->n] = (long)(intptr_t)d->opaque;
	r->n++;
}

/* A mock cluster of one broker with topic t (4 partitions). */
static rd_kafka_mock_cluster_t *
mock_new(rd_kafka_t **owner)
{
	char err[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;

	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
	*owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	mc = rd_kafka_mock_cluster_new(*owner, 1);
	rd_kafka_mock_topic_create(mc, "t", 4, 1);
	return mc;
}

static void
test_err_mapping(void)
{
	/* The broker-down test makes librdkafka complain; keep it quiet. */
	setenv("PARLEY_LOG_LEVEL", "error", 1);
	log_init("kafka_test");
	CHECK_EQ_INT(kafka_err(RD_KAFKA_RESP_ERR_NO_ERROR), 0);
	CHECK_EQ_INT(kafka_err(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), -ETIMEDOUT);
	CHECK_EQ_INT(kafka_err(RD_KAFKA_RESP_ERR__QUEUE_FULL), -ENOBUFS);
	CHECK_EQ_INT(kafka_err(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE),
		     -EMSGSIZE);
	CHECK_EQ_INT(kafka_err(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN),
		     -ECONNREFUSED);
	CHECK_EQ_INT(kafka_err(RD_KAFKA_RESP_ERR_UNKNOWN), -EIO);
}

/* Every produced record comes back exactly once as a report, and the
 * same key always lands in the same partition. */
static void
test_produce_reports(void)
{
	rd_kafka_t *owner;
	rd_kafka_mock_cluster_t *mc = mock_new(&owner);
	struct reports r = { 0 };
	struct kafka_producer *p = kafka_producer_new(
		rd_kafka_mock_cluster_bootstraps(mc), 5000, on_report, &r);

	CHECK(p != NULL);
	for (long i = 0; p && i < 20; i++)
		CHECK_EQ_INT(kafka_produce(p, "t", i % 2 ? "room-a" : "room-b",
					   "x", 1, (void *)(intptr_t)i),
			     0);
	for (int i = 0; p && i < 100 && r.n < 20; i++)
		kafka_producer_poll(p, 100);
	CHECK_EQ_INT(r.n, 20);
	CHECK_EQ_INT(r.errors, 0);
	CHECK_EQ_INT(kafka_partition_of("room-a", 4),
		     kafka_partition_of("room-a", 4));
	CHECK_EQ_INT(kafka_producer_partitions(p, "t", 5000), 4);
	kafka_producer_free(p, 1000);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
}

/* With the broker down, a record is reported failed (retryable for the
 * client), never dropped without a word. */
static void
test_broker_down_reports_failure(void)
{
	rd_kafka_t *owner;
	rd_kafka_mock_cluster_t *mc = mock_new(&owner);
	struct reports r = { 0 };
	struct kafka_producer *p = kafka_producer_new(
		rd_kafka_mock_cluster_bootstraps(mc), 1500, on_report, &r);

	rd_kafka_mock_broker_set_down(mc, 1);
	CHECK_EQ_INT(kafka_produce(p, "t", "room", "x", 1, NULL), 0);
	for (int i = 0; i < 60 && r.n < 1; i++)
		kafka_producer_poll(p, 100);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_INT(r.errors, 1);
	kafka_producer_free(p, 100);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
}

/* An errors-only producer: records that succeed produce no report at
 * all; one that fails comes back with its value, which is all the caller
 * has to say whose it was. */
static void
test_errors_only(void)
{
	rd_kafka_t *owner;
	rd_kafka_mock_cluster_t *mc = mock_new(&owner);
	struct reports r = { 0 };
	struct kafka_producer *p = kafka_producer_new_errors_only(
		rd_kafka_mock_cluster_bootstraps(mc), 1500, on_report, &r);
	char got[16] = "";

	CHECK(p != NULL);
	if (p == NULL) {
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(owner);
		return;
	}
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(kafka_produce(p, "t", "room", "ok", 2, NULL), 0);
	for (int i = 0; i < 50 && kafka_producer_outq(p) > 0; i++)
		kafka_producer_poll(p, 100);
	CHECK_EQ_INT(kafka_producer_outq(p), 0);
	CHECK_EQ_INT(r.n, 0);
	rd_kafka_mock_broker_set_down(mc, 1);
	CHECK_EQ_INT(kafka_produce(p, "t", "room", "lost-one", 8, NULL), 0);
	for (int i = 0; i < 60 && r.n < 1; i++)
		kafka_producer_poll(p, 100);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_INT(r.errors, 1);
	CHECK_EQ_INT((int)r.len, 8);
	memcpy(got, r.value, r.len < sizeof(got) - 1 ? r.len : 0);
	CHECK_EQ_STR(got, "lost-one");
	kafka_producer_free(p, 100);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
}

/* CPU seconds of this process so far. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Produce 60 records of one key in bursts to a broker that takes 200 ms
 * to answer; returns CPU seconds per wall second meanwhile. Every record
 * must come back once, in order (one partition). */
static double
paced_run(bool pace)
{
	rd_kafka_t *owner;
	rd_kafka_mock_cluster_t *mc = mock_new(&owner);
	struct reports r = { 0 };
	struct kafka_producer *p = kafka_producer_new(
		rd_kafka_mock_cluster_bootstraps(mc), 10000, on_report, &r);
	int64_t t0;
	double c0, ratio;
	bool ordered = true;

	if (p == NULL) {
		CHECK(p != NULL);
		rd_kafka_mock_cluster_destroy(mc);
		rd_kafka_destroy(owner);
		return 1;
	}
	if (pace)
		kafka_producer_pace(p, "t", 4);
	/* Warm: the producer id and the connection. */
	kafka_produce(p, "t", "room", "w", 1, (void *)(intptr_t)0);
	for (int i = 0; i < 100 && r.n < 1; i++)
		kafka_producer_poll(p, 50);
	rd_kafka_mock_broker_set_rtt(mc, 1, 200);
	t0 = kafka_now_ms();
	c0 = cpu_s();
	for (int i = 1; i <= 60; i++) {
		CHECK_EQ_INT(kafka_produce(p, "t", "room", "v", 1,
					   (void *)(intptr_t)i),
			     0);
		if (i % 20 == 0)
			kafka_producer_poll(p, 5);
	}
	for (int i = 0; i < 400 && r.n < 61; i++)
		kafka_producer_poll(p, 10);
	ratio = (cpu_s() - c0) / ((double)(kafka_now_ms() - t0) / 1000.0);
	CHECK_EQ_INT(r.n, 61);
	CHECK_EQ_INT(r.errors, 0);
	for (int i = 0; i < 61; i++)
		ordered &= r.seen[i] == i;
	CHECK(ordered);
	CHECK_EQ_INT(kafka_producer_outq(p), 0);
	kafka_producer_free(p, 1000);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
	return ratio;
}

/* Pacing: an idempotent producer with more than five records of one
 * partition in flight keeps them in order and does not busy-poll while
 * it waits for the broker (librdkafka 2.0.2 alone spins its broker
 * thread then; the unpaced figure is printed for comparison). */
static void
test_pace(void)
{
	double unpaced = paced_run(false);
	double paced = paced_run(true);

	printf("  cpu per wall second while waiting: unpaced %.2f, "
	       "paced %.2f\n",
	       unpaced, paced);
	CHECK(paced < 0.2);
}

static int assigned_;

static void
on_assign_count(void *ctx, struct kafka_consumer *c,
		rd_kafka_topic_partition_list_t *parts)
{
	(void)ctx;
	(void)c;
	assigned_ += parts->cnt;
}

/* The consumer gets every record once and stores offsets only when told. */
static void
test_consume(void)
{
	static const struct kafka_consumer_ops ops = {
		.on_assign = on_assign_count
	};
	rd_kafka_t *owner;
	rd_kafka_mock_cluster_t *mc = mock_new(&owner);
	const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
	struct reports r = { 0 };
	struct kafka_producer *p = kafka_producer_new(bs, 5000, on_report, &r);
	struct kafka_consumer *c;
	int got = 0;

	for (int i = 0; i < 10; i++)
		kafka_produce(p, "t", "k", "v", 1, NULL);
	for (int i = 0; i < 100 && r.n < 10; i++)
		kafka_producer_poll(p, 100);
	c = kafka_consumer_new(bs, "g", "t", true, &ops, NULL);
	CHECK(c != NULL);
	for (int i = 0; c && i < 200 && got < 10; i++) {
		rd_kafka_message_t *m = kafka_consumer_poll(c, 100);

		if (m == NULL)
			continue;
		got++;
		CHECK_EQ_INT(kafka_consumer_store(c, m), 0);
		rd_kafka_message_destroy(m);
	}
	CHECK_EQ_INT(got, 10);
	CHECK_EQ_INT(assigned_, 4);
	kafka_consumer_free(c);
	kafka_producer_free(p, 1000);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
}

TEST_MAIN(TEST(test_err_mapping), TEST(test_produce_reports),
	  TEST(test_broker_down_reports_failure), TEST(test_errors_only),
	  TEST(test_pace), TEST(test_consume))
