#!/usr/bin/env bash
# Builds the helm CLI from its Go module into a cache outside the repo (beside
# the Kubernetes binaries of hack/build-k8s.sh), and reuses it when present.
# The chart tests (helm lint, helm template, helm install) run this binary.
# Usage: hack/build-helm.sh [--print-path]
set -euo pipefail

HELM_VERSION="${CASCADE_HELM_VERSION:-v4.3.2}"
CACHE_ROOT="${CASCADE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cascade}"
HELM_BIN="$CACHE_ROOT/helm-$HELM_VERSION/bin/helm"

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$HELM_BIN"
  exit 0
fi
if [[ -x "$HELM_BIN" ]]; then
  echo "cascade: helm $HELM_VERSION cached at $HELM_BIN"
  exit 0
fi

die() { echo "cascade: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH; helm is built from its Go module and needs Go 1.26 or newer."

major="${HELM_VERSION%%.*}"
work="$CACHE_ROOT/build/helm"
mkdir -p "$work" "$(dirname "$(dirname "$HELM_BIN")")"
stage=$(mktemp -d "$CACHE_ROOT/.stage-helm.XXXXXX")
trap 'rm -rf "$stage"' EXIT
start=$(date +%s)

printf 'module cascade.local/helm-build\n\ngo 1.26\n\nrequire helm.sh/helm/%s %s\n' "$major" "$HELM_VERSION" > "$work/go.mod"
echo "package main" > "$work/doc.go"
echo "cascade: building helm $HELM_VERSION from helm.sh/helm/$major (first time only)"
(cd "$work" && GOFLAGS=-mod=mod go mod download "helm.sh/helm/$major" 2>&1) || die "downloading helm.sh/helm/$major@$HELM_VERSION failed; is the Go module proxy reachable?"
set +e
out=$(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
  -o "$stage/helm" "helm.sh/helm/$major/cmd/helm" 2>&1)
rc=$?
set -e
(( rc == 0 )) || die "building helm failed (exit $rc):
$out"
mkdir -p "$(dirname "$HELM_BIN")"
mv "$stage/helm" "$HELM_BIN"
echo "cascade: helm $HELM_VERSION built in $(( $(date +%s) - start ))s: $HELM_BIN"
