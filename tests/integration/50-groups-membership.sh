#!/usr/bin/env bash
# Groups: a three-person room with membership changes mid-conversation. The
# removed member gets nothing after its removal, cannot send, and reads
# history only up to it; only the creator removes; a new member sees the
# shared history; leaving works; RoomEvents reach everyone concerned.
. "$(dirname "$0")/../lib.sh"
lib_init groups
start_stack
export PARLEY_URL="$(url 1),$(url 2)"

parley room create --as alice --name team bob carol >"$T/room.json" || fail "create"
room=$(json_field "$T/room.json" room_id)
[[ $room == g:* ]] || fail "room id $room"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert sorted(r["members"])==["alice","bob","carol"], r' \
	"$T/room.json" || fail "members: $(cat "$T/room.json")"
# The same CreateRoom retried (same client id) names the same room.

for u in bob carol; do
	PARLEY_URL=$(url 2) parley listen --as $u --timeout 25 >"$T/$u.out" 2>"$T/$u.err" &
	echo $! >"$T/listen-$u.pid"
done
wait_file_line "$T/bob.err" listening 20
wait_file_line "$T/carol.err" listening 20
wait_online "$room" bob carol

parley send --as alice "$room" "one" >/dev/null || fail "send one"
parley room remove --as bob "$room" alice >"$T/bob-removes.out" 2>&1 &&
	fail "bob (not the creator) removed alice"
grep -qi "creator" "$T/bob-removes.out" || fail "bob's removal error: $(cat "$T/bob-removes.out")"
parley room remove --as alice "$room" carol >"$T/removed.json" || fail "remove carol"
parley send --as alice "$room" "two" >/dev/null || fail "send two"
parley send --as carol "$room" "let me in" >"$T/carol-send.out" 2>&1 && fail "carol sent after removal"
parley room add --as bob "$room" dave >/dev/null || fail "bob adds dave"
parley send --as dave "$room" "three" >/dev/null || fail "dave sends"
history_until dave "$room" 3 "$T/dave-history.out"
parley history --as carol "$room" >"$T/carol-history.out" || fail "carol history"
parley room leave --as bob "$room" >/dev/null || fail "bob leaves"
parley send --as bob "$room" "ghost" >/dev/null 2>&1 && fail "bob sent after leaving"
parley rooms --as carol >"$T/carol-rooms.out" || fail "carol rooms"

wait "$(cat "$T/listen-bob.pid")" "$(cat "$T/listen-carol.pid")" || true
python3 - "$T" "$room" <<'PY' || fail "membership semantics"
import json, sys
t, room = sys.argv[1], sys.argv[2]
load = lambda f: [json.loads(l) for l in open(f"{t}/{f}") if l.strip()]
carol = load("carol.out")
bob = load("bob.out")
cm = [e["body"] for e in carol if e["type"] == "message"]
assert cm == ["one"], f"carol's messages: {cm}"
kinds = [e.get("kind") for e in carol if e["type"] == "room_event"]
assert "member_removed" in kinds, f"carol's room events: {carol}"
bm = [e["body"] for e in bob if e["type"] == "message"]
assert bm == ["one", "two", "three"], f"bob's messages: {bm}"
assert [m["body"] for m in load("dave-history.out")] == ["one", "two", "three"], "dave sees shared history"
assert [m["body"] for m in load("carol-history.out")] == ["one"], "carol's history stops at her removal"
assert all(r["room_id"] != room for r in load("carol-rooms.out")), "carol still lists the room"
print("removed member: nothing after removal, no send, history up to removal; creator-only removal; shared history for new members; leave")
PY
echo ok
