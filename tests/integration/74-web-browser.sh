#!/usr/bin/env bash
# The demo page end to end in Debian's Chromium (playwright-core, headless):
# two users on two gateways chat; ticks, typing, unread badge, presence,
# reload, a gateway restart mid-chat, a group. Screenshots are kept in
# $PARLEY_WEB_ARTEFACTS (default build/test-artefacts/web-browser).
source "$(dirname "$0")/../lib.sh"
lib_init web-browser
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${PARLEY_BUILD:-build}

[ -x "${PARLEY_CHROMIUM:-/usr/bin/chromium}" ] ||
	fail "no Chromium at ${PARLEY_CHROMIUM:-/usr/bin/chromium} (deploy/local/deps.sh installs it)"
make -C "$root" --no-print-directory -s web BUILD="$build" >"$T/make-web.log" 2>&1 ||
	{ cat "$T/make-web.log" >&2; fail "make web failed"; }
export PARLEY_WEB_ARTEFACTS=${PARLEY_WEB_ARTEFACTS:-$root/$build/test-artefacts/web-browser}
rm -rf "$PARLEY_WEB_ARTEFACTS"
export PARLEY_GATEWAY_WEB_DIR="$root/$build/web" PARLEY_DEV_TOKENS=1
start_stack
export T GW_PORT_1 GW_NNG_1 GW_PORT_2 GW_NNG_2 ROUTER_URLS PARLEY_BIN
cd "$root/clients/web"
timeout 300 node --test test/browser.test.mjs 2>&1 | tee "$T/node-test.log"
echo "screenshots: $PARLEY_WEB_ARTEFACTS"
