/* bench-floors: the component floors of the benchmark, each printing one
 * JSON line.
 *   bench-floors kafka BROKERS TOPIC RATE SECONDS
 *       open-loop produce at RATE msgs/s with acks=all, idempotence and
 *       linger.ms=1 (parley's producer settings; BENCH_LINGER_MS overrides)
 *       for the producer's CPU per message and ack latency from the
 *       intended send time; then a closed-loop flood for max acked msgs/s.
 *   bench-floors nng SECONDS
 *       NNG push -> pull over loopback TCP, 200-byte messages, one sender
 *       and one receiver thread: messages/s (the issue's ~40k/s figure). */
#include <librdkafka/rdkafka.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

static uint64_t
floors_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct hist kafka_ack;
static uint64_t kafka_done, kafka_failed;

static void
on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	uint64_t t = floors_now(), due = (uint64_t)(uintptr_t)m->_private;

	(void)rk;
	(void)opaque;
	if (m->err) {
		kafka_failed++;
		return;
	}
	kafka_done++;
	if (due)
		hist_add(&kafka_ack, t > due ? t - due : 0);
}

static double
floors_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static rd_kafka_t *
kafka_producer(const char *brokers)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[256];
	rd_kafka_t *rk;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err)) ||
	    rd_kafka_conf_set(
		    conf, "linger.ms",
		    getenv("BENCH_LINGER_MS") ? getenv("BENCH_LINGER_MS") : "1",
		    err, sizeof(err))) {
		fprintf(stderr, "bench-floors: %s\n", err);
		exit(1);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "bench-floors: %s\n", err);
		exit(1);
	}
	return rk;
}

/* Creates TOPIC with 8 partitions (the broker does not auto-create). */
static void
kafka_topic(rd_kafka_t *rk, const char *topic)
{
	char err[256];
	rd_kafka_NewTopic_t *nt =
		rd_kafka_NewTopic_new(topic, 8, 1, err, sizeof(err));
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;

	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, 15000);
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
}

static int
kafka_send(rd_kafka_t *rk, const char *topic, uint64_t i, uint64_t due)
{
	char key[32], val[100];

	snprintf(key, sizeof(key), "room-%llu", (unsigned long long)(i % 100));
	memset(val, 'x', sizeof(val));
	return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
				 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				 RD_KAFKA_V_KEY(key, strlen(key)),
				 RD_KAFKA_V_VALUE(val, sizeof(val)),
				 RD_KAFKA_V_OPAQUE((void *)(uintptr_t)due),
				 RD_KAFKA_V_END)
		       ? -1
		       : 0;
}

static int
floors_kafka(const char *brokers, const char *topic, double rate, double secs)
{
	rd_kafka_t *rk = kafka_producer(brokers);
	uint64_t t0, total = (uint64_t)(rate * secs), sent = 0, flood;
	double flood_s, cpu0, open_cpu;

	hist_init(&kafka_ack);
	kafka_topic(rk, topic);
	/* Warm up: metadata, producer id, connections. */
	kafka_send(rk, topic, 0, 0);
	rd_kafka_flush(rk, 10000);
	kafka_done = 0;
	cpu0 = floors_cpu();
	t0 = floors_now();
	while (sent < total) {
		uint64_t due = t0 + (uint64_t)((double)sent * 1e9 / rate);

		if (floors_now() < due) {
			struct timespec ts = {
				.tv_sec = (time_t)(due / 1000000000ull),
				.tv_nsec = (long)(due % 1000000000ull)
			};

			rd_kafka_poll(rk, 0);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
					NULL);
		}
		if (kafka_send(rk, topic, sent, due) == 0)
			sent++;
		rd_kafka_poll(rk, 0);
	}
	rd_kafka_flush(rk, 30000);
	open_cpu = floors_cpu() - cpu0;
	/* Closed loop: as fast as acks come back, 200k messages at most. */
	kafka_done = 0;
	t0 = floors_now();
	for (flood = 0;
	     flood < 200000 && floors_now() - t0 < (uint64_t)(secs * 1e9);) {
		if (kafka_send(rk, topic, flood, 0) == 0)
			flood++;
		else
			rd_kafka_poll(rk, 1);
	}
	rd_kafka_flush(rk, 30000);
	flood_s = (double)(floors_now() - t0) / 1e9;
	printf("{\"floor\":\"kafka\",\"rate\":%.0f,\"sent\":%llu,\"failed\":%llu,"
	       "\"producer_cpu_ms_per_msg\":%.3f,\"max_acked_per_s\":%.0f,\"ack\":",
	       rate, (unsigned long long)sent, (unsigned long long)kafka_failed,
	       sent ? open_cpu * 1e3 / (double)sent : 0.0,
	       (double)kafka_done / flood_s);
	hist_json(&kafka_ack, stdout);
	printf("}\n");
	rd_kafka_destroy(rk);
	return 0;
}

struct nng_ctx_arg {
	nng_socket s;
	uint64_t got;
	uint64_t until;
};

static volatile int nng_stop;

static void *
nng_receiver(void *arg)
{
	struct nng_ctx_arg *a = arg;

	while (!nng_stop) {
		nng_msg *m;

		if (nng_recvmsg(a->s, &m, 0) != 0)
			continue; /* the receive timeout: look at nng_stop */
		nng_msg_free(m);
		a->got++;
	}
	return NULL;
}

static int
floors_nng(double secs)
{
	nng_socket push, pull;
	struct nng_ctx_arg a = { 0 };
	pthread_t th;
	char url[64];
	uint64_t t0, sent = 0;
	double el;
	int port = 20000 + (int)(getpid() % 20000);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	if (nng_pull0_open(&pull) || nng_listen(pull, url, NULL, 0) ||
	    nng_push0_open(&push) || nng_dial(push, url, NULL, 0)) {
		fprintf(stderr, "bench-floors: nng setup failed on %s\n", url);
		return 1;
	}
	/* Timeouts so that neither side can block the tool forever. */
	nng_socket_set_ms(pull, NNG_OPT_RECVTIMEO, 200);
	nng_socket_set_ms(push, NNG_OPT_SENDTIMEO, 1000);
	a.s = pull;
	pthread_create(&th, NULL, nng_receiver, &a);
	t0 = floors_now();
	while (floors_now() - t0 < (uint64_t)(secs * 1e9)) {
		nng_msg *m;

		nng_msg_alloc(&m, 200);
		memset(nng_msg_body(m), 'x', 200);
		if (nng_sendmsg(push, m, 0) != 0) {
			nng_msg_free(m);
			break;
		}
		sent++;
	}
	usleep(200000);
	el = (double)(floors_now() - t0) / 1e9;
	nng_stop = 1;
	pthread_join(th, NULL);
	printf("{\"floor\":\"nng\",\"sent\":%llu,\"received\":%llu,"
	       "\"msgs_per_s\":%.0f}\n",
	       (unsigned long long)sent, (unsigned long long)a.got,
	       (double)a.got / el);
	nng_close(push);
	nng_close(pull);
	return 0;
}

static double
floors_num(const char *s)
{
	return strtod(s, NULL);
}

int
main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "kafka"))
		return floors_kafka(argv[2], argv[3], floors_num(argv[4]),
				    floors_num(argv[5]));
	if (argc == 3 && !strcmp(argv[1], "nng"))
		return floors_nng(floors_num(argv[2]));
	fputs("usage: bench-floors kafka BROKERS TOPIC RATE SECONDS | nng SECONDS\n",
	      stderr);
	return 2;
}
