"""Time to detect, per fault type: a real fault is injected into a model served behind a
devcluster pod, and two times are taken: from injection, and from the moment the fault is
visible in Prometheus (the signal's own query crosses the threshold), to the fault in the
ModelDeployment's status. Scrape 1 s, intervalSeconds 5, failureThreshold 2, rate window 10 s.

    .venv/bin/python bench/watch/bench_detect.py [--runs 3] [--json bench/watch/detect.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
for extra in ("hack/devcluster", "tests"):  # the devcluster tool and tests/support
    sys.path.insert(0, str(ROOT / extra))

from devcluster import controlplane, processes  # noqa: E402
from devcluster import prometheus as prom  # noqa: E402
from devcluster.binaries import require  # noqa: E402
from devcluster.podrunner import PodRunner  # noqa: E402
from support.deployments import model_deployment  # noqa: E402
from support.operator_kit import Kube, Operator, wait_for  # noqa: E402
from support.serving_harness import build_models  # noqa: E402
from support.traffic import Load  # noqa: E402

LABEL = "onnxops_io_model_deployment"
MONITORING = {"intervalSeconds": 5, "failureThreshold": 2, "anomaly": {"enabled": False}}


def _md(name: str, uri: str, model_name: str, **thresholds: Any) -> dict[str, Any]:
    return model_deployment(
        name,
        model={"uri": uri, "name": model_name},
        target={"pool": "cloud"},
        monitoring={**MONITORING, "thresholds": thresholds},
    )


def _visible(server: prom.Prometheus, query: str) -> bool:
    try:
        return bool(server.query(query))
    except Exception:
        return False


def one_run(
    kube: Kube,
    runner: PodRunner,
    server: prom.Prometheus,
    *,
    name: str,
    body: dict[str, Any],
    signal: str,
    visible_query: str,
    inject: Callable[[str], None],
) -> dict[str, float]:
    assert kube.apply(body).returncode == 0
    prefix = f"{kube.namespace}.{name}-"
    proc = wait_for(
        lambda: next((p for t, p in runner.serving().items() if t.startswith(prefix)), None),
        "a serving process",
        timeout_s=120,
    )
    wait_for(lambda: _ready(proc.url), "the model to load", timeout_s=120)
    wait_for(
        lambda: _condition(kube.status(name), "MonitoringAvailable") == "True",
        "a first evaluation",
        timeout_s=120,
    )
    try:
        injected = time.monotonic()
        inject(proc.url)
        visible: list[float] = []

        def seen() -> bool:
            if not visible and _visible(server, visible_query):
                visible.append(time.monotonic())
            return any(f["signal"] == signal for f in kube.status(name).get("faults") or [])

        wait_for(seen, f"a {signal} fault", timeout_s=180)
        detected = time.monotonic()
        return {
            "from_injection_s": round(detected - injected, 2),
            "from_visible_s": round(detected - (visible[0] if visible else detected), 2),
        }
    finally:
        kube.run("delete", "mdep", name, "--wait=true", check=False)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _condition(status: dict[str, Any], type_: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == type_), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        work = Path(tmp)
        models = build_models(work / "models")
        cluster = controlplane.start(work / "cluster", bin_dir=require(), tie_to_parent=True)
        server = prom.start(work / "prometheus", tie_to_parent=True)
        cluster.run_kubectl("apply", "-f", str(ROOT / "crds"))
        cluster.run_kubectl("create", "namespace", "bench-detect")
        kube = Kube(cluster, "bench-detect")
        runner = PodRunner(
            cluster.api(), server.targets, work / "pods", namespace="bench-detect",
            extra_env={"ONNXOPS_MODEL_CACHE_DIR": str(work / "cache")},
        ).start()  # fmt: skip
        port = processes.free_port()
        op = Operator(
            cluster.kubeconfig,
            work / "operator.log",
            {
                "ONNXOPS_PROMETHEUS_URL": server.url,
                "ONNXOPS_MONITOR_RATE_WINDOW": "10s",
                "ONNXOPS_METRICS_PORT": str(port),
            },
        )
        stop_load = threading.Event()
        try:
            op.start()
            ns = 'namespace="bench-detect"'
            x = models.iris_x

            def error_burst(url: str) -> None:
                bad = {
                    "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [99, 0]}]
                }
                load = Load(url, "/v2/models/poison/infer", lambda: bad).__enter__()
                threading.Thread(
                    target=lambda: (stop_load.wait(), load.__exit__()), daemon=True
                ).start()

            def wrong_feedback(url: str) -> None:
                labels = httpx.post(f"{url}/predict", json={"features": x[:150].tolist()}).json()[
                    "predictions"
                ]
                wrong = [(int(v) + 1) % 3 for v in labels]
                httpx.post(
                    f"{url}/v2/models/iris/feedback", json={"predictions": labels, "labels": wrong}
                )

            def skewed_inputs(url: str) -> None:
                httpx.post(f"{url}/predict", json={"features": (x[:150] * 3 + 5).tolist()})

            cases = [
                (
                    "ErrorRate",
                    lambda i: _md(f"err-{i}", f"file://{models.poison}", "poison"),
                    lambda i: (
                        f'sum(rate(onnxops_requests_total{{{ns},{LABEL}="err-{i}",code=~"5.."}}[10s])) > 0'
                    ),
                    error_burst,
                ),
                (
                    "Accuracy",
                    lambda i: _md(f"acc-{i}", f"file://{models.iris}", "iris", minAccuracy=0.9),
                    lambda i: f'onnxops_online_accuracy{{{ns},{LABEL}="acc-{i}"}} < 0.9',
                    wrong_feedback,
                ),
                (
                    "Drift",
                    lambda i: _md(f"drift-{i}", f"file://{models.iris}", "iris"),
                    lambda i: f'onnxops_drift_psi_max{{{ns},{LABEL}="drift-{i}"}} > 0.25',
                    skewed_inputs,
                ),
            ]
            for signal, body, query, inject in cases:
                for i in range(args.runs):
                    stop_load.clear()
                    row = one_run(
                        kube, runner, server, name=body(i)["metadata"]["name"], body=body(i),
                        signal=signal, visible_query=query(i), inject=inject,
                    )  # fmt: skip
                    stop_load.set()
                    print(signal, row, flush=True)
                    results.setdefault(signal, []).append(row)
        finally:
            stop_load.set()
            op.stop()
            runner.stop()
            server.stop()
            cluster.stop()
    print(
        "\n| fault | runs | from injection, median (min-max) | from visible in Prometheus, median (min-max) |"
    )
    print("|---|---|---|---|")
    for signal, rows in results.items():
        inj = [r["from_injection_s"] for r in rows]
        vis = [r["from_visible_s"] for r in rows]
        print(
            f"| {signal} | {len(rows)} | {statistics.median(inj):.1f} s ({min(inj):.1f}-{max(inj):.1f}) "
            f"| {statistics.median(vis):.1f} s ({min(vis):.1f}-{max(vis):.1f}) |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
