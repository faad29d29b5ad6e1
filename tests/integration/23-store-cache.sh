#!/usr/bin/env bash
# parley-store's recent-messages cache and room events: after a burst, Syncs
# of recent pages are cache hits (read from /metrics) and every reply —
# messages, horizons of removed members, room events, errors — is identical
# byte for byte to the replies of a store with the cache off
# (PARLEY_STORE_CACHE_ROOMS=0), which then counts no hit and no miss.
# Also /readyz, /livez and the ingest metrics. Run by tests/run.sh, or
# alone (see tools/store_it.sh for the ports).
set -euo pipefail

# shellcheck source=tools/store_it.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tools/store_it.sh"
store_it_init store-cache

http_port=$(free_port)
metric() {
	curl -fs "http://127.0.0.1:$http_port/metrics" |
		awk -v m="$1" '$1 == m { print $2; found = 1 }
			END { if (!found) print "missing" }'
}
http_code() {
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/$1"
}
# stop_store_clean: SIGTERM, and the store must exit 0 (under make asan:
# no leaks, the cache included).
stop_store_clean() {
	local pid rc=0
	pid=$(cat "$T/store.pid")
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	rm -f "$T/store.pid"
	[ "$rc" -eq 0 ] || fail "store exited $rc on SIGTERM"
}
# http_is PATH CODE / metric_is NAME VALUE: for wait_until.
http_is() { [ "$(http_code "$1")" = "$2" ]; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }

# A store that cannot reach PostgreSQL is alive but not ready.
PARLEY_HTTP_PORT=$http_port \
	PARLEY_PG="host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1" \
	start nodb parley-store
wait_until 20 http_is livez 200 || fail "no /livez"
sleep 1
[ "$(http_code readyz)" = 503 ] || fail "ready without a database"
stop nodb
echo "ok: /livez 200 and /readyz 503 without PostgreSQL"

# The burst, produced while the store runs: dm:alice:bob gets 300 posts
# (the cache keeps the newest 256 per room); g1 (alice, bob, carol) gets
# membership changes between posts: dave added after 10, carol removed
# after 12 and erin added right after her removal (carol must not see
# that), bob leaves after 15.
PARLEY_HTTP_PORT=$http_port start_store
wait_until 60 http_is readyz 200 || fail "store never ready"
{
	printf 'create\tg1\talice\t500\tthe team\tbob,carol\n'
	for i in $(seq 1 300); do
		who=bob
		[ $((i % 2)) -eq 1 ] && who=alice
		printf 'post\tdm:alice:bob\t%s\t%d\tc%d\tdm %d\n' "$who" $((1000 + i)) "$i" "$i"
		if [ "$i" -le 15 ]; then
			printf 'post\tg1\talice\t%d\tg%d\tg1 %d\n' $((2000 + i)) "$i" "$i"
		fi
		case $i in
		10) printf 'add\tg1\tbob\t2010\tdave\n' ;;
		12) printf 'remove\tg1\talice\t2012\tcarol\n'
		    printf 'add\tg1\talice\t2012\terin\n' ;;
		15) printf 'leave\tg1\tbob\t2015\n' ;;
		esac
	done
} >"$T/records.txt"
records=$(wc -l <"$T/records.txt")
produce <"$T/records.txt"
wait_until 60 consumed_all "$records" ||
	fail "store consumed $(consumed) of $records records"
[ "$(q "SELECT count(*) FROM room_events")" -eq 5 ] || fail "want 5 room events"
echo "ok: $records records ingested, 5 room events stored"

cat >"$T/client.py" <<'EOF'
import ctypes as C, subprocess, sys

proto, url, out = sys.argv[1:4]
ENVELOPE = proto + "/parley/internal/v1/envelope.proto"
nng = C.CDLL("libnng.so.1")
class Sock(C.Structure):
    _fields_ = [("id", C.c_uint32)]
nng.nng_dial.argtypes = [Sock, C.c_char_p, C.c_void_p, C.c_int]
nng.nng_send.argtypes = [Sock, C.c_char_p, C.c_size_t, C.c_int]
nng.nng_recv.argtypes = [Sock, C.c_void_p, C.POINTER(C.c_size_t), C.c_int]
nng.nng_socket_set_ms.argtypes = [Sock, C.c_char_p, C.c_int32]
nng.nng_free.argtypes = [C.c_void_p, C.c_size_t]
sock = Sock()
assert nng.nng_req0_open(C.byref(sock)) == 0
assert nng.nng_dial(sock, url.encode(), None, 0) == 0
assert nng.nng_socket_set_ms(sock, b"recv-timeout", 5000) == 0

def protoc(mode, msg, data):
    return subprocess.run(["protoc", "--%s=parley.internal.v1.%s" % (mode, msg),
                           "-I", proto, ENVELOPE], input=data,
                          capture_output=True, check=True).stdout

def ask(text):
    data = protoc("encode", "StoreRequest", text.encode())
    assert nng.nng_send(sock, data, len(data), 0) == 0
    p, n = C.c_void_p(), C.c_size_t()
    assert nng.nng_recv(sock, C.byref(p), C.byref(n), 1) == 0
    r = C.string_at(p, n.value)
    nng.nng_free(p, n.value)
    return protoc("decode", "StoreReply", r).decode()

# (user, room, after_seq, limit); the cache holds dm 45..300 and g1 1..15.
queries = [l.split() for l in sys.stdin if l.strip()]
with open(out, "w") as f:
    for user, room, after, limit in queries:
        f.write("== %s %s %s %s\n" % (user, room, after, limit))
        f.write(ask('user_id: "%s" sync { room_id: "%s" after_seq: %s limit: %s }'
                    % (user, room, after, limit)))
EOF

# Pages the cache holds whole (hits), pages it does not (misses), and
# requests that need no message rows or are refused (neither).
cat >"$T/hits.txt" <<'EOF'
bob dm:alice:bob 290 0
alice dm:alice:bob 250 50
alice dm:alice:bob 44 256
bob dm:alice:bob 200 10
alice g1 0 0
carol g1 0 0
carol g1 10 0
carol g1 5 3
bob g1 12 0
dave g1 0 0
erin g1 11 2
EOF
cat >"$T/misses.txt" <<'EOF'
alice dm:alice:bob 43 10
bob dm:alice:bob 0 0
bob dm:alice:bob 0 1000
EOF
cat >"$T/neither.txt" <<'EOF'
bob dm:alice:bob 300 0
carol g1 12 0
carol g1 13 0
dave dm:alice:bob 0 0
zed g1 0 0
bob g-none 0 0
EOF
cat "$T/hits.txt" "$T/misses.txt" "$T/neither.txt" >"$T/all.txt"
ask() { python3 "$T/client.py" "$root/proto" "$PARLEY_STORE_LISTEN" "$1" <"$2"; }

hits0=$(metric parley_store_sync_cache_hits_total)
misses0=$(metric parley_store_sync_cache_misses_total)
ask "$T/hit.out" "$T/hits.txt"
hits1=$(metric parley_store_sync_cache_hits_total)
[ $((hits1 - hits0)) -eq "$(wc -l <"$T/hits.txt")" ] ||
	fail "$((hits1 - hits0)) cache hits, want $(wc -l <"$T/hits.txt")"
[ "$(metric parley_store_sync_cache_misses_total)" -eq "$misses0" ] ||
	fail "a page the cache holds missed"
ask "$T/miss.out" "$T/misses.txt"
[ $(($(metric parley_store_sync_cache_misses_total) - misses0)) -eq \
	"$(wc -l <"$T/misses.txt")" ] || fail "pages the cache lacks did not miss"
ask "$T/neither.out" "$T/neither.txt"
[ "$(metric parley_store_sync_cache_hits_total)" -eq "$hits1" ] ||
	fail "empty or refused Syncs counted as hits"
[ $(($(metric parley_store_sync_cache_misses_total) - misses0)) -eq \
	"$(wc -l <"$T/misses.txt")" ] || fail "empty or refused Syncs counted as misses"
[ "$(metric parley_store_cache_rooms)" -eq 2 ] || fail "cache_rooms"
echo "ok: $((hits1 - hits0)) Syncs answered from the cache, $(wc -l <"$T/misses.txt") from PostgreSQL"
ask "$T/cached.out" "$T/all.txt"

# The ingest and RPC metrics.
[ "$(metric parley_store_records_total)" -eq "$records" ] || fail "records_total"
[ "$(metric parley_store_messages_total)" -eq 315 ] || fail "messages_total"
[ "$(metric parley_store_room_events_total)" -eq 5 ] || fail "room_events_total"
[ "$(metric parley_store_batches_total)" -ge 1 ] || fail "batches_total"
[ "$(metric parley_store_commit_latency_seconds_count)" = \
	"$(metric parley_store_batches_total)" ] || fail "commit latency count"
[ "$(metric parley_store_batch_records_sum)" = "$records.000000" ] ||
	fail "batch size sum"
[ "$(metric 'parley_store_rpc_requests_total{kind="sync"}')" -eq \
	$((2 * $(wc -l <"$T/all.txt"))) ] || fail "rpc sync count"
wait_until 10 metric_is parley_store_consumer_lag 0 || fail "lag"
[ "$(metric parley_store_db_errors_total)" -eq 0 ] || fail "db errors"
echo "ok: ingest and RPC metrics"

# What the replies say (the same whichever way they were answered).
python3 - "$T/cached.out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = dict((b.split("\n", 1)[0], b.split("\n", 1)[1])
              for b in text.split("== ")[1:])
def seqs(k):
    return [int(re.search(r"\bseq: (\d+)", m).group(1))
            for m in re.findall(r"messages \{([^}]*)\}", blocks[k])]
def events(k):
    out = []
    for e in re.findall(r"events \{([^}]*)\}", blocks[k]):
        seq = re.search(r"\bseq: (\d+)", e)
        out.append((re.search(r"kind: (\w+)", e).group(1),
                    re.findall(r'user_ids: "([^"]*)"', e),
                    int(seq.group(1)) if seq else 0))
    return out
def last(k):
    m = re.search(r"^  last_seq: (\d+)", blocks[k], re.M)
    return int(m.group(1)) if m else 0
K = "ROOM_EVENT_KIND_"
assert seqs("bob dm:alice:bob 290 0") == list(range(291, 301))
assert seqs("alice dm:alice:bob 44 256") == list(range(45, 301))
assert seqs("bob dm:alice:bob 200 10") == list(range(201, 211))
assert "has_more: true" in blocks["bob dm:alice:bob 200 10"]
assert seqs("bob dm:alice:bob 0 1000") == list(range(1, 301))
assert seqs("carol g1 0 0") == list(range(1, 13)) and last("carol g1 0 0") == 12
assert events("carol g1 0 0") == [(K + "CREATED", ["alice", "bob", "carol"], 0),
                                  (K + "MEMBERS_ADDED", ["dave"], 10),
                                  (K + "MEMBER_REMOVED", ["carol"], 12)], \
    events("carol g1 0 0")
assert events("carol g1 10 0") == events("carol g1 0 0")[1:]
assert seqs("carol g1 5 3") == [6, 7, 8] and events("carol g1 5 3") == []
assert seqs("carol g1 12 0") == [] and \
    events("carol g1 12 0") == [(K + "MEMBER_REMOVED", ["carol"], 12)]
assert seqs("carol g1 13 0") == [] and events("carol g1 13 0") == []
assert seqs("bob g1 12 0") == [13, 14, 15]
assert events("bob g1 12 0") == [(K + "MEMBER_REMOVED", ["carol"], 12),
                                 (K + "MEMBERS_ADDED", ["erin"], 12),
                                 (K + "MEMBER_LEFT", ["bob"], 15)]
assert len(events("dave g1 0 0")) == 5 and seqs("dave g1 0 0") == list(range(1, 16))
assert seqs("erin g1 11 2") == [12, 13] and len(events("erin g1 11 2")) == 2
assert "actor_id: \"alice\"" in blocks["carol g1 12 0"]
assert "ERROR_CODE_FORBIDDEN" in blocks["dave dm:alice:bob 0 0"]
assert "ERROR_CODE_FORBIDDEN" in blocks["zed g1 0 0"]
assert "ERROR_CODE_NOT_FOUND" in blocks["bob g-none 0 0"]
print("ok: pages, horizons and room events as documented")
EOF

# The same requests with the cache off: identical replies, nothing counted.
stop_store_clean
PARLEY_HTTP_PORT=$http_port PARLEY_STORE_CACHE_ROOMS=0 start_store
wait_until 60 http_is readyz 200 || fail "uncached store never ready"
ask "$T/uncached.out" "$T/all.txt"
diff "$T/cached.out" "$T/uncached.out" >&2 ||
	fail "cached and uncached replies differ"
for i in $(seq 301 305); do
	printf 'post\tdm:alice:bob\talice\t%d\tc%d\tdm %d\n' $((1000 + i)) "$i" "$i"
done | produce
wait_until 60 consumed_all $((records + 5)) || fail "5 more records not consumed"
echo "bob dm:alice:bob 300 0" >"$T/tail.txt"
ask "$T/tail.out" "$T/tail.txt"
[ "$(grep -c '^    seq:' "$T/tail.out")" -eq 5 ] || fail "uncached tail"
for m in parley_store_sync_cache_hits_total \
	parley_store_sync_cache_misses_total parley_store_cache_rooms; do
	[ "$(metric $m)" -eq 0 ] ||
		fail "PARLEY_STORE_CACHE_ROOMS=0 did not turn the cache off ($m)"
done
echo "ok: $(wc -l <"$T/all.txt") replies identical with the cache off, which counts nothing"
stop_store_clean
echo "ok: SIGTERM exits 0"
