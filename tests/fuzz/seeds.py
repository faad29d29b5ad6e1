#!/usr/bin/env python3
"""Writes the seed corpus of the libFuzzer targets (tests/fuzz/README.md):
one folder per target, a few dozen small inputs each, protobuf encoded by
hand (Python 3 stdlib). Deterministic: running it again writes the same
files. Inputs that once crashed a target are kept beside the seeds as
regress-* files, which this script never touches.

    seeds.py OUT_DIR        (make fuzz-seeds: OUT_DIR = tests/fuzz/corpus)"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

SECRET = b"fuzz-secret-0123456789-0123456789"  # as in the targets


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(num, data):
    """A length-delimited field (strings, bytes, messages)."""
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def v(num, value):
    return varint(num << 3) + varint(value)


def framed(*msgs):
    """fuzz.h framing: 2-byte big-endian length, then the bytes."""
    return b"".join(struct.pack("!H", len(m)) + m for m in msgs)


def batch(*items):
    return b"".join(s(1, i) for i in items)


def token(claims, header=None, secret=SECRET):
    enc = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
    h = enc(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = enc(json.dumps(claims).encode())
    sig = enc(hmac.new(secret, h + b"." + p, hashlib.sha256).digest())
    return (h + b"." + p + b"." + sig).decode()


GOOD = token({"sub": "alice", "exp": 4102444800, "iat": 1700000000})

# ClientFrame bodies: (oneof field number, inner message).
FRAMES = {
    "send": (11, s(1, "c1") + s(2, "dm:alice:bob") + s(3, "hello")),
    "send_group": (11, s(1, "c2") + s(2, "g:0123456789abcdef01234567") +
                   s(3, "hi all")),
    "send_bad_utf8": (11, s(1, "c3") + s(2, "dm:alice:bob") +
                      s(3, b"\xc0\xaf")),
    "sync": (12, s(1, "dm:alice:bob") + v(2, 0) + v(3, 100)),
    "history": (13, s(1, "dm:alice:bob") + v(2, 50) + v(3, 10)),
    "create_room": (14, s(1, "team") + s(2, "bob") + s(2, "carol") +
                    s(3, "r1")),
    "add_members": (15, s(1, "g:0123456789abcdef01234567") + s(2, "dave")),
    "remove_member": (16, s(1, "g:0123456789abcdef01234567") +
                      s(2, "dave")),
    "leave_room": (17, s(1, "g:0123456789abcdef01234567")),
    "list_rooms": (18, b""),
    "delivered": (19, s(1, "dm:alice:bob") + v(2, 3)),
    "read": (20, s(1, "dm:alice:bob") + v(2, 3)),
    "typing": (21, s(1, "dm:alice:bob") + v(2, 1)),
    "subscribe_presence": (22, s(1, "bob") + s(1, "carol") + s(1, "bad:id")),
    "register_device": (23, s(1, "fcm") + s(2, "device-token-1")),
    "unregister_device": (24, s(1, "device-token-1")),
    "get_receipts": (25, s(1, "dm:alice:bob") + v(2, 1)),
    "get_room_presence": (26, s(1, "dm:alice:bob")),
    "sync_rooms": (27, s(1, s(1, "dm:alice:bob") + v(2, 0)) +
                   s(1, s(1, "g:0123456789abcdef01234567") + v(3, 5))),
}


def client_frame(rid, name):
    num, inner = FRAMES[name]
    return v(1, rid) + s(num, inner)


def auth(rid, tok):
    return v(1, rid) + s(10, s(1, tok))


def seeds_client_frame():
    out = {"auth_only": framed(auth(1, GOOD)),
           "auth_bad_sig": framed(auth(1, token(
               {"sub": "alice", "exp": 4102444800}, secret=b"x" * 33))),
           "auth_expired": framed(auth(1, token({"sub": "alice",
                                                 "exp": 1000}))),
           "not_auth_first": framed(client_frame(1, "send")),
           "empty_frame": framed(auth(1, GOOD), b""),
           "garbage": framed(auth(1, GOOD), b"\xff\xff\xff\xff\x01")}
    for i, name in enumerate(FRAMES):
        out[name] = framed(auth(1, GOOD), client_frame(i + 2, name))
    out["all"] = framed(auth(1, GOOD), *[client_frame(i + 2, n)
                                         for i, n in enumerate(FRAMES)])
    out["auth_twice"] = framed(auth(1, GOOD), auth(2, GOOD))
    return out


def command(name, user="alice", rid=7):
    return (s(1, user) + s(2, "0000000000000001-1") +
            s(3, "tcp://127.0.0.1:7101") + s(4, client_frame(rid, name)) +
            s(5, "trace-1"))


def seeds_envelope():
    out = {}
    for name in FRAMES:
        out["ingress_" + name] = b"\x00" + batch(command(name))
    out["ingress_all"] = b"\x00" + batch(*[command(n) for n in FRAMES])
    out["ingress_no_identity"] = b"\x00" + batch(s(4, client_frame(
        1, "send")))
    out["ingress_bad_batch"] = b"\x00\x0a\xff\xff\x03"
    store_req = s(1, "alice") + s(10, FRAMES["sync"][1])
    msg = s(1, "dm:alice:bob") + v(2, 1) + s(3, "alice") + s(4, "c1") + \
        s(5, "hello") + v(6, 1700000000000)
    store_reply = s(10, s(1, "dm:alice:bob") + s(2, msg) + v(3, 1))
    session = s(1, "alice") + s(2, "sid-1") + s(3, "tcp://127.0.0.1:7101") \
        + v(4, 1700000000000)
    report = s(1, "tcp://127.0.0.1:7101") + v(2, 1) + s(3, session)
    delivery = s(1, "sid-1") + s(2, "bob") + s(3, v(1, 0) + s(12, msg)) + \
        s(4, "sid-2")
    # The selector byte picks the type (fuzz_types in fuzz_envelope.c).
    for sel, name, body in [(1, "store_request", store_req),
                            (2, "store_reply", store_reply),
                            (3, "presence_request", s(1, report)),
                            (4, "presence_reply", s(1, session)),
                            (5, "presence_update", v(1, 1) + v(2, 5)),
                            (6, "presence_report", report),
                            (7, "delivery", delivery),
                            (8, "command", command("send"))]:
        out[name] = bytes([sel]) + body
        out[name + "_batch"] = bytes([sel]) + batch(body, body)
    return out


def record(room, actor, ts, body_num, body, origin=True):
    r = s(1, room) + s(2, actor) + v(3, ts)
    if origin:
        r += s(4, s(1, "tcp://127.0.0.1:7101") + s(2, "sid-1") + v(3, 9))
    return r + s(body_num, body)


def seeds_log_record():
    g = "g:0123456789abcdef01234567"
    dm = "dm:alice:bob"
    create = record(g, "alice", 1000, 11, s(1, "team") + s(2, "bob") +
                    s(2, "carol") + s(3, "r1"))
    post = lambda room, who, cmid, ts: record(room, who, ts, 10,
                                              s(1, cmid) + s(2, "hello"))
    return {
        "dm_posts": framed(post(dm, "alice", "c1", 1000),
                           post(dm, "bob", "c2", 1001),
                           post(dm, "alice", "c1", 1002)),
        "dm_foreign": framed(post(dm, "carol", "c1", 1000)),
        "dm_bad_id": framed(post("dm:bob:alice", "bob", "c1", 1000)),
        "group": framed(create, post(g, "bob", "c1", 1001),
                        record(g, "bob", 1002, 12, s(1, "dave")),
                        record(g, "alice", 1003, 13, s(1, "carol")),
                        record(g, "dave", 1004, 14, b""),
                        post(g, "dave", "c2", 1005),
                        record(g, "bob", 1006, 15, v(1, 1) + v(2, 1)),
                        record(g, "bob", 1007, 15, v(2, 9))),
        "group_time_back": framed(create, post(g, "alice", "c1", 5000),
                                  post(g, "bob", "c1", 10)),
        "marker_before_room": framed(record(dm, "alice", 1, 15, v(2, 4))),
        "bad_utf8": framed(record(dm, "alice", 1, 10,
                                  s(1, b"\xed\xa0\x80") + s(2, "x")),
                           post("dm:alice:\u00e9", "alice", "c", 2)),
        "no_body": framed(s(1, dm) + s(2, "alice")),
    }


def seeds_jwt():
    now = 1700000000
    out = {"good": GOOD.encode(),
           "expired": token({"sub": "alice", "exp": now - 1}).encode(),
           "none": token({"sub": "alice", "exp": now + 60},
                         {"alg": "none"}).encode(),
           "rs256": token({"sub": "alice", "exp": now + 60},
                          {"alg": "RS256", "typ": "JWT"}).encode(),
           "two_parts": b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0",
           "empty": b"..",
           "claims_good": b"\x00" + json.dumps(
               {"sub": "bob", "exp": now + 60, "iat": now}).encode(),
           "claims_nested": b"\x00" + b'{"sub":{"a":[1,2,{"b":null}]},"exp":1}',
           "claims_escapes": b"\x00" +
           b'{"sub":"al\\u0069ce","exp":1900000000,"x":"\\ud800"}',
           "claims_numbers": b"\x00" +
           b'{"sub":"bob","exp":1.9e9,"iat":-0,"n":123456789012345678901}',
           "claims_dup": b"\x00" + b'{"sub":"a","sub":"b","exp":1900000000}',
           "header_good": b"\x01" + b'{"alg":"HS256","typ":"JWT"}',
           "header_none": b"\x01" + b'{"alg":"none"}',
           "header_case": b"\x01" + b'{"alg":"hs256"}',
           "header_kid": b"\x01" + b'{"alg":"HS256","kid":"k1","crit":[]}'}
    return out


def seeds_utf8():
    return {"ascii": b"hello", "greek": "κόσμε".encode(),
            "astral": "\U0001F600".encode(), "max": b"\xf4\x8f\xbf\xbf",
            "over_max": b"\xf4\x90\x80\x80", "surrogate": b"\xed\xa0\x80",
            "overlong2": b"\xc0\xaf", "overlong3": b"\xe0\x80\xaf",
            "overlong4": b"\xf0\x80\x80\xaf", "truncated": b"\xe2\x82",
            "lone_cont": b"\x80", "ff": b"\xff", "mixed": b"a\xc3\xa9b\xe2"}


TARGETS = {"client_frame": seeds_client_frame, "envelope": seeds_envelope,
           "log_record": seeds_log_record, "jwt": seeds_jwt,
           "utf8": seeds_utf8}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus"
    for target, fn in TARGETS.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))
        for name, data in sorted(fn().items()):
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
