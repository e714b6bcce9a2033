"""Real requests to serving processes, in background threads: `Load` to one URL, `Traffic` to
every serving process a ModelDeployment has now; a test can switch the payload while they run
(good rows, rows the model fails on, large batches)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from devcluster.podrunner import PodRunner, ServingProcess
from devcluster.servingpod import loopback_of

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


def ready_endpoints(api: Any, namespace: str, service: str) -> list[tuple[str, str]]:
    """(pod name, loopback url) of a Service's ready endpoints, read from its EndpointSlices:
    what kube-proxy would route to. The devcluster's pod IPs are served on their loopback
    twin (`servingpod.loopback_of`), so no request leaves 127.0.0.0/8."""
    path = (
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        f"?labelSelector=kubernetes.io/service-name%3D{service}"
    )
    out = []
    for s in api.get(path).get("items") or []:
        port = next((p["port"] for p in s.get("ports") or [] if p.get("name") == "http"), None)
        for e in s.get("endpoints") or []:
            if port is None or (e.get("conditions") or {}).get("ready") is False:
                continue
            pod = (e.get("targetRef") or {}).get("name", "")
            out += [(pod, f"http://{loopback_of(a)}:{port}") for a in e.get("addresses") or []]
    return sorted(out)


class ServiceTraffic:
    """Requests spread over a Service's ready endpoints as kube-proxy spreads connections
    (round robin over what its EndpointSlices say, re-read twice a second), counted by status
    code (0: no answer) and by the pod that answered; `payload` may be switched meanwhile."""

    def __init__(
        self, api: Any, namespace: str, service: str, model: str, payload: Payload
    ) -> None:
        self.api, self.namespace, self.service, self.model = api, namespace, service, model
        self.payload = payload
        self.codes: dict[int, int] = {}
        self.by_pod: dict[str, dict[int, int]] = {}
        self.errors: list[str] = []
        """Why requests got no answer: pod, exception and seconds since the traffic began."""
        self.unserved_s = 0.0
        """Seconds with no ready endpoint once there was one: the model not served meanwhile."""
        self._began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-traffic", daemon=True)

    def total(self) -> int:
        return sum(self.codes.values())

    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code == 0 or code >= 500)

    def _run(self) -> None:
        endpoints: list[tuple[str, str]] = []
        read_at, turn, served, last = 0.0, 0, False, time.monotonic()
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                if time.monotonic() - read_at > 0.5:
                    # The apiserver busy for a moment: keep the last endpoints.
                    with contextlib.suppress(Exception):
                        endpoints = ready_endpoints(self.api, self.namespace, self.service)
                    read_at = time.monotonic()
                now = time.monotonic()
                since, last = now - last, now
                if not endpoints:
                    if served:
                        self.unserved_s += since
                    self._stop.wait(0.05)
                    continue
                served = True
                pod, url = endpoints[turn % len(endpoints)]
                turn += 1
                try:
                    code = client.post(
                        f"{url}/v2/models/{self.model}/infer", json=self.payload()
                    ).status_code
                except httpx.HTTPError as exc:
                    code = 0
                    at = time.monotonic() - self._began
                    self.errors.append(f"{pod}: {type(exc).__name__} {exc} at {at:.1f} s")
                self.codes[code] = self.codes.get(code, 0) + 1
                per = self.by_pod.setdefault(pod, {})
                per[code] = per.get(code, 0) + 1
                self._stop.wait(0.02)

    def __enter__(self) -> ServiceTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
