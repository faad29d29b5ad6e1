#!/usr/bin/env bash
# Offline checks of the deployment files (issue 9), no cluster or container
# engine needed: builds kustomize and tests/k8s (Go modules from the module
# proxy, once, into ~/.cache/parley/k8s-tools), renders both overlays,
# decodes every object strictly against the Kubernetes API types, checks the
# Strimzi and CloudNativePG resources' shapes and parley's rules, and
# parses deploy/docker/Dockerfile with BuildKit's parser.
#   tests/k8s/check.sh          (also run by tests/integration/70-k8s-manifests.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools=$("$here/tools.sh" manifests)
out=$(mktemp -d /tmp/parley-k8s.XXXXXX)
trap 'rm -rf "$out"' EXIT

status=0
for overlay in dev prod; do
	"$tools/kustomize" build "$root/deploy/k8s/overlays/$overlay" >"$out/$overlay.yaml"
	external=parley-db-app
	# prod expects its JWT secret and API key to be made by hand (deploy/README.md).
	[ "$overlay" = prod ] && external=$external,parley-secrets,parley-api-secrets
	"$tools/parley-k8s-check" manifests -external "$external" "$out/$overlay.yaml" || status=1
done
"$tools/parley-k8s-check" dockerfile "$root/deploy/docker/Dockerfile" \
	"$root/deploy/local/deps.sh" || status=1

# The checker must fail on broken files: each case breaks one thing.
must_fail() { # NAME FILE CHECK-ARGS...
	local name=$1
	shift
	if "$tools/parley-k8s-check" "$@" >"$out/neg.log" 2>&1; then
		echo "FAIL: the checker accepted $name"
		status=1
	else
		echo "ok: rejected $name: $(head -n 1 "$out/neg.log")"
	fi
}
dev=$out/dev.yaml
mutate() { # SED-EXPR: a broken copy of the dev rendering
	sed -e "$1" "$dev" >"$out/broken.yaml"
}
mutate '0,/^  revisionHistoryLimit: 5$/s//  revisionHistoryLimit: 5\n  replicass: 2/'
must_fail "an unknown Deployment field" manifests "$out/broken.yaml"
mutate '0,/path: \/readyz/s//path: \/ready/'
must_fail "a readiness probe off /readyz" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/^  maxReplicas: 4$/  maxReplicas: 9/'
must_fail "an HPA past the partition count" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/^  partitions: 4$/  partitons: 4/'
must_fail "a misspelt KafkaTopic field" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/'
must_fail "a writable root filesystem" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/terminationGracePeriodSeconds: 45/terminationGracePeriodSeconds: 20/'
must_fail "a grace period shorter than the drain" manifests -external parley-db-app "$out/broken.yaml"
must_fail "a missing Secret" manifests "$dev"
mutate 's/^    - port: 7602$/    - port: 7603/'
must_fail "routers' answers to parley-api not admitted" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/parley\.io\/api-client: "true"/app.kubernetes.io\/name: parley/'
must_fail "parley-api open to unlabelled pods" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/tcp:\/\/$(POD_IP):7602/tcp:\/\/parley-api:7602/'
must_fail "a parley-api answer address not its own" manifests -external parley-db-app "$out/broken.yaml"
mutate 's/^  PARLEY_LOG_LEVEL: debug$/&\n  PARLEY_API_KEY: in-a-configmap-0123456789/'
must_fail "the API key in the ConfigMap" manifests -external parley-db-app "$out/broken.yaml"
{ cat "$root/deploy/docker/Dockerfile"; echo 'RUN ["/bin/true"]'; } >"$out/Dockerfile"
must_fail "a RUN in the runtime stage" dockerfile "$out/Dockerfile" "$root/deploy/local/deps.sh"
sed 's/USER 65532:65532/USER root/' "$root/deploy/docker/Dockerfile" >"$out/Dockerfile"
must_fail "a root user" dockerfile "$out/Dockerfile" "$root/deploy/local/deps.sh"
sed 's/ libpq-dev / /' "$root/deploy/docker/Dockerfile" >"$out/Dockerfile"
must_fail "a missing -dev package" dockerfile "$out/Dockerfile" "$root/deploy/local/deps.sh"
exit $status
