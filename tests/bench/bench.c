/* parley-bench main: options, the open-loop send schedule, receive-side
 * accounting (latency from the intended send time, loss and duplicates by
 * a per-receiver bitmap of sequence numbers) and the JSON report.
 *
 * One process holds senders and/or receivers. The schedule is global: the
 * g-th message of a step is due at t0 + g / rate and goes to stream
 * g % streams with sequence number g / streams, so one sender process
 * drives any number of streams in a fixed round-robin, never waiting for
 * the server (open loop). Every payload starts with a 42-byte ASCII header
 * "PB" stream(8 hex) step(4) seq(12) intended-send-time-ns(16), then 'x'
 * padding; CLOCK_MONOTONIC is shared by every process of the machine. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define TAG_TIMER  0xfffffff0u
#define TAG_SIGNAL 0xfffffff1u
#define TICK_NS	   1000000ull /* housekeeping: connect pacing, deadlines */

static volatile int dump_now;

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
usage(void)
{
	fputs("usage: parley-bench --proto parley|centrifugo|raw --url WS[,WS..]\n"
	      "  [--send] [--recv LO:HI] [--streams S] [--members N] [--dm]\n"
	      "  [--idle N] [--rate MSGS_PER_S] [--duration S] [--step K]\n"
	      "  [--drain S] [--size BYTES] [--secret S] [--prefix P]\n"
	      "  [--src N] [--out FILE] [--ready-file FILE] [--reconnect]\n"
	      "  [--max-opening N] [--setup-timeout S]\n",
	      stderr);
	exit(2);
}

/* A number from the command line; a malformed one is a usage error. */
static double
opt_num(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end)
		usage();
	return v;
}

static int
parse_url(const char *s, struct url *u)
{
	const char *h = s, *colon, *slash;

	if (!strncmp(h, "ws://", 5))
		h += 5;
	slash = strchr(h, '/');
	colon = memchr(h, ':', slash ? (size_t)(slash - h) : strlen(h));
	if (!colon || (size_t)(colon - h) >= sizeof(u->host))
		return -EINVAL;
	memcpy(u->host, h, (size_t)(colon - h));
	u->host[colon - h] = 0;
	u->port = (int)strtol(colon + 1, NULL, 10);
	snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "/");
	return u->port > 0 ? 0 : -EINVAL;
}

static void
parse_urls(struct bench_cfg *cfg, char *list)
{
	for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
		if (cfg->n_urls == BENCH_MAX_URLS ||
		    parse_url(t, &cfg->urls[cfg->n_urls]))
			usage();
		cfg->n_urls++;
	}
}

static const struct option bench_options[] = {
	{ "proto", 1, 0, 'p' },
	{ "url", 1, 0, 'u' },
	{ "send", 0, 0, 'S' },
	{ "recv", 1, 0, 'R' },
	{ "streams", 1, 0, 's' },
	{ "members", 1, 0, 'm' },
	{ "dm", 0, 0, 'D' },
	{ "idle", 1, 0, 'I' },
	{ "rate", 1, 0, 'r' },
	{ "duration", 1, 0, 'd' },
	{ "step", 1, 0, 'k' },
	{ "drain", 1, 0, 'w' },
	{ "size", 1, 0, 'z' },
	{ "secret", 1, 0, 'x' },
	{ "prefix", 1, 0, 'P' },
	{ "src", 1, 0, 'a' },
	{ "out", 1, 0, 'o' },
	{ "ready-file", 1, 0, 'y' },
	{ "reconnect", 0, 0, 'c' },
	{ "max-opening", 1, 0, 'M' },
	{ "setup-timeout", 1, 0, 'T' },
	{ 0, 0, 0, 0 },
};

/* LO:HI */
static void
parse_range(char *s, uint32_t *lo, uint32_t *hi)
{
	char *colon = strchr(s, ':');

	if (!colon)
		usage();
	*colon = 0;
	*lo = (uint32_t)opt_num(s);
	*hi = (uint32_t)opt_num(colon + 1);
	*colon = ':';
}

/* Applies one command-line option to cfg. */
static void
parse_opt(struct bench_cfg *cfg, int ch)
{
	switch (ch) {
	case 'p':
		cfg->proto = !strcmp(optarg, "parley")	     ? PROTO_PARLEY
			     : !strcmp(optarg, "centrifugo") ? PROTO_CENTRIFUGO
			     : !strcmp(optarg, "raw")	     ? PROTO_RAW
						      : (usage(), PROTO_RAW);
		break;
	case 'u':
		parse_urls(cfg, optarg);
		break;
	case 'S':
		cfg->send = true;
		break;
	case 'R':
		cfg->recv = true;
		parse_range(optarg, &cfg->recv_lo, &cfg->recv_hi);
		break;
	case 's':
		cfg->streams = (uint32_t)opt_num(optarg);
		break;
	case 'm':
		cfg->members = (uint32_t)opt_num(optarg);
		break;
	case 'D':
		cfg->dm = true;
		break;
	case 'I':
		cfg->idle = (uint32_t)opt_num(optarg);
		break;
	case 'r':
		cfg->rate = opt_num(optarg);
		break;
	case 'd':
		cfg->duration = opt_num(optarg);
		break;
	case 'k':
		cfg->step = (int)opt_num(optarg);
		break;
	case 'w':
		cfg->drain_s = opt_num(optarg);
		break;
	case 'z':
		cfg->size = (size_t)opt_num(optarg);
		break;
	case 'x':
		cfg->secret = optarg;
		break;
	case 'P':
		cfg->prefix = optarg;
		break;
	case 'a':
		cfg->n_src = (int)opt_num(optarg);
		break;
	case 'o':
		cfg->out = optarg;
		break;
	case 'y':
		cfg->ready_file = optarg;
		break;
	case 'c':
		cfg->reconnect = true;
		break;
	case 'M':
		cfg->max_opening = (int)opt_num(optarg);
		break;
	case 'T':
		cfg->setup_timeout_s = opt_num(optarg);
		break;
	default:
		usage();
	}
}

static void
parse_opts(struct bench_cfg *cfg, int argc, char **argv)
{
	int ch;

	*cfg = (struct bench_cfg){
		.streams = 1,
		.members = 1,
		.rate = 100,
		.duration = 5,
		.drain_s = 3,
		.size = 64,
		.secret = "parley-dev-secret-not-for-production",
		.prefix = "b",
		.n_src = 1,
		.max_opening = 256,
		.setup_timeout_s = 60
	};
	while ((ch = getopt_long(argc, argv, "", bench_options, NULL)) != -1)
		parse_opt(cfg, ch);
	if (!cfg->n_urls || cfg->streams < 1 || cfg->step < 0 ||
	    cfg->step >= BENCH_MAX_STEPS || cfg->rate <= 0 ||
	    (!cfg->send && !cfg->recv && !cfg->idle))
		usage();
	if (cfg->size < BENCH_HDR_LEN)
		cfg->size = BENCH_HDR_LEN;
}

/* Lays out the connections: senders first, then receivers by stream. */
static void
bench_layout(struct bench *b)
{
	const struct bench_cfg *cfg = &b->cfg;
	uint32_t per = cfg->recv ? cfg->recv_hi - cfg->recv_lo : 0, i = 0;

	b->n_send = cfg->send ? cfg->streams : 0;
	b->n_conns = cfg->idle ? cfg->idle : b->n_send + per * cfg->streams;
	b->conns = calloc(b->n_conns ? b->n_conns : 1, sizeof(*b->conns));
	b->streams =
		calloc(cfg->streams ? cfg->streams : 1, sizeof(*b->streams));
	if (!b->conns || !b->streams)
		abort();
	for (uint32_t s = 0; s < b->n_send; s++, i++) {
		b->conns[i].role = ROLE_SEND;
		b->conns[i].stream = s;
		b->conns[i].ack_t = calloc(BENCH_ACK_RING, sizeof(uint64_t));
	}
	for (uint32_t s = 0; !cfg->idle && s < cfg->streams; s++)
		for (uint32_t r = cfg->recv_lo; r < cfg->recv_hi; r++, i++) {
			b->conns[i].role = ROLE_RECV;
			b->conns[i].stream = s;
			b->conns[i].idx = r;
		}
	for (i = 0; i < b->n_conns; i++) {
		b->conns[i].fd = -1;
		b->conns[i].step = -1;
		if (cfg->idle)
			b->conns[i].idx = cfg->recv_lo + i;
	}
}

void
bench_ready(struct bench *b, struct conn *c)
{
	c->state = CS_READY;
	c->attempts = 0;
	b->opening--;
	b->ready++;
}

static struct step_stats *
bench_step(struct bench *b, unsigned k)
{
	if (!b->steps[k]) {
		b->steps[k] = calloc(1, sizeof(struct step_stats));
		if (!b->steps[k])
			abort();
		hist_init(&b->steps[k]->lat);
	}
	return b->steps[k];
}

static uint64_t
hex(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++) {
		unsigned ch = p[i];

		v = v << 4 | (ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
	}
	return v;
}

static void
bench_grow_bits(uint64_t **bits, uint32_t old, uint32_t n)
{
	*bits = realloc(*bits, n * sizeof(uint64_t));
	if (!*bits)
		abort();
	memset(*bits + old, 0, (n - old) * sizeof(uint64_t));
}

/* Marks seq seen; returns 1 when new, 0 for a duplicate, -1 for a
 * duplicate whose first copy came by Sync (the client drops it by seq). */
static int
bench_mark(struct conn *c, unsigned step, uint64_t seq, bool synced)
{
	uint32_t w = (uint32_t)(seq >> 6);
	uint64_t bit = 1ull << (seq & 63);

	if ((int32_t)step != c->step) {
		c->step = (int32_t)step;
		if (c->bits)
			memset(c->bits, 0, c->bits_words * sizeof(uint64_t));
		if (c->sbits)
			memset(c->sbits, 0, c->bits_words * sizeof(uint64_t));
	}
	if (w >= c->bits_words) {
		uint32_t n = c->bits_words ? c->bits_words : 16;

		while (n <= w)
			n *= 2;
		bench_grow_bits(&c->bits, c->bits_words, n);
		if (synced || c->sbits)
			bench_grow_bits(&c->sbits, c->sbits ? c->bits_words : 0,
					n);
		c->bits_words = n;
	} else if (synced && !c->sbits) {
		bench_grow_bits(&c->sbits, 0, c->bits_words);
	}
	if (!c->bits)
		abort(); /* grown above: bits_words > w */
	if (c->bits[w] & bit)
		return synced || (c->sbits && (c->sbits[w] & bit)) ? -1 : 0;
	c->bits[w] |= bit;
	if (synced)
		c->sbits[w] |= bit;
	return 1;
}

void
bench_resynced(struct bench *b, struct conn *c)
{
	if (!c->down_at)
		return;
	hist_add(&b->resync, now_ns() - c->down_at);
	c->down_at = 0;
	b->resynced++;
}

void
bench_deliver(struct bench *b, struct conn *c, const uint8_t *body, size_t n,
	      bool synced)
{
	uint64_t t = now_ns(), seq, sent;
	unsigned step;
	struct step_stats *st;

	if (c->role == ROLE_SEND)
		return; /* a sender's copy of its own message */
	if (n < BENCH_HDR_LEN || body[0] != 'P' || body[1] != 'B') {
		b->bad++;
		return;
	}
	step = (unsigned)hex(body + 10, 4);
	seq = hex(body + 14, 12);
	sent = hex(body + 26, 16);
	if (step >= BENCH_MAX_STEPS || seq > (1ull << 31)) {
		b->bad++;
		return;
	}
	st = bench_step(b, step);
	if ((int32_t)step < c->step) {
		st->late++; /* after its step's bitmap was dropped */
		return;
	}
	switch (bench_mark(c, step, seq, synced)) {
	case 0:
		st->dup++;
		return;
	case -1:
		st->overlap++; /* a Sync copy and a live one: dropped by seq */
		return;
	default:
		break;
	}
	st->recv++;
	st->synced += synced;
	hist_add(&st->lat, t > sent ? t - sent : 0);
}

void
bench_acked(struct bench *b, struct conn *c, uint32_t id, bool ok)
{
	uint64_t t = now_ns(), sent;

	if (c->role != ROLE_SEND || !c->ack_t || !id)
		return;
	if (!ok) {
		b->errors++;
		return;
	}
	sent = c->ack_t[id & (BENCH_ACK_RING - 1)];
	b->acked++;
	hist_add(&b->ack, t > sent ? t - sent : 0);
}

/* Sends every message whose intended time has come. */
static void
bench_send_due(struct bench *b)
{
	const struct bench_cfg *cfg = &b->cfg;
	uint64_t t = now_ns(), total = (uint64_t)(cfg->rate * cfg->duration);
	uint8_t body[65536];
	size_t n = cfg->size < sizeof(body) ? cfg->size : sizeof(body);

	memset(body + BENCH_HDR_LEN, 'x', n - BENCH_HDR_LEN);
	while (b->next_g < total) {
		uint64_t g = b->next_g;
		uint64_t due = b->t0 + (uint64_t)((double)g * 1e9 / cfg->rate);
		uint32_t s = (uint32_t)(g % cfg->streams);
		struct conn *c = &b->conns[s];
		char hdr[64];

		if (due > t)
			break;
		snprintf(hdr, sizeof(hdr), "PB%08x%04x%012llx%016llx", s,
			 (unsigned)cfg->step,
			 (unsigned long long)(g / cfg->streams),
			 (unsigned long long)due);
		memcpy(body, hdr, BENCH_HDR_LEN);
		b->next_g++;
		hist_add(&b->lag, t - due);
		if (c->state != CS_READY ||
		    proto_send_payload(b, c, s, body, n, due) < 0) {
			b->send_fail++;
			continue;
		}
		b->sent++;
	}
	if (b->next_g >= total) {
		b->sending = false;
		b->t_end = now_ns();
	}
}

static void
bench_arm(struct bench *b, uint64_t at)
{
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = (time_t)(at / 1000000000ull);
	its.it_value.tv_nsec = (long)(at % 1000000000ull);
	timerfd_settime(b->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* The next time the loop must wake: the next message, or a tick. */
static void
bench_rearm(struct bench *b)
{
	uint64_t t = now_ns();
	uint64_t at = t + (b->t_ready && !b->sending && !b->cfg.reconnect
				   ? 10 * TICK_NS
				   : TICK_NS);

	if (b->sending) {
		uint64_t due = b->t0 + (uint64_t)((double)b->next_g * 1e9 /
						  b->cfg.rate);

		if (due < at)
			at = due > t ? due : t + 20000;
	}
	bench_arm(b, at);
}

static void
bench_open_more(struct bench *b)
{
	uint64_t t = now_ns();
	uint32_t budget = 64; /* per tick, so the server's accept keeps up */

	for (uint32_t n = 0; n < b->n_conns && budget &&
			     b->opening < (uint32_t)b->cfg.max_opening;
	     n++) {
		uint32_t i = (b->open_cursor + n) % b->n_conns;
		struct conn *c = &b->conns[i];

		if (c->state != CS_IDLE || c->fd >= 0 || c->retry_at > t)
			continue;
		budget--;
		if (conn_open(b, c, i) < 0) {
			b->conn_fail++;
			c->retry_at = t + 100000000ull;
		}
		b->open_cursor = i + 1;
	}
}

/* Connections stuck in a handshake past 10 s are retried. */
static void
bench_reap(struct bench *b)
{
	uint64_t t = now_ns();

	for (uint32_t i = 0; i < b->n_conns; i++) {
		struct conn *c = &b->conns[i];

		if (c->fd >= 0 && c->state != CS_READY &&
		    t - c->opened_at > 10000000000ull)
			conn_close(b, c, "handshake timed out");
	}
}

static void
json_hist(FILE *f, const char *name, const struct hist *h)
{
	fprintf(f, "\"%s\":", name);
	hist_json(h, f);
}

static void
bench_dump(struct bench *b)
{
	const struct bench_cfg *cfg = &b->cfg;
	struct rusage ru;
	char tmp[4096];
	FILE *f;
	int first = 1;

	if (!cfg->out)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->out);
	f = fopen(tmp, "w");
	if (!f)
		return;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f,
		"{\"pid\":%d,\"conns\":%u,\"ready\":%u,\"connect_s\":%.3f,"
		"\"cpu_s\":%.3f,\"wall_s\":%.3f,\"closes\":%llu,"
		"\"conn_fail\":%llu,\"setup_errors\":%llu,\"pings\":%llu,"
		"\"bad\":%llu,",
		(int)getpid(), b->n_conns, b->ready,
		b->t_ready ? (double)(b->t_ready - b->t_begin) / 1e9 : -1.0,
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			(double)ru.ru_stime.tv_sec +
			(double)ru.ru_stime.tv_usec / 1e6,
		(double)(now_ns() - b->t_begin) / 1e9,
		(unsigned long long)b->closes, (unsigned long long)b->conn_fail,
		(unsigned long long)b->setup_errors,
		(unsigned long long)b->pings, (unsigned long long)b->bad);
	if (cfg->send) {
		fprintf(f,
			"\"sender\":{\"step\":%d,\"rate\":%.3f,\"duration\":%.3f,"
			"\"streams\":%u,\"sent\":%llu,\"acked\":%llu,"
			"\"errors\":%llu,\"send_fail\":%llu,\"send_s\":%.3f,",
			cfg->step, cfg->rate, cfg->duration, cfg->streams,
			(unsigned long long)b->sent,
			(unsigned long long)b->acked,
			(unsigned long long)b->errors,
			(unsigned long long)b->send_fail,
			b->t_end > b->t0 ? (double)(b->t_end - b->t0) / 1e9
					 : 0.0);
		json_hist(f, "ack", &b->ack);
		fputc(',', f);
		json_hist(f, "lag", &b->lag);
		fputs("},", f);
	}
	fprintf(f, "\"dropped\":%llu,\"resynced\":%llu,",
		(unsigned long long)b->dropped,
		(unsigned long long)b->resynced);
	json_hist(f, "resync", &b->resync);
	fputs(",\"steps\":{", f);
	for (int k = 0; k < BENCH_MAX_STEPS; k++) {
		const struct step_stats *st = b->steps[k];

		if (!st)
			continue;
		fprintf(f,
			"%s\"%d\":{\"recv\":%llu,\"dup\":%llu,\"late\":%llu,"
			"\"synced\":%llu,\"overlap\":%llu,",
			first ? "" : ",", k, (unsigned long long)st->recv,
			(unsigned long long)st->dup,
			(unsigned long long)st->late,
			(unsigned long long)st->synced,
			(unsigned long long)st->overlap);
		json_hist(f, "lat", &st->lat);
		fputc('}', f);
		first = 0;
	}
	fputs("}}\n", f);
	fclose(f);
	rename(tmp, cfg->out);
}

static void
bench_on_signal(struct bench *b)
{
	struct signalfd_siginfo si;

	while (read(b->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			bench_dump(b);
		else
			b->done = true;
	}
}

static void
bench_all_ready(struct bench *b)
{
	b->t_ready = now_ns();
	fprintf(stderr, "bench: %u connections ready in %.2f s\n", b->ready,
		(double)(b->t_ready - b->t_begin) / 1e9);
	if (b->cfg.ready_file) {
		FILE *f = fopen(b->cfg.ready_file, "w");

		if (f) {
			fprintf(f, "%u\n", b->ready);
			fclose(f);
		}
	}
	if (b->cfg.send) {
		b->t0 = now_ns() + 50000000ull;
		b->sending = true;
	}
}

/* Whether a sender has nothing more to wait for. */
static bool
bench_drained(struct bench *b, uint64_t t)
{
	if (b->sending || !b->t_end)
		return false;
	if (t > b->t_end + (uint64_t)(b->cfg.drain_s * 1e9))
		return true;
	if (b->cfg.proto == PROTO_RAW || b->cfg.recv)
		return false; /* no acks to wait for, or receivers to drain */
	return b->acked + b->errors >= b->sent;
}

static void
bench_tick(struct bench *b)
{
	uint64_t t = now_ns();
	static uint64_t last_reap, last_open;

	if (b->sending)
		bench_send_due(b);
	if (!b->t_ready) {
		bench_open_more(b);
		if (b->ready == b->n_conns)
			bench_all_ready(b);
		else if (t - b->t_begin >
			 (uint64_t)(b->cfg.setup_timeout_s * 1e9)) {
			fprintf(stderr,
				"bench: only %u of %u connections ready\n",
				b->ready, b->n_conns);
			bench_all_ready(b);
		}
	} else if (b->cfg.reconnect && t - last_open > 10000000ull) {
		last_open = t;
		bench_open_more(b);
	}
	if (t - last_reap > 1000000000ull) {
		last_reap = t;
		bench_reap(b);
	}
	if (b->cfg.send && bench_drained(b, now_ns()))
		b->done = true;
	bench_rearm(b);
}

static void
bench_setup(struct bench *b)
{
	struct epoll_event e = { .events = EPOLLIN };
	sigset_t ss;

	b->ep = epoll_create1(EPOLL_CLOEXEC);
	b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	b->sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	e.data.u32 = TAG_TIMER;
	epoll_ctl(b->ep, EPOLL_CTL_ADD, b->tfd, &e);
	e.data.u32 = TAG_SIGNAL;
	epoll_ctl(b->ep, EPOLL_CTL_ADD, b->sfd, &e);
	/* Half of it bounds one frame: a room event naming 10,000 members
	 * (S2 N=10000) is about 160 KB. */
	b->rbuf_cap = 1 << 22;
	b->rbuf = malloc(b->rbuf_cap);
	if (!b->rbuf)
		abort();
	hist_init(&b->ack);
	hist_init(&b->lag);
	hist_init(&b->resync);
}

int
main(int argc, char **argv)
{
	static struct bench b;
	struct epoll_event ev[256];
	uint64_t junk;

	parse_opts(&b.cfg, argc, argv);
	srand((unsigned)getpid());
	bench_setup(&b);
	bench_layout(&b);
	b.t_begin = now_ns();
	bench_tick(&b);
	while (!b.done) {
		int n = epoll_wait(b.ep, ev, 256, -1);

		for (int i = 0; i < n; i++) {
			uint32_t tag = ev[i].data.u32;

			if (tag == TAG_TIMER) {
				if (read(b.tfd, &junk, sizeof(junk)) < 0)
					continue;
				bench_tick(&b);
			} else if (tag == TAG_SIGNAL) {
				bench_on_signal(&b);
			} else {
				conn_on_event(&b, &b.conns[tag], ev[i].events);
			}
		}
	}
	bench_dump(&b);
	fprintf(stderr, "bench: sent %llu acked %llu errors %llu closes %llu\n",
		(unsigned long long)b.sent, (unsigned long long)b.acked,
		(unsigned long long)b.errors, (unsigned long long)b.closes);
	return 0;
}
