#!/usr/bin/env bash
# Builds the Go tools of tests/k8s once into ~/.cache/parley/k8s-tools/bin.
# Go modules come from the module proxy (versions pinned here and in
# go.mod/go.sum); later runs reuse the binaries.
#   tests/k8s/tools.sh manifests    builds kustomize and parley-k8s-check,
#                                   prints their folder
#   tests/k8s/tools.sh promtool     prints a program that runs as
#                                   `PROGRAM check metrics <FILE`
# promtool: real promtool (Prometheus PROMETHEUS_VERSION) when it is built
# already or PARLEY_PROMTOOL=build asks for it (about 8 CPU minutes and
# 500 MB of modules: it carries all of Prometheus); else parley-k8s-check,
# whose `check metrics` runs the same code, client_golang's promlint
# (tests/k8s/promlint.go).
set -euo pipefail

KUSTOMIZE_VERSION=v5.7.1
PROMETHEUS_VERSION=v0.316.0

here=$(cd "$(dirname "$0")" && pwd)
bin=${PARLEY_CACHE:-$HOME/.cache/parley}/k8s-tools/bin
mkdir -p "$bin"
export GOFLAGS=-buildvcs=false
# Go is not a Debian package here (Debian 12's is too old for k8s.io/api):
# the machine's own toolchain, where the polyglot image puts it.
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || {
	echo "k8s-tools: no go command (Go 1.24 or newer is needed)" >&2
	exit 1
}

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
		(cd "$here" && go build -mod=readonly -o "$bin/parley-k8s-check" .) >&2
		stamp parley-k8s-check "$src"
	fi
	;;
promtool)
	if [ "${PARLEY_PROMTOOL:-}" = build ] && ! built promtool $PROMETHEUS_VERSION; then
		echo "k8s-tools: building promtool $PROMETHEUS_VERSION (minutes, once)" >&2
		GOBIN=$bin go install github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION >&2
		stamp promtool $PROMETHEUS_VERSION
	fi
	if built promtool $PROMETHEUS_VERSION; then
		echo "$bin/promtool"
	else
		"$here/tools.sh" manifests >/dev/null
		echo "$bin/parley-k8s-check"
	fi
	exit 0
	;;
*)
	echo "usage: $0 manifests|promtool" >&2
	exit 2
	;;
esac
echo "$bin"
