#!/usr/bin/env bash
# The operator, end to end on the devcluster: CRDs -> operator -> a cloud and an edge
# ModelDeployment -> `kubectl get mdep`. Starts a devcluster when none runs (and stops it
# again at the end unless KEEP_CLUSTER=1); the operator is always stopped on exit.
# Usage: bash hack/demo-operator.sh [OUTDIR]   (operator log in OUTDIR, default .demo/)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/.demo}
mkdir -p "$OUT"
PY=$ROOT/.venv/bin/python
DEVCLUSTER=(env PYTHONPATH="$ROOT/hack/devcluster" "$PY" -m devcluster)
KUBECTL="$(bash "$ROOT/hack/devcluster/build.sh" 2>/dev/null | tail -1)/kubectl"
export KUBECONFIG=$ROOT/.devcluster/kubeconfig
NS=onnxops-demo

step() { printf '\n\033[1m### %s\033[0m\n' "$*"; }

started_cluster=0
operator_pid=""
cleanup() {
  if [[ -n "$operator_pid" ]]; then kill "$operator_pid" 2>/dev/null || true; wait "$operator_pid" 2>/dev/null || true; fi
  if [[ $started_cluster == 1 && ${KEEP_CLUSTER:-0} != 1 ]]; then "${DEVCLUSTER[@]}" down >/dev/null || true; fi
}
trap cleanup EXIT

step "1. the local cluster (real apiserver, KWOK nodes in a cloud and an edge pool)"
if ! "${DEVCLUSTER[@]}" status >/dev/null 2>&1; then
  "${DEVCLUSTER[@]}" up
  started_cluster=1
fi
"$KUBECTL" get nodes -L onnxops.io/pool

step "2. the CRDs, rendered from the pydantic API (onnxops crd)"
"$KUBECTL" apply -f "$ROOT/crds/"
# Not `kubectl wait` alone: on a CRD whose status.conditions are still null it fails at once.
for _ in $(seq 60); do
  [ "$("$KUBECTL" get crd/modeldeployments.onnxops.io \
        -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ] && break
  sleep 0.5
done
"$KUBECTL" wait --for=condition=Established crd/modeldeployments.onnxops.io --timeout=30s

step "3. the operator (onnxops operator; log: $OUT/operator.log)"
ONNXOPS_STANDALONE=true "$PY" -m onnxops.run >"$OUT/operator.log" 2>&1 &
operator_pid=$!

step "4. a cloud and an edge ModelDeployment (manifests/samples/)"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" -n "$NS" apply -f "$ROOT/manifests/samples/"
"$KUBECTL" -n "$NS" wait --for=jsonpath='{.status.phase}'=Ready mdep --all --timeout=90s

step "5. kubectl get mdep"
"$KUBECTL" -n "$NS" get mdep
"$KUBECTL" -n "$NS" get deploy,svc,pdb,hpa
"$KUBECTL" -n "$NS" get pods -o wide
"$KUBECTL" -n "$NS" get events --field-selector involvedObject.kind=ModelDeployment \
  --sort-by=.metadata.creationTimestamp -o custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message

step "6. a bad spec is refused by the apiserver, before the operator sees it"
cat <<'YAML' | "$KUBECTL" -n "$NS" apply -f - || true
apiVersion: onnxops.io/v1alpha1
kind: ModelDeployment
metadata: {name: broken}
spec:
  model: {uri: "s3://bucket/model.onnx"}
  autoscaling: {minReplicas: 5, maxReplicas: 2}
YAML

"$KUBECTL" delete namespace "$NS" --wait=true >/dev/null  # children go with it
