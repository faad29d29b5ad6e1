#!/usr/bin/env bash
# Router failover: two routers share the partitions; alice sends 300 messages
# one after another while router 1 is killed with SIGKILL a third of the way
# in. Router 2 takes its partitions over and continues with the same seqs:
# acks are exactly 1..300, bob sees each message once, history is dense.
. "$(dirname "$0")/../lib.sh"
lib_init failover
start_presence
start_store
start_router 1
start_router 2
start_gateway 1
start_gateway 2
both="$(url 1),$(url 2)"
room=dm:alice:bob
n=300

PARLEY_URL=$both parley listen --as bob --count $n --timeout 150 \
	>"$T/bob.out" 2>"$T/bob.err" &
listener=$!
wait_file_line "$T/bob.err" listening 20

for i in $(seq $n); do
	if [ "$i" = 100 ]; then
		stop router1 KILL
		echo "killed router 1 after 99 messages"
	fi
	PARLEY_URL=$both parley send --as alice --id "f-$i" --timeout 60 $room "m $i" \
		>>"$T/acks.out" 2>>"$T/send.err" || fail "send $i not acknowledged"
done
wait "$listener" || fail "bob's listener ended with $? ($(wc -l <"$T/bob.out") lines)"

for _ in $(seq 100); do
	parley history --as bob --url "$(url 2)" $room >"$T/history.out" 2>/dev/null || true
	[ "$(wc -l <"$T/history.out")" -ge $n ] && break
	sleep 0.2
done
python3 - "$T/acks.out" "$T/bob.out" "$T/history.out" $n <<'PY' || fail "lost, doubled or out of order"
import json, sys
load = lambda f: [json.loads(l) for l in open(f) if l.strip()]
acks, got, hist, n = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3]), int(sys.argv[4])
got = [m for m in got if m["type"] == "message"]  # listen prints presence too
assert [a["seq"] for a in acks] == list(range(1, n + 1)), [a["seq"] for a in acks]
assert [m["seq"] for m in got] == list(range(1, n + 1)), "bob's seqs"
assert [m["body"] for m in got] == [f"m {i}" for i in range(1, n + 1)], "bob's bodies"
assert [(m["seq"], m["body"]) for m in hist] == [(i, f"m {i}") for i in range(1, n + 1)], "history"
dups = sum(1 for a in acks if a["duplicate"])
print(f"{n} acked in order across the failover ({dups} acked as retries), bob saw each once, history dense")
PY
grep -q '"router.assign"' "$T/router2.log" || fail "router 2 never took partitions"
echo ok
