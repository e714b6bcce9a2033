"""In-place pod resize as the kubelet (v1.36) decides it, pure.

A resize is a change of a running container's ``spec.resources`` through the ``pods/resize``
subresource. The kubelet admits it if the new requests fit the node next to the other pods'
requests (else ``PodResizePending`` reason ``Deferred``, retried), then applies the limits to
the container's cgroup, restarting the container when its ``resizePolicy`` says
``RestartContainer`` for a resource that changed. A memory limit lowered below what the
container uses is not applied: ``PodResizeInProgress`` reason ``Error``, retried on each sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .cgroups import Limits
from .podenv import quantity


def cpu_m(value: Any) -> int | None:
    return None if value is None else round(quantity(str(value)) * 1000)


def mem_bytes(value: Any) -> int | None:
    return None if value is None else int(quantity(str(value)))


def limits_of(resources: Mapping[str, Any]) -> Limits:
    """The cgroup limits for a container's ``resources`` (requests default to limits)."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    return Limits(
        cpu_request_m=cpu_m(requests.get("cpu", limits.get("cpu"))),
        cpu_limit_m=cpu_m(limits.get("cpu")),
        memory_limit=mem_bytes(limits.get("memory")),
    )


def normalized(resources: Mapping[str, Any]) -> dict[str, Any]:
    """``resources`` as the kubelet reports them: requests defaulted from limits."""
    requests = dict(resources.get("requests") or {})
    limits = dict(resources.get("limits") or {})
    for name, value in limits.items():
        requests.setdefault(name, value)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def pod_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(cpu millicores, memory bytes) a pod holds on its node: the allocated values where the
    kubelet reported them, else the spec's (requests defaulted from limits)."""
    allocated = {
        s.get("name"): s.get("allocatedResources")
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    }
    cpu = mem = 0
    for container in pod.get("spec", {}).get("containers", []):
        requests = allocated.get(container.get("name")) or normalized(
            container.get("resources") or {}
        ).get("requests", {})
        cpu += cpu_m(requests.get("cpu")) or 0
        mem += mem_bytes(requests.get("memory")) or 0
    return cpu, mem


@dataclass(frozen=True)
class Decision:
    """What to do about a container's resources: nothing, defer, or apply (maybe restarting)."""

    action: str  # none | defer | apply
    message: str = ""
    restart: bool = False


def decide(
    desired: Mapping[str, Any],
    applied: Mapping[str, Any],
    resize_policy: Iterable[Mapping[str, Any]],
    *,
    node_allocatable: Mapping[str, Any],
    others: Iterable[tuple[int, int]],
) -> Decision:
    """Compare the spec's resources with the applied ones and decide like the kubelet."""
    want, have = normalized(desired), normalized(applied)
    if want == have:
        return Decision("none")
    w_cpu = cpu_m(want.get("requests", {}).get("cpu")) or 0
    w_mem = mem_bytes(want.get("requests", {}).get("memory")) or 0
    used_cpu = used_mem = 0
    for cpu, mem in others:
        used_cpu, used_mem = used_cpu + cpu, used_mem + mem
    cap_cpu = cpu_m(node_allocatable.get("cpu")) or 0
    cap_mem = mem_bytes(node_allocatable.get("memory")) or 0
    short = []
    if w_cpu + used_cpu > cap_cpu:
        short.append(f"cpu, requested: {w_cpu}, used: {used_cpu}, capacity: {cap_cpu}")
    if w_mem + used_mem > cap_mem:
        short.append(f"memory, requested: {w_mem}, used: {used_mem}, capacity: {cap_mem}")
    if short:
        return Decision("defer", "Node didn't have enough resource: " + "; ".join(short))
    policy = {p.get("resourceName"): p.get("restartPolicy") for p in resize_policy}
    changed = {
        name
        for name in ("cpu", "memory")
        if any(
            want.get(part, {}).get(name) != have.get(part, {}).get(name)
            for part in ("requests", "limits")
        )
    }
    restart = any(policy.get(name) == "RestartContainer" for name in changed)
    return Decision("apply", restart=restart)
