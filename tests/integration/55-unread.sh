#!/usr/bin/env bash
# Exact unread (G5) across two devices of one user, reconnects and restarts:
# unread = messages after the read marker not sent by the user; the same on
# every device; reading on one device reaches the other live; markers only
# move forward; Welcome carries the same numbers after a restart.
. "$(dirname "$0")/../lib.sh"
lib_init unread
start_stack
dm=dm:alice:bob

unread_of() { # unread_of USER ROOM WANT: wait until rooms shows WANT
	local got=
	for _ in $(seq 100); do
		parley rooms --url "$(url 1)" --as "$1" >"$T/rooms.$1" 2>/dev/null || true
		got=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["room_id"] == sys.argv[2]: print(r["unread"])' "$T/rooms.$1" "$2")
		[ "$got" = "$3" ] && return 0
		sleep 0.2
	done
	fail "$1's unread in $2 is '$got', want $3"
}

PARLEY_URL=$(url 1) parley listen --as bob --timeout 40 >"$T/devA.out" 2>"$T/devA.err" &
devA=$!
PARLEY_URL=$(url 2) parley listen --as bob --timeout 40 >"$T/devB.out" 2>"$T/devB.err" &
devB=$!
wait_file_line "$T/devA.err" listening 20
wait_file_line "$T/devB.err" listening 20
for i in 1 2 3 4 5; do
	parley send --url "$(url 1)" --as alice $dm "m$i" >/dev/null || fail "send $i"
done
unread_of bob $dm 5
parley read --url "$(url 1)" --as bob $dm 3 >/dev/null || fail "read 3"
wait_file_line "$T/devA.out" '"receipt".*"user_id":"bob".*"read".*"seq":3' 10
wait_file_line "$T/devB.out" '"receipt".*"user_id":"bob".*"read".*"seq":3' 10
unread_of bob $dm 2
echo "read on one device: both devices saw it live; unread 5 -> 2"
parley send --url "$(url 2)" --as bob $dm "reply" >/dev/null || fail "bob replies"
unread_of alice $dm 1
unread_of bob $dm 2
parley read --url "$(url 2)" --as bob $dm 1 >/dev/null || fail "read 1"
unread_of bob $dm 2
echo "own messages do not count; markers only move forward"
kill "$devA" "$devB" 2>/dev/null || true

stop_all
start_stack
unread_of bob $dm 2
unread_of alice $dm 1
PARLEY_URL=$(url 2) parley listen --as bob --welcome --timeout 3 >"$T/welcome.out" 2>/dev/null || true
python3 - "$T/welcome.out" $dm <<'PY' || fail "Welcome after restart: $(head -c 600 "$T/welcome.out")"
import json, sys
w = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][0]
assert w["type"] == "welcome", w
room = [r for r in w["rooms"] if r["room_id"] == sys.argv[2]][0]
assert (room["unread"], room["read_seq"], room["last_seq"]) == (2, 3, 6), room
print("after restarting everything: Welcome says unread 2, read_seq 3, last_seq 6")
PY
echo ok
