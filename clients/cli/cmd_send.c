/* `parley send`: post one message and wait for its durable ack. Retries
 * (after errors marked retryable, disconnects, silence) reuse the same
 * client_msg_id and rotate through the gateways, so they never make a
 * second message (G2). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "event.h"
#include "xalloc.h"

/* No answer within this long after a Send: try again. */
#define SEND_ATTEMPT_MS		5000
#define SEND_DEFAULT_TIMEOUT_MS 30000

enum { SEND_OPT_ID = CLI_OPT_LOCAL, SEND_OPT_UNSAFE_NEW_ID };

/* What one attempt ended with, besides -errno from the session. */
enum send_verdict {
	SEND_ACKED = 1,	  /* job.ack holds the SendAck */
	SEND_REFUSED = 2, /* non-retryable Error: job.exit says how to exit */
	SEND_RETRY = 3,	  /* retryable Error */
};

struct send_job {
	struct cli_session s;
	const char *room;
	const char *body;
	const char *cmid; /* --id, or random_id */
	char random_id[CLI_ID_HEX];
	uint64_t request_id;	      /* of the Send in flight */
	bool written;		      /* a Send was queued on an open session */
	bool unsafe_new_id;	      /* --unsafe-new-id-per-attempt */
	Parley__V1__ServerFrame *ack; /* owned; set with SEND_ACKED */
	int exit;
};

static const char send_usage[] =
	"Usage: parley send (--as USER | --token TOKEN) [--id ID] [--url URL]...\n"
	"                   [--timeout S] ROOM BODY\n"
	"\n"
	"Send BODY to ROOM (dm:alice:bob for a direct room) and print the\n"
	"ack as one JSON line:\n"
	"  {\"type\":\"ack\",\"room_id\",\"seq\",\"client_msg_id\",\"ts_ms\","
	"\"duplicate\"}\n"
	"Retries with the same client_msg_id after a retryable error, a lost\n"
	"connection or 5 s without an answer, with backoff from 100 ms to 2 s,\n"
	"rotating through the gateways, until the timeout. Put -- before a\n"
	"BODY that starts with '-'.\n"
	"\n"
	"  --id ID         client_msg_id (default: 128 random bits in hex);\n"
	"                  the same id never makes a second message\n"
	"  --timeout S     give up after S seconds (default 30): exit 3 once a\n"
	"                  Send went out (its fate is unknown), else 4\n"
	"  --unsafe-new-id-per-attempt\n"
	"                  FOR TESTS ONLY: every retry gets a fresh random\n"
	"                  client_msg_id (said on stderr), i.e. client-side\n"
	"                  idempotence off; a retry can then make a second\n"
	"                  message. The fault tests use it to show that their\n"
	"                  checker catches duplicates.\n"
	"  --as, --token, --url, --help: see 'parley --help'\n"
	"\n"
	"Exit: 0 acked, 1 refused by the server, 2 usage, 3 timeout,\n"
	"4 cannot connect or authentication refused.\n";

static const struct option send_options[] = {
	CLI_SESSION_OPTIONS,
	{ "id", required_argument, NULL, SEND_OPT_ID },
	{ "unsafe-new-id-per-attempt", no_argument, NULL,
	  SEND_OPT_UNSAFE_NEW_ID },
	{ NULL, 0, NULL, 0 },
};

static int
send_parse(struct send_job *job, int argc, char **argv)
{
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", send_options, NULL)) != -1) {
		if (opt == SEND_OPT_ID) {
			job->cmid = optarg;
			continue;
		}
		if (opt == SEND_OPT_UNSAFE_NEW_ID) {
			job->unsafe_new_id = true;
			continue;
		}
		rc = cli_session_opt(&job->s, opt, optarg);
		if (rc)
			return rc;
	}
	if (argc - optind != 2)
		return cli_usage("send", "give ROOM and BODY");
	job->room = argv[optind];
	job->body = argv[optind + 1];
	if (job->cmid && !*job->cmid)
		return cli_usage("send", "--id must not be empty");
	return cli_session_ready(&job->s);
}

static bool
send_is_ours(const struct send_job *job, const Parley__V1__ServerFrame *f)
{
	return f->request_id == job->request_id ||
	       !strcmp(f->error->client_msg_id, job->cmid);
}

static int
send_on_error(struct send_job *job, const Parley__V1__Error *e)
{
	if (e->retryable) {
		fprintf(stderr, "parley send: retryable error, retrying: %s\n",
			e->message);
		return SEND_RETRY;
	}
	job->exit = cli_server_error("send", e);
	return SEND_REFUSED;
}

/* Our SendAck or Error among everything the server pushes, else 0. */
static int
send_classify(struct send_job *job, const Parley__V1__ServerFrame *f)
{
	switch (f->msg_case) {
	case PARLEY__V1__SERVER_FRAME__MSG_SEND_ACK:
		if (strcmp(f->send_ack->client_msg_id, job->cmid) != 0)
			return 0;
		return SEND_ACKED;
	case PARLEY__V1__SERVER_FRAME__MSG_ERROR:
		return send_is_ours(job, f) ? send_on_error(job, f->error) : 0;
	default:
		return 0;
	}
}

/* Wait for the answer to our Send; SEND_* or -errno. */
static int
send_wait(struct send_job *job, struct conn *c, int64_t deadline_ms)
{
	Parley__V1__ServerFrame *f;
	int rc;

	do {
		rc = conn_recv(c, deadline_ms, &f);
		if (rc)
			return rc;
		rc = send_classify(job, f);
		if (rc == SEND_ACKED)
			job->ack = f;
		else
			parley__v1__server_frame__free_unpacked(f, NULL);
	} while (!rc);
	return rc;
}

/* One attempt through the next gateway: SEND_* or -errno. */
static int
send_attempt(struct send_job *job, int64_t end_ms)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__Send msg = PARLEY__V1__SEND__INIT;
	int64_t deadline;
	struct conn *c;
	int rc = cli_session_connect_one(&job->s, end_ms, &c);

	if (rc)
		return rc;
	msg.client_msg_id = (char *)job->cmid;
	msg.room_id = (char *)job->room;
	msg.body = (char *)job->body;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_SEND;
	f.send = &msg;
	rc = conn_send(c, &f);
	if (!rc) {
		job->written = true;
		job->request_id = f.request_id;
		deadline = conn_now_ms() + SEND_ATTEMPT_MS;
		rc = send_wait(job, c, deadline < end_ms ? deadline : end_ms);
	}
	conn_free(c);
	return rc;
}

/* Retryable errors were printed already; say more only when debugging. */
static void
send_note_retry(const struct send_job *job, int rc)
{
	if (rc != SEND_RETRY && getenv("PARLEY_DEBUG"))
		fprintf(stderr, "parley send: attempt via %s failed: %s\n",
			job->s.last_url, strerror(-rc));
}

static int
send_print_ack(struct send_job *job)
{
	struct json j;
	int rc;

	json_init(&j);
	event_ack(&j, job->ack->send_ack);
	rc = json_print_line(&j, stdout);
	json_release(&j);
	return rc ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

/* Session errors that no retry can mend. */
static bool
send_is_final(int err)
{
	return err == -EACCES || err == -EINVAL || err == -EPROTO ||
	       err == -EMSGSIZE;
}

/* Attempt until acked, refused or out of time; returns the exit code. */
static int
send_run(struct send_job *job, int64_t end_ms)
{
	int rc;

	for (int n = 0;; n++) {
		if (n > 0 && job->unsafe_new_id) {
			/* Tests only: idempotence off, see --help. */
			cli_random_id(job->random_id);
			job->cmid = job->random_id;
			fprintf(stderr,
				"parley send: unsafe: attempt %d uses new id "
				"%s\n",
				n + 1, job->cmid);
		}
		rc = send_attempt(job, end_ms);
		if (rc == SEND_ACKED)
			return send_print_ack(job);
		if (rc == SEND_REFUSED)
			return job->exit;
		if (send_is_final(rc))
			return cli_fail("send", job->s.last_url, rc);
		send_note_retry(job, rc);
		if (!cli_backoff(n, end_ms))
			break;
	}
	if (!job->written)
		return cli_fail("send", job->s.last_url, -ECONNREFUSED);
	fprintf(stderr,
		"parley send: no ack for %s in time; it may have "
		"been stored: retry with --id %s\n",
		job->cmid, job->cmid);
	return CLI_EXIT_TIMEOUT;
}

int
cmd_send(int argc, char **argv)
{
	struct send_job job;
	int rc;

	memset(&job, 0, sizeof(job));
	cli_session_init(&job.s, "send", send_usage);
	rc = send_parse(&job, argc, argv);
	if (!rc) {
		if (!job.cmid) {
			cli_random_id(job.random_id);
			job.cmid = job.random_id;
		}
		rc = send_run(&job, cli_session_deadline(
					    &job.s, SEND_DEFAULT_TIMEOUT_MS));
	}
	if (job.ack)
		parley__v1__server_frame__free_unpacked(job.ack, NULL);
	cli_session_release(&job.s);
	return rc == CLI_DONE ? CLI_EXIT_OK : rc;
}
