/* The gateway's plain HTTP endpoints: /livez, /readyz and /metrics, and
 * the hand-over of /v1/events and /v1/send to sse.c. The head is written
 * when the answer is known, the body from the writeable callback, as
 * libwebsockets wants. */
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
http_answer(struct lws *wsi, struct gw_http *h, int status, const char *type,
	    char *body)
{
	uint8_t buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
				    *end = buf + sizeof(buf) - 1;

	if (h->body != body)
		free(h->body);
	h->body = body ? body : xstrdup("");
	h->len = strlen(h->body);
	if (lws_add_http_common_headers(wsi, (unsigned int)status,
					type ? type : "text/plain", h->len, &p,
					end) ||
	    (h->close_after &&
	     lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
					  (const unsigned char *)"close", 5, &p,
					  end)) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

int
http_on_request(struct gateway *gw, struct lws *wsi, struct gw_http *h,
		const char *uri)
{
	const char *type;
	int status;

	if (strncmp(uri, "/v1/", 4) == 0)
		return sse_on_request(gw, wsi, h, uri);
	/* A body we do not read must not stay on a kept-alive connection:
	 * lws 4.1.6 spins on the next request behind it. */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		h->close_after = true;
	status = http_route(gw, wsi, uri, h, &type);
	return http_answer(wsi, h, status, type, h->body);
}

int
http_on_writable(struct lws *wsi, struct gw_http *h)
{
	int n = 0;

	if (h->body == NULL)
		return h->sse ? sse_on_writable(wsi, h) : 0;
	/* The body is small; copy it behind LWS_PRE headroom. */
	if (h->len) {
		uint8_t *buf = xmalloc(LWS_PRE + h->len + 1);

		memcpy(buf + LWS_PRE, h->body, h->len);
		n = lws_write(wsi, buf + LWS_PRE, h->len, LWS_WRITE_HTTP_FINAL);
		free(buf);
	}
	free(h->body);
	h->body = NULL;
	if (n < 0 || h->close_after)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void
http_release(struct gw_http *h)
{
	free(h->body);
	h->body = NULL;
	h->len = 0;
	h->close_after = false;
	if (h->sse)
		sse_release(h);
}
