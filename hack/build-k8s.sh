#!/usr/bin/env bash
# Builds etcd and the Kubernetes control-plane binaries (plus kubectl) from Go
# modules into a cache outside the repo, and reuses them when present.
# Usage: hack/build-k8s.sh [--print-dir]
set -euo pipefail

K8S_VERSION="${CASCADE_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${CASCADE_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${CASCADE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cascade}"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$BIN_DIR"
  exit 0
fi

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

if have_all; then
  echo "cascade: Kubernetes $K8S_VERSION and etcd $ETCD_VERSION binaries cached in $BIN_DIR"
  exit 0
fi

die() { echo "cascade: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH. The local control plane is built from source and needs Go 1.26 or newer (https://go.dev/dl/)."
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[[ "$go_minor" =~ ^[0-9]+$ && "$go_minor" -ge 26 ]] || die "Kubernetes ${K8S_VERSION} needs Go 1.26 or newer; found $(go env GOVERSION)."

k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"

work="$CACHE_ROOT/build"
mkdir -p "$work/k8s" "$work/etcd" "$CACHE_ROOT"
# Build into a fresh directory and move it into place at the end, so a
# concurrent or interrupted build never leaves a half-filled cache behind.
stage=$(mktemp -d "$CACHE_ROOT/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start ))s"; }

# Prints one line per 100 compiled packages instead of thousands.
progress() {
  local label=$1 n=0 line
  while IFS= read -r line; do
    case "$line" in
      *:*|*error*|*cannot*|*"go: "*) echo "  $line" ;;
      *) n=$((n + 1)); if (( n % 100 == 0 )); then echo "  [$label] $n packages compiled ($(elapsed))"; fi ;;
    esac
  done
  echo "  [$label] done: $n packages ($(elapsed))"
}

fetch_mod() {
  local mod=$1 out
  if ! out=$(cd "$work" && go mod download -json "$mod" 2>&1); then
    die "could not download $mod from the Go module proxy ($(go env GOPROXY)). Is the network or the proxy reachable?
$out"
  fi
  printf '%s\n' "$out"
}

echo "cascade: building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION into $BIN_DIR (first time only; takes a while)"

echo "cascade: [1/4] resolving k8s.io/kubernetes@$K8S_VERSION"
gomod=$(fetch_mod "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f "$gomod" ]] || die "module proxy returned no go.mod for k8s.io/kubernetes@$K8S_VERSION"

# Every staging module the upstream go.mod replaces with ./staging/src/k8s.io/X
# is published as k8s.io/X v0.<minor>.<patch>; point our module at those.
{
  echo "module cascade.local/k8s-build"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  sed -n -E 's#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+$#\t\1 => \1 '"$staging_version"'#p' "$gomod"
  echo ")"
} > "$work/k8s/go.mod"
nrep=$(grep -c '=>' "$work/k8s/go.mod" || true)
(( nrep > 10 )) || die "found only $nrep staging modules in the upstream go.mod; the layout changed?"
echo "package main" > "$work/k8s/doc.go"
echo "  $nrep staging modules pinned to $staging_version"

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitTreeState=clean"

echo "cascade: [2/4] downloading Kubernetes module dependencies"
(cd "$work/k8s" && GOFLAGS=-mod=mod go mod download k8s.io/kubernetes 2>&1) || die "downloading Kubernetes dependencies failed; is the Go module proxy reachable?"

echo "cascade: [3/4] compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ($(nproc) cores)"
set +e
(cd "$work/k8s" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "$ldflags" -o "$stage/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl 2>&1) | progress k8s
rc=${PIPESTATUS[0]}
set -e
(( rc == 0 )) || die "building Kubernetes failed (exit $rc); see the lines above."

echo "cascade: [4/4] compiling etcd $ETCD_VERSION"
printf 'module cascade.local/etcd-build\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$work/etcd/go.mod"
echo "package main" > "$work/etcd/doc.go"
set +e
(cd "$work/etcd" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$stage/etcd" go.etcd.io/etcd/server/v3 2>&1) | progress etcd
rc=${PIPESTATUS[0]}
set -e
(( rc == 0 )) || die "building etcd failed (exit $rc); see the lines above."

mkdir -p "$(dirname "$BIN_DIR")"
rm -rf "$BIN_DIR.old"
[[ -d "$BIN_DIR" ]] && mv "$BIN_DIR" "$BIN_DIR.old"
mv "$stage" "$BIN_DIR"
rm -rf "$BIN_DIR.old"
trap - EXIT
echo "cascade: built in $(elapsed): $(cd "$BIN_DIR" && ls | tr '\n' ' ')"
"$BIN_DIR/kubectl" version --client 2>/dev/null | head -1 || true
