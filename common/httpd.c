/* The health and metrics HTTP server (see httpd.h). Blocking accept and
 * short per-request deadlines: probes and scrapes are rare and small. */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

#define HTTPD_HEADER_MAX 2048

struct httpd {
	int fd;
	bool (*ready)(void);
};

static void
httpd_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void
httpd_reply(int fd, int status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.0 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, status == 200 ? "OK" : "Error", type, len);

	httpd_write_all(fd, head, (size_t)n);
	httpd_write_all(fd, body, len);
}

/* Read until the end of the request head (or give up). */
static ssize_t
httpd_read_head(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);

		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return (ssize_t)len;
	}
	return -1;
}

static void
httpd_serve(struct httpd *h, int fd)
{
	char buf[HTTPD_HEADER_MAX];
	const char *text = "text/plain; charset=utf-8";

	if (httpd_read_head(fd, buf, sizeof(buf)) < 0)
		return;
	if (strncmp(buf, "GET /metrics ", 13) == 0) {
		size_t len;
		char *body = metrics_render(&len);

		httpd_reply(fd, 200, "text/plain; version=0.0.4", body, len);
		free(body);
	} else if (strncmp(buf, "GET /livez ", 11) == 0) {
		httpd_reply(fd, 200, text, "ok\n", 3);
	} else if (strncmp(buf, "GET /readyz ", 12) == 0) {
		bool ok = h->ready == NULL || h->ready();

		httpd_reply(fd, ok ? 200 : 503, text,
			    ok ? "ready\n" : "not ready\n", ok ? 6 : 10);
	} else {
		httpd_reply(fd, 404, text, "not found\n", 10);
	}
}

static void *
httpd_main(void *arg)
{
	struct httpd *h = arg;
	struct timeval tv = { .tv_sec = 2 };

	for (;;) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(100 * 1000);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		httpd_serve(h, fd);
		close(fd);
	}
	return NULL;
}

static int
httpd_listen(const char *bind_addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	int one = 1, fd;

	if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int
httpd_start(const char *bind_addr, int port, bool (*ready)(void))
{
	struct httpd *h;
	pthread_t t;
	int fd;

	if (port == 0)
		return 0;
	fd = httpd_listen(bind_addr, port);
	if (fd < 0) {
		LOG_ERROR("httpd.listen", "cannot listen on %s:%d: %s",
			  bind_addr, port, strerror(-fd));
		return fd;
	}
	h = xmalloc(sizeof(*h));
	h->fd = fd;
	h->ready = ready;
	if (pthread_create(&t, NULL, httpd_main, h) != 0) {
		close(fd);
		free(h);
		return -EAGAIN;
	}
	pthread_detach(t);
	LOG_INFO("httpd.listen", "health and metrics on http://%s:%d/",
		 bind_addr, port);
	return 0;
}

int
httpd_config_port(int def)
{
	return (int)config_int("PARLEY_HTTP_PORT", def, 0, 65535);
}
