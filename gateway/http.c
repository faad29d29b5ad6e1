/* The gateway's plain HTTP endpoints: /livez, /readyz and /metrics. The
 * head is written when the request arrives, the body from the writeable
 * callback, as libwebsockets wants. */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "metrics.h"
#include "xalloc.h"

static bool
http_ready(struct gateway *gw)
{
	return !gw->draining &&
	       __atomic_load_n(&gw->router_pipes, __ATOMIC_RELAXED) > 0;
}

/* Pick the answer for uri: status, content type and a heap body. */
static int
http_route(struct gateway *gw, struct lws *wsi, const char *uri,
	   struct gw_http *h, const char **type)
{
	int status;

	*type = "text/plain; charset=utf-8";
	if (strcmp(uri, "/metrics") == 0) {
		*type = "text/plain; version=0.0.4";
		h->body = metrics_render(&h->len);
		return HTTP_STATUS_OK;
	}
	if (strcmp(uri, "/livez") == 0) {
		h->body = xstrdup("ok\n");
	} else if (strcmp(uri, "/readyz") == 0) {
		bool ok = http_ready(gw);

		h->body = xstrdup(ok ? "ready\n" : "not ready\n");
		h->len = strlen(h->body);
		return ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
	} else if ((status = web_route(gw, wsi, uri, h, type)) != 0) {
		return status;
	} else {
		h->body = xstrdup("not found\n");
		h->len = strlen(h->body);
		return HTTP_STATUS_NOT_FOUND;
	}
	h->len = strlen(h->body);
	return HTTP_STATUS_OK;
}

int
http_on_request(struct gateway *gw, struct lws *wsi, struct gw_http *h,
		const char *uri)
{
	uint8_t buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
				    *end = buf + sizeof(buf) - 1;
	const char *type;
	int status = http_route(gw, wsi, uri, h, &type);

	if (lws_add_http_common_headers(wsi, (unsigned int)status, type, h->len,
					&p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

int
http_on_writable(struct lws *wsi, struct gw_http *h)
{
	int n;

	if (h->body == NULL)
		return 0;
	/* The body is small; copy it behind LWS_PRE headroom. */
	uint8_t *buf = xmalloc(LWS_PRE + h->len + 1);

	memcpy(buf + LWS_PRE, h->body, h->len);
	n = lws_write(wsi, buf + LWS_PRE, h->len, LWS_WRITE_HTTP_FINAL);
	free(buf);
	http_release(h);
	if (n < 0)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void
http_release(struct gw_http *h)
{
	free(h->body);
	h->body = NULL;
	h->len = 0;
}
