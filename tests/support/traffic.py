"""Test-only fault tools for the watch loop tests: a load generator that keeps real HTTP
requests flowing to a serving process, whose payload a test can switch (good rows, rows the
model fails on, large batches), and helpers to read what the operator says."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import onnx
from devcluster.podrunner import PodRunner, ServingProcess
from onnx import TensorProto, helper
from operator_kit import Kube, wait_for

Payload = Callable[[], dict[str, Any]]


class Load:
    """Requests to `url` + `path` in a background thread, as fast as the server answers (with
    a pause of `gap_s`), until stopped; `payload` may be switched while it runs."""

    def __init__(self, url: str, path: str, payload: Payload, gap_s: float = 0.02) -> None:
        self.url, self.path, self.payload, self.gap_s = url, path, payload, gap_s
        self.codes: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    code = client.post(self.path, json=self.payload()).status_code
                except httpx.HTTPError:
                    code = 0
                self.codes[code] = self.codes.get(code, 0) + 1
                self._stop.wait(self.gap_s)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def fault(status: dict[str, Any], signal: str) -> dict[str, Any] | None:
    return next((f for f in status.get("faults") or [] if f["signal"] == signal), None)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


FAST = {"intervalSeconds": 5, "failureThreshold": 2, "unknownThreshold": 2}


def model_deployment(name: str, uri: str, **monitoring: Any) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": uri, "name": name},
            "target": {"pool": "cloud"},
            "monitoring": {**FAST, **monitoring},
            # The monitor is watched alone here; healing its faults is tests/loop/test_heal.py's.
            "remediation": {"mode": "off"},
        },
    }


def healing_deployment(
    name: str, uri: str, *, thresholds: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """The monitor tests' ModelDeployment (fast monitoring, no anomaly detection) with
    remediation at its defaults unless ``spec`` says otherwise (the heal tests)."""
    extra = {"thresholds": thresholds} if thresholds else {}
    body = model_deployment(name, uri, anomaly={"enabled": False}, **extra)
    del body["spec"]["remediation"]  # the watch tests turn healing off
    body["spec"].update(spec)
    return body


def taken(status: dict[str, Any], action: str | None = None) -> list[dict[str, Any]]:
    """The actions taken (or, in dryRun, recorded as if taken): not refusals, not warnings."""
    return [
        r
        for r in status.get("remediations") or []
        if r["result"] != "Refused" and r["action"] != "warn" and action in (None, r["action"])
    ]


def succeeded(kube: Kube, name: str, action: str, timeout_s: float) -> list[dict[str, Any]]:
    """The records of `action` once one Succeeded; on a timeout the failure shows status."""
    try:
        found: list[dict[str, Any]] = wait_for(
            lambda: [
                r
                for r in kube.status(name).get("remediations") or []
                if r["action"] == action and r["result"] == "Succeeded"
            ],
            f"the {action} Succeeded",
            timeout_s,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status {kube.status(name)}") from None
    return found


def live_pods(kube: Kube, name: str) -> dict[str, dict[str, Any]]:
    """The ModelDeployment's pods that are not being deleted, by name."""
    return {
        p["metadata"]["name"]: p
        for p in kube.items("pods", f"onnxops.io/model-deployment={name}")
        if not p["metadata"].get("deletionTimestamp")
    }


def restarts(pod: dict[str, Any]) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return int(statuses[0].get("restartCount") or 0)


def rows(x: list[float], n: int = 1) -> dict[str, Any]:
    """An inference request body of `n` copies of the row `x`."""
    return {"inputs": [{"name": "x", "shape": [n, len(x)], "datatype": "FP32", "data": x * n}]}


class Traffic:
    """Requests to every serving process a ModelDeployment has now (pods come and go with
    restarts and rollouts), counting answers by status code; `payload` may be switched while it
    runs (say, to rows the model fails on)."""

    def __init__(self, runner: PodRunner, namespace: str, name: str, payload: Payload) -> None:
        self.runner, self.prefix, self.name = runner, f"{namespace}.{name}-", name
        self.payload = payload
        self.codes: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                procs = [p for t, p in self.runner.serving().items() if t.startswith(self.prefix)]
                for proc in procs:
                    try:
                        code = client.post(
                            f"{proc.url}/v2/models/{self.name}/infer", json=self.payload()
                        ).status_code
                    except httpx.HTTPError:
                        code = 0
                    self.codes[code] = self.codes.get(code, 0) + 1
                self._stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def bench_record(fault_type: str, *moments_and_actions: float) -> None:
    """With HEAL_BENCH_OUT set (bench/heal/run.py), append this run's figures: seconds from
    the fault's injection to its detection and to recovery, and actions taken."""
    started, detected, recovered, actions = moments_and_actions
    bench_write(
        {
            "fault": fault_type,
            "detect_s": round(detected - started, 1),
            "recover_s": round(recovered - started, 1),
            "actions": int(actions),
        }
    )


def bench_write(row: dict[str, Any]) -> None:
    """Append one row of figures to HEAL_BENCH_OUT (JSON lines), when it is set."""
    out = os.environ.get("HEAL_BENCH_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def broken_copy(good: Path, out: Path) -> Path:
    """The same model with a shorter lookup table: rows with index 3 now fail at inference."""
    model = onnx.load(str(good))
    (table,) = [t for t in model.graph.initializer if t.name == "table"]
    table.CopyFrom(helper.make_tensor("table", TensorProto.FLOAT, [2], [10.0, 11.0]))
    onnx.save(model, str(out))
    return out


def serving_ready(proc: ServingProcess) -> bool:
    try:
        return httpx.get(f"{proc.url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def status_when(
    kube: Kube, name: str, what: str, test: Any, timeout_s: float = 120
) -> dict[str, Any]:
    st: dict[str, Any] = wait_for(
        lambda: (s := kube.status(name)) and test(s) and s, what, timeout_s=timeout_s
    )
    return st
