"""Real requests to serving processes, in background threads: `Load` to one URL, `Traffic` to
every serving process a ModelDeployment has now; a test can switch the payload while they run
(good rows, rows the model fails on, large batches)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
from devcluster.podrunner import PodRunner, ServingProcess

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


def serving_ready(proc: ServingProcess) -> bool:
    try:
        return httpx.get(f"{proc.url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
