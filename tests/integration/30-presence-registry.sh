#!/usr/bin/env bash
# parley-presence end to end: starts the real binary, speaks PresenceRequest
# and PresenceUpdate over real NNG (python3 ctypes on libnng, protoc for the
# wire format: nothing to pip install) and stops it with SIGTERM.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${PARLEY_BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/bin/parley-presence
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rep_url=${PRESENCE_TEST_REP:-tcp://127.0.0.1:$(free_port)}
pub_url=${PRESENCE_TEST_PUB:-tcp://127.0.0.1:$(free_port)}
tmp=$(mktemp -d)
pid=

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

[ -x "$bin" ] || { echo "30-presence: $bin not built" >&2; exit 1; }

PARLEY_PRESENCE_LISTEN=$rep_url PARLEY_PRESENCE_PUB=$pub_url \
PARLEY_PRESENCE_LEASE_MS=2000 PARLEY_PRESENCE_HEARTBEAT_MS=200 \
PARLEY_PRESENCE_COALESCE_MS=300 \
PARLEY_LOG_LEVEL=debug "$bin" 2>"$tmp/presence.log" &
pid=$!

status=0
python3 - "$root/proto" "$rep_url" "$pub_url" <<'EOF' || status=$?
import ctypes as C, re, subprocess, sys, time

proto, rep_url, pub_url = sys.argv[1:4]
ENVELOPE = proto + "/parley/internal/v1/envelope.proto"
GW_A, GW_B = "tcp://127.0.0.1:29901", "tcp://127.0.0.1:29902"

nng = C.CDLL("libnng.so.1")
class Sock(C.Structure):
    _fields_ = [("id", C.c_uint32)]
nng.nng_dial.argtypes = [Sock, C.c_char_p, C.c_void_p, C.c_int]
nng.nng_send.argtypes = [Sock, C.c_char_p, C.c_size_t, C.c_int]
nng.nng_recv.argtypes = [Sock, C.c_void_p, C.POINTER(C.c_size_t), C.c_int]
nng.nng_socket_set_ms.argtypes = [Sock, C.c_char_p, C.c_int32]
nng.nng_socket_set.argtypes = [Sock, C.c_char_p, C.c_void_p, C.c_size_t]
nng.nng_free.argtypes = [C.c_void_p, C.c_size_t]
nng.nng_strerror.restype = C.c_char_p
NNG_FLAG_ALLOC, NNG_FLAG_NONBLOCK, NNG_ETIMEDOUT = 1, 2, 5

def ok(rv, what):
    if rv != 0:
        raise RuntimeError("%s: %s" % (what, nng.nng_strerror(rv).decode()))

def open_sock(kind, url):
    s = Sock()
    ok(getattr(nng, "nng_%s0_open" % kind)(C.byref(s)), kind)
    if kind == "sub":
        ok(nng.nng_socket_set(s, b"sub:subscribe", None, 0), "subscribe")
    ok(nng.nng_dial(s, url.encode(), None, NNG_FLAG_NONBLOCK), "dial")
    return s

def recv(s, timeout_ms):
    ok(nng.nng_socket_set_ms(s, b"recv-timeout", timeout_ms), "timeout")
    p, n = C.c_void_p(), C.c_size_t()
    rv = nng.nng_recv(s, C.byref(p), C.byref(n), NNG_FLAG_ALLOC)
    if rv == NNG_ETIMEDOUT:
        return None
    ok(rv, "recv")
    data = C.string_at(p, n.value)
    nng.nng_free(p, n.value)
    return data

def protoc(mode, msg, data):
    r = subprocess.run(["protoc", "--%s=parley.internal.v1.%s" % (mode, msg),
                        "-I", proto, ENVELOPE], input=data,
                       capture_output=True, check=True)
    return r.stdout

# protoc's text format as nested dicts of lists: {"version": [5], ...}.
def parse(text):
    toks = re.findall(r'"(?:[^"\\]|\\.)*"|[{}:]|[^\s{}:"]+', text)
    def block(i):
        d = {}
        while i < len(toks) and toks[i] != "}":
            name = toks[i]
            if toks[i + 1] == "{":
                v, i = block(i + 2)
                i += 1
            else:
                v, i = toks[i + 2], i + 3
                v = v[1:-1] if v.startswith('"') else \
                    (v == "true" if v in ("true", "false") else int(v))
            d.setdefault(name, []).append(v)
        return d, i
    return block(0)[0]

def one(d, k, default=0):
    return d.get(k, [default])[0]

req = open_sock("req", rep_url)
sub = open_sock("sub", pub_url)

def ask_raw(data, timeout_ms=3000):
    ok(nng.nng_send(req, data, len(data), 0), "send")
    r = recv(req, timeout_ms)
    assert r is not None, "no reply"
    return parse(protoc("decode", "PresenceReply", r).decode())

def ask(text, timeout_ms=3000):
    return ask_raw(protoc("encode", "PresenceRequest", text.encode()), timeout_ms)

def sess(user, sid):
    return '{ user_id: "%s" session_id: "%s" }' % (user, sid)

def report(gw, up=(), down=(), full=False):
    t = 'report { gateway: "%s" full: %s ' % (gw, "true" if full else "false")
    t += " ".join("up " + sess(u, s) for u, s in up)
    t += " ".join(" down " + sess("", s) for s in down)
    r = ask(t + " }")
    assert one(r, "error", "") == "", r
    return r

def lookup(*users):
    r = ask("lookup { %s }" % " ".join('user_ids: "%s"' % u for u in users))
    return {u["user_id"][0]: (one(u, "online", False), one(u, "last_seen_ms"))
            for u in r.get("users", [])}

def snapshot():
    r = ask("snapshot: true")
    return r, {(one(s, "gateway", ""), one(s, "session_id", "")):
               one(s, "user_id", "") for s in r.get("sessions", [])}

# A replica applied the way routers do (ups, then downs); checked against
# a snapshot at the end, and for version gaps on the way.
replica, seen = {}, {"version": 0, "updates": 0}
# The coalesced user feed: every UserState published, in order.
feed = []

def next_update(timeout_ms=3000):
    data = recv(sub, timeout_ms)
    assert data is not None, "no publication within %d ms" % timeout_ms
    u = parse(protoc("decode", "PresenceUpdate", data).decode())
    assert one(u, "epoch") == epoch, u
    for s in u.get("users", []):
        feed.append((one(s, "user_id", ""), one(s, "online", False),
                     one(s, "last_seen_ms")))
    if one(u, "version") > seen["version"]:
        assert one(u, "first_version") == seen["version"], ("gap", u, seen)
        for s in u.get("up", []):
            replica.setdefault((s["gateway"][0], s["session_id"][0]), s["user_id"][0])
        for s in u.get("down", []):
            replica.pop((s["gateway"][0], s["session_id"][0]), None)
        seen["version"] = one(u, "version")
        seen["updates"] += 1
    return u

def wait_change(timeout_s=5):
    end = time.time() + timeout_s
    while time.time() < end:
        u = next_update()
        if one(u, "first_version") != one(u, "version"):
            return u
    raise AssertionError("no change published")

def keys(u, k):
    return sorted((s["user_id"][0] if "user_id" in s else "", s["session_id"][0])
                  for s in u.get(k, []))

# 1. A fresh service: version 0, nonzero epoch, no sessions.
r, snap = snapshot()
epoch = one(r, "epoch")
assert epoch != 0 and one(r, "version") == 0 and snap == {}, r
# Heartbeats carry the version with first_version == version.
u = next_update()
assert one(u, "version") == 0 and one(u, "first_version") == 0, u
print("ok 1 snapshot and heartbeat, epoch %x" % epoch)

# 2. A full report: two ups, one publication.
t0 = int(time.time() * 1000)
r = report(GW_A, up=[("alice", "a1"), ("bob", "b1")], full=True)
assert one(r, "version") == 2 and one(r, "epoch") == epoch, r
u = wait_change()
assert (one(u, "first_version"), one(u, "version")) == (0, 2), u
assert keys(u, "up") == [("alice", "a1"), ("bob", "b1")] and "down" not in u, u
print("ok 2 full report")

# 3. Multi-device: alice stays online while any session lives.
assert one(report(GW_B, up=[("alice", "a2")]), "version") == 3
assert one(report(GW_A, down=["a1"]), "version") == 4
assert lookup("alice")["alice"][0] is True
t1 = int(time.time() * 1000)
assert one(report(GW_B, down=["a2"]), "version") == 5
t2 = int(time.time() * 1000)
st = lookup("alice", "bob", "zed")
assert st["alice"][0] is False and t1 <= st["alice"][1] <= t2, st
assert st["bob"][0] is True and st["bob"][1] >= t2 - 1000, st
assert st["zed"] == (False, 0), st
while seen["version"] < 5:
    wait_change()
print("ok 3 multi-device and last_seen")

# 4. A duplicate up changes nothing and publishes nothing but heartbeats.
assert one(report(GW_A, up=[("bob", "b1")]), "version") == 5
for _ in range(3):
    u = next_update()
    assert one(u, "first_version") == one(u, "version") == 5, u
print("ok 4 duplicate up")

# 5. Up and down of one session in one report: two changes, nothing left.
assert one(report(GW_A, up=[("carol", "c1")], down=["c1"]), "version") == 7
u = wait_change()
assert (one(u, "first_version"), one(u, "version")) == (5, 7), u
assert "up" not in u and "down" not in u, u
print("ok 5 up and down in one report")

# 6. Full replace where a session id moves to another user: the update
#    is split so no key is both up and down in one publication.
r = report(GW_A, up=[("dave", "b1"), ("erin", "e1")], full=True)
assert one(r, "version") == 10, r
while seen["version"] < 10:
    wait_change()
_, snap = snapshot()
assert snap == {(GW_A, "b1"): "dave", (GW_A, "e1"): "erin"}, snap
assert replica == snap, (replica, snap)
print("ok 6 full replace, replica matches snapshot")

# 7. Bad requests get an error text and change nothing.
for raw in (b"\xff\xff\xff", b""):
    r = ask_raw(raw)
    assert one(r, "error", "") != "" and one(r, "epoch") == epoch, r
r = ask('report { gateway: "" up %s }' % sess("x", "y"))
assert "gateway" in one(r, "error", ""), r
r = ask('report { gateway: "%s" up { user_id: "x" session_id: "y" gateway: "%s" } }'
        % (GW_A, GW_B))
assert one(r, "error", "") != "" and one(r, "version") == 10, r
r = ask('report { gateway: "%s" up { user_id: "" session_id: "y" } }' % GW_A)
assert one(r, "error", "") != "" and one(r, "version") == 10, r
print("ok 7 bad requests")

# 8. Leases: reports (even empty ones) keep a gateway alive past the
#    lease; silence ends all its sessions in one publication.
end = time.time() + 3.0
while time.time() < end:
    report(GW_A)
    last_a = int(time.time() * 1000)
    time.sleep(0.4)
_, snap = snapshot()
assert len(snap) == 2, snap
u = wait_change(timeout_s=6)
assert keys(u, "down") == [("dave", "b1"), ("erin", "e1")], u
assert one(u, "version") == 12, u
_, snap = snapshot()
assert snap == {} and replica == {}, (snap, replica)
st = lookup("erin")["erin"]
assert st[0] is False and last_a - 1000 <= st[1] <= last_a + 1000, (st, last_a)
print("ok 8 lease expiry, last_seen = last report")

# 9. The coalesced user feed (window 300 ms): what it said so far agrees
#    with lookup, a session that came and went inside one report was never
#    published, and a user appears only when the online state changed.
#    (alice came and went within steps 2-3, likely one window: she may
#    never have been published at all.)
def settle(seconds=1.0):
    end = time.time() + seconds
    while time.time() < end:
        next_update()

def last_feed():
    return {u: (on, ls) for u, on, ls in feed}

settle()
assert ("bob", True) in [(u, on) for u, on, _ in feed], feed
assert "carol" not in last_feed(), feed
st = lookup(*last_feed().keys())
for u, (on, ls) in last_feed().items():
    assert st[u][0] == on, (u, st[u], on)
    assert on or st[u][1] == ls, (u, st[u], ls)
# Consecutive states of one user always differ.
prev = {}
for u, on, _ in feed:
    assert prev.get(u) != on, ("repeated state", u, on, feed)
    prev[u] = on
print("ok 9 user feed agrees with lookup (%d states)" % len(feed))

# 10. A user coming online is published once, within about one window.
mark = len(feed)
t0 = time.time()
report(GW_A, up=[("frank", "f0")])
while not any(u == "frank" for u, _, _ in feed[mark:]):
    assert time.time() - t0 < 3, "frank not published"
    next_update()
assert feed[mark:] == [("frank", True, feed[mark][2])], feed[mark:]
print("ok 10 frank online published after %d ms" % ((time.time() - t0) * 1000))

# 11. Flapping does not flood: 20 quick reconnects publish at most one
#     state per window boundary that falls among them (none or one when
#     they take a few ms), not 40, and the feed ends where lookup is.
#     The reports are encoded beforehand so the 40 take a few ms.
def report_raw(gw, up=(), down=()):
    t = 'report { gateway: "%s" ' % gw
    t += " ".join("up " + sess(u, s) for u, s in up)
    t += " ".join(" down " + sess("", s) for s in down)
    return protoc("encode", "PresenceRequest", (t + " }").encode())

raw = []
for i in range(1, 21):
    raw.append(report_raw(GW_A, down=["f%d" % (i - 1)]))
    raw.append(report_raw(GW_A, up=[("frank", "f%d" % i)]))
sid = "f20"
mark = len(feed)
t0 = time.time()
for data in raw:
    ok(nng.nng_send(req, data, len(data), 0), "send")
    assert recv(req, 3000) is not None, "no reply"
took_ms = (time.time() - t0) * 1000
settle()
flaps = [on for u, on, _ in feed[mark:] if u == "frank"]
# Each boundary publishes at most one state; the one after the flapping
# may add the final "online". States alternate, starting with offline.
assert len(flaps) <= int(took_ms // 300) + 2, (took_ms, flaps)
assert flaps == [i % 2 == 1 for i in range(len(flaps))], flaps
assert not flaps or flaps[-1] is True, flaps
assert lookup("frank")["frank"][0] is True
print("ok 11 20 reconnects in %d ms published %d states" % (took_ms, len(flaps)))

# 12. Going offline is published with last_seen = when it happened.
mark = len(feed)
t1 = int(time.time() * 1000)
report(GW_A, down=[sid])
t2 = int(time.time() * 1000)
settle()
got = [(u, on, ls) for u, on, ls in feed[mark:] if u == "frank"]
assert len(got) == 1 and got[0][1] is False, got
assert t1 <= got[0][2] <= t2, (got, t1, t2)
print("ok 12 frank offline published with last_seen")
print("%d updates applied, final version %d" % (seen["updates"], seen["version"]))
EOF

if [ "$status" -ne 0 ]; then
	echo "30-presence: client failed ($status); presence log:" >&2
	cat "$tmp/presence.log" >&2
	exit 1
fi

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" -ne 0 ]; then
	echo "30-presence: parley-presence exited $rc after SIGTERM" >&2
	cat "$tmp/presence.log" >&2
	exit 1
fi
for id in presence.start presence.expire presence.bad_request presence.users presence.stop; do
	grep -q "\"id\":\"$id\"" "$tmp/presence.log" || {
		echo "30-presence: no $id line in the log" >&2
		cat "$tmp/presence.log" >&2
		exit 1
	}
done
echo "30-presence: ok"
