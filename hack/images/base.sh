#!/usr/bin/env bash
# Makes the images' Debian base without a registry: debootstrap --variant=minbase of this
# machine's Debian release plus Python 3, imported into podman (or ENGINE=docker) as
# localhost/onnxops-debian-base:RELEASE (printed on the last line of stdout). Made once per machine: an existing image is reused, and the rootfs
# tarball is kept in ~/.cache/onnxops/images/ so a pruned image is re-imported in seconds.
set -euo pipefail
log() { echo "images-base: $*" >&2; }
die() { log "$*"; exit 1; }

release="${DEBIAN_RELEASE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}"
[[ -n $release ]] || die "cannot tell the Debian release from /etc/os-release: set DEBIAN_RELEASE"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv: the Dockerfiles build a venv; ca-certificates: models fetched over https.
packages="python3,python3-venv,ca-certificates"
image="localhost/onnxops-debian-base:$release"
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/images"
tarball="$cache/debian-$release-minbase-python3.tar"

engine="${ENGINE:-podman}"
command -v "$engine" >/dev/null || die "$engine not found: run 'make system-deps'"
if "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
if [[ ! -s $tarball ]]; then
  command -v debootstrap >/dev/null || die "debootstrap not found: run 'make system-deps'"
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root (device nodes, chroot)"
  mkdir -p "$cache"
  rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs" "$tarball.part"' EXIT
  log "debootstrap --variant=minbase $release ($packages) from $mirror"
  debootstrap --variant=minbase --include="$packages" "$release" "$rootfs" "$mirror" >&2 ||
    die "debootstrap failed (log: $rootfs/debootstrap/debootstrap.log)"
  # What a container image needs none of: package lists, caches, docs (as the slim images do).
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
  tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
log "$engine import $tarball as $image"
"$engine" import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
echo "$image"
