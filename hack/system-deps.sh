#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks need, only when missing.
# podman + runc build and run the images where no Docker engine runs (runc, because crun
# refuses hybrid cgroup hosts); debootstrap makes their Debian base without a registry.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v wrk >/dev/null || need+=(wrk)
command -v strace >/dev/null || need+=(strace)  # tests/serving/test_one_write.py
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v gcc >/dev/null || need+=(gcc libc6-dev)  # hack/kind/images.sh: pause is C, static
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)  # + amtool
if ((${#need[@]})); then
  echo "system-deps: installing ${need[*]}" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
