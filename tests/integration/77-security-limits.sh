#!/usr/bin/env bash
# Limits with small settings: the Origin allowlist (4008; the gateway's own
# origin and clients without Origin pass), connections per IP (4009),
# the send rate (RATE_LIMITED errors, then 4007), rooms per user and members
# per room (FORBIDDEN); a well-behaved client keeps working throughout.
. "$(dirname "$0")/../lib.sh"
lib_init seclimits
export PARLEY_MAX_MEMBERS=3
start_presence
start_store
start_router 1
PARLEY_GATEWAY_ORIGINS="https://chat.example, https://other.example/" \
	PARLEY_GATEWAY_MAX_CONN_PER_IP=5 PARLEY_SEND_RATE=5 PARLEY_SEND_BURST=10 \
	PARLEY_MAX_ROOMS_PER_USER=2 start_gateway 1
start_gateway 2
port=$GW_PORT_1
export PARLEY_URL=$(url 1)
sec() { python3 "$TOOLS/sec_probe.py" "$@"; }
tok=$(parley token alice)

want() { # want NAME JSON-FILE PY-EXPR
	python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert $3, r" "$2" ||
		fail "$1: $(cat "$2")"
	echo "$1: ok"
}
sec origin --port "$port" --token "$tok" --origin https://chat.example >"$T/o1.json"
want "listed origin" "$T/o1.json" 'r["close_code"] is None'
sec origin --port "$port" --token "$tok" --origin https://other.example >"$T/o2.json"
want "listed origin (trailing slash in the list)" "$T/o2.json" 'r["close_code"] is None'
sec origin --port "$port" --token "$tok" --origin "http://127.0.0.1:$port" >"$T/o3.json"
want "the gateway's own origin" "$T/o3.json" 'r["close_code"] is None'
sec origin --port "$port" --token "$tok" --origin https://evil.example >"$T/o4.json"
want "foreign origin refused" "$T/o4.json" 'r["close_code"] == 4008'
sec origin --port "$port" --token "$tok" >"$T/o5.json"
want "no Origin (not a browser)" "$T/o5.json" 'r["close_code"] is None'

sec many --port "$port" --n 8 >"$T/many.json"
want "5 connections per IP" "$T/many.json" 'r["codes"] == {"None": 5, "4009": 3}'
# The slots come back when connections close.
sec origin --port "$port" --token "$tok" >"$T/again.json"
want "a slot after the others closed" "$T/again.json" 'r["close_code"] is None'

# The fallback transport's event stream obeys the same allowlist (its
# session holds one of the IP's slots through the resume grace).
PYTHONPATH="$TOOLS" python3 - "$port" "$tok" <<'PY' || fail "SSE origin"
import sys
import sseclient
port, tok = int(sys.argv[1]), sys.argv[2]
ok = sseclient.Stream(port, bearer=tok, origin="https://chat.example")
assert ok.expect("session")["event"] == "session"
bad = sseclient.Stream(port, bearer=tok, origin="https://evil.example")
ev = bad.next()
while ev and ev["event"] in ("session", "ping"):
    ev = bad.next()
assert ev and ev["event"] == "close" and ev["code"] == 4008, ev
print("SSE: listed origin gets a session, a foreign one close 4008")
PY

sec flood --port "$port" --token "$tok" --n 100 >"$T/flood.json"
want "send rate: refused, then closed" "$T/flood.json" \
	'r["close_code"] == 4007 and 1 <= r["rate_limited"] <= 11'
parley send --as bob dm:alice:bob "still fine" >/dev/null || fail "a polite client after the flood"
echo "polite client: ok"

# Rooms per user (counted by the gateway from Welcome): 2, then refused.
parley room create --as carol --name one >/dev/null || fail "room 1"
parley room create --as carol --name two >/dev/null || fail "room 2"
for _ in $(seq 50); do
	[ "$(parley rooms --as carol 2>/dev/null | wc -l)" -ge 2 ] && break
	sleep 0.2
done
rc=0
parley room create --as carol --name three >/dev/null 2>"$T/three.err" || rc=$?
[ "$rc" = 1 ] || fail "third room: exit $rc, want 1 ($(cat "$T/three.err"))"
grep -qi "too many rooms" "$T/three.err" || fail "third room: $(cat "$T/three.err")"
echo "rooms per user: ok"

# Members per room (PARLEY_MAX_MEMBERS=3, decided by the fold).
parley room create --as dave --name team erin >"$T/team.json" || fail "team"
room=$(json_field "$T/team.json" room_id)
parley room add --as dave "$room" frank >/dev/null || fail "third member"
rc=0
parley room add --as dave "$room" gina >/dev/null 2>"$T/full.err" || rc=$?
[ "$rc" = 1 ] || fail "fourth member: exit $rc, want 1 ($(cat "$T/full.err"))"
grep -qi "room full" "$T/full.err" || fail "fourth member: $(cat "$T/full.err")"
echo "members per room: ok"
kill -0 "$(cat "$T/gateway1.pid")" || fail "gateway died"
echo ok
