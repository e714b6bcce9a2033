#!/usr/bin/env bash
# Downloads one Go module (source only, nothing built) into the kind cache's own module cache
# and prints its directory: kind's node files, later containerd's and the images' sources.
#   bash hack/kind/module.sh MODULE VERSION
set -euo pipefail
export GOMODCACHE="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/kind/gomod"
# -modcacherw: a cache that rm -rf can clear (Go makes it read-only otherwise).
export GOFLAGS="-modcacherw -buildvcs=false"
command -v go >/dev/null || { echo "kind-module: go not found on PATH" >&2; exit 1; }
cd "${TMPDIR:-/tmp}"
dir="$(go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -d $dir ]] || { echo "kind-module: go mod download $1@$2 gave no directory" >&2; exit 1; }
echo "$dir"
