/* Presence lookups without blocking the engine: one request at a time on
 * an NNG req context; NNG's thread hands the answer over and writes a
 * byte to a pipe the engine's poll watches. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "pusher.h"
#include "xalloc.h"

struct lookup {
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;
	int pipe[2];
	int timeout_ms;
	bool busy;    /* engine: started and not taken yet */
	bool sending; /* NNG thread: the send stage runs */
	pthread_mutex_t lock;
	bool done; /* under lock: reply/err are set */
	nng_msg *reply;
	int err;
};

/* NNG thread: send done -> receive; receive done (or failed) -> engine. */
static void
on_lookup(void *arg)
{
	struct lookup *l = arg;
	int rv = nng_aio_result(l->aio);
	nng_msg *m = NULL;

	if (rv == 0 && l->sending) {
		l->sending = false;
		nng_ctx_recv(l->ctx, l->aio);
		return;
	}
	if (rv != 0 && l->sending)
		nng_msg_free(nng_aio_get_msg(l->aio));
	else if (rv == 0)
		m = nng_aio_get_msg(l->aio);
	pthread_mutex_lock(&l->lock);
	l->reply = m;
	l->err = rv;
	l->done = true;
	pthread_mutex_unlock(&l->lock);
	if (write(l->pipe[1], "x", 1) < 0) {
		/* Full pipe: the engine is woken already. */
	}
}

static int
lookup_pipe(int fds[2])
{
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	return 0;
}

struct lookup *
lookup_new(const char *url, int timeout_ms)
{
	struct lookup *l = xcalloc(1, sizeof(*l));

	l->pipe[0] = l->pipe[1] = -1;
	l->timeout_ms = timeout_ms;
	pthread_mutex_init(&l->lock, NULL);
	if (lookup_pipe(l->pipe) < 0 || bus_open(&l->sock, "req") < 0)
		goto fail_open;
	if (bus_dial(l->sock, url) < 0 || nng_ctx_open(&l->ctx, l->sock) != 0)
		goto fail_dial;
	if (nng_aio_alloc(&l->aio, on_lookup, l) != 0)
		goto fail_dial;
	return l;
fail_dial:
	nng_close(l->sock);
fail_open:
	LOG_ERROR("pusher.lookup", "cannot set up presence lookups on %s", url);
	if (l->pipe[0] >= 0) {
		close(l->pipe[0]);
		close(l->pipe[1]);
	}
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}

void
lookup_free(struct lookup *l)
{
	if (l == NULL)
		return;
	nng_aio_stop(l->aio);
	nng_aio_free(l->aio);
	nng_ctx_close(l->ctx);
	nng_close(l->sock);
	nng_msg_free(l->reply);
	close(l->pipe[0]);
	close(l->pipe[1]);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int
lookup_start(struct lookup *l, char *const *users, size_t n)
{
	Parley__Internal__V1__PresenceRequest q =
		PARLEY__INTERNAL__V1__PRESENCE_REQUEST__INIT;
	Parley__Internal__V1__UserList list =
		PARLEY__INTERNAL__V1__USER_LIST__INIT;
	nng_msg *m;
	int rv;

	if (l->busy)
		return -EBUSY;
	list.user_ids = (char **)users;
	list.n_user_ids = n;
	q.req_case = PARLEY__INTERNAL__V1__PRESENCE_REQUEST__REQ_LOOKUP;
	q.lookup = &list;
	rv = nng_msg_alloc(
		&m,
		parley__internal__v1__presence_request__get_packed_size(&q));
	if (rv != 0)
		return bus_err(rv);
	parley__internal__v1__presence_request__pack(&q, nng_msg_body(m));
	l->busy = true;
	l->sending = true;
	nng_aio_set_timeout(l->aio, l->timeout_ms);
	nng_aio_set_msg(l->aio, m);
	nng_ctx_send(l->ctx, l->aio);
	return 0;
}

int
lookup_fd(const struct lookup *l)
{
	return l->pipe[0];
}

bool
lookup_busy(const struct lookup *l)
{
	return l->busy;
}

/* Online users of a PresenceReply into online. */
static int
lookup_decode(nng_msg *m, struct map *online)
{
	Parley__Internal__V1__PresenceReply *rep =
		parley__internal__v1__presence_reply__unpack(
			NULL, nng_msg_len(m), nng_msg_body(m));

	if (rep == NULL || (rep->error && rep->error[0])) {
		LOG_WARN("pusher.lookup", "presence lookup refused: %s",
			 rep ? rep->error : "undecodable reply");
		parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
		return -EPROTO;
	}
	for (size_t i = 0; i < rep->n_users; i++)
		if (rep->users[i]->online)
			map_put(online, rep->users[i]->user_id, online);
	parley__internal__v1__presence_reply__free_unpacked(rep, NULL);
	return 1;
}

int
lookup_take(struct lookup *l, struct map *online)
{
	char buf[16];
	nng_msg *m;
	bool done;
	int err, rc;

	while (read(l->pipe[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&l->lock);
	done = l->done;
	m = l->reply;
	err = l->err;
	l->done = false;
	l->reply = NULL;
	pthread_mutex_unlock(&l->lock);
	if (!l->busy || !done)
		return 0;
	l->busy = false;
	if (m == NULL) {
		LOG_WARN("pusher.lookup", "presence lookup failed: %s",
			 nng_strerror(err));
		return bus_err(err);
	}
	rc = lookup_decode(m, online);
	nng_msg_free(m);
	return rc;
}
