#!/usr/bin/env bash
# Regenerates the checked-in Python modules of the gRPC protocol from onnxops_serving/proto/*.proto
# (needs grpcio-tools, in the project's dev extra). A test fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-../.venv/bin/python}
"$PY" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. onnxops_serving/proto/*.proto
