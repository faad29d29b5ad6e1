/* Unit tests for bus.c: the batch wire shape against protobuf-c's own
 * Batch parser, the strict iterator, error mapping, and batches sent over
 * real push/pull sockets on inproc:// and tcp://127.0.0.1. */
#include "bus.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

#include "parley/internal/v1/envelope.pb-c.h"

#include <poll.h>

/* Walk a whole buffer; returns the item count or the error. */
static int
iter_count(const void *buf, size_t len)
{
	struct bus_iter it;
	const uint8_t *item;
	size_t n;
	int rv, count = 0;

	bus_iter_init(&it, buf, len);
	while ((rv = bus_iter_next(&it, &item, &n)) == 1)
		count++;
	return rv < 0 ? rv : count;
}

static void
session_init(Parley__Internal__V1__Session *s, char *user, int64_t since)
{
	parley__internal__v1__session__init(s);
	s->user_id = user;
	s->session_id = "s-1";
	s->gateway = "tcp://10.0.0.1:7000";
	s->since_ms = since;
}

/* Three items: raw bytes, an empty item and a Session packed in place. */
static nng_msg *
make_batch(void)
{
	Parley__Internal__V1__Session s;
	struct bus_batch b;

	bus_batch_init(&b);
	bus_batch_add(&b, "hello", 5);
	bus_batch_add(&b, "", 0);
	session_init(&s, "alice", 1234567890123);
	bus_batch_add_pb(&b, &s.base);
	return bus_batch_take(&b);
}

/* The items of a batch from make_batch, checked one by one. */
static void
check_batch(const void *buf, size_t len)
{
	Parley__Internal__V1__Session *s;
	struct bus_iter it;
	const uint8_t *item = NULL;
	size_t n = 99;

	bus_iter_init(&it, buf, len);
	CHECK_EQ_INT(bus_iter_next(&it, &item, &n), 1);
	CHECK(n == 5 && memcmp(item, "hello", 5) == 0);
	CHECK_EQ_INT(bus_iter_next(&it, &item, &n), 1);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(bus_iter_next(&it, &item, &n), 1);
	s = parley__internal__v1__session__unpack(NULL, n, item);
	CHECK(s != NULL);
	if (s != NULL) {
		CHECK_EQ_STR(s->user_id, "alice");
		CHECK_EQ_STR(s->gateway, "tcp://10.0.0.1:7000");
		CHECK_EQ_INT(s->since_ms, 1234567890123);
		parley__internal__v1__session__free_unpacked(s, NULL);
	}
	CHECK_EQ_INT(bus_iter_next(&it, &item, &n), 0);
	CHECK_EQ_INT(bus_iter_next(&it, &item, &n), 0);
}

static void
test_batch_empty(void)
{
	struct bus_batch b;

	bus_batch_init(&b);
	CHECK_EQ_INT(bus_batch_bytes(&b), 0);
	CHECK(bus_batch_take(&b) == NULL);
	bus_batch_add(&b, "x", 1);
	CHECK_EQ_INT(b.count, 1);
	CHECK_EQ_INT(bus_batch_bytes(&b), 3);
	bus_batch_release(&b);
	CHECK(b.msg == NULL);
	CHECK_EQ_INT(b.count, 0);
	CHECK_EQ_INT(iter_count("", 0), 0);
}

static void
test_batch_wire_bytes(void)
{
	static const uint8_t want[] = { 0x0a, 0x02, 'h', 'i', 0x0a, 0x00 };
	struct bus_batch b;
	nng_msg *m;

	bus_batch_init(&b);
	bus_batch_add(&b, "hi", 2);
	bus_batch_add(&b, NULL, 0);
	CHECK_EQ_INT(b.count, 2);
	m = bus_batch_take(&b);
	CHECK(b.msg == NULL && b.count == 0);
	CHECK_EQ_INT(nng_msg_len(m), sizeof(want));
	CHECK(memcmp(nng_msg_body(m), want, sizeof(want)) == 0);
	nng_msg_free(m);
}

/* protobuf-c's own parser of parley.internal.v1.Batch agrees. */
static void
test_batch_is_protobuf(void)
{
	Parley__Internal__V1__Batch *pb;
	Parley__Internal__V1__Session *s;
	nng_msg *m = make_batch();

	check_batch(nng_msg_body(m), nng_msg_len(m));
	pb = parley__internal__v1__batch__unpack(NULL, nng_msg_len(m),
						 nng_msg_body(m));
	CHECK(pb != NULL);
	if (pb != NULL) {
		CHECK_EQ_INT(pb->n_items, 3);
		CHECK(pb->items[0].len == 5 &&
		      memcmp(pb->items[0].data, "hello", 5) == 0);
		CHECK_EQ_INT(pb->items[1].len, 0);
		s = parley__internal__v1__session__unpack(
			NULL, pb->items[2].len, pb->items[2].data);
		CHECK(s != NULL && strcmp(s->user_id, "alice") == 0);
		if (s != NULL)
			parley__internal__v1__session__free_unpacked(s, NULL);
		parley__internal__v1__batch__free_unpacked(pb, NULL);
	}
	nng_msg_free(m);
}

/* Many items, some with multi-byte lengths, through growth of the msg. */
static void
test_batch_many(void)
{
	static uint8_t big[70000];
	Parley__Internal__V1__Batch *pb;
	struct bus_batch b;
	nng_msg *m;
	bool same = true;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	bus_batch_init(&b);
	for (size_t i = 0; i < 1000; i++)
		bus_batch_add(&b, big, i * 37 % 300);
	bus_batch_add(&b, big, sizeof(big));
	CHECK_EQ_INT(b.count, 1001);
	m = bus_batch_take(&b);
	pb = parley__internal__v1__batch__unpack(NULL, nng_msg_len(m),
						 nng_msg_body(m));
	CHECK(pb != NULL && pb->n_items == 1001);
	for (size_t i = 0; pb != NULL && i < pb->n_items; i++) {
		size_t want = i < 1000 ? i * 37 % 300 : sizeof(big);

		same = same && pb->items[i].len == want &&
		       (want == 0 || memcmp(pb->items[i].data, big, want) == 0);
	}
	CHECK(same);
	if (pb != NULL)
		parley__internal__v1__batch__free_unpacked(pb, NULL);
	CHECK_EQ_INT(iter_count(nng_msg_body(m), nng_msg_len(m)), 1001);
	nng_msg_free(m);
}

static void
test_iter_truncated(void)
{
	nng_msg *m = make_batch();
	const uint8_t *buf = nng_msg_body(m);
	size_t len = nng_msg_len(m);
	bool ok = true;

	CHECK_EQ_INT(iter_count(buf, len), 3);
	/* Every proper prefix that does not end on an item is malformed. */
	for (size_t cut = 1; cut < len; cut++) {
		int rv = iter_count(buf, cut);

		if (cut == 7 || cut == 9)
			ok = ok && rv == (cut == 7 ? 1 : 2);
		else
			ok = ok && rv == -EBADMSG;
	}
	CHECK(ok);
	nng_msg_free(m);
}

static void
test_iter_malformed(void)
{
	/* Wrong tag (field 2), wrong wire type (varint field 1). */
	CHECK_EQ_INT(iter_count("\x12\x01x", 3), -EBADMSG);
	CHECK_EQ_INT(iter_count("\x08\x01", 2), -EBADMSG);
	/* Length beyond the end. */
	CHECK_EQ_INT(iter_count("\x0a\005abc", 5), -EBADMSG);
	/* Varint that never ends, and one longer than ten bytes. */
	CHECK_EQ_INT(iter_count("\x0a\x80\x80", 3), -EBADMSG);
	CHECK_EQ_INT(iter_count("\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"
				"\x00",
				12),
		     -EBADMSG);
	/* Ten bytes whose last one overflows 64 bits (to 0 if truncated). */
	CHECK_EQ_INT(
		iter_count("\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 11),
		-EBADMSG);
	/* A huge length that would wrap a pointer. */
	CHECK_EQ_INT(
		iter_count("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),
		-EBADMSG);
	/* A non-minimal but valid varint length (2 in two bytes) is fine. */
	CHECK_EQ_INT(iter_count("\x0a\x82\000ab", 5), 1);
}

/* After an error the iterator is at its end: the good item behind the bad
 * one is not returned. */
static void
test_iter_stops_after_error(void)
{
	static const uint8_t buf[] = { 0x0a, 0x01, 'a', 0x0b, 0x0a, 0x01, 'b' };
	static const uint8_t sentinel;
	const uint8_t *item = NULL;
	struct bus_iter it;
	size_t n = 0;
	int rv[3];

	bus_iter_init(&it, buf, sizeof(buf));
	rv[0] = bus_iter_next(&it, &item, &n);
	CHECK(item == buf + 2 && n == 1);
	item = &sentinel;
	n = 42;
	rv[1] = bus_iter_next(&it, &item, &n);
	CHECK(item == &sentinel && n == 42);
	rv[2] = bus_iter_next(&it, &item, &n);
	CHECK_EQ_INT(rv[0], 1);
	CHECK_EQ_INT(rv[1], -EBADMSG);
	CHECK_EQ_INT(rv[2], 0);
}

static void
test_err(void)
{
	CHECK_EQ_INT(bus_err(0), 0);
	CHECK_EQ_INT(bus_err(NNG_ETIMEDOUT), -ETIMEDOUT);
	CHECK_EQ_INT(bus_err(NNG_EAGAIN), -EAGAIN);
	CHECK_EQ_INT(bus_err(NNG_ECLOSED), -EBADF);
	CHECK_EQ_INT(bus_err(NNG_EADDRINUSE), -EADDRINUSE);
	CHECK_EQ_INT(bus_err(NNG_ECONNREFUSED), -ECONNREFUSED);
	CHECK_EQ_INT(bus_err(NNG_EMSGSIZE), -EMSGSIZE);
	CHECK_EQ_INT(bus_err(NNG_ENOMEM), -ENOMEM);
	CHECK_EQ_INT(bus_err(NNG_ECONNSHUT), -ESHUTDOWN);
	CHECK_EQ_INT(bus_err(NNG_ESYSERR | EMFILE), -EMFILE);
	CHECK_EQ_INT(bus_err(NNG_ETRANERR | 5), -EIO);
	CHECK_EQ_INT(bus_err(12345), -EIO);
	/* Every NNG code maps to some negative errno. */
	for (int i = NNG_EINTR; i <= NNG_ECONNSHUT; i++)
		CHECK(bus_err(i) < 0);
}

/* PARLEY_NNG_RECV_MAX sets every socket's limit (read once: this test
 * runs first). */
static void
test_recv_max_env(void)
{
	nng_socket s = NNG_SOCKET_INITIALIZER;
	size_t max = 0;

	setenv("PARLEY_NNG_RECV_MAX", "8388608", 1);
	CHECK_EQ_INT(bus_max_msg(), 8388608);
	CHECK_EQ_INT(bus_open(&s, "pull"), 0);
	CHECK_EQ_INT(nng_socket_get_size(s, NNG_OPT_RECVMAXSZ, &max), 0);
	CHECK_EQ_INT(max, 8388608);
	nng_close(s);
	setenv("PARLEY_NNG_RECV_MAX", "1", 1); /* read once: no effect now */
	CHECK_EQ_INT(bus_max_msg(), 8388608);
}

static void
test_open(void)
{
	static const char *const names[] = { "push", "pull", "req",
					     "rep",  "pub",  "sub" };
	nng_socket s = NNG_SOCKET_INITIALIZER;
	size_t max = 0;
	char *name;

	for (size_t i = 0; i < 6; i++) {
		CHECK_EQ_INT(bus_open(&s, names[i]), 0);
		CHECK_EQ_INT(nng_socket_get_size(s, NNG_OPT_RECVMAXSZ, &max),
			     0);
		CHECK_EQ_INT(max, bus_max_msg());
		if (nng_socket_get_string(s, NNG_OPT_PROTONAME, &name) == 0) {
			CHECK_EQ_STR(name, names[i]);
			nng_strfree(name);
		} else {
			CHECK(!"no protocol name");
		}
		nng_close(s);
	}
	s = (nng_socket)NNG_SOCKET_INITIALIZER;
	CHECK_EQ_INT(bus_open(&s, "pair"), -EINVAL);
	CHECK_EQ_INT(nng_socket_id(s), -1);
}

/* bus_open subscribes a sub socket to everything, so batches arrive. Pub
 * drops what it sends before the subscriber is connected: retry. */
static void
test_pub_sub(void)
{
	nng_socket pub = NNG_SOCKET_INITIALIZER, sub = NNG_SOCKET_INITIALIZER;
	nng_msg *m = NULL;
	int rv = -1;

	CHECK_EQ_INT(bus_open(&pub, "pub"), 0);
	CHECK_EQ_INT(bus_open(&sub, "sub"), 0);
	CHECK_EQ_INT(bus_set_timeouts(sub, 50, 50), 0);
	CHECK_EQ_INT(bus_listen(pub, "inproc://bus-test-pubsub"), 0);
	CHECK_EQ_INT(bus_dial(sub, "inproc://bus-test-pubsub"), 0);
	for (int i = 0; i < 100 && rv != 0; i++) {
		CHECK_EQ_INT(bus_send(pub, make_batch(), false), 0);
		rv = nng_recvmsg(sub, &m, 0);
	}
	CHECK_EQ_INT(rv, 0);
	if (rv == 0) {
		check_batch(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
	nng_close(pub);
	nng_close(sub);
}

/* A push/pull pair on url: listen on the pull side, dial from push. */
static int
open_pair(nng_socket *push, nng_socket *pull, const char *url)
{
	int rv;

	if ((rv = bus_open(pull, "pull")) != 0 ||
	    (rv = bus_open(push, "push")) != 0)
		return rv;
	if ((rv = bus_set_timeouts(*pull, 2000, 2000)) != 0 ||
	    (rv = bus_set_timeouts(*push, 2000, 2000)) != 0 ||
	    (rv = bus_listen(*pull, url)) != 0 || (rv = bus_dial(*push, url)))
		return rv;
	return 0;
}

/* Send a batch from push and check what pull receives. */
static void
send_and_check(nng_socket push, nng_socket pull)
{
	nng_msg *m = NULL;

	CHECK_EQ_INT(bus_send(push, make_batch(), false), 0);
	CHECK_EQ_INT(nng_recvmsg(pull, &m, 0), 0);
	if (m != NULL) {
		check_batch(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
}

static void
test_inproc_push_pull(void)
{
	nng_socket push = NNG_SOCKET_INITIALIZER, pull = NNG_SOCKET_INITIALIZER;
	struct pollfd pfd;
	nng_msg *m = NULL;
	int fd = -1;

	CHECK_EQ_INT(open_pair(&push, &pull, "inproc://bus-test-pair"), 0);
	CHECK_EQ_INT(bus_recv_fd(pull, &fd), 0);
	pfd.fd = fd;
	pfd.events = POLLIN;
	CHECK_EQ_INT(poll(&pfd, 1, 50), 0);
	CHECK_EQ_INT(bus_send(push, make_batch(), false), 0);
	CHECK_EQ_INT(poll(&pfd, 1, 2000), 1);
	CHECK_EQ_INT(nng_recvmsg(pull, &m, NNG_FLAG_NONBLOCK), 0);
	if (m != NULL) {
		check_batch(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
	send_and_check(push, pull);
	/* Nothing left: a non-blocking receive says so as -EAGAIN. */
	CHECK_EQ_INT(bus_err(nng_recvmsg(pull, &m, NNG_FLAG_NONBLOCK)),
		     -EAGAIN);
	nng_close(push);
	nng_close(pull);
}

static void
test_tcp_push_pull(void)
{
	nng_socket push = NNG_SOCKET_INITIALIZER, pull = NNG_SOCKET_INITIALIZER;
	nng_listener l;
	char url[64];
	int port = 0;

	CHECK_EQ_INT(bus_open(&pull, "pull"), 0);
	CHECK_EQ_INT(bus_open(&push, "push"), 0);
	CHECK_EQ_INT(bus_set_timeouts(pull, 5000, 5000), 0);
	CHECK_EQ_INT(nng_listen(pull, "tcp://127.0.0.1:0", &l, 0), 0);
	CHECK_EQ_INT(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	CHECK(port > 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	CHECK_EQ_INT(bus_dial(push, url), 0);
	send_and_check(push, pull);
	nng_close(push);
	nng_close(pull);
}

/* Dialing before anyone listens succeeds; the send completes once the
 * listener appears, because NNG keeps redialing. */
static void
test_dial_before_listen(void)
{
	nng_socket push = NNG_SOCKET_INITIALIZER, pull = NNG_SOCKET_INITIALIZER;

	CHECK_EQ_INT(bus_open(&push, "push"), 0);
	CHECK_EQ_INT(bus_open(&pull, "pull"), 0);
	CHECK_EQ_INT(bus_set_timeouts(pull, 5000, 5000), 0);
	CHECK_EQ_INT(bus_set_timeouts(push, 5000, 5000), 0);
	CHECK_EQ_INT(bus_dial(push, "tcp://127.0.0.1:27431"), 0);
	CHECK_EQ_INT(bus_listen(pull, "tcp://127.0.0.1:27431"), 0);
	send_and_check(push, pull);
	nng_close(push);
	nng_close(pull);
}

static void
test_errors_from_sockets(void)
{
	nng_socket a = NNG_SOCKET_INITIALIZER, b = NNG_SOCKET_INITIALIZER;

	CHECK_EQ_INT(bus_open(&a, "pull"), 0);
	CHECK_EQ_INT(bus_open(&b, "pull"), 0);
	CHECK_EQ_INT(bus_listen(a, "inproc://bus-test-twice"), 0);
	CHECK_EQ_INT(bus_listen(b, "inproc://bus-test-twice"), -EADDRINUSE);
	CHECK(bus_dial(a, "nope://x") < 0);
	CHECK_EQ_INT(bus_send(a, NULL, false), 0);
	/* pull cannot send: the message is freed (ASan would see a leak). */
	{
		nng_msg *m;

		CHECK_EQ_INT(nng_msg_alloc(&m, 4), 0);
		CHECK_EQ_INT(bus_send(a, m, true), -ENOTSUP);
	}
	nng_close(a);
	CHECK_EQ_INT(bus_set_timeouts(a, 1, 1), -EBADF);
	nng_close(b);
}

/* A full push with no peer: a non-blocking send says -EAGAIN. */
static void
test_send_would_block(void)
{
	nng_socket push = NNG_SOCKET_INITIALIZER;
	struct bus_batch b;

	CHECK_EQ_INT(bus_open(&push, "push"), 0);
	CHECK_EQ_INT(bus_set_timeouts(push, 1000, 1000), 0);
	bus_batch_init(&b);
	bus_batch_add(&b, "x", 1);
	CHECK_EQ_INT(bus_send(push, bus_batch_take(&b), true), -EAGAIN);
	nng_close(push);
}

TEST_MAIN(TEST(test_recv_max_env), TEST(test_batch_empty),
	  TEST(test_batch_wire_bytes), TEST(test_batch_is_protobuf),
	  TEST(test_batch_many), TEST(test_iter_truncated),
	  TEST(test_iter_malformed), TEST(test_iter_stops_after_error),
	  TEST(test_err), TEST(test_open), TEST(test_pub_sub),
	  TEST(test_inproc_push_pull), TEST(test_tcp_push_pull),
	  TEST(test_dial_before_listen), TEST(test_errors_from_sockets),
	  TEST(test_send_would_block))
