/* NNG helpers shared by every service: batching many envelopes into one
 * NNG message (nng 1.5.2 costs ~40 us of CPU per message, so one message
 * per event would not scale), socket set-up, and NNG errors as -errno.
 *
 * Batch wire shape: the encoding of parley.internal.v1.Batch, i.e. each
 * item is field 1, length-delimited (tag 0x0a, varint length, bytes). */
#ifndef PARLEY_BUS_H
#define PARLEY_BUS_H

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest NNG message any parley socket accepts (NNG_OPT_RECVMAXSZ) unless
 * PARLEY_NNG_RECV_MAX says otherwise (docs/CONFIG.md). A peer that sends a
 * bigger message loses its connection (NNG drops the pipe), so a
 * compromised or buggy peer cannot make a process allocate more. */
#define BUS_MAX_MSG (16u << 20)
/* Smallest accepted PARLEY_NNG_RECV_MAX: a full-size message (body limit
 * 64 KiB, frame limit up to 16 MiB) must still fit in one envelope. */
#define BUS_MAX_MSG_MIN (1u << 20)

/* A batch under construction. Embedded: bus_batch_init/bus_batch_release. */
struct bus_batch {
	nng_msg *msg; /* NULL while empty */
	size_t count;
};

void bus_batch_init(struct bus_batch *b);
/* Free whatever the batch still holds. */
void bus_batch_release(struct bus_batch *b);
/* Append one encoded item (copied). */
void bus_batch_add(struct bus_batch *b, const void *item, size_t len);
/* Append one protobuf message, packed straight into the batch. */
void bus_batch_add_pb(struct bus_batch *b, const ProtobufCMessage *m);
/* Bytes in the batch so far. */
size_t bus_batch_bytes(const struct bus_batch *b);
/* Hand the NNG message over to the caller (NULL when empty) and reset the
 * batch. The caller owns the result. */
nng_msg *bus_batch_take(struct bus_batch *b);

/* Walks the items of a received batch without copying. */
struct bus_iter {
	const uint8_t *p;
	const uint8_t *end;
};

void bus_iter_init(struct bus_iter *it, const void *buf, size_t len);
/* Next item: returns 1 and sets item/len, 0 at the end, -EBADMSG when the
 * batch is malformed (the rest is then skipped). */
int bus_iter_next(struct bus_iter *it, const uint8_t **item, size_t *len);

/* NNG error code to negative errno (NNG_ETIMEDOUT -> -ETIMEDOUT, ...;
 * NNG_ECLOSED -> -EBADF, NNG_ESTATE -> -EPROTO, unknown -> -EIO). */
int bus_err(int nng_rv);

/* The NNG_OPT_RECVMAXSZ every socket gets: PARLEY_NNG_RECV_MAX (bytes,
 * BUS_MAX_MSG_MIN to 1 GiB), default BUS_MAX_MSG. Read once; a malformed
 * value stops the process at start-up naming the variable. */
size_t bus_max_msg(void);
/* Open a socket of the given protocol ("push", "pull", "req", "rep",
 * "pub", "sub") with NNG_OPT_RECVMAXSZ set to bus_max_msg(). A "sub" socket
 * comes subscribed to everything (batches all start alike, so topics could
 * not tell them apart). 0 or -errno (-EINVAL for an unknown protocol). */
int bus_open(nng_socket *s, const char *proto);
/* Listen on url; logs and returns -errno on failure. */
int bus_listen(nng_socket s, const char *url);
/* Dial url without blocking: NNG reconnects by itself in the background. */
int bus_dial(nng_socket s, const char *url);
/* Send msg; ownership passes to NNG on success and the message is freed on
 * failure, so the caller never keeps it. nonblock: NNG_FLAG_NONBLOCK.
 * Returns 0 or -errno (-EAGAIN when it would block). msg NULL (an empty
 * batch taken) sends nothing and returns 0. */
int bus_send(nng_socket s, nng_msg *msg, bool nonblock);
/* File descriptor that polls readable when the socket can receive. */
int bus_recv_fd(nng_socket s, int *fd);
/* Set send and receive timeouts in milliseconds (-1 = forever). */
int bus_set_timeouts(nng_socket s, int send_ms, int recv_ms);

#endif
