"""The pod status the kubelet writes, built from the pod runner's view of its container.

Pure: `build_status(pod, container, ...)` returns the ``status`` object from the pod as last
read and the runner's `ContainerView`; the runner writes it only when it differs from what is
there. Conditions keep their ``lastTransitionTime`` while their status does not change, and
conditions the kubelet does not own (``PodScheduled``, ``DisruptionTarget``) are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodResizePending",
    "PodResizeInProgress",
)


def rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerView:
    """What the runner knows of the pod's one served container (wall-clock times)."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"  # waiting/terminated reason
    message: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    container_id: str = ""
    started: bool = False
    ready: bool = False
    restart_count: int = 0
    last_terminated: dict[str, Any] | None = None
    resources: dict[str, Any] = field(default_factory=dict)  # applied {requests, limits}
    allocated: dict[str, Any] = field(default_factory=dict)  # allocated requests


@dataclass(frozen=True)
class ResizeView:
    """The pod's resize state: a pending (Deferred/Infeasible) or in-progress (Error) resize."""

    pending_reason: str = ""
    pending_message: str = ""
    in_progress: bool = False
    error_message: str = ""


def _state(c: ContainerView) -> dict[str, Any]:
    if c.state == "running":
        return {"running": {"startedAt": rfc3339(c.started_at or 0)}}
    if c.state == "terminated":
        return {"terminated": terminated(c)}
    waiting: dict[str, Any] = {"reason": c.reason}
    if c.message:
        waiting["message"] = c.message
    return {"waiting": waiting}


def terminated(c: ContainerView) -> dict[str, Any]:
    """The ``terminated`` record of the container's current (just ended) run."""
    record: dict[str, Any] = {
        "reason": c.reason,
        "exitCode": c.exit_code if c.exit_code is not None else 0,
        "startedAt": rfc3339(c.started_at or 0),
        "finishedAt": rfc3339(c.finished_at or 0),
        "containerID": c.container_id,
    }
    if c.message:
        record["message"] = c.message
    return record


def container_status(c: ContainerView) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
        "state": _state(c),
        "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
    }
    if c.container_id:
        status["containerID"] = c.container_id
    if c.resources:
        status["resources"] = c.resources
    if c.allocated:
        status["allocatedResources"] = c.allocated
    return status


def _conditions(
    current: list[Mapping[str, Any]], wanted: dict[str, tuple[str, str, str]], now: str
) -> list[dict[str, Any]]:
    """Kubelet conditions from ``wanted`` (type → (status, reason, message)) in the kubelet's
    order; others' conditions kept; a transition time changes only with the status."""
    before = {c["type"]: c for c in current}
    out = [dict(c) for c in current if c["type"] not in KUBELET_CONDITIONS]
    for kind in KUBELET_CONDITIONS:
        if kind not in wanted:
            continue
        status, reason, message = wanted[kind]
        old = before.get(kind)
        since = (
            now
            if old is None or old.get("status") != status
            else old.get("lastTransitionTime") or now
        )
        cond: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        out.append(cond)
    return out


def build_status(
    pod: Mapping[str, Any],
    c: ContainerView,
    *,
    host_ip: str,
    pod_ip: str,
    start_time: float,
    observed_generation: int,
    resize: ResizeView,
    terminal_phase: str | None,
    now: float,
) -> dict[str, Any]:
    """The whole ``status`` of a pod whose one container is ``c``."""
    current = pod.get("status") or {}
    t = "True"
    ready = c.ready and terminal_phase is None
    not_ready = "" if ready else "ContainersNotReady"
    not_ready_msg = "" if ready else f"containers with unready status: [{c.name}]"
    wanted = {
        "PodReadyToStartContainers": ("False" if terminal_phase else t, "", ""),
        "Initialized": (t, "", ""),
        "ContainersReady": (t if ready else "False", not_ready, not_ready_msg),
        "Ready": (t if ready else "False", not_ready, not_ready_msg),
    }
    if resize.pending_reason:
        wanted["PodResizePending"] = (t, resize.pending_reason, resize.pending_message)
    if resize.in_progress or resize.error_message:
        reason = "Error" if resize.error_message else ""
        wanted["PodResizeInProgress"] = (t, reason, resize.error_message)
    if terminal_phase:
        phase = terminal_phase
    elif c.state == "waiting" and c.restart_count == 0 and c.started_at is None:
        phase = "Pending"
    else:
        phase = "Running"  # restartPolicy Always: a crash-looping pod stays Running
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": observed_generation,
        "conditions": _conditions(current.get("conditions") or [], wanted, rfc3339(now)),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": rfc3339(start_time),
        "containerStatuses": [container_status(c)],
    }
    if "qosClass" in current:
        status["qosClass"] = current["qosClass"]
    return status
