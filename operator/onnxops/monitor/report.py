"""What the monitor says about one ModelDeployment, pure: its status fields (faults, the
conditions Healthy and MonitoringAvailable, phase Degraded while a fault stands) and one
Event per fault that starts or clears.

The reconcile path writes Ready/Placed/ModelAvailable and phase Ready|Progressing; the monitor
writes only the fields here. Both rebuild the conditions list from what they read and replace
only their own types, and `status.healthy_status` keeps Degraded while faults stand, so neither
undoes the other's meaning; a stale overwrite of a monitor condition is rewritten at the next
evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from onnxops.api import Fault, LowUse, ModelDeployment
from onnxops.monitor.detect import fault_changes
from onnxops.reasons import SETTLED_PROBLEMS, ConditionType, Phase, Reason
from onnxops.status import load_failed, set_condition

Event = tuple[str, str, str]  # (type, reason, message), as reconcile's


@dataclass(frozen=True)
class Availability:
    status: str  # True | False | Unknown
    reason: str
    message: str


def availability(
    md: ModelDeployment, problem: tuple[str, str] | None, unreadable: int
) -> Availability | None:
    """MonitoringAvailable after this evaluation; None keeps the current condition (a failed
    read or two is not yet worth flipping it)."""
    if problem is None:
        return Availability("True", Reason.METRICS_READ, "the deployment's metrics are read")
    reason, message = problem
    if reason in SETTLED_PROBLEMS or unreadable >= md.spec.monitoring.unknown_threshold:
        return Availability("False", reason, message)
    return None


def _condition(md: ModelDeployment, type_: str) -> dict[str, Any] | None:
    return next((c.wire() for c in md.status.conditions if c.type == type_), None)


def status_patch(
    md: ModelDeployment,
    faults: Sequence[Fault],
    avail: Availability | None,
    *,
    now: str,
    low_use: Sequence[LowUse] = (),
) -> dict[str, Any]:
    """The status fields the monitor owns, as they should be now. `low_use` is written
    beside the faults and touches neither the phase nor the conditions (see `api.LowUse`)."""
    generation = md.metadata.get("generation")
    conditions = [c.wire() for c in md.status.conditions]
    current = _condition(md, ConditionType.MONITORING_AVAILABLE)
    if avail is None and current is None:
        avail = Availability("Unknown", Reason.EVALUATING, "first reads of the metrics failed")
    if avail is not None:
        conditions = set_condition(
            conditions,
            type_=ConditionType.MONITORING_AVAILABLE,
            status=avail.status,
            reason=avail.reason,
            message=avail.message,
            generation=generation,
            now=now,
        )
    readable = (avail.status if avail else (current or {}).get("status")) == "True"
    if faults:
        healthy = (
            "False",
            Reason.FAULTS_FOUND,
            "; ".join(f"{f.signal}: {f.message}" for f in faults),
        )
    elif readable:
        healthy = ("True", Reason.NO_FAULTS, "every signal within its limits")
    else:
        healthy = (
            "Unknown",
            Reason.METRICS_UNAVAILABLE,
            "no fault seen, but the metrics cannot be read",
        )
    conditions = set_condition(
        conditions,
        type_=ConditionType.HEALTHY,
        status=healthy[0],
        reason=healthy[1],
        message=healthy[2][:1000],
        generation=generation,
        now=now,
    )
    patch: dict[str, Any] = {
        "faults": [f.wire() for f in faults],
        "conditions": conditions,
    }
    if low_use or md.status.low_use:
        patch["lowUse"] = [u.wire() for u in low_use]
    phase = md.status.phase
    if faults and phase == Phase.READY:
        patch["phase"] = Phase.DEGRADED
    elif not faults and phase == Phase.DEGRADED and not _held(md):
        # (Degraded by pods that cannot load the model, a rollback or an aborted rollout is
        # the reconcile path's to clear.)
        patch["phase"] = Phase.READY
    return patch


def _held(md: ModelDeployment) -> bool:
    """Degraded for a reason of the reconcile path's, not the monitor's faults."""
    held = (ConditionType.ROLLED_BACK, ConditionType.ROLLOUT_ABORTED)
    standing = any(c.type in held and c.status == "True" for c in md.status.conditions)
    return standing or load_failed(md.status.conditions)


def disabled_patch(md: ModelDeployment, reason: str, message: str, *, now: str) -> dict[str, Any]:
    """Monitoring off (no Prometheus URL, or spec.monitoring.enabled false): say so, drop faults."""
    return status_patch(md, [], Availability("False", reason, message), now=now)


def events(before: Sequence[Fault], after: Sequence[Fault]) -> list[Event]:
    """One Warning when a fault starts, one Normal when it clears; none per evaluation."""
    started, cleared = fault_changes(before, after)
    out: list[Event] = [
        ("Warning", Reason.FAULT_DETECTED, f"{f.signal}: {f.message}") for f in started
    ]
    out += [
        ("Normal", Reason.FAULT_CLEARED, f"{f.signal}: back within limits (fault since {f.since})")
        for f in cleared
    ]
    return out
