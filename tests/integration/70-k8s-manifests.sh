#!/usr/bin/env bash
# Kubernetes manifests and the container file, offline (issue 9): kustomize
# renders both overlays, every object decodes strictly into the Kubernetes
# API types, Strimzi and CloudNativePG resources match their shapes,
# parley's deployment rules hold, the Dockerfile parses with BuildKit's
# parser and keeps its rules, and broken copies are rejected. Needs no
# cluster; see tests/k8s/check.sh.
set -euo pipefail
exec "$(dirname "$0")/../k8s/check.sh"
