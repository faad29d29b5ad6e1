#!/usr/bin/env bash
# The web SDK (clients/web) in Node against a real stack: reconnect after
# gateway 1 is killed (and restarted), resend without duplicates, gap repair
# with Sync, resume from a cursor, receipts, terminal close codes.
# clients/web/test/sdk.test.mjs does the work (node --test).
source "$(dirname "$0")/../lib.sh"
lib_init web-sdk
root=$(cd "$(dirname "$0")/../.." && pwd)

make -C "$root" --no-print-directory -s web BUILD="${PARLEY_BUILD:-build}" >"$T/make-web.log" 2>&1 ||
	{ cat "$T/make-web.log" >&2; fail "make web failed"; }
start_stack
export T GW_PORT_1 GW_NNG_1 GW_PORT_2 GW_NNG_2 ROUTER_URLS PARLEY_BIN
cd "$root/clients/web"
timeout 240 node --test test/sdk.test.mjs 2>&1 | tee "$T/node-test.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "SDK tests failed (see above)"
