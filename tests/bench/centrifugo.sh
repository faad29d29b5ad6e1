#!/usr/bin/env bash
# Installs the benchmark's peer, Centrifugo v6.9.1, from the Go module proxy
# into ~/.cache/parley/centrifugo-6.9.1/ (once) and prints the binary's path.
set -euo pipefail
version=6.9.1
dir=${PARLEY_CACHE:-$HOME/.cache/parley}/centrifugo-$version
bin=$dir/centrifugo
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "v$version"; then
	echo "$bin"
	exit 0
fi
command -v go >/dev/null || { echo "centrifugo.sh: needs the Go toolchain (go)" >&2; exit 1; }
mkdir -p "$dir"
echo "centrifugo.sh: building Centrifugo v$version (a few minutes, once)" >&2
GOFLAGS=-mod=mod GOBIN=$dir go install \
	-ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$version" \
	"github.com/centrifugal/centrifugo/v6@v$version" >&2
echo "$bin"
