/* What a push says, per provider: an FCM HTTP v1 message, an APNs
 * notification, or the generic webhook's JSON (signed with HMAC-SHA256);
 * plus the per-room collapse key and the stable push id. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pusher.h"
#include "utf8.h"
#include "xalloc.h"

static const char *const payload_platforms[PUSH_PLATFORMS] = {
	[PUSH_FCM] = "fcm",
	[PUSH_APNS] = "apns",
	[PUSH_WEBHOOK] = "webhook",
};

int
push_platform_parse(const char *name)
{
	for (int i = 0; name && i < PUSH_PLATFORMS; i++)
		if (strcmp(name, payload_platforms[i]) == 0)
			return i;
	return -1;
}

const char *
push_platform_name(int platform)
{
	if (platform < 0 || platform >= PUSH_PLATFORMS)
		return "?";
	return payload_platforms[platform];
}

/* ---- a growing string ---- */

struct pbuf {
	char *p;
	size_t len, cap;
};

static void
pbuf_add(struct pbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
pbuf_puts(struct pbuf *b, const char *s)
{
	pbuf_add(b, s, strlen(s));
}

static void
pbuf_u64(struct pbuf *b, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	pbuf_puts(b, num);
}

static void
pbuf_escape(struct pbuf *b, const unsigned char *s)
{
	char esc[8];

	while (*s) {
		size_t n = utf8_len(s);

		if (n == 0) { /* not UTF-8: one replacement character */
			pbuf_puts(b, "\xef\xbf\xbd");
			s++;
		} else if (*s == '"' || *s == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*s++;
			pbuf_add(b, esc, 2);
		} else if (*s < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *s++);
			pbuf_puts(b, esc);
		} else {
			pbuf_add(b, (const char *)s, n);
			s += n;
		}
	}
}

static void
pbuf_str(struct pbuf *b, const char *s)
{
	pbuf_puts(b, "\"");
	pbuf_escape(b, (const unsigned char *)(s ? s : ""));
	pbuf_puts(b, "\"");
}

/* ,"key":"value" (no comma when first). */
static void
pbuf_kv(struct pbuf *b, bool first, const char *key, const char *value)
{
	pbuf_puts(b, first ? "\"" : ",\"");
	pbuf_puts(b, key);
	pbuf_puts(b, "\":");
	pbuf_str(b, value);
}

static void
pbuf_ku(struct pbuf *b, const char *key, uint64_t v)
{
	pbuf_puts(b, ",\"");
	pbuf_puts(b, key);
	pbuf_puts(b, "\":");
	pbuf_u64(b, v);
}

/* ---- ids ---- */

static void
payload_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
payload_sha256(const void *data, size_t len, unsigned char md[32])
{
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		abort(); /* OpenSSL cannot hash: nothing sensible to do */
}

void
payload_collapse_key(const char *room, char out[PAYLOAD_COLLAPSE_LEN])
{
	unsigned char md[32];

	payload_sha256(room, strlen(room), md);
	strcpy(out, "parley-");
	payload_hex(md, 12, out + 7);
}

void
payload_push_id(int platform, const char *token, const char *room, uint64_t seq,
		char out[PAYLOAD_PUSH_ID_LEN])
{
	struct pbuf b = { NULL, 0, 0 };
	unsigned char md[32];
	char hex[33];

	pbuf_puts(&b, push_platform_name(platform));
	pbuf_add(&b, "\n", 1);
	pbuf_puts(&b, token);
	pbuf_add(&b, "\n", 1);
	pbuf_puts(&b, room);
	pbuf_add(&b, "\n", 1);
	pbuf_u64(&b, seq);
	payload_sha256(b.p, b.len, md);
	free(b.p);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80); /* UUID version 8 */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	payload_hex(md, 16, hex);
	snprintf(out, PAYLOAD_PUSH_ID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex,
		 hex + 8, hex + 12, hex + 16, hex + 20);
}

int
payload_sign(const char *secret, const char *body, size_t len,
	     char out[PAYLOAD_SIG_LEN])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
		 (const unsigned char *)body, len, mac, &n) == NULL ||
	    n != 32)
		return -EIO;
	strcpy(out, "sha256=");
	payload_hex(mac, 32, out + 7);
	return 0;
}

/* ---- bodies ---- */

/* FCM HTTP v1 (projects.messages.send): data values must be strings. */
static void
payload_fcm(struct pbuf *b, const struct push_msg *m)
{
	char num[24];

	pbuf_puts(b, "{\"message\":{");
	pbuf_kv(b, true, "token", m->token);
	pbuf_puts(b, ",\"notification\":{");
	pbuf_kv(b, true, "title", m->sender);
	pbuf_kv(b, false, "body", m->preview);
	pbuf_puts(b, "},\"data\":{");
	pbuf_kv(b, true, "room_id", m->room);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)m->seq);
	pbuf_kv(b, false, "seq", num);
	pbuf_kv(b, false, "sender_id", m->sender);
	pbuf_kv(b, false, "preview", m->preview);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)m->badge);
	pbuf_kv(b, false, "badge", num);
	pbuf_kv(b, false, "push_id", m->push_id);
	pbuf_puts(b, "},\"android\":{");
	pbuf_kv(b, true, "collapse_key", m->collapse);
	pbuf_puts(b, ",\"notification\":{");
	pbuf_kv(b, true, "tag", m->collapse);
	pbuf_ku(b, "notification_count", m->badge);
	pbuf_puts(b, "}},\"apns\":{\"headers\":{");
	pbuf_kv(b, true, "apns-collapse-id", m->collapse);
	pbuf_puts(b, "},\"payload\":{\"aps\":{\"badge\":");
	pbuf_u64(b, m->badge);
	pbuf_puts(b, "}}}}}");
}

/* APNs: the aps dictionary plus our keys beside it. */
static void
payload_apns(struct pbuf *b, const struct push_msg *m)
{
	pbuf_puts(b, "{\"aps\":{\"alert\":{");
	pbuf_kv(b, true, "title", m->sender);
	pbuf_kv(b, false, "body", m->preview);
	pbuf_puts(b, "}");
	pbuf_ku(b, "badge", m->badge);
	pbuf_kv(b, false, "sound", "default");
	pbuf_kv(b, false, "thread-id", m->collapse);
	pbuf_puts(b, "},");
	pbuf_kv(b, true, "room_id", m->room);
	pbuf_ku(b, "seq", m->seq);
	pbuf_kv(b, false, "sender_id", m->sender);
	pbuf_kv(b, false, "push_id", m->push_id);
	pbuf_puts(b, "}");
}

static void
payload_webhook(struct pbuf *b, const struct push_msg *m)
{
	pbuf_puts(b, "{");
	pbuf_kv(b, true, "push_id", m->push_id);
	pbuf_kv(b, false, "platform", push_platform_name(m->platform));
	pbuf_kv(b, false, "token", m->token);
	pbuf_kv(b, false, "user_id", m->user);
	pbuf_kv(b, false, "room_id", m->room);
	pbuf_ku(b, "seq", m->seq);
	pbuf_kv(b, false, "sender_id", m->sender);
	pbuf_kv(b, false, "preview", m->preview);
	pbuf_ku(b, "badge", m->badge);
	pbuf_kv(b, false, "collapse_key", m->collapse);
	pbuf_ku(b, "ts_ms", (uint64_t)(m->ts_ms > 0 ? m->ts_ms : 0));
	pbuf_puts(b, "}");
}

char *
payload_body(const struct push_msg *m)
{
	struct pbuf b = { NULL, 0, 0 };

	if (m->platform == PUSH_FCM)
		payload_fcm(&b, m);
	else if (m->platform == PUSH_APNS)
		payload_apns(&b, m);
	else
		payload_webhook(&b, m);
	return b.p;
}
