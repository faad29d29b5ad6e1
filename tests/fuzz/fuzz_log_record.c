/* libFuzzer target: log records as every folder reads them from Kafka.
 * The input is a sequence of encoded Records (fuzz.h framing) applied in
 * order to two fresh folds; the folds must agree on every verdict, seq and
 * error (the fold is deterministic, docs/ARCHITECTURE.md) and keep their
 * invariants: seqs of accepted posts are dense per room, markers never
 * pass last_seq. */
#include <assert.h>

#include "fold.h"
#include "fuzz.h"
#include "parley/log/v1/record.pb-c.h"

static void
fuzz_check(const Parley__Log__V1__Record *r, const struct fold_result *a,
	   const struct fold_result *b, uint64_t last_before)
{
	assert(a->verdict == b->verdict && a->seq == b->seq &&
	       a->error == b->error && a->ts_ms == b->ts_ms &&
	       a->created == b->created);
	if (a->verdict == FOLD_ACCEPTED &&
	    r->body_case == PARLEY__LOG__V1__RECORD__BODY_POST)
		assert(a->room && a->seq == last_before + 1 &&
		       a->room->last_seq == a->seq);
	if (a->verdict == FOLD_REJECTED)
		assert(a->error != 0 && a->reason != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fold *fa = fold_new(), *fb = fold_new();
	const uint8_t *p = data, *end = data + size, *m;
	size_t len;

	while ((m = fuzz_next(&p, end, &len))) {
		Parley__Log__V1__Record *r =
			parley__log__v1__record__unpack(NULL, len, m);
		struct fold_result ra, rb;
		struct fold_room *room;
		uint64_t last = 0;

		if (r == NULL)
			continue;
		room = r->room_id ? fold_room_get(fa, r->room_id) : NULL;
		if (room)
			last = room->last_seq;
		assert(fold_apply(fa, r, &ra) == 0);
		assert(fold_apply(fb, r, &rb) == 0);
		fuzz_check(r, &ra, &rb, last);
		parley__log__v1__record__free_unpacked(r, NULL);
	}
	assert(fold_room_count(fa) == fold_room_count(fb));
	fold_free(fa);
	fold_free(fb);
	return 0;
}
