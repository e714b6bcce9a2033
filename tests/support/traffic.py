"""Real requests to serving processes, in background threads: `Load` to one URL, `Traffic` to
every serving process a ModelDeployment has now, `ServiceTraffic` over a Service's endpoints
(with ground-truth feedback if asked); a test can switch the payload while they run (good
rows, rows the model fails on, large batches)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from devcluster.podrunner import PodRunner, ServingProcess
from devcluster.servingpod import loopback_of


@dataclass(frozen=True)
class SlowBody:
    """A request body sent in ``parts`` pieces over ``seconds`` (chunked): a slow client or
    link. The server's latency runs from a request's head to its answer, so each such request
    takes at least ``seconds`` by its own measure without costing it CPU."""

    body: dict[str, Any]
    seconds: float
    parts: int = 4

    def chunks(self) -> Iterator[bytes]:
        data = json.dumps(self.body).encode()
        step = -(-len(data) // self.parts)
        for start in range(0, len(data), step):
            if start:
                time.sleep(self.seconds / (self.parts - 1))
            yield data[start : start + step]


Payload = Callable[[], dict[str, Any]]
LoadPayload = Callable[[], dict[str, Any] | SlowBody]
Truth = Callable[[dict[str, Any]], list[Any]]
"""The ground-truth labels of a request body, one per row."""


class Load:
    """Requests to `url` + `path` in a background thread, as fast as the server answers (with
    a pause of `gap_s`), until stopped; `payload` may be switched while it runs."""

    def __init__(self, url: str, path: str, payload: LoadPayload, gap_s: float = 0.02) -> None:
        self.url, self.path, self.payload, self.gap_s = url, path, payload, gap_s
        self.codes: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                body = self.payload()
                try:
                    if isinstance(body, SlowBody):
                        headers = {"content-type": "application/json"}
                        sent = client.post(self.path, content=body.chunks(), headers=headers)
                    else:
                        sent = client.post(self.path, json=body)
                    code = sent.status_code
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


def rows(x: list[float], n: int = 1, name: str = "x") -> dict[str, Any]:
    """An inference request body of `n` copies of the row `x`, for the input `name`."""
    return {"inputs": [{"name": name, "shape": [n, len(x)], "datatype": "FP32", "data": x * n}]}


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
    code (0: no answer) and by the pod that answered; `payload` may be switched meanwhile.

    With `truth`, each answer (200) is judged against the request's ground-truth labels, a
    wrong one counted by pod, and the labels go back as feedback (`{"id", "labels"}`) to the
    endpoint that answered, as a labelling pipeline sends them: the runtime keeps the
    predictions by request id per process, and its online accuracy follows."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        service: str,
        model: str,
        payload: Payload,
        truth: Truth | None = None,
    ) -> None:
        self.api, self.namespace, self.service, self.model = api, namespace, service, model
        self.payload, self.truth = payload, truth
        self.codes: dict[int, int] = {}
        self.by_pod: dict[str, dict[int, int]] = {}
        self.wrong_by_pod: dict[str, int] = {}
        """Answers (200) whose labels were not the truth, by the pod that gave them."""
        self.feedback_codes: dict[int, int] = {}
        self.errors: list[str] = []
        """Why requests got no answer: pod, exception and seconds since the traffic began."""
        self.unserved_s = 0.0
        """Seconds with no ready endpoint once there was one: the model not served meanwhile."""
        self.answers: list[tuple[float, str, bool]] = []
        """Every request in order: when its answer came (monotonic), the pod that was asked,
        and whether the answer was good (not failed, and right where judged)."""
        self._began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-traffic", daemon=True)

    def total(self) -> int:
        return sum(self.codes.values())

    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code == 0 or code >= 500)

    def wrong(self) -> int:
        return sum(self.wrong_by_pod.values())

    def _judge(self, client: httpx.Client, pod: str, url: str, body: Any, answer: Any) -> bool:
        """Whether the answer was right; its labels go back as feedback either way."""
        assert self.truth is not None
        labels = self.truth(body)
        given = answer["outputs"][0]["data"]
        right = [float(v) for v in given] == [float(v) for v in labels]
        if not right:
            self.wrong_by_pod[pod] = self.wrong_by_pod.get(pod, 0) + 1
        try:
            code = client.post(
                f"{url}/v2/models/{self.model}/feedback",
                json={"id": answer["id"], "labels": labels},
            ).status_code
        except httpx.HTTPError:
            code = 0
        self.feedback_codes[code] = self.feedback_codes.get(code, 0) + 1
        return right

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
                body, right = self.payload(), True
                try:
                    reply = client.post(f"{url}/v2/models/{self.model}/infer", json=body)
                    code = reply.status_code
                    if code == 200 and self.truth is not None:
                        right = self._judge(client, pod, url, body, reply.json())
                except httpx.HTTPError as exc:
                    code = 0
                    at = time.monotonic() - self._began
                    self.errors.append(f"{pod}: {type(exc).__name__} {exc} at {at:.1f} s")
                good = right and code != 0 and code < 500
                self.answers.append((time.monotonic(), pod, good))
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
