/* parley-bench: an open-loop WebSocket load generator for parley v1,
 * Centrifugo's protobuf client protocol and the raw fan-out floor. One
 * thread, one epoll set, raw non-blocking sockets; see README.md here. */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"
#include "pb.h"

#define BENCH_MAX_STEPS 64
#define BENCH_MAX_URLS	8
#define BENCH_ACK_RING	65536
#define BENCH_HDR_LEN	42 /* "PB" + 8 + 4 + 12 + 16 hex digits */

enum bench_proto { PROTO_PARLEY, PROTO_CENTRIFUGO, PROTO_RAW };
enum conn_role { ROLE_RECV, ROLE_SEND };
enum conn_state {
	CS_IDLE,       /* not opened yet, or waiting to reconnect */
	CS_CONNECTING, /* TCP connect in flight */
	CS_UPGRADING,  /* HTTP upgrade sent, waiting for 101 */
	CS_AUTHING,    /* waiting for Welcome / ConnectResult */
	CS_SETUP,      /* creating the room / subscribing */
	CS_READY,
	CS_DEAD, /* closed for good */
};

struct url {
	char host[64];
	int port;
	char path[256];
};

struct conn {
	int fd;
	uint8_t state;
	uint8_t role;
	bool pong; /* Centrifugo asked for pongs to its pings */
	uint32_t stream;
	uint32_t idx; /* receiver index within its stream */
	uint32_t next_id;
	uint32_t pending; /* request id of the setup step awaited */
	uint32_t add_off; /* members added so far (parley group setup) */
	uint32_t attempts;
	uint64_t retry_at;
	uint64_t opened_at;
	uint8_t *in; /* an incomplete frame kept between reads */
	uint32_t in_len, in_cap;
	uint8_t *msg; /* a fragmented message being reassembled */
	uint32_t msg_len, msg_cap;
	uint8_t *out; /* bytes the socket did not take yet */
	uint32_t out_len, out_off, out_cap;
	int32_t step; /* receiver: step of the dedup bitmap */
	uint64_t *bits;
	uint64_t *sbits; /* which of bits came by Sync (S5 only) */
	uint32_t bits_words;
	uint64_t *ack_t;   /* sender: intended send time by request id */
	uint8_t url;	   /* index into cfg.urls of the current attempt */
	uint64_t down_at;  /* when a ready connection dropped (S5), 0 if up */
	uint64_t last_seq; /* receiver: highest room seq seen (parley) */
	uint32_t sync_id;  /* request id of the Sync in flight */
};

struct stream {
	char room[400];
};

struct step_stats {
	struct hist lat;
	uint64_t recv, dup, late;
	uint64_t synced;  /* first copies that came by Sync after a reconnect */
	uint64_t overlap; /* Sync copies of messages already seen live */
};

struct bench_cfg {
	enum bench_proto proto;
	struct url urls[BENCH_MAX_URLS];
	int n_urls;
	bool send, recv;
	bool dm;
	uint32_t streams;
	uint32_t members; /* receivers per stream in all processes */
	uint32_t recv_lo, recv_hi;
	uint32_t idle; /* idle connections (S3) instead of streams */
	double rate, duration, drain_s;
	int step;
	size_t size;
	const char *secret, *prefix, *out, *ready_file;
	int n_src;
	int max_opening;
	double setup_timeout_s;
	bool reconnect;
};

struct bench {
	struct bench_cfg cfg;
	int ep, tfd, sfd;
	struct conn *conns;
	uint32_t n_conns;
	uint32_t n_send; /* conns[0..n_send) are the senders */
	struct stream *streams;
	uint32_t opening, ready, open_cursor;
	uint64_t t_begin, t_ready, t0, t_end;
	uint64_t next_g; /* next message in the global schedule */
	bool sending, done;
	/* sender side */
	uint64_t sent, acked, errors, send_fail;
	struct hist ack, lag;
	/* receiver side */
	struct step_stats *steps[BENCH_MAX_STEPS];
	uint64_t bad, closes, conn_fail, pings, setup_errors;
	uint64_t dropped, resynced;
	struct hist resync; /* drop to back-and-synced, per connection */
	struct pbuf scratch, frame;
	uint8_t *rbuf;
	size_t rbuf_cap;
};

uint64_t now_ns(void);

/* conn.c: sockets, the HTTP upgrade and WebSocket framing. */
int conn_open(struct bench *b, struct conn *c, uint32_t i);
void conn_on_event(struct bench *b, struct conn *c, uint32_t events);
/* Sends one binary frame carrying [p, p+n). 0, or -EPIPE when closed. */
int conn_send(struct bench *b, struct conn *c, const void *p, size_t n);
void conn_close(struct bench *b, struct conn *c, const char *why);

/* proto.c: the three protocol adapters. */
void proto_on_open(struct bench *b, struct conn *c);
void proto_on_message(struct bench *b, struct conn *c, const uint8_t *p,
		      size_t n);
int proto_send_payload(struct bench *b, struct conn *c, uint32_t stream,
		       const uint8_t *body, size_t n, uint64_t t_int);
const char *proto_subprotocol(enum bench_proto p);
/* The upgrade path of connection c (with its token when the protocol
 * takes it there) into out. */
void proto_path(struct bench *b, struct conn *c, const struct url *u, char *out,
		size_t cap);
void proto_user(struct bench *b, const struct conn *c, char *out, size_t cap);

/* bench.c */
void bench_ready(struct bench *b, struct conn *c);
void bench_deliver(struct bench *b, struct conn *c, const uint8_t *body,
		   size_t n, bool synced);
/* A reconnected receiver is back and has synced what it missed. */
void bench_resynced(struct bench *b, struct conn *c);
void bench_acked(struct bench *b, struct conn *c, uint32_t id, bool ok);

#endif
