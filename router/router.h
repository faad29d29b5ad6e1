/* What the router's files share: the configuration, the router state, and
 * the functions of each concern (ingress, owner fold, presence replica,
 * fan-out to gateways). One thread runs everything from router_run. */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "fold.h"
#include "kafka.h"
#include "map.h"
#include "metrics.h"
#include "parley/internal/v1/envelope.pb-c.h"
#include "parley/log/v1/record.pb-c.h"

#define ROUTER_MAX_PARTITIONS 1024

struct router_config {
	const char *brokers;
	const char *topic;
	int partitions;
	const char *group;
	const char *listen;	  /* ingress: gateways push commands here */
	const char *presence_url; /* presence request/reply */
	const char *presence_pub; /* presence publications */
	int delivery_timeout_ms;
	int max_body;
	int max_members;
	int typing_ttl_ms;	 /* typing stops by itself after this */
	int presence_room_limit; /* rooms this small share presence, reads */
};

/* One partition this router folds. live_from: records below it were
 * handled before (by us or a predecessor) and are folded silently. */
struct router_part {
	bool owned;
	struct fold *fold;
	int64_t live_from;
	struct map user_rooms; /* online.c: user -> rooms here */
	struct map online;     /* online.c: room -> gateway -> users */
};

/* The presence replica: user -> gateways holding their sessions. */
struct replica {
	nng_socket req;
	nng_socket sub;
	uint64_t epoch;
	uint64_t version;
	bool stale;  /* a snapshot is due */
	bool asking; /* a snapshot request is out */
	int64_t asked_ms;
	int64_t next_try_ms;
	struct map sessions; /* gateway "\n" session_id -> user (char *) */
	struct map users;    /* user -> struct replica_user * */
	/* Told when a user gets its first session on a gateway (up) or loses
	 * its last one there, and before a snapshot replaces everything. */
	void (*on_change)(void *ctx, const char *user, const char *gateway,
			  bool up);
	void (*on_reset)(void *ctx);
	/* A user's coalesced online state changed (from presence). */
	void (*on_user)(void *ctx, const char *user, bool online,
			int64_t last_seen_ms);
	void *ctx;
};

struct router {
	struct router_config cfg;
	nng_socket ingress;
	struct kafka_producer *producer;
	struct kafka_consumer *consumer;
	struct router_part parts[ROUTER_MAX_PARTITIONS];
	struct replica replica;
	struct map gateways; /* url -> struct fanout_gw * */
	struct router_metrics *m;
	int n_partitions;  /* of the topic, from broker metadata */
	struct map typing; /* ephemeral.c: room "\n" user -> expiry */
	int64_t next_tick_ms;
	int64_t next_lag_ms;
	const char *fan_user; /* owner.c: the one user of a single fan-out */
};

/* Counters exported on /metrics (names in docs/OPERATIONS.md). */
struct router_metrics {
	struct metric *commands, *records, *acks, *duplicates, *rejected;
	struct metric *deliveries, *batches, *dropped, *produce_errors;
	struct metric *ack_latency, *partitions, *fanout_steps;
	struct metric *batch_size, *lag;
};

/* main.c fills cfg; router_run owns everything else until a stop signal.
 * Returns 0 on a clean stop, -errno when start-up failed. */
int router_run(const struct router_config *cfg);

/* owner.c: set the consumer lag gauge (records of owned partitions past
 * our position, from librdkafka's cached high watermarks). */
void owner_lag(struct router *r);

/* ingress.c: commands from gateways into the log. */
int ingress_open(struct router *r);
/* Receive and handle waiting command batches; true if some are left. */
bool ingress_drain(struct router *r);
/* Delivery report of a produced record (kafka callback). */
void ingress_on_delivery(void *ctx, const struct kafka_delivery *d);

/* owner.c: fold the owned partitions, acknowledge, fan out. */
int owner_open(struct router *r);
/* Fold waiting records; true if some are left for the next turn. */
bool owner_drain(struct router *r);
void owner_close(struct router *r);

/* replica.c: the presence replica. */
int replica_open(struct replica *rp, const char *req_url, const char *pub_url);
void replica_close(struct replica *rp);
/* Apply waiting publications; take a snapshot when one is due. */
void replica_drain(struct replica *rp, int64_t now_ms);
/* Call fn for each gateway holding a session of user. */
void replica_each_gateway(struct replica *rp, const char *user,
			  void (*fn)(void *ctx, const char *gateway),
			  void *ctx);

/* online.c: which members of each folded room are online where. */
void online_init(struct router_part *p);
void online_release(struct router_part *p);
void online_member_add(struct router *r, struct router_part *p,
		       const char *room, const char *user);
void online_member_del(struct router *r, struct router_part *p,
		       const char *room, const char *user);
/* A user's first session on gateway appeared (up) or its last went. */
void online_presence(struct router *r, const char *user, const char *gateway,
		     bool up);
/* Forget every online member (a presence snapshot follows). */
void online_reset(struct router *r);
/* Call fn once per gateway holding online members of room. */
void online_each(struct router_part *p, const char *room,
		 void (*fn)(void *ctx, const char *gateway, char **users,
			    size_t n),
		 void *ctx);

/* The rooms of this partition user is a member of; false when none. */
bool online_user_rooms(struct router_part *p, const char *user, char ***rooms,
		       size_t *n);

/* ephemeral.c: typing, receipt summaries, room presence (no log). */
void eph_init(struct router *r);
void eph_release(struct router *r);
/* A Typing/GetReceipts/GetRoomPresence command (sent to every router). */
void eph_command(struct router *r, const Parley__Internal__V1__Command *c);
/* Stop typing indicators that were not refreshed. */
void eph_tick(struct router *r, int64_t now_ms);
void eph_user_presence(struct router *r, const char *user, bool online,
		       int64_t last_seen_ms);

/* fanout.c: one batch per gateway per loop turn. */
/* Queue a delivery for gateway; frame is an encoded ServerFrame. */
void fanout_add(struct router *r, const char *gateway,
		const Parley__Internal__V1__Delivery *d);
/* Send every gateway's batch. */
void fanout_flush(struct router *r);
void fanout_close(struct router *r);

/* Reply to one session (ack, error): encodes f and queues it. */
void router_reply(struct router *r, const char *gateway, const char *session_id,
		  const Parley__V1__ServerFrame *f);
/* Error reply to one session. */
void router_error(struct router *r, const char *gateway, const char *session_id,
		  uint64_t request_id, int code, const char *msg,
		  bool retryable, const char *room_id,
		  const char *client_msg_id);

int64_t router_now_ms(void);

#endif
