#!/usr/bin/env python3
"""Connection-level probes for the security tests (tests/integration/7x):
open a parley.v1 WebSocket with a chosen Origin, open many at once from one
IP, or send frames faster than the rate limit, and report close codes and
error codes as one JSON object on stdout."""
import argparse
import base64
import json
import os
import socket
import struct
import sys
import time


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, wire, data):
    key = varint(num << 3 | wire)
    return key + (varint(len(data)) + data if wire == 2 else varint(data))


def list_rooms(request_id):
    # ClientFrame{request_id, list_rooms (18): {}}
    return field(1, 0, request_id) + field(18, 2, b"")


class Ws:
    def __init__(self, port, token=None, origin=None, host=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        host = host or f"127.0.0.1:{port}"
        path = "/?token=" + token if token else "/"
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: parley.v1\r\n")
        if origin:
            req += f"Origin: {origin}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])

    def send(self, payload):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else
                               bytes([0x80 | 126]) + struct.pack("!H", n))
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + body)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("eof")
            self.buf += chunk

    def recv(self, deadline):
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 & 0x0F, payload

    def until_close(self, seconds):
        """(close code or None, error codes seen) within seconds."""
        deadline, errors = time.time() + seconds, []
        try:
            while time.time() < deadline:
                op, p = self.recv(deadline)
                if op == 8:
                    code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
                    return code, errors
                if op == 2 and p.find(bytes([0x9a, 0x01])) >= 0:
                    errors.append(error_code(p))
        except (socket.timeout, TimeoutError):
            pass
        except (ConnectionError, OSError):
            return "eof", errors
        return None, errors


def error_code(p):
    # ServerFrame.error is field 19 (tag 0x9a 0x01); Error.code is field 1.
    i = p.find(bytes([0x9a, 0x01]))
    j = i + 2
    ln = 0
    shift = 0
    while True:
        b = p[j]
        ln |= (b & 0x7F) << shift
        j += 1
        shift += 7
        if not b & 0x80:
            break
    sub = p[j:j + ln]
    return sub[1] if len(sub) >= 2 and sub[0] == 0x08 else 0


def cmd_origin(a):
    c = Ws(a.port, a.token, origin=a.origin, host=a.host)
    code, _ = c.until_close(a.wait)
    print(json.dumps({"http_status": c.status, "close_code": code}))


def cmd_many(a):
    """Open n connections at once (no token): how many were refused
    with which code; the others stay open until the end."""
    conns, codes = [], {}
    for _ in range(a.n):
        c = Ws(a.port)
        conns.append(c)
    for c in conns:
        code, _ = c.until_close(0.3)
        codes[str(code)] = codes.get(str(code), 0) + 1
    print(json.dumps({"codes": codes}))


def cmd_flood(a):
    """Send n ListRooms frames as fast as possible: count RATE_LIMITED
    errors and report the close code."""
    c = Ws(a.port, a.token)
    op, p = c.recv(time.time() + 10)  # Welcome
    for i in range(a.n):
        try:
            c.send(list_rooms(i + 1))
        except OSError:
            break
    code, errors = c.until_close(a.wait)
    print(json.dumps({"close_code": code,
                      "rate_limited": sum(1 for e in errors if e == 6)}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("origin")
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--token")
    o.add_argument("--origin")
    o.add_argument("--host")
    o.add_argument("--wait", type=float, default=2.0)
    m = sub.add_parser("many")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--n", type=int, required=True)
    f = sub.add_parser("flood")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--token", required=True)
    f.add_argument("--n", type=int, required=True)
    f.add_argument("--wait", type=float, default=5.0)
    a = p.parse_args()
    {"origin": cmd_origin, "many": cmd_many, "flood": cmd_flood}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
