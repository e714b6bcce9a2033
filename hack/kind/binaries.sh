#!/usr/bin/env bash
# Builds the node's Kubernetes binaries (kubelet, kubeadm, kube-proxy) from the k8s.io/kubernetes
# module, with the devcluster's flags, into a cache keyed by K8S_VERSION
# (~/.cache/onnxops/kind/bin-k8s-VERSION); kind (KIND_VERSION) is linked in next to them;
# containerd (CONTAINERD_VERSION) into bin-containerd-VERSION.
# hack/kind/k8s is hack/devcluster/k8s's go.mod plus what these import
# (`go get k8s.io/kubernetes/cmd/kubelet@VERSION` ...cmd/kubeadm, ...cmd/kube-proxy).
# Prints the bin directory on the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
devcluster="$here/../devcluster"
# shellcheck source=../devcluster/versions.env
source "$devcluster/versions.env"
log() { echo "kind-binaries: $*" >&2; }
die() { log "$*"; exit 1; }
command -v go >/dev/null || die "go not found on PATH"
grep -Eq "^[[:space:]]*k8s.io/kubernetes $K8S_VERSION( |\$)" "$here/k8s/go.mod" ||
  die "versions.env says $K8S_VERSION but hack/kind/k8s/go.mod requires another: update both"
bin="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind/bin-k8s-$K8S_VERSION"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
for name in kubelet kubeadm kube-proxy; do
  [[ -x $bin/$name ]] && continue
  log "building $name $K8S_VERSION ($(date +%T)); a first build takes minutes"
  start=$SECONDS
  (cd "$here/k8s" && nice -n 19 ionice -c3 go build -trimpath -ldflags "$ldflags" \
     -o "$bin/.tmp-$name" "k8s.io/kubernetes/cmd/$name") || { rm -f "$bin/.tmp-$name"; die "building $name failed"; }
  mv "$bin/.tmp-$name" "$bin/$name"
  log "$name built in $((SECONDS - start))s"
done
# kind itself, from its module (go install: its own go.mod and go.sum, no folder of ours).
source "$here/versions.env"
kind_bin="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind/bin-kind-$KIND_VERSION"
if [[ ! -x $kind_bin/kind ]]; then
  log "building kind $KIND_VERSION ($(date +%T))"
  start=$SECONDS
  GOBIN="$kind_bin" GOFLAGS=-buildvcs=false nice -n 19 ionice -c3 go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kind@$KIND_VERSION" || die "building kind failed"
  log "kind built in $((SECONDS - start))s"
fi
ln -sf "$kind_bin/kind" "$bin/kind"
# containerd, ctr and the runc shim, static (CGO off: no btrfs/devmapper/zfs snapshotters, which
# kind never selects either), from hack/kind/containerd's go.mod.
grep -Eq "^[[:space:]]*github.com/containerd/containerd/v2 $CONTAINERD_VERSION( |\$)" "$here/containerd/go.mod" ||
  die "versions.env says containerd $CONTAINERD_VERSION but hack/kind/containerd/go.mod requires another"
ctrd_bin="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind/bin-containerd-$CONTAINERD_VERSION"
mkdir -p "$ctrd_bin"
for name in containerd ctr containerd-shim-runc-v2; do
  [[ -x $ctrd_bin/$name ]] && continue
  log "building $name $CONTAINERD_VERSION ($(date +%T))"
  start=$SECONDS
  (cd "$here/containerd" && nice -n 19 ionice -c3 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
     -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
     -o "$ctrd_bin/.tmp-$name" "github.com/containerd/containerd/v2/cmd/$name") ||
    { rm -f "$ctrd_bin/.tmp-$name"; die "building $name failed"; }
  mv "$ctrd_bin/.tmp-$name" "$ctrd_bin/$name"
  log "$name built in $((SECONDS - start))s"
done
echo "$bin"
