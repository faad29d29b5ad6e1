/* Provider requests on libcurl's multi interface: many transfers on one
 * thread, each with its own deadline, so a slow or hanging provider
 * delays nothing but its own pushes. Also what an answer means. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pusher.h"
#include "xalloc.h"

/* Response bytes kept (enough for any provider's error JSON). */
#define HTTP_RESP_MAX 4096
/* Retry-After is honoured up to this long. */
#define HTTP_RETRY_AFTER_MAX_S 600

struct http {
	CURLM *multi;
	size_t running;
};

struct http *
http_new(int max_conns)
{
	struct http *h = xcalloc(1, sizeof(*h));

	h->multi = curl_multi_init();
	if (h->multi == NULL) {
		free(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)max_conns);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)max_conns);
	return h;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	curl_multi_cleanup(h->multi);
	free(h);
}

void
http_cancel(struct http *h, struct http_req *r)
{
	if (r->easy == NULL)
		return;
	curl_multi_remove_handle(h->multi, r->easy);
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	h->running--;
}

static size_t
on_body(char *ptr, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n, room = HTTP_RESP_MAX - r->resp_len;

	if (r->resp == NULL)
		r->resp = xcalloc(1, HTTP_RESP_MAX + 1);
	if (len < room)
		room = len;
	memcpy(r->resp + r->resp_len, ptr, room);
	r->resp_len += room;
	return len; /* the rest is read and dropped */
}

static void
http_setup(struct http_req *r)
{
	CURL *e = r->easy;

	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* HTTP/2 over TLS (APNs requires it), HTTP/1.1 in clear text. */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	if (r->cert)
		curl_easy_setopt(e, CURLOPT_SSLCERT, r->cert);
	if (r->key)
		curl_easy_setopt(e, CURLOPT_SSLKEY, r->key);
}

int
http_start(struct http *h, struct http_req *r)
{
	r->status = 0;
	r->err = CURLE_OK;
	r->resp_len = 0;
	r->retry_after_s = -1;
	r->errbuf[0] = '\0';
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		return -EIO;
	http_setup(r);
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		return -EIO;
	}
	h->running++;
	return 0;
}

int
http_poll(struct http *h, struct curl_waitfd *fds, unsigned n, int timeout_ms)
{
	int still = 0;
	CURLMcode rc;

	rc = curl_multi_poll(h->multi, fds, n, timeout_ms, NULL);
	if (rc == CURLM_OK)
		rc = curl_multi_perform(h->multi, &still);
	if (rc != CURLM_OK) {
		LOG_ERROR("pusher.curl", "curl multi: %s",
			  curl_multi_strerror(rc));
		return -EIO;
	}
	return 0;
}

static void
http_finish(struct http_req *r, CURLcode result)
{
	curl_off_t after = -1;

	r->err = result;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &r->seconds);
	if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &after) ==
		    CURLE_OK &&
	    after > 0)
		r->retry_after_s = (int64_t)after;
	if (r->resp)
		r->resp[r->resp_len] = '\0';
}

struct http_req *
http_next_done(struct http *h)
{
	struct http_req *r = NULL;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		CURL *e = msg->easy_handle;
		CURLcode result = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		http_finish(r, result);
		curl_multi_remove_handle(h->multi, e);
		curl_easy_cleanup(e);
		r->easy = NULL;
		h->running--;
		return r;
	}
	return NULL;
}

size_t
http_running(const struct http *h)
{
	return h->running;
}

void
http_req_free(struct http_req *r)
{
	if (r == NULL)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->url);
	free(r->body);
	free(r->resp);
	free(r);
}

/* ---- answers ---- */

enum push_outcome
push_classify(long status, CURLcode err, const char *body)
{
	if (err != CURLE_OK || status == 0)
		return PUSH_RETRY; /* timeout, refused, reset: transient */
	if (status >= 200 && status < 300)
		return PUSH_OK;
	if (status == 404 || status == 410 ||
	    (body && strcasestr(body, "unregistered")))
		return PUSH_DEAD;
	if (status == 429 || status >= 500)
		return PUSH_RETRY;
	return PUSH_DROP;
}

int64_t
push_backoff_ms(int n, int64_t base, int64_t max, int64_t retry_after_s,
		double r)
{
	int64_t ms = base, half;

	for (int i = 1; i < n && ms < max; i++)
		ms *= 2;
	if (ms > max)
		ms = max;
	half = ms / 2;
	ms = half + (int64_t)((double)(ms - half) * r);
	if (retry_after_s > HTTP_RETRY_AFTER_MAX_S)
		retry_after_s = HTTP_RETRY_AFTER_MAX_S;
	if (retry_after_s >= 0 && ms < retry_after_s * 1000)
		ms = retry_after_s * 1000;
	return ms;
}
