#!/usr/bin/env python3
"""Hostile clients against one parley-gateway, all at once, while the
gateway's memory is sampled from /proc (Python 3 stdlib).

    hostile.py --port P --pid GATEWAY_PID [--secret S] [--per-kind N]
               [--outq-max B] [--max-frame B] [--auth-timeout S]
               [--rss-bound-kb K] [--room ROOM --room-user U]

Each kind below opens --per-kind connections (10 kinds x 10 = 100 by
default) at the same moment and checks the gateway's answer against
docs/PROTOCOL.md; `ROOM` is a room of `U` holding big messages, which the
never-reading clients ask for. Prints one line per connection that did not
get what it should, one summary line per kind, the RSS before, at the
peak and after, and "N passed, N failed" (per kind); exits 1 on failure.
A kind whose limit never showed (no RATE_LIMITED) fails."""
import argparse
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws_conformance as ws  # noqa: E402
from ws_conformance import (OP_BINARY, OP_CLOSE, OP_PING, frame,  # noqa: E402
                            pb_bytes, pb_varint)

# ---- one hostile connection per call: returns (ok, detail) ----


def session(a, user):
    return ws.open_session(a.port, a.secret, user, time.time() + 20)


def closed_with(c, codes, wait):
    out = ws.collect(c, wait)
    c.close()
    err = ws.expect_close(out, codes)
    return err is None, err or f"close {out.close_code}"


def h_random_frames(a, i):
    """4 KiB of random bytes where frames should be."""
    c = session(a, f"rnd{i}")
    c.send(os.urandom(4096))
    return closed_with(c, {1002, 1007, 1009, 4004, None}, a.wait)


def h_random_http(a, i):
    """Random bytes instead of the HTTP upgrade: the TCP connection ends."""
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    s.sendall(os.urandom(2048) + b"\r\n\r\n")
    c = ws.Client.__new__(ws.Client)
    c.sock, c.buf, c.eof = s, b"", False
    ok = ws.drain_to_eof(c, time.time() + a.wait + 10)
    s.close()
    return ok, "TCP ended" if ok else "still open"


def h_truncated_pb(a, i):
    """A Send cut in the middle of its body: 4004."""
    full = ws.send_frame(1, "dm:a:b", "x" * 100, f"t{i}")
    c = session(a, f"trunc{i}")
    c.send(frame(OP_BINARY, full[:len(full) // 2]))
    return closed_with(c, {4004}, a.wait)


def h_nested_groups(a, i):
    """100,000 nested start-group tags: 4004 (protobuf-c has no groups)."""
    c = session(a, f"grp{i}")
    c.send(frame(OP_BINARY, ws.varint(11 << 3 | 3) * 20000))
    return closed_with(c, {4004, 1009}, a.wait)


def h_nested_messages(a, i):
    """A Send nested 20,000 deep in itself (unknown fields are skipped,
    never recursed into): answered with Error BAD_REQUEST, not a crash."""
    body = b""
    for _ in range(20000):
        body = pb_bytes(11, body)
        if len(body) > 60000:
            break
    c = session(a, f"nest{i}")
    c.send(frame(OP_BINARY, pb_varint(1, 5) + pb_bytes(11, body)))
    out = ws.collect(c, a.wait, until_reply=5)
    c.close()
    ok = out.replies.get(5) == "error" or out.close_code == 4004
    return ok, f"{out!r}"


def h_len_2_63(a, i):
    """A frame header announcing 2^63 bytes (and 2^63-1 for odd i)."""
    c = session(a, f"len{i}")
    if i % 2:
        c.send(ws.announce((1 << 63) - 1))
        return closed_with(c, {1009, 1002, None}, a.wait)
    c.send(struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + os.urandom(20))
    return closed_with(c, {1002, 1009, None}, a.wait)


def h_fragmented_over(a, i):
    """A message in 64 fragments adding up to 2x the frame limit: 1009."""
    c = session(a, f"frag{i}")
    part = os.urandom(a.max_frame * 2 // 64)
    c.send(frame(OP_BINARY, part, fin=False))
    for _ in range(62):
        if not c.send(ws.frame(0, part, fin=False)):
            break
    c.send(frame(0, part))
    return closed_with(c, {1009}, a.wait)


def h_tiny_fragments(a, i):
    """1-byte fragments without FIN, past the frame limit: 1009."""
    c = session(a, f"tiny{i}")
    data = frame(OP_BINARY, b"\x08", fin=False) + b"".join(
        frame(0, b"\x00", fin=False) for _ in range(a.max_frame + 16))
    for k in range(0, len(data), 65536):
        if not c.send(data[k:k + 65536]):
            break
    return closed_with(c, {1009}, a.wait + 10)


def h_big_control(a, i):
    """A ping with 200 bytes (control frames carry 125 at most)."""
    c = session(a, f"ctl{i}")
    c.send(frame(OP_PING, b"p" * 200))
    return closed_with(c, {1002, None}, a.wait)


def h_ping_flood(a, i):
    """20,000 pings without reading a pong, then a request: lws keeps at
    most one pong pending, so the flood costs no memory and the session
    stays usable (parley does not close it)."""
    c = session(a, f"ping{i}")
    blob = b"".join(frame(OP_PING, b"flood") for _ in range(1000))
    for _ in range(20):
        if not c.send(blob):
            return False, "send failed"
    c.send(frame(OP_BINARY, ws.list_rooms(77)))
    out = ws.collect(c, a.wait + 10, until_reply=77)
    c.close()
    return out.replies.get(77) == "room_list", f"{out!r}"


def h_slowloris(a, i):
    """An HTTP upgrade trickled one byte per second: the gateway must drop
    it (lws's header timeout) long before it completes."""
    s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    req = (f"GET /?x={'a' * 200} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n").encode()
    start = time.time()
    for k in range(len(req)):
        try:
            s.sendall(req[k:k + 1])
        except OSError:
            break
        time.sleep(1)
        if time.time() - start > a.slowloris_max:
            break
    s.settimeout(1)
    try:
        dropped = s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        dropped = True
    except socket.timeout:
        dropped = False
    s.close()
    took = time.time() - start
    return dropped, f"dropped after {took:.0f} s" if dropped else \
        f"still open after {took:.0f} s"


def h_no_auth(a, i):
    """Connects and never authenticates: 4003 after the deadline."""
    c = ws.Client(a.port)
    c.handshake(time.time() + 10)
    return closed_with(c, {4003}, a.auth_timeout + 5)


def h_no_read(a, i):
    """Asks for big Sync pages and never reads: 4005."""
    c = ws.Client(a.port, "/?token=" + ws.mint(a.room_user, a.secret),
                  rcvbuf=4096)
    c.handshake(time.time() + 10)
    sync = pb_bytes(1, a.room) + pb_varint(2, 0) + pb_varint(3, 100)
    for k in range(40):
        if not c.send(frame(OP_BINARY, pb_varint(1, 100 + k) +
                            pb_bytes(12, sync))):
            break
    time.sleep(a.wait + 6)  # read nothing meanwhile
    return closed_with(c, {4005}, a.wait + 10)


def h_send_rate(a, i):
    """Sends far faster than any send rate (to a room it may not use, so
    nothing reaches the log). Needs the per-connection token bucket; until
    the gateway has one, no RATE_LIMITED comes and the kind is skipped."""
    c = session(a, f"rate{i}")
    blob = b"".join(frame(OP_BINARY, ws.send_frame(
        1000 + k, "dm:nobody1:nobody2", "x", f"r{i}-{k}")) for k in range(500))
    c.send(blob)
    out = ws.Outcome()
    deadline = time.time() + a.wait + 5
    codes = []
    try:
        while time.time() < deadline and len(codes) < 500:
            ev = c.recv(deadline)
            if ev[0] == "eof":
                break
            if ev[1] == OP_CLOSE:
                out.close_code = struct.unpack("!H", ev[2][:2])[0]
                break
            if ev[1] == OP_BINARY:
                rid, kind, f = ws.server_frame(ev[2])
                if kind == "error":
                    codes.append(f.get(1, [0])[0])
    except TimeoutError:
        pass
    c.close()
    if 6 in codes or out.close_code in a.rate_close:
        return True, f"limited: {codes.count(6)} RATE_LIMITED, close {out.close_code}"
    return None, f"no RATE_LIMITED among {len(codes)} errors (close {out.close_code})"


KINDS = [("random-frames", h_random_frames), ("random-http", h_random_http),
         ("truncated-protobuf", h_truncated_pb),
         ("nested-groups", h_nested_groups),
         ("nested-messages", h_nested_messages),
         ("length-2^63", h_len_2_63), ("fragmented-over-limit",
                                       h_fragmented_over),
         ("1-byte-fragments-no-fin", h_tiny_fragments),
         ("control-over-125", h_big_control), ("ping-flood", h_ping_flood),
         ("slowloris-handshake", h_slowloris), ("never-authenticates",
                                                h_no_auth),
         ("never-reads", h_no_read), ("send-rate", h_send_rate)]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--secret", default=os.environ.get("PARLEY_JWT_SECRET"))
    p.add_argument("--per-kind", type=int, default=0,
                   help="connections per kind (0: 100 in all, spread)")
    p.add_argument("--max-frame", type=int, default=66048)
    p.add_argument("--auth-timeout", type=float, default=10)
    p.add_argument("--wait", type=float, default=6)
    p.add_argument("--slowloris-max", type=float, default=40)
    p.add_argument("--rss-bound-kb", type=int, default=0)
    p.add_argument("--room", default="")
    p.add_argument("--room-user", default="")
    p.add_argument("--rate-close", type=int, nargs="*", default=[])
    p.add_argument("-k", dest="only", default="")
    a = p.parse_args()
    kinds = [(n, f) for n, f in KINDS if a.only in n]
    per = a.per_kind or -(-100 // len(kinds))
    jobs = [(n, f, i) for n, f in kinds for i in range(per)]
    results, lock = {}, threading.Lock()

    def run(name, fn, i):
        try:
            ok, detail = fn(a, i)
        except Exception as e:  # a client that crashed counts as failed
            ok, detail = False, f"{type(e).__name__}: {e}"
        with lock:
            results.setdefault(name, []).append((ok, detail))

    before = rss_kb(a.pid)
    threads = [threading.Thread(target=run, args=j, daemon=True)
               for j in jobs]
    start = time.time()
    for t in threads:
        t.start()
    peak, limit = before, start + 120
    while any(t.is_alive() for t in threads) and time.time() < limit:
        peak = max(peak, rss_kb(a.pid))
        time.sleep(0.1)
    for t in threads:
        t.join(max(0.1, limit - time.time()))
    time.sleep(1)
    after = rss_kb(a.pid)
    passed = failed = 0
    for name, _ in kinds:
        rs = results.get(name, [])
        bad = [d for ok, d in rs if ok is False]
        skipped = [d for ok, d in rs if ok is None]
        for d in bad[:3]:
            print(f"  {name}: {d}")
        if len(rs) < per:
            bad.append("unfinished")
            print(f"  {name}: {per - len(rs)} connections never finished")
        if bad:
            failed += 1
            print(f"FAIL {name}: {len(bad)} of {per} wrong", flush=True)
        elif skipped:
            failed += 1
            print(f"FAIL {name}: {skipped[0]} (the gateway has a send rate "
                  "limit: PARLEY_SEND_RATE)", flush=True)
        else:
            passed += 1
            print(f"PASS {name}: {per} connections, e.g. {rs[0][1][:80]}",
                  flush=True)
    print(f"connections: {len(jobs)} in {time.time() - start:.0f} s; "
          f"gateway RSS before {before} kB, peak {peak} kB "
          f"(+{peak - before} kB), after {after} kB")
    if a.rss_bound_kb and peak - before > a.rss_bound_kb:
        failed += 1
        print(f"FAIL memory: grew {peak - before} kB, bound "
              f"{a.rss_bound_kb} kB")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
