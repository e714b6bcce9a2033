#!/usr/bin/env bash
# Prepares this host for kind's podman provider, idempotently, and prints on the last line of
# stdout the containers.conf that kind's podman calls need: export it as CONTAINERS_CONF
# (kind shells out to podman and passes neither --runtime nor --ulimit).
set -euo pipefail
log() { echo "kind-host: $*" >&2; }
die() { log "$*"; exit 1; }
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind"
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo

# kind mounts /lib/modules read-only into every node (--volume /lib/modules:/lib/modules:ro) and
# podman refuses a missing source ("statfs /lib/modules: no such file or directory"). A kernel
# built without modules has none: an empty directory is true for it (nothing to modprobe).
if [[ ! -d /lib/modules ]]; then
  log "creating an empty /lib/modules (this kernel has no modules; kind mounts the folder)"
  $SUDO mkdir -p /lib/modules
fi

command -v podman >/dev/null || die "podman not found: run 'make system-deps'"
command -v runc >/dev/null || die "runc not found: run 'make system-deps'"
# Limits at the host's hard limits: raising a limit above them needs CAP_SYS_RESOURCE, which
# this machine's root lacks (runc: "error setting rlimit type 6: operation not permitted").
# nproc at most 32768: podman's conmon runs with that hard limit whatever the shell's is.
nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
[[ $nofile =~ ^[0-9]+$ ]] || nofile=1048576
[[ $nproc =~ ^[0-9]+$ ]] && ((nproc <= 32768)) || nproc=32768
conf="$cache/containers.conf"
want="# Written by hack/kind/host.sh for kind's podman provider on this host.
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]
[engine]
# runc: crun refuses hosts with cgroups in hybrid mode (\"cgroups in hybrid mode not supported\").
runtime = \"runc\""
if [[ ! -s $conf || "$(cat "$conf")" != "$want" ]]; then
  mkdir -p "$cache"
  printf '%s\n' "$want" >"$conf.tmp"
  mv "$conf.tmp" "$conf"
  log "wrote $conf (nofile $nofile, nproc $nproc, runtime runc)"
fi
echo "$conf"
