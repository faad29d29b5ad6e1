/* Test tool: produce parley.log.v1.Record lines from stdin into the log
 * topic with the idempotent producer, keyed by room, and wait for every
 * delivery. Prints "produced N"; exits 1 when any delivery failed.
 *   log_produce BROKERS TOPIC < lines
 * One tab-separated record per line (TS is the record's ts_ms):
 *   post ROOM ACTOR TS CLIENT_MSG_ID BODY
 *   create ROOM ACTOR TS NAME MEMBER[,MEMBER...]
 *   add ROOM ACTOR TS USER[,USER...]
 *   remove ROOM ACTOR TS USER
 *   leave ROOM ACTOR TS
 *   read|delivered ROOM ACTOR TS SEQ
 *   raw ROOM BYTES (the value as is: an undecodable record) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "parley/log/v1/record.pb-c.h"
#include "xalloc.h"

#define MAX_FIELDS 8

struct tally {
	long ok, failed;
};

static void
on_delivery(void *ctx, const struct kafka_delivery *d)
{
	struct tally *t = ctx;

	if (d->err)
		t->failed++;
	else
		t->ok++;
}

/* Split line at tabs in place; returns the field count. */
static int
split(char *line, char **f)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	while (n < MAX_FIELDS) {
		f[n++] = line;
		line = strchr(line, '\t');
		if (line == NULL)
			break;
		*line++ = '\0';
	}
	return n;
}

/* Comma-separated ids as a heap array of pointers into s. */
static char **
list(char *s, size_t *n)
{
	char **v = xcalloc(strlen(s) + 1, sizeof(*v));
	char *save = NULL;

	*n = 0;
	for (char *t = strtok_r(s, ",", &save); t;
	     t = strtok_r(NULL, ",", &save))
		v[(*n)++] = t;
	return v;
}

static int
body(Parley__Log__V1__Record *r, char **f, int n, void **parts)
{
	const char *k = f[0];

	if (strcmp(k, "post") == 0 && n >= 6) {
		Parley__Log__V1__Post *p = parts[0];

		p->client_msg_id = f[4];
		p->body = f[5];
		r->body_case = PARLEY__LOG__V1__RECORD__BODY_POST;
		r->post = p;
	} else if (strcmp(k, "create") == 0 && n >= 6) {
		Parley__Log__V1__CreateRoom *c = parts[1];

		c->name = f[4];
		c->member_ids = list(f[5], &c->n_member_ids);
		r->body_case = PARLEY__LOG__V1__RECORD__BODY_CREATE_ROOM;
		r->create_room = c;
	} else if (strcmp(k, "add") == 0 && n >= 5) {
		Parley__Log__V1__AddMembers *a = parts[2];

		a->user_ids = list(f[4], &a->n_user_ids);
		r->body_case = PARLEY__LOG__V1__RECORD__BODY_ADD_MEMBERS;
		r->add_members = a;
	} else if (strcmp(k, "remove") == 0 && n >= 5) {
		Parley__Log__V1__RemoveMember *rm = parts[3];

		rm->user_id = f[4];
		r->body_case = PARLEY__LOG__V1__RECORD__BODY_REMOVE_MEMBER;
		r->remove_member = rm;
	} else if (strcmp(k, "leave") == 0 && n >= 4) {
		r->body_case = PARLEY__LOG__V1__RECORD__BODY_LEAVE;
		r->leave = parts[4];
	} else if ((strcmp(k, "read") == 0 || strcmp(k, "delivered") == 0) &&
		   n >= 5) {
		Parley__Log__V1__Marker *m = parts[5];

		m->read = strcmp(k, "read") == 0;
		m->seq = strtoull(f[4], NULL, 10);
		r->body_case = PARLEY__LOG__V1__RECORD__BODY_MARKER;
		r->marker = m;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* Encode one line; returns a heap buffer and its length, NULL if bad. */
static void *
encode(char **f, int n, size_t *len)
{
	Parley__Log__V1__Record r = PARLEY__LOG__V1__RECORD__INIT;
	Parley__Log__V1__Post p = PARLEY__LOG__V1__POST__INIT;
	Parley__Log__V1__CreateRoom c = PARLEY__LOG__V1__CREATE_ROOM__INIT;
	Parley__Log__V1__AddMembers a = PARLEY__LOG__V1__ADD_MEMBERS__INIT;
	Parley__Log__V1__RemoveMember rm = PARLEY__LOG__V1__REMOVE_MEMBER__INIT;
	Parley__Log__V1__Leave lv = PARLEY__LOG__V1__LEAVE__INIT;
	Parley__Log__V1__Marker m = PARLEY__LOG__V1__MARKER__INIT;
	void *parts[] = { &p, &c, &a, &rm, &lv, &m };
	void *buf;

	if (n < 4)
		return NULL;
	r.room_id = f[1];
	r.actor = f[2];
	r.ts_ms = strtoll(f[3], NULL, 10);
	if (body(&r, f, n, parts) < 0)
		return NULL;
	*len = parley__log__v1__record__get_packed_size(&r);
	buf = xmalloc(*len ? *len : 1);
	parley__log__v1__record__pack(&r, buf);
	free(c.member_ids);
	free(a.user_ids);
	return buf;
}

static int
produce(struct kafka_producer *p, const char *topic, const char *key,
	const void *buf, size_t len)
{
	int rc;

	while ((rc = kafka_produce(p, topic, key, buf, len, NULL)) == -ENOBUFS)
		kafka_producer_poll(p, 100);
	return rc;
}

int
main(int argc, char **argv)
{
	struct tally t = { 0 };
	struct kafka_producer *p;
	char line[65536], *f[MAX_FIELDS];
	long lines = 0;
	const char *env;
	int parts;

	if (argc != 3) {
		fprintf(stderr, "usage: log_produce BROKERS TOPIC < lines\n");
		return 2;
	}
	log_init("log_produce");
	env = getenv("PARLEY_PARTITIONS");
	parts = env ? (int)strtol(env, NULL, 10) : 4;
	if (kafka_ensure_topic(argv[1], argv[2], parts, 30000) < 0)
		return 1;
	p = kafka_producer_new(argv[1], 30000, on_delivery, &t);
	if (p == NULL)
		return 1;
	while (fgets(line, sizeof(line), stdin)) {
		int n = split(line, f);
		size_t len = 0;
		void *buf = NULL;

		if (n >= 3 && strcmp(f[0], "raw") == 0)
			buf = xstrdup(f[2]), len = strlen(f[2]);
		else
			buf = encode(f, n, &len);
		if (buf == NULL || produce(p, argv[2], f[1], buf, len) < 0) {
			fprintf(stderr, "log_produce: bad line %ld\n",
				lines + 1);
			t.failed++;
		}
		free(buf);
		lines++;
		kafka_producer_poll(p, 0);
	}
	while (kafka_producer_outq(p) > 0)
		kafka_producer_poll(p, 100);
	kafka_producer_free(p, 10000);
	printf("produced %ld\n", t.ok);
	return t.failed ? 1 : 0;
}
