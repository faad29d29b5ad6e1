#!/usr/bin/env python3
"""A raw-socket WebSocket client for tests that must misbehave on purpose:
bad tokens, silence, garbage frames. Standard library only; protobuf frames
are hand-encoded for the few messages the tests need.

    wsclient.py probe --port P [--token T] [--auth T] [--send-raw HEX]
                      [--send-text S] [--send ROOM BODY] [--wait S]

prints one JSON object: {"close_code": N|null, "frames": [...], "welcome": bool,
"errors": [{"code": N, "message": S}]}."""
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
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def client_frame(request_id, field, body):
    return field_varint(1, request_id) + field_bytes(field, body)


def pb_send(request_id, room, body, cmid):
    inner = field_bytes(1, cmid) + field_bytes(2, room) + field_bytes(3, body)
    return client_frame(request_id, 11, inner)


def pb_auth(request_id, token):
    return client_frame(request_id, 10, field_bytes(1, token))


def read_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def pb_fields(buf):
    """Top-level fields of a protobuf message: {num: [value, ...]}."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type")
        out.setdefault(num, []).append(val)
    return out


def describe(payload):
    """Summarise a ServerFrame for the JSON output."""
    f = pb_fields(payload)
    if 10 in f:
        return {"type": "welcome"}
    if 19 in f:
        e = pb_fields(f[19][0])
        return {"type": "error", "code": e.get(1, [0])[0],
                "message": e.get(2, [b""])[0].decode(errors="replace"),
                "retryable": bool(e.get(3, [0])[0])}
    if 11 in f:
        a = pb_fields(f[11][0])
        return {"type": "ack", "seq": a.get(3, [0])[0]}
    if 12 in f:
        return {"type": "message"}
    if 13 in f:
        r = pb_fields(f[13][0])
        return {"type": "sync_result", "last_seq": r.get(3, [0])[0],
                "event_kinds": [pb_fields(e).get(2, [0])[0]
                                for e in r.get(5, [])]}
    return {"type": "other", "fields": sorted(f)}


class Conn:
    def __init__(self, port, path="/", protocol="parley.v1", host="127.0.0.1",
                 rcvbuf=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if protocol:
            req += f"Sec-WebSocket-Protocol: {protocol}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])

    def send_frame(self, opcode, payload, fin=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + body)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("eof")
            self.buf += chunk

    def recv_frame(self, deadline):
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


def probe(args):
    token = args.token
    path = "/?token=" + token if token else "/"
    c = Conn(args.port, path, rcvbuf=args.rcvbuf)
    out = {"http_status": c.status, "close_code": None, "frames": [],
           "pings": 0}
    if c.status != 101:
        print(json.dumps(out))
        return
    if args.auth:
        c.send_frame(2, pb_auth(1, args.auth))
    if args.send_raw:
        c.send_frame(2, bytes.fromhex(args.send_raw))
    if args.send_text:
        c.send_frame(1, args.send_text.encode())
    if args.send:
        c.send_frame(2, pb_send(7, args.send[0], args.send[1], "probe-1"))
    if args.stall:
        # A reader that stops reading: wait for the Welcome, then nothing.
        op, payload = c.recv_frame(time.time() + 10)
        out["frames"].append(describe(payload))
        print("stalled", file=sys.stderr, flush=True)
        time.sleep(args.stall)
    deadline = time.time() + args.wait
    try:
        while time.time() < deadline:
            op, payload = c.recv_frame(deadline)
            if op == 8:
                out["close_code"] = (struct.unpack("!H", payload[:2])[0]
                                     if len(payload) >= 2 else 1005)
                out["close_reason"] = payload[2:].decode(errors="replace")
                break
            if op == 9:
                out["pings"] += 1
                if args.pong:  # as browsers do: the same payload back
                    c.send_frame(10, payload)
            if op == 2:
                out["frames"].append(describe(payload))
    except (socket.timeout, TimeoutError):
        pass
    except ConnectionError:
        out["eof"] = True
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe")
    pr.add_argument("--port", type=int, required=True)
    pr.add_argument("--token")
    pr.add_argument("--auth")
    pr.add_argument("--send-raw")
    pr.add_argument("--send-text")
    pr.add_argument("--send", nargs=2, metavar=("ROOM", "BODY"))
    pr.add_argument("--wait", type=float, default=3.0)
    pr.add_argument("--pong", action="store_true",
                    help="answer the server's pings")
    pr.add_argument("--rcvbuf", type=int, default=0,
                    help="SO_RCVBUF, to make a slow reader slow sooner")
    pr.add_argument("--stall", type=float, default=0,
                    help="after the Welcome, read nothing for this long")
    args = p.parse_args()
    if args.cmd == "probe":
        probe(args)


if __name__ == "__main__":
    sys.exit(main())
