#!/usr/bin/env bash
# G6 under attack: ~100 hostile connections at once (tests/conformance/
# hostile.py: random bytes, truncated and deeply nested protobuf, 2^63
# length headers, fragmented messages over the limit, 1-byte fragments
# without FIN, oversized control frames, ping floods, slowloris handshakes,
# clients that never authenticate or never read, send floods), each closed
# with its documented code, while alice keeps chatting with bob on the same
# gateway: every acknowledged message reaches bob once. The gateway's RSS is
# sampled from /proc before, during and after, and must stay under the
# bound documented in docs/SECURITY.md.
. "$(dirname "$0")/../lib.sh"
lib_init hostile
export PARLEY_AUTH_TIMEOUT_MS=3000 PARLEY_OUTQ_MAX=$((256 * 1024)) \
	PARLEY_HANDSHAKE_TIMEOUT_S=4
start_presence
start_store
start_router 1
start_gateway 1
gw=$(url 1)
export PARLEY_URL=$gw
n=30

# zed's room holds 10 messages of 60 KB: the never-reading clients ask
# for them (as zed) and stop reading.
body=$(head -c 60000 /dev/zero | tr '\0' x)
for i in $(seq 10); do
	PARLEY_URL=$gw parley send --as alice --id "big$i" dm:alice:zed "$i $body" >/dev/null
done

PARLEY_URL=$gw parley listen --as bob --count $((n + 1)) --timeout 150 \
	>"$T/bob.out" 2>"$T/bob.err" &
listener=$!
wait_file_line "$T/bob.err" listening 20
PARLEY_URL=$gw parley send --as alice --id m0 dm:alice:bob "m0" >/dev/null
wait_online dm:alice:bob bob

# Under `make asan` the sanitizer's shadow memory and quarantine dwarf the
# gateway's own: the bound is checked on the normal build only.
bound=40960
[[ $PARLEY_BIN != */asan/* ]] || bound=0
rc=0
python3 "$(dirname "$0")/../conformance/hostile.py" --port "$GW_PORT_1" \
	--pid "$(cat "$T/gateway1.pid")" --auth-timeout 3 --slowloris-max 9 \
	--room dm:alice:zed --room-user zed --rss-bound-kb "$bound" \
	--rate-close 4007 >"$T/hostile.out" 2>&1 &
hostile=$!

# alice chats all along: each send must be acknowledged.
sleep 1
: >"$T/latency"
for i in $(seq "$n"); do
	t0=$(date +%s%N)
	PARLEY_URL=$gw parley send --as alice --id "m$i" dm:alice:bob "m$i" >/dev/null ||
		fail "alice's send m$i failed"
	echo $((($(date +%s%N) - t0) / 1000000)) >>"$T/latency"
	sleep 0.3
done
wait "$hostile" || rc=$?
cat "$T/hostile.out"
[ "$rc" = 0 ] || fail "hostile clients: $(grep -E '^FAIL' "$T/hostile.out" | tr '\n' ' ')"

wait "$listener" || fail "bob's listener: exit $?"
grep '"type":"message"' "$T/bob.out" >"$T/bob.msgs" || true
want=$(for i in $(seq 0 "$n"); do echo "m$i"; done | sort | tr '\n' ' ')
got=$(json_field "$T/bob.msgs" body | sort | tr '\n' ' ')
[ "$got" = "$want" ] || fail "bob got: $got"
echo "bob got all $((n + 1)) messages once; alice's send latency ms (max): $(sort -n "$T/latency" | tail -1)"

# Every connection is gone (bob's listener too, having its count).
conns=$(curl -fs "http://127.0.0.1:$GW_PORT_1/metrics" |
	awk '$1 == "parley_gateway_connections" { print $2 }')
[ "$conns" = 0 ] || fail "gateway still counts $conns connections"
kill -0 "$(cat "$T/gateway1.pid")" || fail "gateway died"
echo ok
