/* bench-floor: the raw fan-out floor of the benchmark. A single-threaded
 * epoll WebSocket server that writes every binary frame it receives to
 * every other connection, one write(2) per recipient, frame header built
 * once. It does no auth, no parsing, no persistence: what is left is the
 * kernel's cost of fan-out over loopback TCP plus WebSocket framing.
 *   bench-floor PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOR_MAX_FD 65536
#define FLOOR_BUF    (1 << 16)

struct floor_conn {
	bool open, upgraded;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_cap;
};

static struct floor_conn *conns;
static int ep;
static int fds[FLOOR_MAX_FD], n_fds;
static unsigned long long n_buffered;

static void
floor_drop(int fd)
{
	struct floor_conn *c = &conns[fd];

	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < n_fds; i++)
		if (fds[i] == fd) {
			fds[i] = fds[--n_fds];
			break;
		}
}

/* Writes [p, p+n) to fd, keeping what the socket does not take. */
static void
floor_write(int fd, const uint8_t *p, size_t n)
{
	struct floor_conn *c = &conns[fd];
	ssize_t w = 0;

	if (!c->out_len) {
		w = write(fd, p, n);
		if (w == (ssize_t)n)
			return;
		if (w < 0 && errno != EAGAIN) {
			floor_drop(fd);
			return;
		}
		if (w < 0)
			w = 0;
		struct epoll_event e = { .events = EPOLLIN | EPOLLOUT,
					 .data.fd = fd };

		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
	}
	n_buffered++;
	if (c->out_len + n > c->out_cap) {
		c->out_cap = (c->out_len + n) * 2;
		c->out = realloc(c->out, c->out_cap);
		if (!c->out)
			abort();
	}
	memcpy(c->out + c->out_len, p + w, n - (size_t)w);
	c->out_len += n - (size_t)w;
}

static void
floor_flush(int fd)
{
	struct floor_conn *c = &conns[fd];
	ssize_t w = write(fd, c->out, c->out_len);

	if (w < 0 && errno == EAGAIN)
		return;
	if (w < 0) {
		floor_drop(fd);
		return;
	}
	memmove(c->out, c->out + w, c->out_len - (size_t)w);
	c->out_len -= (size_t)w;
	if (!c->out_len) {
		struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };

		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
	}
}

static void
floor_broadcast(int from, const uint8_t *p, size_t n)
{
	static uint8_t frame[FLOOR_BUF + 16];
	size_t h = 2;

	if (n > FLOOR_BUF)
		return;
	frame[0] = 0x82;
	if (n < 126) {
		frame[1] = (uint8_t)n;
	} else {
		frame[1] = 126;
		frame[2] = (uint8_t)(n >> 8);
		frame[3] = (uint8_t)n;
		h = 4;
	}
	memcpy(frame + h, p, n);
	for (int i = 0; i < n_fds; i++)
		if (fds[i] != from && conns[fds[i]].upgraded)
			floor_write(fds[i], frame, h + n);
}

static size_t
floor_frames(int fd, uint8_t *p, size_t n)
{
	size_t used = 0;

	while (n - used >= 2) {
		uint8_t *f = p + used;
		uint64_t len = f[1] & 0x7f;
		size_t hl = 2;

		if (len == 126) {
			if (n - used < 4)
				break;
			len = (uint64_t)f[2] << 8 | f[3];
			hl = 4;
		} else if (len == 127) {
			return n; /* nothing that large in a benchmark */
		}
		if (f[1] & 0x80)
			hl += 4;
		if (n - used < hl + len)
			break;
		if (f[1] & 0x80)
			for (uint64_t i = 0; i < len; i++)
				f[hl + i] ^= f[hl - 4 + (i & 3)];
		if ((f[0] & 0x0f) == 8) {
			floor_drop(fd);
			return n;
		}
		if ((f[0] & 0x0f) == 2)
			floor_broadcast(fd, f + hl, (size_t)len);
		used += hl + (size_t)len;
	}
	return used;
}

static void
floor_upgrade(int fd, uint8_t *p, size_t n, size_t *used)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char key[128], cat[256], reply[256], acc[64];
	unsigned char sha[SHA_DIGEST_LENGTH];
	uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
	const char *k;
	int len;

	*used = 0;
	if (!end)
		return;
	*end = 0;
	k = strcasestr((char *)p, "Sec-WebSocket-Key:");
	if (!k || sscanf(k + 18, " %100s", key) != 1) {
		floor_drop(fd);
		*used = n;
		return;
	}
	snprintf(cat, sizeof(cat), "%s%s", key, guid);
	SHA1((unsigned char *)cat, strlen(cat), sha);
	EVP_EncodeBlock((unsigned char *)acc, sha, SHA_DIGEST_LENGTH);
	len = snprintf(
		reply, sizeof(reply),
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		acc);
	floor_write(fd, (uint8_t *)reply, (size_t)len);
	conns[fd].upgraded = true;
	*used = (size_t)(end + 4 - p);
}

static void
floor_read(int fd)
{
	static uint8_t buf[1 << 18];
	struct floor_conn *c = &conns[fd];
	size_t have = c->in_len, used = 0, u2;
	ssize_t r;

	if (have)
		memcpy(buf, c->in, have);
	r = read(fd, buf + have, sizeof(buf) - have);
	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		floor_drop(fd);
		return;
	}
	have += (size_t)r;
	if (!c->upgraded) {
		floor_upgrade(fd, buf, have, &used);
		if (!conns[fd].open)
			return;
		if (!used) {
			used = 0;
			goto keep;
		}
	}
	u2 = floor_frames(fd, buf + used, have - used);
	if (!conns[fd].open)
		return;
	used += u2;
keep:
	c->in_len = have - used;
	if (c->in_len) {
		c->in = realloc(c->in, c->in_len);
		memcpy(c->in, buf + used, c->in_len);
	}
}

static void
floor_accept(int lfd)
{
	int one = 1;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event e = { .events = EPOLLIN };

		if (fd < 0)
			return;
		if (fd >= FLOOR_MAX_FD) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		e.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
		conns[fd].open = true;
		fds[n_fds++] = fd;
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct epoll_event e = { .events = EPOLLIN }, ev[256];
	int lfd, one = 1;

	if (argc != 2)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	conns = calloc(FLOOR_MAX_FD, sizeof(*conns));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons((uint16_t)strtol(argv[1], NULL, 10));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096)) {
		perror("bench-floor: bind");
		return 1;
	}
	ep = epoll_create1(0);
	e.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
	for (;;) {
		int n = epoll_wait(ep, ev, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;

			if (fd == lfd)
				floor_accept(lfd);
			else if (conns[fd].open && (ev[i].events & EPOLLOUT))
				floor_flush(fd);
			if (fd != lfd && conns[fd].open &&
			    (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				floor_read(fd);
		}
	}
}
