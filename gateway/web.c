/* The web demo: the files of PARLEY_GATEWAY_WEB_DIR at /, and, only when
 * PARLEY_DEV_TOKENS=1, dev tokens at GET /dev/token?user=NAME so the demo
 * page can sign in as anyone (never turn that on in production). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gateway.h"
#include "log.h"
#include "xalloc.h"

#define WEB_PATH_MAX  1024
#define WEB_TOKEN_TTL (12 * 3600)
#define WEB_FILE_MAX  (8 << 20)

struct web_type {
	const char *ext;
	const char *type;
};

static const struct web_type web_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".map", "application/json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
};

static const char *
web_type_of(const char *path)
{
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot && i < sizeof(web_types) / sizeof(web_types[0]);
	     i++)
		if (!strcmp(dot, web_types[i].ext))
			return web_types[i].type;
	return "application/octet-stream";
}

/* A request path we may map into the web dir: absolute, no "..", no
 * backslashes, no hidden files. */
static bool
web_path_ok(const char *uri)
{
	return uri[0] == '/' && !strstr(uri, "..") && !strchr(uri, '\\') &&
	       !strstr(uri, "/.");
}

void
web_config_log(const struct gw_config *c)
{
	if (c->web_dir && c->web_dir[0])
		LOG_INFO("gateway.web", "serving the demo page from %s at /",
			 c->web_dir);
	if (c->dev_tokens)
		LOG_WARN("gateway.dev_tokens",
			 "PARLEY_DEV_TOKENS is ON: GET /dev/token?user=NAME "
			 "signs anyone in as anyone. For local development "
			 "only; NEVER in production");
}

/* The file of the web dir that uri names, read into h; false when there
 * is none (or it is too big to be a demo asset). */
static bool
web_read(const char *dir, const char *uri, struct gw_http *h)
{
	char path[WEB_PATH_MAX];
	struct stat st;
	FILE *f;
	int n;

	n = snprintf(path, sizeof(path), "%s%s%s", dir, uri,
		     strcmp(uri, "/") ? "" : "index.html");
	if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) ||
	    !S_ISREG(st.st_mode) || st.st_size > WEB_FILE_MAX)
		return false;
	f = fopen(path, "rb");
	if (f == NULL)
		return false;
	h->body = xmalloc((size_t)st.st_size + 1);
	h->len = fread(h->body, 1, (size_t)st.st_size, f);
	h->body[h->len] = '\0'; /* text assets: also a C string */
	fclose(f);
	return true;
}

/* {"user":..,"token":..}: user ids are [A-Za-z0-9_.@-], nothing to escape. */
static char *
web_token_json(const char *user, const char *token)
{
	size_t len = strlen(user) + strlen(token) + 32;
	char *out = xmalloc(len);

	snprintf(out, len, "{\"user\":\"%s\",\"token\":\"%s\"}\n", user, token);
	return out;
}

/* GET /dev/token?user=NAME: a token for NAME, signed with our secret. */
static int
web_dev_token(struct gateway *gw, struct lws *wsi, struct gw_http *h,
	      const char **type)
{
	char user[JWT_SUB_MAX + 8];
	const char *u;
	char *token;
	int64_t now = (int64_t)time(NULL);

	u = lws_get_urlarg_by_name(wsi, "user=", user, sizeof(user));
	token = u ? jwt_sign(gw->cfg.secret, u, now, now + WEB_TOKEN_TTL)
		  : NULL;
	if (token == NULL) {
		h->body = xstrdup("user must be 1-128 of [A-Za-z0-9_.@-]\n");
		h->len = strlen(h->body);
		return HTTP_STATUS_BAD_REQUEST;
	}
	*type = "application/json";
	h->body = web_token_json(u, token);
	h->len = strlen(h->body);
	free(token);
	return HTTP_STATUS_OK;
}

int
web_route(struct gateway *gw, struct lws *wsi, const char *uri,
	  struct gw_http *h, const char **type)
{
	const char *dir = gw->cfg.web_dir;

	if (gw->cfg.dev_tokens && !strcmp(uri, "/dev/token"))
		return web_dev_token(gw, wsi, h, type);
	if (!dir || !dir[0] || !web_path_ok(uri) || !web_read(dir, uri, h))
		return 0;
	*type = web_type_of(strcmp(uri, "/") ? uri : "/index.html");
	return HTTP_STATUS_OK;
}
