#!/usr/bin/env bash
# Builds the devcluster binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from Go modules into a cache outside the work tree,
# keyed by version, so a fresh clone on the same machine reuses them.
# Prints the bin directory on the last line of stdout.
# `build.sh karpenter` (or DEVCLUSTER_AUTOSCALER=karpenter) builds instead the optional autoscaler:
# Karpenter's KWOK provider and its CRDs, into a folder of its own keyed by KARPENTER_VERSION, and
# prints that folder. Karpenter's go.mod asks for Go >= 1.26.9, so that build runs under the Go
# toolchain GOTOOLCHAIN names (go1.27.3, which the go command fetches once through the proxy).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/devcluster"
bin="$cache/bin-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$bin"
export CGO_ENABLED=0
# Go fetches the modules through the proxy (GOCACHE and the module cache are the user's own, so
# they are reused). GOFLAGS replaces the caller's: -mod=readonly builds go.mod/go.sum as committed
# (fails rather than edits them), -buildvcs=false keeps git state out of the binaries.
export GOFLAGS="-mod=readonly -buildvcs=false"

log() { echo "devcluster-build: $*" >&2; }
die() { log "$*"; exit 1; }
command -v go >/dev/null || die "go not found on PATH: install Go ${GO_VERSION:-1.26} (https://go.dev/dl/)"

# The cache is keyed by versions.env: it must name the versions the go.mod files build.
check_version() { # module-dir module version
  grep -Eq "^[[:space:]]*(require[[:space:]]+)?$2 $3( |\$)" "$here/$1/go.mod" ||
    die "versions.env says $2 $3 but $1/go.mod requires another version: update both together"
}
check_version k8s k8s.io/kubernetes "$K8S_VERSION"
check_version etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_version kwok sigs.k8s.io/kwok "$KWOK_VERSION"
check_version karpenter sigs.k8s.io/karpenter "$KARPENTER_VERSION"

built=()
total=6
heartbeat() { # name: a line every HEARTBEAT_S while a silent go build runs
  local start=$SECONDS
  while sleep "${HEARTBEAT_S:-30}"; do log "  ... $1 still building ($((SECONDS - start))s)"; done
}
hb=""
trap '[[ -z $hb ]] || kill "$hb" 2>/dev/null' EXIT

build() { # name module-dir packages...
  local name="$1" dir="$2"; shift 2
  local step=$((${#built[@]} + 1))
  built+=("$name")
  if [[ -x "$bin/$name" ]]; then return; fi
  log "[$step/$total] building $name ($(date +%T)); a first build takes minutes per binary"
  local start=$SECONDS
  heartbeat "$name" &
  hb=$!
  if ! (cd "$here/$dir" && nice -n "${BUILD_NICE:-10}" go build -trimpath -ldflags "$LDFLAGS" -o "$bin/.tmp-$name" "$@"); then
    rm -f "$bin/.tmp-$name"
    die "building $name failed (go's output above); fix it and run: make cluster-build"
  fi
  kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true; hb=""
  mv "$bin/.tmp-$name" "$bin/$name"
  log "[$step/$total] $name built in $((SECONDS - start))s"
  fresh=1
}
fresh=0

if [[ "${1:-${DEVCLUSTER_AUTOSCALER:-}}" == karpenter ]]; then
  export GOTOOLCHAIN="${KARPENTER_GOTOOLCHAIN:-go1.27.3}"
  bin="$cache/bin-karpenter-$KARPENTER_VERSION"
  mkdir -p "$bin"
  total=1
  LDFLAGS="-s -w -X sigs.k8s.io/karpenter/pkg/operator.Version=$KARPENTER_VERSION"
  # nice: a big build on a shared machine; a first build takes about 10 minutes on 2 cores.
  build karpenter-kwok karpenter sigs.k8s.io/karpenter/kwok
  # The CRDs of the same release: the chart's (NodePool, NodeClaim, NodeOverlay, CapacityBuffer)
  # and KWOKNodeClass from the provider's API folder.
  if [[ ! -s "$bin/crds.yaml" ]]; then
    src="$(cd "$here/karpenter" && go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)/kwok"
    for f in "$src"/charts/crds/*.yaml "$src"/apis/crds/*.yaml; do
      echo "---"; cat "$f"
    done >"$bin/.tmp-crds.yaml"
    mv "$bin/.tmp-crds.yaml" "$bin/crds.yaml"
    log "karpenter CRDs written"
  fi
  ((fresh)) || log "karpenter cached in $bin"
  echo "$bin"
  exit 0
fi

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build "$c" k8s "k8s.io/kubernetes/cmd/$c"
done
LDFLAGS="-s -w"
build etcd etcd .
LDFLAGS="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok

# The kwok binary has no built-in stages (kwokctl passes them): take the upstream stage files of
# the same kwok release from its module and concatenate them into one config next to the binary.
if [[ ! -s "$bin/kwok-stages.yaml" ]]; then
  src="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$src/$f"
  done >"$bin/.tmp-kwok-stages.yaml"
  mv "$bin/.tmp-kwok-stages.yaml" "$bin/kwok-stages.yaml"
  log "kwok stages written"
fi
((fresh)) || log "all binaries cached in $bin"
echo "$bin"
