/* RegisterDevice and UnregisterDevice: forwarded to parley-pusher as a
 * Command over NNG request/reply (rpc.c's asynchronous call); the
 * pusher's ServerFrame (Ok or Error) comes back through the inbox and
 * goes to the session with the request's request_id. */
#include "gateway.h"
#include "log.h"

int
device_open(struct gateway *gw)
{
	int rc = bus_open(&gw->pusher, "req");

	if (rc == 0)
		rc = bus_dial(gw->pusher, gw->cfg.pusher_url);
	return rc;
}

void
device_close(struct gateway *gw)
{
	nng_close(gw->pusher);
}

void
device_forward(struct gw_session *s, Parley__V1__ClientFrame *f)
{
	Parley__Internal__V1__Command c = PARLEY__INTERNAL__V1__COMMAND__INIT;
	nng_msg *m;

	c.user_id = s->user;
	c.session_id = s->id;
	c.gateway = (char *)s->gw->cfg.nng_listen;
	c.frame = f;
	if (nng_msg_alloc(&m, parley__internal__v1__command__get_packed_size(
				      &c)) != 0) {
		session_error(s, f->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
			      "out of memory", true);
		return;
	}
	parley__internal__v1__command__pack(&c, nng_msg_body(m));
	rpc_call(s->gw, s->gw->pusher, GW_IN_PUSHER, s->id, f->request_id, m);
}

void
device_on_reply(struct gateway *gw, struct gw_inbox_item *it)
{
	struct gw_session *s = session_get(gw, it->session_id);
	Parley__V1__ServerFrame *f = NULL;

	if (s == NULL)
		return;
	if (it->msg)
		f = parley__v1__server_frame__unpack(NULL, nng_msg_len(it->msg),
						     nng_msg_body(it->msg));
	if (f && (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_OK ||
		  f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR)) {
		f->request_id = it->request_id;
		session_send_pb(s, f);
	} else {
		if (it->msg)
			LOG_WARN("gateway.pusher_reply",
				 "undecodable pusher answer");
		session_error(s, it->request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
			      "push registry unavailable; retry", true);
	}
	if (f)
		parley__v1__server_frame__free_unpacked(f, NULL);
}
