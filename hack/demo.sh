#!/usr/bin/env bash
# `make demo`: the main job, end to end, on this machine with no Docker:
#   build two model bundles (pipeline) -> start the local Kubernetes (devcluster) ->
#   (with the pod runner: the serving pods' kubelet, real processes in cgroups) -> Prometheus ->
#   the operator -> a cloud and an edge ModelDeployment of those bundles ->
#   real inference through the pods' serving processes -> metrics back from Prometheus ->
#   a drift fault detected -> an OOM-looping model healed by rolling out raised memory.
# Everything it starts is stopped on exit; KEEP=1 keeps the cluster up to explore.
# DEMO_DIR (default .demo) and DEVCLUSTER_STATE (default .devcluster) move its files, so a
# test can run it beside a cluster of its own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${DEMO_DIR:-$ROOT/.demo}")  # absolute: it ends up in file:// model URIs
STATE=$(realpath -m "${DEVCLUSTER_STATE:-$ROOT/.devcluster}")
PY=$ROOT/.venv/bin/python
DEVCLUSTER=(env PYTHONPATH="$ROOT/hack/devcluster" "$PY" -m devcluster --state-dir "$STATE")
KUBECTL="$(bash "$ROOT/hack/devcluster/build.sh" | tail -1)/kubectl"
export KUBECONFIG=$STATE/kubeconfig
NS=onnxops-demo
mkdir -p "$OUT"

step() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }

pids=()
started_cluster=0
cleanup() {
  local rc=$?
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [[ $started_cluster == 1 && ${KEEP:-0} != 1 ]]; then "${DEVCLUSTER[@]}" down >/dev/null || true; fi
  if ((rc != 0)); then echo "demo failed (exit $rc); logs in $OUT/ and $STATE/logs/" >&2; fi
}
trap cleanup EXIT

step "1/9 model pipeline: train -> validate -> export (parity) -> optimize"
rm -rf "$OUT/bundles"
bash "$ROOT/hack/demo-pipeline.sh" "$OUT/bundles"

step "2/9 local Kubernetes: etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes"
if ! "${DEVCLUSTER[@]}" status >/dev/null 2>&1; then
  "${DEVCLUSTER[@]}" up
  started_cluster=1
fi
cluster_status=$("${DEVCLUSTER[@]}" status)  # not piped to grep -q: pipefail, SIGPIPE
grep -q '^podrunner .* running' <<<"$cluster_status" ||
  { echo "the devcluster in $STATE runs no pod runner: make cluster-down, then make demo" >&2; exit 1; }
"$KUBECTL" get nodes -L onnxops.io/pool

step "3/9 Prometheus, scraping what the pod runner (started by cluster-up) serves"
# A fresh TSDB; the targets folder stays: the cluster's pod runner (the serving pods' kubelet:
# real processes, cgroups, probes, pod status) writes each pod's scrape target there. The demo
# starts no pod runner of its own: a second one would start every pod twice (and lose the bind).
rm -rf "$STATE/prometheus/tsdb"
# Truncated here, not by the background job's redirection, which may come after the first
# grep: a previous run's "prometheus at" line would be read, then vanish.
: >"$OUT/prometheus.log"
"${DEVCLUSTER[@]}" prometheus --work-dir "$STATE/prometheus" >"$OUT/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "prometheus at" "$OUT/prometheus.log" && break; sleep 0.2; done
PROM=$(sed -n 's/^prometheus at \([^;]*\);.*/\1/p' "$OUT/prometheus.log")
[ -n "$PROM" ] || { echo "Prometheus did not start; see $OUT/prometheus.log" >&2; exit 1; }
echo "prometheus: $PROM"

step "4/9 CRDs and the operator"
"$KUBECTL" apply -f "$ROOT/crds/"
# Not `kubectl wait` alone: on a CRD whose status.conditions are still null it fails at once.
for _ in $(seq 60); do
  [ "$("$KUBECTL" get crd/modeldeployments.onnxops.io \
        -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ] && break
  sleep 0.5
done
"$KUBECTL" wait --for=condition=Established crd/modeldeployments.onnxops.io --timeout=30s
# Monitoring on, reading the Prometheus above; a short rate window suits its 1 s scrapes.
ONNXOPS_STANDALONE=true ONNXOPS_PROMETHEUS_URL="$PROM" ONNXOPS_MONITOR_RATE_WINDOW=10s \
  "$PY" -m onnxops.run >"$OUT/operator.log" 2>&1 &
pids+=($!)

step "5/9 two ModelDeployments of the bundles just built: iris on cloud, breast-cancer (int8) on edge"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$PY" - "$OUT/bundles" <<'PY' | tee "$OUT/modeldeployments.yaml" | "$KUBECTL" -n "$NS" apply -f -
import json
import sys
from pathlib import Path

import yaml

root = Path(sys.argv[1])


def model(bundle: str) -> dict:
    meta = json.loads((root / bundle / "model.json").read_text())
    files = meta["files"]
    spec = {
        "uri": f"file://{root / bundle / 'model.onnx'}",
        "sha256": files["model.onnx"]["sha256"],
        "name": meta["name"],
        "version": str(meta["version"]),
    }
    variants = {
        info["variant"]: {"uri": f"file://{root / bundle / name}", "sha256": info["sha256"]}
        for name, info in files.items()
        if name != "model.onnx" and info["variant"] == "int8"
    }
    if variants:
        spec["variants"] = variants
    return spec


docs = [
    {"name": "iris", "model": model("iris"), "target": {"pool": "cloud"}, "replicas": 2,
     "monitoring": {"intervalSeconds": 5, "failureThreshold": 2}},
    {"name": "breast-cancer", "model": model("breast-cancer"),
     "target": {"pool": "edge", "fallbackPool": "cloud"}, "replicas": 1,
     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
]
out = [
    {"apiVersion": "onnxops.io/v1alpha1", "kind": "ModelDeployment",
     "metadata": {"name": d.pop("name")}, "spec": d}
    for d in docs
]
print(yaml.safe_dump_all(out, sort_keys=False))
PY
"$KUBECTL" -n "$NS" wait --for=jsonpath='{.status.phase}'=Ready mdep --all --timeout=120s
"$KUBECTL" -n "$NS" get mdep
"$KUBECTL" -n "$NS" get pods -o wide
"$KUBECTL" -n "$NS" get events --field-selector involvedObject.kind=ModelDeployment \
  --sort-by=.metadata.creationTimestamp -o custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message

step "6/9 inference through the pods' serving processes, metrics back from Prometheus"
"$PY" - "$STATE/prometheus/targets" "$PROM" "$OUT/bundles" <<'PY'
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

targets_dir, prom, bundles = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def http(url: str, body: object | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


deadline = time.monotonic() + 60
served: dict[str, str] = {}
while time.monotonic() < deadline and len(served) < 3:
    for f in targets_dir.glob("*.json"):
        for group in json.loads(f.read_text()):
            if "pod" not in group["labels"]:
                continue  # the pod runner's cAdvisor endpoint (job=kubelet), not a pod
            addr = group["targets"][0]
            try:
                urllib.request.urlopen(f"http://{addr}/v2/health/ready", timeout=2)
            except OSError:
                continue
            served[group["labels"]["pod"]] = addr
    time.sleep(0.5)
print(f"{len(served)} serving processes ready: {', '.join(sorted(served))}")

for pod, addr in sorted(served.items()):
    model = http(f"http://{addr}/v2")
    meta = http(f"http://{addr}/v2/models/" + ("iris" if pod.startswith("iris") else "breast-cancer"))
    n_features = meta["inputs"][0]["shape"][-1]
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] if n_features == 4 else [[0.5] * n_features]
    reply = http(f"http://{addr}/predict", {"features": rows})
    print(f"{pod:<36} {model['name']} {meta['name']} v{meta.get('versions', ['?'])[0]}: /predict -> {json.dumps(reply)[:90]}")

time.sleep(3)  # two scrape intervals
query = "sum by (namespace, pod) (onnxops_requests_total)"
url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
result = http(url)["data"]["result"]
print(f"\nPrometheus: {query}")
for series in sorted(result, key=lambda s: s["metric"]["pod"]):
    print(f"  {series['metric']['namespace']}/{series['metric']['pod']}: {series['value'][1]}")
if not result:
    sys.exit("Prometheus has no onnxops_requests_total yet")
PY

step "7/9 a fault: inputs far from the training data make iris drift; the operator says so"
"$PY" - "$STATE/prometheus/targets" <<'PY'
import json
import sys
import urllib.request
from pathlib import Path

# 200 rows per iris pod (the runtime judges drift from 100 rows on), all ten times too large.
skewed = [[51.0 + i % 7, 35.0, 14.0 + i % 5, 2.0] for i in range(200)]
for f in Path(sys.argv[1]).glob("*.json"):
    for group in json.loads(f.read_text()):
        if group["labels"].get("pod", "").startswith("iris-"):  # not the kubelet's target
            req = urllib.request.Request(
                f"http://{group['targets'][0]}/predict", json.dumps({"features": skewed}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=10).read()
            print(f"sent 200 skewed rows to {group['labels']['pod']}")
PY
"$KUBECTL" -n "$NS" wait --for=jsonpath='{.status.phase}'=Degraded mdep/iris --timeout=120s
"$KUBECTL" -n "$NS" get mdep
"$KUBECTL" -n "$NS" get mdep iris -o jsonpath='{range .status.faults[*]}fault {.signal}: {.message}{"\n"}{end}'
"$KUBECTL" -n "$NS" get events --field-selector involvedObject.name=iris,reason=FaultDetected \
  -o custom-columns=OBJECT:.involvedObject.name,TYPE:.type,REASON:.reason,MESSAGE:.message

step "8/9 a fault healed: iris-small, under a 32Mi memory limit, is OOM-killed at every start; the operator raises its memory (a rollout: a crash-looping container is not resizable in place)"
"$PY" - "$OUT/modeldeployments.yaml" <<'PY' | "$KUBECTL" -n "$NS" apply -f -
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
small = next(d for d in docs if d["metadata"]["name"] == "iris")
small["metadata"]["name"] = "iris-small"
small["spec"].update(
    replicas=1,
    resources={"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi"}},
    remediation={"resize": {"maxMemory": "256Mi", "inPlace": "auto"}},
)
print(yaml.safe_dump(small, sort_keys=False))
PY
"$KUBECTL" -n "$NS" wait --for=jsonpath='{.status.readyReplicas}'=1 mdep/iris-small --timeout=240s
# Ready once the new pod, its template carrying the raised limit, runs; then Remediating ends.
"$KUBECTL" -n "$NS" wait --for=condition=Remediating=False mdep/iris-small --timeout=120s
"$KUBECTL" -n "$NS" get mdep iris-small \
  -o jsonpath='{range .status.remediations[*]}remediation {.action} {.result}: {.message}{"\n"}{end}'
"$KUBECTL" -n "$NS" get pods -l onnxops.io/model-deployment=iris-small -o custom-columns=\
POD:.metadata.name,MEMORY:.spec.containers[0].resources.limits.memory,RESTARTS:.status.containerStatuses[0].restartCount,READY:.status.containerStatuses[0].ready
"$KUBECTL" -n "$NS" get events --sort-by=.metadata.creationTimestamp \
  -o custom-columns=OBJECT:.involvedObject.name,TYPE:.type,REASON:.reason,MESSAGE:.message |
  grep -E '^OBJECT|^iris-small.*(FaultDetected|Resize|OOMKilled)' || true

step "9/9 a bad spec is refused by the apiserver, before the operator sees it"
if "$KUBECTL" -n "$NS" apply -f - 2>&1 <<'YAML'
apiVersion: onnxops.io/v1alpha1
kind: ModelDeployment
metadata: {name: broken}
spec:
  model: {uri: "s3://bucket/model.onnx"}
  autoscaling: {minReplicas: 5, maxReplicas: 2}
YAML
then
  echo "the bad spec was accepted: the CRD's validation is missing" >&2
  exit 1
fi

# Waited for: the pod runner (the serving pods' kubelet) finishes their deletion before it stops.
"$KUBECTL" delete namespace "$NS" --timeout=90s >/dev/null || echo "namespace $NS still terminating" >&2
printf '\ndemo done. Logs: %s/{operator,prometheus}.log, %s/logs/podrunner.log. KEEP=1 make demo keeps the cluster.\n' "$OUT" "$STATE"
