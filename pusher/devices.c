/* Device registration: gateways forward RegisterDevice and
 * UnregisterDevice as Commands over NNG request/reply; one thread with
 * its own database connection answers each with Ok or Error. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "pusher.h"
#include "utf8.h"
#include "xalloc.h"

/* Longest user id (the JWT subject). */
#define DEVICES_USER_MAX 128

struct devices {
	const struct pusher_config *cfg;
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;
	struct db *db;
	pthread_t thread;
};

const char *
devices_invalid(const struct pusher_config *cfg, const char *platform,
		const char *token)
{
	int p = push_platform_parse(platform);
	size_t n = token ? strlen(token) : 0;

	if (p < 0)
		return "unknown platform: want fcm, apns or webhook";
	if (cfg->url[p] == NULL)
		return "push platform not configured on this server";
	if (n == 0 || n > PUSH_TOKEN_MAX)
		return "device token must be 1..4096 bytes";
	for (size_t i = 0; i < n; i++)
		if (token[i] < 0x21 || token[i] > 0x7e)
			return "device token must be printable ASCII without spaces";
	return NULL;
}

static Parley__V1__ServerFrame *
devices_reply(uint64_t request_id, int code, const char *msg, bool retryable)
{
	Parley__V1__ServerFrame *f = xcalloc(1, sizeof(*f));

	parley__v1__server_frame__init(f);
	f->request_id = request_id;
	if (code == 0) {
		f->msg_case = PARLEY__V1__SERVER_FRAME__MSG_OK;
		f->ok = xcalloc(1, sizeof(*f->ok));
		parley__v1__ok__init(f->ok);
		return f;
	}
	f->msg_case = PARLEY__V1__SERVER_FRAME__MSG_ERROR;
	f->error = xcalloc(1, sizeof(*f->error));
	parley__v1__error__init(f->error);
	f->error->code = code;
	f->error->message = xstrdup(msg);
	f->error->retryable = retryable;
	return f;
}

void
devices_reply_free(Parley__V1__ServerFrame *f)
{
	if (f == NULL)
		return;
	if (f->msg_case == PARLEY__V1__SERVER_FRAME__MSG_ERROR) {
		free(f->error->message);
		free(f->error);
	} else {
		free(f->ok);
	}
	free(f);
}

static Parley__V1__ServerFrame *
devices_unavailable(uint64_t request_id)
{
	return devices_reply(request_id,
			     PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE,
			     "device registry unavailable; retry", true);
}

static Parley__V1__ServerFrame *
devices_bad(uint64_t request_id, const char *why)
{
	return devices_reply(request_id,
			     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			     why, false);
}

static Parley__V1__ServerFrame *
devices_add(const struct pusher_config *cfg, struct db *db, const char *user,
	    uint64_t rid, const Parley__V1__RegisterDevice *r)
{
	const char *why = devices_invalid(cfg, r->platform, r->token);

	if (why)
		return devices_bad(rid, why);
	if (db == NULL || db_connect(db) < 0 ||
	    db_device_add(db, user, push_platform_parse(r->platform), r->token,
			  cfg->max_devices) < 0)
		return devices_unavailable(rid);
	metric_add(stats_get()->devices_added, 1);
	LOG_INFO("pusher.device_added", "user %s registered a %s device", user,
		 r->platform);
	return devices_reply(rid, 0, NULL, false);
}

static Parley__V1__ServerFrame *
devices_remove(struct db *db, const char *user, uint64_t rid,
	       const Parley__V1__UnregisterDevice *r)
{
	size_t n = r->token ? strlen(r->token) : 0;

	if (n == 0 || n > PUSH_TOKEN_MAX)
		return devices_bad(rid, "device token must be 1..4096 bytes");
	if (db == NULL || db_connect(db) < 0 ||
	    db_device_remove(db, user, r->token) < 0)
		return devices_unavailable(rid);
	metric_add(stats_get()->devices_removed, 1);
	return devices_reply(rid, 0, NULL, false);
}

Parley__V1__ServerFrame *
devices_handle(const struct pusher_config *cfg, struct db *db,
	       const Parley__Internal__V1__Command *c)
{
	const Parley__V1__ClientFrame *f = c->frame;
	size_t ulen = c->user_id ? strlen(c->user_id) : 0;
	uint64_t rid = f ? f->request_id : 0;

	if (f == NULL || ulen == 0 || ulen > DEVICES_USER_MAX ||
	    !utf8_valid(c->user_id))
		return devices_bad(rid, "malformed device request");
	switch (f->msg_case) {
	case PARLEY__V1__CLIENT_FRAME__MSG_REGISTER_DEVICE:
		return devices_add(cfg, db, c->user_id, rid,
				   f->register_device);
	case PARLEY__V1__CLIENT_FRAME__MSG_UNREGISTER_DEVICE:
		return devices_remove(db, c->user_id, rid,
				      f->unregister_device);
	default:
		return devices_bad(rid, "unsupported request");
	}
}

/* Decode, answer and encode one request (freed here). */
static nng_msg *
devices_serve(struct devices *d, nng_msg *in)
{
	Parley__Internal__V1__Command *c;
	Parley__V1__ServerFrame *rep;
	nng_msg *out;

	c = parley__internal__v1__command__unpack(NULL, nng_msg_len(in),
						  nng_msg_body(in));
	nng_msg_free(in);
	rep = c ? devices_handle(d->cfg, d->db, c)
		: devices_bad(0, "undecodable device request");
	if (nng_msg_alloc(&out,
			  parley__v1__server_frame__get_packed_size(rep)) != 0)
		abort(); /* out of memory, as xmalloc would */
	parley__v1__server_frame__pack(rep, nng_msg_body(out));
	devices_reply_free(rep);
	parley__internal__v1__command__free_unpacked(c, NULL);
	return out;
}

static int
devices_step(struct devices *d, bool send)
{
	if (send)
		nng_ctx_send(d->ctx, d->aio);
	else
		nng_ctx_recv(d->ctx, d->aio);
	nng_aio_wait(d->aio);
	return nng_aio_result(d->aio);
}

static void *
devices_main(void *arg)
{
	struct devices *d = arg;
	int rv;

	for (;;) {
		rv = devices_step(d, false);
		if (rv == NNG_ECLOSED)
			break;
		if (rv != 0)
			continue;
		nng_aio_set_msg(d->aio,
				devices_serve(d, nng_aio_get_msg(d->aio)));
		rv = devices_step(d, true);
		if (rv != 0) /* the message is still ours */
			nng_msg_free(nng_aio_get_msg(d->aio));
		if (rv == NNG_ECLOSED)
			break;
	}
	return NULL;
}

struct devices *
devices_start(const struct pusher_config *cfg)
{
	struct devices *d = xcalloc(1, sizeof(*d));
	sigset_t stop, old;

	d->cfg = cfg;
	if (bus_open(&d->sock, "rep") < 0) {
		free(d);
		return NULL;
	}
	if (bus_listen(d->sock, cfg->listen) < 0 ||
	    nng_ctx_open(&d->ctx, d->sock) != 0 ||
	    nng_aio_alloc(&d->aio, NULL, NULL) != 0) {
		nng_close(d->sock);
		free(d);
		return NULL;
	}
	d->db = db_new(cfg->pg, "parley-pusher-devices");
	/* Stop signals belong to the main thread. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	if (pthread_create(&d->thread, NULL, devices_main, d) != 0)
		log_fatal("pusher.devices", "cannot start the device thread");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	LOG_INFO("pusher.listen", "device registration on %s", cfg->listen);
	return d;
}

void
devices_stop(struct devices *d)
{
	if (d == NULL)
		return;
	nng_close(d->sock);
	pthread_join(d->thread, NULL);
	nng_aio_free(d->aio);
	db_free(d->db);
	free(d);
}
