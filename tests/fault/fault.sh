#!/usr/bin/env bash
# Runs the fault harness (tests/fault/harness.py) against real processes.
#   tests/fault/fault.sh --short                 # CI: the fault list once
#   tests/fault/fault.sh --long --minutes 30     # soak: random faults
#   tests/fault/fault.sh --control [--unsafe]    # one router SIGSTOPped
# Other arguments go to harness.py (see its --help).
#
# Under tests/run.sh it uses the suite's Kafka and PostgreSQL (and restarts
# them in place for the broker and database faults). Alone it starts its own
# on free ports in a temporary folder and removes them at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${PARLEY_BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
own_infra=

# shellcheck source=../ports.sh
source tests/ports.sh

stop_own_infra() {
	[ -n "$own_infra" ] || return 0
	deploy/local/kafka.sh stop "$own_infra/kafka" >/dev/null 2>&1 || true
	deploy/local/pg.sh stop "$own_infra/pg" immediate >/dev/null 2>&1 || true
	rm -rf "$own_infra"
	own_infra=
}

if [ -z "${PARLEY_TEST_KAFKA:-}" ]; then
	own_infra=$(mktemp -d /tmp/parley-fault-infra.XXXXXX)
	trap stop_own_infra EXIT
	read -r kport kcport pgport < <(free_ports 3)
	deploy/local/kafka.sh start "$own_infra/kafka" "$kport" "$kcport"
	deploy/local/pg.sh start "$own_infra/pg" "$pgport"
	export PARLEY_TEST_KAFKA=127.0.0.1:$kport PARLEY_TEST_PG_PORT=$pgport
	export PARLEY_TEST_KAFKA_DIR=$own_infra/kafka PARLEY_TEST_KAFKA_PORT=$kport \
		PARLEY_TEST_KAFKA_CPORT=$kcport PARLEY_TEST_PG_DIR=$own_infra/pg
	export PARLEY_BIN=${PARLEY_BIN:-$build/bin}
fi

# shellcheck source=../lib.sh
source tests/lib.sh
lib_init fault
# lib_init's trap stops what the harness left (pid files in $T) and shows
# the logs on failure; ours also removes our own Kafka and PostgreSQL.
fault_cleanup() {
	local rc=$?
	trap - EXIT
	stop_all
	if [ "$rc" -ne 0 ]; then
		echo "--- service logs of the failed run ($T) ---" >&2
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "== $f" >&2
			grep -v '"debug"' "$f" | tail -n 20 >&2
		done
		echo "kept $T (service logs, client outputs, report.json)" >&2
	elif [ -n "${PARLEY_FAULT_KEEP:-}" ]; then
		echo "kept $T (PARLEY_FAULT_KEEP is set)" >&2
	else
		rm -rf "$T"
	fi
	stop_own_infra
	exit "$rc"
}
trap fault_cleanup EXIT
# The harness stops itself before run.sh's 600 s limit; a TERM to us
# (run.sh's timeout) is passed on so that it can clean up.
python3 tests/fault/harness.py --dir "$T" "$@" &
harness=$!
trap 'kill -TERM $harness 2>/dev/null' TERM INT
set +e
wait "$harness"
rc=$?
if [ "$rc" -gt 128 ]; then # interrupted: wait for its clean-up
	wait "$harness"
	rc=$?
fi
set -e
exit "$rc"
