"""Operator benchmark on a fresh devcluster: apply -> Deployment created -> status Ready
latency (one resource at a time), then a burst of many resources: time until all are Ready,
and the operator's resident memory.

    .venv/bin/python bench/operator/bench_operator.py [--latency 20] [--burst 200]
    .venv/bin/python bench/operator/bench_operator.py --kwok-only --burst 1000   # nothing served

Prints a Markdown table (paste into RESULTS.md) and writes JSON next to it with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parents[2]
for extra in ("hack/devcluster", "tests"):  # the devcluster tool and tests/support
    sys.path.insert(0, str(ROOT / extra))

from devcluster import controlplane  # noqa: E402
from devcluster.nodes import default_pools  # noqa: E402
from devcluster.podrunner import PodRunner  # noqa: E402
from devcluster.prometheus import ScrapeTargets  # noqa: E402
from support.deployments import model_deployment  # noqa: E402

# Small requests: 2 x burst + latency pods must fit the edge pool (3 x 2 CPU / 2Gi).
SMALL = {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}


class Timeline:
    """Local monotonic times of first sightings, filled by watch threads."""

    def __init__(self) -> None:
        self.deployment: dict[str, float] = {}
        self.deployment_ready: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def watch_deployments(self, namespace: str) -> None:
        api = client.AppsV1Api()
        while not self.stop.is_set():
            for event in watch.Watch().stream(
                api.list_namespaced_deployment, namespace, timeout_seconds=5
            ):
                dep = event["object"]
                name = dep.metadata.name
                ready = (dep.status.ready_replicas or 0) >= (dep.spec.replicas or 0)
                with self.lock:
                    self.deployment.setdefault(name, time.monotonic())
                    if ready and (dep.status.observed_generation or 0) >= dep.metadata.generation:
                        self.deployment_ready.setdefault(name, time.monotonic())

    def watch_models(self, namespace: str) -> None:
        api = client.CustomObjectsApi()
        while not self.stop.is_set():
            for event in watch.Watch().stream(
                api.list_namespaced_custom_object,
                "onnxops.io",
                "v1alpha1",
                namespace,
                "modeldeployments",
                timeout_seconds=5,
            ):
                obj = event["object"]
                if obj.get("status", {}).get("phase") == "Ready":
                    with self.lock:
                        self.ready.setdefault(obj["metadata"]["name"], time.monotonic())


# --kwok-only: an image without the serving marker, so KWOK's own stages make the pods Ready
# (kwokstages.py leaves only onnxops-serving pods to the pod runner) and nothing is served.
UNSERVED_IMAGE = "localhost/bench-kwok-only-unserved:1"


def model(name: str, pool: str, kwok_only: bool = False) -> dict[str, Any]:
    serving = {"serving": {"image": UNSERVED_IMAGE}} if kwok_only else {}
    return model_deployment(name, target={"pool": pool}, resources=SMALL, **serving)


def nodes_for(pods_per_pool: int, at_least: int) -> int:
    """Nodes a pool needs for ``pods_per_pool`` (110 pods a node) with one to spare."""
    return max(at_least, -(-pods_per_pool // 110) + 1)


def kubectl_apply(cluster: Any, namespace: str, objs: list[dict[str, Any]]) -> None:
    body = {"apiVersion": "v1", "kind": "List", "items": objs}
    # kubectl itself takes ~60 ms per object here: 1,000 in one apply outlast its 60 s default.
    timeout_s = max(60.0, 0.3 * len(objs))
    cluster.run_kubectl(
        "-n", namespace, "apply", "-f", "-", input=json.dumps(body), timeout_s=timeout_s
    )


def wait_until(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=20, help="resources, one at a time")
    parser.add_argument("--burst", type=int, default=200, help="resources applied at once")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--kwok-only",
        action="store_true",
        help="no pod runner: KWOK makes the pods Ready and none is served (for --burst 1000)",
    )
    args = parser.parse_args()
    if args.latency < 1 or args.burst < 1:
        parser.error("--latency and --burst must be at least 1")
    per_pool = (2 * args.burst + args.latency + 1) // 2
    wait_s = max(900.0, 0.9 * args.burst)  # a cluster this size needs minutes for 1,000

    with tempfile.TemporaryDirectory(prefix="onnxops-bench-") as tmp:
        cluster = controlplane.start(
            # Enough nodes for 2 x burst + latency pods (110 pods per node).
            Path(tmp) / "cluster",
            pools=default_pools(nodes_for(per_pool, 4), nodes_for(per_pool, 3)),
            tie_to_parent=True,
        )
        operator: subprocess.Popen[bytes] | None = None
        runner: PodRunner | None = None
        timeline = Timeline()
        try:
            cluster.run_kubectl("apply", "-f", str(ROOT / "crds"))
            cluster.run_kubectl(
                "wait", "--for=condition=Established", "crd/modeldeployments.onnxops.io"
            )
            config.load_kube_config(str(cluster.kubeconfig))
            ns = "bench"
            cluster.run_kubectl("create", "namespace", ns)
            env = {
                **os.environ,
                "KUBECONFIG": str(cluster.kubeconfig),
                "ONNXOPS_STANDALONE": "true",
            }
            # Serving pods are the pod runner's (the devcluster's kubelet for them): without
            # it they stay Pending. Its process is the tests' light fake server, which answers
            # the probes, so the figures measure the operator and the kubelet, not model loads.
            if not args.kwok_only:
                runner = PodRunner(
                    cluster.api(),
                    ScrapeTargets(Path(tmp) / "targets"),
                    Path(tmp) / "pods",
                    command=[sys.executable, str(ROOT / "tests" / "cluster" / "fake_serving.py")],
                    namespace=ns,
                ).start()
            log = (Path(tmp) / "operator.log").open("wb")
            operator = subprocess.Popen(
                [sys.executable, "-m", "onnxops.run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            proc = psutil.Process(operator.pid)
            for target in (timeline.watch_deployments, timeline.watch_models):
                threading.Thread(target=target, args=(ns,), daemon=True).start()
            time.sleep(3)  # operator start-up and watches established

            # 1. Latency, one resource at a time (alternating pools).
            to_deploy, to_ready, lag = [], [], []
            for i in range(args.latency):
                name = f"lat-{i:03d}"
                began = time.monotonic()
                kubectl_apply(cluster, ns, [model(name, ("cloud", "edge")[i % 2], args.kwok_only)])
                wait_until(lambda n=name: n in timeline.ready, 60)
                to_deploy.append(timeline.deployment[name] - began)
                to_ready.append(timeline.ready[name] - began)
                lag.append(timeline.ready[name] - timeline.deployment_ready.get(name, began))
            rss_after_latency = proc.memory_info().rss

            # 2. Burst: many resources in one kubectl apply, the operator running.
            names = [f"burst-{i:03d}" for i in range(args.burst)]
            cpu_before = sum(proc.cpu_times()[:2])
            began = time.monotonic()
            kubectl_apply(
                cluster,
                ns,
                [model(n, ("cloud", "edge")[i % 2], args.kwok_only) for i, n in enumerate(names)],
            )
            applied = time.monotonic() - began
            peak = 0

            def all_ready(group: list[str], p: psutil.Process) -> bool:
                nonlocal peak
                peak = max(peak, p.memory_info().rss)
                return all(n in timeline.ready for n in group)

            wait_until(lambda: all_ready(names, proc), wait_s)
            burst_s = time.monotonic() - began
            burst_deploy = max(timeline.deployment[n] for n in names) - began
            burst_dep_ready = max(timeline.deployment_ready.get(n, 0.0) for n in names) - began
            cpu_s = sum(proc.cpu_times()[:2]) - cpu_before
            time.sleep(5)
            rss_settled = proc.memory_info().rss

            # 3. Catch-up: the operator is stopped, a second burst is applied, then the
            # operator starts and works through it (and resumes the first one): its own pace.
            # Printed now: a later phase that fails must not lose them (at 1,000 it did).
            print(
                f"burst of {args.burst}: all Deployments {burst_deploy:.1f} s, all Ready "
                f"{burst_s:.1f} s, kubectl apply {applied:.1f} s, operator CPU {cpu_s:.1f} s, "
                f"RSS peak {peak / 2**20:.0f} MiB, settled {rss_settled / 2**20:.0f} MiB",
                flush=True,
            )
            operator.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Seen at 1,020 resources: kopf still winding down 30 s after SIGTERM. Its
                # threads' stacks (SIGUSR1, see onnxops.run) go to the log before the kill.
                operator.send_signal(signal.SIGUSR1)
                time.sleep(2)
                operator.kill()
                operator.wait()
                log.flush()
                kept = ROOT / "bench" / ".work" / "operator" / "stop.log"
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log.name, kept)
                print(f"operator log with its threads at the kill: {kept}", flush=True)
            print(f"operator stopped {time.monotonic() - stopping:.1f} s after SIGTERM", flush=True)
            later = [f"later-{i:03d}" for i in range(args.burst)]
            kubectl_apply(
                cluster,
                ns,
                [model(n, ("cloud", "edge")[i % 2], args.kwok_only) for i, n in enumerate(later)],
            )
            began = time.monotonic()
            operator = subprocess.Popen(
                [sys.executable, "-m", "onnxops.run"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            proc = psutil.Process(operator.pid)
            try:
                wait_until(lambda: all_ready(later, proc), wait_s)
            except TimeoutError:
                made = sum(n in timeline.deployment for n in later)
                ready = sum(n in timeline.ready for n in later)
                raise TimeoutError(
                    f"catch-up not done in {wait_s:.0f} s: {made} of {len(later)} new "
                    f"Deployments made, {ready} Ready"
                ) from None
            catchup_s = time.monotonic() - began
            catchup_deploy = max(timeline.deployment[n] for n in later) - began
            catchup_cpu = sum(proc.cpu_times()[:2])
            rss_catchup = proc.memory_info().rss
        finally:
            timeline.stop.set()
            if operator is not None:
                operator.send_signal(signal.SIGTERM)
                try:
                    operator.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    operator.kill()
            if runner is not None:
                runner.stop()
            cluster.stop()

    mib = 2**20
    mode = "KWOK-only: pods made Ready by KWOK, none served" if args.kwok_only else "pod runner"
    print(f"mode: {mode}")
    figures = {
        "mode": mode,
        "apply_to_deployment_p50_ms": 1000 * statistics.median(to_deploy),
        "apply_to_deployment_p95_ms": 1000 * pct(to_deploy, 0.95),
        "apply_to_ready_p50_ms": 1000 * statistics.median(to_ready),
        "apply_to_ready_p95_ms": 1000 * pct(to_ready, 0.95),
        "burst": args.burst,
        "burst_kubectl_apply_s": applied,
        "burst_all_deployments_s": burst_deploy,
        "burst_all_ready_s": burst_s,
        "burst_all_deployments_ready_s": burst_dep_ready,
        "deployment_ready_to_status_ready_p50_ms": 1000 * statistics.median(lag),
        "deployment_ready_to_status_ready_p95_ms": 1000 * pct(lag, 0.95),
        "burst_operator_cpu_s": cpu_s,
        "rss_after_latency_mib": rss_after_latency / mib,
        "rss_peak_burst_mib": peak / mib,
        "rss_settled_mib": rss_settled / mib,
        "catchup_all_deployments_s": catchup_deploy,
        "catchup_all_ready_s": catchup_s,
        "catchup_operator_cpu_s": catchup_cpu,
        "rss_after_catchup_mib": rss_catchup / mib,
    }
    print(
        f"| kubectl apply -> Deployment created, p50 / p95 ({args.latency} resources) | "
        f"{figures['apply_to_deployment_p50_ms']:.0f} ms / {figures['apply_to_deployment_p95_ms']:.0f} ms |"
    )
    print(
        f"| kubectl apply -> status Ready, p50 / p95 | "
        f"{figures['apply_to_ready_p50_ms']:.0f} ms / {figures['apply_to_ready_p95_ms']:.0f} ms |"
    )
    print(
        "| Deployment ready -> status Ready (the operator's own lag), p50 / p95 | "
        f"{figures['deployment_ready_to_status_ready_p50_ms']:.0f} ms / "
        f"{figures['deployment_ready_to_status_ready_p95_ms']:.0f} ms |"
    )
    print(
        f"| {args.burst} at once: all Deployments created / all Deployments ready / all Ready | "
        f"{burst_deploy:.1f} s / {burst_dep_ready:.1f} s / {burst_s:.1f} s (kubectl apply itself {applied:.1f} s) |"
    )
    print(f"| operator CPU during the burst | {cpu_s:.1f} s |")
    print(
        f"| operator RSS: after {args.latency} / peak during burst / {args.latency + args.burst} settled | "
        f"{figures['rss_after_latency_mib']:.0f} / {figures['rss_peak_burst_mib']:.0f} / "
        f"{figures['rss_settled_mib']:.0f} MiB |"
    )
    print(
        f"| operator started over {2 * args.burst + args.latency} resources ({args.burst} new): "
        f"all new Deployments / all Ready | {catchup_deploy:.1f} s / {catchup_s:.1f} s "
        f"(CPU {catchup_cpu:.1f} s, RSS {rss_catchup / mib:.0f} MiB) |"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
