#!/usr/bin/env bash
# SubscribePresence end to end (gateway subs.c, presence's coalesced user
# feed, the CLI's `parley presence`): current states first, then online
# and offline changes pushed to watchers on both gateways, a second device
# changes nothing, a late subscriber reads last_seen, limits are enforced,
# and a presence restart does not leave a watcher with a stale state.
. "$(dirname "$0")/../lib.sh"
lib_init presence-sub
export PARLEY_PRESENCE_COALESCE_MS=300
start_stack

# bg NAME CMD...: a client with its own stdout/stderr, stopped at exit.
bg() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" &
	echo "$!" >"$T/$name.pid"
}

lines() {
	wc -l <"$T/$1"
}

wait_lines() {
	for _ in $(seq $(($3 * 10))); do
		[ "$(lines "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "$1 has $(lines "$1") lines, want $2: $(cat "$T/$1")"
}

now_ms() {
	date +%s%3N
}

# The n-th line (from 1) of FILE, checked by a Python expression on `j`.
check_line() {
	python3 - "$T/$1" "$2" "$3" <<'PY' || fail "$1 line $2: $(sed -n "$2p" "$T/$1") is not $3"
import json, sys, time
# The pattern a test waited for may have matched an earlier line (bob's
# never-seen offline state is line 1): wait for the n-th line (3 s at most).
for _ in range(30):
    try:
        j = json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2]) - 1])
        break
    except (IndexError, ValueError):
        time.sleep(0.1)
assert j["type"] == "presence", j
assert eval(sys.argv[3]), j
PY
}

# 1. alice watches bob and carol through gateway 1, dave watches bob through
#    gateway 2: the current states come first (never seen: offline, 0).
bg alice parley presence --url "$(url 1)" --as alice bob carol bob --timeout 60
bg dave parley presence --url "$(url 2)" --as dave bob --timeout 60
wait_lines alice.out 2 10
wait_lines dave.out 1 10
check_line alice.out 1 'j["user_id"] == "bob" and not j["online"] and j["last_seen_ms"] == 0'
check_line alice.out 2 'j["user_id"] == "carol" and not j["online"]'
check_line dave.out 1 'j["user_id"] == "bob" and not j["online"]'
echo "ok 1 current states first (duplicate ids answered once)"

# 2. bob comes online on gateway 2: both watchers hear it within a window.
t0=$(now_ms)
bg bob parley listen --url "$(url 2)" --as bob
wait_file_line "$T/alice.out" '"user_id":"bob","online":true' 5
wait_file_line "$T/dave.out" '"user_id":"bob","online":true' 5
echo "ok 2 bob online pushed to both gateways after $(($(now_ms) - t0)) ms"

# 3. A second device of bob comes and goes: bob never went offline, so
#    nobody hears anything.
PARLEY_URL=$(url 1) parley rooms --as bob >/dev/null
sleep 1
[ "$(lines alice.out)" = 3 ] || fail "second device was published: $(cat "$T/alice.out")"
echo "ok 3 a second device changes nothing"

# 4. bob leaves: offline, with last_seen when it happened.
t1=$(now_ms)
stop bob
t2=$(now_ms)
wait_file_line "$T/alice.out" '"user_id":"bob","online":false' 5
wait_file_line "$T/dave.out" '"user_id":"bob","online":false' 5
check_line alice.out 4 "j['user_id'] == 'bob' and $t1 - 50 <= j['last_seen_ms'] <= $t2 + 500"
echo "ok 4 bob offline pushed with last_seen"

# 5. A late subscriber reads the same last_seen from presence.
PARLEY_URL=$(url 2) parley presence --as erin bob --count 1 --timeout 10 \
	>"$T/erin.out" || fail "erin's presence: exit $?"
seen=$(sed -n 4p "$T/alice.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seen_ms"])')
check_line erin.out 1 "not j['online'] and j['last_seen_ms'] == $seen"
echo "ok 5 late subscriber reads last_seen"

# 6. Limits: more than 1000 ids, or an invalid one, is a BAD_REQUEST.
rc=0
PARLEY_URL=$(url 1) parley presence --as erin $(seq -f 'u%g' 1001) \
	--timeout 10 >/dev/null 2>"$T/limit.err" || rc=$?
[ "$rc" = 1 ] && grep -q BAD_REQUEST "$T/limit.err" ||
	fail "1001 ids: exit $rc, $(cat "$T/limit.err")"
rc=0
PARLEY_URL=$(url 1) parley presence --as erin 'no spaces' \
	--timeout 10 >/dev/null 2>"$T/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q BAD_REQUEST "$T/bad.err" ||
	fail "invalid id: exit $rc, $(cat "$T/bad.err")"
PARLEY_URL=$(url 1) parley presence --as erin $(seq -f 'u%g' 1000) \
	--count 1000 --timeout 10 >"$T/many.out" || fail "1000 ids: exit $?"
echo "ok 6 limits"

# 7. Watchers that went away cost nothing: carol comes online, alice (still
#    watching) hears it; dave's subscription died with his session.
stop dave
bg carol parley listen --url "$(url 1)" --as carol
wait_file_line "$T/alice.out" '"user_id":"carol","online":true' 5
stop carol
wait_lines alice.out 6 5
check_line alice.out 6 "j['user_id'] == 'carol' and not j['online'] and j['last_seen_ms'] > 0"
sleep 0.5
[ "$(lines alice.out)" = 6 ] || fail "alice: $(cat "$T/alice.out")"
echo "ok 7 carol online and offline; dave's subscription gone with him"

# 8. bob goes offline while presence is down: the new presence never knew
#    him, so its feed says nothing; the gateway reads watched users again
#    after the restart and tells alice.
bg bob parley listen --url "$(url 2)" --as bob
wait_lines alice.out 7 5
check_line alice.out 7 "j['user_id'] == 'bob' and j['online']"
stop presence
stop bob
start_presence
wait_lines alice.out 8 20
check_line alice.out 8 "j['user_id'] == 'bob' and not j['online']"
grep -q '"gateway.subs_refresh"' "$T/gateway1.log" || fail "no refresh logged"
echo "ok 8 presence restart: watched users read again"
stop alice
for g in gateway1 gateway2; do
	if grep -q '"level":"error"' "$T/$g.log"; then
		fail "$g logged errors: $(grep '"level":"error"' "$T/$g.log")"
	fi
done
echo ok
