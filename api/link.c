/* Links of parley-api: Commands to the routers (a push socket dialed to
 * every router), the owners' answers (a pull socket read by a receiver
 * thread that wakes the waiting worker), and request/reply calls to the
 * store, presence and the pusher, each on its own NNG context. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "bus.h"
#include "log.h"
#include "xalloc.h"

#define LINK_SEND_MS 2000

static void
on_router_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct api *a = arg;

	(void)p;
	__atomic_add_fetch(&a->router_pipes,
			   ev == NNG_PIPE_EV_ADD_POST ? 1 : -1,
			   __ATOMIC_RELAXED);
}

/* Hand one Delivery to the worker waiting for its session, if any. */
static void
link_deliver(struct api *a, const Parley__Internal__V1__Delivery *d)
{
	struct api_wait *w;

	if (d->session_id == NULL || d->session_id[0] == '\0')
		return;
	pthread_mutex_lock(&a->lock);
	w = map_get(&a->waits, d->session_id);
	if (w && w->frame == NULL) {
		w->frame = parley__v1__server_frame__unpack(NULL, d->frame.len,
							    d->frame.data);
		if (w->frame)
			pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&a->lock);
}

static void
link_batch(struct api *a, nng_msg *m)
{
	struct bus_iter it;
	const uint8_t *item;
	size_t len;

	bus_iter_init(&it, nng_msg_body(m), nng_msg_len(m));
	while (bus_iter_next(&it, &item, &len) == 1) {
		Parley__Internal__V1__Delivery *d =
			parley__internal__v1__delivery__unpack(NULL, len, item);

		if (d == NULL)
			continue;
		link_deliver(a, d);
		parley__internal__v1__delivery__free_unpacked(d, NULL);
	}
}

static void *
link_receiver(void *arg)
{
	struct api *a = arg;

	for (;;) {
		nng_msg *m;
		int rc = nng_recvmsg(a->answers, &m, 0);

		if (rc == NNG_ECLOSED)
			return NULL;
		if (rc != 0)
			continue;
		link_batch(a, m);
		nng_msg_free(m);
	}
}

static int
link_dial_list(nng_socket s, const char *csv)
{
	char *list = xstrdup(csv), *save = NULL, *url;
	int rc = 0;

	for (url = strtok_r(list, ",", &save); url && rc == 0;
	     url = strtok_r(NULL, ",", &save))
		rc = bus_dial(s, url);
	free(list);
	return rc;
}

static int
link_req(nng_socket *s, const char *url)
{
	int rc = bus_open(s, "req");

	if (rc == 0)
		rc = bus_dial(*s, url);
	return rc;
}

int
link_open(struct api *a)
{
	int rc;

	pthread_mutex_init(&a->lock, NULL);
	map_init(&a->waits);
	map_init(&a->gateways);
	if ((rc = bus_open(&a->routers, "push")) < 0 ||
	    (rc = bus_set_timeouts(a->routers, LINK_SEND_MS, -1)) < 0)
		return rc;
	nng_pipe_notify(a->routers, NNG_PIPE_EV_ADD_POST, on_router_pipe, a);
	nng_pipe_notify(a->routers, NNG_PIPE_EV_REM_POST, on_router_pipe, a);
	if ((rc = link_dial_list(a->routers, a->cfg.routers)) < 0 ||
	    (rc = bus_open(&a->answers, "pull")) < 0 ||
	    (rc = bus_listen(a->answers, a->cfg.nng_listen)) < 0 ||
	    (rc = link_req(&a->store, a->cfg.store_url)) < 0 ||
	    (rc = link_req(&a->presence, a->cfg.presence_url)) < 0 ||
	    (rc = link_req(&a->pusher, a->cfg.pusher_url)) < 0)
		return rc;
	if (pthread_create(&a->receiver, NULL, link_receiver, a))
		return -EAGAIN;
	return 0;
}

void
link_close(struct api *a)
{
	size_t pos = 0;
	const char *key;
	void *val;

	nng_close(a->answers);
	pthread_join(a->receiver, NULL);
	nng_close(a->routers);
	nng_close(a->store);
	nng_close(a->presence);
	nng_close(a->pusher);
	map_release(&a->waits);
	while (map_next(&a->gateways, &pos, &key, &val)) {
		nng_close(*(nng_socket *)val);
		free(val);
	}
	map_release(&a->gateways);
}

/* The push socket of a gateway, made on first use; NULL when it cannot. */
static nng_socket *
link_gateway(struct api *a, const char *url)
{
	nng_socket *s;

	pthread_mutex_lock(&a->lock);
	s = map_get(&a->gateways, url);
	if (s == NULL) {
		s = xmalloc(sizeof(*s));
		if (bus_open(s, "push") < 0 ||
		    bus_set_timeouts(*s, LINK_SEND_MS, -1) < 0 ||
		    bus_dial(*s, url) < 0) {
			free(s);
			s = NULL;
		} else {
			map_put(&a->gateways, url, s);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return s;
}

int
link_to_gateway(struct api *a, const char *url, nng_msg *m)
{
	nng_socket *s = link_gateway(a, url);

	if (s == NULL) {
		nng_msg_free(m);
		return -EINVAL;
	}
	return bus_send(*s, m, false);
}

static void
link_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Register w under a fresh session id. */
static void
link_wait_add(struct api *a, struct api_wait *w)
{
	pthread_cond_init(&w->cond, NULL);
	w->frame = NULL;
	pthread_mutex_lock(&a->lock);
	snprintf(w->session_id, sizeof(w->session_id), "api-%ld-%llu",
		 (long)getpid(), (unsigned long long)++a->next_id);
	map_put(&a->waits, w->session_id, w);
	pthread_mutex_unlock(&a->lock);
}

static int
link_send_command(struct api *a, const Parley__Internal__V1__Command *c)
{
	struct bus_batch b;

	bus_batch_init(&b);
	bus_batch_add_pb(&b, &c->base);
	return bus_send(a->routers, bus_batch_take(&b), false);
}

int
link_command(struct api *a, Parley__Internal__V1__Command *c, int timeout_ms,
	     Parley__V1__ServerFrame **out)
{
	struct api_wait w;
	struct timespec until;
	int rc;

	link_wait_add(a, &w);
	link_deadline(&until, timeout_ms);
	c->session_id = w.session_id;
	c->gateway = (char *)a->cfg.nng_listen;
	c->server = true;
	rc = link_send_command(a, c);
	pthread_mutex_lock(&a->lock);
	while (rc == 0 && w.frame == NULL)
		if (pthread_cond_timedwait(&w.cond, &a->lock, &until) ==
		    ETIMEDOUT)
			rc = w.frame ? 0 : -ETIMEDOUT;
	map_del(&a->waits, w.session_id);
	pthread_mutex_unlock(&a->lock);
	pthread_cond_destroy(&w.cond);
	if (rc == 0)
		*out = w.frame;
	else if (w.frame)
		parley__v1__server_frame__free_unpacked(w.frame, NULL);
	return rc;
}

/* One step (send or receive) of a request on aio; 0 or -errno. */
static int
link_step(nng_ctx ctx, nng_aio *aio, bool send)
{
	if (send)
		nng_ctx_send(ctx, aio);
	else
		nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	return bus_err(nng_aio_result(aio));
}

int
link_ask(nng_socket sock, const ProtobufCMessage *req, int timeout_ms,
	 nng_msg **reply)
{
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *m;
	int rc;

	if (nng_msg_alloc(&m, protobuf_c_message_get_packed_size(req)) != 0)
		return -ENOMEM;
	protobuf_c_message_pack(req, nng_msg_body(m));
	if ((rc = bus_err(nng_ctx_open(&ctx, sock))) < 0) {
		nng_msg_free(m);
		return rc;
	}
	if ((rc = bus_err(nng_aio_alloc(&aio, NULL, NULL))) < 0) {
		nng_ctx_close(ctx);
		nng_msg_free(m);
		return rc;
	}
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	if ((rc = link_step(ctx, aio, true)) < 0)
		nng_msg_free(m);
	else if ((rc = link_step(ctx, aio, false)) == 0)
		*reply = nng_aio_get_msg(aio);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return rc;
}
