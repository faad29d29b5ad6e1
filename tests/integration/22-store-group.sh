#!/usr/bin/env bash
# Two parley-store processes in one consumer group: partitions move between
# them on joins, a kill -9, and a SIGSTOP longer than the session timeout
# (the frozen one wakes up as a zombie with a batch in hand, which the
# offsets fence must refuse). Afterwards every message is there once, with
# dense seqs in log order. Run by tests/run.sh, or alone (tools/store_it.sh).
set -euo pipefail

# shellcheck source=tools/store_it.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tools/store_it.sh"
store_it_init store-group

# 30 rooms; client_msg_id p-K is the K-th post of its room.
gen() {
	awk -v from="$1" -v to="$2" 'BEGIN {
		for (i = from; i < to; i++) {
			r = i % 30
			room = sprintf("dm:a%02d:b%02d", r, r)
			k = int(i / 30) + 1
			printf "post\t%s\ta%02d\t%d\tp-%d\tmessage %d\n", room, r,
				1000 + i, k, k
		}
	}'
}
gen 0 15000 >"$T/p1.txt"
gen 15000 30000 >"$T/p2.txt"
gen 30000 36000 >"$T/p3.txt"

# Each store serves its RPC on its own ipc socket so both can run.
store() {
	PARLEY_STORE_BATCH=20 PARLEY_STORE_LISTEN="ipc://$T/$1.ipc" \
		start "$1" parley-store
}

produce <"$T/p1.txt"
store storeA
wait_until 60 at_least 2000 || fail "storeA ingests nothing"
store storeB
wait_until 60 grep -q '"store.assign"' "$T/storeB.log" || fail "storeB never assigned"
echo "storeB joined at $(count) messages"

# Freeze storeA beyond session.timeout.ms (6 s) while records keep coming.
produce <"$T/p2.txt" &
producer=$!
kill -STOP "$(cat "$T/storeA.pid")"
echo "storeA frozen at $(count) messages"
sleep 10
kill -CONT "$(cat "$T/storeA.pid")"
echo "storeA thawed at $(count) messages"
wait "$producer" || fail "producing p2 failed"

# kill -9 storeB mid-stream: storeA (back in the group) takes over.
produce <"$T/p3.txt" &
producer=$!
wait_until 30 at_least $(($(count) + 500)) || true
stop storeB KILL
echo "storeB killed -9 at $(count) messages"
wait "$producer" || fail "producing p3 failed"
wait_until 120 consumed_all 36000 || fail "consumed $(consumed) of 36000"

[ "$(count)" -eq 36000 ] || fail "$(count) messages, want 36000"
[ "$(q "SELECT count(*) FROM (SELECT room_id FROM messages GROUP BY room_id
	HAVING min(seq) <> 1 OR max(seq) <> count(*)) d")" -eq 0 ] ||
	fail "seqs are not dense"
[ "$(q "SELECT count(*) FROM messages
	WHERE seq <> split_part(client_msg_id, '-', 2)::bigint")" -eq 0 ] ||
	fail "seq order differs from log order"
[ "$(q "SELECT count(*) FROM rooms WHERE last_seq <> 1200")" -eq 0 ] ||
	fail "rooms.last_seq"
if grep -q '"store.rows_existed"' "$T"/store*.log; then
	fail "a batch found its rows already written"
fi
fenced=$(cat "$T"/store*.log | grep -c '"store.fenced"' || true)
echo "ok: 36000 messages once each, dense, in log order ($fenced fenced batches)"
