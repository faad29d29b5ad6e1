#!/usr/bin/env bash
# Authorization: no message, history page, receipt, typing, presence or room
# event of a room reaches a non-member. mallory (in no room) tries every
# room command on a group room and on a DM of others; carol is removed from
# the group mid-session while activity goes on (messages, typing, a read
# receipt, a new member coming online). A checker compares what each client
# received with its membership and fails on any leak. The probes must also
# see what they are entitled to, so the test cannot pass by seeing nothing.
. "$(dirname "$0")/../lib.sh"
lib_init authz
start_stack
PROBE="$PARLEY_BIN/../test/tools/authz_probe"
[ -x "$PROBE" ] || fail "no $PROBE (make all builds it)"
export PARLEY_URL="$(url 1),$(url 2)"

parley room create --as alice --name secret bob carol >"$T/room.json" || fail "create"
G=$(json_field "$T/room.json" room_id)
D=dm:alice:bob
parley send --as alice "$D" "dm before" >/dev/null || fail "dm send"

"$PROBE" --url "$(url 2)" --token "$(parley token carol)" --seconds 14 \
	--sync "$G" --sync "$D" >"$T/carol.out" 2>"$T/carol.err" &
carol=$!
"$PROBE" --url "$(url 1)" --token "$(parley token mallory)" --seconds 14 \
	--attack "$G" --attack "$D" --sync "$G" --sync "$D" --victim bob \
	>"$T/mallory.out" 2>"$T/mallory.err" &
mallory=$!
wait_file_line "$T/carol.err" listening 20
wait_file_line "$T/mallory.err" listening 20
wait_online "$G" carol

# Before the removal: carol is a member and sees three messages.
for i in 1 2 3; do
	parley send --as alice "$G" "before $i" >/dev/null || fail "send before $i"
done
parley room remove --as alice "$G" carol >"$T/removed.json" || fail "remove carol"
cut=$(json_field "$T/removed.json" seq)
[ "$cut" = 3 ] || fail "removal seq $cut, want 3"
sleep 1
# After it: everything a member would get, none of it for carol.
for i in 4 5 6; do
	parley send --as alice "$G" "after $i" >/dev/null || fail "send after $i"
done
parley send --as alice "$D" "dm after" >/dev/null || fail "dm send"
parley typing --as bob "$G" || fail "typing"
parley read --as bob "$G" 6 >/dev/null || fail "read"
parley room add --as alice "$G" dave >/dev/null || fail "add dave"
parley listen --as dave --timeout 3 >/dev/null 2>&1 || true
parley listen --as bob --timeout 3 >/dev/null 2>&1 || true

wait "$carol" || fail "carol's probe: exit $?"
wait "$mallory" || fail "mallory's probe: exit $?"

# The attacks changed nothing: no message from mallory, mallory not added,
# bob not removed by her.
history_until alice "$G" 6 "$T/hist.out"
grep -q "let me in" "$T/hist.out" && fail "mallory's message is in the room"
[ "$(json_field "$T/hist.out" seq | tr '\n' ' ')" = "1 2 3 4 5 6 " ] ||
	fail "room history: $(cat "$T/hist.out")"
parley room online --as alice "$G" >"$T/online.json" || fail "room online"
[ "$(json_field "$T/online.json" members)" = 3 ] ||
	fail "members after the attacks: $(cat "$T/online.json") (want alice, bob, dave)"

python3 - "$T/carol.out" "$T/mallory.out" "$G" "$D" "$cut" <<'PY'
import json, sys
carol = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mallory = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
G, D, cut = sys.argv[3], sys.argv[4], int(sys.argv[5])
leaks = []

def leak(who, why, f):
    leaks.append(f"{who}: {why}: {json.dumps(f)}")

# mallory is in no room: only errors, her own welcome and room lists, and
# only without G or D; no presence (she watches nobody, shares no room).
for f in mallory:
    t = f["type"]
    rooms = set(f.get("rooms", []))
    if t in ("welcome", "room_list"):
        if rooms & {G, D}:
            leak("mallory", "room listed", f)
    elif t == "error":
        pass
    elif t == "sync_rooms_result":
        if f.get("n_results", 0):
            leak("mallory", "sync_rooms result", f)
    elif t == "ok":
        pass
    else:
        leak("mallory", "frame about a foreign room", f)
errs = [f for f in mallory if f["type"] == "error"]
# 10 refusals answer directly (Send, Sync, History, AddMembers,
# RemoveMember, LeaveRoom, Typing, GetReceipts, GetRoomPresence, and the
# final Syncs/Histories); Delivered and Read may be ignored silently.
if len(errs) < 10:
    leak("mallory", f"only {len(errs)} refusals", {"errors": errs})

# carol: G's messages up to the cut, never after; the removal event; no
# typing, receipts or presence of G's activity after the cut; nothing of D.
seen = set()
for f in carol:
    t, room = f["type"], f.get("room_id")
    if t != "error" and (room == D or D in f.get("rooms", [])):
        leak("carol", "DM of others", f)
    if t == "message" and room == G:
        seen.add(f["seq"])
        if f["seq"] > cut:
            leak("carol", "message after removal", f)
    if t == "sync_result" and room == G and f["max_seq"] > cut:
        leak("carol", "history after removal", f)
    if t == "room_event" and room == G and f["kind"] == 2:
        leak("carol", "membership change after removal", f)
    if t in ("typing", "receipt", "receipt_summary", "room_presence") and room == G:
        leak("carol", f"{t} after removal", f)
    if t == "presence" and f["user_id"] in ("bob", "dave", "mallory"):
        leak("carol", "presence of a room member after removal", f)
    if t == "typing" and f.get("user_id") == "mallory":
        leak("carol", "typing by a non-member", f)
removed = [f for f in carol if f["type"] == "room_event" and f.get("kind") == 3]
if seen != {1, 2, 3}:
    leak("carol", f"saw messages {sorted(seen)}, want [1, 2, 3] (probe blind?)", {})
if not removed:
    leak("carol", "never told of her removal", {})
syncs = [f for f in carol if f["type"] == "sync_result" and f["room_id"] == G]
if not syncs or max(s["max_seq"] for s in syncs) != cut:
    leak("carol", f"history up to the removal not readable: {syncs}", {})
if leaks:
    print("\n".join(leaks))
    sys.exit(1)
print(f"no leak: mallory got {len(errs)} refusals and nothing else; "
      f"carol saw 1..{cut} and her removal, nothing after")
PY
echo ok
