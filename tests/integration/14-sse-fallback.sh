#!/usr/bin/env bash
# The fallback transport (SSE + POST, docs/PROTOCOL.md): a bad or expired
# token is refused with the close code; a Send over POST is acknowledged on
# the stream once durable; messages cross between WebSocket and SSE users
# both ways; a retried POST with the same client_msg_id makes one message;
# a POST with a wrong secret, another user's token or an unknown session is
# refused; a stream cut in the middle of a flow resumes from its cursor
# with nothing lost and nothing twice; a session past its grace is gone
# and Sync repairs what was missed; heartbeats arrive as comments.
. "$(dirname "$0")/../lib.sh"
lib_init ssefallback
# Expired means expired here: the expiry case waits 2 s, not the leeway.
export PARLEY_JWT_LEEWAY_S=0
export PARLEY_SSE_GRACE_MS=2000 PARLEY_SSE_PING_S=1
start_stack

PARLEY_URL=$(url 1) parley listen --as alice --count 4 --timeout 60 \
	>"$T/alice.out" 2>"$T/alice.err" &
alice_listener=$!
wait_file_line "$T/alice.err" listening 20

PYTHONPATH=$TOOLS python3 - "$GW_PORT_1" "$GW_PORT_2" "$(url 1)" "$(url 2)" \
	"$PARLEY_BIN/parley" <<'PY' || fail "fallback transport"
import http.client, json, os, subprocess, sys, threading, time
from sseclient import Stream, post, pb_send, pb_subscribe_presence, pb_sync

port1, port2, url1, url2, cli = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
room = "dm:alice:bob"


def token(user, ttl=None):
    args = [cli, "token", user] + (["--ttl", str(ttl)] if ttl else [])
    return subprocess.check_output(args, text=True).strip()


def ws_send(url, user, cmid, body):
    out = subprocess.check_output(
        [cli, "send", "--as", user, "--id", cmid, room, body],
        text=True, env=dict(os.environ, PARLEY_URL=url))
    return json.loads(out)


def wait_online(user):
    for _ in range(100):
        out = subprocess.run([cli, "room", "online", "--as", user, room],
                             capture_output=True, text=True,
                             env=dict(os.environ, PARLEY_URL=url1)).stdout
        if f'"{user}"' in out:
            return
        time.sleep(0.1)
    raise AssertionError(f"router never saw {user} online")


bob_tok = token("bob")

# Two pipelined POSTs with bodies (to a plain endpoint and to /v1/send)
# must not stall the gateway's service thread (lws 4.1.6 spun on them).
import socket, urllib.request
for path in ("/livez", "/v1/send"):
    s = socket.create_connection(("127.0.0.1", port1), timeout=5)
    one = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    s.sendall(one.encode() * 2)
    time.sleep(0.5)
    s.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{port1}/livez", timeout=5) as r:
        assert r.status == 200
print("pipelined POSTs with bodies: the gateway still answers")
# The room exists before bob listens (seq 1), so the router can count him.
assert ws_send(url2, "alice", "a-0", "setup")["seq"] == 1

# Bad tokens: the stream opens (200) and says why in a close event.
for tok, code in (("not.a.token", 4001), (None, 4001)):
    s = Stream(port1, token=tok)
    assert s.status == 200 and s.headers["content-type"].startswith(
        "text/event-stream"), (s.status, s.headers)
    ev = s.expect("close")
    assert ev["code"] == code, ev
    assert s.next(5) == {"event": "end"}
expiring = token("bob", ttl=1)
time.sleep(2.1)
ev = Stream(port1, token=expiring).expect("close")
assert ev["code"] == 4002, ev
print("bad token: close 4001; expired token: close 4002")

# bob on SSE (bearer header), gateway 1. First the session, then Welcome.
bob = Stream(port1, bearer=bob_tok)
hello = bob.expect("session")
assert hello["resumed"] is False and len(hello["secret"]) == 22, hello
assert bob.cursor == f"{hello['session_id']}.{hello['secret']}.0", bob.cursor
w = bob.frame(ftype="welcome")
assert w["user_id"] == "bob" and w["session_id"] == hello["session_id"], w
wait_online("bob")

# Heartbeats: comments every PARLEY_SSE_PING_S (1 s here).
deadline, pings = time.time() + 5, 0
while time.time() < deadline and pings == 0:
    ev = bob.next(3)
    assert ev is None or ev["event"] == "ping", ev
    pings += ev is not None
assert pings, "no heartbeat comment within 5 s"
print("heartbeat comment arrived")

# WebSocket -> SSE: alice sends on gateway 2, bob's stream gets it.
ack = ws_send(url2, "alice", "a-1", "hi bob")
assert ack["seq"] == 2, ack
m = bob.frame(ftype="message")
assert (m["seq"], m["sender_id"], m["body"]) == (2, "alice", "hi bob"), m

# SSE -> WebSocket: bob POSTs; the ack (durable) comes on the stream.
st, body = post(port1, bob_tok, bob.session_id, bob.secret,
                [pb_send(11, room, "hi alice", "b-1")])
assert st == 204 and body is None, (st, body)
f = bob.frame(ftype="ack")
assert (f["request_id"], f["seq"], f["duplicate"]) == (11, 3, False), f

# The same client_msg_id again (a retried POST), in two POSTs through one
# HTTPConnection (each answer says Connection: close; it reconnects): one
# message, the original seq, duplicate acks.
keep = http.client.HTTPConnection("127.0.0.1", port1, timeout=10)
for rid in (12, 13):
    st, _ = post(port1, bob_tok, bob.session_id, bob.secret,
                 [pb_send(rid, room, "hi alice", "b-1")], conn=keep)
    assert st == 204, st
keep.close()
acks = [bob.frame(ftype="ack") for _ in range(2)]
assert sorted(a["request_id"] for a in acks) == [12, 13], acks
assert all(a["seq"] == 3 and a["duplicate"] for a in acks), acks
# Two frames in one body are handled in order: a Send, then a Sync.
st, _ = post(port1, bob_tok, bob.session_id, bob.secret,
             [pb_send(14, room, "third", "b-2"), pb_sync(15, room, 0)])
assert st == 204, st
got = {}
while len(got) < 2:
    f = bob.frame()
    if f["request_id"] in (14, 15):
        got[f["request_id"]] = f
assert got[14]["type"] == "ack" and got[14]["seq"] == 4, got[14]
assert got[15]["type"] == "sync_result", got[15]
# (The store follows the log, so the page may not reach seq 4 yet.)
seqs = [m["seq"] for m in got[15]["messages"]]
assert seqs == list(range(1, len(seqs) + 1)) and seqs, got[15]
print("POST: acked on the stream, retries make one message (seq 3)")

# SubscribePresence over POST; bob himself is online through this stream.
st, _ = post(port1, bob_tok, bob.session_id, bob.secret,
             [pb_subscribe_presence(16, ["bob"])])
assert st == 204, st
while True:
    f = bob.frame(ftype="presence")
    if f["request_id"] == 16:
        break
assert f["user_id"] == "bob" and f["online"], f
print("SubscribePresence over POST: bob (on SSE) is online")

# Refusals: wrong secret, another user's token, unknown session, bad
# token, expired token, garbage. None of them may act on bob's session.
carol_tok = token("carol")
bad_secret = bob.secret[:-1] + ("A" if bob.secret[-1] != "A" else "B")
cases = [
    ((bob_tok, bob.session_id, bad_secret), 403, 4001),
    ((carol_tok, bob.session_id, bob.secret), 403, 4001),
    ((bob_tok, bob.session_id, None), 403, 4001),
    ((bob_tok, "0000000000000000-1", bob.secret), 404, 4011),
    ((None, bob.session_id, bob.secret), 401, 4001),
    (("x.y.z", bob.session_id, bob.secret), 401, 4001),
    ((expiring, bob.session_id, bob.secret), 401, 4002),
]
for (tok, sid, sec), status, code in cases:
    st, body = post(port1, tok, sid, sec, [pb_send(20, room, "evil", "x-1")])
    assert (st, body and body["code"]) == (status, code), (sid, sec, st, body)
print("POST refused: wrong secret 403, other user 403, unknown session 404, "
      "bad/expired token 401")

# Resume: alice sends 60 messages from gateway 2 while bob's stream is cut
# three times (what was written but unread is lost in the cut) and resumed
# with the last cursor: bob must see exactly seq 5..64, each once.
n = 60
errors = []


def sender():
    try:
        for i in range(n):
            ws_send(url2, "alice", f"r-{i}", f"flow {i}")
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(e)


t = threading.Thread(target=sender)
t.start()
seen, resumes, deadline = [], 0, time.time() + 120
while len(seen) < n and time.time() < deadline:
    ev = bob.next(1)
    if ev is None:
        continue
    assert ev["event"] in ("frame", "ping"), ev
    if ev["event"] == "frame" and ev["frame"]["type"] == "message":
        seen.append(ev["frame"]["seq"])
        if len(seen) in (5, 20, 40):
            cursor = bob.cursor
            bob.cut()
            time.sleep(0.3)
            bob = Stream(port1, token=bob_tok, cursor=cursor,
                         cursor_in_query=(len(seen) == 20))
            h = bob.expect("session")
            assert h["resumed"] is True, (h, cursor)
            assert h["session_id"] == hello["session_id"], h
            assert bob.cursor == cursor, (bob.cursor, cursor)
            resumes += 1
t.join(60)
assert not errors, errors
assert seen == list(range(5, 5 + n)), f"bob saw {seen}"
assert resumes == 3, resumes
print(f"resumed {resumes} times mid-flow: seq 5..{4 + n} each once, in order")

# Another user's token cannot resume bob's session: it gets its own.
c = Stream(port1, token=carol_tok, cursor=bob.cursor)
h = c.expect("session")
assert h["resumed"] is False and h["session_id"] != hello["session_id"], h
c.cut()
# A second stream resuming the session replaces the first (close 4012).
old = bob
bob = Stream(port1, token=bob_tok, cursor=old.cursor)
assert bob.expect("session")["resumed"] is True
# Frames written to the old stream before the hand-over (presence, say)
# may precede its close; the new stream replays them from the cursor.
ev = old.next()
while ev and ev["event"] in ("frame", "ping"):
    ev = old.next()
assert ev and ev["event"] == "close" and ev["code"] == 4012, ev
assert old.next(5) == {"event": "end"}
print("carol's token gets a new session; a second stream replaces (4012)")

# Past the grace the session is gone: POST says 404/4011, a resume gets a
# new session, and Sync from the last seq returns exactly what was missed.
cursor, sid, secret = bob.cursor, bob.session_id, bob.secret
bob.cut()
deadline = time.time() + 15
while time.time() < deadline:  # the grace is 2 s
    st, body = post(port1, bob_tok, sid, secret, [pb_sync(30, room, 0)])
    if st != 204:
        break
    time.sleep(0.25)
assert (st, body and body["code"]) == (404, 4011), (st, body)
for i in range(5):
    ws_send(url2, "alice", f"g-{i}", f"gone {i}")
bob = Stream(port1, token=bob_tok, cursor=cursor)
h = bob.expect("session")
assert h["resumed"] is False and h["session_id"] != sid, h
w = bob.frame(ftype="welcome")
assert w["rooms"][room] >= 4 + n, w  # the store may lag the log
for attempt in range(50):  # until the store has followed the log
    st, _ = post(port1, bob_tok, bob.session_id, bob.secret,
                 [pb_sync(31, room, 4 + n)])
    assert st == 204
    r = bob.frame(ftype="sync_result")
    if len(r["messages"]) >= 5:
        break
    time.sleep(0.2)
assert [m["seq"] for m in r["messages"]] == list(range(5 + n, 10 + n)), r
assert not r["has_more"], r
print("after the grace: new session; Sync returns the 5 missed messages")

# A body that is not ClientFrames closes the session with 4004, as a bad
# WebSocket frame would; an oversized frame on another session with 1009.
st, body = post(port1, bob_tok, bob.session_id, bob.secret,
                body=b"\x03\xff\xff\xff")
assert (st, body["code"]) == (400, 4004), (st, body)
assert bob.expect("close")["code"] == 4004
assert bob.next(5) == {"event": "end"}
bob = Stream(port1, token=bob_tok)
bob.expect("session")
st, body = post(port1, bob_tok, bob.session_id, bob.secret,
                [pb_send(40, room, "x" * 70000, "big-1")])
assert (st, body["code"]) == (413, 1009), (st, body)
ev = bob.next(10)
while ev is not None and ev["event"] in ("frame", "ping"):
    ev = bob.next(10)
assert ev and ev["event"] == "close" and ev["code"] == 1009, ev
print("bad body: 400 and close 4004; oversized frame: 413 and close 1009")
PY

wait "$alice_listener" || fail "alice's WebSocket listener: exit $?"
python3 - "$T/alice.out" <<'PY' || fail "alice (WebSocket) did not get bob's POSTed messages"
import json, sys
msgs = [m for m in map(json.loads, open(sys.argv[1])) if m["type"] == "message"]
bobs = [(m["seq"], m["body"]) for m in msgs if m["sender_id"] == "bob"]
assert bobs == [(3, "hi alice"), (4, "third")], bobs
print("alice on WebSocket got bob's POSTed messages:", bobs)
PY
echo ok
