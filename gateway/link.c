/* NNG links of the gateway: commands to routers (one batch per loop turn,
 * load-balanced over every router), deliveries from routers (a receiver
 * thread), and the inbox through which NNG threads hand work to the
 * service thread. */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"
#include "xalloc.h"

#define LINK_SENDBUF 1024

static void
on_router_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct gateway *gw = arg;

	(void)p;
	__atomic_add_fetch(&gw->router_pipes,
			   ev == NNG_PIPE_EV_ADD_POST ? 1 : -1,
			   __ATOMIC_RELAXED);
}

/* One more push socket, for ephemeral commands, dialed to url. */
static int
link_dial_eph(struct gateway *gw, const char *url)
{
	nng_socket *s;
	int rc;

	gw->eph = xrealloc(gw->eph, (gw->n_eph + 1) * sizeof(*gw->eph));
	s = &gw->eph[gw->n_eph];
	if ((rc = bus_open(s, "push")) < 0 ||
	    (rc = bus_err(nng_socket_set_int(*s, NNG_OPT_SENDBUF,
					     LINK_SENDBUF))) < 0 ||
	    (rc = bus_dial(*s, url)) < 0)
		return rc;
	gw->n_eph++;
	return 0;
}

/* Dial every router of the comma-separated list: the shared command
 * socket (load-balanced) and one ephemeral socket each. */
static int
link_dial_routers(struct gateway *gw)
{
	char *list = xstrdup(gw->cfg.routers), *save = NULL, *url;
	int rc = 0;

	for (url = strtok_r(list, ",", &save); url && rc == 0;
	     url = strtok_r(NULL, ",", &save))
		if ((rc = bus_dial(gw->routers, url)) == 0)
			rc = link_dial_eph(gw, url);
	free(list);
	return rc;
}

static void *
link_receiver(void *arg)
{
	struct gateway *gw = arg;

	for (;;) {
		struct gw_inbox_item *it;
		nng_msg *m;
		int rc = nng_recvmsg(gw->deliveries, &m, 0);

		if (rc == NNG_ECLOSED)
			return NULL;
		if (rc != 0)
			continue;
		it = xcalloc(1, sizeof(*it));
		it->kind = GW_IN_DELIVERIES;
		it->msg = m;
		inbox_push(gw, it);
	}
}

int
link_open(struct gateway *gw)
{
	int rc;

	pthread_mutex_init(&gw->inbox_lock, NULL);
	bus_batch_init(&gw->commands);
	bus_batch_init(&gw->eph_batch);
	if ((rc = bus_open(&gw->routers, "push")) < 0 ||
	    (rc = bus_err(nng_socket_set_int(gw->routers, NNG_OPT_SENDBUF,
					     LINK_SENDBUF))) < 0)
		return rc;
	nng_pipe_notify(gw->routers, NNG_PIPE_EV_ADD_POST, on_router_pipe, gw);
	nng_pipe_notify(gw->routers, NNG_PIPE_EV_REM_POST, on_router_pipe, gw);
	if ((rc = link_dial_routers(gw)) < 0)
		return rc;
	if ((rc = bus_open(&gw->deliveries, "pull")) < 0 ||
	    (rc = bus_listen(gw->deliveries, gw->cfg.nng_listen)) < 0)
		return rc;
	if ((rc = bus_open(&gw->store, "req")) < 0 ||
	    (rc = bus_dial(gw->store, gw->cfg.store_url)) < 0)
		return rc;
	if (pthread_create(&gw->delivery_thread, NULL, link_receiver, gw))
		return -EAGAIN;
	return 0;
}

void
link_close(struct gateway *gw)
{
	nng_close(gw->deliveries);
	pthread_join(gw->delivery_thread, NULL);
	nng_close(gw->routers);
	nng_close(gw->store);
	for (size_t i = 0; i < gw->n_eph; i++)
		nng_close(gw->eph[i]);
	free(gw->eph);
	bus_batch_release(&gw->commands);
	bus_batch_release(&gw->eph_batch);
}

void
inbox_close(struct gateway *gw)
{
	pthread_mutex_lock(&gw->inbox_lock);
	gw->inbox_closed = true;
	pthread_mutex_unlock(&gw->inbox_lock);
}

void
inbox_free(struct gateway *gw)
{
	while (gw->inbox_head) {
		struct gw_inbox_item *it = gw->inbox_head;

		gw->inbox_head = it->next;
		nng_msg_free(it->msg);
		free(it);
	}
}

/* Ephemeral batches are best effort: a copy per router. */
static void
link_flush_eph(struct gateway *gw)
{
	nng_msg *m = bus_batch_take(&gw->eph_batch), *copy;

	for (size_t i = 0; m && i < gw->n_eph; i++)
		if (nng_msg_dup(&copy, m) == 0)
			bus_send(gw->eph[i], copy, true);
	nng_msg_free(m);
}

static void
on_flush(lws_sorted_usec_list_t *sul)
{
	struct gateway *gw = lws_container_of(sul, struct gateway, flush_sul);
	nng_msg *m = bus_batch_take(&gw->commands);
	int rc;

	gw->flush_scheduled = false;
	link_flush_eph(gw);
	/* A lost batch shows as a timeout to its clients, which retry. */
	if (m && (rc = bus_send(gw->routers, m, true)) < 0)
		LOG_WARN("gateway.router_send",
			 "no router took a command "
			 "batch: %s",
			 strerror(-rc));
}

static void
link_schedule(struct gateway *gw)
{
	if (!gw->flush_scheduled) {
		gw->flush_scheduled = true;
		lws_sul_schedule(gw->ctx, 0, &gw->flush_sul, on_flush, 1);
	}
}

static void
link_add(struct gateway *gw, struct bus_batch *b, struct gw_session *s,
	 Parley__V1__ClientFrame *f)
{
	Parley__Internal__V1__Command c = PARLEY__INTERNAL__V1__COMMAND__INIT;
	char trace[LOG_TRACE_LEN];

	if (f->msg_case == PARLEY__V1__CLIENT_FRAME__MSG_SEND && f->send) {
		log_trace_id(f->send->room_id, s->user, f->send->client_msg_id,
			     trace);
		c.trace_id = trace;
		metric_add(gw->m->sends, 1);
		log_write_trace(LOG_LEVEL_DEBUG, "gateway.send", trace,
				"send of session %s to routers", s->id);
	}
	c.user_id = s->user;
	c.session_id = s->id;
	c.gateway = (char *)gw->cfg.nng_listen;
	c.frame = f;
	bus_batch_add_pb(b, &c.base);
	link_schedule(gw);
}

void
link_ephemeral(struct gateway *gw, struct gw_session *s,
	       Parley__V1__ClientFrame *f)
{
	link_add(gw, &gw->eph_batch, s, f);
}

void
link_command(struct gateway *gw, struct gw_session *s,
	     Parley__V1__ClientFrame *f)
{
	link_add(gw, &gw->commands, s, f);
	metric_add(gw->m->commands, 1);
	/* Routers answer every request with a request_id (ack, Ok or Error). */
	if (f->request_id)
		s->inflight++;
}

/* Inbox. */

void
inbox_push(struct gateway *gw, struct gw_inbox_item *it)
{
	pthread_mutex_lock(&gw->inbox_lock);
	if (gw->inbox_tail)
		gw->inbox_tail->next = it;
	else
		gw->inbox_head = it;
	gw->inbox_tail = it;
	/* Under the lock: the context is not destroyed while we wake it. */
	if (!gw->inbox_closed)
		lws_cancel_service(gw->ctx);
	pthread_mutex_unlock(&gw->inbox_lock);
}

/* One Delivery: its frame is copied once and shared by all recipients. */
static void
link_delivery(struct gateway *gw, const Parley__Internal__V1__Delivery *d)
{
	struct gw_frame *f;
	const char *except = d->except_session && d->except_session[0]
				     ? d->except_session
				     : NULL;

	/* The server API's DisconnectUser (only the one code it sends). */
	if (d->close_code == GW_CLOSE_DISCONNECTED) {
		for (size_t i = 0; i < d->n_user_ids; i++)
			session_close_user(gw, d->user_ids[i], d->close_code);
		return;
	}
	f = frame_new(d->frame.data, d->frame.len);
	if (d->session_id && d->session_id[0]) {
		struct gw_session *s = session_get(gw, d->session_id);

		if (s && s->inflight > 0)
			s->inflight--;
		if (s)
			session_send(s, f);
	}
	for (size_t i = 0; i < d->n_user_ids; i++)
		session_deliver_user(gw, d->user_ids[i], f, except);
	metric_add(gw->m->deliveries, (int64_t)d->n_user_ids);
	if (d->ts_ms > 0)
		metric_observe(gw->m->e2e_latency,
			       (double)(gw_now_ms() - d->ts_ms) / 1000.0);
	frame_unref(f);
}

static void
link_deliveries(struct gateway *gw, nng_msg *m)
{
	struct bus_iter it;
	const uint8_t *item;
	size_t len, n = 0;

	bus_iter_init(&it, nng_msg_body(m), nng_msg_len(m));
	while (bus_iter_next(&it, &item, &len) == 1) {
		Parley__Internal__V1__Delivery *d =
			parley__internal__v1__delivery__unpack(NULL, len, item);

		n++;
		if (d == NULL) {
			LOG_WARN("gateway.bad_delivery",
				 "undecodable delivery");
			continue;
		}
		link_delivery(gw, d);
		parley__internal__v1__delivery__free_unpacked(d, NULL);
	}
	metric_observe(gw->m->delivery_batch, (double)n);
}

static void
inbox_handle(struct gateway *gw, struct gw_inbox_item *it)
{
	switch (it->kind) {
	case GW_IN_DELIVERIES:
		link_deliveries(gw, it->msg);
		break;
	case GW_IN_STORE_REPLY:
		rpc_on_store_reply(gw, it);
		break;
	case GW_IN_PRESENCE:
		presence_on_reply(gw, it);
		break;
	case GW_IN_PRESENCE_LOOKUP:
	case GW_IN_PRESENCE_PUB:
		subs_on_inbox(gw, it);
		break;
	case GW_IN_PUSHER:
		device_on_reply(gw, it);
		break;
	case GW_IN_REVOKE:
		auth_on_revoke(gw, it);
		break;
	}
}

void
inbox_drain(struct gateway *gw)
{
	struct gw_inbox_item *it;

	pthread_mutex_lock(&gw->inbox_lock);
	it = gw->inbox_head;
	gw->inbox_head = gw->inbox_tail = NULL;
	pthread_mutex_unlock(&gw->inbox_lock);
	gw->batching = true;
	while (it) {
		struct gw_inbox_item *next = it->next;

		inbox_handle(gw, it);
		if (it->msg)
			nng_msg_free(it->msg);
		free(it);
		it = next;
	}
	gw->batching = false;
	session_flush_dirty(gw);
}
