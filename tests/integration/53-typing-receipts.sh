#!/usr/bin/env bash
# Typing and receipts. Typing reaches the other member live and stops by
# itself ~6 s after the last refresh (or at once with --stop); it is never
# stored. Receipts: sent -> delivered (bob's client confirms by itself) ->
# read, as Receipts to the sender in a 1:1 room; in a group, the aggregate
# "delivered to N of M, read by K" on request.
. "$(dirname "$0")/../lib.sh"
lib_init typing
start_stack
export PARLEY_URL=$(url 1)
dm=dm:alice:bob

PARLEY_URL=$(url 2) parley listen --as alice --timeout 30 >"$T/alice.out" 2>"$T/alice.err" &
alice=$!
PARLEY_URL=$(url 1) parley listen --as bob --timeout 30 >"$T/bob.out" 2>"$T/bob.err" &
bob=$!
wait_file_line "$T/alice.err" listening 20
wait_file_line "$T/bob.err" listening 20

# The room exists once a message was sent; typing needs a member.
parley send --as alice $dm "hello bob" >"$T/ack.json" || fail "send"
wait_file_line "$T/alice.out" '"receipt".*"user_id":"bob".*"delivered"' 10
parley read --as bob $dm 1 >/dev/null || fail "read"
wait_file_line "$T/alice.out" '"receipt".*"user_id":"bob".*"read"' 10
echo "1:1: alice saw delivered then read"

t0=$(date +%s.%N)
parley typing --as bob $dm || fail "typing"
wait_file_line "$T/alice.out" '"typing".*"active":true' 10
wait_file_line "$T/alice.out" '"typing".*"active":false' 15
t1=$(date +%s.%N)
python3 -c "import sys; d=$t1-$t0; print(f'typing expired after {d:.1f} s'); sys.exit(0 if 5 <= d <= 10 else 1)" ||
	fail "typing expiry out of bounds"
grep -q '"typing"' "$T/bob.out" && fail "the typer saw its own typing"

# A group: carol reads, dave only receives, erin is offline.
parley room create --as alice --name g carol dave erin >"$T/room.json" || fail "create"
room=$(json_field "$T/room.json" room_id)
PARLEY_URL=$(url 2) parley listen --as dave --timeout 20 >"$T/dave.out" 2>"$T/dave.err" &
PARLEY_URL=$(url 2) parley listen --as carol --timeout 20 >"$T/carol.out" 2>"$T/carol.err" &
wait_file_line "$T/dave.err" listening 20
wait_file_line "$T/carol.err" listening 20
wait_online "$room" dave carol
parley send --as alice "$room" "team news" >/dev/null || fail "send group"
wait_file_line "$T/dave.out" '"team news"' 10
wait_file_line "$T/carol.out" '"team news"' 10
parley read --as carol "$room" 1 >/dev/null || fail "carol reads"
for _ in $(seq 50); do
	parley receipts --as alice "$room" 1 >"$T/summary.json" || fail "receipts"
	[ "$(json_field "$T/summary.json" read)" = 1 ] &&
		[ "$(json_field "$T/summary.json" delivered)" = 3 ] && break
	sleep 0.2
done
python3 - "$T/summary.json" <<'PY' || fail "group aggregate: $(cat "$T/summary.json")"
import json, sys
s = json.load(open(sys.argv[1]))
# Members count the sender; alice's own listener confirmed delivery too,
# erin (offline) did not.
assert (s["members"], s["delivered"], s["read"]) == (4, 3, 1), s
print(f"group: delivered to {s['delivered']} of {s['members']}, read by {s['read']}")
PY
parley receipts --as bob "$room" 1 >/dev/null 2>&1 && fail "a non-member got receipts"
kill "$alice" "$bob" 2>/dev/null || true
echo ok
