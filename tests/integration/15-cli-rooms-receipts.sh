#!/usr/bin/env bash
# The CLI's group, typing, receipt and room-presence commands against the
# real stack: `room add/remove/leave` print the RoomEvent reply, `typing`
# reaches online members (and is refused to strangers), `listen` confirms
# what it printed with Delivered (unless --no-delivered) so that
# `receipts` counts it, `room online` lists who is online.
. "$(dirname "$0")/../lib.sh"
lib_init cli-rooms
start_stack

bg() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" &
	echo "$!" >"$T/$name.pid"
}

# py FILE EXPR: EXPR over `j`, the last JSON line of FILE, must hold.
py() {
	python3 - "$1" "$2" <<'PY' || fail "$1: $(tail -n 1 "$1") is not $2"
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert eval(sys.argv[2]), j
PY
}

# until_py SECONDS CMD... -- EXPR: run CMD (stdout to $T/u.out) until EXPR holds.
until_py() {
	local secs=$1
	shift
	local expr=${*: -1}
	set -- "${@:1:$#-2}"
	for _ in $(seq $((secs * 5))); do
		if "$@" >"$T/u.out" 2>>"$T/u.err" && py_quiet "$T/u.out" "$expr"; then
			return 0
		fi
		sleep 0.2
	done
	fail "$* never gave $expr: $(cat "$T/u.out")"
}

py_quiet() {
	python3 - "$1" "$2" 2>/dev/null <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

export PARLEY_URL
PARLEY_URL=$(url 1)

# 1. alice makes a room with bob and carol; bob listens on gateway 2.
parley room create --as alice --name team bob carol >"$T/room.out" ||
	fail "room create: exit $?"
room=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["room_id"])' <"$T/room.out")
bg bob env PARLEY_URL="$(url 2)" parley listen --as bob --timeout 60
wait_file_line "$T/bob.err" listening 20
echo "ok 1 room $room, bob listening"

# 2. Three messages; bob prints them and confirms with Delivered, so the
#    summary of seq 3 counts him (and, after `read`, as a reader).
for i in 1 2 3; do
	parley send --as alice "$room" "m$i" >/dev/null || fail "send $i"
done
wait_file_line "$T/bob.out" '"body":"m3"' 10
until_py 10 parley receipts --as alice "$room" 3 -- \
	'j["type"] == "receipt_summary" and j["room_id"] == "'"$room"'" and j["seq"] == 3 and j["members"] == 3 and j["delivered"] >= 1'
delivered=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])' <"$T/u.out")
read0=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["read"])' <"$T/u.out")
parley read --as bob "$room" 3 >/dev/null || fail "read"
until_py 10 parley receipts --as alice "$room" 3 -- "j['read'] == $read0 + 1"
# bob's listen shows his read (another device of his made it) but not the
# echo of its own Delivered.
wait_file_line "$T/bob.out" '"type":"receipt","room_id":"'"$room"'","user_id":"bob","kind":"read","seq":3' 5
if grep -q '"type":"receipt".*"user_id":"bob","kind":"delivered"' "$T/bob.out"; then
	fail "bob's listen printed its own Delivered echo: $(grep receipt "$T/bob.out")"
fi
echo "ok 2 receipts: delivered $delivered of 3, read $read0 -> $((read0 + 1))"

# 3. carol listens with --no-delivered: she prints m4 but is not counted.
bg carol parley listen --as carol --no-delivered --timeout 60
wait_file_line "$T/carol.err" listening 20
parley send --as alice "$room" m4 >/dev/null || fail "send 4"
wait_file_line "$T/carol.out" '"body":"m4"' 10
wait_file_line "$T/bob.out" '"body":"m4"' 10
# carol sees bob's Delivered of m4 (a small room: receipts go to everyone).
wait_file_line "$T/carol.out" '"type":"receipt".*"user_id":"bob","kind":"delivered","seq":4' 5
until_py 10 parley receipts --as alice "$room" 4 -- "j['delivered'] == $delivered"
sleep 1
parley receipts --as alice "$room" 4 >"$T/r4.out"
py "$T/r4.out" "j['delivered'] == $delivered"
echo "ok 3 --no-delivered confirms nothing"

# 4. Who is online: bob and carol listen (alice's own CLI session may count).
parley room online --as alice "$room" >"$T/online.out" || fail "room online: exit $?"
py "$T/online.out" 'j["type"] == "room_presence" and j["members"] == 3 and {"bob", "carol"} <= set(j["online_user_ids"]) and j["online"] == len(j["online_user_ids"])'
echo "ok 4 room online: $(cat "$T/online.out")"

# 5. Typing reaches the others; --stop ends it; a stranger is refused.
parley typing --as alice "$room" || fail "typing: exit $?"
wait_file_line "$T/bob.out" '"type":"typing","room_id":"'"$room"'","user_id":"alice","active":true' 5
wait_file_line "$T/carol.out" '"type":"typing".*"active":true' 5
parley typing --as alice "$room" --stop || fail "typing --stop: exit $?"
wait_file_line "$T/bob.out" '"type":"typing".*"active":false' 5
rc=0
parley typing --as zed "$room" 2>"$T/zed.err" || rc=$?
[ "$rc" = 1 ] && grep -q FORBIDDEN "$T/zed.err" || fail "stranger typing: exit $rc $(cat "$T/zed.err")"
echo "ok 5 typing"

# 6. Membership: add dave; bob may not remove carol, alice may; dave leaves.
parley room add --as alice "$room" dave >"$T/add.out" || fail "room add: exit $?"
py "$T/add.out" 'j["type"] == "room_event" and j["kind"] == "members_added" and j["user_ids"] == ["dave"] and j["seq"] == 4'
wait_file_line "$T/bob.out" '"type":"room_event".*"members_added"' 5
rc=0
parley room remove --as bob "$room" carol 2>"$T/rm.err" || rc=$?
[ "$rc" = 1 ] && grep -q FORBIDDEN "$T/rm.err" || fail "bob removing carol: exit $rc $(cat "$T/rm.err")"
parley room remove --as alice "$room" carol >"$T/rm.out" || fail "room remove: exit $?"
py "$T/rm.out" 'j["kind"] == "member_removed" and j["user_ids"] == ["carol"]'
wait_file_line "$T/carol.out" '"member_removed"' 5
parley room leave --as dave "$room" >"$T/leave.out" || fail "room leave: exit $?"
py "$T/leave.out" 'j["kind"] == "member_left" and j["user_ids"] == ["dave"]'
parley room online --as alice "$room" >"$T/online2.out"
py "$T/online2.out" 'j["members"] == 2 and "carol" not in j["online_user_ids"]'
echo "ok 6 room add/remove/leave"

# 7. Usage errors exit 2 without connecting.
for args in "room add --as alice $room" "room leave --as alice" \
	"receipts --as alice $room x" "typing --as alice" "presence --as alice"; do
	rc=0
	# shellcheck disable=SC2086
	parley $args >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "parley $args: exit $rc, want 2"
done
echo ok
