/* The row changes of one batch of log records, copied out of the fold as
 * each record is folded: new messages, room events, room and member state,
 * and the Kafka offsets the batch moves. db_batch_write turns it into SQL. */
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "store.h"
#include "xalloc.h"

void
batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	map_init(&b->rooms);
	map_init(&b->members);
}

static void
batch_room_free(struct batch_room *r)
{
	free(r->id);
	free(r->name);
	free(r->creator);
	free(r);
}

static void
batch_member_free(struct batch_member *m)
{
	free(m->room_id);
	free(m->user_id);
	free(m);
}

static void
batch_message_release(struct batch_message *m)
{
	free(m->room_id);
	free(m->sender_id);
	free(m->client_msg_id);
	free(m->body);
}

static void
batch_event_release(struct batch_event *e)
{
	free(e->room_id);
	free(e->actor);
	free(e->user_ids);
}

void
batch_reset(struct batch *b)
{
	size_t pos = 0;
	const char *key;
	void *val;

	while (map_next(&b->rooms, &pos, &key, &val))
		batch_room_free(val);
	pos = 0;
	while (map_next(&b->members, &pos, &key, &val))
		batch_member_free(val);
	map_release(&b->rooms);
	map_release(&b->members);
	map_init(&b->rooms);
	map_init(&b->members);
	for (size_t i = 0; i < b->n_msgs; i++)
		batch_message_release(&b->msgs[i]);
	b->n_msgs = 0;
	for (size_t i = 0; i < b->n_events; i++)
		batch_event_release(&b->events[i]);
	b->n_events = 0;
	b->n_offs = 0;
	b->records = b->skipped = b->accepted = 0;
	b->duplicates = b->rejected = b->gaps = 0;
}

void
batch_release(struct batch *b)
{
	batch_reset(b);
	map_release(&b->rooms);
	map_release(&b->members);
	free(b->msgs);
	free(b->events);
	free(b->offs);
	memset(b, 0, sizeof(*b));
}

bool
batch_empty(const struct batch *b)
{
	return b->records == 0 && b->n_offs == 0;
}

char *
batch_member_key(const char *room_id, const char *user_id)
{
	return xasprintf("%zu:%s%s", strlen(room_id), room_id, user_id);
}

/* The batch's copy of room r, made on first use and kept current. */
static struct batch_room *
batch_room(struct batch *b, const struct fold_room *r)
{
	struct batch_room *br = map_get(&b->rooms, r->id);

	if (br == NULL) {
		br = xcalloc(1, sizeof(*br));
		br->id = xstrdup(r->id);
		br->name = xstrdup(r->name ? r->name : "");
		br->kind = r->kind;
		br->creator = r->creator ? xstrdup(r->creator) : NULL;
		map_put(&b->rooms, r->id, br);
	}
	br->last_seq = r->last_seq;
	br->last_ts = r->last_ts;
	br->deleted = r->deleted;
	return br;
}

static struct batch_member *
batch_member(struct batch *b, const char *room_id, const char *user)
{
	char *key = batch_member_key(room_id, user);
	struct batch_member *m = map_get(&b->members, key);

	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		m->room_id = xstrdup(room_id);
		m->user_id = xstrdup(user);
		map_put(&b->members, key, m);
	}
	free(key);
	return m;
}

/* Copy user's membership in r as the fold has it now, if a member. */
static void
batch_note_member(struct batch *b, const struct fold_room *r, const char *user)
{
	const struct fold_member *fm = fold_room_member(r, user);
	struct batch_member *m;

	if (fm == NULL)
		return;
	m = batch_member(b, r->id, user);
	m->present = true;
	m->known = true;
	m->joined_after = fm->joined_after;
	m->delivered = fm->delivered;
	m->read = fm->read;
	m->left_after = 0;
}

/* user's membership of r ended after left_after; its markers stay. */
static void
batch_note_removed(struct batch *b, const struct fold_room *r, const char *user,
		   uint64_t left_after)
{
	struct batch_member *m = batch_member(b, r->id, user);

	m->present = false;
	m->left_after = left_after;
}

static void
batch_note_all_members(struct batch *b, const struct fold_room *r)
{
	size_t pos = 0;
	const char *user;
	void *val;

	while (map_next(&r->members, &pos, &user, &val))
		batch_note_member(b, r, user);
}

static void
batch_add_message(struct batch *b, const Parley__Log__V1__Record *rec,
		  const struct fold_result *res)
{
	struct batch_message *m;

	if (b->n_msgs == b->cap_msgs) {
		b->cap_msgs = b->cap_msgs ? b->cap_msgs * 2 : 64;
		b->msgs = xrealloc(b->msgs, b->cap_msgs * sizeof(*b->msgs));
	}
	m = &b->msgs[b->n_msgs++];
	m->room_id = xstrdup(rec->room_id);
	m->sender_id = xstrdup(rec->actor);
	m->client_msg_id = xstrdup(rec->post->client_msg_id);
	m->body = pgarr_text(rec->post->body ? rec->post->body : "");
	m->seq = res->seq;
	m->ts_ms = res->ts_ms;
}

/* The valid user ids of ids joined by ','. */
static char *
batch_join(char *const *ids, size_t n)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < n; i++)
		if (jwt_valid_user(ids[i]))
			len += strlen(ids[i]) + 1;
	p = s = xmalloc(len);
	*p = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!jwt_valid_user(ids[i]))
			continue;
		if (p != s)
			*p++ = ',';
		p = stpcpy(p, ids[i]);
	}
	return s;
}

static int
batch_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The members of r, sorted, joined by ','. */
static char *
batch_members(const struct fold_room *r)
{
	char **ids = xcalloc(map_count(&r->members) + 1, sizeof(*ids));
	size_t pos = 0, n = 0;
	const char *key;
	void *val;
	char *s;

	while (map_next(&r->members, &pos, &key, &val))
		ids[n++] = (char *)key;
	qsort(ids, n, sizeof(*ids), batch_cmp_str);
	s = batch_join(ids, n);
	free(ids);
	return s;
}

/* The RoomEvent kind and users of an accepted record; 0 when none. */
static int
batch_event_kind(const Parley__Log__V1__Record *rec,
		 const struct fold_result *res, char **users)
{
	switch (rec->body_case) {
	case PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM:
		*users = batch_members(res->room);
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_CREATED;
	case PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS:
		*users = batch_join(rec->add_members->user_ids,
				    rec->add_members->n_user_ids);
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_MEMBERS_ADDED;
	case PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER:
		*users = xstrdup(res->removed);
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_MEMBER_REMOVED;
	case PARLEY__LOG__V1__RECORD__BODY_LEAVE:
		*users = xstrdup(res->removed);
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_MEMBER_LEFT;
	case PARLEY__LOG__V1__RECORD__BODY_DELETE_ROOM:
		*users = batch_join(res->removed_all, res->n_removed_all);
		return PARLEY__V1__ROOM_EVENT_KIND__ROOM_EVENT_KIND_DELETED;
	default:
		return 0;
	}
}

static void
batch_add_event(struct batch *b, int32_t part, int64_t offset,
		const Parley__Log__V1__Record *rec,
		const struct fold_result *res)
{
	struct batch_event *e;
	char *users = NULL;
	int kind = batch_event_kind(rec, res, &users);

	if (kind == 0)
		return;
	if (b->n_events == b->cap_events) {
		b->cap_events = b->cap_events ? b->cap_events * 2 : 16;
		b->events =
			xrealloc(b->events, b->cap_events * sizeof(*b->events));
	}
	e = &b->events[b->n_events++];
	e->room_id = xstrdup(rec->room_id);
	e->actor = xstrdup(rec->actor);
	e->user_ids = users;
	e->kind = kind;
	e->part = part;
	e->offset = offset;
	e->after_seq = res->room->last_seq;
	e->ts_ms = res->ts_ms;
}

static void
batch_note_accepted(struct batch *b, const Parley__Log__V1__Record *rec,
		    const struct fold_result *res)
{
	const struct fold_room *r = res->room;

	switch (rec->body_case) {
	case PARLEY__LOG__V1__RECORD__BODY_POST:
		batch_add_message(b, rec, res);
		break;
	case PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS:
		for (size_t i = 0; i < rec->add_members->n_user_ids; i++)
			batch_note_member(b, r, rec->add_members->user_ids[i]);
		break;
	case PARLEY__LOG__V1__RECORD__BODY_MARKER:
		batch_note_member(b, r, rec->actor);
		break;
	default:
		break;
	}
	if (res->removed)
		batch_note_removed(b, r, res->removed, r->last_seq);
	for (size_t i = 0; i < res->n_removed_all; i++)
		batch_note_removed(b, r, res->removed_all[i], r->last_seq);
}

static void
batch_count(struct batch *b, enum fold_verdict v)
{
	b->records++;
	if (v == FOLD_ACCEPTED)
		b->accepted++;
	else if (v == FOLD_DUPLICATE)
		b->duplicates++;
	else
		b->rejected++;
}

void
batch_note(struct batch *b, int32_t part, int64_t offset,
	   const Parley__Log__V1__Record *rec, const struct fold_result *res)
{
	struct batch_room *br;

	batch_count(b, res->verdict);
	if (res->room == NULL)
		return;
	/* Room time and last_seq as the fold has them, whatever the
	 * verdict: the database then holds exactly the fold's state. */
	br = batch_room(b, res->room);
	if (res->created) {
		br->created_ts = res->ts_ms;
		batch_note_all_members(b, res->room);
	}
	if (res->verdict == FOLD_ACCEPTED) {
		batch_note_accepted(b, rec, res);
		batch_add_event(b, part, offset, rec, res);
	}
}

void
batch_offset(struct batch *b, int32_t part, int64_t expected, int64_t offset)
{
	struct batch_offset *o = NULL;

	for (size_t i = 0; i < b->n_offs && o == NULL; i++)
		if (b->offs[i].part == part)
			o = &b->offs[i];
	if (o == NULL) {
		if (b->n_offs == b->cap_offs) {
			b->cap_offs = b->cap_offs ? b->cap_offs * 2 : 16;
			b->offs = xrealloc(b->offs,
					   b->cap_offs * sizeof(*b->offs));
		}
		o = &b->offs[b->n_offs++];
		o->part = part;
		o->expected = expected;
		o->next = expected;
	}
	/* Our producers are idempotent, not transactional, and the topic is
	 * never compacted, so offsets within a partition are dense. */
	if (o->next >= 0 && offset > o->next)
		b->gaps++;
	if (offset + 1 > o->next)
		o->next = offset + 1;
}
