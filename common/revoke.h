/* Token revocation by a per-user epoch: every token of a user issued
 * before the epoch (iat < epoch) is refused. Epochs live in a compacted
 * Kafka topic, <log topic>.revocations: key = user id, value = the epoch
 * in unix seconds as decimal text; the newest record of a user wins. */
#ifndef PARLEY_REVOKE_H
#define PARLEY_REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The revocations topic of a log topic (heap; the caller frees it). */
char *revoke_topic(const char *log_topic);

/* A record's value as an epoch: 1..15 decimal digits, nothing else. */
bool revoke_parse(const void *value, size_t len, int64_t *epoch);

/* True when a token with these claims is revoked by epoch (0: none). A
 * token without "iat" cannot prove it is newer, so any epoch revokes it. */
bool revoke_applies(int64_t epoch, bool has_iat, int64_t iat);

/* Create the topic if needed and write (user, epoch), waiting until Kafka
 * acknowledged it (acks=all, idempotent) or timeout_ms passed. Extra
 * librdkafka properties come from PARLEY_KAFKA_<NAME>. 0 or -errno. */
int revoke_publish(const char *brokers, const char *topic, const char *user,
		   int64_t epoch, int timeout_ms);

/*
 * A reader: a thread that reads the whole topic from the beginning, then
 * follows it, calling on_epoch(ctx, user, epoch) for each valid record
 * (from that thread). Heap: revoke_reader_new / revoke_reader_free (stops
 * and joins the thread; NULL is a no-op). The topic is created if needed;
 * while Kafka is unreachable the reader keeps trying.
 */
struct revoke_reader;

struct revoke_reader *
revoke_reader_new(const char *brokers, const char *topic,
		  void (*on_epoch)(void *ctx, const char *user, int64_t epoch),
		  void *ctx);
void revoke_reader_free(struct revoke_reader *r);

#endif
