#!/usr/bin/env bash
# The test suite: unit tests, then every tests/integration/NN-*.sh against one
# real Kafka (KRaft) and one real PostgreSQL started in a temporary folder.
# Prints "N passed, N failed" last; exits non-zero on any failure.
#   tests/run.sh [--integration-only] [PATTERN]
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${PARLEY_BUILD:-build}
export PARLEY_BIN="$root/$build/bin"
unit_only=${PARLEY_UNIT_ONLY:-0}
integration_only=0
if [ "${1:-}" = "--integration-only" ]; then
	integration_only=1
	shift
fi
pattern=${1:-}
passed=0
failed=0
failed_names=()

# shellcheck source=ports.sh
source tests/ports.sh

if [ "$integration_only" = 0 ]; then
	mapfile -t units < <(find "$build/test" -type f -perm -u+x -name '*_test' | sort)
	out=$(tests/unit.sh "${units[@]}")
	status=$?
	echo "$out"
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	passed=$((passed + $(echo "$line" | awk '{print $1}')))
	failed=$((failed + $(echo "$line" | awk '{print $3}')))
	[ "$status" -eq 0 ] || failed_names+=("unit")
fi
if [ "$unit_only" = 1 ]; then
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
fi

# One Kafka and one PostgreSQL for the whole suite.
infra=$(mktemp -d /tmp/parley-test-infra.XXXXXX)
read -r kport kcport pgport < <(free_ports 3)
cleanup() {
	deploy/local/kafka.sh stop "$infra/kafka" >/dev/null 2>&1
	deploy/local/pg.sh stop "$infra/pg" immediate >/dev/null 2>&1
	rm -rf "$infra"
}
trap cleanup EXIT
echo "starting Kafka on 127.0.0.1:$kport and PostgreSQL on 127.0.0.1:$pgport"
deploy/local/kafka.sh start "$infra/kafka" "$kport" "$kcport" || exit 1
deploy/local/pg.sh start "$infra/pg" "$pgport" || exit 1
export PARLEY_TEST_KAFKA="127.0.0.1:$kport" PARLEY_TEST_PG_PORT=$pgport
# Fault tests restart the broker and the database in place.
export PARLEY_TEST_KAFKA_DIR="$infra/kafka" PARLEY_TEST_KAFKA_PORT=$kport \
	PARLEY_TEST_KAFKA_CPORT=$kcport PARLEY_TEST_PG_DIR="$infra/pg"

for t in tests/integration/[0-9][0-9]-*.sh; do
	name=$(basename "$t" .sh)
	[ -z "$pattern" ] || [[ $name == *$pattern* ]] || continue
	echo "=== $name"
	start=$(date +%s)
	if timeout 600 bash "$t"; then
		passed=$((passed + 1))
		echo "--- PASS $name ($(($(date +%s) - start)) s)"
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		echo "--- FAIL $name ($(($(date +%s) - start)) s)"
	fi
done

[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failed_names[@]} -eq 0 ]
