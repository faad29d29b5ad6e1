/* The deterministic per-room fold of log records (rules in fold.h). Rooms
 * live in a map; each keeps its members and a ring of recent post ids for
 * the dedup window. */
#include "fold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "parley/v1/client.pb-c.h"
#include "utf8.h"
#include "xalloc.h"

struct fold {
	struct map rooms; /* room id -> struct fold_room * */
	char **removed;	  /* the last DeleteRoom's members (fold_result) */
	size_t n_removed;
	int (*load)(void *ctx, struct fold *f, const char *room_id);
	void *load_ctx;
};

struct fold *
fold_new(void)
{
	struct fold *f = xcalloc(1, sizeof(*f));

	map_init(&f->rooms);
	return f;
}

static void
fold_room_free(struct fold_room *r)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&r->members, &pos, &key, &val))
		free(val);
	map_release(&r->members);
	map_release(&r->dedup);
	for (uint64_t i = 0; i < r->ring_len; i++)
		free(r->ring[(r->ring_head + i) % r->ring_cap].key);
	free(r->ring);
	free(r->id);
	free(r->name);
	free(r->creator);
	free(r);
}

static void
fold_removed_clear(struct fold *f)
{
	for (size_t i = 0; i < f->n_removed; i++)
		free(f->removed[i]);
	free(f->removed);
	f->removed = NULL;
	f->n_removed = 0;
}

void
fold_free(struct fold *f)
{
	size_t pos = 0;
	const char *key;
	void *val;

	if (f == NULL)
		return;
	while (map_next(&f->rooms, &pos, &key, &val))
		fold_room_free(val);
	map_release(&f->rooms);
	fold_removed_clear(f);
	free(f);
}

void
fold_set_loader(struct fold *f,
		int (*load)(void *ctx, struct fold *f, const char *room_id),
		void *ctx)
{
	f->load = load;
	f->load_ctx = ctx;
}

struct fold_room *
fold_room_get(struct fold *f, const char *room_id)
{
	return map_get(&f->rooms, room_id);
}

size_t
fold_room_count(const struct fold *f)
{
	return map_count(&f->rooms);
}

struct fold_room *
fold_room_new(struct fold *f, const char *room_id, enum fold_kind kind,
	      const char *name)
{
	struct fold_room *r = map_get(&f->rooms, room_id);

	if (r)
		return r;
	r = xcalloc(1, sizeof(*r));
	r->id = xstrdup(room_id);
	r->name = xstrdup(name ? name : "");
	r->kind = kind;
	map_init(&r->members);
	map_init(&r->dedup);
	map_put(&f->rooms, room_id, r);
	return r;
}

struct fold_member *
fold_room_member(const struct fold_room *r, const char *user)
{
	return map_get(&r->members, user);
}

void
fold_room_set_member(struct fold_room *r, const char *user,
		     const struct fold_member *m)
{
	struct fold_member *cur = map_get(&r->members, user);

	if (cur == NULL) {
		cur = xmalloc(sizeof(*cur));
		map_put(&r->members, user, cur);
	}
	*cur = *m;
}

void
fold_room_set_creator(struct fold_room *r, const char *user)
{
	free(r->creator);
	r->creator = xstrdup(user);
}

static void
fold_room_drop_member(struct fold_room *r, const char *user)
{
	free(map_del(&r->members, user));
}

/* Dedup ring. */

static char *
fold_dedup_key(const char *sender, const char *client_msg_id)
{
	return xasprintf("%s\n%s", sender, client_msg_id);
}

static struct fold_dedup_entry *
fold_ring_at(struct fold_room *r, uint64_t i)
{
	return &r->ring[(r->ring_head + i) % r->ring_cap];
}

static void
fold_ring_grow(struct fold_room *r)
{
	uint64_t cap = r->ring_cap ? r->ring_cap * 2 : 16;
	struct fold_dedup_entry *ring = xcalloc(cap, sizeof(*ring));

	for (uint64_t i = 0; i < r->ring_len; i++)
		ring[i] = *fold_ring_at(r, i);
	free(r->ring);
	r->ring = ring;
	r->ring_cap = cap;
	r->ring_head = 0;
}

/* Forget the oldest remembered post. */
static void
fold_ring_pop(struct fold_room *r)
{
	struct fold_dedup_entry *e = fold_ring_at(r, 0);

	if (map_get(&r->dedup, e->key) == e)
		map_del(&r->dedup, e->key);
	free(e->key);
	r->ring_head = (r->ring_head + 1) % r->ring_cap;
	r->ring_len--;
}

/* Forget posts that fell out of the window as of room time now. */
static void
fold_ring_expire(struct fold_room *r, int64_t now)
{
	while (r->ring_len > 0 &&
	       (fold_ring_at(r, 0)->ts < now - FOLD_DEDUP_WINDOW_MS ||
		r->ring_len > FOLD_DEDUP_MAX))
		fold_ring_pop(r);
}

/* Remember a post; the ring moves, so the map is rebuilt when it grows. */
static void
fold_ring_push(struct fold_room *r, char *key, uint64_t seq, int64_t ts)
{
	struct fold_dedup_entry *e;

	if (r->ring_len == r->ring_cap) {
		fold_ring_grow(r);
		for (uint64_t i = 0; i < r->ring_len; i++)
			map_put(&r->dedup, fold_ring_at(r, i)->key,
				fold_ring_at(r, i));
	}
	e = fold_ring_at(r, r->ring_len++);
	e->key = key;
	e->seq = seq;
	e->ts = ts;
	map_put(&r->dedup, key, e);
	if (r->ring_len > FOLD_DEDUP_MAX)
		fold_ring_pop(r);
}

void
fold_room_add_dedup(struct fold_room *r, const char *sender,
		    const char *client_msg_id, uint64_t seq, int64_t ts)
{
	fold_ring_push(r, fold_dedup_key(sender, client_msg_id), seq, ts);
}

/* DM ids. */

bool
fold_dm_parse(const char *id, char *a, char *b)
{
	char u1[JWT_SUB_MAX + 1], u2[JWT_SUB_MAX + 1];
	const char *sep;
	size_t n1;

	if (strncmp(id, "dm:", 3) != 0)
		return false;
	id += 3;
	sep = strchr(id, ':');
	if (sep == NULL || (n1 = (size_t)(sep - id)) > JWT_SUB_MAX ||
	    strlen(sep + 1) > JWT_SUB_MAX)
		return false;
	memcpy(u1, id, n1);
	u1[n1] = '\0';
	strcpy(u2, sep + 1);
	if (!jwt_valid_user(u1) || !jwt_valid_user(u2) || strcmp(u1, u2) >= 0)
		return false;
	if (a)
		strcpy(a, u1);
	if (b)
		strcpy(b, u2);
	return true;
}

char *
fold_dm_id(const char *u1, const char *u2)
{
	int c = strcmp(u1, u2);

	if (c == 0 || !jwt_valid_user(u1) || !jwt_valid_user(u2))
		return NULL;
	return c < 0 ? xasprintf("dm:%s:%s", u1, u2)
		     : xasprintf("dm:%s:%s", u2, u1);
}

/* Verdicts. */

static int
fold_reject(struct fold_result *out, int code, const char *reason)
{
	out->verdict = FOLD_REJECTED;
	out->error = code;
	out->reason = reason;
	return 0;
}

static int
fold_accept(struct fold_result *out, const struct fold_room *r)
{
	out->verdict = FOLD_ACCEPTED;
	out->seq = r->last_seq;
	return 0;
}

static int
fold_duplicate(struct fold_result *out, uint64_t seq)
{
	out->verdict = FOLD_DUPLICATE;
	out->seq = seq;
	return 0;
}

static void
fold_join(struct fold_room *r, const char *user)
{
	struct fold_member m = { .joined_after = r->last_seq };

	if (fold_room_member(r, user) == NULL)
		fold_room_set_member(r, user, &m);
}

/* The room of a DM id, created on first use by one of its two users. */
static struct fold_room *
fold_dm_room(struct fold *f, const char *id, const char *actor,
	     struct fold_result *out)
{
	char a[JWT_SUB_MAX + 1], b[JWT_SUB_MAX + 1];
	struct fold_room *r;

	if (!fold_dm_parse(id, a, b) ||
	    (strcmp(actor, a) != 0 && strcmp(actor, b) != 0))
		return NULL;
	r = fold_room_new(f, id, FOLD_DIRECT, "");
	fold_join(r, a);
	fold_join(r, b);
	out->created = true;
	return r;
}

static int
fold_post(struct fold *f, struct fold_room *r,
	  const Parley__Log__V1__Record *rec, struct fold_result *out)
{
	const Parley__Log__V1__Post *p = rec->post;
	struct fold_dedup_entry *e;
	char *key;

	if (r == NULL)
		r = fold_dm_room(f, rec->room_id, rec->actor, out);
	if (r == NULL)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				   "no such room");
	out->room = r;
	if (r->deleted)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				   "room deleted");
	if (!rec->server && fold_room_member(r, rec->actor) == NULL)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				   "not a member of this room");
	if (p->client_msg_id == NULL || p->client_msg_id[0] == '\0')
		return fold_reject(
			out, PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			"client_msg_id is required");
	fold_ring_expire(r, out->ts_ms);
	key = fold_dedup_key(rec->actor, p->client_msg_id);
	e = map_get(&r->dedup, key);
	if (e) {
		free(key);
		out->ts_ms = e->ts;
		return fold_duplicate(out, e->seq);
	}
	r->last_seq++;
	r->last_ts = out->ts_ms;
	fold_ring_push(r, key, r->last_seq, out->ts_ms);
	return fold_accept(out, r);
}

static int
fold_create(struct fold *f, struct fold_room *r,
	    const Parley__Log__V1__Record *rec, struct fold_result *out)
{
	const Parley__Log__V1__CreateRoom *c = rec->create_room;

	if (r) {
		out->room = r;
		if (r->deleted)
			return fold_reject(
				out,
				PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				"room deleted");
		if (r->kind == FOLD_GROUP &&
		    (rec->server || fold_room_member(r, rec->actor)))
			return fold_duplicate(out, r->last_seq);
		return fold_reject(
			out, PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			"room exists");
	}
	if (strncmp(rec->room_id, "dm:", 3) == 0)
		return fold_reject(
			out, PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			"direct rooms are made by their first message");
	r = fold_room_new(f, rec->room_id, FOLD_GROUP, c->name);
	fold_room_set_creator(r, rec->actor);
	out->room = r;
	out->created = true;
	r->last_ts = out->ts_ms;
	fold_join(r, rec->actor);
	for (size_t i = 0; i < c->n_member_ids; i++)
		if (jwt_valid_user(c->member_ids[i]))
			fold_join(r, c->member_ids[i]);
	return fold_accept(out, r);
}

/* Shared checks of membership changes: an existing group and a member. */
static int
fold_group_check(struct fold_room *r, const Parley__Log__V1__Record *rec,
		 struct fold_result *out)
{
	out->room = r;
	if (r == NULL)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				   "no such room");
	if (r->deleted)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				   "room deleted");
	if (!rec->server && fold_room_member(r, rec->actor) == NULL)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				   "not a member of this room");
	if (r->kind != FOLD_GROUP)
		return fold_reject(
			out, PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			"direct rooms have fixed members");
	return 1;
}

/* Members the room would have after a (repeats and members counted once). */
static size_t
fold_add_count(struct fold_room *r, const Parley__Log__V1__AddMembers *a)
{
	size_t n = map_count(&r->members);
	struct map seen;

	map_init(&seen);
	for (size_t i = 0; i < a->n_user_ids; i++) {
		const char *u = a->user_ids[i];

		if (jwt_valid_user(u) && fold_room_member(r, u) == NULL &&
		    map_get(&seen, u) == NULL) {
			map_put(&seen, u, (void *)1);
			n++;
		}
	}
	map_release(&seen);
	return n;
}

static int
fold_add(struct fold_room *r, const Parley__Log__V1__Record *rec,
	 struct fold_result *out)
{
	const Parley__Log__V1__AddMembers *a = rec->add_members;
	size_t before;
	int rc = fold_group_check(r, rec, out);

	if (rc != 1)
		return rc;
	if (a->max_members && fold_add_count(r, a) > a->max_members)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				   "room full: members limit reached");
	before = map_count(&r->members);
	for (size_t i = 0; i < a->n_user_ids; i++)
		if (jwt_valid_user(a->user_ids[i]))
			fold_join(r, a->user_ids[i]);
	if (map_count(&r->members) == before)
		return fold_duplicate(out, r->last_seq);
	return fold_accept(out, r);
}

static int
fold_remove(struct fold_room *r, const Parley__Log__V1__Record *rec,
	    const char *user, struct fold_result *out)
{
	int rc = fold_group_check(r, rec, out);

	if (rc != 1)
		return rc;
	if (user == NULL || fold_room_member(r, user) == NULL)
		return fold_duplicate(out, r->last_seq);
	if (!rec->server && strcmp(user, rec->actor) != 0 &&
	    (r->creator == NULL || strcmp(r->creator, rec->actor) != 0))
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				   "only the room's creator removes members");
	fold_room_drop_member(r, user);
	out->removed = user;
	return fold_accept(out, r);
}

static int
fold_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* DeleteRoom: every member goes (listed in out), the room closes. */
static int
fold_delete(struct fold *f, struct fold_room *r,
	    const Parley__Log__V1__Record *rec, struct fold_result *out)
{
	size_t pos = 0;
	const char *key;
	void *val;
	int rc;

	if (r && r->deleted) {
		out->room = r;
		return fold_duplicate(out, r->last_seq);
	}
	if (!rec->server)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				   "rooms are deleted through the server API");
	if ((rc = fold_group_check(r, rec, out)) != 1)
		return rc;
	f->removed = xcalloc(map_count(&r->members) + 1, sizeof(char *));
	while (map_next(&r->members, &pos, &key, &val))
		f->removed[f->n_removed++] = xstrdup(key);
	qsort(f->removed, f->n_removed, sizeof(char *), fold_cmp_str);
	for (size_t i = 0; i < f->n_removed; i++)
		fold_room_drop_member(r, f->removed[i]);
	r->deleted = true;
	out->removed_all = f->removed;
	out->n_removed_all = f->n_removed;
	return fold_accept(out, r);
}

static int
fold_marker(struct fold_room *r, const Parley__Log__V1__Record *rec,
	    struct fold_result *out)
{
	const Parley__Log__V1__Marker *mk = rec->marker;
	struct fold_member *m;
	uint64_t seq, *cur;

	out->room = r;
	if (r == NULL)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
				   "no such room");
	m = fold_room_member(r, rec->actor);
	if (m == NULL)
		return fold_reject(out,
				   PARLEY__V1__ERROR_CODE__ERROR_CODE_FORBIDDEN,
				   "not a member of this room");
	seq = mk->seq < r->last_seq ? mk->seq : r->last_seq;
	cur = mk->read ? &m->read : &m->delivered;
	if (seq <= *cur)
		return fold_duplicate(out, *cur);
	*cur = seq;
	/* Reading implies delivery. */
	if (mk->read && m->delivered < seq)
		m->delivered = seq;
	out->verdict = FOLD_ACCEPTED;
	out->seq = seq;
	return 0;
}

static int
fold_dispatch(struct fold *f, struct fold_room *r,
	      const Parley__Log__V1__Record *rec, struct fold_result *out)
{
	switch (rec->body_case) {
	case PARLEY__LOG__V1__RECORD__BODY_POST:
		return fold_post(f, r, rec, out);
	case PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM:
		return fold_create(f, r, rec, out);
	case PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS:
		return fold_add(r, rec, out);
	case PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER:
		return fold_remove(r, rec, rec->remove_member->user_id, out);
	case PARLEY__LOG__V1__RECORD__BODY_LEAVE:
		return fold_remove(r, rec, rec->actor, out);
	case PARLEY__LOG__V1__RECORD__BODY_MARKER:
		return fold_marker(r, rec, out);
	case PARLEY__LOG__V1__RECORD__BODY_DELETE_ROOM:
		return fold_delete(f, r, rec, out);
	default:
		return fold_reject(
			out, PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			"unknown record");
	}
}

int
fold_apply(struct fold *f, const Parley__Log__V1__Record *rec,
	   struct fold_result *out)
{
	struct fold_room *r;

	memset(out, 0, sizeof(*out));
	fold_removed_clear(f);
	if (rec->room_id == NULL || rec->actor == NULL ||
	    !jwt_valid_user(rec->actor) || !utf8_valid(rec->room_id) ||
	    (rec->body_case == PARLEY__LOG__V1__RECORD__BODY_POST &&
	     !utf8_valid(rec->post->client_msg_id)))
		return fold_reject(
			out, PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST,
			"record without valid room or actor");
	r = fold_room_get(f, rec->room_id);
	if (r == NULL && f->load) {
		int rc = f->load(f->load_ctx, f, rec->room_id);

		if (rc < 0)
			return rc;
		r = fold_room_get(f, rec->room_id);
	}
	out->ts_ms = rec->ts_ms;
	if (r && r->last_ts > out->ts_ms)
		out->ts_ms = r->last_ts;
	return fold_dispatch(f, r, rec, out);
}
