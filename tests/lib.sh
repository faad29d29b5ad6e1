# Helpers for integration tests (sourced). tests/run.sh starts one Kafka
# and one PostgreSQL for the suite; each test gets its own topic, consumer
# groups and database, starts real parley binaries on free loopback ports,
# and stops everything it started when it exits.
#
# Needs: PARLEY_TEST_KAFKA (brokers), PARLEY_TEST_PG_PORT, PARLEY_BIN.

set -euo pipefail

: "${PARLEY_BIN:?run integration tests through tests/run.sh}"
: "${PARLEY_TEST_KAFKA:?}" "${PARLEY_TEST_PG_PORT:?}"

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")/tools" && pwd)
# shellcheck source=ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"
export PARLEY_JWT_SECRET=integration-test-secret-0123456789
export PARLEY_KAFKA_BROKERS=$PARLEY_TEST_KAFKA
export PARLEY_LOG_LEVEL=${PARLEY_LOG_LEVEL:-info}
export PARLEY_HTTP_PORT=0 # no health/metrics servers unless a test asks
export PATH="$PARLEY_BIN:$PATH"

# lib_init NAME: a temp folder, a topic, groups and a database for this test.
lib_init() {
	T=$(mktemp -d "/tmp/parley-it-$1.XXXXXX")
	local id
	id="t_$1_$(date +%s)_$RANDOM"
	id=${id//-/_}
	export PARLEY_TOPIC="it.$id"
	export PARLEY_PARTITIONS=${PARLEY_PARTITIONS:-4}
	export PARLEY_ROUTER_GROUP="router.$id"
	export PARLEY_STORE_GROUP="store.$id"
	export PARLEY_PG="host=127.0.0.1 port=$PARLEY_TEST_PG_PORT dbname=$id user=parley"
	psql -q -h 127.0.0.1 -p "$PARLEY_TEST_PG_PORT" -U parley -d parley \
		-c "CREATE DATABASE $id" >/dev/null
	PRESENCE_PORT=$(free_port)
	PRESENCE_PUB_PORT=$(free_port)
	STORE_PORT=$(free_port)
	export PARLEY_PRESENCE_LISTEN="tcp://127.0.0.1:$PRESENCE_PORT"
	export PARLEY_PRESENCE_URL=$PARLEY_PRESENCE_LISTEN
	export PARLEY_PRESENCE_PUB="tcp://127.0.0.1:$PRESENCE_PUB_PORT"
	export PARLEY_STORE_LISTEN="tcp://127.0.0.1:$STORE_PORT"
	export PARLEY_STORE_URL=$PARLEY_STORE_LISTEN
	ROUTER_URLS=""
	trap lib_cleanup EXIT
	trap "exit 143" TERM INT
}

lib_cleanup() {
	local rc=$?
	stop_all
	# Under `make asan` a sanitizer report in any service log fails the test.
	if grep -lE "AddressSanitizer|LeakSanitizer|runtime error:" "$T"/*.log \
		>/dev/null 2>&1; then
		echo "FAIL: sanitizer report in $(grep -lE "AddressSanitizer|LeakSanitizer|runtime error:" "$T"/*.log | tr '\n' ' ')" >&2
		rc=1
	fi
	if [ "$rc" -ne 0 ]; then
		echo "--- logs of the failed test ($T) ---" >&2
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "== $f" >&2
			tail -n 30 "$f" >&2
		done
	else
		rm -rf "$T"
	fi
	exit "$rc"
}

# free_port: a port nothing listens on, and never one this test was given
# before: the kernel may hand a just-released port out again at once, and
# two services of one test then collide (a gateway's WebSocket and NNG
# ports were once the same). Callers run it in $(...), so what was given
# is kept in a file.
free_port() {
	local p given="${T:-/tmp}/.ports-given"
	for _ in $(seq 50); do
		p=$(free_ports 1)
		if ! grep -qx "$p" "$given" 2>/dev/null; then
			echo "$p" >>"$given"
			echo "$p"
			return 0
		fi
	done
	fail "no free port"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# start NAME CMD...: run a process in the background, logging to $T/NAME.log.
start() {
	local name=$1
	shift
	"$@" >>"$T/$name.log" 2>&1 &
	echo "$!" >"$T/$name.pid"
}

# stop NAME [SIGNAL]: stop one process and wait for it (bounded).
stop() {
	local pid sig=${2:-TERM}
	pid=$(cat "$T/$1.pid" 2>/dev/null) || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$T/$1.pid"
}

stop_all() {
	local f
	for f in "$T"/*.pid; do
		[ -f "$f" ] || continue
		stop "$(basename "$f" .pid)"
	done
}

start_presence() {
	start presence parley-presence
}

start_store() {
	start store parley-store
}

# start_router N: router number N with its own ingress port.
start_router() {
	local port var="ROUTER_PORT_$1"
	port=${!var:-$(free_port)}
	eval "ROUTER_PORT_$1=$port"
	case ",$ROUTER_URLS," in
	*",tcp://127.0.0.1:$port,"*) ;;
	*) ROUTER_URLS="${ROUTER_URLS:+$ROUTER_URLS,}tcp://127.0.0.1:$port" ;;
	esac
	PARLEY_ROUTER_LISTEN="tcp://127.0.0.1:$port" start "router$1" parley-router
}

# start_gateway N: gateway number N; its WebSocket port is in GW_PORT_N.
start_gateway() {
	local port nng var="GW_PORT_$1" nvar="GW_NNG_$1"
	port=${!var:-$(free_port)}
	nng=${!nvar:-$(free_port)}
	eval "GW_PORT_$1=$port GW_NNG_$1=$nng"
	PARLEY_GATEWAY_PORT=$port PARLEY_GATEWAY_NNG="tcp://127.0.0.1:$nng" \
		PARLEY_ROUTERS=$ROUTER_URLS start "gateway$1" parley-gateway
	wait_ready "$port"
}

# wait_ready PORT: until the gateway's /readyz answers 200 (bounded).
wait_ready() {
	for _ in $(seq 300); do
		if curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	fail "gateway on port $1 never became ready"
}

# start_stack: presence, store, one router, gateways 1 and 2.
start_stack() {
	start_presence
	start_store
	start_router 1
	start_gateway 1
	start_gateway 2
}

url() {
	local var="GW_PORT_$1"
	echo "ws://127.0.0.1:${!var}/"
}

# wait_file_line FILE PATTERN SECONDS: until FILE has a line matching.
wait_file_line() {
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "no line matching '$2' in $1 after $3 s"
}

# history_until USER ROOM N OUT: history of ROOM as USER into OUT, retried
# until it has at least N messages (the store follows the log) or 20 s.
history_until() {
	for _ in $(seq 100); do
		parley history --as "$1" "$2" >"$4" 2>/dev/null || true
		[ "$(wc -l <"$4")" -ge "$3" ] && return 0
		sleep 0.2
	done
	return 0
}

# wait_online ROOM USER...: until the room's owner router counts every USER
# online (a client's "listening" can precede the router hearing of it by a
# moment; a message in that moment is only repaired by a later one).
wait_online() {
	local room=$1 out
	shift
	for _ in $(seq 100); do
		out=$(parley room online --as "$1" "$room" 2>/dev/null) || true
		local ok=1 u
		for u in "$@"; do
			[[ $out == *"\"$u\""* ]] || ok=0
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	fail "router never saw $* online in $room"
}

wsclient() {
	python3 "$TOOLS/wsclient.py" "$@"
}

# json_field FILE FIELD: that field of every JSON line, one per line.
json_field() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        print(json.loads(line).get(sys.argv[2]))' "$1" "$2"
}

# pusher_init: ports and a consumer group for parley-pusher. Call it
# before start_stack so the gateways forward device registrations to it.
pusher_init() {
	PUSHER_PORT=$(free_port)
	PUSHER_HTTP_PORT=$(free_port)
	export PARLEY_PUSHER_LISTEN="tcp://127.0.0.1:$PUSHER_PORT"
	export PARLEY_PUSHER_URL=$PARLEY_PUSHER_LISTEN
	export PARLEY_PUSHER_GROUP="pusher.${PARLEY_TOPIC#it.}"
}

# start_pusher: parley-pusher with its /metrics on PUSHER_HTTP_PORT; waits
# until it is ready (database migrated, partitions assigned).
start_pusher() {
	[ -n "${PUSHER_PORT:-}" ] || pusher_init
	PARLEY_HTTP_PORT=$PUSHER_HTTP_PORT start pusher parley-pusher
	for _ in $(seq 300); do
		curl -fs "http://127.0.0.1:$PUSHER_HTTP_PORT/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "parley-pusher never became ready"
}

# pusher_metric NAME: the value of one parley-pusher metric (0 if absent).
pusher_metric() {
	curl -fs "http://127.0.0.1:$PUSHER_HTTP_PORT/metrics" 2>/dev/null |
		awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}

# start_push_provider: tests/tools/push_provider.py (FCM, APNs and webhook
# in one local HTTP server) on PROVIDER_PORT, and the pusher's provider
# settings pointing at it. Call before start_pusher.
start_push_provider() {
	PROVIDER_PORT=$(free_port)
	export PARLEY_WEBHOOK_SECRET=webhook-test-secret-0123456789
	start provider python3 "$TOOLS/push_provider.py" --port "$PROVIDER_PORT" \
		--secret "$PARLEY_WEBHOOK_SECRET"
	export PARLEY_FCM_URL="http://127.0.0.1:$PROVIDER_PORT/fcm/v1/projects/test/messages:send"
	export PARLEY_FCM_TOKEN=fcm-test-bearer
	export PARLEY_APNS_URL="http://127.0.0.1:$PROVIDER_PORT/apns"
	export PARLEY_APNS_TOKEN=apns-test-bearer PARLEY_APNS_TOPIC=dev.parley.test
	export PARLEY_WEBHOOK_URL="http://127.0.0.1:$PROVIDER_PORT/webhook"
	for _ in $(seq 50); do
		curl -fs "http://127.0.0.1:$PROVIDER_PORT/_requests" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "push provider never came up"
}

# provider_script TOKEN ANSWER...: how the provider answers TOKEN's pushes.
provider_script() {
	local token=$1
	shift
	python3 -c 'import json, sys; print(json.dumps({"token": sys.argv[1], "answers": sys.argv[2:]}))' \
		"$token" "$@" |
		curl -fs -X POST --data-binary @- "http://127.0.0.1:$PROVIDER_PORT/_script" >/dev/null
}

# provider_requests OUT: every request the provider got, as a JSON array.
provider_requests() {
	curl -fs "http://127.0.0.1:$PROVIDER_PORT/_requests" >"$1"
}

# provider_pushes TOKEN [all]: one JSON line per request the provider
# accepted (status 200) for device TOKEN, oldest first; with "all", every
# request for it whatever the answer.
provider_pushes() {
	provider_requests "$T/.provider.json"
	python3 - "$T/.provider.json" "$1" "${2:-}" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    if r["token"] == sys.argv[2] and (sys.argv[3] == "all" or r["status"] == 200):
        print(json.dumps(r, sort_keys=True))
PY
}

# start_api: parley-api (the server API) on API_PORT, its router answers
# on API_NNG; exports PARLEY_API_URL and PARLEY_API_KEY for `parley admin`
# and waits until it answers a Stats call.
start_api() {
	API_PORT=${API_PORT:-$(free_port)}
	API_NNG=${API_NNG:-$(free_port)}
	export PARLEY_API_URL="tcp://127.0.0.1:$API_PORT"
	export PARLEY_API_KEY=${PARLEY_API_KEY:-integration-api-key-0123456789}
	PARLEY_API_LISTEN=$PARLEY_API_URL \
		PARLEY_API_NNG="tcp://127.0.0.1:$API_NNG" \
		PARLEY_ROUTERS=$ROUTER_URLS start api parley-api
	for _ in $(seq 100); do
		parley admin stats --timeout 1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "parley-api never answered a Stats call"
}
