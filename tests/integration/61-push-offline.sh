#!/usr/bin/env bash
# Push notifications to offline devices (parley-pusher against a local
# FCM/APNs/webhook provider, tests/tools/push_provider.py): devices are
# registered through the gateway; a burst of 20 messages to offline bob
# gives exactly one push per device with seq 20 and badge 20; messages in
# two rooms give one push per room; a user who is online, or comes online
# within the grace window, gets none; bad registrations are refused.
. "$(dirname "$0")/../lib.sh"
lib_init push-offline
export PARLEY_PUSH_GRACE_MS=3000 PARLEY_PUSH_COALESCE_MS=4000
pusher_init
start_stack
start_push_provider
start_pusher
U=$(url 1)

device() { # device add|remove USER ARGS...
	local verb=$1 user=$2
	shift 2
	parley device "$verb" --url "$U" --as "$user" "$@" >/dev/null ||
		fail "device $verb $user $*"
}

# expect_pushes TOKEN N: exactly N accepted pushes for TOKEN, kept in
# $T/TOKEN.jsonl.
expect_pushes() {
	provider_pushes "$1" >"$T/$1.jsonl"
	[ "$(wc -l <"$T/$1.jsonl")" -eq "$2" ] ||
		fail "$1 got $(wc -l <"$T/$1.jsonl") pushes, want $2: $(cat "$T/$1.jsonl")"
}

# wait_pushes TOKEN N SECONDS: until TOKEN has N accepted pushes.
wait_pushes() {
	for _ in $(seq $(($3 * 10))); do
		[ "$(provider_pushes "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
	done
	expect_pushes "$1" "$2"
}

# check FILE LINE EXPR: python EXPR holds for JSON line LINE (from 1) as r.
check() {
	python3 - "$1" "$2" "$3" <<'PY' || fail "$1 line $2 is not $3: $(sed -n "$2p" "$1")"
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2]) - 1])
sys.exit(0 if eval(sys.argv[3]) else 1)
PY
}

# Registration: through the gateway to the pusher, validated there.
device add bob fcm bob-phone
device add bob apns bob-tablet
device add dave webhook dave-hook
device add erin fcm erin-phone
device add frank fcm frank-phone
if parley device add --url "$U" --as bob carrier-pigeon tok 2>"$T/bad.err"; then
	fail "an unknown platform was accepted"
fi
grep -q "unknown platform" "$T/bad.err" || fail "bad platform: $(cat "$T/bad.err")"
if parley device add --url "$U" --as bob fcm "has space" 2>"$T/bad.err"; then
	fail "a token with a space was accepted"
fi
device add bob fcm bob-old
device remove bob bob-old
echo "devices registered through the gateway; bad ones refused"

# A burst of 20 to offline bob: one push per device, seq 20, badge 20.
dm=dm:alice:bob
pids=()
for i in $(seq 20); do
	parley send --url "$U" --as alice $dm "burst $i" >/dev/null &
	pids+=($!)
done
wait "${pids[@]}" || fail "a send of the burst failed"
wait_pushes bob-phone 1 15
wait_pushes bob-tablet 1 5
sleep 2 # anything more would show up by now
expect_pushes bob-phone 1
expect_pushes bob-tablet 1
for d in bob-phone bob-tablet; do
	check "$T/$d.jsonl" 1 'r["seq"] == 20 and r["badge"] == 20 and r["room_id"] == "dm:alice:bob"'
	check "$T/$d.jsonl" 1 'r["sender_id"] == "alice" and r["preview"].startswith("burst ")'
done
check "$T/bob-phone.jsonl" 1 'r["auth"] == "Bearer fcm-test-bearer" and r["title"] == "alice"'
check "$T/bob-tablet.jsonl" 1 'r["push_type"] == "alert" and r["topic"] == "dev.parley.test" and len(r["push_id"]) == 36'
[ "$(provider_pushes bob-old all | wc -l)" -eq 0 ] || fail "a removed device got a push"
[ "$(pusher_metric parley_pusher_coalesced_total)" -ge 38 ] ||
	fail "coalesced $(pusher_metric parley_pusher_coalesced_total), want >= 38"
echo "burst of 20: one push per device with seq 20, badge 20 (19 coalesced each)"

# Two rooms: one push per room, each with its own collapse key.
room=$(parley room create --url "$U" --as alice --name pals dave | json_field /dev/stdin room_id)
pids=()
for i in 1 2 3; do
	parley send --url "$U" --as alice "$room" "group $i" >/dev/null &
	pids+=($!)
	parley send --url "$U" --as alice dm:alice:dave "direct $i" >/dev/null &
	pids+=($!)
done
wait "${pids[@]}" || fail "a send to two rooms failed"
wait_pushes dave-hook 2 15
sleep 2
expect_pushes dave-hook 2
python3 - "$T/dave-hook.jsonl" "$room" <<'PY' || fail "two rooms: $(cat "$T/dave-hook.jsonl")"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert sorted(r["room_id"] for r in rs) == sorted([sys.argv[2], "dm:alice:dave"]), rs
assert all(r["seq"] == 3 and r["badge"] == 6 for r in rs), rs
assert all(r["sig_ok"] and r["push_id"] == r["header_push_id"] for r in rs), rs
assert rs[0]["collapse"] != rs[1]["collapse"], rs
assert all(r["user_id"] == "dave" for r in rs), rs
PY
echo "two rooms: one signed webhook push per room, badge 6 over both"

# Online users get none; nor does one who comes online within the grace.
PARLEY_URL=$(url 2) parley listen --as erin --timeout 30 >"$T/erin.out" 2>"$T/erin.err" &
wait_file_line "$T/erin.err" listening 20
for i in 1 2 3; do
	parley send --url "$U" --as alice dm:alice:erin "hi erin $i" >/dev/null
done
parley send --url "$U" --as alice dm:alice:frank "hi frank" >/dev/null
PARLEY_URL=$(url 2) parley listen --as frank --timeout 30 >"$T/frank.out" 2>"$T/frank.err" &
wait_file_line "$T/frank.err" listening 20
sleep 4
expect_pushes erin-phone 0
expect_pushes frank-phone 0
[ "$(pusher_metric parley_pusher_skipped_online_total)" -ge 1 ] ||
	[ "$(pusher_metric parley_pusher_skipped_delivered_total)" -ge 1 ] ||
	fail "no push was skipped"
echo "online users (and one online within the grace window) got no push"
echo ok
