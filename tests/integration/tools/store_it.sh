# shellcheck shell=bash
# Shared set-up of the store's integration tests (sourced by 2x-store-*).
# Under tests/run.sh it uses the suite's Kafka and PostgreSQL; alone it
# starts its own on 29092/29093 and 25432 (STORE_IT_KAFKA_PORT,
# STORE_IT_KAFKA_CONTROLLER_PORT, STORE_IT_PG_PORT) and serves the store's
# NNG on STORE_IT_NNG (tcp://127.0.0.1:27301); own_infra is then set.
#   store_it_init NAME   (then: q SQL, produce < lines, wait_until ...)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root" || exit 1
build=${PARLEY_BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
own_infra=

stop_own_infra() {
	[ -n "$own_infra" ] || return 0
	deploy/local/kafka.sh stop "$own_infra/kafka" >/dev/null 2>&1 || true
	deploy/local/pg.sh stop "$own_infra/pg" immediate >/dev/null 2>&1 || true
	rm -rf "$own_infra"
	own_infra=
}

store_it_cleanup() {
	local rc=$?
	trap - EXIT
	[ -z "${T:-}" ] || stop_all
	if [ "$rc" -ne 0 ] && [ -n "${T:-}" ]; then
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "== $f" >&2
			grep -v '"debug"' "$f" | tail -n 30 >&2
		done
	fi
	[ -z "${T:-}" ] || rm -rf "$T"
	stop_own_infra
	exit "$rc"
}

store_it_infra() {
	local kport=${STORE_IT_KAFKA_PORT:-29092}
	local pgport=${STORE_IT_PG_PORT:-25432}

	own_infra=$(mktemp -d /tmp/parley-it-store-infra.XXXXXX)
	trap store_it_cleanup EXIT
	deploy/local/kafka.sh start "$own_infra/kafka" "$kport" \
		"${STORE_IT_KAFKA_CONTROLLER_PORT:-29093}"
	deploy/local/pg.sh start "$own_infra/pg" "$pgport"
	export PARLEY_TEST_KAFKA=127.0.0.1:$kport PARLEY_TEST_PG_PORT=$pgport
	export PARLEY_BIN=$build/bin
}

store_it_init() {
	[ -n "${PARLEY_TEST_KAFKA:-}" ] || store_it_infra
	# shellcheck source=../../lib.sh source-path=SCRIPTDIR
	source "$root/tests/lib.sh"
	lib_init "$1"
	trap store_it_cleanup EXIT
	if [ -n "${STORE_IT_NNG:-}" ] || [ -n "$own_infra" ]; then
		export PARLEY_STORE_LISTEN=${STORE_IT_NNG:-tcp://127.0.0.1:27301}
	fi
	db=${PARLEY_PG##*dbname=}
	db=${db%% *}
	produce_tool=$T/log_produce
	# An instrumented libparley (make asan) needs the sanitizer runtimes.
	local san=
	if nm "$build/lib/libparley.a" 2>/dev/null | grep __asan_init >/dev/null; then
		san="-fsanitize=address,undefined"
	fi
	# shellcheck disable=SC2046,SC2086
	cc -std=c11 -D_GNU_SOURCE -I"$build/gen" -Icommon -O1 $san \
		-o "$produce_tool" tests/integration/tools/log_produce.c \
		"$build/lib/libparley.a" \
		$(pkg-config --libs libprotobuf-c rdkafka) -lnng -lm -pthread
}

# q SQL: one query on the test's database, unaligned.
q() {
	psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PARLEY_TEST_PG_PORT" \
		-U parley -d "$db" -c "$1"
}

# produce < lines: records into the test's topic (see log_produce.c).
produce() {
	"$produce_tool" "$PARLEY_TEST_KAFKA" "$PARLEY_TOPIC" >>"$T/produce.log"
}

# wait_until SECONDS CMD...: until CMD succeeds.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

count() { q "SELECT count(*) FROM messages"; }
consumed() { q "SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets"; }
at_least() { [ "$(count 2>/dev/null || echo 0)" -ge "$1" ]; }
consumed_all() { [ "$(consumed 2>/dev/null || echo 0)" -eq "$1" ]; }
