#!/usr/bin/env bash
# `make run`: Kafka and PostgreSQL in var/, then every parley process under a
# small supervisor that restarts a process that dies (with backoff), as
# Kubernetes would. Ctrl-C stops everything; the data stays in var/.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${PARLEY_BIN:-$root/build/bin}
var=${PARLEY_VAR:-$root/var}
logs=$var/log
mkdir -p "$logs"

# Every port below moves by PARLEY_PORT_OFFSET (0), so a second copy can
# run beside the first (the run-command test does).
o=${PARLEY_PORT_OFFSET:-0}
kafka_port=$((9092 + o))
pg_port=$((5433 + o))
gw1=$((8080 + o))
gw2=$((8081 + o))
nng() { echo "tcp://127.0.0.1:$(($1 + o))"; }
export PARLEY_JWT_SECRET=${PARLEY_JWT_SECRET:-parley-dev-secret-not-for-production}
export PARLEY_KAFKA_BROKERS=127.0.0.1:$kafka_port
export PARLEY_PG="host=127.0.0.1 port=$pg_port dbname=parley user=parley"
export PARLEY_ROUTERS="$(nng 7201),$(nng 7202)"
export PARLEY_STORE_LISTEN=$(nng 7301) PARLEY_STORE_URL=$(nng 7301)
export PARLEY_PRESENCE_LISTEN=$(nng 7401) PARLEY_PRESENCE_URL=$(nng 7401)
export PARLEY_PRESENCE_PUB=$(nng 7402)
export PARLEY_PUSHER_LISTEN=$(nng 7501) PARLEY_PUSHER_URL=$(nng 7501)
export PARLEY_LOG_LEVEL=${PARLEY_LOG_LEVEL:-info}
# The demo page (built by `make web` into build/web) at http://127.0.0.1:8080/
# with dev tokens on so that it can sign in as anyone: local use only.
export PARLEY_GATEWAY_WEB_DIR=${PARLEY_GATEWAY_WEB_DIR:-$(dirname "$bin")/web}
export PARLEY_DEV_TOKENS=${PARLEY_DEV_TOKENS:-1}

stopping=0
children=()

# supervise NAME CMD...: run CMD, restarting it with backoff when it dies.
supervise() {
	local name=$1 delay=1 started
	shift
	trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
	while :; do
		started=$(date +%s)
		"$@" >>"$logs/$name.log" 2>&1 &
		pid=$!
		wait "$pid" && status=0 || status=$?
		[ $(($(date +%s) - started)) -lt 60 ] || delay=1
		echo "parley: $name exited with $status; restarting in ${delay}s" >&2
		sleep "$delay"
		delay=$((delay * 2 > 30 ? 30 : delay * 2))
	done
}

run() { # run NAME [VAR=VALUE...] -- BINARY
	local name=$1
	shift
	supervise "$name" env "$@" &
	children+=($!)
}

shutdown() {
	[ "$stopping" = 0 ] || return
	stopping=1
	echo
	echo "parley: stopping (data stays in var/)"
	for pid in "${children[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	wait "${children[@]}" 2>/dev/null || true
	deploy/local/kafka.sh stop "$var/kafka" || true
	deploy/local/pg.sh stop "$var/pg" fast || true
	exit 0
}
trap shutdown INT TERM

deploy/local/kafka.sh start "$var/kafka" "$kafka_port" $((kafka_port + 1))
deploy/local/pg.sh start "$var/pg" "$pg_port"

run presence PARLEY_HTTP_PORT=$((9401 + o)) "$bin/parley-presence"
run store PARLEY_HTTP_PORT=$((9301 + o)) "$bin/parley-store"
run pusher PARLEY_HTTP_PORT=$((9501 + o)) "$bin/parley-pusher"
run router1 PARLEY_ROUTER_LISTEN="$(nng 7201)" PARLEY_HTTP_PORT=$((9201 + o)) \
	"$bin/parley-router"
run router2 PARLEY_ROUTER_LISTEN="$(nng 7202)" PARLEY_HTTP_PORT=$((9202 + o)) \
	"$bin/parley-router"
run gateway1 PARLEY_GATEWAY_PORT=$gw1 PARLEY_GATEWAY_NNG="$(nng 7101)" \
	"$bin/parley-gateway"
run gateway2 PARLEY_GATEWAY_PORT=$gw2 PARLEY_GATEWAY_NNG="$(nng 7102)" \
	"$bin/parley-gateway"
# The server API (docs/SERVER_API.md): `parley admin` talks to it.
export PARLEY_API_KEY=${PARLEY_API_KEY:-parley-dev-api-key-not-for-production}
run api PARLEY_API_LISTEN="$(nng 7601)" PARLEY_API_NNG="$(nng 7602)" \
	PARLEY_HTTP_PORT=$((9601 + o)) "$bin/parley-api"

for _ in $(seq 300); do
	curl -fs "http://127.0.0.1:$gw1/readyz" >/dev/null 2>&1 &&
		curl -fs "http://127.0.0.1:$gw2/readyz" >/dev/null 2>&1 && break
	sleep 0.2
done

cat <<EOF

parley is up.
  demo page: http://127.0.0.1:$gw1/  (open two windows, sign in as two users;
             dev tokens are ON: anyone reaching port $gw1 can sign in as anyone)
  gateways:  ws://127.0.0.1:$gw1/  ws://127.0.0.1:$gw2/   (subprotocol parley.v1)
  health:    http://127.0.0.1:$gw1/livez  /readyz  /metrics
  server API: $(nng 7601)  (PARLEY_API_URL for \`parley admin\`, PARLEY_API_KEY)
  logs:      $logs/*.log     data: $var/kafka, $var/pg
  CLI:       export PARLEY_JWT_SECRET=$PARLEY_JWT_SECRET
             build/bin/parley listen --as bob
             build/bin/parley send --as alice dm:alice:bob "hi"
Ctrl-C stops everything.
EOF
while :; do
	sleep 1 &
	wait $! || true
done
