#!/usr/bin/env bash
# Provider failures (tests/tools/push_provider.py scripted per device):
# 500 then 200 delivers exactly once after a retry; 429 waits for its
# Retry-After; 410 and FCM's UNREGISTERED remove the device, which gets
# nothing more; a 400 is dropped without retries; a provider that never
# answers delays no other push, and times out.
. "$(dirname "$0")/../lib.sh"
lib_init push-failures
export PARLEY_PUSH_GRACE_MS=300 PARLEY_PUSH_COALESCE_MS=1000
export PARLEY_PUSH_RETRY_MS=200 PARLEY_PUSH_ATTEMPTS=2 PARLEY_PUSH_TIMEOUT_MS=6000
pusher_init
start_stack
start_push_provider
start_pusher
U=$(url 1)

device_add() { # device_add USER PLATFORM TOKEN
	parley device add --url "$U" --as "$1" "$2" "$3" >/dev/null ||
		fail "device add $*"
}

# summary TOKEN: the statuses the provider answered TOKEN, in order.
summary() {
	provider_pushes "$1" all | python3 -c '
import json, sys
print(" ".join(str(json.loads(l)["status"]) for l in sys.stdin))'
}

# wait_summary TOKEN WANT SECONDS: until summary TOKEN is WANT.
wait_summary() {
	local got=
	for _ in $(seq $(($3 * 10))); do
		got=$(summary "$1")
		[ "$got" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$1 was answered '$got', want '$2'"
}

devices() { # devices USER: the user's device tokens in the database
	psql -qtA -h 127.0.0.1 -p "$PARLEY_TEST_PG_PORT" -U parley \
		-d "${PARLEY_TOPIC#it.}" \
		-c "SELECT token FROM devices WHERE user_id = '$1' ORDER BY token"
}

device_add bob fcm bob-flaky
device_add bob apns bob-gone
device_add bob webhook bob-hang
device_add bob fcm bob-unreg
device_add bob fcm bob-bad
device_add carol fcm carol-ok
device_add carol apns carol-slow
provider_script bob-flaky 500 200
provider_script bob-gone 410
provider_script bob-hang hang
provider_script bob-unreg unregistered
provider_script bob-bad 400
provider_script carol-slow 429:1 200

t0=$(date +%s.%N)
parley send --url "$U" --as alice dm:alice:bob "one" >/dev/null || fail "send to bob"
parley send --url "$U" --as alice dm:alice:carol "one" >/dev/null || fail "send to carol"
wait_summary carol-ok 200 5
wait_summary bob-flaky "500 200" 5
t1=$(date +%s.%N)
python3 -c "import sys; d = $t1 - $t0; sys.exit(0 if d < 4.5 else 1)" ||
	fail "pushes took $(python3 -c "print($t1 - $t0)") s beside a hanging provider"
echo "500 then 200: delivered once after a retry; others not held back by a hanging provider"

wait_summary carol-slow "429 200" 5
provider_pushes carol-slow all >"$T/slow.jsonl"
python3 - "$T/slow.jsonl" <<'PY' || fail "Retry-After not honoured: $(cat "$T/slow.jsonl")"
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert b["t"] - a["t"] >= 0.95, (a["t"], b["t"])
PY
echo "429 with Retry-After: 1 retried after at least a second"

wait_summary bob-gone 410 5
wait_summary bob-unreg 404 5
wait_summary bob-bad 400 5
for _ in $(seq 50); do
	[ "$(devices bob | tr '\n' ' ')" = "bob-bad bob-flaky bob-hang " ] && break
	sleep 0.1
done
[ "$(devices bob | tr '\n' ' ')" = "bob-bad bob-flaky bob-hang " ] ||
	fail "bob's devices after 410/UNREGISTERED: $(devices bob | tr '\n' ' ')"
[ "$(pusher_metric parley_pusher_dead_tokens_total)" -eq 2 ] ||
	fail "dead tokens: $(pusher_metric parley_pusher_dead_tokens_total), want 2"
echo "410 and UNREGISTERED removed their devices; 400 dropped without a retry"

# A second message: only the live devices get it; the hanging provider
# times out, is tried again and given up.
sleep 1.2 # past the coalescing window of bob's first pushes
parley send --url "$U" --as alice dm:alice:bob "two" >/dev/null || fail "send 2"
wait_summary bob-flaky "500 200 200" 5
sleep 1
[ "$(summary bob-gone)" = 410 ] || fail "a removed device got a push: $(summary bob-gone)"
[ "$(summary bob-unreg)" = 404 ] || fail "a removed device got a push: $(summary bob-unreg)"
[ "$(summary bob-bad)" = "400 400" ] || fail "bob-bad: $(summary bob-bad)"
provider_pushes bob-flaky >"$T/flaky.jsonl"
python3 - "$T/flaky.jsonl" <<'PY' || fail "bob-flaky: $(cat "$T/flaky.jsonl")"
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
assert seqs == [1, 2], seqs
PY
wait_file_line "$T/pusher.log" 'pusher.gave_up.*webhook device of bob' 20
case "$(summary bob-hang)" in
"None None"*) ;;
*) fail "bob-hang: $(summary bob-hang)" ;;
esac
[ "$(pusher_metric parley_pusher_failed_total)" -ge 3 ] ||
	fail "failed: $(pusher_metric parley_pusher_failed_total), want two 400s and the hang"
[ "$(pusher_metric parley_pusher_retries_total)" -ge 3 ] ||
	fail "retries: $(pusher_metric parley_pusher_retries_total)"
echo "a hanging provider timed out $PARLEY_PUSH_ATTEMPTS times and was given up"
echo ok
