#!/usr/bin/env bash
# parley-store ingest end to end: records produced into a real Kafka are
# folded into a real PostgreSQL while the store is killed with -9 twice
# (and, with its own Kafka and PostgreSQL, both restarted); afterwards every
# message is there once, seqs are dense and in log order, retries made no
# rows, membership and markers match (also for rooms a restarted store
# reloads from PostgreSQL), and a SIGTERM stop exits 0.
# Run by tests/run.sh, or alone: it then starts Kafka on 29092/29093 and
# PostgreSQL on 25432 (STORE_IT_KAFKA_PORT, ..._CONTROLLER_PORT, ..._PG_PORT).
set -euo pipefail

# shellcheck source=tools/store_it.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tools/store_it.sh"
store_it_init store-ingest

# The workload: 40 DMs and 4 groups; client_msg_id p-K is the K-th post of
# its room, so seq must equal K. The second half interleaves retries of
# earlier posts (same sender and id: no new row), a removal by the
# creator of g0, a removal by a non-creator of g1 (rejected), a read marker
# and an undecodable record. expect.txt gets the expected numbers.
awk -v n1=20000 -v n2=8000 -v out="$T/expect.txt" '
function post(i,   r, room, who) {
	r = i % 44
	if (r < 40) {
		room = sprintf("dm:u%02d:v%02d", r, r)
		who = sprintf(int(i / 44) % 2 ? "u%02d" : "v%02d", r)
	} else {
		room = "g" (r - 40)
		who = int(i / 44) % 3 ? "v01" : "u00"
	}
	k[room]++
	posts++
	sent_room[posts] = room; sent_who[posts] = who
	sent_id[posts] = "p-" k[room]
	printf "post\t%s\t%s\t%d\tp-%d\tpost %d of %s\n", room, who, 1000 + i,
		k[room], k[room], room
}
BEGIN {
	srand(7)
	for (g = 0; g < 4; g++)
		printf "create\tg%d\tu00\t900\tgroup %d\tv00,v01,u05\n", g, g
	for (i = 0; i < n1; i++)
		post(i)
	printf "remove\tg0\tu00\t%d\tu05\n", 1000 + n1
	printf "remove\tg1\tv01\t%d\tu05\n", 1000 + n1
	left = k["g0"]
	printf "raw\tg1\tnot a protobuf record\n"
	for (i = n1; i < n1 + n2; i++) {
		post(i)
		if (i % 10 == 0) {
			j = 1 + int(rand() * (posts - 1))
			printf "post\t%s\t%s\t%d\t%s\tretry\n", sent_room[j],
				sent_who[j], 1000 + i, sent_id[j]
			retries++
		}
	}
	printf "read\tg0\tv00\t%d\t5\n", 1000 + n1 + n2
	print posts, retries, left > out
}' >"$T/all.txt"
read -r want_msgs want_retries want_left <"$T/expect.txt"
split_at=$((4 + 20000))
head -n "$split_at" "$T/all.txt" >"$T/phase1.txt"
tail -n "+$((split_at + 1))" "$T/all.txt" >"$T/rest.txt"
half=$(($(wc -l <"$T/rest.txt") / 2))
head -n "$half" "$T/rest.txt" >"$T/phase2.txt"
tail -n "+$((half + 1))" "$T/rest.txt" >"$T/phase3.txt"
want_records=$(wc -l <"$T/all.txt")
echo "workload: $want_records records, $want_msgs messages, $want_retries retries"

# Phase 1: produce, then ingest in small batches and kill -9 mid-stream.
produce <"$T/phase1.txt"
PARLEY_STORE_BATCH=20 start_store
wait_until 60 at_least 3000 || fail "store did not ingest 3000 messages"
stop store KILL
n=$(count)
echo "killed -9 after $n messages"
[ "$n" -lt 20000 ] || fail "store finished phase 1 before the kill"

# Phase 2: produce while the restarted store catches up; kill it again.
start_store
produce <"$T/phase2.txt" &
producer=$!
wait_until 60 at_least $((n + 2000)) || fail "restarted store is stuck"
stop store KILL
echo "killed -9 again after $(count) messages"
wait "$producer" || fail "producing phase 2 failed"

# Phase 3: produce while the store runs; with our own PostgreSQL, crash
# it under the store meanwhile.
start_store
produce <"$T/phase3.txt" &
producer=$!
if [ -n "$own_infra" ]; then
	wait_until 30 at_least $(($(count) + 200)) || fail "store is stuck"
	deploy/local/pg.sh stop "$own_infra/pg" immediate
	sleep 2
	deploy/local/pg.sh start "$own_infra/pg" "$PARLEY_TEST_PG_PORT"
	echo "restarted PostgreSQL under the store"
else
	echo "shared PostgreSQL: its restart is not tested here"
fi
wait "$producer" || fail "producing phase 3 failed"
wait_until 120 consumed_all "$want_records" ||
	fail "consumed $(consumed) of $want_records records"

# No lost, no duplicate rows; dense seqs in log order.
[ "$(count)" -eq "$want_msgs" ] || fail "$(count) messages, want $want_msgs"
[ "$(q "SELECT count(*) FROM (SELECT 1 FROM messages GROUP BY room_id,
	sender_id, client_msg_id HAVING count(*) > 1) d")" -eq 0 ] ||
	fail "duplicate client_msg_ids stored"
[ "$(q "SELECT count(*) FROM (SELECT room_id FROM messages GROUP BY room_id
	HAVING min(seq) <> 1 OR max(seq) <> count(*)) d")" -eq 0 ] ||
	fail "seqs are not dense"
[ "$(q "SELECT count(*) FROM messages WHERE body = 'retry'
	OR seq <> split_part(client_msg_id, '-', 2)::bigint")" -eq 0 ] ||
	fail "seq order differs from log order"
[ "$(q "SELECT count(*) FROM rooms r WHERE last_seq <> (SELECT max(seq)
	FROM messages m WHERE m.room_id = r.room_id)")" -eq 0 ] ||
	fail "rooms.last_seq differs from the messages"
[ "$(q "SELECT count(*) FROM rooms")" -eq 44 ] || fail "want 44 rooms"
echo "ok: $want_msgs messages in 44 rooms, dense, once each, in log order"
if [ -n "$own_infra" ]; then
	grep -q '"store.resync"' "$T/store.log" ||
		fail "the store never lost PostgreSQL"
	echo "ok: the store rolled back and resynced after the PostgreSQL crash"
fi

# Membership and markers.
[ "$(q "SELECT left_after FROM members WHERE room_id = 'g0'
	AND user_id = 'u05'")" = "$want_left" ] || fail "u05 left_after"
[ "$(q "SELECT read_seq || ',' || delivered_seq FROM members
	WHERE room_id = 'g0' AND user_id = 'v00'")" = "5,5" ] ||
	fail "v00 markers in g0"
[ "$(q "SELECT count(*) FROM members WHERE room_id = 'g1'
	AND user_id = 'u05' AND left_after IS NULL")" -eq 1 ] ||
	fail "a non-creator removed u05 from g1"
[ "$(q "SELECT string_agg(DISTINCT coalesce(creator, '-'), ',')
	FROM rooms")" = "-,u00" ] || fail "rooms.creator"
[ "$(q "SELECT count(*) FROM members WHERE left_after IS NULL")" -eq \
	$((40 * 2 + 4 * 4 - 1)) ] || fail "member count"
grep -q '"store.bad_record"' "$T/store.log" || fail "bad record not logged"
echo "ok: membership, markers, undecodable record skipped"

if [ -n "$own_infra" ]; then
	# The broker restarts under the running store, which must reconnect.
	deploy/local/kafka.sh stop "$own_infra/kafka"
	deploy/local/kafka.sh start "$own_infra/kafka" \
		"${PARLEY_TEST_KAFKA##*:}" "${STORE_IT_KAFKA_CONTROLLER_PORT:-29093}"
	echo "restarted Kafka under the store"
fi

# Room state a restarted store must reload, not recompute: the creator of
# g2 removes u05, a non-creator's removal of v00 is rejected.
stop store TERM
start_store
printf 'remove\tg2\tu00\t999990\tu05\nremove\tg2\tv01\t999991\tv00\n' | produce
want_records=$((want_records + 2))
wait_until 60 consumed_all "$want_records" || fail "removals not consumed"
[ "$(q "SELECT user_id FROM members WHERE room_id = 'g2'
	AND left_after IS NOT NULL")" = "u05" ] ||
	fail "creator-only removal differs after a reload"
echo "ok: a reloaded room keeps its creator"

# Room events survived the kills once each: 4 creations and the 2
# removals by a creator (the rejected ones made none).
[ "$(q "SELECT string_agg(kind || ':' || room_id || ':' ||
	array_to_string(user_ids, ','), ' ' ORDER BY room_id, kind)
	FROM room_events WHERE kind <> 1")" = "3:g0:u05 3:g2:u05" ] ||
	fail "removal events"
[ "$(q "SELECT count(*) FROM room_events WHERE kind = 1
	AND user_ids = '{u00,u05,v00,v01}'")" -eq 4 ] || fail "creation events"
echo "ok: room events stored once each"

# A retry of an existing client_msg_id makes no new row.
before=$(q "SELECT last_seq FROM rooms WHERE room_id = 'dm:u03:v03'")
printf 'post\tdm:u03:v03\tv03\t999999\tp-1\tdifferent body\n' | produce
wait_until 30 consumed_all $((want_records + 1)) || fail "retry not consumed"
[ "$(count)" -eq "$want_msgs" ] || fail "a retry made a new row"
[ "$(q "SELECT body FROM messages WHERE room_id = 'dm:u03:v03'
	AND seq = 1")" = "post 1 of dm:u03:v03" ] || fail "original body changed"
[ "$(q "SELECT last_seq FROM rooms WHERE room_id = 'dm:u03:v03'")" = \
	"$before" ] || fail "retry moved last_seq"
echo "ok: duplicate client_msg_id made no row"

# SIGTERM: finish, commit, exit 0.
pid=$(cat "$T/store.pid")
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
rm -f "$T/store.pid"
[ "$rc" -eq 0 ] || fail "store exited $rc on SIGTERM"
grep -q '"store.exit"' "$T/store.log" || fail "no store.exit line"
echo "ok: SIGTERM exits 0"
