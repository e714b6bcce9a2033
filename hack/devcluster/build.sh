#!/usr/bin/env bash
# Builds the devcluster binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from Go modules into a cache outside the work tree,
# keyed by version, so a fresh clone on the same machine reuses them.
# Prints the bin directory on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/devcluster"
bin="$cache/bin-k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$bin"
export CGO_ENABLED=0
# Go fetches the modules through the proxy; GOFLAGS keeps go.mod as committed.
export GOFLAGS=-mod=mod

log() { echo "devcluster-build: $*" >&2; }
built=()

build() { # name module-dir packages...
  local name="$1" dir="$2"; shift 2
  if [[ -x "$bin/$name" ]]; then return; fi
  built+=("$name")
  log "building $name ($(date +%T)); the first build takes several minutes"
  local start=$SECONDS
  (cd "$here/$dir" && go build -trimpath -ldflags "$LDFLAGS" -o "$bin/.tmp-$name" "$@")
  mv "$bin/.tmp-$name" "$bin/$name"
  log "$name built in $((SECONDS - start))s"
}

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
((${#built[@]})) || log "all binaries cached in $bin"
echo "$bin"
