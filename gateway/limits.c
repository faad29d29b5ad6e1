/* Admission and rate limits of client connections: connections per peer
 * IP, the Origin allowlist for browsers, and a token bucket per session
 * over the frames a client sends. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "xalloc.h"

#define LIMITS_ORIGIN_MAX  256
#define LIMITS_MAX_ORIGINS 64

/* PARLEY_GATEWAY_ORIGINS: comma-separated, blanks trimmed, trailing '/'
 * dropped ("https://chat.example.com, http://127.0.0.1:8080"). */
static void
limits_origins(struct gw_config *c, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		const char *b = p, *e = p + n;

		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && (isspace((unsigned char)e[-1]) || e[-1] == '/'))
			e--;
		if (e > b && c->n_origins == LIMITS_MAX_ORIGINS)
			log_fatal("config.invalid",
				  "config: PARLEY_GATEWAY_ORIGINS has more "
				  "than %d origins",
				  LIMITS_MAX_ORIGINS);
		if (e > b) {
			c->origins = xrealloc(c->origins, (c->n_origins +
							   1) * sizeof(char *));
			c->origins[c->n_origins++] =
				xstrndup(b, (size_t)(e - b));
		}
		p += n + (p[n] == ',');
	}
}

void
limits_config(struct gw_config *c)
{
	const char *origins = config_str("PARLEY_GATEWAY_ORIGINS", NULL);

	c->max_conn_per_ip = (int)config_int("PARLEY_GATEWAY_MAX_CONN_PER_IP",
					     0, 0, 10000000);
	c->max_rooms = (int)config_int("PARLEY_MAX_ROOMS_PER_USER", 10000, 0,
				       100000000);
	c->send_rate = (double)config_int("PARLEY_SEND_RATE", 100, 1, 1000000);
	c->send_burst = (int)config_int("PARLEY_SEND_BURST", 200, 1, 1000000);
	c->handshake_timeout_s =
		(int)config_int("PARLEY_HANDSHAKE_TIMEOUT_S", 10, 1, 600);
	if (origins)
		limits_origins(c, origins);
}

/* The "host[:port]" of an origin "scheme://host[:port]". */
static const char *
limits_origin_host(const char *origin)
{
	const char *p = strstr(origin, "://");

	return p ? p + 3 : origin;
}

/* No Origin header (not a browser), no allowlist, an origin on the list,
 * or the gateway's own origin (the page it serves) is allowed. */
int
limits_origin(struct gateway *gw, struct lws *wsi)
{
	char origin[LIMITS_ORIGIN_MAX], host[LIMITS_ORIGIN_MAX];
	size_t n;

	if (gw->cfg.n_origins == 0 ||
	    lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
		return 0;
	n = strlen(origin);
	while (n && origin[n - 1] == '/')
		origin[--n] = '\0';
	for (size_t i = 0; i < gw->cfg.n_origins; i++)
		if (strcmp(origin, gw->cfg.origins[i]) == 0)
			return 0;
	return lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) > 0 &&
			       strcmp(limits_origin_host(origin), host) == 0
		       ? 0
		       : GW_CLOSE_ORIGIN;
}

int
limits_admit(struct gateway *gw, struct lws *wsi, struct gw_session *s)
{
	int *count;

	if (gw->cfg.max_conn_per_ip == 0)
		return 0;
	lws_get_peer_simple(wsi, s->ip, sizeof(s->ip));
	if (s->ip[0] == '\0')
		return 0;
	count = map_get(&gw->per_ip, s->ip);
	if (count == NULL) {
		count = xcalloc(1, sizeof(*count));
		map_put(&gw->per_ip, s->ip, count);
	}
	if (*count >= gw->cfg.max_conn_per_ip) {
		s->ip[0] = '\0'; /* not counted */
		return GW_CLOSE_TOO_MANY;
	}
	(*count)++;
	return 0;
}

void
limits_release(struct gateway *gw, struct gw_session *s)
{
	int *count = s->ip[0] ? map_get(&gw->per_ip, s->ip) : NULL;

	if (count && --*count == 0)
		free(map_del(&gw->per_ip, s->ip));
	s->ip[0] = '\0';
}

bool
limits_allow(struct gw_session *s, uint64_t request_id)
{
	const struct gw_config *c = &s->gw->cfg;
	int64_t now = gw_now_ms();

	s->tokens += (double)(now - s->bucket_ms) * c->send_rate / 1000.0;
	if (s->tokens > c->send_burst)
		s->tokens = c->send_burst;
	s->bucket_ms = now;
	if (s->tokens >= 1.0) {
		s->tokens -= 1.0;
		s->strikes = 0;
		return true;
	}
	metric_add(s->gw->m->rate_limited, 1);
	if (++s->strikes > c->send_burst) {
		session_close(s, GW_CLOSE_RATE_LIMITED,
			      "sending faster than allowed");
		return false;
	}
	session_error(s, request_id,
		      PARLEY__V1__ERROR_CODE__ERROR_CODE_RATE_LIMITED,
		      "sending faster than allowed", true);
	return false;
}

bool
limits_room(struct gw_session *s, uint64_t request_id)
{
	int max = s->gw->cfg.max_rooms;

	if (max > 0 && s->n_rooms >= (size_t)max) {
		session_error(s, request_id,
			      PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
			      "too many rooms for one user", false);
		return false;
	}
	s->n_rooms++;
	return true;
}

void
limits_free(struct gateway *gw)
{
	size_t pos = 0;
	const char *key;
	void *v;

	while (map_next(&gw->per_ip, &pos, &key, &v))
		free(v);
	map_release(&gw->per_ip);
	for (size_t i = 0; i < gw->cfg.n_origins; i++)
		free(gw->cfg.origins[i]);
	free(gw->cfg.origins);
}
