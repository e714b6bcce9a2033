#!/usr/bin/env bash
# Builds versitygw (github.com/versity/versitygw, an S3 gateway over a POSIX directory; the
# real S3 server the storage tests run on loopback) into a cache outside the work tree, keyed
# by the version go.mod requires, so a fresh clone on the same machine reuses it. Prints the
# binary's path on the last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "github.com/versity/versitygw" {print $2; exit}' "$here/go.mod")"
[[ -n $version ]] || { echo "versitygw-build: go.mod names no github.com/versity/versitygw" >&2; exit 1; }
dir="${ONNXOPS_CACHE:-$HOME/.cache/onnxops}/tools/versitygw-$version"
bin="$dir/versitygw"
if [[ ! -x $bin ]]; then
  mkdir -p "$dir"
  echo "versitygw-build: building versitygw $version ($(date +%T)); about a minute" >&2
  (cd "$here" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
     go build -trimpath -ldflags "-s -w" -o "$bin.tmp" github.com/versity/versitygw/cmd/versitygw)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
