#!/usr/bin/env bash
# Builds the Go tools of tests/k8s once into ~/.cache/parley/k8s-tools/bin
# and prints that folder. Go modules come from the module proxy (versions
# pinned here and in go.mod/go.sum); later runs reuse the binaries.
#   tests/k8s/tools.sh manifests    kustomize and parley-k8s-check
#   tests/k8s/tools.sh promtool     promtool
set -euo pipefail

KUSTOMIZE_VERSION=v5.7.1
PROMETHEUS_VERSION=v0.316.0

here=$(cd "$(dirname "$0")" && pwd)
bin=${PARLEY_CACHE:-$HOME/.cache/parley}/k8s-tools/bin
mkdir -p "$bin"
export GOFLAGS=-mod=mod

# A stamp beside each binary says which version (or source hash) built it.
built() { [ -x "$bin/$1" ] && [ "$(cat "$bin/$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$bin/$1.version"; }

case "${1:-}" in
manifests)
	if ! built kustomize $KUSTOMIZE_VERSION; then
		echo "k8s-tools: building kustomize $KUSTOMIZE_VERSION" >&2
		GOBIN=$bin go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION >&2
		stamp kustomize $KUSTOMIZE_VERSION
	fi
	src=$(cat "$here"/*.go "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
	if ! built parley-k8s-check "$src"; then
		echo "k8s-tools: building parley-k8s-check" >&2
		(cd "$here" && go build -o "$bin/parley-k8s-check" .) >&2
		stamp parley-k8s-check "$src"
	fi
	;;
promtool)
	if ! built promtool $PROMETHEUS_VERSION; then
		echo "k8s-tools: building promtool $PROMETHEUS_VERSION (a few minutes, once)" >&2
		GOBIN=$bin go install github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION >&2
		stamp promtool $PROMETHEUS_VERSION
	fi
	;;
*)
	echo "usage: $0 manifests|promtool" >&2
	exit 2
	;;
esac
echo "$bin"
