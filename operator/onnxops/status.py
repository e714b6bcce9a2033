"""Pure status computation: a ModelDeployment's status from its Deployment and the decisions
taken, with conditions that follow the Kubernetes API conventions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from onnxops import build, override
from onnxops.api import ModelDeployment, ModelDeploymentStatus
from onnxops.loadfailure import LoadFailure
from onnxops.reasons import (
    LOAD_FAILURE_REASONS,
    MODEL_REASONS,
    PLACEMENT_REASONS,
    ConditionType,
    KubeCondition,
    KubeReason,
    Phase,
    Reason,
    RolloutPhase,
)
from onnxops.rollout import plan as rollout_plan

READY = ConditionType.READY
RECONCILING = ConditionType.RECONCILING
STALLED = ConditionType.STALLED
PLACED = ConditionType.PLACED
MODEL_AVAILABLE = ConditionType.MODEL_AVAILABLE
ROLLED_BACK = ConditionType.ROLLED_BACK
ROLLOUT_ABORTED = ConditionType.ROLLOUT_ABORTED
"""Remediation serves an earlier model than the spec's (phase Degraded) until the spec changes."""
REMEDIATING = ConditionType.REMEDIATING
"""Heal has an action in flight (True): Reconciling=True with it, for kstatus (`healing`)."""
"""Whether the spec's model can be served: False when the operator judged its URI malformed
or its source missing, True once serving pods that loaded it pass readiness (the runtime is
only ready with a loaded model), Unknown while that is not yet known. Healthy,
MonitoringAvailable and Remediating belong to the monitor and are not set here."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Failure:
    """A judgement of the operator that stops reconciliation (shown as phase Failed)."""

    reason: str
    message: str
    permanent: bool


def set_condition(
    conditions: list[dict[str, Any]],
    *,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Conditions with one replaced; lastTransitionTime only moves when status flips."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    since = now if previous is None or changed else previous.get("lastTransitionTime", now)
    new = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    if previous is None:
        return [*conditions, new]
    # In place: the monitor and the reconcile path each set their own types, and a list that
    # reorders on every write would read as changed to the other one.
    return [new if c.get("type") == type_ else c for c in conditions]


def placement_note(st: ModelDeploymentStatus) -> str:
    """The message of the Placed condition: why the model runs on its pool."""
    return next((c.message for c in st.conditions if c.type == PLACED), "")


def placed_reason(st: ModelDeploymentStatus) -> str:
    """The reason of the Placed condition (CapacityShort while kept on a full pool)."""
    return next((c.reason for c in st.conditions if c.type == PLACED), Reason.POOL_CHOSEN)


def model_label(md: ModelDeployment) -> str:
    """name:version for the printer column."""
    name = md.spec.model.name or md.name
    return f"{name}:{md.spec.model.version}" if md.spec.model.version else name


def rollout(deployment: dict[str, Any] | None) -> tuple[int, int, bool]:
    """(wanted replicas, ready replicas, rolled out) of a Deployment as observed."""
    if deployment is None:
        return 0, 0, False
    spec, st = deployment.get("spec", {}), deployment.get("status", {})
    wanted = int(spec.get("replicas", 1))
    ready = int(st.get("readyReplicas", 0))
    updated = int(st.get("updatedReplicas", 0))
    total = int(st.get("replicas", 0))
    seen = int(st.get("observedGeneration", 0)) >= int(deployment["metadata"].get("generation", 0))
    done = seen and updated >= wanted and ready >= wanted and total == updated
    return wanted, ready, done


def healthy_status(
    md: ModelDeployment,
    *,
    pool: str,
    variant: str,
    endpoint: str,
    deployment: dict[str, Any] | None,
    placement: str,
    now: str,
    placed_reason: str = Reason.POOL_CHOSEN,
    load_failure: LoadFailure | None = None,
) -> dict[str, Any]:
    """Status after a successful reconcile (or a child change): Progressing or Ready; Failed
    (none serve) or Degraded (some do) while serving pods report they cannot load the model."""
    generation = md.metadata.get("generation")
    wanted, ready, done = rollout(deployment)
    failing = load_failure if not done else None
    conditions = [c.wire() for c in md.status.conditions]
    conditions = set_condition(
        conditions,
        type_=PLACED,
        status=True,
        reason=placed_reason,
        message=placement,
        generation=generation,
        now=now,
    )
    conditions = set_condition(
        conditions,
        type_=READY,
        status=done,
        reason=_ready_reason(done, failing),
        message=f"{ready}/{wanted} replicas ready"
        + (f"; {failing.reason}: {failing.message}" if failing else ""),
        generation=generation,
        now=now,
    )
    available = (
        _load_failed(md, variant, failing, wanted)
        if failing
        else _model_available(conditions, wanted, ready, done, stalled=stalled(deployment))
    )
    conditions = set_condition(conditions, **available, generation=generation, now=now)
    phase = Phase.READY if done else Phase.PROGRESSING
    if failing:
        phase = Phase.DEGRADED if ready > 0 else Phase.FAILED
    if done and md.status.faults:  # the monitor's findings stand until it clears them
        phase = Phase.DEGRADED
    rollback = override.rolled_back(md)
    if rollback is not None:
        served, replaced = rollback
        conditions = set_condition(
            conditions,
            type_=ROLLED_BACK,
            status=True,
            reason=Reason.MODEL_ROLLED_BACK,
            message=f"serving version {served.version or served.uri} instead of "
            f"{replaced.version or replaced.uri} until the spec changes",
            generation=generation,
            now=now,
        )
        phase = Phase.DEGRADED if done else phase
    elif any(c.get("type") == ROLLED_BACK for c in conditions):
        conditions = [c for c in conditions if c.get("type") != ROLLED_BACK]
    r = md.status.rollout
    if md.spec.rollout is not None and r is not None and r.phase == RolloutPhase.ABORTED:
        # The spec names a model that was judged bad and is not served: Degraded until the
        # spec changes or the user retries (the reason is the signal, as in status.rollout).
        reason, _, message = r.message.partition(": ")
        conditions = set_condition(
            conditions,
            type_=ROLLOUT_ABORTED,
            status=True,
            reason=reason or Reason.ROLLOUT_ABORTED,
            message=f"version {r.candidate_version} not rolled out: {message or r.message}",
            generation=generation,
            now=now,
        )
        phase = Phase.DEGRADED if done else phase
    elif any(c.get("type") == ROLLOUT_ABORTED for c in conditions):
        conditions = [c for c in conditions if c.get("type") != ROLLOUT_ABORTED]
    conditions = kstatus_conditions(
        conditions, phase, generation=generation, now=now, rolling=rolling_out(md)
    )
    return {
        "phase": phase,
        "observedGeneration": generation,
        "pool": pool,
        "variant": variant,
        "model": model_label(md),
        "endpoint": endpoint,
        "replicas": wanted,
        "readyReplicas": ready,
        "ready": f"{ready}/{wanted}",
        "selector": build.pod_selector(md),
        "conditions": conditions,
    }


def rolling_out(md: ModelDeployment) -> tuple[str, str] | None:
    """(reason, message) of Reconciling while a rollout is in progress (a canary runs, or the
    stable Deployment takes the promoted version), None otherwise. The message changes with
    the step, not with each measurement, so a rollout writes status once per step."""
    r = md.status.rollout
    if md.spec.rollout is None or not rollout_plan.active(r):
        return None
    assert r is not None
    where = "promoting" if r.step >= r.steps else f"step {r.step + 1}/{r.steps}"
    if r.phase == RolloutPhase.PAUSED:
        where += ", paused"
    message = f"rolling out version {r.candidate_version} (stable {r.stable_version}): {where}"
    return Reason.ROLLOUT_IN_PROGRESS, message


def kstatus_conditions(
    conditions: list[dict[str, Any]],
    phase: str,
    *,
    generation: int | None,
    now: str,
    retried: bool = False,
    rolling: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Reconciling and Stalled as kstatus reads them (`docs/gitops.md`): Reconciling=True
    while Progressing or while a failure is retried by itself (`retried`: a ConfigMap that
    may yet be applied, no room for now), Stalled=True while Failed for good or while pods
    cannot load the model (Failed or Degraded), each with the Ready condition's reason and
    message; Reconciling=True also while a remediation is in flight (`healing`); absent
    otherwise, as kstatus recommends for abnormal-true conditions. Ready
    alone would read InProgress for a Failed model, and a pipeline waiting on it would wait
    out its timeout instead of failing.

    A rollout: Reconciling=True while it runs (`rolling`: reason and message, from
    `rolling_out`), so `flux ... --wait` waits for the promotion as it waits for a Deployment
    to roll out; Stalled=True once it aborted (RolloutAborted=True: the spec names a model
    judged bad, and only the user moves it on: a new spec or a retry)."""
    ready = next((c for c in conditions if c.get("type") == READY), {})
    aborted = next(
        (c for c in conditions if c.get("type") == ROLLOUT_ABORTED and c.get("status") == "True"),
        None,
    )
    wanted: str | None = None
    if phase == Phase.PROGRESSING or (phase == Phase.FAILED and retried):
        wanted = RECONCILING
    elif phase == Phase.FAILED or (phase == Phase.DEGRADED and load_failed(conditions)):
        wanted = STALLED
    elif aborted is not None:
        wanted, ready = STALLED, aborted
    elif rolling is not None:
        wanted = RECONCILING
        ready = {"reason": rolling[0], "message": rolling[1]}
    kept = [
        c
        for c in conditions
        if c.get("type") not in (RECONCILING, STALLED) or c.get("type") == wanted
    ]
    if wanted is None:
        return healing(kept, generation=generation, now=now)
    return set_condition(
        kept,
        type_=wanted,
        status=True,
        reason=str(ready.get("reason") or phase),
        message=str(ready.get("message") or ""),
        generation=generation,
        now=now,
    )


def healing(
    conditions: list[dict[str, Any]], *, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """Reconciling=True (reason ActionInFlight, Remediating's message) while remediation has
    an action in flight (`Remediating=True`): kstatus reads InProgress until the action ends,
    then Current again. A Stalled or another Reconciling (a rollout, a retried failure) says
    more and stays; the ActionInFlight one goes with the action. Both writers of conditions
    call this: the reconcile path (`kstatus_conditions`) and heal (`history.remediating`)."""
    remediating = next((c for c in conditions if c.get("type") == REMEDIATING), {})
    reconciling = next((c for c in conditions if c.get("type") == RECONCILING), None)
    ours = reconciling is not None and reconciling.get("reason") == Reason.ACTION_IN_FLIGHT
    in_flight = remediating.get("status") == "True"
    if not in_flight:
        return [c for c in conditions if c is not reconciling] if ours else conditions
    if (reconciling is not None and not ours) or any(
        c.get("type") == STALLED and c.get("status") == "True" for c in conditions
    ):
        return conditions
    return set_condition(
        conditions,
        type_=RECONCILING,
        status=True,
        reason=Reason.ACTION_IN_FLIGHT,
        message=str(remediating.get("message") or ""),
        generation=generation,
        now=now,
    )


def _ready_reason(done: bool, failing: LoadFailure | None) -> str:
    if done:
        return Reason.ROLLOUT_COMPLETE
    return Reason.MODEL_LOAD_FAILED if failing else Reason.ROLLING_OUT


def _load_failed(
    md: ModelDeployment, variant: str, failing: LoadFailure, wanted: int
) -> dict[str, Any]:
    """ModelAvailable=False with the cause the pods' termination messages name."""
    chosen = md.spec.model.variants.get(variant)
    uri = chosen.uri if chosen is not None else md.spec.model.uri
    pods = f"{failing.pods} of {wanted} serving pods" if wanted > 1 else "the serving pod"
    return {
        "type_": MODEL_AVAILABLE,
        "status": False,
        "reason": failing.reason,
        "message": f"{pods} cannot load {uri}: {failing.message}",
    }


def load_failed(conditions: Any) -> bool:
    """Whether the status says the pods cannot load the model (Ready reason ModelLoadFailed),
    as opposed to a Failed judgement of the spec, which stops reconciliation. Takes the
    conditions as models or as dicts."""
    for c in conditions or []:
        kind = c.get("type") if isinstance(c, dict) else c.type
        if kind == READY:
            return (
                c.get("reason") if isinstance(c, dict) else c.reason
            ) == Reason.MODEL_LOAD_FAILED
    return False


def judged_failed(st: ModelDeploymentStatus) -> bool:
    """Phase Failed by the operator's judgement of the spec (not by pods failing to load)."""
    return st.phase == Phase.FAILED and not load_failed(st.conditions)


def load_failure_events(
    before: ModelDeploymentStatus, after: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """A Warning when the pods' cause of a failed load appears or changes (one per cause,
    not one per restart), a Normal when the model loads again."""
    old = next((c for c in before.conditions if c.type == MODEL_AVAILABLE), None)
    new: dict[str, Any] = next(
        (c for c in after.get("conditions", []) if c.get("type") == MODEL_AVAILABLE), {}
    )
    old_reason = old.reason if old is not None and old.status == "False" else None
    new_reason = new.get("reason") if new.get("status") == "False" else None
    if new_reason in LOAD_FAILURE_REASONS and new_reason != old_reason:
        return [("Warning", str(new_reason), str(new.get("message", "")))]
    if old_reason in LOAD_FAILURE_REASONS and new.get("status") == "True":
        return [("Normal", Reason.MODEL_LOADED, str(new.get("message", "")))]
    return []


def stalled(deployment: dict[str, Any] | None) -> bool:
    """The Deployment controller gave up waiting for progress (progressDeadlineSeconds)."""
    conditions = ((deployment or {}).get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == KubeCondition.PROGRESSING
        and c.get("reason") == KubeReason.PROGRESS_DEADLINE_EXCEEDED
        for c in conditions
    )


def _model_available(
    conditions: list[dict[str, Any]], wanted: int, ready: int, done: bool, *, stalled: bool
) -> dict[str, Any]:
    """ModelAvailable from the serving pods' readiness (they are only ready once loaded)."""
    if done and ready > 0:
        return {
            "type_": MODEL_AVAILABLE,
            "status": True,
            "reason": Reason.MODEL_LOADED,
            "message": f"{ready}/{wanted} serving pods loaded the model and are ready",
        }
    previous = next((c for c in conditions if c.get("type") == MODEL_AVAILABLE), None)
    if ready > 0 and previous is not None and previous.get("status") == "True":
        return {
            **_as_args(previous),
            "type_": MODEL_AVAILABLE,
        }  # a rollout or scaling: still served
    if stalled and ready == 0:  # say, the runtime cannot fetch or load the model
        return {
            "type_": MODEL_AVAILABLE,
            "status": False,
            "reason": Reason.PROGRESS_DEADLINE_EXCEEDED,
            "message": "no serving pod became ready within the Deployment's progress deadline;"
            " see the pods' logs",
        }
    return {
        "type_": MODEL_AVAILABLE,
        "status": "Unknown",
        "reason": Reason.MODEL_LOADING,
        "message": "waiting for a serving pod to load the model and pass readiness",
    }


def _as_args(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": condition.get("status", "Unknown"),
        "reason": condition.get("reason", ""),
        "message": condition.get("message", ""),
    }


def failed_status(md: ModelDeployment, failure: Failure, *, now: str) -> dict[str, Any]:
    """Status when the operator judged the spec unworkable (for now or for good)."""
    generation = md.metadata.get("generation")
    conditions = [c.wire() for c in md.status.conditions]
    failed = [READY]
    if failure.reason in PLACEMENT_REASONS:
        failed.append(PLACED)
    if failure.reason in MODEL_REASONS:
        failed.append(MODEL_AVAILABLE)
    for type_ in failed:
        conditions = set_condition(
            conditions,
            type_=type_,
            status=False,
            reason=failure.reason,
            message=failure.message,
            generation=generation,
            now=now,
        )
    conditions = kstatus_conditions(
        conditions, Phase.FAILED, generation=generation, now=now, retried=not failure.permanent
    )
    return {
        "phase": Phase.FAILED,
        "observedGeneration": generation,
        "model": model_label(md),
        "selector": build.pod_selector(md),  # the scale subresource needs it in every phase
        "conditions": conditions,
    }


def ignored_replicas(md: ModelDeployment) -> str | None:
    """Why spec.replicas (say, from `kubectl scale mdep`) has no effect; once per generation.

    With spec.autoscaling the HPA chooses the count, as it does for a Deployment it targets;
    saying so beats a silent no-op. 1 is the schema's default, so it reads as unset."""
    scaling = md.spec.autoscaling
    new_generation = md.status.observed_generation != md.metadata.get("generation")
    if scaling is None or md.spec.replicas == 1 or not new_generation:
        return None
    return (
        f"spec.replicas={md.spec.replicas} is ignored while spec.autoscaling is set: the "
        f"HorizontalPodAutoscaler keeps {scaling.min_replicas}..{scaling.max_replicas} "
        "replicas; change spec.autoscaling instead"
    )


def differs(current: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether patching `new` over `current` would change anything (avoids no-op writes)."""
    return any(current.get(k) != v for k, v in new.items())
