/* The server API's front: one rep socket on PARLEY_API_LISTEN with its own
 * size limit (NNG_OPT_RECVMAXSZ = PARLEY_API_MAX_REQUEST), served by
 * PARLEY_API_WORKERS threads, each with its own NNG context, so one socket
 * carries that many calls at once. Every call is authenticated by the
 * shared key, compared in constant time and never logged. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "bus.h"
#include "log.h"
#include "sig.h"
#include "xalloc.h"

struct worker {
	struct api *a;
	nng_ctx ctx;
	nng_aio *aio;
	pthread_t thread;
};

bool
api_key_ok(const struct api *a, const char *key)
{
	unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

	/* Digests have one length, so neither the comparison nor its time
	 * says anything about the key's length or its first wrong byte. */
	SHA256((const unsigned char *)a->cfg.key, strlen(a->cfg.key), want);
	SHA256((const unsigned char *)(key ? key : ""), key ? strlen(key) : 0,
	       got);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

static Parley__Server__V1__Response *
server_error(Parley__Server__V1__Code code, const char *msg)
{
	Parley__Server__V1__Response *r = xmalloc(sizeof(*r));
	Parley__Server__V1__Error *e = xmalloc(sizeof(*e));

	parley__server__v1__response__init(r);
	parley__server__v1__error__init(e);
	e->code = code;
	e->message = xstrdup(msg);
	r->error = e;
	return r;
}

/* How long this call may wait: the caller's deadline, less a margin so the
 * answer still reaches it, within the server's own limit. */
static int
server_timeout(const struct api *a, const Parley__Server__V1__Request *q)
{
	int ms = a->cfg.timeout_ms;

	if (q->deadline_ms > 0 && (int)(q->deadline_ms * 9 / 10) < ms)
		ms = (int)(q->deadline_ms * 9 / 10);
	return ms < 50 ? 50 : ms;
}

static Parley__Server__V1__Response *
server_answer(struct api *a, nng_msg *m)
{
	Parley__Server__V1__Request *q = parley__server__v1__request__unpack(
		NULL, nng_msg_len(m), nng_msg_body(m));
	Parley__Server__V1__Response *r;

	if (q == NULL)
		return server_error(PARLEY__SERVER__V1__CODE__CODE_BAD_REQUEST,
				    "not a parley.server.v1.Request");
	if (!api_key_ok(a, q->api_key)) {
		metric_add(a->refused, 1);
		LOG_WARN("api.refused", "call with a wrong API key refused");
		r = server_error(PARLEY__SERVER__V1__CODE__CODE_UNAUTHENTICATED,
				 "wrong API key");
	} else {
		r = calls_handle(a, q, server_timeout(a, q));
	}
	parley__server__v1__request__free_unpacked(q, NULL);
	return r;
}

/* Replace m's body with the encoded response. */
static void
server_fill(nng_msg *m, const Parley__Server__V1__Response *r)
{
	size_t n = parley__server__v1__response__get_packed_size(r);

	nng_msg_clear(m);
	if (nng_msg_realloc(m, n) == 0)
		parley__server__v1__response__pack(r, nng_msg_body(m));
}

static void
server_call(struct worker *w, nng_msg *m)
{
	struct api *a = w->a;
	Parley__Server__V1__Response *r;

	metric_add(a->calls, 1);
	metric_add(a->in_flight, 1);
	r = server_answer(a, m);
	if (r->error)
		metric_add(a->failed, 1);
	server_fill(m, r);
	calls_response_free(r);
	metric_add(a->in_flight, -1);
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
	nng_aio_wait(w->aio);
	if (nng_aio_result(w->aio) != 0)
		nng_msg_free(m);
}

static void *
server_worker(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		int rc;

		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		rc = nng_aio_result(w->aio);
		if (rc == NNG_ECLOSED)
			return NULL;
		if (rc == 0)
			server_call(w, nng_aio_get_msg(w->aio));
	}
}

static int
server_open(struct api *a)
{
	int rc = bus_open(&a->sock, "rep");

	if (rc == 0)
		rc = bus_err(nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ,
						 (size_t)a->cfg.max_request));
	if (rc == 0)
		rc = bus_listen(a->sock, a->cfg.listen);
	return rc;
}

static int
server_start_workers(struct api *a, struct worker *ws)
{
	for (int i = 0; i < a->cfg.workers; i++) {
		ws[i].a = a;
		if (nng_ctx_open(&ws[i].ctx, a->sock) != 0 ||
		    nng_aio_alloc(&ws[i].aio, NULL, NULL) != 0 ||
		    pthread_create(&ws[i].thread, NULL, server_worker, &ws[i]))
			return -EAGAIN;
	}
	return 0;
}

static void
server_metrics(struct api *a)
{
	a->calls = metrics_counter("parley_api_calls_total",
				   "Server API calls answered");
	a->failed = metrics_counter("parley_api_calls_failed_total",
				    "Server API calls answered with an error");
	a->refused = metrics_counter("parley_api_refused_total",
				     "Server API calls with a wrong key");
	a->in_flight = metrics_gauge("parley_api_calls_in_flight",
				     "Server API calls being handled");
}

int
api_run(const struct api_config *cfg)
{
	struct api *a = xcalloc(1, sizeof(*a));
	struct worker *ws = xcalloc((size_t)cfg->workers, sizeof(*ws));
	struct pollfd p = { .fd = sig_fd(), .events = POLLIN };
	int rc;

	a->cfg = *cfg;
	server_metrics(a);
	if ((rc = link_open(a)) < 0 || (rc = server_open(a)) < 0 ||
	    (rc = server_start_workers(a, ws)) < 0) {
		LOG_ERROR("api.start", "cannot start: %s", strerror(-rc));
		return rc;
	}
	LOG_INFO("api.started", "serving on %s with %d workers", cfg->listen,
		 cfg->workers);
	while (!sig_stopping())
		poll(&p, 1, 1000);
	nng_close(a->sock);
	for (int i = 0; i < cfg->workers; i++) {
		pthread_join(ws[i].thread, NULL);
		nng_ctx_close(ws[i].ctx);
		nng_aio_free(ws[i].aio);
	}
	link_close(a);
	LOG_INFO("api.stopped", "stopped");
	free(ws);
	free(a);
	return 0;
}
