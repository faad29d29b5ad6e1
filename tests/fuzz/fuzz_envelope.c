/* libFuzzer target: internal envelopes, as the process that receives them
 * over NNG would read them. The first byte picks the reader: 0 is the
 * router's ingress (a Batch of Commands through ingress_batch, every check
 * it makes, and each record it would produce decoded again and folded);
 * the others decode one envelope type (store, presence, deliveries) and
 * walk a batch with bus_iter. The router's other files are stubs here. */
#include "../../router/ingress.c"

#include <assert.h>

#include "fuzz.h"
#include "pb.h"

static struct router_metrics fuzz_m;
static struct fold *fuzz_fold;

void
router_error(struct router *r, const char *gateway, const char *session_id,
	     uint64_t request_id, int code, const char *msg, bool retryable,
	     const char *room_id, const char *client_msg_id)
{
	(void)r;
	(void)request_id;
	(void)retryable;
	(void)room_id;
	(void)client_msg_id;
	/* Every rejection names its peer and a documented error code. */
	assert(gateway && session_id && msg);
	assert(code >= PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST &&
	       code <= PARLEY__V1__ERROR_CODE__ERROR_CODE_INTERNAL);
}

int64_t
router_now_ms(void)
{
	return 1700000000000;
}

void
eph_command(struct router *r, const Parley__Internal__V1__Command *c)
{
	(void)r;
	(void)c;
}

/* What ingress would put in the log: it must decode, and the fold takes
 * it (any verdict). Reports are errors-only and carry no opaque. */
int
kafka_produce(struct kafka_producer *p, const char *topic, const char *key,
	      const void *buf, size_t len, void *opaque)
{
	Parley__Log__V1__Record *rec =
		parley__log__v1__record__unpack(NULL, len, buf);
	struct fold_result res;

	(void)p;
	(void)topic;
	assert(rec != NULL && key != NULL && strcmp(key, rec->room_id) == 0);
	assert(fold_apply(fuzz_fold, rec, &res) == 0);
	parley__log__v1__record__free_unpacked(rec, NULL);
	assert(opaque == NULL);
	return 0;
}

static void
fuzz_ingress(const uint8_t *data, size_t size)
{
	static struct router r;
	nng_msg *m;

	if (r.m == NULL) {
		fuzz_m.commands = metrics_counter("fuzz_commands", "");
		fuzz_m.produce_errors = metrics_counter("fuzz_errors", "");
		r.m = &fuzz_m;
		r.cfg.topic = "fuzz";
		r.cfg.max_body = 64 * 1024;
		r.cfg.max_members = 1000;
	}
	if (nng_msg_alloc(&m, 0) != 0)
		abort();
	if (size && nng_msg_append(m, data, size) != 0)
		abort();
	fuzz_fold = fold_new();
	ingress_batch(&r, m);
	fold_free(fuzz_fold);
	nng_msg_free(m);
}

static const ProtobufCMessageDescriptor *const fuzz_types[] = {
	&parley__internal__v1__store_request__descriptor,
	&parley__internal__v1__store_reply__descriptor,
	&parley__internal__v1__presence_request__descriptor,
	&parley__internal__v1__presence_reply__descriptor,
	&parley__internal__v1__presence_update__descriptor,
	&parley__internal__v1__presence_report__descriptor,
	&parley__internal__v1__delivery__descriptor,
	&parley__internal__v1__command__descriptor,
};

/* Decode as one type; what decodes with valid field numbers (pb.h) must
 * encode to something that decodes to the same bytes again. */
static void
fuzz_decode(const ProtobufCMessageDescriptor *d, const uint8_t *data,
	    size_t size)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size, data);
	ProtobufCMessage *back;
	uint8_t *a, *b;
	size_t n;

	if (m == NULL)
		return;
	if (!pb_tags_valid(m)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}
	n = protobuf_c_message_get_packed_size(m);
	a = xmalloc(n + 1);
	protobuf_c_message_pack(m, a);
	back = protobuf_c_message_unpack(d, NULL, n, a);
	assert(back != NULL);
	assert(protobuf_c_message_get_packed_size(back) == n);
	b = xmalloc(n + 1);
	protobuf_c_message_pack(back, b);
	assert(memcmp(a, b, n) == 0);
	free(a);
	free(b);
	protobuf_c_message_free_unpacked(back, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = sizeof(fuzz_types) / sizeof(fuzz_types[0]);
	struct bus_iter it;
	const uint8_t *item;
	size_t len;
	int rc;

	if (size == 0)
		return 0;
	if (data[0] == 0) {
		fuzz_ingress(data + 1, size - 1);
		return 0;
	}
	/* Deliveries and store replies travel in batches too. */
	bus_iter_init(&it, data + 1, size - 1);
	while ((rc = bus_iter_next(&it, &item, &len)) == 1) {
		assert(item >= data + 1 && item + len <= data + size);
		fuzz_decode(fuzz_types[data[0] % n], item, len);
	}
	assert(rc == 0 || rc == -EBADMSG);
	fuzz_decode(fuzz_types[data[0] % n], data + 1, size - 1);
	return 0;
}
