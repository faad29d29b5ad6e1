/* Slots: per (device, room), what was pushed and what waits; and the
 * decision rounds that turn due slots into pushes, after asking presence
 * who is online and the store who has the messages already. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pusher.h"
#include "xalloc.h"

/* Slots decided per round at most. */
#define SLOTS_ROUND_MAX 1000
/* A round whose database queries failed is tried again after this. */
#define SLOTS_RETRY_MS 1000
#define SLOTS_GC_MS    1000

static char *
slot_key(int platform, const char *token, const char *room)
{
	return xasprintf("%s\n%s\n%s", push_platform_name(platform), token,
			 room);
}

static void
slot_set(char **field, const char *value)
{
	if (*field && strcmp(*field, value) == 0)
		return;
	free(*field);
	*field = xstrdup(value);
}

static struct slot *
slot_new(struct engine *e, char *key, const struct db_cand *c, const char *room)
{
	struct slot *s = xcalloc(1, sizeof(*s));

	s->key = key;
	s->platform = c->platform;
	s->token = xstrdup(c->token);
	s->room = xstrdup(room);
	s->user = xstrdup(c->user);
	s->sent_seq = c->sent_seq;
	s->sent_ms = c->sent_ms;
	s->hold.part = -1;
	map_put(&e->slots, key, s);
	return s;
}

/* Forget what waits (its hold goes). */
static void
slot_clear(struct engine *e, struct slot *s)
{
	if (s->want_seq == 0)
		return;
	ledger_unref(&e->ledger, &s->hold);
	s->hold.part = -1;
	s->want_seq = 0;
	free(s->sender);
	free(s->preview);
	s->sender = s->preview = NULL;
	e->n_pending--;
}

/* Delete a slot with nothing waiting, deciding or in flight. */
static void
slot_delete(struct engine *e, struct slot *s)
{
	map_del(&e->slots, s->key);
	free(s->key);
	free(s->token);
	free(s->room);
	free(s->user);
	free(s->sender);
	free(s->preview);
	free(s);
}

static void
slots_due_at(struct engine *e, int64_t due)
{
	if (due < e->next_due_ms)
		e->next_due_ms = due;
}

/* First waiting message at ts: decide after the grace window, and not
 * before the coalescing window of the last push (or the one in flight). */
static int64_t
slot_due(const struct engine *e, const struct slot *s, int64_t ts)
{
	int64_t due = ts + e->cfg->grace_ms, w = e->cfg->coalesce_ms;

	if (s->sent_ms > 0 && s->sent_ms + w > due)
		due = s->sent_ms + w;
	if (s->job && s->job->started_ms + w > due)
		due = s->job->started_ms + w;
	return due;
}

void
slots_offer(struct engine *e, const struct engine_rec *rec,
	    const struct db_cand *c)
{
	char *key;
	struct slot *s;
	uint64_t top;

	if (c->platform < 0)
		return;
	key = slot_key(c->platform, c->token, rec->room);
	s = map_get(&e->slots, key);
	if (s == NULL)
		s = slot_new(e, key, c, rec->room);
	else
		free(key);
	slot_set(&s->user, c->user);
	top = s->sent_seq > s->want_seq ? s->sent_seq : s->want_seq;
	if (s->job && s->job->seq > top)
		top = s->job->seq;
	if (s->gone || c->seq <= top)
		return; /* pushed, waiting or in flight already */
	if (s->want_seq == 0) {
		int64_t now = engine_now_ms();

		s->hold = rec->hold;
		ledger_ref(&e->ledger, &s->hold);
		/* A record from a clock ahead of ours waits no longer. */
		s->due_ms = slot_due(e, s, rec->ts_ms < now ? rec->ts_ms : now);
		e->n_pending++;
		slots_due_at(e, s->due_ms);
	} else {
		metric_add(stats_get()->coalesced, 1);
	}
	s->want_seq = c->seq;
	s->ts_ms = rec->ts_ms;
	slot_set(&s->sender, rec->sender);
	slot_set(&s->preview, c->preview);
}

/* ---- rounds ---- */

/* Put due slots into the round; recompute the next due time. */
static void
slots_collect(struct engine *e, int64_t now)
{
	size_t pos = 0;
	const char *key;
	void *val;

	e->next_due_ms = INT64_MAX;
	if (e->round == NULL)
		e->round = xcalloc(SLOTS_ROUND_MAX, sizeof(*e->round));
	while (map_next(&e->slots, &pos, &key, &val)) {
		struct slot *s = val;

		if (s->want_seq == 0 || s->job || s->deciding)
			continue;
		if (s->due_ms <= now && e->n_round < SLOTS_ROUND_MAX) {
			s->deciding = true;
			e->round[e->n_round++] = s;
		} else {
			slots_due_at(e, s->due_ms);
		}
	}
}

/* The distinct users of the round (borrowed strings); *n set. */
static char **
slots_users(struct engine *e, size_t *n, size_t *idx)
{
	char **users = xcalloc(e->n_round + 1, sizeof(*users));
	struct map seen;

	map_init(&seen);
	*n = 0;
	for (size_t i = 0; i < e->n_round; i++) {
		const char *u = e->round[i]->user;
		size_t *at = map_get(&seen, u);

		if (at == NULL) {
			idx[i] = *n;
			users[*n] = (char *)u;
			map_put(&seen, u, &idx[i]);
			(*n)++;
		} else {
			idx[i] = *at;
		}
	}
	map_release(&seen);
	return users;
}

/* One slot, given what the store and presence say. */
static void
slots_judge(struct engine *e, struct slot *s, const struct db_check *c,
	    const struct map *online, uint64_t badge)
{
	int64_t now = engine_now_ms();

	if (s->gone || !c->device || !c->member) {
		slot_clear(e, s);
		if (!s->job && (s->gone || !c->device))
			slot_delete(e, s);
	} else if (online && map_get(online, s->user)) {
		metric_add(stats_get()->skipped_online, 1);
		slot_clear(e, s);
	} else if (c->delivered >= s->want_seq) {
		metric_add(stats_get()->skipped_delivered, 1);
		slot_clear(e, s);
	} else if (s->want_seq <= s->sent_seq) {
		slot_clear(e, s);
	} else if (s->sent_ms > 0 && now < s->sent_ms + e->cfg->coalesce_ms) {
		s->due_ms = s->sent_ms + e->cfg->coalesce_ms;
		slots_due_at(e, s->due_ms);
	} else {
		jobs_new(e, s, badge);
	}
}

/* Decide the round; online NULL means presence did not answer (then
 * everyone counts as offline: a push too many beats one missed). */
static void
slots_decide(struct engine *e, const struct map *online)
{
	size_t n = e->n_round, n_users = 0;
	struct db_check *checks = xcalloc(n, sizeof(*checks));
	size_t *idx = xcalloc(n, sizeof(*idx));
	char **users = slots_users(e, &n_users, idx);
	uint64_t *badge = xcalloc(n_users + 1, sizeof(*badge));
	int rc = db_connect(e->db);

	for (size_t i = 0; i < n; i++)
		checks[i] =
			(struct db_check){ .user = e->round[i]->user,
					   .room = e->round[i]->room,
					   .token = e->round[i]->token,
					   .platform = e->round[i]->platform };
	if (rc == 0)
		rc = db_decide(e->db, checks, n, users, badge, n_users);
	/* users borrows the slots' strings: judge after the last use. */
	for (size_t i = 0; i < n; i++) {
		struct slot *s = e->round[i];

		s->deciding = false;
		if (s->want_seq == 0 && !s->gone) {
			continue; /* its partition was revoked meanwhile */
		} else if (rc == 0) {
			slots_judge(e, s, &checks[i], online, badge[idx[i]]);
		} else if (s->want_seq) {
			s->due_ms = engine_now_ms() + SLOTS_RETRY_MS;
			slots_due_at(e, s->due_ms);
		}
	}
	e->n_round = 0;
	free(checks);
	free(idx);
	free(users);
	free(badge);
}

/* Ask presence about the round's users; decide at once without it. */
static void
slots_ask(struct engine *e)
{
	size_t *idx = xcalloc(e->n_round, sizeof(*idx)), n = 0;
	char **users = slots_users(e, &n, idx);
	int rc = e->lookup ? lookup_start(e->lookup, users, n) : -ENOTCONN;

	free(users);
	free(idx);
	if (rc < 0)
		slots_decide(e, NULL);
}

void
slots_round(struct engine *e)
{
	struct map online;
	int rc;

	if (e->n_round && e->lookup) {
		map_init(&online);
		rc = lookup_take(e->lookup, &online);
		if (rc != 0)
			slots_decide(e, rc > 0 ? &online : NULL);
		map_release(&online);
		return;
	}
	if (e->n_pending == 0 || engine_now_ms() < e->next_due_ms)
		return;
	slots_collect(e, engine_now_ms());
	if (e->n_round)
		slots_ask(e);
}

/* ---- housekeeping ---- */

void
slots_drop_part(struct engine *e, int32_t part)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&e->slots, &pos, &key, &val)) {
		struct slot *s = val;

		if (s->want_seq && s->hold.part == part)
			slot_clear(e, s);
	}
}

void
slots_forget_device(struct engine *e, int platform, const char *token)
{
	char *tok = xstrdup(token); /* token may be a slot's own, freed here */
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&e->slots, &pos, &key, &val)) {
		struct slot *s = val;

		if (s->platform != platform || strcmp(s->token, tok) != 0)
			continue;
		s->gone = true;
		slot_clear(e, s);
		if (!s->job && !s->deciding)
			slot_delete(e, s);
	}
	free(tok);
}

void
slots_gc(struct engine *e)
{
	int64_t now = engine_now_ms();
	size_t pos = 0;
	const char *key;
	void *val;

	if (now < e->gc_ms)
		return;
	e->gc_ms = now + SLOTS_GC_MS;
	while (map_next(&e->slots, &pos, &key, &val)) {
		struct slot *s = val;

		if (s->want_seq || s->job || s->deciding)
			continue;
		if (s->gone || now >= s->sent_ms + e->cfg->coalesce_ms)
			slot_delete(e, s);
	}
}

void
slots_job_done(struct engine *e, struct slot *s, struct job *j)
{
	s->job = NULL;
	if (j->outcome == PUSH_OK) {
		if (j->seq > s->sent_seq)
			s->sent_seq = j->seq;
		s->sent_ms = j->started_ms;
	}
	if (j->outcome == PUSH_DEAD)
		slots_forget_device(e, s->platform, s->token); /* frees s */
	else if (s->gone && !s->deciding)
		slot_delete(e, s);
	else if (s->want_seq)
		slots_due_at(e, s->due_ms);
	free(j->sender);
	free(j->preview);
	free(j);
}

void
slots_free_all(struct engine *e)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&e->slots, &pos, &key, &val)) {
		struct slot *s = val;

		s->want_seq = 0; /* the ledger goes too: no unref */
		slot_delete(e, s);
	}
	e->n_pending = 0;
}
