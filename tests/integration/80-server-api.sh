#!/usr/bin/env bash
# The server API (docs/SERVER_API.md) against the real stack through
# parley-api, libparley-client and `parley admin`: every call; a wrong key
# is refused; a retried Publish with one key makes one message; system
# messages reach a listening WebSocket client; 32 callers share one
# socket; the C example posts; calls during a router kill -9 succeed or
# fail retryably, and retried with their keys leave each message once.
. "$(dirname "$0")/../lib.sh"
lib_init server-api
export PARLEY_PUSH_GRACE_MS=200 PARLEY_PUSH_COALESCE_MS=0
pusher_init
start_push_provider
start_stack
start_pusher
start_api
TOOLS_BIN=$PARLEY_BIN/../tools
export PARLEY_URL
PARLEY_URL=$(url 1)

# field FILE EXPR: EXPR over j, the last JSON line of FILE (printed).
field() {
	python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(eval(sys.argv[2]))' "$1" "$2"
}

# check FILE EXPR: EXPR over j must hold.
check() {
	[ "$(field "$1" "bool($2)")" = True ] || fail "$1: $(tail -n 1 "$1") is not $2"
}

admin() { # admin NAME ARGS...: parley admin ARGS > $T/NAME.out, must succeed
	local name=$1
	shift
	parley admin "$@" >"$T/$name.out" 2>"$T/$name.err" ||
		fail "admin $*: exit $? $(cat "$T/$name.out" "$T/$name.err")"
}

# admin_until NAME EXPR ARGS...: parley admin ARGS until EXPR holds over
# its line (reads come from the store, which folds the log a moment after
# the owner acknowledged).
admin_until() {
	local name=$1 expr=$2
	shift 2
	for _ in $(seq 50); do
		parley admin "$@" >"$T/$name.out" 2>"$T/$name.err" &&
			[ "$(field "$T/$name.out" "bool($expr)" 2>/dev/null)" = True ] && return 0
		sleep 0.2
	done
	fail "admin $*: never $expr: $(cat "$T/$name.out")"
}

# 1. A wrong key is refused (and nothing else is told).
if PARLEY_API_KEY=not-the-right-key-at-all parley admin stats >"$T/bad.out"; then
	fail "a wrong API key was accepted"
fi
check "$T/bad.out" 'j["code"] == "CODE_UNAUTHENTICATED" and not j["retryable"]'
echo "ok 1 wrong key refused"

# 2. CreateRoom as the system; the same key names the same room.
admin create room create --key room-1 --name ops alice bob
admin create2 room create --key room-1 --name ops alice bob
room=$(field "$T/create.out" 'j["room_id"]')
[ "$(field "$T/create2.out" 'j["room_id"]')" = "$room" ] || fail "retried CreateRoom made another room"
check "$T/create.out" 'sorted(j["member_ids"]) == ["alice", "bob", "system"]'
echo "ok 2 room $room"

# 3. bob listens; a system Publish reaches him once; its retry is a
# duplicate with the same seq; alice publishes through the API too.
parley listen --as bob --url "$(url 2)" --timeout 60 >"$T/bob.out" 2>"$T/bob.err" &
echo "$!" >"$T/bob.pid"
wait_file_line "$T/bob.err" listening 20
wait_online "$room" bob
admin pub1 publish --room "$room" --key p-1 "deploy finished"
admin pub1b publish --room "$room" --key p-1 "deploy finished"
admin pub2 publish --room "$room" --as alice --key p-2 "thanks"
check "$T/pub1.out" 'j["seq"] == 1 and not j["duplicate"]'
check "$T/pub1b.out" 'j["seq"] == 1 and j["duplicate"]'
check "$T/pub2.out" 'j["seq"] == 2'
for _ in $(seq 100); do
	[ "$(grep -c '"type":"message"' "$T/bob.out")" -ge 2 ] && break
	sleep 0.1
done
python3 - "$T/bob.out" <<'PY' || fail "bob did not get each message once: $(cat "$T/bob.out")"
import json, sys
msgs = [j for j in map(json.loads, open(sys.argv[1])) if j.get("type") == "message"]
assert [(m["seq"], m["sender_id"]) for m in msgs] == [(1, "system"), (2, "alice")], msgs
PY
echo "ok 3 publish acked when durable, retried once, delivered live"

# 4. History, GetRoom, ListUserRooms with unread, Presence.
admin_until hist '[(m["seq"], m["sender_id"], m["client_msg_id"]) for m in j["messages"]] == [(1, "system", "p-1"), (2, "alice", "p-2")]' \
	history "$room"
admin_until get 'j["creator"] == "system" and j["last_seq"] == 2 and [m["user_id"] for m in j["members"]] == ["alice", "bob", "system"]' \
	room get "$room"
admin_until rooms '[(r["room_id"], r["unread"]) for r in j["rooms"]] == [("'"$room"'", 1)]' \
	rooms alice
admin pres presence bob alice
check "$T/pres.out" '[(u["user_id"], u["online"]) for u in j["users"]] == [("bob", True), ("alice", False)]'
if parley admin room get "g:000000000000000000000000" >"$T/nf.out"; then
	fail "GetRoom of an unknown room succeeded"
fi
check "$T/nf.out" 'j["code"] == "CODE_NOT_FOUND"'
echo "ok 4 history, room, rooms with unread, presence"

# 5. Membership: add carol, remove bob as alice (a server call need not be
# the creator); carol may now post as a member through the gateway.
admin add room add --room "$room" --key add-1 carol
admin rm room remove --room "$room" --as alice --key rm-1 bob
admin_until get2 '[m["user_id"] for m in j["members"]] == ["alice", "carol", "system"]' \
	room get "$room"
parley send --as carol "$room" "hi all" >"$T/carol.out" || fail "carol cannot send"
echo "ok 5 add and remove members"

# 6. RegisterDevice: dave's webhook gets a push for a system message.
admin dev device add dave webhook dave-hook
check "$T/dev.out" 'j["type"] == "ok"'
admin add2 room add --room "$room" --key add-2 dave
admin pub3 publish --room "$room" --key p-3 "dave, look"
for _ in $(seq 100); do
	[ "$(provider_pushes dave-hook | wc -l)" -ge 1 ] && break
	sleep 0.1
done
[ "$(provider_pushes dave-hook | wc -l)" -ge 1 ] || fail "no push for the device registered through the API"
echo "ok 6 device registered, pushed"

# 7. Stats; the compiled example posts.
admin stats stats
check "$T/stats.out" 'j["sessions"] >= 1 and j["routers"] == 1 and j["calls"] > 10'
"$PARLEY_BIN/parley-post-example" "$room" example-1 "from ten lines of C" >"$T/ex.out" ||
	fail "example: $(cat "$T/ex.out")"
grep -q "posted: seq" "$T/ex.out" || fail "example said $(cat "$T/ex.out")"
echo "ok 7 stats, example"

# 8. 32 concurrent callers on one socket, 5 calls each: all acknowledged,
# every seq distinct, and the room holds exactly them.
admin create3 room create --key room-load --name load alice
load=$(field "$T/create3.out" 'j["room_id"]')
"$TOOLS_BIN/api_load" "$load" 32 5 c 20000 >"$T/load.out"
python3 - "$T/load.out" <<'PY' || fail "concurrent calls: $(grep ERR "$T/load.out" | head -3)"
import sys
rows = [l.split() for l in open(sys.argv[1])]
assert len(rows) == 160 and all(r[1] != "ERR" for r in rows), rows[:3]
assert sorted(int(r[1]) for r in rows) == list(range(1, 161))
PY
echo "ok 8 32 callers on one socket"

# 9. Router kill -9 while 8 callers publish: each call is acknowledged or
# fails retryably; the same keys again (after the restart) all succeed,
# and the room holds every key exactly once with dense seqs.
admin create4 room create --key room-fault --name fault alice
fault=$(field "$T/create4.out" 'j["room_id"]')
"$TOOLS_BIN/api_load" "$fault" 8 100 f 4000 >"$T/f1.out" &
loadpid=$!
for _ in $(seq 100); do # mid-stream: once 40 calls were answered
	[ "$(wc -l <"$T/f1.out")" -ge 40 ] && break
	sleep 0.1
done
kill -0 "$loadpid" 2>/dev/null || echo "note: the load ended before the kill"
stop router1 KILL
sleep 2
start_router 1
wait "$loadpid" || fail "api_load failed"
"$TOOLS_BIN/api_load" "$fault" 8 100 f 30000 >"$T/f2.out"
for _ in $(seq 100); do
	parley admin history "$fault" --limit 1000 >"$T/fh.out" 2>/dev/null &&
		[ "$(field "$T/fh.out" 'len(j["messages"])')" -ge 800 ] && break
	sleep 0.2
done
python3 - "$T/f1.out" "$T/f2.out" "$T/fh.out" <<'PY' || fail "router restart: see $T/f*.out"
import json, sys
first = dict((l.split()[0], l.split()[1:]) for l in open(sys.argv[1]))
second = dict((l.split()[0], l.split()[1:]) for l in open(sys.argv[2]))
hist = json.loads(open(sys.argv[3]).read().splitlines()[-1])["messages"]
assert len(first) == 800 and len(second) == 800
assert all(v[0] != "ERR" for v in second.values()), "retries failed"
# A failure is only ever retryable (UNAVAILABLE/timeout), never a refusal.
for k, v in first.items():
    assert v[0] != "ERR" or int(v[1]) in (-110, 7, 8), (k, v)
    if v[0] != "ERR":
        assert v[0] == second[k][0], ("acked seq changed", k, v, second[k])
ids = [m["client_msg_id"] for m in hist]
assert sorted(ids) == sorted(first), "history is not every key once"
assert [m["seq"] for m in hist] == list(range(1, 801)), "seqs not dense"
errs = sum(1 for v in first.values() if v[0] == "ERR")
print("acked during the fault: %d, failed retryably: %d" % (800 - errs, errs))
PY
echo "ok 9 router restart: never half-done"

# 10. DeleteRoom: members removed (a listener is told), nothing more can be
# posted, history kept; a retry with the key is fine.
parley listen --as alice --timeout 60 >"$T/alice.out" 2>"$T/alice.err" &
echo "$!" >"$T/alice.pid"
wait_file_line "$T/alice.err" listening 20
admin del room delete --room "$room" --key del-1
admin del2 room delete --room "$room" --key del-1
admin_until get3 'j["deleted"] and j["members"] == []' room get "$room"
if parley admin publish --room "$room" --key p-after "too late" >"$T/late.out"; then
	fail "Publish into a deleted room succeeded"
fi
check "$T/late.out" 'j["code"] == "CODE_NOT_FOUND" and not j["retryable"]'
admin_until rooms2 '"'"$room"'" not in [r["room_id"] for r in j["rooms"]]' \
	rooms alice
admin_until hist2 'len(j["messages"]) >= 4' history "$room"
parley history --as alice "$room" >"$T/ahist.out" || fail "alice lost the history"
for _ in $(seq 100); do
	grep -q ROOM_EVENT_KIND_DELETED "$T/alice.out" 2>/dev/null && break
	grep -q '"kind":"deleted"' "$T/alice.out" 2>/dev/null && break
	sleep 0.1
done
grep -qi 'deleted' "$T/alice.out" || fail "alice was not told: $(cat "$T/alice.out")"
# Sync shows the DELETED event (kind 5) to a member it removed.
sync_hex=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import wsclient as w
print(w.client_frame(5, 12, w.field_bytes(1, sys.argv[2]) + w.field_varint(2, 0)).hex())' "$TOOLS" "$room")
for _ in $(seq 30); do
	wsclient probe --port "$GW_PORT_1" --token "$(parley token alice)" \
		--send-raw "$sync_hex" --wait 2 >"$T/async.json"
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if any(5 in f.get("event_kinds", []) for f in j["frames"]) else 1)' "$T/async.json" && break
	sleep 0.2
done
grep -q '"event_kinds": \[[0-9, ]*5\]' "$T/async.json" || fail "no DELETED event in alice's Sync: $(cat "$T/async.json")"
echo "ok 10 room deleted"

# 11. DisconnectUser closes erin's session with 4010; RevokeTokens writes
# frank's epoch (acknowledged by Kafka) and closes his session too (4010
# here, or 4006 when the gateway's revocation reader is first).
probe() { # probe USER: a raw WebSocket session of USER in $T/USER.json
	wsclient probe --port "$GW_PORT_1" --token "$(parley token "$1")" \
		--wait 20 >"$T/$1.json" &
	echo "$!" >"$T/probe-$1.pid"
	for _ in $(seq 100); do
		parley admin presence "$1" >"$T/p-$1.out" 2>/dev/null &&
			[ "$(field "$T/p-$1.out" 'j["users"][0]["online"]')" = True ] && return 0
		sleep 0.1
	done
	fail "$1 never came online"
}
probe erin
admin disc disconnect erin
wait "$(cat "$T/probe-erin.pid")" || true
check "$T/erin.json" 'j["close_code"] == 4010'
probe frank
admin rev revoke frank
check "$T/rev.out" 'j["type"] == "ok"'
wait "$(cat "$T/probe-frank.pid")" || true
check "$T/frank.json" 'j["close_code"] in (4006, 4010)'
# The gateways read the epoch: a token of frank's from before it is
# refused with 4006 (terminal), on a new connection too.
old_tok=$(parley token frank --offset -5)
for _ in $(seq 50); do
	wsclient probe --port "$GW_PORT_1" --token "$old_tok" --wait 3 \
		>"$T/frank-old.json" 2>/dev/null || true
	python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])).get("close_code") != 4006)' \
		"$T/frank-old.json" && break
	sleep 0.2
done
check "$T/frank-old.json" 'j["close_code"] == 4006'
echo "ok 11 disconnect, revoke"
