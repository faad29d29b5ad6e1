/* Unit tests for pb.c: field number 0 anywhere in a decoded message. */
#include "pb.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

#include "parley/internal/v1/envelope.pb-c.h"
#include "parley/v1/client.pb-c.h"

/* Decode buf as a ClientFrame (NULL when protobuf-c refuses it). */
static Parley__V1__ClientFrame *
decode(const uint8_t *buf, size_t len)
{
	return parley__v1__client_frame__unpack(NULL, len, buf);
}

static void
test_plain_frame(void)
{
	/* request_id 7, send {client_msg_id "c", room_id "r"} */
	static const uint8_t b[] = { 0x08, 0x07, 0x5a, 0x06, 0x0a,
				     0x01, 'c',	 0x12, 0x01, 'r' };
	Parley__V1__ClientFrame *f = decode(b, sizeof(b));

	CHECK(f != NULL);
	if (f) {
		CHECK(pb_tags_valid(&f->base));
		parley__v1__client_frame__free_unpacked(f, NULL);
	}
}

static void
test_unknown_fields_fine(void)
{
	/* field 1000 (bytes) at the top and field 9 (varint) inside send */
	static const uint8_t b[] = { 0xc2, 0x3e, 0x01, 'x',  0x5a, 0x05,
				     0x0a, 0x01, 'c',  0x48, 0x01 };
	Parley__V1__ClientFrame *f = decode(b, sizeof(b));

	CHECK(f != NULL);
	if (f) {
		CHECK(pb_tags_valid(&f->base));
		parley__v1__client_frame__free_unpacked(f, NULL);
	}
}

/* The fuzzer's find: a field-0 key in two bytes decodes, and its one-byte
 * re-encoding does not. */
static void
test_field_zero_top(void)
{
	static const uint8_t b[] = { 0x81, 0x00, 1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint8_t one[] = { 0x01, 1, 2, 3, 4, 5, 6, 7, 8 };
	Parley__V1__ClientFrame *f = decode(b, sizeof(b));

	CHECK(decode(one, sizeof(one)) == NULL);
	CHECK(f != NULL);
	if (f) {
		CHECK(!pb_tags_valid(&f->base));
		parley__v1__client_frame__free_unpacked(f, NULL);
	}
}

static void
test_field_zero_nested(void)
{
	/* send {client_msg_id "c", field 0 varint} */
	static const uint8_t b[] = { 0x5a, 0x06, 0x0a, 0x01,
				     'c',  0x80, 0x00, 0x05 };
	/* sync_rooms {rooms: [sync {room_id "r"}, sync {field 0}]} */
	static const uint8_t r[] = { 0xda, 0x01, 0x0a, 0x0a, 0x03, 0x0a, 0x01,
				     'r',  0x0a, 0x03, 0x80, 0x00, 0x05 };
	Parley__V1__ClientFrame *f = decode(b, sizeof(b));
	Parley__V1__ClientFrame *g = decode(r, sizeof(r));

	CHECK(f != NULL && g != NULL);
	if (f) {
		CHECK(!pb_tags_valid(&f->base));
		parley__v1__client_frame__free_unpacked(f, NULL);
	}
	if (g) {
		CHECK_EQ_INT(g->sync_rooms->n_rooms, 2);
		CHECK(!pb_tags_valid(&g->base));
		parley__v1__client_frame__free_unpacked(g, NULL);
	}
}

/* A oneof member that is not set is never looked into. */
static void
test_oneof_other_member(void)
{
	Parley__Internal__V1__StoreRequest req =
		PARLEY__INTERNAL__V1__STORE_REQUEST__INIT;
	Parley__V1__ListRooms lr = PARLEY__V1__LIST_ROOMS__INIT;

	req.req_case = PARLEY__INTERNAL__V1__STORE_REQUEST__REQ_LIST_ROOMS;
	req.list_rooms = &lr;
	CHECK(pb_tags_valid(&req.base));
}

TEST_MAIN(TEST(test_plain_frame), TEST(test_unknown_fields_fine),
	  TEST(test_field_zero_top), TEST(test_field_zero_nested),
	  TEST(test_oneof_other_member))
