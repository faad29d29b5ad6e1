/* Authentication: the token policy from the environment (algorithm pinned
 * by configuration, leeway, audience, issuer), and revocation epochs read
 * from Kafka by a thread and applied on the service thread, where live
 * sessions of a revoked user are closed (4006). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "revoke.h"
#include "xalloc.h"

#define AUTH_PEM_MAX (64 * 1024)

static const char *const auth_algs[] = { "HS256", "RS256", "ES256", NULL };

/* PEM text: the variable itself when it holds a PEM block, else the file
 * it names. Heap; exits at start-up when the file cannot be read. */
static char *
auth_read_pem(const char *name, const char *v)
{
	char *buf;
	size_t n;
	FILE *f;

	if (strncmp(v, "-----BEGIN", 10) == 0)
		return xstrdup(v);
	f = fopen(v, "r");
	if (f == NULL)
		log_fatal("config.invalid", "config: %s: cannot open %s: %m",
			  name, v);
	buf = xmalloc(AUTH_PEM_MAX + 1);
	n = fread(buf, 1, AUTH_PEM_MAX, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static struct jwt_key *
auth_key(int alg)
{
	const char *name = "PARLEY_JWT_PUBLIC_KEY", *v;
	struct jwt_key *k;
	char err[128], *pem;

	if (alg == JWT_HS256)
		return jwt_key_new_hmac(config_secret("PARLEY_JWT_SECRET", 32));
	v = config_require(name);
	pem = auth_read_pem(name, v);
	k = jwt_key_new_pem((enum jwt_alg)alg, pem, err, sizeof(err));
	free(pem);
	if (k == NULL)
		log_fatal("config.invalid",
			  "config: %s: %s (PARLEY_JWT_ALG=%s)", name, err,
			  auth_algs[alg]);
	return k;
}

void
auth_config(struct gw_config *c)
{
	int alg = config_choice("PARLEY_JWT_ALG", JWT_HS256, auth_algs);
	const char *aud = config_str("PARLEY_JWT_AUDIENCE", NULL);
	const char *iss = config_str("PARLEY_JWT_ISSUER", NULL);

	c->jwt.key = c->jwt_key = auth_key(alg);
	c->jwt.leeway_s = config_int("PARLEY_JWT_LEEWAY_S", 30, 0, 600);
	c->jwt.audience = aud;
	c->jwt.issuer = iss;
	c->brokers = config_str("PARLEY_KAFKA_BROKERS", "127.0.0.1:9092");
	c->revocations = revoke_topic(config_str("PARLEY_TOPIC", "parley.log"));
	c->revoke_on = config_bool("PARLEY_REVOCATION", 1);
}

/* Reader thread: hand (user, epoch) to the service thread. */
static void
on_epoch(void *ctx, const char *user, int64_t epoch)
{
	struct gateway *gw = ctx;
	struct gw_inbox_item *it = xcalloc(1, sizeof(*it));

	if (nng_msg_alloc(&it->msg, 0) != 0 ||
	    nng_msg_append(it->msg, user, strlen(user) + 1) != 0)
		log_fatal("gateway.alloc", "out of memory");
	it->kind = GW_IN_REVOKE;
	it->request_id = (uint64_t)epoch;
	inbox_push(gw, it);
}

void
auth_open(struct gateway *gw)
{
	map_init(&gw->revoked);
	if (gw->cfg.revoke_on)
		gw->revoker = revoke_reader_new(
			gw->cfg.brokers, gw->cfg.revocations, on_epoch, gw);
}

void
auth_close(struct gateway *gw)
{
	revoke_reader_free(gw->revoker);
	gw->revoker = NULL;
}

void
auth_free(struct gateway *gw)
{
	size_t pos = 0;
	const char *key;
	void *v;

	while (map_next(&gw->revoked, &pos, &key, &v))
		free(v);
	map_release(&gw->revoked);
	jwt_key_free(gw->cfg.jwt_key);
	free(gw->cfg.revocations);
}

static int64_t
auth_epoch(const struct gateway *gw, const char *user)
{
	const int64_t *e = map_get(&gw->revoked, user);

	return e ? *e : 0;
}

int
auth_verify(struct gateway *gw, const char *token, struct jwt_claims *out)
{
	int rc = auth_jwt_code(
		jwt_check(&gw->cfg.jwt, token, (int64_t)time(NULL), out));

	if (rc)
		return rc;
	if (revoke_applies(auth_epoch(gw, out->sub), out->has_iat, out->iat))
		return GW_CLOSE_REVOKED;
	return 0;
}

/* Close every local session of user whose token the epoch revokes. */
static void
auth_close_user(struct gateway *gw, const char *user, int64_t epoch)
{
	size_t pos = 0, n = 0;
	const char *id;
	void *v;

	while (map_next(&gw->sessions, &pos, &id, &v)) {
		struct gw_session *s = v;

		if (s->state != GW_AUTH_WAIT && s->state != GW_CLOSING &&
		    strcmp(s->user, user) == 0 &&
		    revoke_applies(epoch, s->token_has_iat, s->token_iat)) {
			session_close(s, GW_CLOSE_REVOKED, "token revoked");
			n++;
		}
	}
	if (n)
		LOG_INFO("gateway.revoked",
			 "closed %zu sessions of %s (tokens before %lld)", n,
			 user, (long long)epoch);
}

void
auth_on_revoke(struct gateway *gw, struct gw_inbox_item *it)
{
	const char *user = nng_msg_body(it->msg);
	int64_t epoch = (int64_t)it->request_id;
	int64_t *e = map_get(&gw->revoked, user);

	if (e == NULL) {
		e = xmalloc(sizeof(*e));
		map_put(&gw->revoked, user, e);
	}
	*e = epoch; /* the newest record wins, on every gateway alike */
	metric_add(gw->m->revocations, 1);
	auth_close_user(gw, user, epoch);
}
