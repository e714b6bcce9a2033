"""Cost of one monitor cycle for many ModelDeployments: queries per cycle, CPU and wall time
of the cycle in the operator's process, the CPU Prometheus spends answering, and RSS.

A fresh devcluster holds N ModelDeployments (no operator runs, so no pods: the pod signals
read as "no pods"); Prometheus holds 10 minutes of their series (the runtime's onnxops_*
and cAdvisor's container_* names, one pod each), backfilled with
`promtool tsdb create-blocks-from openmetrics` instead of N serving processes. The cycle is
`onnxops.monitor.cycle.Monitor.run_cycle`, the operator's own code, run in this process.
`--pools 1 16` measures each N once per write pool size (`monitor_write_concurrency`: 1 is
one write after another), each in a namespace of its own, and prints the ratio.

    .venv/bin/python bench/watch/bench_cycle.py --models 1000 --pools 1 16 [--json bench/watch/cycle.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
for extra in ("hack/devcluster", "tests"):  # the devcluster tool and tests/support
    sys.path.insert(0, str(ROOT / extra))

from devcluster import controlplane  # noqa: E402
from devcluster import prometheus as prom  # noqa: E402
from devcluster.binaries import require  # noqa: E402
from support.deployments import model_deployment  # noqa: E402

LE = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "+Inf")
STEP_S, SPAN_S = 15, 600


def openmetrics(namespace: str, n: int, end: int) -> str:
    """N models' series, one sample every STEP_S for SPAN_S seconds before `end`."""
    rng = random.Random(0)
    times = list(range(end - SPAN_S, end + 1, STEP_S))
    families: dict[str, list[str]] = {}

    def add(name: str, labels: str, values: list[float]) -> None:
        rows = families.setdefault(name, [])
        rows += [f"{name}{{{labels}}} {v:.6g} {t}" for t, v in zip(times, values, strict=True)]

    for i in range(n):
        md, pod = f"m{i}", f"m{i}-abc-{i}"
        base = f'namespace="{namespace}",onnxops_io_model_deployment="{md}",pod="{pod}"'
        rate = rng.uniform(5, 50)
        ok = [rate * k * STEP_S for k in range(len(times))]
        add("onnxops_requests_total", f'{base},endpoint="infer",code="200"', ok)
        add("onnxops_requests_total", f'{base},endpoint="infer",code="500"', [v * 0.01 for v in ok])
        for j, le in enumerate(LE):
            share = min(1.0, 0.2 + 0.15 * j)
            add(
                "onnxops_request_duration_seconds_bucket",
                f'{base},le="{le}"',
                [v * share for v in ok],
            )
        add("onnxops_model_ready", base, [1.0] * len(times))
        add("onnxops_online_accuracy", base, [rng.uniform(0.8, 1.0)] * len(times))
        add("onnxops_drift_psi_max", base, [rng.uniform(0, 0.4)] * len(times))
        cont = f'namespace="{namespace}",pod="{pod}",container="server"'
        add(
            "container_cpu_usage_seconds_total", cont, [0.1 * k * STEP_S for k in range(len(times))]
        )
        add("container_cpu_cfs_periods_total", cont, [150.0 * k for k in range(len(times))])
        add("container_cpu_cfs_throttled_periods_total", cont, [3.0 * k for k in range(len(times))])
        add("container_memory_working_set_bytes", cont, [rng.uniform(5e7, 2e8)] * len(times))
        add("container_oom_events_total", cont, [0.0] * len(times))
    lines = []
    for name, rows in families.items():
        lines.append(f"# TYPE {name} unknown")
        lines += rows
    return "\n".join([*lines, "# EOF", ""])


def models(namespace: str, n: int) -> dict[str, Any]:
    items = [
        model_deployment(
            f"m{i}", namespace=namespace, model={"uri": f"https://models.example.com/m{i}.onnx"}
        )
        for i in range(n)
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(cluster: Any, work: Path, n: int, pool: int) -> list[dict[str, Any]]:
    from onnxops.config import OperatorConfig
    from onnxops.monitor.cycle import Monitor

    namespace = f"bench-{n}-p{pool}"
    cluster.run_kubectl("create", "namespace", namespace)
    cluster.run_kubectl("apply", "-f", "-", input=json.dumps(models(namespace, n)))
    end = int(time.time()) - 60
    pdir = work / f"prom-{namespace}"
    (pdir / "tsdb").mkdir(parents=True)
    (work / f"series-{namespace}.om").write_text(openmetrics(namespace, n, end))
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(work / f"series-{namespace}.om"),
            str(pdir / "tsdb"),
        ],
        check=True,
        capture_output=True,
    )
    server = prom.start(pdir, scrape_interval="15s", timeout_s=120)
    try:
        prom_proc = psutil.Process(server.record.pid)
        cfg = OperatorConfig(
            prometheus_url=server.url, monitor_rate_window="1m", monitor_history_step_s=30,
            namespaces=namespace, monitor_write_concurrency=pool,
        )  # fmt: skip
        monitor = Monitor(cfg)
        listing = cluster.kubectl_json("get", "mdep", "-n", namespace)["items"]
        rows = []
        for k, at in enumerate((end - 90, end - 60, end - 30, end)):
            before_cpu, before_prom = cpu_s(), sum(prom_proc.cpu_times()[:2])
            report = monitor.run_cycle(listing, float(at))
            rows.append(
                {
                    "models": n,
                    "pool": pool,
                    "cycle": k + 1,
                    "queries": report.queries,
                    "status_writes": report.writes,
                    "wall_s": round(report.seconds, 3),
                    "operator_cpu_s": round(cpu_s() - before_cpu, 3),
                    "prometheus_cpu_s": round(sum(prom_proc.cpu_times()[:2]) - before_prom, 3),
                    "rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
                }
            )
            print(rows[-1], flush=True)
            listing = cluster.kubectl_json("get", "mdep", "-n", namespace)["items"]
        return rows
    finally:
        server.stop()
        # Waited for, so the next measurement does not share the apiserver with a deletion.
        cluster.run_kubectl("delete", "namespace", namespace, "--timeout=180s", check=False)


def pool_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each cycle that wrote, the smallest pool's wall time over each larger pool's."""
    out = []
    by = {(r["models"], r["pool"], r["cycle"]): r for r in rows}
    for (n, pool, cycle), r in sorted(by.items()):
        base_pool = min(p for (m, p, c) in by if m == n and c == cycle)
        base = by[(n, base_pool, cycle)]
        if pool == base_pool or not base["status_writes"] or not r["wall_s"]:
            continue
        out.append(
            {
                "models": n,
                "cycle": cycle,
                "status_writes": r["status_writes"],
                "pool": pool,
                "wall_s": r["wall_s"],
                "baseline_pool": base_pool,
                "baseline_wall_s": base["wall_s"],
                "speedup": round(base["wall_s"] / r["wall_s"], 2),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--pools", type=int, nargs="+", default=[16], help="write pool sizes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        work = Path(tmp)
        cluster = controlplane.start(work / "cluster", bin_dir=require(), tie_to_parent=True)
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        try:
            cluster.run_kubectl("apply", "-f", str(ROOT / "crds"))
            cluster.run_kubectl(
                "wait", "--for=condition=Established", "--timeout=60s",
                "crd/modeldeployments.onnxops.io",
            )  # fmt: skip
            for n in args.models:
                for pool in args.pools:
                    rows += measure(cluster, work, n, pool)
        finally:
            cluster.stop()
    print(
        "\n| models | pool | cycle | queries | status writes | wall s | operator CPU s "
        "| Prometheus CPU s | RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['models']} | {r['pool']} | {r['cycle']} | {r['queries']} | {r['status_writes']} "
            f"| {r['wall_s']} | {r['operator_cpu_s']} | {r['prometheus_cpu_s']} | {r['rss_mib']} |"
        )
    ratios = pool_ratios(rows)
    for r in ratios:
        print(
            f"{r['models']} models, cycle {r['cycle']} ({r['status_writes']} writes): pool "
            f"{r['pool']} {r['wall_s']} s vs pool {r['baseline_pool']} {r['baseline_wall_s']} s"
            f" = {r['speedup']}x"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "pool_ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
