#!/usr/bin/env bash
# Benchmark harness smoke (issue 5): builds parley-bench, drives a few
# seconds of S2 (one sender, a room of 10 receivers over two gateways)
# against parley only, and checks that every message reached every
# receiver exactly once and that the JSON and markdown reports exist.
# No timing is asserted.
. "$(dirname "$0")/../lib.sh"
lib_init bench-smoke
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/tests/bench/build.sh" "$T/bin" >"$T/build.log" 2>&1 || fail "parley-bench does not build: $(tail -5 "$T/build.log")"
start_stack

pids=""
for f in "$T"/*.pid; do
	pids="${pids:+$pids,}$(basename "$f" .pid)=$(cat "$f")"
done
timeout 50 python3 "$root/tests/bench/run.py" smoke --attach \
	--url "$(url 1),$(url 2)" --pids "$pids" --secret "$PARLEY_JWT_SECRET" \
	--bin "$T/bin" --out "$T/bench" >"$T/bench.out" 2>"$T/bench.log" ||
	fail "run.py smoke failed: $(tail -5 "$T/bench.log")"

[ -s "$T/bench/table.md" ] || fail "no markdown table"
python3 - "$T/bench/run.json" <<'PY' || fail "smoke results wrong: $(cat "$T/bench/table.md")"
import json, sys
run = json.load(open(sys.argv[1]))
rows = [r for r in run["results"] if r["scenario"] == "S2"]
assert len(rows) == 1, rows
r = rows[0]
assert r["sent"] > 0 and r["acked"] == r["sent"], (r["sent"], r["acked"])
assert r["deliveries"] == r["sent"] * 10, (r["deliveries"], r["sent"])
assert r["loss"] == 0 and r["dup"] == 0, (r["loss"], r["dup"])
assert "p99" in r["lat_ms"] and r["cpu_s"], r
print(f"sent {r['sent']}, delivered {r['deliveries']} (x10), no loss, no duplicates")
PY
echo "ok"
