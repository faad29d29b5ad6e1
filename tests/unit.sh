#!/usr/bin/env bash
# Run the unit-test binaries given as arguments, show their output, and sum
# their "N passed, N failed" lines into one total line at the end. Exits
# non-zero when any test failed or any binary crashed, hung or gave no total.
set -u

timeout_s=${UNIT_TIMEOUT:-300}
total_pass=0
total_fail=0
broken=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ $# -eq 0 ]; then
	echo "usage: $0 TEST_BINARY..." >&2
	exit 2
fi

for bin in "$@"; do
	echo "== $bin"
	if [ ! -x "$bin" ]; then
		echo "unit: $bin: not an executable file" >&2
		broken=$((broken + 1))
		continue
	fi
	case $bin in */*) run=$bin ;; *) run=./$bin ;; esac
	timeout --signal=KILL "$timeout_s" "$run" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	if [ "$rc" -eq 137 ] || [ "$rc" -eq 124 ]; then
		echo "unit: $bin: killed after ${timeout_s}s or by SIGKILL" >&2
		broken=$((broken + 1))
	elif [ "$rc" -gt 128 ]; then
		echo "unit: $bin: crashed with signal $((rc - 128))" >&2
		broken=$((broken + 1))
	elif [ -z "$summary" ]; then
		echo "unit: $bin: exited $rc without a 'N passed, N failed' line" >&2
		broken=$((broken + 1))
	else
		read -r pass _ fail _ <<<"${summary//,/}"
		total_pass=$((total_pass + pass))
		total_fail=$((total_fail + fail))
		if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
			echo "unit: $bin: exited $rc although nothing failed" >&2
			broken=$((broken + 1))
		fi
	fi
done

# A binary that crashed or hung counts as one failed test in the total.
total_fail=$((total_fail + broken))
if [ "$broken" -gt 0 ]; then
	echo "unit: $broken binary(ies) crashed, hung or gave no total" >&2
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
