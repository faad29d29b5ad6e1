#!/usr/bin/env bash
# Runs libFuzzer targets built by `make fuzz-build`, each for SECONDS, JOBS
# at a time, from the committed seeds (tests/fuzz/corpus/TARGET, read only)
# plus what earlier runs found (DIR/corpus/TARGET). A crash, leak, timeout
# or sanitizer report fails the run; its input is kept in DIR/artifacts
# (add it to tests/fuzz/corpus/TARGET as regress-NAME once fixed).
#   run.sh --dir build/fuzz --seconds 60 [--jobs 2] TARGET...
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=build/fuzz
seconds=60
jobs=2
while [ $# -gt 0 ]; do
	case $1 in
	--dir)
		dir=$2
		shift 2
		;;
	--seconds)
		seconds=$2
		shift 2
		;;
	--jobs)
		jobs=$2
		shift 2
		;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- client_frame envelope log_record jwt utf8

run_one() {
	local t=$1 bin="$dir/bin/fuzz_$1" work="$dir/corpus/$1" log="$dir/log/$1.log"
	mkdir -p "$work" "$dir/artifacts/$t" "$dir/log"
	# ASan: no leak is tolerated either; UBSan already aborts on a finding.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-max_len=70000 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/$t/" \
		"$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1
	local rc=$?
	local runs
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $t: ok, ${runs:-?} runs in $seconds s, corpus $(ls "$work" | wc -l) + $(ls "$root/tests/fuzz/corpus/$t" | wc -l) seeds"
		return 0
	fi
	echo "fuzz $t: FAILED (exit $rc); input in $dir/artifacts/$t/, log $log:"
	grep -E 'ERROR|runtime error|Assertion|SUMMARY|Test unit written' "$log" | head -n 10
	return 1
}

failed=0
pids=()
names=()
for t in "$@"; do
	[ -x "$dir/bin/fuzz_$t" ] || {
		echo "fuzz $t: no binary (make fuzz-build)"
		failed=1
		continue
	}
	run_one "$t" &
	pids+=($!)
	names+=("$t")
	# At most $jobs at a time: wait for the oldest before starting more.
	if [ ${#pids[@]} -ge "$jobs" ]; then
		wait "${pids[0]}" || failed=1
		pids=("${pids[@]:1}")
	fi
done
for p in "${pids[@]}"; do
	wait "$p" || failed=1
done
exit "$failed"
