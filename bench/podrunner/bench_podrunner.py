"""Pod runner (the devcluster's kubelet for serving pods) benchmark: its CPU per managed pod at
idle, the time from a process answering readiness to its pod Ready in the API, and memory
(runner RSS, RSS per serving process).

Starts its own devcluster in a temp dir and the runner as the CLI does (``python -m devcluster
podrunner``, a separate process measured with psutil). Pods: N with the tests' light fake server
(probes every second, as a serving pod's readiness probe might be tuned) and R with the real
serving runtime and a tiny model.

    .venv/bin/python bench/podrunner/bench_podrunner.py --pods 20 --real 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "devcluster"))
sys.path.insert(0, str(ROOT / "tests"))

from devcluster import controlplane, processes  # noqa: E402
from support.factories import doubler_model  # noqa: E402

IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"
FAKE = [sys.executable, str(ROOT / "tests" / "cluster" / "fake_serving.py")]


def probe(path: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period}


def pod(name: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "podrunner"}},
        "spec": {
            "nodeSelector": {"onnxops.io/pool": "cloud"},
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "server",
                    "image": IMAGE,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": {"limits": {"cpu": "1", "memory": "256Mi"}},
                    "startupProbe": {**probe("/v2/health/live", 1), "failureThreshold": 120},
                    "readinessProbe": probe("/v2/health/ready", 1),
                    "livenessProbe": probe("/v2/health/live", 10),
                }
            ],
        },
    }


def runner_cli(cluster: Any, ns: str, work: Path, command: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "hack" / "devcluster")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devcluster",
            "--state-dir",
            str(cluster.state_dir),
            "podrunner",
            "--namespace",
            ns,
            "--targets-dir",
            str(work / f"targets-{ns}"),
            *command,
        ],
        env=env,
        stdout=(work / f"runner-{ns}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def ready_in_api(cluster: Any, ns: str) -> dict[str, bool]:
    items = cluster.api().get(f"/api/v1/namespaces/{ns}/pods")["items"]
    out = {}
    for p in items:
        conds = p.get("status", {}).get("conditions", [])
        out[p["metadata"]["name"]] = any(
            c["type"] == "Ready" and c["status"] == "True" for c in conds
        )
    return out


def measure_readiness_lag(cluster: Any, ns: str, count: int, log_dir: Path) -> list[float]:
    """For each pod: (wall time its Ready is first seen in the API) - (wall time its process
    could first answer a readiness probe: the fake server prints when its socket is bound)."""
    first_ready: dict[str, float] = {}
    body = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [pod(f"p{i:03d}", {}) for i in range(count)],
    }
    cluster.run_kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))

    def all_seen() -> bool:
        now = time.time()
        for name, ready in ready_in_api(cluster, ns).items():
            if ready and name not in first_ready:
                first_ready[name] = now
        return len(first_ready) == count

    processes.wait_for(all_seen, timeout_s=300, what="all pods Ready", interval_s=0.02)
    lags = []
    for name, seen in first_ready.items():
        lines = (log_dir / f"{ns}.{name}.log").read_text().split()
        since = float(lines[lines.index("serving-since") + 1])
        lags.append(seen - since)
    return lags


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20, help="fake-server pods")
    parser.add_argument("--real", type=int, default=3, help="pods with the real serving runtime")
    parser.add_argument("--idle-s", type=float, default=20, help="idle window for CPU")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="onnxops-bench-") as tmp:
        work = Path(tmp)
        cluster = controlplane.start(work / "cluster", tie_to_parent=True)
        runners: list[subprocess.Popen[bytes]] = []
        try:
            for ns in ("fake", "real"):
                cluster.run_kubectl("create", "namespace", ns)
            runner = runner_cli(cluster, "fake", work, FAKE)
            runners.append(runner)
            time.sleep(2)
            proc = psutil.Process(runner.pid)
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
            time.sleep(args.idle_s)
            idle_empty = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)

            lags = measure_readiness_lag(
                cluster, "fake", args.pods, cluster.state_dir / "logs" / "pods"
            )
            time.sleep(3)  # probes settle
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
            time.sleep(args.idle_s)
            idle_full = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
            runner_rss = proc.memory_info().rss
            fake_rss = [c.memory_info().rss for c in proc.children()]

            model = work / "doubler.onnx"
            sha = doubler_model(model)
            real = runner_cli(cluster, "real", work, [])
            runners.append(real)
            env = {"ONNXOPS_MODEL_URI": str(model), "ONNXOPS_MODEL_SHA256": sha}
            body = {
                "apiVersion": "v1",
                "kind": "List",
                "items": [pod(f"r{i}", env) for i in range(args.real)],
            }
            cluster.run_kubectl("apply", "-n", "real", "-f", "-", input=json.dumps(body))
            processes.wait_for(
                lambda: sum(ready_in_api(cluster, "real").values()) == args.real,
                timeout_s=300,
                what="real serving pods Ready",
                interval_s=0.5,
            )
            real_rss = [c.memory_info().rss for c in psutil.Process(real.pid).children()]
        finally:
            for r in runners:
                r.terminate()
                r.wait(timeout=30)
            cluster.stop()
    mib = 2**20
    figures = {
        "pods": args.pods,
        "runner_cpu_idle_empty_percent": round(idle_empty * 100, 2),
        "runner_cpu_idle_percent": round(idle_full * 100, 2),
        "runner_cpu_per_pod_percent": round((idle_full - idle_empty) * 100 / args.pods, 3),
        "ready_lag_p50_ms": round(pct(lags, 0.5) * 1000),
        "ready_lag_p95_ms": round(pct(lags, 0.95) * 1000),
        "ready_lag_samples": len(lags),
        "runner_rss_mib": round(runner_rss / mib, 1),
        "fake_process_rss_mib": round(statistics.median(fake_rss) / mib, 1),
        "serving_process_rss_mib": round(statistics.median(real_rss) / mib, 1),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
