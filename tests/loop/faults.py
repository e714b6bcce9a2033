"""Test-only fault tools for the watch loop tests: a load generator that keeps real HTTP
requests flowing to a serving process, whose payload a test can switch (good rows, rows the
model fails on, large batches), and helpers to read what the operator says."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
from devcluster.podrunner import ServingProcess
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
