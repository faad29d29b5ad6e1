#!/usr/bin/env bash
# RFC 6455 conformance: tests/conformance/ws_conformance.py (framing,
# ping/pong, reserved bits, opcodes, fragmentation, UTF-8, close handshake,
# limits) against a real gateway, whose answers need the store and presence.
. "$(dirname "$0")/../lib.sh"
lib_init wsconf
start_presence
start_store
start_router 1
start_gateway 1
rc=0
python3 "$(dirname "$0")/../conformance/ws_conformance.py" --port "$GW_PORT_1" \
	>"$T/conformance.out" 2>&1 || rc=$?
cat "$T/conformance.out"
[ "$rc" = 0 ] || fail "RFC 6455 conformance: $(grep -c ^FAIL "$T/conformance.out") cases failed"
kill -0 "$(cat "$T/gateway1.pid")" || fail "gateway died"
echo ok
