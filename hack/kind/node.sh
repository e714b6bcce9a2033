#!/usr/bin/env bash
# Builds the kind node image localhost/onnxops-kind-node:K8S_VERSION with podman (runc):
# node.Containerfile on the base (node-base.sh) with containerd, the kubelet and kubeadm
# (binaries.sh) and the devcluster's kubectl, then the control-plane images (images.sh)
# preloaded into its containerd the way `kind build node-image` does it (run, import, commit).
# Cached: an image labelled with the same digest of its inputs is reused. Prints the image.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../devcluster/versions.env
source "$root/hack/devcluster/versions.env"
log() { echo "kind-node: $*" >&2; }
image="localhost/onnxops-kind-node:$K8S_VERSION"
CONTAINERS_CONF="$(bash "$here/host.sh" | tail -n1)"
export CONTAINERS_CONF
base="$(bash "$here/node-base.sh" | tail -n1)"
bin="$(bash "$here/binaries.sh" | tail -n1)"
# shellcheck source=versions.env
source "$here/versions.env"
ctrd="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind/bin-containerd-$CONTAINERD_VERSION"
devbin="$(bash "$root/hack/devcluster/build.sh" | tail -n1)"
archive="$(bash "$here/images.sh" | tail -n1)"
pause="registry.k8s.io/pause:3.10.2"

digest="$( { cat "$here/node.Containerfile" "$0"; podman image inspect --format '{{.Id}}' "$base"
  sha256sum "$bin/kubelet" "$bin/kubeadm" "$devbin/kubectl" "$ctrd"/*; basename "$archive"; } | sha256sum | cut -c1-16)"
if [[ "$(podman image inspect --format '{{index .Labels "onnxops.inputs"}}' "$image" 2>/dev/null)" == "$digest" ]]; then
  echo "$image"
  exit 0
fi
start=$SECONDS
name="onnxops-kind-node-build"
context="$(mktemp -d "${TMPDIR:-/tmp}/kind-node.XXXXXX")"
cleanup() {
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  podman rmi "$image-stage" >/dev/null 2>&1 || true
  rm -rf "$context"
}
trap cleanup EXIT
cleanup; mkdir -p "$context"
cp "$bin/kubelet" "$bin/kubeadm" "$devbin/kubectl" "$ctrd/containerd" "$ctrd/ctr" \
  "$ctrd/containerd-shim-runc-v2" "$context/"
log "building $image from $base"
old="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
nice -n 19 ionice -c3 podman build --runtime runc --format docker --pull=never \
  --build-arg "BASE=$base" --build-arg "K8S_VERSION=$K8S_VERSION" --build-arg "PAUSE_IMAGE=$pause" \
  -f "$here/node.Containerfile" -t "$image-stage" "$context" >&2
log "preloading $(basename "$archive") into the node's containerd"
podman run -d --name "$name" --privileged --tmpfs /run --tmpfs /tmp --entrypoint '["sleep", "infinity"]' "$image-stage" >/dev/null
podman exec "$name" bash -c 'nohup containerd >/dev/null 2>&1 &
  for i in 1 2 3 4 5 6 7 8 9 10; do [[ -S /run/containerd/containerd.sock ]] && break; sleep 1; done
  ctr version >/dev/null'
podman exec -i "$name" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
  --all-platforms --no-unpack --digests - <"$archive" >&2
# sleep (PID 1) reaps nothing: containerd has exited once it is a zombie.
podman exec "$name" bash -c 'ctr --namespace=k8s.io images list -q | grep -v "^sha256:" >&2; pkill -x containerd
  while ps -C containerd -o stat= | grep -qv Z; do sleep 0.2; done'
podman commit -q --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change "LABEL onnxops.inputs=$digest" "$name" "$image" >/dev/null
# The image this one replaces, unless a container or a child image still uses it.
[[ -z $old ]] || podman rmi "$old" >/dev/null 2>&1 || true
log "built $image in $((SECONDS - start))s"
echo "$image"
