#!/usr/bin/env bash
# Launch sync: bob was away while messages arrived in three rooms, one of
# them past a page (500). `parley sync` brings every room up to date with
# SyncRooms requests and prints exactly the missed messages, in order, once;
# after he reads, nothing is left; a room he left is not read.
. "$(dirname "$0")/../lib.sh"
lib_init launchsync
start_stack
export PARLEY_URL=$(url 1)

parley room create --as carol --name trio bob dave >"$T/g.json" || fail "create"
g=$(json_field "$T/g.json" room_id)
for i in $(seq 5); do parley send --as carol "$g" "g$i" >/dev/null || fail "g$i"; done
for i in $(seq 3); do parley send --as dave dm:bob:dave "d$i" >/dev/null || fail "d$i"; done
for i in $(seq 520); do
	parley send --as alice dm:alice:bob "a$i" >/dev/null || fail "a$i"
done
history_until bob dm:alice:bob 520 "$T/h.out"

PARLEY_URL=$(url 2) parley sync --as bob >"$T/sync.out" || fail "sync"
python3 - "$T/sync.out" "$g" <<'PY' || fail "launch sync: $(wc -l <"$T/sync.out") lines"
import json, sys
got = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rooms = {}
for m in got:
    rooms.setdefault(m["room_id"], []).append((m["seq"], m["body"]))
want = {"dm:alice:bob": [(i, f"a{i}") for i in range(1, 521)],
        "dm:bob:dave": [(i, f"d{i}") for i in range(1, 4)],
        sys.argv[2]: [(i, f"g{i}") for i in range(1, 6)]}
assert rooms == want, {r: len(v) for r, v in rooms.items()}
print(f"launch sync: {len(got)} missed messages in 3 rooms, one past a page")
PY
unread() { # unread ROOM: bob's unread count there
	parley rooms --as bob | python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    if r["room_id"] == sys.argv[1]: print(r["unread"])' "$1"
}
[ "$(unread dm:alice:bob)" = 520 ] || fail "unread before reading: $(unread dm:alice:bob)"
parley read --as bob dm:alice:bob 520 >/dev/null || fail "read"
parley read --as bob dm:bob:dave 3 >/dev/null || fail "read"
parley read --as bob "$g" 5 >/dev/null || fail "read"
for _ in $(seq 50); do
	parley sync --as bob >"$T/sync2.out" || fail "sync 2"
	[ ! -s "$T/sync2.out" ] && break
	sleep 0.2
done
[ ! -s "$T/sync2.out" ] || fail "after reading, sync printed $(wc -l <"$T/sync2.out") lines"
[ "$(unread dm:alice:bob)" = 0 ] || fail "unread after reading: $(unread dm:alice:bob)"
echo "unread 520 before, 0 after reading; nothing left to sync"
parley send --as carol "$g" "g6" >/dev/null || fail "g6"
parley room leave --as bob "$g" >/dev/null || fail "leave"
parley send --as carol "$g" "g7" >/dev/null || fail "g7"
history_until carol "$g" 7 "$T/g.out"
parley sync --as bob --all >"$T/sync3.out" || fail "sync 3"
grep -q '"g7"' "$T/sync3.out" && fail "bob read a room he left"
echo ok
