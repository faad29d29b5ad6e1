#!/usr/bin/env bash
# Fan-out at size: a room of 10,000 members with 50 of them online on two
# gateways gets every message to every online member exactly once, and the
# router's per-message work (parley_router_fanout_steps_total) is the same as
# for a 51-member room with the same 50 online: it grows with the online
# members and gateways, not with the room.
. "$(dirname "$0")/../lib.sh"
lib_init fanout10k
start_presence
start_store
router_http=$(free_port)
PARLEY_HTTP_PORT=$router_http start_router 1
start_gateway 1
start_gateway 2
export PARLEY_URL=$(url 1)
n=20

steps() {
	curl -fs "http://127.0.0.1:$router_http/metrics" |
		awk '$1 == "parley_router_fanout_steps_total" {print $2}'
}

users() { # users FROM TO
	for i in $(seq "$1" "$2"); do printf 'u%05d ' "$i"; done
}

# shellcheck disable=SC2046
parley room create --as alice --name big $(users 1 1000) >"$T/big.json" || fail "create big"
big=$(json_field "$T/big.json" room_id)
for k in $(seq 1 9); do
	# shellcheck disable=SC2046
	parley room add --as alice "$big" $(users $((k * 1000 + 1)) $((k * 1000 + 1000))) \
		>/dev/null || fail "add batch $k"
done
# shellcheck disable=SC2046
parley room create --as alice --name small $(users 1 50) >"$T/small.json" || fail "create small"
small=$(json_field "$T/small.json" room_id)
parley room online --as alice "$big" >"$T/online.json" || fail "room online"
[ "$(json_field "$T/online.json" members)" = 10001 ] || fail "big room: $(cat "$T/online.json")"

for i in $(seq 1 50); do
	u=$(printf 'u%05d' "$i")
	PARLEY_URL=$(url $((i % 2 + 1))) parley listen --as "$u" --no-delivered \
		--count $((2 * n)) --timeout 120 >"$T/$u.out" 2>"$T/$u.err" &
	echo $! >>"$T/listeners"
done
# alice stays online throughout, so her per-send sessions change no
# presence, and presence announcements of the listeners (coalesced over 1 s)
# are over before we count.
PARLEY_URL=$(url 1) parley listen --as alice --no-delivered --timeout 120 \
	>"$T/alice.out" 2>"$T/alice.err" &
alice=$!
for i in $(seq 1 50); do
	wait_file_line "$T/$(printf 'u%05d' "$i").err" listening 60
done
wait_file_line "$T/alice.err" listening 20
sleep 3

s0=$(steps)
for i in $(seq $n); do parley send --as alice "$big" "big $i" >/dev/null || fail "send big $i"; done
s1=$(steps)
for i in $(seq $n); do parley send --as alice "$small" "small $i" >/dev/null || fail "send small $i"; done
s2=$(steps)
while read -r pid; do wait "$pid" || fail "a listener ended with $?"; done <"$T/listeners"
kill "$alice"

python3 - "$T" "$big" "$small" $n "$s0" "$s1" "$s2" <<'PY' || fail "fan-out at size"
import json, sys, glob
t, big, small, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s0, s1, s2 = (float(x) for x in sys.argv[5:8])
for f in sorted(glob.glob(f"{t}/u*.out")):
    ev = [json.loads(l) for l in open(f) if l.strip()]
    got = [(e["room_id"], e["seq"]) for e in ev if e["type"] == "message"]
    want = [(big, i) for i in range(1, n + 1)] + [(small, i) for i in range(1, n + 1)]
    assert sorted(got) == sorted(want), f"{f}: {len(got)} messages"
per_big, per_small = (s1 - s0) / n, (s2 - s1) / n
print(f"50 online members got all {2 * n} messages once; router work per message: "
      f"10,001-member room {per_big:.1f}, 51-member room {per_small:.1f}")
# 51 online members (50 listeners and alice) on 2 gateways: 53 steps.
assert per_big == per_small == 53, "work must be 51 recipients + 2 gateways in both"
PY
echo ok
