#!/usr/bin/env bash
# Builds `kstatus` (hack/kstatus/main.go: the verdict of sigs.k8s.io/cli-utils' kstatus, the
# library Flux and kpt wait with) into a cache outside the work tree, keyed by the library's
# version in go.mod, so a fresh clone on the same machine reuses it. Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "sigs.k8s.io/cli-utils" || ($1 == "require" && $2 == "sigs.k8s.io/cli-utils") {print $NF}' "$here/go.mod" | head -1)"
[[ -n $version ]] || { echo "kstatus-build: go.mod names no sigs.k8s.io/cli-utils" >&2; exit 1; }
dir="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/tools/kstatus-cli-utils-$version"
bin="$dir/kstatus"
if [[ ! -x $bin || $here/main.go -nt $bin ]]; then
  mkdir -p "$dir"
  echo "kstatus-build: building kstatus with cli-utils $version ($(date +%T))" >&2
  (cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
     go build -trimpath -ldflags "-s -w" -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
