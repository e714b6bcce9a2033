"""Pod facts the Kubernetes API already knows (readiness, restarts, the last termination's
reason, CrashLoopBackOff, Unschedulable, the serving container's limits): read from the pod
objects, pure, so no second metrics system (kube-state-metrics) is needed for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onnxops.build import CONTAINER, MD_LABEL
from onnxops.pools import quantity
from onnxops.reasons import KubeCondition, KubeReason, PodPhase


@dataclass(frozen=True)
class PodFacts:
    """One serving pod as the API reports it."""

    namespace: str
    name: str
    model: str
    """The ModelDeployment it belongs to."""
    phase: str
    ready: bool
    deleting: bool
    restarts: int
    last_termination: str | None
    """Reason of the serving container's previous end (OOMKilled, Error, Completed)."""
    last_termination_at: float | None
    waiting: str | None
    """Why the container is waiting now (CrashLoopBackOff, ContainerCreating, ...)."""
    unschedulable: str | None
    """The scheduler's message while no node fits."""
    cpu_cores: float | None
    """The container's CPU limit: what utilization is against. Without a limit a container may
    use idle CPU beyond its request, which is no fault, so CPU use is then not judged."""
    memory_bytes: float | None
    """The container's memory limit (the OOM killer's line); None without one."""
    cpu_request: float | None = None
    """The container's CPU request in cores (what long low use is judged against)."""
    memory_request: float | None = None
    """The container's memory request in bytes."""


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _amount(resources: Mapping[str, Any], kind: str, name: str) -> float | None:
    raw = (resources.get(kind) or {}).get(name)
    if raw is None:
        return None
    try:
        return float(quantity(raw))
    except (ValueError, ArithmeticError):
        return None


def facts(pod: Mapping[str, Any]) -> PodFacts | None:
    """The facts of a serving pod; None for a pod that is not one of ours."""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    model = (meta.get("labels") or {}).get(MD_LABEL)
    container = next((c for c in spec.get("containers") or [] if c.get("name") == CONTAINER), None)
    if not model or container is None:
        return None
    status: dict[str, Any] = next(
        (c for c in st.get("containerStatuses") or [] if c.get("name") == CONTAINER), {}
    )
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    waiting = (status.get("state") or {}).get("waiting") or {}
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    scheduled = conditions.get(KubeCondition.POD_SCHEDULED) or {}
    unschedulable = (
        scheduled.get("message") or "no node fits"
        if scheduled.get("status") == "False"
        and scheduled.get("reason") == KubeReason.UNSCHEDULABLE
        else None
    )
    resources = container.get("resources") or {}
    return PodFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        model=str(model),
        phase=str(st.get("phase", PodPhase.PENDING)),
        ready=(conditions.get(KubeCondition.READY) or {}).get("status") == "True",
        deleting=bool(meta.get("deletionTimestamp")),
        restarts=int(status.get("restartCount") or 0),
        last_termination=terminated.get("reason"),
        last_termination_at=_timestamp(terminated.get("finishedAt")),
        waiting=waiting.get("reason"),
        unschedulable=unschedulable,
        cpu_cores=_amount(resources, "limits", "cpu"),
        memory_bytes=_amount(resources, "limits", "memory"),
        # Kubernetes defaults a request to the limit when only the limit is set.
        cpu_request=_amount(resources, "requests", "cpu") or _amount(resources, "limits", "cpu"),
        memory_request=_amount(resources, "requests", "memory")
        or _amount(resources, "limits", "memory"),
    )


def by_model(pods: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[PodFacts]]:
    """Serving pods grouped by (namespace, ModelDeployment); terminating ones left out."""
    grouped: dict[tuple[str, str], list[PodFacts]] = {}
    for pod in pods:
        found = facts(pod)
        if found is not None and not found.deleting:
            grouped.setdefault((found.namespace, found.model), []).append(found)
    return grouped
