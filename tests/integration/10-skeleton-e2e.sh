#!/usr/bin/env bash
# Walking skeleton: alice on gateway 1 sends 200 messages to bob listening on
# gateway 2. Every send is acknowledged with seq 1..200 in order, bob gets all
# 200 live in order exactly once, and after every parley process restarts,
# history returns the same 200.
. "$(dirname "$0")/../lib.sh"
lib_init skeleton
start_stack

room=dm:alice:bob
n=200
PARLEY_URL=$(url 2) parley listen --as bob --count $n --timeout 90 \
	>"$T/bob.out" 2>"$T/bob.err" &
listener=$!
wait_file_line "$T/bob.err" listening 20

for i in $(seq $n); do
	PARLEY_URL=$(url 1) parley send --as alice --id "m-$i" $room "hello $i" \
		>>"$T/acks.out" || fail "send $i failed"
done

wait "$listener" || fail "bob's listener ended with $? ($(wc -l <"$T/bob.out") events)"

python3 - "$T/acks.out" "$T/bob.out" $n <<'PY' || fail "acks or deliveries wrong"
import json, sys
acks = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
n = int(sys.argv[3])
assert [a["seq"] for a in acks] == list(range(1, n + 1)), "ack seqs not 1..n"
assert [a["client_msg_id"] for a in acks] == [f"m-{i}" for i in range(1, n + 1)]
msgs = [g for g in got if g["type"] == "message"]
assert [m["seq"] for m in msgs] == list(range(1, n + 1)), \
    f"bob saw seqs {[m['seq'] for m in msgs][:20]}..."
assert [m["body"] for m in msgs] == [f"hello {i}" for i in range(1, n + 1)]
assert all(m["sender_id"] == "alice" and m["room_id"] == "dm:alice:bob" for m in msgs)
print(f"acked {len(acks)}, delivered {len(msgs)} in order, once each")
PY

# Restart every parley process; the data must all be there.
stop_all
start_stack
for _ in $(seq 100); do
	PARLEY_URL=$(url 2) parley history --as bob $room >"$T/history.out" 2>>"$T/history.err" || true
	[ "$(wc -l <"$T/history.out")" -ge $n ] && break
	sleep 0.2
done
python3 - "$T/history.out" $n <<'PY' || fail "history after restart wrong"
import json, sys
h = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
assert [m["seq"] for m in h] == list(range(1, n + 1)), f"history seqs: {len(h)}"
assert [m["body"] for m in h] == [f"hello {i}" for i in range(1, n + 1)]
print(f"history after restart: {len(h)} messages, seq 1..{n}")
PY

# A retry with a used id is acknowledged with the original seq, no new message.
PARLEY_URL=$(url 2) parley send --as alice --id m-7 $room "again" >"$T/dup.out"
[ "$(json_field "$T/dup.out" seq)" = 7 ] || fail "retry of m-7 got $(cat "$T/dup.out")"
echo "ok"
