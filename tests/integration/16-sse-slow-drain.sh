#!/usr/bin/env bash
# The fallback transport keeps G6 and the drain: an SSE reader that stops
# reading costs bounded memory and its stream ends with a close event 4005
# (its session is gone: a resume gets a new one) while a WebSocket reader
# on the same gateway gets every message; on SIGTERM an SSE stream ends
# with a close event 1001, a session waiting for its stream to come back
# is dropped at once, and the gateway stops without waiting for the hard
# deadline.
. "$(dirname "$0")/../lib.sh"
lib_init ssedrain
export PARLEY_OUTQ_MAX=$((256 * 1024)) PARLEY_SSE_GRACE_MS=60000
start_stack

PARLEY_URL=$(url 1) parley listen --as dave --count 40 --timeout 90 \
	>"$T/dave.out" 2>"$T/dave.err" &
listener=$!
wait_file_line "$T/dave.err" listening 20

# carol on SSE reads her session event and Welcome, then stops reading.
PYTHONPATH=$TOOLS python3 - "$GW_PORT_1" "$(parley token carol)" "$T/sent" \
	>"$T/slow.json" 2>"$T/slow.err" <<'PY' &
import json, os, sys, time
from sseclient import Stream
s = Stream(int(sys.argv[1]), token=sys.argv[2], rcvbuf=4096)
s.expect("session")
s.frame(ftype="welcome")
print("stalled", file=sys.stderr, flush=True)
# Read nothing until every message was sent (at most 60 s).
for _ in range(600):
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.1)
frames, last, deadline = 0, None, time.time() + 30
while time.time() < deadline:
    ev = s.next(5)
    if ev is None:
        continue
    if ev["event"] == "end":
        break
    frames += ev["event"] == "frame"
    last = ev
cursor = s.cursor
again = Stream(int(sys.argv[1]), token=sys.argv[2], cursor=cursor)
print(json.dumps({"last": last, "frames": frames,
                  "resumed": again.expect("session")["resumed"]}))
PY
slow=$!
wait_file_line "$T/slow.err" stalled 20

body=$(head -c 60000 /dev/zero | tr '\0' x)
for i in $(seq 40); do
	PARLEY_URL=$(url 2) parley send --as bob dm:bob:carol "$i $body" >/dev/null &
	to_carol=$!
	PARLEY_URL=$(url 2) parley send --as bob dm:bob:dave "$i $body" >/dev/null
	wait "$to_carol"
done
touch "$T/sent"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$T/gateway1.pid")/status")

msgs() { grep -c '"type":"message"' "$T/dave.out" || true; }
wait "$listener" || fail "dave's listener: exit $? with $(msgs) messages"
[ "$(msgs)" = 40 ] || fail "dave got $(msgs) of 40"
wait "$slow" || fail "slow SSE reader: $(cat "$T/slow.err")"
python3 - "$T/slow.json" <<'PY' || fail "slow SSE reader: $(cat "$T/slow.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["last"]["event"] == "close" and r["last"]["code"] == 4005, r
assert r["resumed"] is False, r
print("slow SSE reader: close 4005 after", r["frames"], "frames; its session is gone")
PY
echo "gateway RSS after the slow reader: ${rss} kB"
[ "$rss" -lt 200000 ] || fail "gateway RSS grew to $rss kB"

# Drain: erin streams on gateway 1, frank's stream was cut (his session
# waits for a resume), gina listens over WebSocket. SIGTERM gateway 1.
PARLEY_URL=$(url 1) parley listen --as gina --timeout 60 \
	>"$T/gina.out" 2>"$T/gina.err" &
gina=$!
wait_file_line "$T/gina.err" listening 20
PYTHONPATH=$TOOLS python3 - "$GW_PORT_1" "$(parley token erin)" \
	"$(parley token frank)" >"$T/drain.json" 2>"$T/drain.err" <<'PY' &
import json, sys, time
from sseclient import Stream
port = int(sys.argv[1])
frank = Stream(port, token=sys.argv[3])
frank.expect("session")
frank.frame(ftype="welcome")
frank.cut()
erin = Stream(port, token=sys.argv[2])
erin.expect("session")
erin.frame(ftype="welcome")
print("ready", file=sys.stderr, flush=True)
last, deadline = None, time.time() + 30
while time.time() < deadline:
    ev = erin.next(5)
    if ev is None:
        continue
    if ev["event"] == "end":
        break
    last = ev
print(json.dumps({"last": last}))
PY
drainer=$!
wait_file_line "$T/drain.err" ready 20
sleep 0.5
start_ms=$(date +%s%3N)
stop gateway1 TERM
took=$(($(date +%s%3N) - start_ms))
wait "$drainer" || fail "SSE client during drain: $(cat "$T/drain.err")"
python3 - "$T/drain.json" <<'PY' || fail "drain: $(cat "$T/drain.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["last"] == {"event": "close", "code": 1001,
                     "reason": "going away: reconnect to another gateway"}, r
print("SSE stream ended with close 1001 on drain")
PY
wait "$gina" || true
grep -q 'drained; 0 connections left' "$T/gateway1.log" ||
	fail "gateway 1 did not drain every session: $(grep drained "$T/gateway1.log")"
echo "gateway 1 drained and stopped in ${took} ms"
[ "$took" -lt 4000 ] || fail "drain took ${took} ms: a session held it up"
echo ok
