#!/usr/bin/env bash
# Builds the images kubeadm runs on a node, from binaries built here, into podman under the names
# kubeadm looks for (registry.k8s.io/NAME:TAG), and saves them in one archive for
# `ctr -n k8s.io images import`: kube-apiserver, kube-controller-manager and kube-scheduler
# (the devcluster's builds), etcd (the devcluster's, tagged as itself: kubeadm is told its tag),
# pause compiled from the C source in the k8s.io/kubernetes module, each the one static binary on
# PATH; and kube-proxy (binaries.sh) on the Debian base with iptables. Cached by a digest of the
# inputs: prints the archive.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../devcluster/versions.env
source "$root/hack/devcluster/versions.env"
log() { echo "kind-images: $*" >&2; }
die() { log "$*"; exit 1; }
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind"
bin="$(bash "$root/hack/devcluster/build.sh" | tail -n1)"
# kubeadm's own pause version (PauseVersion in cmd/kubeadm/app/constants).
PAUSE_VERSION=3.10.2
pause="$cache/pause-$PAUSE_VERSION/pause"
if [[ ! -x $pause ]]; then
  command -v gcc >/dev/null || die "gcc not found (pause is C): apt-get install gcc libc6-dev"
  src="$(cd "$here/k8s" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  mkdir -p "${pause%/*}"
  # The flags of the module's build/pause/Makefile.
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-$K8S_VERSION" -o "$pause.tmp" "$src"
  strip "$pause.tmp"; mv "$pause.tmp" "$pause"
fi
etcd_tag="${ETCD_VERSION#v}-0"
images=(
  "kube-apiserver:$K8S_VERSION=$bin/kube-apiserver"
  "kube-controller-manager:$K8S_VERSION=$bin/kube-controller-manager"
  "kube-scheduler:$K8S_VERSION=$bin/kube-scheduler"
  "etcd:$etcd_tag=$bin/etcd"
  "pause:$PAUSE_VERSION=$pause"
)
kbin="$(bash "$here/binaries.sh" | tail -n1)"
debian="$(bash "$root/hack/images/base.sh" | tail -n1)"
digest="$( { cat "$0" "$here/kube-proxy.Containerfile" "${images[@]#*=}" "$kbin/kube-proxy"
  podman image inspect --format '{{.Id}}' "$debian"; } | sha256sum | cut -c1-16)"
archive="$cache/images-$K8S_VERSION-$digest.tar"
if [[ -s $archive ]]; then echo "$archive"; exit 0; fi
names=()
work="$(mktemp -d "${TMPDIR:-/tmp}/kind-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for entry in "${images[@]}"; do
  name="registry.k8s.io/${entry%%=*}"; file="${entry#*=}"
  rm -rf "$work/root"; mkdir -p "$work/root/usr/local/bin" "$work/root/tmp"
  cp "$file" "$work/root/usr/local/bin/"
  changes=(--change "ENV PATH=/usr/local/bin:/usr/bin:/bin")
  if [[ $name == */pause:* ]]; then
    ln -s usr/local/bin/pause "$work/root/pause"
    changes+=(--change 'ENTRYPOINT ["/pause"]')
  fi
  tar --numeric-owner --owner=0 --group=0 -C "$work/root" -cf "$work/image.tar" .
  old="$(podman image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)"
  podman import -q "${changes[@]}" "$work/image.tar" "$name" >/dev/null
  [[ -z $old ]] || podman rmi "$old" >/dev/null 2>&1 || true  # the one it replaced, if unused
  log "built $name from $file"
  names+=("$name")
done
# kube-proxy execs iptables and conntrack: the Debian base with them (kube-proxy.Containerfile).
name="registry.k8s.io/kube-proxy:$K8S_VERSION"
rm -rf "$work/root"; mkdir -p "$work/root"; cp "$kbin/kube-proxy" "$work/root/"
old="$(podman image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)"
CONTAINERS_CONF="$(bash "$here/host.sh" | tail -n1)" nice -n 19 ionice -c3 podman build -q \
  --runtime runc --format docker --pull=never --build-arg "BASE=$debian" \
  -f "$here/kube-proxy.Containerfile" -t "$name" "$work/root" >/dev/null
[[ -z $old ]] || podman rmi "$old" >/dev/null 2>&1 || true
log "built $name from $kbin/kube-proxy"
names+=("$name")
rm -f "$cache"/images-"$K8S_VERSION"-*.tar
podman save --format docker-archive -m -o "$archive.tmp" "${names[@]}" 2>/dev/null
mv "$archive.tmp" "$archive"
log "saved ${#names[@]} images in $archive ($(du -m "$archive" | cut -f1) MiB)"
echo "$archive"
