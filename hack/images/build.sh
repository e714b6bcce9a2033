#!/usr/bin/env bash
# Builds the serving and operator images (`make images`) with Docker where a Docker engine runs,
# and with podman otherwise. The base is the Dockerfiles' public one where its registry answers,
# else the Debian base from hack/images/base.sh. Layers are cached by the engine, so a rebuild
# after a code change redoes only the last steps.
#   ENGINE=docker|podman   force an engine        IMAGE_BASE=IMAGE   force a base
#   IMAGE_TAG (0.1.0)      IMAGE_REPO (ghcr.io/onnxops)   BUILD_FLAGS: more build options
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
log() { echo "images: $*" >&2; }
die() { log "$*"; exit 1; }

# One build at a time on this machine (the test suite's workers each ask for the images): a
# second caller waits here, then finds every layer cached and only re-tags.
lock_dir="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/images"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/build.lock"
flock 9

engine="${ENGINE:-}"
if [[ -z $engine ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
  else
    die "neither a running Docker engine nor podman: run 'make system-deps'"
  fi
fi
cmd=("$engine")
build_args=()
if [[ $engine == podman ]]; then
  # runc, not podman's default crun: crun refuses hosts with cgroups in hybrid mode.
  cmd+=(--runtime runc)
  # RUN steps get the limits this shell has: raising them needs CAP_SYS_RESOURCE, which a
  # container host may not grant (podman's defaults are above them).
  # nproc capped too: podman runs conmon with a lower nproc than the shell's (32768 against
  # 96364 on the development machine), and a build needs few processes.
  nofile="$(ulimit -n)"; nproc="$(ulimit -u)"
  [[ $nofile =~ ^[0-9]+$ ]] || nofile=65536
  [[ $nproc =~ ^[0-9]+$ ]] && ((nproc <= 4096)) || nproc=4096
  # --format docker: the OCI format drops HEALTHCHECK.
  build_args+=(--format docker --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
fi

base="${IMAGE_BASE:-}"
if [[ -z $base ]]; then
  # Any HTTP answer (401 included) means the registry of the public base is reachable.
  if curl -s --max-time 5 -o /dev/null https://registry-1.docker.io/v2/; then
    base=""   # the Dockerfiles' default
  else
    log "Docker Hub is not reachable: using the Debian base from hack/images/base.sh"
    base="$(ENGINE=$engine "$here/base.sh" | tail -n1)"
  fi
fi
[[ -z $base ]] || build_args+=(--build-arg "BASE=$base")
# pip in the build trusts what pip here trusts (a proxy's CA): see the Dockerfiles.
ca_bundle="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
[[ ! -s $ca_bundle ]] || build_args+=(--secret "id=ca-bundle,src=$ca_bundle")
# shellcheck disable=SC2206 # BUILD_FLAGS is a word list on purpose (e.g. "--no-cache --pull")
build_args+=(${BUILD_FLAGS:-})

repo="${IMAGE_REPO:-ghcr.io/onnxops}"
tag="${IMAGE_TAG:-0.1.0}"
timed() { # what, command...
  local start=$SECONDS
  "${@:2}" >&2
  log "$1 built in $((SECONDS - start))s"
}
timed "$repo/onnxops-serving:$tag" "${cmd[@]}" build "${build_args[@]}" \
  -t "$repo/onnxops-serving:$tag" "$root/serving-image"
timed "$repo/onnxops-operator:$tag" "${cmd[@]}" build "${build_args[@]}" \
  -t "$repo/onnxops-operator:$tag" -f "$root/operator/Dockerfile" "$root"
echo "$repo/onnxops-serving:$tag"
echo "$repo/onnxops-operator:$tag"
