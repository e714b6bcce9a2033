"""Container probes run as the kubelet runs them: startup, then liveness and readiness.

`Prober` holds one probe's schedule and counters and is driven by the runner's sync loop with
``now`` passed in (so it is tested without sleeping); `http_get` performs one httpGet probe.
Kubelet semantics kept: defaults period 10 s, timeout 1 s, success 1, failure 3; a probe's first
run waits ``initialDelaySeconds`` from the container's start; liveness and readiness wait for
the startup probe to succeed; readiness starts as failed; liveness and startup need one success
(the API forbids another successThreshold for them).
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a container spec, with the kubelet's defaults filled in."""

    kind: str  # startup | liveness | readiness
    path: str
    port: int
    host: str = "127.0.0.1"  # the pod's loopback address (its network namespace, here)
    scheme: str = "HTTP"
    initial_delay_s: float = 0
    period_s: float = 10
    timeout_s: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


class ProbeError(ValueError):
    """A probe the runner cannot run (exec/tcp/grpc, or a port it does not know)."""


def parse(
    kind: str, probe: Mapping[str, Any], ports: Mapping[str, int], host: str = "127.0.0.1"
) -> ProbeSpec:
    """A container's ``<kind>Probe`` with its port (a number or a port name) mapped by ``ports``
    (keys: container port numbers as strings and port names) to the process's port on
    ``host``."""
    action = probe.get("httpGet")
    if action is None:
        raise ProbeError(f"{kind} probe: only httpGet is supported by the pod runner")
    port = ports.get(str(action.get("port", "")))
    if port is None:
        raise ProbeError(f"{kind} probe: unknown port {action.get('port')!r}")
    return ProbeSpec(
        kind=kind,
        path=str(action.get("path") or "/"),
        port=port,
        host=host,
        scheme=str(action.get("scheme", "HTTP")),
        initial_delay_s=float(probe.get("initialDelaySeconds", 0)),
        period_s=float(probe.get("periodSeconds", 10)),
        timeout_s=float(probe.get("timeoutSeconds", 1)),
        success_threshold=int(probe.get("successThreshold", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )


def http_get(spec: ProbeSpec) -> tuple[bool, str]:
    """One probe: success is a status in [200, 400), as for the kubelet; with a message."""
    conn_cls = http.client.HTTPSConnection if spec.scheme == "HTTPS" else http.client.HTTPConnection
    conn = conn_cls(spec.host, spec.port, timeout=spec.timeout_s)
    try:
        conn.request("GET", spec.path, headers={"User-Agent": "kube-probe/1.36"})
        status = conn.getresponse().status
    except TimeoutError:
        return False, f'Get "http://{spec.host}:{spec.port}{spec.path}": context deadline exceeded'
    except OSError as error:
        return False, f'Get "http://{spec.host}:{spec.port}{spec.path}": {error}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"


class Prober:
    """One probe's schedule and result for one run of a container."""

    def __init__(self, spec: ProbeSpec, started_at: float) -> None:
        self.spec = spec
        self.next_at = started_at + spec.initial_delay_s
        self.successes = 0
        self.failures = 0
        # Readiness starts failed; startup and liveness start unknown (treated as not failed).
        self.result: bool | None = False if spec.kind == "readiness" else None
        self.in_flight = False
        self.last_message = ""

    def due(self, now: float) -> bool:
        return not self.in_flight and now >= self.next_at

    def record(self, ok: bool, message: str, now: float) -> bool | None:
        """Count one probe result; return the new result when it flipped, else None."""
        self.in_flight = False
        self.next_at = now + self.spec.period_s
        self.last_message = message
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.result is not True and self.successes >= self.spec.success_threshold:
                self.result = True
                return True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.result is not False and self.failures >= self.spec.failure_threshold:
                self.result = False
                return False
        return None
