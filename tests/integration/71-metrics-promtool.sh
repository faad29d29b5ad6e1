#!/usr/bin/env bash
# Every service's /metrics (parley-api's too) passes `promtool check
# metrics` (issue 9), after some traffic so counters and histograms have
# values, and carries the metrics deploy/README.md's alerts and the HPAs
# use. With PARLEY_LOG_LEVEL debug, one message's trace id appears in the
# gateway's, the router's and the store's logs. promtool is built once
# from the Go module proxy (tests/k8s/tools.sh promtool, cached in
# ~/.cache/parley/k8s-tools).
set -euo pipefail
PARLEY_LOG_LEVEL=debug
. "$(dirname "$0")/../lib.sh"
lib_init promtool
promtool=$("$(dirname "$0")/../k8s/tools.sh" promtool)
echo "checking with $promtool check metrics"

ROUTER_HTTP=$(free_port)
STORE_HTTP=$(free_port)
PRESENCE_HTTP=$(free_port)
API_HTTP=$(free_port)
pusher_init
PARLEY_HTTP_PORT=$PRESENCE_HTTP start_presence
PARLEY_HTTP_PORT=$STORE_HTTP start_store
PARLEY_HTTP_PORT=$ROUTER_HTTP start_router 1
start_gateway 1
start_pusher
PARLEY_HTTP_PORT=$API_HTTP start_api

wait_http() { # PORT: until /readyz answers 200 (bounded)
	for _ in $(seq 300); do
		curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "nothing ready on port $1"
}
for p in "$PRESENCE_HTTP" "$STORE_HTTP" "$ROUTER_HTTP" "$API_HTTP"; do wait_http "$p"; done

# Traffic: bob listens, alice sends three messages and reads history.
room=dm:alice:bob
export PARLEY_URL
PARLEY_URL=$(url 1)
parley listen --as bob --count 3 --timeout 60 \
	>"$T/bob.out" 2>"$T/bob.err" &
listener=$!
wait_file_line "$T/bob.err" listening 20
for i in 1 2 3; do
	parley send --as alice --id "m$i" "$room" "hello $i" \
		>>"$T/acks.out" || fail "send $i"
done
wait "$listener" || fail "bob did not get the three messages"
history_until bob "$room" 3 "$T/history.out"
[ "$(wc -l <"$T/history.out")" -eq 3 ] || fail "history lacks the messages"
# The server API: one call answered, one refused for a wrong key.
parley admin stats --timeout 10 >"$T/stats.out" || fail "admin stats"
PARLEY_API_KEY=wrong-key-0123456789abcdef parley admin stats --timeout 10 \
	>/dev/null 2>&1 && fail "a wrong API key was accepted"

declare -A endpoint=(
	[gateway]="http://127.0.0.1:$GW_PORT_1/metrics"
	[router]="http://127.0.0.1:$ROUTER_HTTP/metrics"
	[store]="http://127.0.0.1:$STORE_HTTP/metrics"
	[presence]="http://127.0.0.1:$PRESENCE_HTTP/metrics"
	[pusher]="http://127.0.0.1:$PUSHER_HTTP_PORT/metrics"
	[api]="http://127.0.0.1:$API_HTTP/metrics"
)
# What operations rely on (HPAs, alerts, dashboards), per service.
declare -A wanted=(
	[gateway]="parley_gateway_connections parley_gateway_frames_in_total parley_gateway_frames_out_total parley_gateway_sends_total parley_gateway_e2e_latency_seconds_bucket parley_gateway_delivery_batch_size_bucket parley_gateway_deliveries_total"
	[router]="parley_router_acks_total parley_router_ack_latency_seconds_bucket parley_router_deliveries_total parley_router_batch_size_bucket parley_router_produce_errors_total parley_router_consumer_lag parley_router_partitions"
	[store]="parley_store_commit_latency_seconds_bucket parley_store_batch_records_bucket parley_store_consumer_lag parley_store_sync_cache_hits_total parley_store_sync_cache_misses_total parley_store_messages_total"
	[presence]="parley_presence_sessions parley_presence_users parley_presence_gateways"
	[pusher]="parley_pusher_pushes_sent_total parley_pusher_failed_total parley_pusher_dead_tokens_total parley_pusher_queue"
	[api]="parley_api_calls_total parley_api_calls_failed_total parley_api_refused_total parley_api_calls_in_flight"
)
for svc in gateway router store presence pusher api; do
	curl -fs "${endpoint[$svc]}" >"$T/$svc.metrics" || fail "$svc: no /metrics"
	if ! "$promtool" check metrics <"$T/$svc.metrics" >"$T/$svc.promtool" 2>&1; then
		cat "$T/$svc.promtool" >&2
		fail "$svc: promtool check metrics failed"
	fi
	for m in ${wanted[$svc]}; do
		grep -q "^$m[ {]" "$T/$svc.metrics" || fail "$svc: no $m"
	done
	echo "$svc: $(grep -c '^# TYPE' "$T/$svc.metrics") metric families pass check metrics"
done

# The traffic shows up: three sends, acks, an end-to-end observation.
val() { awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }' "$T/$1.metrics"; }
[ "$(val gateway parley_gateway_sends_total)" -ge 3 ] || fail "gateway counted no sends"
[ "$(val router parley_router_acks_total)" -ge 3 ] || fail "router counted no acks"
[ "$(val gateway parley_gateway_e2e_latency_seconds_count)" -ge 1 ] ||
	fail "gateway observed no end-to-end latency"
# start_api's Stats, the admin Stats, the refused one.
[ "$(val api parley_api_calls_total)" -ge 3 ] || fail "parley-api counted no calls"
[ "$(val api parley_api_refused_total)" -ge 1 ] || fail "parley-api counted no refused call"
# Every client has gone by now; each session came up and went down.
[ "$(val presence parley_presence_version)" -ge 2 ] || fail "presence saw no session"

# One trace id from the gateway's send to the store's row.
trace=$(grep '"id":"gateway.send"' "$T/gateway1.log" | head -n 1 |
	sed -n 's/.*"trace":"\([0-9a-f]*\)".*/\1/p')
[ -n "$trace" ] || fail "no trace id in the gateway's send log"
grep -q "\"id\":\"router.ack\",\"trace\":\"$trace\"" "$T/router1.log" ||
	fail "trace $trace not in the router's log"
for _ in $(seq 100); do
	grep -q "\"id\":\"store.row\",\"trace\":\"$trace\"" "$T/store.log" && break
	sleep 0.1
done
grep -q "\"id\":\"store.row\",\"trace\":\"$trace\"" "$T/store.log" ||
	fail "trace $trace not in the store's log"
echo "trace $trace: gateway send, router ack, store row"
