#!/usr/bin/env bash
# Builds localhost/onnxops-kind-base:KIND_VERSION-RELEASE with podman (runc) from the Debian base
# of hack/images/base.sh, Debian's systemd, runc and CNI plugins, and kind's node layout taken
# from its Go module (base.Containerfile). Cached: an image labelled with the same digest of its
# inputs (Containerfile, kind's files, the base image's ID) is reused. Prints the image.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
log() { echo "kind-base: $*" >&2; }
die() { log "$*"; exit 1; }
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind"
image="localhost/onnxops-kind-base:$KIND_VERSION-$DEBIAN_RELEASE"
CONTAINERS_CONF="$(bash "$here/host.sh" | tail -n1)"
export CONTAINERS_CONF

base="$(DEBIAN_RELEASE=$DEBIAN_RELEASE bash "$root/hack/images/base.sh" | tail -n1)"
kind_dir="$(bash "$here/module.sh" sigs.k8s.io/kind "$KIND_VERSION")"
files="$kind_dir/images/base/files"
[[ -d $files ]] || die "$files missing: kind $KIND_VERSION's module has no images/base/files"

digest="$( { cat "$here/base.Containerfile"; podman image inspect --format '{{.Id}}' "$base"
  (cd "$files" && find . -type f | LC_ALL=C sort | xargs sha256sum); } | sha256sum | cut -c1-16)"
if [[ "$(podman image inspect --format '{{index .Labels "onnxops.inputs"}}' "$image" 2>/dev/null)" == "$digest" ]]; then
  echo "$image"
  exit 0
fi
context="$(mktemp -d "${TMPDIR:-/tmp}/kind-base.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp -r "$files" "$context/files"
chmod -R u+w "$context"
log "building $image from $base (apt from deb.debian.org; a first build takes minutes)"
old="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
start=$SECONDS
nice -n 19 ionice -c3 podman build --runtime runc --format docker --pull=never \
  --build-arg "BASE=$base" --label "onnxops.inputs=$digest" \
  -f "$here/base.Containerfile" -t "$image" "$context" >&2
# The image this one replaces, unless a container or a child image still uses it.
[[ -z $old ]] || podman rmi "$old" >/dev/null 2>&1 || true
log "built $image in $((SECONDS - start))s"
echo "$image"
