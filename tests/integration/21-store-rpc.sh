#!/usr/bin/env bash
# parley-store RPC end to end: records produced into Kafka, ingested by the
# real store, then Sync / History / ListRooms asked over real NNG (python3
# ctypes on libnng, protoc for the wire format): paging, has_more, limits,
# unread counts, a removed member's horizon, and who may read what.
# Run by tests/run.sh, or alone (see tools/store_it.sh for the ports).
set -euo pipefail

# shellcheck source=tools/store_it.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tools/store_it.sh"
store_it_init store-rpc

# dm:alice:bob: 250 posts, alice on odd seqs. g1 (alice, bob, carol):
# 10 posts by alice, carol removed after seq 10, 5 more posts, bob reads
# up to 12 and marks 14 delivered.
{
	for i in $(seq 1 250); do
		who=bob
		[ $((i % 2)) -eq 1 ] && who=alice
		printf 'post\tdm:alice:bob\t%s\t%d\tc%d\tdm %d\n' "$who" $((1000 + i)) "$i" "$i"
	done
	printf 'create\tg1\talice\t2000\tthe team\tbob,carol\n'
	for i in $(seq 1 10); do
		printf 'post\tg1\talice\t%d\tg%d\tg1 %d\n' $((2000 + i)) "$i" "$i"
	done
	printf 'remove\tg1\talice\t2100\tcarol\n'
	for i in $(seq 11 15); do
		printf 'post\tg1\talice\t%d\tg%d\tg1 %d\n' $((2100 + i)) "$i" "$i"
	done
	printf 'read\tg1\tbob\t2200\t12\n'
	printf 'delivered\tg1\tbob\t2201\t14\n'
} >"$T/records.txt"
records=$(wc -l <"$T/records.txt")
produce <"$T/records.txt"
start_store
wait_until 60 consumed_all "$records" ||
	fail "store consumed $(consumed) of $records records"

cat >"$T/client.py" <<'EOF'
import ctypes as C, re, subprocess, sys

proto, url, mode = sys.argv[1:4]
ENVELOPE = proto + "/parley/internal/v1/envelope.proto"

nng = C.CDLL("libnng.so.1")
class Sock(C.Structure):
    _fields_ = [("id", C.c_uint32)]
nng.nng_dial.argtypes = [Sock, C.c_char_p, C.c_void_p, C.c_int]
nng.nng_send.argtypes = [Sock, C.c_char_p, C.c_size_t, C.c_int]
nng.nng_recv.argtypes = [Sock, C.c_void_p, C.POINTER(C.c_size_t), C.c_int]
nng.nng_socket_set_ms.argtypes = [Sock, C.c_char_p, C.c_int32]
nng.nng_free.argtypes = [C.c_void_p, C.c_size_t]
nng.nng_strerror.restype = C.c_char_p

def ok(rv, what):
    if rv != 0:
        raise RuntimeError("%s: %s" % (what, nng.nng_strerror(rv).decode()))

sock = Sock()
ok(nng.nng_req0_open(C.byref(sock)), "open")
ok(nng.nng_dial(sock, url.encode(), None, 0), "dial")
ok(nng.nng_socket_set_ms(sock, b"recv-timeout", 5000), "timeout")

def protoc(mode, msg, data):
    return subprocess.run(["protoc", "--%s=parley.internal.v1.%s" % (mode, msg),
                           "-I", proto, ENVELOPE], input=data,
                          capture_output=True, check=True).stdout

# protoc's text format as nested dicts of lists: {"last_seq": [5], ...}.
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
                    (v == "true" if v in ("true", "false") else
                     (int(v) if re.match(r"-?\d+$", v) else v))
            d.setdefault(name, []).append(v)
        return d, i
    return block(0)[0]

def one(d, k, default=0):
    return d.get(k, [default])[0]

def ask_raw(data):
    ok(nng.nng_send(sock, data, len(data), 0), "send")
    p, n = C.c_void_p(), C.c_size_t()
    ok(nng.nng_recv(sock, C.byref(p), C.byref(n), 1), "recv")
    r = C.string_at(p, n.value)
    nng.nng_free(p, n.value)
    return parse(protoc("decode", "StoreReply", r).decode())

def ask(text):
    return ask_raw(protoc("encode", "StoreRequest", text.encode()))

def sync(user, room, after=0, limit=0):
    return ask('user_id: "%s" sync { room_id: "%s" after_seq: %d limit: %d }'
               % (user, room, after, limit))

def history(user, room, before=0, limit=0):
    return ask('user_id: "%s" history { room_id: "%s" before_seq: %d limit: %d }'
               % (user, room, before, limit))

def page(r):
    assert "sync_result" in r, r
    sr = r["sync_result"][0]
    return ([one(m, "seq") for m in sr.get("messages", [])],
            one(sr, "last_seq"), one(sr, "has_more", False), sr)

def error(r):
    assert "error" in r, r
    e = r["error"][0]
    return one(e, "code", ""), one(e, "retryable", False)

if mode == "after-restart":
    # The store's connection died with the server: no error for that.
    seqs, last, _, _ = page(sync("alice", "dm:alice:bob", after=249))
    assert seqs == [250] and last == 250, seqs
    print("ok: first request after a PostgreSQL restart answered")
    sys.exit(0)

# Sync pages forward, 100 by default; has_more until the end.
seqs, last, more, sr = page(sync("alice", "dm:alice:bob"))
assert seqs == list(range(1, 101)) and last == 250 and more, (seqs[:3], last, more)
m = sr["messages"][0]
assert one(m, "sender_id", "") == "alice" and one(m, "client_msg_id", "") == "c1" \
    and one(m, "body", "") == "dm 1" and one(m, "ts_ms") == 1001, m
seqs, last, more, _ = page(sync("bob", "dm:alice:bob", after=200, limit=1000))
assert seqs == list(range(201, 251)) and not more, (seqs, more)
seqs, _, more, _ = page(sync("bob", "dm:alice:bob", after=0, limit=5000))
assert seqs == list(range(1, 251)) and not more, len(seqs)
seqs, _, more, _ = page(sync("bob", "dm:alice:bob", after=250))
assert seqs == [] and not more

# History pages backward, oldest first within a page.
seqs, last, more, _ = page(history("bob", "dm:alice:bob", limit=10))
assert seqs == list(range(241, 251)) and last == 250 and more, seqs
seqs, _, more, _ = page(history("bob", "dm:alice:bob", before=241, limit=10))
assert seqs == list(range(231, 241)) and more, seqs
seqs, _, more, _ = page(history("bob", "dm:alice:bob", before=5))
assert seqs == [1, 2, 3, 4] and not more, seqs
seqs, _, more, _ = page(history("bob", "dm:alice:bob", before=1))
assert seqs == [] and not more, seqs
print("ok: sync and history paging")

# A removed member reads up to when it left, and no further.
seqs, last, more, _ = page(sync("carol", "g1"))
assert seqs == list(range(1, 11)) and last == 10 and not more, (seqs, last)
seqs, last, _, _ = page(history("carol", "g1"))
assert seqs == list(range(1, 11)) and last == 10, seqs
seqs, last, _, _ = page(sync("bob", "g1", after=10))
assert seqs == [11, 12, 13, 14, 15] and last == 15, seqs

# Strangers: forbidden or not found; an unwritten DM of one's own is empty.
assert error(sync("dave", "dm:alice:bob")) == ("ERROR_CODE_FORBIDDEN", False)
assert error(history("dave", "g1")) == ("ERROR_CODE_FORBIDDEN", False)
assert error(sync("dave", "g-nope")) == ("ERROR_CODE_NOT_FOUND", False)
assert error(sync("erin", "dm:dave:zed")) == ("ERROR_CODE_NOT_FOUND", False)
seqs, last, more, _ = page(sync("dave", "dm:dave:erin"))
assert seqs == [] and last == 0 and not more
assert error(sync("no:colon", "g1"))[0] == "ERROR_CODE_BAD_REQUEST"
assert error(ask_raw(b"\xff\xff\xff"))[0] == "ERROR_CODE_BAD_REQUEST"
print("ok: authorization")

# Room lists: unread counts others' messages after the read marker.
def rooms(user):
    r = ask('user_id: "%s" list_rooms {}' % user)
    assert "room_list" in r, r
    return {one(x, "room_id", ""): x for x in r["room_list"][0].get("rooms", [])}

b = rooms("bob")
assert sorted(b) == ["dm:alice:bob", "g1"], b
g = b["g1"]
assert (one(g, "last_seq"), one(g, "read_seq"), one(g, "delivered_seq"),
        one(g, "unread"), one(g, "name", ""), one(g, "kind", "")) == \
    (15, 12, 14, 3, "the team", "ROOM_KIND_GROUP"), g
d = b["dm:alice:bob"]
assert (one(d, "last_seq"), one(d, "read_seq"), one(d, "unread"),
        one(d, "kind", "")) == (250, 0, 125, "ROOM_KIND_DIRECT"), d
a = rooms("alice")
assert one(a["dm:alice:bob"], "unread") == 125 and one(a["g1"], "unread") == 0, a
assert rooms("carol") == {}, rooms("carol")
print("ok: room lists and unread counts")

# Concurrent clients, each on its own socket, all answered right.
import threading
errors = []
def client(k):
    try:
        mine = Sock()
        ok(nng.nng_req0_open(C.byref(mine)), "open")
        ok(nng.nng_dial(mine, url.encode(), None, 0), "dial")
        ok(nng.nng_socket_set_ms(mine, b"recv-timeout", 10000), "timeout")
        for i in range(25):
            req = protoc("encode", "StoreRequest",
                         ('user_id: "bob" sync { room_id: "dm:alice:bob" '
                          'after_seq: %d limit: 3 }' % (k * 25 + i)).encode())
            ok(nng.nng_send(mine, req, len(req), 0), "send")
            p, n = C.c_void_p(), C.c_size_t()
            ok(nng.nng_recv(mine, C.byref(p), C.byref(n), 1), "recv")
            r = parse(protoc("decode", "StoreReply", C.string_at(p, n.value)).decode())
            nng.nng_free(p, n.value)
            got = [one(m, "seq") for m in r["sync_result"][0].get("messages", [])]
            a = k * 25 + i
            assert got == list(range(a + 1, min(a + 3, 250) + 1)), (a, got)
    except Exception as e:
        errors.append(e)
threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
print("ok: 8 concurrent clients, 200 requests")
EOF
python3 "$T/client.py" "$root/proto" "$PARLEY_STORE_LISTEN" all

if [ -n "$own_infra" ]; then
	deploy/local/pg.sh stop "$own_infra/pg" fast
	deploy/local/pg.sh start "$own_infra/pg" "$PARLEY_TEST_PG_PORT"
	python3 "$T/client.py" "$root/proto" "$PARLEY_STORE_LISTEN" after-restart
fi

# SIGTERM closes the RPC workers and exits 0 (under make asan: no leaks).
pid=$(cat "$T/store.pid")
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
rm -f "$T/store.pid"
[ "$rc" -eq 0 ] || fail "store exited $rc on SIGTERM"
echo "ok: SIGTERM exits 0"
