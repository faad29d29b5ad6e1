/* api_load: many concurrent callers on ONE libparley-client (one NNG
 * socket): THREADS threads each publish N messages into ROOM as the
 * system, keys PREFIX-<thread>-<i>, each call with DEADLINE_MS. Prints one
 * line per call: "KEY SEQ DUP" when acknowledged, "KEY ERR RC" when not
 * (RC: negative errno or a parley.server.v1.Code), so a test can count
 * what was acknowledged against what the room holds.
 * Usage: PARLEY_API_URL=.. PARLEY_API_KEY=.. api_load ROOM THREADS N
 *        PREFIX DEADLINE_MS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "parley_client.h"

struct load {
	struct parley_client *c;
	const char *room, *prefix;
	int thread, n, deadline_ms;
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* A decimal argument, or -1 when it is not one. */
static int
load_int(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s && *end == '\0' && v >= 0 && v <= 1000000 ? (int)v : -1;
}

static void *
load_thread(void *arg)
{
	struct load *l = arg;
	char key[128], body[160];

	for (int i = 0; i < l->n; i++) {
		struct parley_post p = { .room_id = l->room,
					 .key = key,
					 .body = body };
		uint64_t seq = 0;
		int rc;

		snprintf(key, sizeof(key), "%s-%d-%d", l->prefix, l->thread, i);
		snprintf(body, sizeof(body), "load %s", key);
		rc = parley_publish(l->c, &p, l->deadline_ms, &seq);
		pthread_mutex_lock(&out_lock);
		if (rc == 0)
			printf("%s %llu\n", key, (unsigned long long)seq);
		else
			printf("%s ERR %d\n", key, rc);
		fflush(stdout);
		pthread_mutex_unlock(&out_lock);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct parley_client *c;
	struct load *ls;
	pthread_t *ts;
	int threads;

	if (argc != 6) {
		fprintf(stderr, "usage: api_load ROOM THREADS N PREFIX "
				"DEADLINE_MS\n");
		return 2;
	}
	c = parley_client_new(getenv("PARLEY_API_URL"),
			      getenv("PARLEY_API_KEY"));
	threads = load_int(argv[2]);
	if (c == NULL || threads < 1 || threads > 1000 ||
	    load_int(argv[3]) < 0 || load_int(argv[5]) < 1)
		return 2;
	ls = calloc((size_t)threads, sizeof(*ls));
	ts = calloc((size_t)threads, sizeof(*ts));
	for (int i = 0; i < threads; i++) {
		ls[i] = (struct load){
			c, argv[1],	      argv[4],
			i, load_int(argv[3]), load_int(argv[5])
		};
		if (pthread_create(&ts[i], NULL, load_thread, &ls[i]))
			return 1;
	}
	for (int i = 0; i < threads; i++)
		pthread_join(ts[i], NULL);
	parley_client_free(c);
	free(ls);
	free(ts);
	return 0;
}
