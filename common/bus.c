/* NNG helpers: batches in the wire shape of parley.internal.v1.Batch built
 * in place inside one nng_msg, a strict iterator over received batches,
 * socket set-up, and the one place NNG errors become -errno. */
#include "bus.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Field 1, wire type 2 (length-delimited). */
#define BUS_ITEM_TAG 0x0a
/* Tag plus the longest varint of a 64-bit length. */
#define BUS_ITEM_HEAD_MAX 11
#define BUS_VARINT_MAX	  10

/* ---- batches ---- */

static void
bus_nng_oom(const char *what, int rv)
{
	fprintf(stderr, "bus: %s failed: %s\n", what, nng_strerror(rv));
	abort();
}

/* Make room for extra more bytes. nng 1.5.2 grows a message to exactly
 * the size asked for, so appending item after item would copy the whole
 * batch each time; doubling keeps appends amortised O(1). */
static void
bus_batch_reserve(struct bus_batch *b, size_t extra)
{
	size_t need, cap;
	int rv;

	if (b->msg == NULL && (rv = nng_msg_alloc(&b->msg, 0)) != 0)
		bus_nng_oom("nng_msg_alloc", rv);
	need = nng_msg_len(b->msg) + extra;
	cap = nng_msg_capacity(b->msg);
	if (need <= cap)
		return;
	cap = cap * 2 > need ? cap * 2 : need;
	if (cap < 256)
		cap = 256;
	if ((rv = nng_msg_reserve(b->msg, cap)) != 0)
		bus_nng_oom("nng_msg_reserve", rv);
}

/* Tag and varint length of an item into head; returns its size. */
static size_t
bus_item_head(uint8_t head[BUS_ITEM_HEAD_MAX], size_t len)
{
	size_t n = 0;
	uint64_t v = len;

	head[n++] = BUS_ITEM_TAG;
	while (v >= 0x80) {
		head[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	head[n++] = (uint8_t)v;
	return n;
}

/* Append the item head and len more bytes; returns where they go. */
static uint8_t *
bus_batch_grow(struct bus_batch *b, size_t len)
{
	uint8_t head[BUS_ITEM_HEAD_MAX];
	size_t n = bus_item_head(head, len), old;
	int rv;

	bus_batch_reserve(b, n + len);
	if ((rv = nng_msg_append(b->msg, head, n)) != 0)
		bus_nng_oom("nng_msg_append", rv);
	old = nng_msg_len(b->msg);
	if ((rv = nng_msg_realloc(b->msg, old + len)) != 0)
		bus_nng_oom("nng_msg_realloc", rv);
	b->count++;
	return (uint8_t *)nng_msg_body(b->msg) + old;
}

void
bus_batch_init(struct bus_batch *b)
{
	b->msg = NULL;
	b->count = 0;
}

void
bus_batch_release(struct bus_batch *b)
{
	if (b->msg != NULL)
		nng_msg_free(b->msg);
	bus_batch_init(b);
}

void
bus_batch_add(struct bus_batch *b, const void *item, size_t len)
{
	uint8_t *dst = bus_batch_grow(b, len);

	if (len > 0)
		memcpy(dst, item, len);
}

void
bus_batch_add_pb(struct bus_batch *b, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *dst = bus_batch_grow(b, len);

	if (protobuf_c_message_pack(m, dst) != len) {
		fprintf(stderr, "bus: %s packed to an unexpected size\n",
			m->descriptor->name);
		abort();
	}
}

size_t
bus_batch_bytes(const struct bus_batch *b)
{
	return b->msg != NULL ? nng_msg_len(b->msg) : 0;
}

nng_msg *
bus_batch_take(struct bus_batch *b)
{
	nng_msg *m = b->msg;

	bus_batch_init(b);
	return m;
}

/* ---- reading batches ---- */

void
bus_iter_init(struct bus_iter *it, const void *buf, size_t len)
{
	it->p = buf;
	it->end = it->p + len;
}

/* A varint of at most 10 bytes whose value fits in 64 bits. */
static int
bus_varint(struct bus_iter *it, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < BUS_VARINT_MAX && it->p < it->end; i++) {
		uint8_t byte = *it->p++;

		if (i == BUS_VARINT_MAX - 1 && byte > 1)
			return -EBADMSG;
		v |= (uint64_t)(byte & 0x7f) << (7 * i);
		if (!(byte & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -EBADMSG;
}

static int
bus_iter_fail(struct bus_iter *it)
{
	it->p = it->end;
	return -EBADMSG;
}

int
bus_iter_next(struct bus_iter *it, const uint8_t **item, size_t *len)
{
	uint64_t n;

	if (it->p >= it->end)
		return 0;
	if (*it->p++ != BUS_ITEM_TAG || bus_varint(it, &n) != 0 ||
	    n > (uint64_t)(it->end - it->p))
		return bus_iter_fail(it);
	*item = it->p;
	*len = (size_t)n;
	it->p += n;
	return 1;
}

/* ---- errors ---- */

static const int bus_errno_map[][2] = {
	{ NNG_EINTR, EINTR },
	{ NNG_ENOMEM, ENOMEM },
	{ NNG_EINVAL, EINVAL },
	{ NNG_EBUSY, EBUSY },
	{ NNG_ETIMEDOUT, ETIMEDOUT },
	{ NNG_ECONNREFUSED, ECONNREFUSED },
	{ NNG_ECLOSED, EBADF },
	{ NNG_EAGAIN, EAGAIN },
	{ NNG_ENOTSUP, ENOTSUP },
	{ NNG_EADDRINUSE, EADDRINUSE },
	{ NNG_ESTATE, EPROTO },
	{ NNG_ENOENT, ENOENT },
	{ NNG_EPROTO, EPROTO },
	{ NNG_EUNREACHABLE, EHOSTUNREACH },
	{ NNG_EADDRINVAL, EADDRNOTAVAIL },
	{ NNG_EPERM, EPERM },
	{ NNG_EMSGSIZE, EMSGSIZE },
	{ NNG_ECONNABORTED, ECONNABORTED },
	{ NNG_ECONNRESET, ECONNRESET },
	{ NNG_ECANCELED, ECANCELED },
	{ NNG_ENOFILES, EMFILE },
	{ NNG_ENOSPC, ENOSPC },
	{ NNG_EEXIST, EEXIST },
	{ NNG_EREADONLY, EROFS },
	{ NNG_EWRITEONLY, EACCES },
	{ NNG_ECRYPTO, EKEYREJECTED },
	{ NNG_EPEERAUTH, EACCES },
	{ NNG_ENOARG, EINVAL },
	{ NNG_EAMBIGUOUS, EINVAL },
	{ NNG_EBADTYPE, EINVAL },
	{ NNG_ECONNSHUT, ESHUTDOWN },
};

/* System errors (NNG_ESYSERR) keep their errno. */
int
bus_err(int nng_rv)
{
	size_t n = sizeof(bus_errno_map) / sizeof(bus_errno_map[0]);

	if (nng_rv == 0)
		return 0;
	if ((nng_rv & NNG_ESYSERR) && (nng_rv & ~NNG_ESYSERR) != 0)
		return -(nng_rv & ~NNG_ESYSERR);
	for (size_t i = 0; i < n; i++) {
		if (bus_errno_map[i][0] == nng_rv)
			return -bus_errno_map[i][1];
	}
	return -EIO;
}

/* ---- sockets ---- */

static const struct {
	const char *name;
	int (*open)(nng_socket *);
} bus_protocols[] = {
	{ "push", nng_push0_open }, { "pull", nng_pull0_open },
	{ "req", nng_req0_open },   { "rep", nng_rep0_open },
	{ "pub", nng_pub0_open },   { "sub", nng_sub0_open },
};

/* Sets up the socket after opening: every socket gets the size limit, and
 * a sub socket subscribes to everything, since every batch starts with
 * the same bytes and topics could not tell them apart. */
size_t
bus_max_msg(void)
{
	static size_t max;

	/* Sockets are opened at start-up, before any thread could race here. */
	if (max == 0)
		max = (size_t)config_int("PARLEY_NNG_RECV_MAX", BUS_MAX_MSG,
					 BUS_MAX_MSG_MIN, 1 << 30);
	return max;
}

static int
bus_setup(nng_socket s, const char *proto)
{
	int rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, bus_max_msg());

	if (rv == 0 && strcmp(proto, "sub") == 0)
		rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	return rv;
}

int
bus_open(nng_socket *s, const char *proto)
{
	size_t n = sizeof(bus_protocols) / sizeof(bus_protocols[0]);
	nng_socket sock;
	int rv;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(proto, bus_protocols[i].name) != 0)
			continue;
		if ((rv = bus_protocols[i].open(&sock)) != 0)
			return bus_err(rv);
		if ((rv = bus_setup(sock, proto)) != 0) {
			nng_close(sock);
			return bus_err(rv);
		}
		*s = sock;
		return 0;
	}
	return -EINVAL;
}

/* TLS for tls+tcp:// URLs (docs/SECURITY.md): PARLEY_NNG_TLS_CA is the
 * PEM file of the CA that signed every peer's certificate;
 * PARLEY_NNG_TLS_CERT_KEY a PEM file with this process's certificate and
 * key. Both sides verify the other when both are set. Returns an NNG
 * error; the paths are logged, never the key. */
static int
bus_tls_set(const char *url, int (*set_str)(void *, const char *, const char *),
	    int (*set_int)(void *, const char *, int), void *ep)
{
	const char *ca = getenv("PARLEY_NNG_TLS_CA");
	const char *ck = getenv("PARLEY_NNG_TLS_CERT_KEY");
	int rv = 0;

	if (strncmp(url, "tls+", 4) != 0)
		return 0;
	if (ca && *ca && (rv = set_str(ep, NNG_OPT_TLS_CA_FILE, ca)) == 0)
		rv = set_int(ep, NNG_OPT_TLS_AUTH_MODE,
			     NNG_TLS_AUTH_MODE_REQUIRED);
	if (rv == 0 && ck && *ck)
		rv = set_str(ep, NNG_OPT_TLS_CERT_KEY_FILE, ck);
	if (rv != 0)
		LOG_ERROR("bus.tls",
			  "%s: TLS setup failed (PARLEY_NNG_TLS_CA=%s, "
			  "PARLEY_NNG_TLS_CERT_KEY=%s): %s",
			  url, ca ? ca : "", ck ? ck : "", nng_strerror(rv));
	return rv;
}

static int
bus_listener_str(void *ep, const char *o, const char *v)
{
	return nng_listener_set_string(*(nng_listener *)ep, o, v);
}

static int
bus_listener_int(void *ep, const char *o, int v)
{
	return nng_listener_set_int(*(nng_listener *)ep, o, v);
}

static int
bus_dialer_str(void *ep, const char *o, const char *v)
{
	return nng_dialer_set_string(*(nng_dialer *)ep, o, v);
}

static int
bus_dialer_int(void *ep, const char *o, int v)
{
	return nng_dialer_set_int(*(nng_dialer *)ep, o, v);
}

int
bus_listen(nng_socket s, const char *url)
{
	nng_listener l = NNG_LISTENER_INITIALIZER;
	int rv = nng_listener_create(&l, s, url);

	if (rv == 0 && (rv = bus_tls_set(url, bus_listener_str,
					 bus_listener_int, &l)) == 0)
		rv = nng_listener_start(l, 0);
	if (rv != 0 && nng_listener_id(l) > 0)
		nng_listener_close(l);
	if (rv != 0)
		LOG_ERROR("bus.listen", "cannot listen on %s: %s", url,
			  nng_strerror(rv));
	return bus_err(rv);
}

/* Fails only on a malformed URL or an unknown scheme; an absent peer is
 * retried by NNG in the background. */
int
bus_dial(nng_socket s, const char *url)
{
	nng_dialer d = NNG_DIALER_INITIALIZER;
	int rv = nng_dialer_create(&d, s, url);

	if (rv == 0 &&
	    (rv = bus_tls_set(url, bus_dialer_str, bus_dialer_int, &d)) == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv != 0 && nng_dialer_id(d) > 0)
		nng_dialer_close(d);
	if (rv != 0)
		LOG_ERROR("bus.dial", "cannot dial %s: %s", url,
			  nng_strerror(rv));
	return bus_err(rv);
}

int
bus_send(nng_socket s, nng_msg *msg, bool nonblock)
{
	int rv;

	if (msg == NULL)
		return 0;
	rv = nng_sendmsg(s, msg, nonblock ? NNG_FLAG_NONBLOCK : 0);
	if (rv != 0)
		nng_msg_free(msg);
	return bus_err(rv);
}

int
bus_recv_fd(nng_socket s, int *fd)
{
	int v, rv = nng_socket_get_int(s, NNG_OPT_RECVFD, &v);

	if (rv != 0)
		return bus_err(rv);
	*fd = v;
	return 0;
}

int
bus_set_timeouts(nng_socket s, int send_ms, int recv_ms)
{
	int rv = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, send_ms);

	if (rv == 0)
		rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, recv_ms);
	return bus_err(rv);
}
