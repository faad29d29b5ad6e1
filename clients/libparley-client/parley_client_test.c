/* Unit tests of libparley-client against a scripted server on an inproc
 * NNG rep socket: retries resend the same key until a final answer, a
 * refusal is not retried, no server means -ETIMEDOUT near the deadline,
 * and many threads share one client. */
#include "parley_client.c"

#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>

#include "test.h"

#define URL "inproc://parley-client-test"

/* The server answers the first `unavailable` calls with a retryable
 * UNAVAILABLE, then Publish with seq = calls so far; with `refuse` set,
 * everything with NOT_FOUND. */
struct script {
	nng_socket sock;
	int unavailable;
	bool refuse;
	int calls;
	char keys[64][32];
	pthread_t thread;
};

static void
script_answer(struct script *s, nng_msg *m)
{
	Parley__Server__V1__Request *q = parley__server__v1__request__unpack(
		NULL, nng_msg_len(m), nng_msg_body(m));
	Parley__Server__V1__Response r = PARLEY__SERVER__V1__RESPONSE__INIT;
	Parley__Server__V1__Error e = PARLEY__SERVER__V1__ERROR__INIT;
	Parley__Server__V1__PublishResponse p =
		PARLEY__SERVER__V1__PUBLISH_RESPONSE__INIT;

	if (q && q->publish && s->calls < 64)
		snprintf(s->keys[s->calls], sizeof(s->keys[0]), "%s",
			 q->publish->idempotency_key);
	s->calls++;
	if (s->refuse || s->calls <= s->unavailable) {
		e.code = s->refuse ? PARLEY__SERVER__V1__CODE__CODE_NOT_FOUND
				   : PARLEY__SERVER__V1__CODE__CODE_UNAVAILABLE;
		e.retryable = !s->refuse;
		e.message = "scripted";
		r.error = &e;
	} else {
		p.seq = (uint64_t)s->calls;
		r.reply_case = PARLEY__SERVER__V1__RESPONSE__REPLY_PUBLISH;
		r.publish = &p;
	}
	parley__server__v1__request__free_unpacked(q, NULL);
	nng_msg_clear(m);
	nng_msg_realloc(m, parley__server__v1__response__get_packed_size(&r));
	parley__server__v1__response__pack(&r, nng_msg_body(m));
}

static void *
script_run(void *arg)
{
	struct script *s = arg;
	nng_msg *m;

	while (nng_recvmsg(s->sock, &m, 0) == 0) {
		script_answer(s, m);
		if (nng_sendmsg(s->sock, m, 0) != 0)
			nng_msg_free(m);
	}
	return NULL;
}

static void
script_start(struct script *s)
{
	CHECK_EQ_INT(nng_rep0_open(&s->sock), 0);
	CHECK_EQ_INT(nng_listen(s->sock, URL, NULL, 0), 0);
	pthread_create(&s->thread, NULL, script_run, s);
}

static void
script_stop(struct script *s)
{
	nng_close(s->sock);
	pthread_join(s->thread, NULL);
}

static int
post(struct parley_client *c, const char *key, int deadline_ms, uint64_t *seq)
{
	struct parley_post p = { .room_id = "g:1", .key = key, .body = "x" };

	return parley_publish(c, &p, deadline_ms, seq);
}

static void
test_retry_same_key(void)
{
	struct script s = { .unavailable = 2 };
	struct parley_client *c;
	uint64_t seq = 0;

	script_start(&s);
	c = parley_client_new(URL, "k");
	CHECK_EQ_INT(post(c, "key-1", 5000, &seq), 0);
	CHECK_EQ_INT(seq, 3);
	CHECK_EQ_INT(s.calls, 3);
	CHECK_EQ_STR(s.keys[0], "key-1");
	CHECK_EQ_STR(s.keys[2], "key-1");
	parley_client_free(c);
	script_stop(&s);
}

static void
test_refusal_not_retried(void)
{
	struct script s = { .refuse = true };
	struct parley_client *c;
	uint64_t seq = 0;

	script_start(&s);
	c = parley_client_new(URL, "k");
	CHECK_EQ_INT(post(c, "key-2", 5000, &seq),
		     PARLEY__SERVER__V1__CODE__CODE_NOT_FOUND);
	CHECK_EQ_INT(s.calls, 1);
	CHECK_EQ_STR(parley_strerror(PARLEY__SERVER__V1__CODE__CODE_NOT_FOUND),
		     "CODE_NOT_FOUND");
	parley_client_free(c);
	script_stop(&s);
}

static void
test_deadline_without_server(void)
{
	struct parley_client *c = parley_client_new("inproc://nobody", "k");
	int64_t t0 = client_now_ms();
	uint64_t seq = 0;

	CHECK_EQ_INT(post(c, "key-3", 300, &seq), -ETIMEDOUT);
	CHECK(client_now_ms() - t0 < 2000);
	parley_client_free(c);
	CHECK(parley_client_new(NULL, "k") == NULL);
	parley_client_free(NULL);
}

struct caller {
	struct parley_client *c;
	int rc;
};

static void *
caller_run(void *arg)
{
	struct caller *k = arg;
	uint64_t seq;

	k->rc = post(k->c, "same", 5000, &seq);
	return NULL;
}

/* Eight threads on one client (one socket, a context each). */
static void
test_threads_share_client(void)
{
	struct script s = { .unavailable = 0 };
	struct caller k[8];
	pthread_t t[8];
	struct parley_client *c;

	script_start(&s);
	c = parley_client_new(URL, "k");
	for (int i = 0; i < 8; i++) {
		k[i].c = c;
		pthread_create(&t[i], NULL, caller_run, &k[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(k[i].rc, 0);
	}
	CHECK_EQ_INT(s.calls, 8);
	parley_client_free(c);
	script_stop(&s);
}

TEST_MAIN(TEST(test_retry_same_key), TEST(test_refusal_not_retried),
	  TEST(test_deadline_without_server), TEST(test_threads_share_client))
