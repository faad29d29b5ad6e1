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

# A reader that reads gets a history far over PARLEY_OUTQ_MAX (40 x 60 KB)
# in pages of at most 256 KiB of bodies, and is never closed as too slow.
PARLEY_URL=$(url 1) parley history --as dave dm:bob:dave >"$T/hist.out" ||
	fail "history of 2.4 MB: exit $?"
[ "$(grep -c '"type":"message"' "$T/hist.out")" = 40 ] || fail "history: $(wc -l <"$T/hist.out") lines"
PARLEY_URL=$(url 1) parley sync --as dave --all >"$T/sync.out" || fail "sync --all: exit $?"
[ "$(grep -c '"room_id":"dm:bob:dave"' "$T/sync.out")" = 40 ] || fail "sync: $(wc -l <"$T/sync.out") lines"
echo "history and sync of 2.4 MB came in pages"

# 12 Syncs at once: 4 go to the store, the rest wait in the gateway; each
# is answered once, with its own page.
python3 - "$TOOLS" "$GW_PORT_1" "$(parley token dave)" <<'PY' || fail "held queries"
import sys, time
sys.path.insert(0, sys.argv[1])
from wsclient import Conn, pb_fields, field_bytes, field_varint
c = Conn(int(sys.argv[2]), "/?token=" + sys.argv[3])
deadline = time.time() + 20
assert 10 in pb_fields(c.recv_frame(deadline)[1]), "no Welcome"
for k in range(12):
    sync = (field_bytes(1, "dm:bob:dave") + field_varint(2, k) +
            field_varint(3, 1))
    c.send_frame(2, field_varint(1, 100 + k) + field_bytes(12, sync))
got = {}
while len(got) < 12:
    f = pb_fields(c.recv_frame(deadline)[1])
    if 13 not in f:
        continue
    rid = f[1][0]
    assert rid not in got, f"request {rid} answered twice"
    msgs = [pb_fields(m) for m in pb_fields(f[13][0]).get(2, [])]
    got[rid] = [m[2][0] for m in msgs]
assert got == {100 + k: [k + 1] for k in range(12)}, got
print("12 Syncs at once: each answered once with its page")
PY
echo ok
