"""What remediation decides on, parsed from plain dicts: the monitor's findings
(`status.faults[]`) and the facts of each serving pod (readiness, restarts, last termination,
resize state). Pure; anything it cannot read is reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from onnxops.api import FAULT_SIGNALS
from onnxops.build import CONTAINER
from onnxops.pools import quantity
from onnxops.reasons import KubeCondition, KubeReason, PodPhase

SIGNALS = frozenset(FAULT_SIGNALS)  # the API's vocabulary, kept in one place


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time ("2026-01-02T03:04:05Z") as an aware datetime; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Finding:
    """One current fault: a signal over its threshold since some time, on some pods."""

    signal: str
    message: str = ""
    value: float | None = None
    threshold: float | None = None
    since: datetime | None = None
    pods: tuple[str, ...] = ()
    """Affected pods; empty means the whole deployment."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def findings(raw: Any) -> tuple[list[Finding], list[str]]:
    """The faults as Findings, and a problem for each entry that cannot be read.

    An unreadable entry makes the whole picture unknown to the guardrails: acting on a
    partial reading could restart a pod for a fault that is really somewhere else."""
    if not isinstance(raw, list):
        return [], [f"faults is {type(raw).__name__}, not a list"]
    found, problems = [], []
    for entry in raw:
        if not isinstance(entry, dict):
            problems.append(f"fault {entry!r} is not an object")
            continue
        signal = entry.get("signal") or entry.get("metric")
        if signal not in SIGNALS:
            problems.append(f"unknown fault signal {signal!r}")
            continue
        pods = entry.get("pods") or []
        if not isinstance(pods, list) or not all(isinstance(p, str) for p in pods):
            problems.append(f"fault {signal}: pods must be a list of names")
            continue
        found.append(
            Finding(
                signal=str(signal),
                message=str(entry.get("message") or ""),
                value=_number(entry.get("value")),
                threshold=_number(entry.get("threshold")),
                since=parse_time(entry.get("since")),
                pods=tuple(pods),
            )
        )
    return found, problems


@dataclass(frozen=True)
class PodFacts:
    """A serving pod as the kubelet (or the pod runner) reports it."""

    name: str
    uid: str
    phase: str
    ready: bool
    deleting: bool = False
    waiting: str | None = None
    """The container's waiting reason, e.g. CrashLoopBackOff."""
    last_terminated: str | None = None
    """Reason of the container's previous end, e.g. OOMKilled."""
    restarts: int = 0
    unschedulable_since: datetime | None = None
    resize: str | None = None
    """PodResizePending reason (Deferred, Infeasible) or PodResizeInProgress (InProgress, Error)."""
    resize_since: datetime | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    """The serving container's spec resources (what a resize changed)."""
    applied: dict[str, dict[str, str]] = field(default_factory=dict)
    """The serving container's resources as the kubelet reports them in status."""
    generation: int = 0
    observed_generation: int = 0

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


def same_resources(a: dict[str, dict[str, str]], b: dict[str, dict[str, str]]) -> bool:
    def norm(r: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
        return {part: {k: quantity(v) for k, v in vals.items()} for part, vals in r.items() if vals}

    try:
        return norm(a) == norm(b)
    except ValueError:
        return False


def _resources(value: Any) -> dict[str, dict[str, str]]:
    value = value or {}
    return {
        part: {k: str(v) for k, v in (value.get(part) or {}).items()}
        for part in ("requests", "limits")
    }


def pod_facts(pod: dict[str, Any]) -> PodFacts:
    """Facts of one pod object (as listed from the apiserver)."""
    meta, spec, st = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    container = next(
        (c for c in spec.get("containers") or [] if c.get("name") == CONTAINER),
        (spec.get("containers") or [{}])[0],
    )
    statuses = st.get("containerStatuses") or []
    cstatus: dict[str, Any] = next(
        (s for s in statuses if s.get("name") == container.get("name")), {}
    )
    scheduled = conditions.get(KubeCondition.POD_SCHEDULED, {})
    unschedulable = (
        scheduled.get("status") == "False" and scheduled.get("reason") == KubeReason.UNSCHEDULABLE
    )
    resize, resize_since = None, None
    for kind in (KubeCondition.POD_RESIZE_PENDING, KubeCondition.POD_RESIZE_IN_PROGRESS):
        cond = conditions.get(kind)
        if cond and cond.get("status") == "True":
            resize = cond.get("reason") or (
                KubeReason.RESIZE_IN_PROGRESS
                if kind == KubeCondition.POD_RESIZE_IN_PROGRESS
                else kind
            )
            resize_since = parse_time(cond.get("lastTransitionTime"))
    return PodFacts(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        phase=str(st.get("phase", PodPhase.PENDING)),
        ready=conditions.get(KubeCondition.READY, {}).get("status") == "True",
        deleting=bool(meta.get("deletionTimestamp")),
        waiting=((cstatus.get("state") or {}).get("waiting") or {}).get("reason"),
        last_terminated=((cstatus.get("lastState") or {}).get("terminated") or {}).get("reason"),
        restarts=int(cstatus.get("restartCount") or 0),
        unschedulable_since=parse_time(scheduled.get("lastTransitionTime"))
        if unschedulable
        else None,
        resize=resize,
        resize_since=resize_since,
        resources=_resources(container.get("resources")),
        applied=_resources(cstatus.get("resources")),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(st.get("observedGeneration") or 0),
    )
