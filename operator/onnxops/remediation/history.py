"""The audit trail and memory of remediation, as pure functions over status: the bounded
history of actions (`status.remediations`), the Events that announce them, the `Remediating`
condition, the override part each action stands for, and the model versions seen healthy.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from onnxops import status
from onnxops.api import (
    ModelDeployment,
    ModelMarks,
    Override,
    RemediationRecord,
    ResourceRequirements,
    Result,
)
from onnxops.monitor.pods import parse_time
from onnxops.override import active, model_ref
from onnxops.reasons import ConditionType, HealResult, Reason
from onnxops.remediation.action import Action
from onnxops.remediation.findings import iso
from onnxops.remediation.guardrails import IN_FLIGHT, Verdict

LIMIT = 50

Event = tuple[str, str, str]  # (type Normal|Warning, reason, message)


def new_record(verdict: Verdict, now: datetime) -> RemediationRecord:
    action = verdict.action
    return RemediationRecord(
        id=uuid.uuid4().hex[:12],
        time=iso(now),
        action=action.kind,
        reason=action.reason,
        result=verdict.result,
        refusal=verdict.refusal,
        message="; ".join(m for m in (action.message, verdict.note) if m),
        pods=list(action.pods),
        finished=iso(now) if verdict.result == HealResult.SUCCEEDED else None,
    )


def appended(
    history: list[RemediationRecord], records: list[RemediationRecord]
) -> list[RemediationRecord]:
    """History with new records, newest last, bounded; an action in flight is never dropped
    (its record is how an operator restarted mid-action resumes it)."""
    out = [*history, *records]
    while len(out) > LIMIT:
        oldest = next((r for r in out if r.result not in IN_FLIGHT), None)
        if oldest is None:
            break
        out.remove(oldest)
    return out


def replaced(
    history: list[RemediationRecord], record: RemediationRecord
) -> list[RemediationRecord]:
    return [record if r.id == record.id else r for r in history]


def finished(
    record: RemediationRecord, result: Result, note: str, now: datetime
) -> RemediationRecord:
    return record.model_copy(
        update={
            "result": result,
            "message": "; ".join(m for m in (record.message, note) if m),
            "finished": iso(now) if result in (HealResult.SUCCEEDED, HealResult.FAILED) else None,
        }
    )


def event(record: RemediationRecord) -> Event:
    """The Event announcing a record: reason `<Action><Result>`, or the signal for a warning."""
    if record.action == "warn":
        return ("Warning", record.reason, record.message)
    kind = record.action[0].upper() + record.action[1:]
    type_ = (
        "Normal"
        if record.result
        in (HealResult.SUCCEEDED, HealResult.IN_PROGRESS, HealResult.DRY_RUN, HealResult.PENDING)
        else "Warning"
    )
    why = f" ({record.refusal})" if record.refusal else ""
    return (
        type_,
        f"{kind}{record.result}",
        f"{record.action} for {record.reason}{why}: {record.message}",
    )


def says_in_flight(md: ModelDeployment) -> bool:
    """Whether status' `Remediating` condition says an action is in flight."""
    return any(
        c.type == ConditionType.REMEDIATING and c.status == "True" for c in md.status.conditions
    )


def remediating(md: ModelDeployment, now: datetime) -> list[dict[str, Any]]:
    """Conditions with `Remediating`: True while an action is in flight (and Reconciling=True
    with it, `status.healing`)."""
    history = md.status.remediations
    current = [c.wire() for c in md.status.conditions]
    if not history and all(c["type"] != ConditionType.REMEDIATING for c in current):
        return current  # never remediated: no condition to show
    in_flight = [r for r in history if r.result in IN_FLIGHT]
    taken = [r for r in history if r.action != "warn" and r.result != HealResult.REFUSED]
    if in_flight:
        message = "; ".join(f"{r.action}: {r.message}" for r in in_flight)
    elif taken:
        message = f"last: {taken[-1].action} {taken[-1].result}: {taken[-1].message}"
    else:
        message = "no action taken"
    generation = md.metadata.get("generation")
    conditions = status.set_condition(
        current,
        type_=ConditionType.REMEDIATING,
        status=bool(in_flight),
        reason=Reason.ACTION_IN_FLIGHT if in_flight else Reason.IDLE,
        message=message,
        generation=generation,
        now=iso(now),
    )
    # kstatus' word for an action in flight: Reconciling=True, InProgress (docs/gitops.md).
    return status.healing(conditions, generation=generation, now=iso(now))


def intended(md: ModelDeployment, action: Action, now: datetime) -> Override:
    """The override with the part `action` stands for (written with its Pending record)."""
    ov = active(md).model_copy()
    when = iso(now)
    if action.disruptive and action.kind != "restart":
        # A rollout replaces every pod anyway: the template takes the resources resized in
        # place too, or the new pods would start with the old ones.
        ov.in_place_generation = None
    if action.kind == "rolloutRestart":
        ov.restarted_at = when
    elif action.kind == "resize" and action.resources is not None:
        ov.resources = ResourceRequirements.model_validate(action.resources)
        ov.resources_basis = md.spec.resources
        in_place = md.spec.remediation.resize.in_place != "never"
        ov.in_place_generation = md.metadata.get("generation") if in_place else None
    elif action.kind in ("failover", "failback"):
        ov.pool, ov.pool_since = action.pool, when
    elif action.kind == "rollback" and action.model is not None:
        ov.model, ov.model_replaces = action.model, model_ref(md.spec)
    return ov


def remember_models(md: ModelDeployment, *, healthy: bool, now: datetime) -> ModelMarks:
    """Which model the spec names since when, and the last one seen healthy (for rollback).

    A rolled-back deployment serves the older model: its health says nothing of the spec's."""
    marks = (md.status.models or ModelMarks()).model_copy()
    current = model_ref(md.spec)
    if marks.current != current:
        marks.current, marks.current_since = current, iso(now)
    # Healthy means: no fault for as long as the monitor needs to find one.
    monitoring = md.spec.monitoring
    settle = monitoring.failure_threshold * monitoring.interval_seconds
    since = parse_time(marks.current_since)
    proven = since is not None and (now - since).total_seconds() >= settle
    if healthy and proven and active(md).model is None:
        marks.healthy = current
    return marks
