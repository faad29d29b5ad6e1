#!/usr/bin/env python3
"""A client of the gateway's fallback transport (docs/PROTOCOL.md,
"Fallback transport"): GET /v1/events read as server-sent events, POST
/v1/send with size-delimited ClientFrames. Standard library only, raw
sockets (so a test can stop reading, or cut a stream without a goodbye).
Used as a library by the integration tests:

    s = Stream(port, token=T)          # or bearer=T; cursor=C to resume
    hello = s.expect("session")        # {"session_id", "secret", "resumed"}
    ev = s.next(timeout)               # {"event": "frame", "frame": {...}}
    post(port, T, s.session_id, s.secret, [pb_send(1, room, body, cmid)])
"""
import base64
import http.client
import json
import socket
import time
import urllib.parse

from wsclient import field_bytes, field_varint, pb_fields, read_varint, varint


def pb_client(request_id, field, inner):
    return field_varint(1, request_id) + field_bytes(field, inner)


def pb_send(request_id, room, body, cmid):
    inner = field_bytes(1, cmid) + field_bytes(2, room) + field_bytes(3, body)
    return pb_client(request_id, 11, inner)


def pb_sync(request_id, room, after_seq, limit=1000):
    inner = field_bytes(1, room) + field_varint(2, after_seq)
    inner += field_varint(3, limit)
    return pb_client(request_id, 12, inner)


def pb_subscribe_presence(request_id, user_ids):
    inner = b"".join(field_bytes(1, u) for u in user_ids)
    return pb_client(request_id, 22, inner)


def delimited(frames):
    return b"".join(varint(len(f)) + f for f in frames)


def _s(fields, num):
    return fields.get(num, [b""])[0].decode(errors="replace")


def _n(fields, num):
    return fields.get(num, [0])[0]


def decode_message(buf):
    m = pb_fields(buf)
    return {"type": "message", "room_id": _s(m, 1), "seq": _n(m, 2),
            "sender_id": _s(m, 3), "client_msg_id": _s(m, 4),
            "body": _s(m, 5)}


def decode_frame(payload):
    """A ServerFrame as a dict with type and request_id."""
    f = pb_fields(payload)
    out = {"request_id": _n(f, 1)}
    if 10 in f:
        w = pb_fields(f[10][0])
        rooms = {}
        for r in w.get(3, []):
            rf = pb_fields(r)
            rooms[_s(rf, 1)] = _n(rf, 2)
        out.update(type="welcome", user_id=_s(w, 1), session_id=_s(w, 2),
                   rooms=rooms)
    elif 11 in f:
        a = pb_fields(f[11][0])
        out.update(type="ack", client_msg_id=_s(a, 1), room_id=_s(a, 2),
                   seq=_n(a, 3), duplicate=bool(_n(a, 5)))
    elif 12 in f:
        out.update(decode_message(f[12][0]))
    elif 13 in f:
        r = pb_fields(f[13][0])
        out.update(type="sync_result", room_id=_s(r, 1),
                   messages=[decode_message(m) for m in r.get(2, [])],
                   last_seq=_n(r, 3), has_more=bool(_n(r, 4)))
    elif 18 in f:
        p = pb_fields(f[18][0])
        out.update(type="presence", user_id=_s(p, 1), online=bool(_n(p, 2)))
    elif 19 in f:
        e = pb_fields(f[19][0])
        out.update(type="error", code=_n(e, 1), message=_s(e, 2),
                   retryable=bool(_n(e, 3)))
    else:
        out.update(type="other", fields=sorted(f))
    return out


class Stream:
    """One GET /v1/events. next() returns one event as a dict:
    {"event": "session", ...data} / {"event": "close", "code", "reason"} /
    {"event": "frame", "id", "frame": decode_frame(...)} /
    {"event": "ping"}; None on timeout; {"event": "end"} at EOF."""

    def __init__(self, port, token=None, bearer=None, cursor=None,
                 cursor_in_query=False, rcvbuf=0, host="127.0.0.1",
                 origin=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        q = {}
        if token:
            q["token"] = token
        if cursor and cursor_in_query:
            q["last_event_id"] = cursor
        path = "/v1/events" + ("?" + urllib.parse.urlencode(q) if q else "")
        req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        req += "Accept: text/event-stream\r\n"
        if origin:
            req += f"Origin: {origin}\r\n"
        if bearer:
            req += f"Authorization: Bearer {bearer}\r\n"
        if cursor and not cursor_in_query:
            req += f"Last-Event-ID: {cursor}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the answer's head")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in
                        (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        self.cursor = cursor  # the last id received
        self.session_id = self.secret = None
        self.eof = False

    def _block(self, deadline):
        """One complete SSE block (without its blank line), or None."""
        while b"\n\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or self.eof:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            except ConnectionError:
                chunk = b""
            if not chunk:
                self.eof = True
                return None
            self.buf += chunk
        block, self.buf = self.buf.split(b"\n\n", 1)
        return block.decode()

    def next(self, timeout=10):
        block = self._block(time.time() + timeout)
        if block is None:
            return {"event": "end"} if self.eof else None
        fields = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                fields.setdefault("comment", line[1:].strip())
                continue
            k, _, v = line.partition(":")
            fields[k] = v[1:] if v.startswith(" ") else v
        if "id" in fields:
            self.cursor = fields["id"]
        kind = fields.get("event", "message")
        if "data" not in fields:
            return {"event": "ping"}
        if kind == "session":
            d = json.loads(fields["data"])
            self.session_id, self.secret = d["session_id"], d["secret"]
            return dict(d, event="session", id=fields.get("id"))
        if kind == "close":
            return dict(json.loads(fields["data"]), event="close")
        payload = base64.b64decode(fields["data"], validate=True)
        return {"event": "frame", "id": fields.get("id"),
                "frame": decode_frame(payload)}

    def expect(self, kind, timeout=10):
        """The next event that is not a ping; it must be of kind."""
        deadline = time.time() + timeout
        while True:
            ev = self.next(max(0.01, deadline - time.time()))
            if ev is None:
                raise TimeoutError(f"no {kind} event within {timeout} s")
            if ev["event"] != "ping":
                break
        if ev["event"] != kind:
            raise AssertionError(f"expected {kind}, got {ev}")
        return ev

    def frame(self, timeout=10, ftype=None):
        """The next frame (of ftype), skipping pings and other frames."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ev = self.next(max(0.01, deadline - time.time()))
            if ev is None:
                break
            if ev["event"] in ("end", "close"):
                raise ConnectionError(f"stream ended: {ev}")
            if ev["event"] == "frame" and (
                    ftype is None or ev["frame"]["type"] == ftype):
                return ev["frame"]
        raise TimeoutError(f"no {ftype or 'frame'} within {timeout} s")

    def cut(self):
        """Drop the connection at once (what is unread is lost)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        finally:
            self.sock.close()


def post(port, token, session_id, secret, frames=None, body=None,
         host="127.0.0.1", conn=None):
    """POST /v1/send; (status, parsed JSON body or None). With conn (an
    http.client.HTTPConnection), on that kept-alive connection."""
    if body is None:
        body = delimited(frames)
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if session_id:
        headers["X-Parley-Session"] = session_id
    if secret:
        headers["X-Parley-Secret"] = secret
    c = conn or http.client.HTTPConnection(host, port, timeout=10)
    try:
        c.request("POST", "/v1/send", body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data.strip() else None)
    finally:
        if conn is None:
            c.close()
