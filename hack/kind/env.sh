#!/usr/bin/env bash
# Prints the exports that run kind here with the node image of node.sh (built if missing or
# stale): eval "$(bash hack/kind/env.sh)". KIND_NODE_IMAGE, KIND_CONFIG and KIND_PY_IMAGE are
# what tests/e2e/test_kind.py reads; CONTAINERS_CONF and KIND_EXPERIMENTAL_PROVIDER are kind's podman
# provider's; PATH gets kind, kubectl (the devcluster's) before the rest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../devcluster/versions.env
source "$root/hack/devcluster/versions.env"
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind"
conf="$(bash "$here/host.sh" | tail -n1)"
image="$(bash "$here/node.sh" | tail -n1)"
bin="$(bash "$here/binaries.sh" | tail -n1)"
devbin="$(bash "$root/hack/devcluster/build.sh" | tail -n1)"
# An image with python3 for the in-cluster server and client of the Service test.
python_image="$(bash "$root/hack/images/base.sh" | tail -n1)"
cp "$here/ptp.conflist" "$cache/ptp.conflist.tmp" && mv "$cache/ptp.conflist.tmp" "$cache/ptp.conflist"
sed -e "s#CNI_CONF#$cache/ptp.conflist#" -e "s#ETCD_TAG#${ETCD_VERSION#v}-0#" "$here/cluster.yaml" >"$cache/cluster.yaml"
for kv in "KIND_EXPERIMENTAL_PROVIDER=podman" "CONTAINERS_CONF=$conf" "KIND_NODE_IMAGE=$image" \
  "KIND_CONFIG=$cache/cluster.yaml" "KIND_PY_IMAGE=$python_image" "PATH=$bin:$devbin:$PATH"; do
  printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
done
