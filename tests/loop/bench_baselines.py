"""Baselines of bench/heal: the faults of tests/loop/test_heal.py with `remediation.mode: off`,
so only the kubelet's own restarts act on them. Not a test suite (the file name keeps it out
of `pytest tests`): bench/heal/run.py runs it by path and reads the rows it writes to
HEAL_BENCH_OUT — per fault, whether it recovered within the window, and how many restarts the
kubelet spent meanwhile.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from devcluster.podrunner import PodRunner
from support.benchrecord import bench_write
from support.deployments import healing_deployment
from support.faults import broken_copy
from support.operator_kit import Kube, Operator, wait_for
from support.readings import fault
from support.serving_harness import Models
from support.traffic import Traffic, rows

WINDOW_S = float(os.environ.get("HEAL_BENCH_WINDOW_S", "180"))
OFF = {"mode": "off"}


def _restarts(kube: Kube, name: str) -> int:
    pods = kube.items("pods", f"onnxops.io/model-deployment={name}")
    return sum(
        int(s.get("restartCount") or 0)
        for p in pods
        for s in p.get("status", {}).get("containerStatuses") or []
    )


def _watch(kube: Kube, name: str, started: float, recovered: Any) -> float | None:
    """Seconds from `started` until `recovered(status)` holds, None if not within the window."""
    while time.monotonic() - started < WINDOW_S:
        if recovered(kube.status(name)):
            return round(time.monotonic() - started, 1)
        time.sleep(1)
    return None


def test_oom_kills_without_remediation(
    watcher: Operator, loop_kube: Kube, loop_models: Models
) -> None:
    body = healing_deployment(
        "hungry-off",
        f"file://{loop_models.iris}",
        resources={"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        remediation=OFF,
    )
    body["spec"]["model"]["name"] = "iris"
    assert loop_kube.apply(body).returncode == 0
    try:
        started = time.monotonic()
        recovered = _watch(loop_kube, "hungry-off", started, lambda s: s.get("readyReplicas") == 1)
        bench_write(
            {
                "fault": "oom",
                "baseline": "off",
                "recover_s": recovered,
                "window_s": WINDOW_S,
                "kubelet_restarts": _restarts(loop_kube, "hungry-off"),
            }
        )
    finally:
        loop_kube.run("delete", "mdep", "hungry-off", "--wait=false", check=False)


def test_bad_model_without_remediation(
    watcher: Operator,
    loop_kube: Kube,
    loop_runner: PodRunner,
    loop_models: Models,
    tmp_path: Path,
) -> None:
    broken = broken_copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    body = healing_deployment("lookup-off", f"file://{loop_models.poison}", remediation=OFF)
    body["spec"]["model"].update({"name": "lookup-off", "version": "1"})
    assert loop_kube.apply(body).returncode == 0
    three = rows([3.0, 0.0])
    try:
        with Traffic(loop_runner, loop_kube.namespace, "lookup-off", lambda: three):
            wait_for(lambda: loop_kube.status("lookup-off").get("readyReplicas") == 1, "v1", 180)
            v2 = {"uri": f"file://{broken}", "name": "lookup-off", "version": "2"}
            patch = json.dumps({"spec": {"model": v2}})
            loop_kube.run("patch", "mdep", "lookup-off", "--type=merge", "-p", patch)
            started = time.monotonic()
            wait_for(lambda: fault(loop_kube.status("lookup-off"), "ErrorRate"), "ErrorRate", 180)
            recovered = _watch(
                loop_kube, "lookup-off", started, lambda s: not fault(s, "ErrorRate")
            )
        bench_write(
            {
                "fault": "bad-model",
                "baseline": "off",
                "recover_s": recovered,
                "window_s": WINDOW_S,
                "kubelet_restarts": _restarts(loop_kube, "lookup-off"),
            }
        )
    finally:
        loop_kube.run("delete", "mdep", "lookup-off", "--wait=false", check=False)
