/* parley-bench connections: non-blocking TCP from one of several 127.0.0.x
 * source addresses, the HTTP upgrade, and WebSocket framing (RFC 6455).
 * Client frames use the all-zero masking key: legal on the wire, and it
 * saves the generator an XOR pass per byte (both servers still unmask). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static void
conn_grow(uint8_t **p, uint32_t *cap, uint32_t need)
{
	if (need <= *cap)
		return;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 512;
	*p = realloc(*p, *cap);
	if (!*p)
		abort();
}

static void
conn_watch(struct bench *b, struct conn *c, int op, uint32_t ev)
{
	struct epoll_event e = { .events = ev,
				 .data.u32 = (uint32_t)(c - b->conns) };

	epoll_ctl(b->ep, op, c->fd, &e);
}

int
conn_open(struct bench *b, struct conn *c, uint32_t i)
{
	const struct url *u;
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = src;
	int one = 1;

	/* Reconnects rotate through the gateways, as clients do. */
	c->url = (uint8_t)((i + c->attempts) % (uint32_t)b->cfg.n_urls);
	u = &b->cfg.urls[c->url];
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	if (b->cfg.n_src > 1) {
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
			   sizeof(one));
		src.sin_addr.s_addr =
			htonl(0x7f000001u + i % (uint32_t)b->cfg.n_src);
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			close(c->fd);
			c->fd = -1;
			return -errno;
		}
	}
	dst.sin_port = htons((uint16_t)u->port);
	inet_pton(AF_INET, u->host, &dst.sin_addr);
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
	    errno != EINPROGRESS) {
		int e = -errno;

		close(c->fd);
		c->fd = -1;
		return e;
	}
	c->state = CS_CONNECTING;
	c->opened_at = now_ns();
	c->in_len = c->msg_len = c->out_len = c->out_off = 0;
	b->opening++;
	conn_watch(b, c, EPOLL_CTL_ADD, EPOLLOUT | EPOLLIN);
	return 0;
}

void
conn_close(struct bench *b, struct conn *c, const char *why)
{
	if (c->fd < 0)
		return;
	if (c->state == CS_READY) {
		b->ready--;
		b->closes++;
		if (b->cfg.reconnect && !c->down_at) {
			c->down_at = now_ns();
			b->dropped++;
		}
	} else if (c->state != CS_IDLE) {
		b->opening--;
		b->conn_fail++;
	}
	if (why && b->conn_fail + b->closes <= 20)
		fprintf(stderr, "bench: conn %u closed: %s\n",
			(unsigned)(c - b->conns), why);
	epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->attempts++;
	if (b->cfg.reconnect || c->state != CS_READY) {
		/* Backoff with jitter: 50 ms doubling up to 2 s. */
		uint64_t d = 50000000ull << (c->attempts < 6 ? c->attempts : 6);

		d = d > 2000000000ull ? 2000000000ull : d;
		c->retry_at = now_ns() + d / 2 + (uint64_t)rand() % (d / 2 + 1);
		c->state = CS_IDLE;
	} else {
		c->state = CS_DEAD;
	}
}

/* Writes what is queued; keeps EPOLLOUT on while something is left. */
static int
conn_flush(struct bench *b, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = write(c->fd, c->out + c->out_off,
				  c->out_len - c->out_off);

		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w <= 0)
			return -EPIPE;
		c->out_off += (uint32_t)w;
	}
	c->out_len = c->out_off = 0;
	conn_watch(b, c, EPOLL_CTL_MOD, EPOLLIN);
	return 0;
}

static int
conn_write(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	ssize_t w = 0;

	if (c->fd < 0)
		return -EPIPE;
	if (!c->out_len) {
		w = write(c->fd, p, n);
		if (w < 0 && errno != EAGAIN)
			return -EPIPE;
		if (w == (ssize_t)n)
			return 0;
		if (w < 0)
			w = 0;
		conn_watch(b, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
	}
	conn_grow(&c->out, &c->out_cap, c->out_len + (uint32_t)(n - (size_t)w));
	memcpy(c->out + c->out_len, p + w, n - (size_t)w);
	c->out_len += (uint32_t)(n - (size_t)w);
	return 0;
}

static int
conn_frame(struct bench *b, struct conn *c, unsigned op, const void *p,
	   size_t n)
{
	struct pbuf *f = &b->frame;

	f->len = 0;
	pbuf_reserve(f, n + 14);
	f->p[0] = (uint8_t)(0x80 | op);
	if (n < 126) {
		f->p[1] = (uint8_t)(0x80 | n);
		f->len = 2;
	} else if (n < 65536) {
		f->p[1] = 0x80 | 126;
		f->p[2] = (uint8_t)(n >> 8);
		f->p[3] = (uint8_t)n;
		f->len = 4;
	} else {
		f->p[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			f->p[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
		f->len = 10;
	}
	memset(f->p + f->len, 0, 4); /* the masking key */
	f->len += 4;
	memcpy(f->p + f->len, p, n);
	f->len += n;
	return conn_write(b, c, f->p, f->len);
}

int
conn_send(struct bench *b, struct conn *c, const void *p, size_t n)
{
	if (conn_frame(b, c, 2, p, n) < 0) {
		conn_close(b, c, "write failed");
		return -EPIPE;
	}
	return 0;
}

static void
conn_connected(struct bench *b, struct conn *c)
{
	const struct url *u = &b->cfg.urls[c->url];
	char path[2048], req[2600];
	const char *sp = proto_subprotocol(b->cfg.proto);
	int err = 0, n;
	socklen_t len = sizeof(err);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		conn_close(b, c, strerror(err));
		return;
	}
	proto_path(b, c, u, path, sizeof(path));
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Key: cGFybGV5LWJlbmNoLWtleQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
		     path, u->host, u->port,
		     sp ? "Sec-WebSocket-Protocol: " : "", sp ? sp : "",
		     sp ? "\r\n" : "");
	c->state = CS_UPGRADING;
	conn_watch(b, c, EPOLL_CTL_MOD, EPOLLIN);
	if (conn_write(b, c, (uint8_t *)req, (size_t)n) < 0)
		conn_close(b, c, "upgrade write failed");
}

static void
conn_control(struct bench *b, struct conn *c, unsigned op, const uint8_t *p,
	     size_t n)
{
	char why[160];

	if (op == 9) { /* ping: answer with the same payload */
		b->pings++;
		conn_frame(b, c, 10, p, n);
	} else if (op == 8) {
		unsigned code = n >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;

		snprintf(why, sizeof(why), "server closed with %u %.*s", code,
			 n > 2 ? (int)(n - 2 > 100 ? 100 : n - 2) : 0,
			 n > 2 ? (const char *)p + 2 : "");
		conn_close(b, c, why);
	}
}

/* One complete frame; fragments are collected into c->msg. */
static void
conn_on_frame(struct bench *b, struct conn *c, unsigned b0, const uint8_t *p,
	      size_t n)
{
	unsigned op = b0 & 0x0f;
	bool fin = b0 & 0x80;

	if (op >= 8) {
		conn_control(b, c, op, p, n);
		return;
	}
	if (fin && op != 0 && !c->msg_len) {
		proto_on_message(b, c, p, n);
		return;
	}
	conn_grow(&c->msg, &c->msg_cap, c->msg_len + (uint32_t)n);
	memcpy(c->msg + c->msg_len, p, n);
	c->msg_len += (uint32_t)n;
	if (fin) {
		uint32_t len = c->msg_len;

		c->msg_len = 0;
		proto_on_message(b, c, c->msg, len);
	}
}

/* Parses frames in [p, p+n); returns bytes consumed. */
static size_t
conn_parse(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	size_t used = 0;

	while (n - used >= 2 && c->fd >= 0) {
		const uint8_t *h = p + used;
		uint64_t len = h[1] & 0x7f;
		size_t hl = 2;

		if (len == 126) {
			if (n - used < 4)
				break;
			len = (uint64_t)h[2] << 8 | h[3];
			hl = 4;
		} else if (len == 127) {
			if (n - used < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | h[2 + i];
			hl = 10;
		}
		if (h[1] & 0x80)
			hl += 4; /* servers must not mask; tolerate it */
		if (n - used < hl + len)
			break;
		conn_on_frame(b, c, h[0], h + hl, (size_t)len);
		used += hl + (size_t)len;
	}
	return used;
}

/* The upgrade answer: returns bytes of it consumed, 0 when incomplete. */
static size_t
conn_upgrade(struct bench *b, struct conn *c, const uint8_t *p, size_t n)
{
	const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
	char why[96];

	if (!end)
		return 0;
	if (n < 12 || memcmp(p + 9, "101", 3) != 0) {
		snprintf(why, sizeof(why), "upgrade refused: %.*s", 40,
			 (const char *)p);
		for (char *s = why; *s; s++)
			if (*s == '\r' || *s == '\n')
				*s = ' ';
		conn_close(b, c, why);
		return n;
	}
	c->state = CS_AUTHING;
	proto_on_open(b, c);
	return (size_t)(end + 4 - p);
}

static void
conn_on_readable(struct bench *b, struct conn *c)
{
	size_t have = c->in_len, used = 0;
	ssize_t r;

	if (have)
		memcpy(b->rbuf, c->in, have);
	r = read(c->fd, b->rbuf + have, b->rbuf_cap - have);
	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		conn_close(b, c, r ? strerror(errno) : "eof");
		return;
	}
	have += (size_t)r;
	if (c->state == CS_UPGRADING) {
		used = conn_upgrade(b, c, b->rbuf, have);
		if (!used) {
			c->in_len = 0;
			conn_grow(&c->in, &c->in_cap, (uint32_t)have);
			memcpy(c->in, b->rbuf, have);
			c->in_len = (uint32_t)have;
			return;
		}
	}
	if (c->fd >= 0)
		used += conn_parse(b, c, b->rbuf + used, have - used);
	c->in_len = 0;
	if (c->fd < 0 || used == have)
		return;
	if (have - used > b->rbuf_cap / 2) {
		conn_close(b, c, "frame too large");
		return;
	}
	conn_grow(&c->in, &c->in_cap, (uint32_t)(have - used));
	memcpy(c->in, b->rbuf + used, have - used);
	c->in_len = (uint32_t)(have - used);
}

void
conn_on_event(struct bench *b, struct conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (c->state == CS_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_connected(b, c);
		return;
	}
	if ((events & EPOLLOUT) && conn_flush(b, c) < 0) {
		conn_close(b, c, "write failed");
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_on_readable(b, c);
}
