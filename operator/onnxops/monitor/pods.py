"""The facts of each serving pod (`PodFacts`): readiness, restarts, the last termination,
CrashLoopBackOff, Unschedulable, resize state, the serving container's resources. Read from
the pod objects the monitor lists once per cycle, and handed to heal with the faults; pure,
so no second metrics system (kube-state-metrics) is needed for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from onnxops.build import CONTAINER, MD_LABEL
from onnxops.pools import Resources, quantity
from onnxops.reasons import KubeCondition, KubeReason, PodPhase

# Karpenter's annotation; Cluster Autoscaler's `safe-to-evict: "false"` is set beside it.
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time ("2026-01-02T03:04:05Z") as an aware datetime; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PodFacts:
    """One serving pod as the API (the kubelet, or the pod runner) reports it."""

    namespace: str
    name: str
    uid: str
    model: str
    """The ModelDeployment it belongs to ("" without the label)."""
    phase: str
    ready: bool
    deleting: bool = False
    restarts: int = 0
    last_termination: str | None = None
    """Reason of the serving container's previous end (OOMKilled, Error, Completed)."""
    last_termination_at: float | None = None
    waiting: str | None = None
    """Why the container is waiting now (CrashLoopBackOff, ContainerCreating, ...)."""
    running: bool = False
    """The serving container runs now (the only state in which the kubelet resizes it)."""
    unschedulable: str | None = None
    """The scheduler's message while no node fits."""
    unschedulable_since: datetime | None = None
    cpu_cores: float | None = None
    """The container's CPU limit: what utilization is against. Without a limit a container may
    use idle CPU beyond its request, which is no fault, so CPU use is then not judged."""
    memory_bytes: float | None = None
    """The container's memory limit (the OOM killer's line); None without one."""
    cpu_request: float | None = None
    """The container's CPU request in cores (what long low use is judged against)."""
    memory_request: float | None = None
    """The container's memory request in bytes."""
    resize: str | None = None
    """PodResizePending reason (Deferred, Infeasible) or PodResizeInProgress (InProgress, Error)."""
    resize_since: datetime | None = None
    resources: Resources = field(default_factory=dict)
    """The serving container's spec resources (what a resize changed)."""
    applied: Resources = field(default_factory=dict)
    """The serving container's resources as the kubelet reports them in status."""
    generation: int = 0
    observed_generation: int = 0
    disruption_hint: bool = False
    """The pod asks cluster autoscalers not to disrupt it (`karpenter.sh/do-not-disrupt`)."""

    @property
    def crash_looping(self) -> bool:
        return self.waiting == KubeReason.CRASH_LOOP_BACK_OFF

    @property
    def resized(self) -> bool:
        """The kubelet applied the pod's current resources (v1.36: done = observed the
        generation, no resize condition, and status resources equal to spec)."""
        return (
            self.resize is None
            and self.observed_generation >= self.generation
            and same_resources(self.applied, self.resources)
        )


def same_resources(a: Resources, b: Resources) -> bool:
    def norm(r: Resources) -> dict[str, dict[str, Any]]:
        return {part: {k: quantity(v) for k, v in vals.items()} for part, vals in r.items() if vals}

    try:
        return norm(a) == norm(b)
    except ValueError:
        return False


def _timestamp(text: str | None) -> float | None:
    moment = parse_time(text)
    return None if moment is None else moment.timestamp()


def _amount(resources: Mapping[str, Any], kind: str, name: str) -> float | None:
    raw = (resources.get(kind) or {}).get(name)
    if raw is None:
        return None
    try:
        return float(quantity(raw))
    except (ValueError, ArithmeticError):
        return None


def _resources(value: Any) -> Resources:
    value = value or {}
    return {
        part: {k: str(v) for k, v in (value.get(part) or {}).items()}
        for part in ("requests", "limits")
    }


def _resize(conditions: Mapping[Any, Mapping[str, Any]]) -> tuple[str | None, datetime | None]:
    resize, since = None, None
    for kind in (KubeCondition.POD_RESIZE_PENDING, KubeCondition.POD_RESIZE_IN_PROGRESS):
        cond = conditions.get(kind)
        if cond and cond.get("status") == "True":
            resize = cond.get("reason") or (
                KubeReason.RESIZE_IN_PROGRESS
                if kind == KubeCondition.POD_RESIZE_IN_PROGRESS
                else kind
            )
            since = parse_time(cond.get("lastTransitionTime"))
    return resize, since


def facts(pod: Mapping[str, Any]) -> PodFacts | None:
    """The facts of a serving pod; None for a pod without the serving container."""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    container = next((c for c in spec.get("containers") or [] if c.get("name") == CONTAINER), None)
    if container is None:
        return None
    status: dict[str, Any] = next(
        (c for c in st.get("containerStatuses") or [] if c.get("name") == CONTAINER), {}
    )
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    waiting = (status.get("state") or {}).get("waiting") or {}
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    scheduled = conditions.get(KubeCondition.POD_SCHEDULED) or {}
    unschedulable = (
        scheduled.get("status") == "False" and scheduled.get("reason") == KubeReason.UNSCHEDULABLE
    )
    resources = container.get("resources") or {}
    resize, resize_since = _resize(conditions)
    return PodFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        model=str((meta.get("labels") or {}).get(MD_LABEL) or ""),
        phase=str(st.get("phase", PodPhase.PENDING)),
        ready=(conditions.get(KubeCondition.READY) or {}).get("status") == "True",
        deleting=bool(meta.get("deletionTimestamp")),
        restarts=int(status.get("restartCount") or 0),
        last_termination=terminated.get("reason"),
        last_termination_at=_timestamp(terminated.get("finishedAt")),
        waiting=waiting.get("reason"),
        running="running" in (status.get("state") or {}),
        unschedulable=scheduled.get("message") or "no node fits" if unschedulable else None,
        unschedulable_since=parse_time(scheduled.get("lastTransitionTime"))
        if unschedulable
        else None,
        cpu_cores=_amount(resources, "limits", "cpu"),
        memory_bytes=_amount(resources, "limits", "memory"),
        # Kubernetes defaults a request to the limit when only the limit is set.
        cpu_request=_amount(resources, "requests", "cpu") or _amount(resources, "limits", "cpu"),
        memory_request=_amount(resources, "requests", "memory")
        or _amount(resources, "limits", "memory"),
        resize=resize,
        resize_since=resize_since,
        resources=_resources(resources),
        applied=_resources(status.get("resources")),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(st.get("observedGeneration") or 0),
        disruption_hint=(meta.get("annotations") or {}).get(DO_NOT_DISRUPT) == "true",
    )


def grouped(pods: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[PodFacts]]:
    """Every serving pod (terminating ones too) by (namespace, ModelDeployment), parsed once."""
    out: dict[tuple[str, str], list[PodFacts]] = {}
    for pod in pods:
        found = facts(pod)
        if found is not None and found.model:
            out.setdefault((found.namespace, found.model), []).append(found)
    return out


def live(
    grouped_pods: Mapping[tuple[str, str], list[PodFacts]],
) -> dict[tuple[str, str], list[PodFacts]]:
    """The same, terminating pods left out (what the monitor's signals judge)."""
    out = {key: [p for p in found if not p.deleting] for key, found in grouped_pods.items()}
    return {key: found for key, found in out.items() if found}


def by_model(pods: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[PodFacts]]:
    """Serving pods grouped by (namespace, ModelDeployment); terminating ones left out."""
    return live(grouped(pods))
