#!/usr/bin/env bash
# Builds a Go tool of the test suite from its folder under hack/ into a cache outside the work
# tree, keyed by the version of the module it is built from and a digest of the folder's
# go.mod, go.sum and *.go, so a fresh clone on the same machine reuses it. Prints the path.
#   bash hack/gotool.sh DIR MODULE [PACKAGE]    (PACKAGE: default ".", the folder's own main)
# e.g. kstatus (sigs.k8s.io/cli-utils), argolua (github.com/yuin/gopher-lua), versitygw.
set -euo pipefail
shopt -s nullglob
dir="$(cd "$1" && pwd)"; module="$2"; package="${3:-.}"
name="$(basename "$dir")"
version="$(awk -v m="$module" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$dir/go.mod")"
[[ -n $version ]] || { echo "gotool: $dir/go.mod names no $module" >&2; exit 1; }
digest="$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go 2>/dev/null | sha256sum | cut -c1-8)"
cache="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/tools/$name-$version-$digest"
bin="$cache/$name"
if [[ ! -x $bin ]]; then
  mkdir -p "$cache"
  echo "gotool: building $name ($module $version) at $(date +%T)" >&2
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
     go build -trimpath -ldflags "-s -w" -o "$bin.tmp" "$package")
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
