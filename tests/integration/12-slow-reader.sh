#!/usr/bin/env bash
# G6: a client that stops reading costs bounded memory and is closed with
# 4005 ("too slow"); a well-behaved client on the same gateway keeps getting
# every message meanwhile.
. "$(dirname "$0")/../lib.sh"
lib_init slowreader
export PARLEY_OUTQ_MAX=$((256 * 1024))
start_stack

# carol stops reading after her Welcome; dave reads normally.
wsclient probe --port "$GW_PORT_1" --token "$(parley token carol)" \
	--rcvbuf 4096 --stall 25 --wait 10 >"$T/slow.json" 2>"$T/slow.err" &
slow=$!
PARLEY_URL=$(url 1) parley listen --as dave --count 40 --timeout 90 \
	>"$T/dave.out" 2>"$T/dave.err" &
listener=$!
wait_file_line "$T/slow.err" stalled 20
wait_file_line "$T/dave.err" listening 20

# 40 messages of 60 KiB each to both of them: 2.4 MB for carol, who reads none.
body=$(head -c 60000 /dev/zero | tr '\0' x)
for i in $(seq 40); do
	PARLEY_URL=$(url 2) parley send --as bob dm:bob:carol "$i $body" >/dev/null &
	to_carol=$!
	PARLEY_URL=$(url 2) parley send --as bob dm:bob:dave "$i $body" >/dev/null
	wait "$to_carol"
done
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$T/gateway1.pid")/status")

# Messages only: listen also prints presence events (bob comes and goes).
msgs() { grep -c '"type":"message"' "$T/dave.out" || true; }
wait "$listener" || fail "dave's listener: exit $? with $(msgs) messages"
[ "$(msgs)" = 40 ] || fail "dave got $(msgs) of 40"
wait "$slow"
python3 - "$T/slow.json" <<'PY' || fail "slow reader: $(cat "$T/slow.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["close_code"] == 4005, r
print("slow reader closed with 4005; frames read before the close:", len(r["frames"]))
PY
echo "gateway RSS after the slow reader: ${rss} kB"
[ "$rss" -lt 200000 ] || fail "gateway RSS grew to $rss kB"
echo ok
