/* libFuzzer target: what a WebSocket client sends, through the gateway's
 * own path. Each input is a sequence of binary messages (fuzz.h framing)
 * given to session_on_message of one fresh session, as lws would: the
 * first must be an Auth (the seeds carry a valid token), the next ones are
 * dispatched. The gateway's other files are stubs here that pack what they
 * are handed (the Command envelope a router gets, the StoreRequest the
 * store gets) and check it decodes back the same. */
#include "../../gateway/session.c"

#include <assert.h>

#include "fuzz.h"

/* The tokens in the seeds are signed with this secret. */
#define FUZZ_SECRET "fuzz-secret-0123456789-0123456789"

static struct gw_metrics fuzz_m;
static struct jwt_key *fuzz_key;

/* Pack m, decode it back with desc, pack again: the bytes must agree. */
static void
fuzz_roundtrip(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *a = xmalloc(n + 1), *b;
	ProtobufCMessage *back;

	protobuf_c_message_pack(m, a);
	back = protobuf_c_message_unpack(m->descriptor, NULL, n, a);
	assert(back != NULL);
	b = xmalloc(n + 1);
	assert(protobuf_c_message_get_packed_size(back) == n);
	protobuf_c_message_pack(back, b);
	assert(memcmp(a, b, n) == 0);
	protobuf_c_message_free_unpacked(back, NULL);
	free(a);
	free(b);
}

/* The service thread would write the queue; session_destroy frees it. */
static void
fuzz_wake(struct gw_session *s)
{
	(void)s;
}

static const struct gw_transport fuzz_transport = { "fuzz", fuzz_wake, NULL };

/* auth.c without revocation (no Kafka here): the pinned key's checks. */
int
auth_verify(struct gateway *gw, const char *token, struct jwt_claims *out)
{
	return auth_jwt_code(jwt_check(&gw->cfg.jwt, token, 1700000000, out));
}

/* limits.c's bucket is not what this target fuzzes: every frame passes. */
bool
limits_allow(struct gw_session *s, uint64_t request_id)
{
	(void)s;
	(void)request_id;
	return true;
}

bool
limits_room(struct gw_session *s, uint64_t request_id)
{
	(void)s;
	(void)request_id;
	return true;
}

int64_t
gw_now_ms(void)
{
	return 1700000000000;
}

void
presence_session_up(struct gateway *gw, struct gw_session *s)
{
	(void)gw;
	session_on_presence(s);
}

void
presence_session_down(struct gateway *gw, struct gw_session *s)
{
	(void)gw;
	(void)s;
}

void
rpc_store(struct gw_session *s, uint64_t request_id,
	  Parley__Internal__V1__StoreRequest *req)
{
	(void)request_id;
	fuzz_roundtrip(&req->base);
	if (req->req_case ==
		    PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS &&
	    s->state == GW_WELCOME_WAIT)
		session_on_rooms(s, NULL);
}

static void
fuzz_command(struct gw_session *s, Parley__V1__ClientFrame *f)
{
	Parley__Internal__V1__Command c = PARLEY__INTERNAL__V1__COMMAND__INIT;

	c.user_id = s->user;
	c.session_id = s->id;
	c.gateway = "tcp://127.0.0.1:7101";
	c.frame = f;
	fuzz_roundtrip(&c.base);
}

void
link_command(struct gateway *gw, struct gw_session *s,
	     Parley__V1__ClientFrame *f)
{
	(void)gw;
	fuzz_command(s, f);
	if (f->request_id)
		s->inflight++;
}

void
link_ephemeral(struct gateway *gw, struct gw_session *s,
	       Parley__V1__ClientFrame *f)
{
	(void)gw;
	fuzz_command(s, f);
}

void
subs_subscribe(struct gw_session *s, const Parley__V1__ClientFrame *f)
{
	const Parley__V1__SubscribePresence *sp = f->subscribe_presence;

	for (size_t i = 0; i < sp->n_user_ids; i++)
		if (!jwt_valid_user(sp->user_ids[i]))
			session_error(s, f->request_id, 1, "bad user id",
				      false);
}

void
subs_drop(struct gw_session *s)
{
	(void)s;
}

void
rpc_release_held(struct gw_session *s)
{
	(void)s; /* the stub rpc_store above holds nothing */
}

void
device_forward(struct gw_session *s, Parley__V1__ClientFrame *f)
{
	fuzz_command(s, f);
}

static struct gateway *
fuzz_gateway(void)
{
	struct gateway *gw = xcalloc(1, sizeof(*gw));

	if (fuzz_m.connections == NULL) {
		fuzz_m.connections = metrics_gauge("fuzz_connections", "");
		fuzz_m.sessions = metrics_gauge("fuzz_sessions", "");
		fuzz_m.frames_in = metrics_counter("fuzz_frames_in", "");
		fuzz_m.commands = metrics_counter("fuzz_commands", "");
		fuzz_m.closes_slow = metrics_counter("fuzz_closes_slow", "");
		fuzz_m.closes_auth = metrics_counter("fuzz_closes_auth", "");
		fuzz_m.closes_bad = metrics_counter("fuzz_closes_bad", "");
	}
	gw->m = &fuzz_m;
	if (fuzz_key == NULL)
		fuzz_key = jwt_key_new_hmac(FUZZ_SECRET);
	gw->cfg.jwt.key = fuzz_key;
	gw->cfg.outq_max = 1 << 20;
	gw->cfg.max_frame = 64 * 1024 + 512;
	map_init(&gw->sessions);
	map_init(&gw->users);
	return gw;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gateway *gw = fuzz_gateway();
	struct gw_session s;
	const uint8_t *p = data, *end = data + size, *m;
	size_t len;

	memset(&s, 0, sizeof(s));
	session_open(gw, &fuzz_transport, &s);
	while (s.state != GW_CLOSING && (m = fuzz_next(&p, end, &len)))
		session_on_message(&s, m, len);
	/* A close always names a documented code. */
	assert(s.state != GW_CLOSING || (s.close_code >= GW_CLOSE_GOING_AWAY &&
					 s.close_code <= GW_CLOSE_REPLACED));
	session_destroy(&s);
	assert(map_count(&gw->sessions) == 0 && map_count(&gw->users) == 0);
	map_release(&gw->sessions);
	map_release(&gw->users);
	free(gw);
	return 0;
}
