/* Jobs: one push of one slot to its provider, with retries, then its
 * outcome recorded in PostgreSQL in the same transaction as the offsets
 * it frees (so a restart re-sends nothing a provider accepted). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "pusher.h"
#include "xalloc.h"

/* A credential file is looked at this often. */
#define JOBS_CRED_CHECK_MS 10000
#define JOBS_CRED_MAX	   65536

/* ---- credentials ---- */

static char *
jobs_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = xmalloc(JOBS_CRED_MAX + 1);
	n = fread(buf, 1, JOBS_CRED_MAX, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	return buf;
}

/* The credential now, or NULL when there is none. */
static const char *
jobs_cred(struct cred *c)
{
	int64_t now = engine_now_ms(), mtime;
	struct stat st;
	char *fresh;

	if (c->value || c->file == NULL)
		return c->value;
	if (c->cached && now < c->checked_ms + JOBS_CRED_CHECK_MS)
		return c->cached;
	c->checked_ms = now;
	if (stat(c->file, &st) < 0) {
		LOG_WARN("pusher.cred", "cannot read %s: %s", c->file,
			 strerror(errno));
		return c->cached;
	}
	mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (c->cached && mtime == c->mtime_ns)
		return c->cached;
	fresh = jobs_read_file(c->file);
	if (fresh) {
		free(c->cached);
		c->cached = fresh;
		c->mtime_ns = mtime;
	}
	return c->cached;
}

/* ---- requests ---- */

/* "name: value", or "name:" (value NULL) which removes curl's own. */
static struct curl_slist *
jobs_header(struct curl_slist *l, const char *name, const char *value)
{
	char *h = value ? xasprintf("%s: %s", name, value)
			: xasprintf("%s:", name);
	struct curl_slist *n = curl_slist_append(l, h);

	free(h);
	if (n == NULL)
		abort(); /* out of memory, as xmalloc would */
	return n;
}

/* Everything but the body is the same for every attempt. */
static struct curl_slist *
jobs_headers(struct engine *e, const struct push_msg *m, const char *body)
{
	const char *cred = jobs_cred(&e->creds[m->platform]);
	char sig[PAYLOAD_SIG_LEN];
	struct curl_slist *l = NULL;

	l = jobs_header(l, "Content-Type", "application/json");
	l = jobs_header(l, "Expect", NULL); /* no 100-continue round trip */
	if (m->platform == PUSH_WEBHOOK) {
		if (payload_sign(cred, body, strlen(body), sig) == 0)
			l = jobs_header(l, "X-Parley-Signature", sig);
		return jobs_header(l, "X-Parley-Push-Id", m->push_id);
	}
	if (cred) {
		char *bearer = xasprintf("Bearer %s", cred);

		l = jobs_header(l, "Authorization", bearer);
		free(bearer);
	}
	if (m->platform == PUSH_FCM)
		return l;
	l = jobs_header(l, "apns-push-type", "alert");
	l = jobs_header(l, "apns-priority", "10");
	l = jobs_header(l, "apns-collapse-id", m->collapse);
	l = jobs_header(l, "apns-id", m->push_id);
	if (e->cfg->apns_topic)
		l = jobs_header(l, "apns-topic", e->cfg->apns_topic);
	return l;
}

/* APNs: <base>/3/device/<token>; the others post to their URL. */
static char *
jobs_url(const struct engine *e, const struct push_msg *m)
{
	const char *base = e->cfg->url[m->platform];
	size_t n = strlen(base);
	char *tok, *url;

	if (m->platform != PUSH_APNS)
		return xstrdup(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	tok = curl_easy_escape(NULL, m->token, 0);
	if (tok == NULL)
		abort(); /* out of memory, as xmalloc would */
	url = xasprintf("%.*s/3/device/%s", (int)n, base, tok);
	curl_free(tok);
	return url;
}

/* The provider request of j, or NULL when its platform has no provider
 * or no credential. */
static struct http_req *
jobs_request(struct engine *e, const struct job *j)
{
	const struct slot *s = j->slot;
	char collapse[PAYLOAD_COLLAPSE_LEN], id[PAYLOAD_PUSH_ID_LEN];
	struct push_msg m = {
		.platform = s->platform,
		.token = s->token,
		.user = s->user,
		.room = s->room,
		.sender = j->sender,
		.preview = e->cfg->preview ? j->preview : "new message",
		.seq = j->seq,
		.badge = j->badge,
		.ts_ms = j->ts_ms,
		.collapse = collapse,
		.push_id = id,
	};
	struct http_req *r;

	if (e->cfg->url[s->platform] == NULL ||
	    (s->platform == PUSH_WEBHOOK &&
	     jobs_cred(&e->creds[s->platform]) == NULL))
		return NULL;
	payload_collapse_key(s->room, collapse);
	payload_push_id(s->platform, s->token, s->room, j->seq, id);
	r = xcalloc(1, sizeof(*r));
	r->url = jobs_url(e, &m);
	r->body = payload_body(&m);
	r->headers = jobs_headers(e, &m, r->body);
	r->timeout_ms = e->cfg->timeout_ms;
	if (s->platform == PUSH_APNS) {
		r->cert = e->cfg->apns_cert;
		r->key = e->cfg->apns_key;
	}
	return r;
}

/* ---- the queue ---- */

static void
jobs_enqueue(struct engine *e, struct job *j)
{
	j->next = e->queue;
	e->queue = j;
}

void
jobs_new(struct engine *e, struct slot *s, uint64_t badge)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->slot = s;
	j->seq = s->want_seq;
	j->badge = badge;
	j->sender = s->sender;
	j->preview = s->preview;
	j->ts_ms = s->ts_ms;
	j->hold = s->hold;
	s->sender = s->preview = NULL;
	s->hold.part = -1;
	s->want_seq = 0;
	e->n_pending--;
	j->started_ms = j->next_at_ms = engine_now_ms();
	s->job = j;
	e->n_jobs++;
	jobs_enqueue(e, j);
}

static void
jobs_finish(struct engine *e, struct job *j, enum push_outcome outcome)
{
	const struct stats *st = stats_get();

	j->outcome = outcome;
	if (outcome == PUSH_OK)
		metric_add(st->sent, 1);
	else if (outcome == PUSH_DEAD)
		metric_add(st->dead, 1);
	else
		metric_add(st->failed, 1);
	if (e->n_done == e->cap_done) {
		e->cap_done = e->cap_done ? e->cap_done * 2 : 64;
		e->done = xrealloc(e->done, e->cap_done * sizeof(*e->done));
	}
	e->done[e->n_done++] = j;
}

/* A failed attempt: again after a backoff, or give up. */
static void
jobs_again(struct engine *e, struct job *j, int64_t retry_after_s,
	   const char *why)
{
	const struct slot *s = j->slot;
	int64_t ms;

	if (j->attempts >= e->cfg->attempts) {
		LOG_WARN(
			"pusher.gave_up",
			"push of %s seq %llu to a %s device of %s given up after %d attempts: %s",
			s->room, (unsigned long long)j->seq,
			push_platform_name(s->platform), s->user, j->attempts,
			why);
		jobs_finish(e, j, PUSH_RETRY);
		return;
	}
	ms = push_backoff_ms(j->attempts, e->cfg->retry_ms,
			     e->cfg->retry_max_ms, retry_after_s,
			     engine_random(e));
	LOG_INFO(
		"pusher.retry",
		"push of %s seq %llu to a %s device of %s: %s; attempt %d in %lld ms",
		s->room, (unsigned long long)j->seq,
		push_platform_name(s->platform), s->user, why, j->attempts + 1,
		(long long)ms);
	metric_add(stats_get()->retried, 1);
	j->next_at_ms = engine_now_ms() + ms;
	jobs_enqueue(e, j);
}

static void
jobs_start(struct engine *e, struct job *j)
{
	struct http_req *r = jobs_request(e, j);

	j->attempts++;
	if (r == NULL) {
		LOG_WARN(
			"pusher.no_provider",
			"no %s provider (or credential) configured: push dropped",
			push_platform_name(j->slot->platform));
		jobs_finish(e, j, PUSH_DROP);
		return;
	}
	r->arg = j;
	if (http_start(e->http, r) < 0) {
		http_req_free(r);
		jobs_again(e, j, -1, "cannot start a request");
		return;
	}
	j->req = r;
}

static void
jobs_why(const struct http_req *r, char *why, size_t len)
{
	if (r->err != CURLE_OK)
		snprintf(why, len, "%s",
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->err));
	else
		snprintf(why, len, "HTTP %ld %.200s", r->status,
			 r->resp ? r->resp : "");
	for (char *p = why; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* A finished attempt. */
static void
jobs_answer(struct engine *e, struct job *j, struct http_req *r)
{
	enum push_outcome o = push_classify(r->status, r->err, r->resp);
	const struct slot *s = j->slot;
	char why[320];

	j->req = NULL;
	metric_observe(stats_get()->latency, r->seconds);
	jobs_why(r, why, sizeof(why));
	if (o == PUSH_RETRY)
		jobs_again(e, j, r->retry_after_s, why);
	else if (o == PUSH_OK)
		LOG_DEBUG("pusher.sent",
			  "%s seq %llu badge %llu to a %s device of %s",
			  s->room, (unsigned long long)j->seq,
			  (unsigned long long)j->badge,
			  push_platform_name(s->platform), s->user);
	else if (o == PUSH_DEAD)
		LOG_INFO("pusher.dead_token", "removing a %s device of %s: %s",
			 push_platform_name(s->platform), s->user, why);
	else
		LOG_WARN("pusher.refused",
			 "push of %s seq %llu to a %s device of %s dropped: %s",
			 s->room, (unsigned long long)j->seq,
			 push_platform_name(s->platform), s->user, why);
	if (o != PUSH_RETRY)
		jobs_finish(e, j, o);
	http_req_free(r);
}

void
jobs_run(struct engine *e)
{
	struct http_req *r;
	struct job **at = &e->queue, *ready = NULL;
	int64_t now = engine_now_ms();

	while ((r = http_next_done(e->http)) != NULL)
		jobs_answer(e, r->arg, r);
	if (e->stopping)
		return;
	/* Unlink what may start now, then start it (starting may queue). */
	while (*at) {
		struct job *j = *at;

		if (j->next_at_ms <= now &&
		    http_running(e->http) < (size_t)e->cfg->concurrency) {
			*at = j->next;
			j->next = ready;
			ready = j;
		} else {
			at = &j->next;
		}
	}
	while (ready) {
		struct job *j = ready;

		ready = j->next;
		if (http_running(e->http) < (size_t)e->cfg->concurrency)
			jobs_start(e, j);
		else
			jobs_enqueue(e, j);
	}
}

int64_t
jobs_next_ms(const struct engine *e)
{
	int64_t now = engine_now_ms(), t = INT64_MAX;

	if (http_running(e->http) >= (size_t)e->cfg->concurrency)
		return t;
	for (const struct job *j = e->queue; j; j = j->next)
		if (j->next_at_ms - now < t)
			t = j->next_at_ms - now;
	return t;
}

/* ---- recording ---- */

struct jobs_rows {
	struct db_sent *sent;
	struct db_dead *dead;
	struct db_offset *offs;
	size_t n_sent, n_dead, n_offs;
};

static void
jobs_rows(struct engine *e, struct jobs_rows *w)
{
	w->sent = xcalloc(e->n_done + 1, sizeof(*w->sent));
	w->dead = xcalloc(e->n_done + 1, sizeof(*w->dead));
	w->offs = xcalloc((size_t)e->ledger.n + 1, sizeof(*w->offs));
	for (size_t i = 0; i < e->n_done; i++) {
		const struct job *j = e->done[i];
		const struct slot *s = j->slot;

		if (j->outcome == PUSH_OK)
			w->sent[w->n_sent++] =
				(struct db_sent){ s->platform, s->token,
						  s->room, j->seq,
						  j->started_ms };
		else if (j->outcome == PUSH_DEAD)
			w->dead[w->n_dead++] =
				(struct db_dead){ s->platform, s->token,
						  j->started_ms };
		ledger_unref(&e->ledger, &j->hold);
	}
	for (int32_t p = 0; p < e->ledger.n; p++) {
		int64_t safe = ledger_safe(&e->ledger, p);

		if (safe >= 0 && safe != e->ledger.parts[p].stored)
			w->offs[w->n_offs++] = (struct db_offset){ p, safe };
	}
}

int
jobs_flush(struct engine *e, bool force)
{
	struct jobs_rows w = { 0 };
	int rc;

	if (e->n_done == 0 && !force)
		return 0;
	jobs_rows(e, &w);
	rc = db_connect(e->db);
	if (rc == 0)
		rc = db_record(e->db, e->cfg->topic, w.sent, w.n_sent, w.dead,
			       w.n_dead, w.offs, w.n_offs);
	for (size_t i = 0; rc < 0 && i < e->n_done; i++)
		ledger_ref(&e->ledger, &e->done[i]->hold); /* kept for later */
	for (size_t i = 0; rc == 0 && i < w.n_offs; i++) {
		e->ledger.parts[w.offs[i].part].stored = w.offs[i].next;
		ledger_trim(&e->ledger, w.offs[i].part);
	}
	for (size_t i = 0; rc == 0 && i < e->n_done; i++) {
		slots_job_done(e, e->done[i]->slot, e->done[i]);
		e->n_jobs--;
	}
	if (rc == 0)
		e->n_done = 0;
	free(w.sent);
	free(w.dead);
	free(w.offs);
	return rc;
}

void
jobs_free_all(struct engine *e)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&e->slots, &pos, &key, &val)) {
		struct slot *s = val;
		struct job *j = s->job;

		if (j == NULL)
			continue;
		if (j->req) {
			http_cancel(e->http, j->req);
			http_req_free(j->req);
		}
		free(j->sender);
		free(j->preview);
		free(j);
		s->job = NULL;
	}
	e->queue = NULL;
	e->n_jobs = e->n_done = 0;
}
