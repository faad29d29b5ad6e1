#!/usr/bin/env bash
# The pusher killed with -9 and restarted sends nothing twice and misses
# nothing: work that was waiting (grace, coalescing window) is redone from
# the offsets it stored in PostgreSQL, and what a provider accepted is
# never pushed again (per device and room, seq high-water mark in the
# same transaction as the offsets).
. "$(dirname "$0")/../lib.sh"
lib_init push-restart
export PARLEY_PUSH_GRACE_MS=3000 PARLEY_PUSH_COALESCE_MS=5000
pusher_init
start_stack
start_push_provider
start_pusher
U=$(url 1)
dm=dm:alice:bob

parley device add --url "$U" --as bob fcm bob-phone >/dev/null || fail "device"
parley device add --url "$U" --as bob webhook bob-hook >/dev/null || fail "device"

send_burst() { # send_burst FROM TO: messages FROM..TO in parallel
	local pids=() i
	for i in $(seq "$1" "$2"); do
		parley send --url "$U" --as alice --id "m$i" $dm "message $i" >/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}" || fail "a send of $1..$2 failed"
}

count() { provider_pushes "$1" all | wc -l; }

# wait_pushes TOKEN N SECONDS: until TOKEN has N accepted pushes.
wait_pushes() {
	for _ in $(seq $(($3 * 10))); do
		[ "$(provider_pushes "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "$1 has $(provider_pushes "$1" | wc -l) pushes, want $2"
}

sent_seq() { # the pusher's recorded high-water mark for a device
	psql -qtA -h 127.0.0.1 -p "$PARLEY_TEST_PG_PORT" -U parley \
		-d "${PARLEY_TOPIC#it.}" \
		-c "SELECT coalesce(max(seq), 0) FROM push_sent WHERE token = '$1'"
}

# 1. Killed inside the grace window: nothing was pushed yet; the restart
#    pushes once per device.
send_burst 1 10
stop pusher KILL
[ "$(count bob-phone)" -eq 0 ] && [ "$(count bob-hook)" -eq 0 ] ||
	fail "pushed before the grace window ended"
start_pusher
wait_pushes bob-phone 1 15
wait_pushes bob-hook 1 5
for _ in $(seq 50); do
	[ "$(sent_seq bob-phone)" = 10 ] && [ "$(sent_seq bob-hook)" = 10 ] && break
	sleep 0.1
done
[ "$(sent_seq bob-phone)" = 10 ] && [ "$(sent_seq bob-hook)" = 10 ] ||
	fail "push_sent: $(sent_seq bob-phone) $(sent_seq bob-hook), want 10 10"
echo "killed in the grace window: after the restart one push per device (seq 10)"

# 2. Killed mid-burst inside the coalescing window: the recorded pushes
#    are not repeated, the rest comes once.
send_burst 11 12
stop pusher KILL
send_burst 13 15
start_pusher
wait_pushes bob-phone 2 15
wait_pushes bob-hook 2 5
sleep 1
echo "killed mid-burst: one more push per device after the restart"

# 3. A clean restart redoes nothing.
stop pusher
start_pusher
sleep 3
for d in bob-phone bob-hook; do
	provider_pushes $d all >"$T/$d.jsonl"
	python3 - "$T/$d.jsonl" <<'PY' || fail "$d: $(cat "$T/$d.jsonl")"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["status"] for r in rs] == [200, 200], rs
assert [(r["seq"], r["badge"]) for r in rs] == [(10, 10), (15, 15)], rs
assert len({r["push_id"] for r in rs}) == 2, rs
PY
done
echo "no duplicate after kill -9 twice and a clean restart: seqs 10 and 15 once each"
echo ok
