/* A tiny HTTP/1.0 server on its own thread for services without
 * libwebsockets: GET /livez, /readyz and /metrics (Prometheus text). One
 * request per connection, bounded header size and read time. */
#ifndef PARLEY_HTTPD_H
#define PARLEY_HTTPD_H

#include <stdbool.h>

/* Listen on bind:port and serve in a detached thread. ready() says whether
 * /readyz answers 200 (NULL: always ready). port 0 disables the server and
 * returns 0. Returns 0 or -errno (logged) when it cannot listen. */
int httpd_start(const char *bind, int port, bool (*ready)(void));

/* The port of PARLEY_HTTP_PORT (default def, 0 = off), validated. */
int httpd_config_port(int def);

#endif
