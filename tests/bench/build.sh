#!/usr/bin/env bash
# Builds parley-bench and bench-floor into build/bin without the top
# Makefile (the same flags as tests/bench/bench.mk).
#   build.sh [OUTDIR]   (default build/bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${1:-${PARLEY_BUILD:-build}/bin}
mkdir -p "$out"
warn="-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla"
cc=${CC:-cc}
$cc -std=c11 -O2 -g -D_GNU_SOURCE $warn -o "$out/parley-bench" \
	tests/bench/bench.c tests/bench/conn.c tests/bench/proto.c \
	tests/bench/pb.c tests/bench/hist.c -lcrypto
if [ -f tests/bench/floor.c ]; then
	$cc -std=c11 -O2 -g -D_GNU_SOURCE $warn -o "$out/bench-floor" \
		tests/bench/floor.c -lcrypto
fi
if [ -f tests/bench/floors.c ]; then
	$cc -std=c11 -O2 -g -D_GNU_SOURCE $warn -o "$out/bench-floors" \
		tests/bench/floors.c tests/bench/hist.c -lrdkafka -lnng -pthread
fi
