"""The rollout's state machine: status.rollout from the spec, the user's actions and the
latest measurement. Pure, taking `now`; the caller writes the new state (the intent) before
acting on it, so an operator killed at any point resumes the same step.

`begin` runs with every reconcile (a spec change starts, restarts or ends a rollout);
`advance` runs on the rollout cycle (a step passes, promotion completes, an abort).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from onnxops.api import Measurement, ModelDeployment, ModelSource, RolloutStatus
from onnxops.reasons import Reason, RolloutPhase, Verdict
from onnxops.rollout import analysis, plan

Event = tuple[str, str, str]  # (Normal|Warning, reason, message)
P = RolloutPhase


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(model: ModelSource | None) -> str | None:
    return None if model is None else (model.version or model.uri)


def settled(model: ModelSource, steps: int, *, message: str = "") -> RolloutStatus:
    """No rollout in progress: the stable Deployment serves `model`."""
    return RolloutStatus(
        phase=P.PROMOTED,
        steps=steps,
        step=steps,
        stable_model=model,
        stable_version=_version(model),
        message=message or "serving the spec's model; a change of spec.model starts a rollout",
    )


def exposure(md: ModelDeployment, step: int) -> dict[str, int]:
    """canaryWeight and shadowPercent of a step, as the replica split gives them in fact."""
    steps = md.spec.rollout.steps if md.spec.rollout else []
    if step >= len(steps):
        return {"canary_weight": 0, "shadow_percent": 0}
    s = steps[step]
    replicas = md.spec.replicas if md.spec.autoscaling is None else md.spec.autoscaling.min_replicas
    weight = plan.effective_weight(s.weight, replicas) if s.weight is not None else 0
    return {"canary_weight": weight, "shadow_percent": s.shadow or 0}


def started(
    stable: ModelSource, candidate: ModelSource, md: ModelDeployment, now: datetime
) -> RolloutStatus:
    steps = md.spec.rollout.steps if md.spec.rollout else []
    shown = exposure(md, 0)
    return RolloutStatus(
        canary_weight=shown["canary_weight"],
        shadow_percent=shown["shadow_percent"],
        phase=P.PROGRESSING,
        step=0,
        steps=len(steps),
        stable_model=stable,
        stable_version=_version(stable),
        candidate=candidate,
        candidate_version=_version(candidate),
        candidate_generation=md.metadata.get("generation"),
        step_started_at=_stamp(now),
        handled_action=md.status.rollout.handled_action if md.status.rollout else None,
        message=f"step 1/{len(steps)}",
    )


@dataclass(frozen=True)
class Moved:
    """The new status.rollout (None: drop it) and the Events that say what happened."""

    rollout: RolloutStatus | None
    events: list[Event] = field(default_factory=list)


def begin(md: ModelDeployment, *, previous: ModelSource | None, now: datetime) -> Moved:
    """status.rollout after a spec change. `previous`: spec.model before this change, when
    known (kopf's diff base), so adding spec.rollout with a new model rolls the model out."""
    r, spec = md.status.rollout, md.spec
    if spec.rollout is None:
        # Today's behaviour: the one Deployment takes spec.model. The state stays until the
        # reconcile removed the canary (then it drops it), so a crash in between still knows.
        return Moved(r)
    steps = len(spec.rollout.steps)
    if r is None or r.stable_model is None:
        stable = previous if previous is not None else spec.model
        if plan.same_model(stable, spec.model):
            return Moved(settled(spec.model, steps))
        new = started(stable, spec.model, md, now)
        return Moved(new, _start_events(md, new, restarted=False))
    if plan.same_model(r.stable_model, spec.model):
        promoting = plan.active(r) and r.step >= r.steps
        if promoting:
            return Moved(r)
        if plan.active(r) or r.phase == P.ABORTED:  # back to the stable model: nothing to do
            why = "spec.model is the stable model again; rollout of "
            why += f"{r.candidate_version} ended"
            return Moved(settled(spec.model, steps, message=why), [("Normal", Reason.UPDATED, why)])
        if r.steps != steps:
            return Moved(r.model_copy(update={"steps": steps, "step": steps}))
        return Moved(r)
    if plan.same_model(r.candidate, spec.model):
        return Moved(r.model_copy(update={"steps": steps}) if r.steps != steps else r)
    new = started(r.stable_model, spec.model, md, now)
    restarted = r.candidate is not None and plan.active(r)
    return Moved(new, _start_events(md, new, restarted=restarted))


def unmeetable(md: ModelDeployment) -> str | None:
    """Why the weight steps cannot be met as written (say, one replica gives 50%), or None."""
    steps = md.spec.rollout.steps if md.spec.rollout else []
    scaling = md.spec.autoscaling
    replicas = md.spec.replicas if scaling is None else scaling.min_replicas
    if replicas <= 0:
        return "spec.replicas is 0: no pod to roll out to; scale up to continue"
    # Rounding up to whole pods is the rule; only a step that needs an extra pod (the one
    # stable pod kept) is off the written weight by more than that.
    off = [
        f"{s.weight}% gives {plan.effective_weight(s.weight, replicas)}%"
        for s in steps
        if s.weight is not None and sum(plan.split(s.weight, replicas)) > replicas
    ]
    if not off:
        return None
    return f"with {replicas} replicas (never fewer than one stable pod) weight " + ", ".join(off)


def _start_events(md: ModelDeployment, r: RolloutStatus, *, restarted: bool) -> list[Event]:
    out = [_start_event(r, restarted=restarted)]
    why = unmeetable(md)
    if why is not None:
        out.append(("Warning", Reason.ROLLOUT_UNMEETABLE, why))
    return out


def _start_event(r: RolloutStatus, *, restarted: bool) -> Event:
    what = "restarted with" if restarted else "started:"
    return (
        "Normal",
        Reason.ROLLOUT_STARTED,
        f"rollout {what} version {r.candidate_version} (stable {r.stable_version}), "
        f"{r.steps} steps",
    )


def action(md: ModelDeployment) -> tuple[str, str] | None:
    """(kind, raw value) of an `onnxops.io/rollout-action` not yet acted on."""
    raw = str((md.metadata.get("annotations") or {}).get(plan.ACTION_ANNOTATION) or "")
    r = md.status.rollout
    if not raw or (r is not None and r.handled_action == raw):
        return None
    return raw.split("/", 1)[0].strip(), raw


def elapsed(r: RolloutStatus, now: datetime) -> float:
    """Seconds since the current step began (0 when its start is unreadable)."""
    try:
        since = datetime.fromisoformat(str(r.step_started_at).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (now - since).total_seconds()


def abort(r: RolloutStatus, reason: str, message: str, now: datetime) -> Moved:
    new = r.model_copy(
        update={
            "phase": P.ABORTED,
            "message": f"{reason}: {message}",
            **{"canary_weight": 0, "shadow_percent": 0},
        }
    )
    text = f"rollout of version {r.candidate_version} aborted at step {r.step + 1}: {message}"
    return Moved(new, [("Warning", Reason.ROLLOUT_ABORTED, text)])


def _next_step(md: ModelDeployment, r: RolloutStatus, now: datetime, why: str) -> Moved:
    steps = md.spec.rollout.steps if md.spec.rollout else []
    step = r.step + 1
    common = {
        "step": step,
        "successes": 0,
        "step_started_at": _stamp(now),
        "phase": P.PROGRESSING,
        **exposure(md, step),
    }
    if step >= len(steps):
        new = r.model_copy(
            update={
                **common,
                "step": len(steps),
                "stable_model": r.candidate,
                "stable_version": r.candidate_version,
                "message": "promoting: the stable Deployment takes the candidate",
            }
        )
        text = f"promoting version {r.candidate_version} ({why})"
        return Moved(new, [("Normal", Reason.ROLLOUT_PROMOTING, text)])
    s = steps[step]
    kind = f"shadow {s.shadow}%" if s.shadow is not None else f"weight {s.weight}%"
    new = r.model_copy(update={**common, "message": f"step {step + 1}/{len(steps)}: {kind}"})
    text = f"version {r.candidate_version}: step {step + 1}/{len(steps)}, {kind} ({why})"
    return Moved(new, [("Normal", Reason.ROLLOUT_STEP, text)])


def _act(md: ModelDeployment, r: RolloutStatus, kind: str, raw: str, now: datetime) -> Moved:
    r = r.model_copy(update={"handled_action": raw})
    if kind == "promote" and plan.active(r) and r.step < r.steps:
        return _next_step(
            md, r.model_copy(update={"step": r.steps - 1}), now, "promoted by the user"
        )
    if kind == "abort" and plan.active(r):
        return abort(r, Reason.USER_ABORTED, "aborted by the user", now)
    if kind == "retry" and r.phase == P.ABORTED and plan.same_model(r.candidate, md.spec.model):
        assert r.stable_model is not None and r.candidate is not None
        new = started(r.stable_model, r.candidate, md, now).model_copy(
            update={"handled_action": raw}
        )
        return Moved(new, [("Normal", Reason.ROLLOUT_RETRIED, f"retrying {r.candidate_version}")])
    text = f"rollout action {raw!r} ignored in phase {r.phase}"
    if kind not in plan.ACTIONS:
        text = f"unknown rollout action {raw!r} (one of {', '.join(plan.ACTIONS)})"
    return Moved(r, [("Warning", Reason.ROLLOUT_STEP, text)])


def advance(
    md: ModelDeployment,
    *,
    now: datetime,
    readings: analysis.Readings | None,
    canary_ready: bool,
    stable_on_candidate: bool,
) -> Moved:
    """One turn of the rollout. `readings`: this turn's analysis (None when not due);
    `canary_ready`: the canary Deployment rolled out; `stable_on_candidate`: the stable
    Deployment rolled out with the candidate (completes a promotion)."""
    r = md.status.rollout
    if r is None or md.spec.rollout is None:
        return Moved(r)
    pending = action(md)
    if pending is not None:
        moved = _act(md, r, *pending, now)
        if moved.rollout != r.model_copy(update={"handled_action": pending[1]}):
            return moved
        r = moved.rollout or r
        if not plan.active(r):
            return moved
        events = moved.events
    else:
        events = []
    if not plan.active(r):
        return Moved(r, events)
    spec = md.spec.rollout
    if r.step >= r.steps:  # promoting
        if not stable_on_candidate:
            return Moved(r, events)
        new = r.model_copy(update={"phase": P.PROMOTED, "candidate": None, "message": "promoted"})
        text = f"version {r.candidate_version} promoted: every serving pod runs it"
        return Moved(new, [*events, ("Normal", Reason.ROLLOUT_PROMOTED, text)])
    if spec.paused:
        if r.phase == P.PAUSED:
            return Moved(r, events)
        new = r.model_copy(update={"phase": P.PAUSED, "message": "paused by spec.rollout.paused"})
        return Moved(new, [*events, ("Normal", Reason.ROLLOUT_PAUSED, new.message)])
    if r.phase == P.PAUSED:
        r = r.model_copy(update={"phase": P.PROGRESSING, "message": "resumed"})
        events = [*events, ("Normal", Reason.ROLLOUT_RESUMED, "rollout resumed")]
    replicas = md.spec.replicas if md.spec.autoscaling is None else 1
    if replicas <= 0:
        why = "spec.replicas is 0: no pod to roll out to; scale up to continue"
        if r.message == why:
            return Moved(r, events)
        new = r.model_copy(update={"phase": P.INCONCLUSIVE, "message": why})
        return Moved(new, [*events, ("Warning", Reason.ROLLOUT_UNMEETABLE, why)])
    if not canary_ready:
        why = "waiting for the canary pods to be ready"
        return Moved(r.model_copy(update={"message": why}) if r.message != why else r, events)
    if readings is None:
        return Moved(r, events)
    step = spec.steps[r.step]
    shadow = step.shadow is not None
    stamp = _stamp(now)
    measured = analysis.measure(spec.analysis, readings, shadow=shadow, now=stamp)
    verdict, worst = analysis.verdict(measured, shadow=shadow)
    r = r.model_copy(update={"measurements": measured})
    if verdict == Verdict.FAILED:
        assert worst is not None
        failures = r.failures + 1
        r = r.model_copy(update={"failures": failures})
        if failures > spec.analysis.failure_limit:
            moved = abort(r, worst.signal, _failure_text(worst), now)
            return Moved(moved.rollout, [*events, *moved.events])
        why = f"measurement failed ({failures}/{spec.analysis.failure_limit} tolerated): "
        why += worst.message
        new = r.model_copy(update={"phase": P.PROGRESSING, "message": why})
        return Moved(new, [*events, ("Warning", Reason.ROLLOUT_MEASURED, why)])
    if verdict == Verdict.INCONCLUSIVE:
        why = "inconclusive: " + (worst.message if worst is not None else "no measurement")
        news = r.phase != P.INCONCLUSIVE
        new = r.model_copy(update={"phase": P.INCONCLUSIVE, "message": why})
        extra = [("Normal", Reason.ROLLOUT_INCONCLUSIVE, why)] if news else []
        return Moved(new, [*events, *extra])
    r = r.model_copy(update={"phase": P.PROGRESSING, "successes": r.successes + 1})
    left = step.pause_seconds - elapsed(r, now)
    if left > 0:
        why = f"step {r.step + 1}/{r.steps}: measurement successful, {left:.0f} s of pause left"
        return Moved(r.model_copy(update={"message": why}), events)
    moved = _next_step(md, r, now, "pause elapsed, measurement successful")
    return Moved(moved.rollout, [*events, *moved.events])


def _failure_text(m: Measurement) -> str:
    return (
        f"{m.signal} candidate {analysis._fmt(m.candidate)} vs stable "
        f"{analysis._fmt(m.stable)}, threshold {analysis._fmt(m.threshold)} ({m.message})"
    )
