#!/usr/bin/env bash
# The model pipeline, end to end: train -> validate (gated) -> export (parity) -> optimize -> inspect.
# Usage: bash hack/demo-pipeline.sh OUTDIR
# Leaves two bundles: OUTDIR/breast-cancer (MLP, with int8/fp16/pruned variants) and
# OUTDIR/iris (logistic regression, built in one go).
set -euo pipefail

OUT=${1:?usage: bash hack/demo-pipeline.sh OUTDIR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ONNXOPS=${ONNXOPS:-$ROOT/.venv/bin/onnxops}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }

step "1. train an MLP on breast_cancer (fixed-seed split)"
"$ONNXOPS" train --dataset breast_cancer --algorithm mlp --work "$OUT/work/breast-cancer"

step "2. validate with a quality gate (exit 1 if accuracy < 0.9)"
"$ONNXOPS" validate "$OUT/work/breast-cancer" --min-accuracy 0.9 --min-f1 0.9

step "3. export to ONNX (MatMul form) with a parity check against scikit-learn"
"$ONNXOPS" export "$OUT/work/breast-cancer" --out "$OUT/breast-cancer" --standard-ops --name breast-cancer

step "4. optimize: each variant re-validated, kept only within --max-metric-drop 0.01"
"$ONNXOPS" optimize "$OUT/work/breast-cancer" --bundle "$OUT/breast-cancer"

step "5. the bundle, as the serving runtime and the operator will read it"
"$ONNXOPS" inspect "$OUT/breast-cancer"

step "6. the same in one go: iris + logistic regression"
"$ONNXOPS" build --dataset iris --algorithm logistic_regression --min-accuracy 0.9 \
  --out "$OUT/iris" --optimize --quiet >/dev/null
"$ROOT/.venv/bin/python" - "$OUT/iris/model.json" <<'PY'
import json
import sys

b = json.load(open(sys.argv[1]))
p = b["parity"]
print(f"{b['name']}: accuracy {b['metrics']['accuracy']:.3f}, parity: labels agree {p['label_agreement']:.0%},"
      f" max |dprob| {p['max_abs_diff']:.1e}")
for v in b["variants"]:
    print(f"  {v['name']:<12} {v['status']:<15} {v['reason']}")
PY
printf '\nbundles: %s/breast-cancer  %s/iris\n' "$OUT" "$OUT"
