"""Guardrails: which of the policy's actions may run now, and why the others may not.

Mode (auto / dryRun / off), a cooldown per action kind, a cap per sliding hour, one disruptive
action in flight per model, an operator-wide limit on disruptions, resource ceilings (and, for
a resize down, that it only lowers), the HPA's ownership of CPU pressure, and never acting on
data that could not be read. Pure: the history and `now` come in; the operator-wide limit is a
small object the caller keeps.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from onnxops.api import ModelDeployment, RemediationRecord
from onnxops.monitor.pods import parse_time
from onnxops.pools import PoolProfile, Resources, quantity, quantity_text
from onnxops.reasons import HealReason, HealResult, Refusal, Signal
from onnxops.remediation.action import Action

Verdict_ = Literal[HealResult.PENDING, HealResult.REFUSED, HealResult.DRY_RUN, HealResult.SUCCEEDED]
# Records that count as an action having been taken (or, in dryRun, as if it had been).
TAKEN = (
    HealResult.PENDING,
    HealResult.IN_PROGRESS,
    HealResult.SUCCEEDED,
    HealResult.FAILED,
    HealResult.DRY_RUN,
)
IN_FLIGHT = (HealResult.PENDING, HealResult.IN_PROGRESS)
# Signals the monitor reads from the pods themselves (the API), not from Prometheus: they stay
# known when Prometheus is down or has no series yet (a pod OOM-killed as it starts has none).
API_SIGNALS = frozenset(
    {
        Signal.OOM_KILLED,
        Signal.CRASH_LOOP,
        Signal.NOT_READY,
        Signal.UNSCHEDULABLE,
        HealReason.POOL_HAS_ROOM,
    }
)
HOUR = timedelta(hours=1)
# A refusal or warning repeated every monitor cycle would drown the Events; say it again
# only after this long (or the model's cooldown, if longer).
REPEAT_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Verdict:
    """The guardrails' answer for one action."""

    action: Action
    result: Verdict_
    """Pending: run it; DryRun: record only; Refused: see `refusal`; Succeeded: a warning."""
    refusal: Refusal | None = None
    note: str = ""
    news: bool = True
    """False when the same answer is already on record recently (no new Event or entry)."""


class FleetLimit:
    """Operator-wide: at most `limit` disruptive actions in any `window_s` seconds across all
    models, so one bad metric (or a Prometheus glitch) can never restart the whole fleet."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window_s)
        self._taken: deque[datetime] = deque()
        # Models heal side by side (the monitor's write pool): `admit` holds this from the
        # check to the take, so two models never both get the last disruption.
        self.lock = threading.RLock()

    def _expire(self, now: datetime) -> None:
        while self._taken and now - self._taken[0] >= self.window:
            self._taken.popleft()

    def allows(self, now: datetime) -> bool:
        with self.lock:
            self._expire(now)
            return len(self._taken) < self.limit

    def take(self, now: datetime) -> None:
        with self.lock:
            self._expire(now)
            self._taken.append(now)


def caps(md: ModelDeployment, pool: PoolProfile) -> dict[str, Decimal]:
    """Per-resource ceiling: the lower of spec.remediation.resize.max* and the pool's."""
    resize = md.spec.remediation.resize
    out: dict[str, Decimal] = {}
    for name, own in (("cpu", resize.max_cpu), ("memory", resize.max_memory)):
        found = [quantity(v) for v in (own, pool.ceilings.get(name)) if v is not None]
        if found:
            out[name] = min(found)
    return out


def clamp(action: Action, current: Resources, limits: dict[str, Decimal]) -> tuple[Action, str]:
    """The resize held under the ceiling; the note says what was cut ("" when nothing)."""
    name = action.resource
    if action.resources is None or name is None or name not in limits:
        return action, ""
    cap = limits[name]
    out = {part: dict(values) for part, values in action.resources.items()}
    cut = False
    for values in out.values():
        if name in values and quantity(values[name]) > cap:
            values[name] = quantity_text(name, cap, up=False)  # never over the ceiling
            cut = True
    note = f"capped at the {name} ceiling {_human(name, cap)}" if cut else ""
    return replace(action, resources=out), note


def _human(name: str, value: Decimal) -> str:
    return f"{value / (1024 * 1024):g}Mi" if name == "memory" else f"{value:g}"


def _grows(action: Action, current: Resources) -> bool:
    """Whether the resize raises what binds: the limit where there is one (OOM kills and
    throttling come from limits), else the request."""
    name = action.resource
    assert action.resources is not None and name is not None
    part = "limits" if name in current.get("limits", {}) else "requests"
    wanted = action.resources.get(part, {}).get(name)
    now = current.get(part, {}).get(name)
    return wanted is not None and (now is None or quantity(wanted) > quantity(now))


def _shrinks(action: Action, current: Resources) -> bool:
    """Whether a deliberate resize down lowers something and raises nothing (a shrink that
    grew a value would be a raise no fault asked for)."""
    assert action.resources is not None
    lower = False
    for part in ("requests", "limits"):
        for name, wanted in action.resources.get(part, {}).items():
            now = current.get(part, {}).get(name)
            if now is None or quantity(wanted) > quantity(now):
                return False
            lower = lower or quantity(wanted) < quantity(now)
    return lower


def _recent(
    history: list[RemediationRecord], now: datetime, within: timedelta
) -> list[RemediationRecord]:
    out = []
    for record in history:
        when = parse_time(record.time)
        if when is not None and now - when < within:
            out.append(record)
    return out


def _repeat(
    history: list[RemediationRecord], verdict: Verdict, now: datetime, cooldown: timedelta
) -> bool:
    """Whether the same answer for the same action is already on record recently."""
    action = verdict.action
    for record in _recent(history, now, max(cooldown, REPEAT_AFTER)):
        if (record.action, record.reason, record.result, record.refusal) == (
            action.kind,
            action.reason,
            verdict.result,
            verdict.refusal,
        ):
            return True
    return False


def admit(
    actions: list[Action],
    *,
    md: ModelDeployment,
    pool: PoolProfile,
    current: Resources,
    now: datetime,
    fleet: FleetLimit,
    metrics_unknown: str | None = None,
    current_replicas: int | None = None,
) -> list[Verdict]:
    """One verdict per action, in order; at most one disruptive action is admitted.

    `metrics_unknown`: why Prometheus could not be read (only actions on API-read signals
    may act)."""
    rem = md.spec.remediation
    history = md.status.remediations
    cooldown = timedelta(seconds=rem.cooldown_seconds)
    taken = [r for r in history if r.result in TAKEN and r.action != "warn"]
    in_flight = any(r.result in IN_FLIGHT and r.action != "resize" for r in taken)
    last_hour = len(_recent(taken, now, HOUR))
    limits = caps(md, pool)
    verdicts: list[Verdict] = []
    with fleet.lock:  # from the fleet check in _judge to the take below
        for proposed in actions:
            action, note = clamp(proposed, current, limits)
            verdict = _judge(
                action,
                md=md,
                now=now,
                problems=[metrics_unknown]
                if metrics_unknown and action.reason not in API_SIGNALS
                else [],
                current=current,
                note=note,
                cooldown=cooldown,
                recent_kinds={r.action for r in _recent(taken, now, cooldown)},
                settling=bool(_recent(taken, now, cooldown)),
                in_flight=in_flight,
                hourly=last_hour,
                fleet=fleet,
                current_replicas=current_replicas,
            )
            if verdict.result in (HealResult.PENDING, HealResult.DRY_RUN) and action.kind != "warn":
                last_hour += 1
                if action.disruptive:
                    in_flight = True
                    if verdict.result == HealResult.PENDING:
                        fleet.take(now)
            verdicts.append(replace(verdict, news=not _repeat(history, verdict, now, cooldown)))
    return verdicts


def _judge(
    action: Action,
    *,
    md: ModelDeployment,
    now: datetime,
    problems: list[str],
    current: Resources,
    note: str,
    cooldown: timedelta,
    recent_kinds: set[str],
    settling: bool,
    in_flight: bool,
    hourly: int,
    fleet: FleetLimit,
    current_replicas: int | None,
) -> Verdict:
    rem = md.spec.remediation
    scaling = md.spec.autoscaling

    def refuse(why: Refusal, text: str) -> Verdict:
        return Verdict(action, HealResult.REFUSED, why, text)

    if problems:
        return refuse(Refusal.UNKNOWN_DATA, "faults could not be read: " + "; ".join(problems))
    if action.kind == "warn":
        return Verdict(action, HealResult.SUCCEEDED)
    if rem.mode == "off":
        return refuse(Refusal.OFF, "spec.remediation.mode is off")
    if action.resource == "cpu" and scaling is not None:
        replicas = current_replicas if current_replicas is not None else scaling.min_replicas
        if replicas < scaling.max_replicas:
            return refuse(
                Refusal.HPA_OWNS_CPU,
                f"CPU pressure is the HPA's to answer ({replicas} of {scaling.max_replicas} replicas)",
            )
    if action.shrinks and not _shrinks(action, current):
        return refuse(
            Refusal.FLOOR, "nothing to lower: at the floor, or the resources changed meanwhile"
        )
    if action.kind == "resize" and not action.shrinks and not _grows(action, current):
        return refuse(Refusal.CEILING, note or "already at the ceiling")
    if action.disruptive and in_flight:
        return refuse(Refusal.IN_FLIGHT, "another disruptive action is still in flight")
    if action.kind in recent_kinds:
        return refuse(
            Refusal.COOLDOWN, f"a {action.kind} ran less than {rem.cooldown_seconds}s ago"
        )
    if action.disruptive and settling:
        # Faults outlive their remedy for a while (a rollout, a restart after a resize, the
        # monitor's window): a second disruption on top would be one action too many.
        return refuse(Refusal.COOLDOWN, f"the last action is less than {rem.cooldown_seconds}s old")
    if hourly >= rem.max_actions_per_hour:
        return refuse(Refusal.HOURLY_CAP, f"{rem.max_actions_per_hour} actions in the last hour")
    if rem.mode == "dryRun":
        return Verdict(action, HealResult.DRY_RUN, None, note)
    if action.disruptive and not fleet.allows(now):
        return refuse(
            Refusal.FLEET_LIMIT, "the operator-wide limit on disruptive actions is reached"
        )
    return Verdict(action, HealResult.PENDING, None, note)
