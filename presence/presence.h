/* parley-presence: the registry of live sessions (registry.c), a pure data
 * structure, and the NNG service around it (server.c). */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The registry.
 *
 * Invariants:
 *  - A session is identified by (gateway, session_id); at most one live
 *    session per pair, held by exactly one user.
 *  - A user is online while at least one of its sessions lives; when the
 *    last one ends, last_seen_ms is set to the time it ended.
 *  - version counts changes (a session that came up or went down); calls
 *    that change nothing leave it alone. It starts at 0.
 *  - A gateway that has not reported for the lease is stale; dropping it
 *    ends all its sessions.
 *  - Offline users are remembered for the max_age given to
 *    registry_forget (REGISTRY_FORGET_MS in the service), then forgotten:
 *    their last_seen_ms reads 0 again. That bounds memory, the state
 *    registry_take_users compares against included (it lives with the
 *    user; a forgotten user counts as last taken offline).
 *  - A user whose live-session count went from 0 to 1 or from 1 to 0 is
 *    marked until the next registry_take_users.
 *
 * The registry reads no clock: the caller sets the time before each batch
 * of calls with registry_set_clock, so tests control it. Wall time (unix
 * ms) is what last_seen_ms and since_ms report; monotonic time runs leases.
 */

#define REGISTRY_MAX_ID	   256	/* longest user_id / session_id */
#define REGISTRY_MAX_URL   1024 /* longest gateway url */
#define REGISTRY_FORGET_MS (24LL * 3600 * 1000)

/* A session as the caller sees it. Strings passed in are copied; those
 * the registry hands out live until the session ends. */
struct registry_session {
	const char *user_id;
	const char *session_id;
	const char
		*gateway; /* the NNG url the gateway receives deliveries on */
	int64_t since_ms; /* wall ms; 0 on input means "now" */
};

struct registry_user_state {
	bool online;
	int64_t last_seen_ms; /* now when online, 0 when never seen */
};

struct registry;

/* Constructors and time. registry_free(NULL) is a no-op; it calls no
 * observer. */
struct registry *registry_new(void);
void registry_free(struct registry *r);
void registry_set_clock(struct registry *r, int64_t wall_ms, int64_t mono_ms);

/* on_change is called for every change, before version moves on: up true
 * for a new session, false for one that ends (s is then still valid, and
 * freed right after the call). The observer may read the registry but
 * must not change it. */
void registry_set_observer(struct registry *r,
			   void (*on_change)(void *ctx,
					     const struct registry_session *s,
					     bool up),
			   void *ctx);

/* Validity: non-empty, at most the maximum length, and no '\n' in the
 * gateway url (it separates the parts of a session key). */
bool registry_gateway_valid(const char *url);
bool registry_session_valid(const struct registry_session *s);

/*
 * Changes. Each returns how many changes it made (0 when nothing changed),
 * or -EINVAL for an invalid argument, in which case nothing changed.
 */

/* Record a report from gateway now (its lease restarts), creating the
 * gateway if needed. Returns 0 or -EINVAL. */
int registry_touch(struct registry *r, const char *gateway);
/* Add a session. A duplicate of a live session is no change; the same
 * (gateway, session_id) held by another user ends that one first (2). */
int registry_up(struct registry *r, const struct registry_session *s);
/* End a session; 0 when it was not live. */
int registry_down(struct registry *r, const char *gateway,
		  const char *session_id);
/* Make ups (n of them, each with this gateway) the gateway's whole set:
 * sessions not among them end first, then the new ones come up. */
int registry_replace_gateway(struct registry *r, const char *gateway,
			     const struct registry_session *ups, size_t n);

/*
 * Leases and forgetting.
 */

/* A gateway whose last report is at least lease_ms old, or NULL. The
 * string lives until the gateway is dropped. */
const char *registry_stale_gateway(const struct registry *r, int64_t lease_ms);
/* Forget gateway and end all its sessions, taking the time of its last
 * report as their end (it was last known alive then). Returns how many
 * sessions ended; 0 for an unknown gateway. */
int registry_drop_gateway(struct registry *r, const char *gateway);
/* Drop every stale gateway; returns how many sessions ended. */
int registry_expire(struct registry *r, int64_t lease_ms);
/* Forget users offline for more than max_age_ms; returns how many. */
size_t registry_forget(struct registry *r, int64_t max_age_ms);

/*
 * The coalesced user feed (PresenceUpdate.users).
 */

/* Call emit once for each marked user whose online state differs from the
 * one last emitted for it (never emitted counts as offline), record that
 * state, and clear every mark. So a user who goes offline and comes back
 * (or the reverse) between two calls is not emitted: flapping within the
 * caller's window costs nothing. user_id and st are valid during the call
 * only; emit may read the registry but must not change it. Returns how
 * many users were emitted. */
size_t registry_take_users(struct registry *r,
			   void (*emit)(void *ctx, const char *user_id,
					const struct registry_user_state *st),
			   void *ctx);

/*
 * Queries.
 */

uint64_t registry_version(const struct registry *r);
/* Live sessions, known users (online or remembered), known gateways. */
size_t registry_count(const struct registry *r);
size_t registry_user_count(const struct registry *r);
size_t registry_gateway_count(const struct registry *r);
/* Iterate live sessions: start with *pos = 0; false at the end. The
 * registry must not change during the iteration. */
bool registry_next(const struct registry *r, size_t *pos,
		   const struct registry_session **s);
/* The state of user_id (offline and 0 when unknown). */
void registry_user_state(const struct registry *r, const char *user_id,
			 struct registry_user_state *out);

/*
 * The service (server.c).
 */

struct presence_config {
	const char *listen_url; /* rep socket: PresenceRequest/PresenceReply */
	const char *pub_url;	/* pub socket: PresenceUpdate */
	int64_t lease_ms;
	int64_t heartbeat_ms;
	int64_t coalesce_ms; /* the user feed's window */
};

/* Serve until SIGINT/SIGTERM (sig_install must have run). Returns 0 after
 * a clean stop, -errno (logged) when the sockets cannot be set up. */
int presence_run(const struct presence_config *cfg);

#endif
