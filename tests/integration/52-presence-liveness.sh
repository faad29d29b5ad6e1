#!/usr/bin/env bash
# Presence liveness: a client that stops answering WebSocket pings goes
# offline after the heartbeat timeout, and the sessions of a gateway killed
# with SIGKILL go offline within presence's lease (default 15 s).
. "$(dirname "$0")/../lib.sh"
lib_init liveness
start_presence
start_store
start_router 1
PARLEY_PING_S=1 PARLEY_PONG_TIMEOUT_S=3 start_gateway 1
start_gateway 2

# went_offline USER SECONDS: a line saying USER is offline comes after one
# saying it is online (the first lines are the initial states).
went_offline() {
	for _ in $(seq $(($2 * 10))); do
		awk -v u="\"user_id\":\"$1\"" '
			index($0, u) && /"online":true/ { on = 1 }
			on && index($0, u) && /"online":false/ { off = 1 }
			END { exit !off }' "$T/alice.out" && return 0
		sleep 0.1
	done
	fail "$1 never went offline after being online"
}

# alice, on gateway 2, watches bob and carol.
PARLEY_URL=$(url 2) parley presence --as alice bob carol --timeout 60 \
	>"$T/alice.out" 2>"$T/alice.err" &
watcher=$!
wait_file_line "$T/alice.out" '"user_id":"carol"' 20

# bob connects to gateway 1 and never reads again (so never answers a ping).
t0=$(date +%s)
wsclient probe --port "$GW_PORT_1" --token "$(parley token bob)" --stall 30 \
	--wait 1 >"$T/bob.json" 2>"$T/bob.err" &
wait_file_line "$T/alice.out" '"user_id":"bob","online":true' 15
went_offline bob 20
t1=$(date +%s)
echo "silent client offline after $((t1 - t0)) s (ping 1 s, timeout 3 s)"
[ $((t1 - t0)) -le 12 ] || fail "heartbeat timeout took $((t1 - t0)) s"

# carol listens on gateway 1; the gateway dies without a word.
PARLEY_URL=$(url 1) parley listen --as carol --timeout 60 >/dev/null 2>"$T/carol.err" &
wait_file_line "$T/alice.out" '"user_id":"carol","online":true' 15
# carol sends nothing but answers the gateway's pings: past two timeouts
# she is still there.
sleep 7
if awk -v u='"user_id":"carol"' 'index($0, u) && /"online":true/ { on = 1 }
	on && index($0, u) && /"online":false/ { off = 1 } END { exit !off }' \
	"$T/alice.out"; then
	fail "carol answered pings yet was dropped"
fi
echo "a client answering pings stays (7 s idle, ping 1 s, timeout 3 s)"
# The same with a bare client that sends nothing but pongs (payload echoed,
# as browsers do): it is pinged several times and never dropped.
wsclient probe --port "$GW_PORT_1" --token "$(parley token dave)" --pong \
	--wait 7 >"$T/dave.json" 2>"$T/dave.err"
python3 - "$T/dave.json" <<'PY' || fail "a bare client answering pings was dropped: $(cat "$T/dave.json")"
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["pings"] >= 3 and r["close_code"] is None and not r.get("eof")
print(f"bare client: {r['pings']} pings answered, still connected" if ok else "", end="")
sys.exit(0 if ok else 1)
PY
echo
t0=$(date +%s)
stop gateway1 KILL
went_offline carol 25
t1=$(date +%s)
echo "sessions of a SIGKILLed gateway offline after $((t1 - t0)) s (lease 15 s)"
[ $((t1 - t0)) -le 17 ] || fail "lease expiry took $((t1 - t0)) s"
kill "$watcher" 2>/dev/null || true
echo ok
