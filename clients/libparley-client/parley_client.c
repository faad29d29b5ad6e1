/* libparley-client (see parley_client.h): one NNG req socket, a context
 * per call, retries of the same bytes until the deadline. Depends only on
 * NNG and protobuf-c, so other teams can build it alone. */
#include "parley_client.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIENT_MAX_MSG	   (16u << 20)
#define CLIENT_BACKOFF_MS  50
#define CLIENT_BACKOFF_MAX 1000

struct parley_client {
	nng_socket sock;
	char *key;
};

static int
client_err(int nng_rv)
{
	switch (nng_rv) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_ECLOSED:
		return -EBADF;
	default:
		return -EIO;
	}
}

struct parley_client *
parley_client_new(const char *url, const char *api_key)
{
	struct parley_client *c;

	if (url == NULL || api_key == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->key = strdup(api_key);
	if (c->key == NULL || nng_req0_open(&c->sock) != 0) {
		free(c->key);
		free(c);
		return NULL;
	}
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, CLIENT_MAX_MSG);
	if (nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		nng_close(c->sock);
		free(c->key);
		free(c);
		return NULL;
	}
	return c;
}

void
parley_client_free(struct parley_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
	free(c->key);
	free(c);
}

void
parley_response_free(Parley__Server__V1__Response *resp)
{
	if (resp)
		parley__server__v1__response__free_unpacked(resp, NULL);
}

static int64_t
client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
client_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* One request and its reply on a fresh context; 0 with *reply or -errno. */
static int
client_ask(struct parley_client *c, const Parley__Server__V1__Request *req,
	   int timeout_ms, nng_msg **reply)
{
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *m;
	int rc;

	if (nng_msg_alloc(
		    &m, parley__server__v1__request__get_packed_size(req)) != 0)
		return -ENOMEM;
	parley__server__v1__request__pack(req, nng_msg_body(m));
	if ((rc = client_err(nng_ctx_open(&ctx, c->sock))) < 0) {
		nng_msg_free(m);
		return rc;
	}
	if ((rc = client_err(nng_aio_alloc(&aio, NULL, NULL))) < 0) {
		nng_ctx_close(ctx);
		nng_msg_free(m);
		return rc;
	}
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rc = client_err(nng_aio_result(aio))) < 0) {
		nng_msg_free(m);
	} else {
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if ((rc = client_err(nng_aio_result(aio))) == 0)
			*reply = nng_aio_get_msg(aio);
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return rc;
}

/* One attempt: 0 with *resp (any answer), or -errno. */
static int
client_attempt(struct parley_client *c, Parley__Server__V1__Request *req,
	       int timeout_ms, Parley__Server__V1__Response **resp)
{
	nng_msg *m = NULL;
	int rc;

	req->deadline_ms = (uint32_t)timeout_ms;
	if ((rc = client_ask(c, req, timeout_ms, &m)) < 0)
		return rc;
	*resp = parley__server__v1__response__unpack(NULL, nng_msg_len(m),
						     nng_msg_body(m));
	nng_msg_free(m);
	return *resp ? 0 : -EPROTO;
}

int
parley_call(struct parley_client *c, Parley__Server__V1__Request *req,
	    int deadline_ms, Parley__Server__V1__Response **resp)
{
	Parley__Server__V1__Response *last = NULL, *r;
	int64_t end = client_now_ms() + deadline_ms;
	int backoff = CLIENT_BACKOFF_MS, rc = -ETIMEDOUT;
	int64_t left;

	if (c == NULL || req == NULL || deadline_ms <= 0)
		return -EINVAL;
	req->api_key = c->key;
	while ((left = end - client_now_ms()) > 0) {
		rc = client_attempt(c, req, (int)left, &r);
		if (rc == 0) {
			parley_response_free(last);
			last = r;
			if (r->error == NULL || !r->error->retryable)
				break;
		}
		left = end - client_now_ms();
		client_sleep_ms(left < backoff ? (int)(left > 0 ? left : 0)
					       : backoff);
		backoff = backoff * 2 > CLIENT_BACKOFF_MAX ? CLIENT_BACKOFF_MAX
							   : backoff * 2;
	}
	req->api_key = (char *)protobuf_c_empty_string;
	if (last == NULL)
		return rc;
	*resp = last;
	return 0;
}

int
parley_publish(struct parley_client *c, const struct parley_post *p,
	       int deadline_ms, uint64_t *seq)
{
	Parley__Server__V1__Request req = PARLEY__SERVER__V1__REQUEST__INIT;
	Parley__Server__V1__PublishRequest pub =
		PARLEY__SERVER__V1__PUBLISH_REQUEST__INIT;
	Parley__Server__V1__Actor who = PARLEY__SERVER__V1__ACTOR__INIT;
	Parley__Server__V1__Response *resp;
	int rc;

	if (p == NULL || p->room_id == NULL || p->key == NULL)
		return -EINVAL;
	if (p->sender) {
		who.who_case = PARLEY__SERVER__V1__ACTOR__WHO_USER_ID;
		who.user_id = (char *)p->sender;
	} else {
		who.who_case = PARLEY__SERVER__V1__ACTOR__WHO_SYSTEM;
		who.system = 1;
	}
	pub.room_id = (char *)p->room_id;
	pub.sender = &who;
	pub.idempotency_key = (char *)p->key;
	pub.body = (char *)(p->body ? p->body : "");
	req.call_case = PARLEY__SERVER__V1__REQUEST__CALL_PUBLISH;
	req.publish = &pub;
	if ((rc = parley_call(c, &req, deadline_ms, &resp)) < 0)
		return rc;
	if (resp->error)
		rc = resp->error->code
			     ? (int)resp->error->code
			     : PARLEY__SERVER__V1__CODE__CODE_INTERNAL;
	else if (resp->publish && seq)
		*seq = resp->publish->seq;
	parley_response_free(resp);
	return rc;
}

const char *
parley_strerror(int rc)
{
	const ProtobufCEnumValue *v;

	if (rc == 0)
		return "ok";
	if (rc == -ETIMEDOUT)
		return "timed out (no answer before the deadline)";
	if (rc < 0)
		return strerror(-rc);
	v = protobuf_c_enum_descriptor_get_value(
		&parley__server__v1__code__descriptor, rc);
	return v ? v->name : "unknown code";
}
