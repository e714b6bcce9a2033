"""Remediation policy: the monitor's findings plus the pods' facts and the spec -> the actions
that would heal them, most specific first. Pure; `now` comes in. Whether an action may run
(mode, cooldown, caps, ceilings) is for `guardrails.py` to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from onnxops.api import ModelDeployment
from onnxops.monitor.pods import PodFacts, parse_time
from onnxops.override import active, model_ref
from onnxops.pools import MIB, Resources
from onnxops.reasons import HealReason, HealResult, KubeReason, Signal
from onnxops.remediation.action import LOW_USE, Action
from onnxops.remediation.findings import Finding
from onnxops.remediation.scaleup import ScaleUp
from onnxops.remediation.sizing import grown, lowered

# VPA's OOM bump: at least this much more memory, whatever the factor gives.
OOM_MIN_BUMP = 100 * MIB
# Restarting a pod fixes a sick process, not a sick model or a full node.
RESTART_SIGNALS = (
    Signal.ERROR_RATE,
    Signal.ERROR_RATE_ANOMALY,
    Signal.LATENCY_P99,
    Signal.LATENCY_ANOMALY,
    Signal.NOT_READY,
)
# A model change shows as errors or lost quality: across the whole deployment, or (during
# its rollout, next to pods still on the old version) on the new pods only.
ROLLBACK_SIGNALS = (Signal.ERROR_RATE, Signal.ERROR_RATE_ANOMALY, Signal.ACCURACY)
# The serving pods' startupProbe allows 60 x 2 s to start: a pod not ready for less than
# that may still be loading its model, and restarting it would only start that over.
STARTUP_GRACE_S = 120
# A deployment slow on every replica is most often a loaded one, and its CPU pressure (judged
# by a streak of its own, from counters that can trail the latency histogram) may count an
# evaluation or two after its p99 does: restarting every replica is held back until the latency
# fault has stood as long again as it took to count, so that a CPU resize gets the first word.
LATENCY_SIGNALS = (Signal.LATENCY_P99, Signal.LATENCY_ANOMALY)
# Records of resizes that changed (or, in dryRun, would have changed) the resources.
RESIZED = (
    HealResult.PENDING,
    HealResult.IN_PROGRESS,
    HealResult.SUCCEEDED,
    HealResult.FAILED,
    HealResult.DRY_RUN,
)


@dataclass(frozen=True)
class Situation:
    """Everything the policy looks at, for one ModelDeployment at one moment."""

    md: ModelDeployment
    findings: list[Finding]
    pods: list[PodFacts]
    resources: Resources
    """The serving container's current requests/limits (spec, pool defaults, override)."""
    now: datetime
    preferred_has_room: bool | None = None
    """Whether the spec's own pool could hold the model again (None: not known)."""
    scale_up: ScaleUp | None = None
    """What the cluster autoscaler said of the unschedulable pods (None: nothing)."""


def _by_signal(findings: list[Finding]) -> dict[str, Finding]:
    return {f.signal: f for f in findings}


def _memory(s: Situation, faults: dict[str, Finding]) -> Action | None:
    oom_pods = tuple(p.name for p in s.pods if p.last_termination == KubeReason.OOM_KILLED)
    cause = faults.get(Signal.OOM_KILLED) or faults.get(Signal.MEMORY_UTILIZATION)
    if cause is None and Signal.CRASH_LOOP in faults and oom_pods:
        cause = faults[Signal.CRASH_LOOP]  # crash-looping because it runs out of memory
    if cause is None:
        return None
    factor = s.md.spec.remediation.resize.factor
    wanted = grown(s.resources, "memory", factor, minimum=OOM_MIN_BUMP)
    return Action(
        kind="resize",
        reason=Signal.OOM_KILLED if cause.signal == Signal.CRASH_LOOP else cause.signal,
        message=f"{cause.signal}: {cause.message or 'memory at its limit'}",
        pods=cause.pods or oom_pods,
        resources=wanted,
    )


def _cpu(s: Situation, faults: dict[str, Finding]) -> Action | None:
    pressure = faults.get(Signal.CPU_THROTTLING) or faults.get(Signal.CPU_UTILIZATION)
    if pressure is None or Signal.LATENCY_P99 not in faults:
        return None  # busy but fast enough: nothing to heal
    wanted = grown(s.resources, "cpu", s.md.spec.remediation.resize.factor)
    return Action(
        kind="resize",
        reason=pressure.signal,
        message=f"{pressure.signal} with p99 over threshold: {faults[Signal.LATENCY_P99].message}",
        pods=pressure.pods,
        resources=wanted,
    )


def _shrink(s: Situation) -> Action | None:
    """Long low use: lower what is spare, when nothing else is going on. A shrink must never
    fight a raise: none while any fault stands (the caller), while any action is in flight,
    or before the last resize (up or down) is `afterSeconds` old (the low use must have been
    seen at the resources as they are now) and past its cooldown (the guardrails would refuse
    it; an opportunity refused every few minutes is only noise in the Events)."""
    rem = s.md.spec.remediation
    resize = rem.resize
    low = s.md.status.low_use
    if not resize.shrink.enabled or not low or s.findings:
        return None
    settle = max(resize.shrink.after_seconds, rem.cooldown_seconds)
    for record in s.md.status.remediations:
        if record.result in (HealResult.PENDING, HealResult.IN_PROGRESS):
            return None
        when = parse_time(record.time)
        recent = when is None or (s.now - when).total_seconds() < settle
        if record.action == "resize" and record.result in RESIZED and recent:
            return None
    live = [p for p in s.pods if not p.deleting]
    if not live or any(p.resize for p in live):
        return None  # a resize still pending or in progress: the pods' resources are in motion
    wanted, said = s.resources, []
    for use in low:
        # With autoscaling the HPA owns CPU: its target is a share of the request, so a lower
        # request would read as more load and add replicas.
        if use.resource == "cpu" and s.md.spec.autoscaling is not None:
            continue
        wanted = lowered(wanted, use.resource, resize.factor, peak=Decimal(str(use.peak)))
        said.append(use.message)
    if wanted == s.resources:
        return None  # at the floor already
    return Action(
        kind="resize",
        reason=LOW_USE,
        message=f"long low use ({'; '.join(said)}): requests and limits / {resize.factor:g}",
        resources=wanted,
    )


def _unschedulable_since(s: Situation, fault: Finding) -> datetime | None:
    return fault.since or min(
        (p.unschedulable_since for p in s.pods if p.unschedulable_since), default=None
    )


def unschedulable_bound(s: Situation) -> int:
    """Seconds Unschedulable before a failover: `unschedulableSeconds`, or while the autoscaler
    adds a node for every unschedulable pod, the longer `scaleUpGraceSeconds`."""
    rem = s.md.spec.remediation
    if s.scale_up is not None and s.scale_up.coming:
        return max(rem.unschedulable_seconds, rem.scale_up_grace_seconds)
    return rem.unschedulable_seconds


def awaiting_scale_up(s: Situation) -> ScaleUp | None:
    """The autoscaler's word while pods are unschedulable and it adds nodes for them, within
    the grace (what the Placed condition says then); None otherwise."""
    fault = next((f for f in s.findings if f.signal == Signal.UNSCHEDULABLE), None)
    if fault is None or s.scale_up is None or not s.scale_up.coming:
        return None
    since = _unschedulable_since(s, fault)
    if since is not None and (s.now - since).total_seconds() >= unschedulable_bound(s):
        return None  # the grace is spent
    return s.scale_up


def _failover(s: Situation, faults: dict[str, Finding]) -> Action | None:
    target = s.md.spec.target
    fault = faults.get(Signal.UNSCHEDULABLE)
    current = s.md.status.pool
    if fault is None or not target.fallback_pool or current == target.fallback_pool:
        return None
    since = _unschedulable_since(s, fault)
    bound = unschedulable_bound(s)
    if since is None or (s.now - since).total_seconds() < bound:
        return None
    waited = ""
    if s.scale_up is not None:
        verb = "said it adds" if s.scale_up.coming else "said it cannot add"
        waited = f" ({s.scale_up.by} {verb} a node: {s.scale_up.claims})"
    return Action(
        kind="failover",
        reason=Signal.UNSCHEDULABLE,
        message=(
            f"pods unschedulable on pool {current} for over {bound}s{waited}; "
            f"moving to {target.fallback_pool}"
        ),
        pool=target.fallback_pool,
    )


def _failback(s: Situation, faults: dict[str, Finding]) -> Action | None:
    target = s.md.spec.target
    ov = active(s.md)
    if ov.pool is None or ov.pool == target.pool or Signal.UNSCHEDULABLE in faults:
        return None
    since = parse_time(ov.pool_since)
    hold = s.md.spec.remediation.failback_seconds
    if not s.preferred_has_room or since is None or (s.now - since).total_seconds() < hold:
        return None
    return Action(
        kind="failback",
        reason=HealReason.POOL_HAS_ROOM,
        message=f"pool {target.pool} has room again after {hold}s on {ov.pool}",
        pool=target.pool,
    )


def _rollback(s: Situation, faults: dict[str, Finding]) -> Action | None:
    marks = s.md.status.models
    cause = next((faults[n] for n in ROLLBACK_SIGNALS if n in faults), None)
    if cause is None or marks is None or marks.healthy is None:
        return None
    current = model_ref(s.md.spec)
    since = parse_time(marks.current_since)
    window = s.md.spec.remediation.rollback_window_seconds
    if marks.healthy == current or active(s.md).model is not None:
        return None  # nothing older to go back to, or already rolled back
    r = s.md.status.rollout
    if s.md.spec.rollout is not None and r is not None and r.candidate is not None:
        return None  # the spec's model is only a canary: the rollout judges it, not heal
    if marks.current != current or since is None or (s.now - since).total_seconds() > window:
        return None  # the model has been fine for a while: the fault is not the change's
    return Action(
        kind="rollback",
        reason=cause.signal,
        message=(
            f"{cause.signal} right after version {current.version or current.uri}; serving "
            f"version {marks.healthy.version or marks.healthy.uri} again"
        ),
        model=marks.healthy,
    )


def _younger(finding: Finding, now: datetime, seconds: float) -> bool:
    """Whether the finding's bad streak began less than `seconds` ago (unknown: it did)."""
    return finding.since is None or (now - finding.since).total_seconds() < seconds


def _restarts(s: Situation, faults: dict[str, Finding]) -> list[Action]:
    found = dict(faults)
    not_ready = found.get(Signal.NOT_READY)
    if not_ready is not None and _younger(not_ready, s.now, STARTUP_GRACE_S):
        del found[Signal.NOT_READY]  # maybe still starting: the startup probe allows that long
    mon = s.md.spec.monitoring
    hold_s = 2 * mon.interval_seconds * mon.failure_threshold
    for name in LATENCY_SIGNALS:
        slow = found.get(name)
        if slow is not None and not slow.pods and _younger(slow, s.now, hold_s):
            del found[name]  # maybe CPU pressure, not yet counted: a resize would answer it
    cause = next((found[n] for n in RESTART_SIGNALS if n in found), None)
    if cause is None:
        return []
    live = [p for p in s.pods if not p.deleting]
    if cause.pods:
        named = [p for p in live if p.name in cause.pods]
        if not named:
            return []  # those pods are gone already: the finding is older than the pods
        if len(named) < len(live):
            # An outlier among healthy peers: replace it, leave the others alone.
            chosen = [p for p in named if not p.crash_looping]
            if not chosen:
                return []
            return [
                Action(
                    kind="restart",
                    reason=cause.signal,
                    message=f"{cause.signal} on {', '.join(p.name for p in chosen)} only: {cause.message}",
                    pods=tuple(f"{p.name}/{p.uid}" for p in chosen),
                )
            ]
    if live and all(p.crash_looping for p in live):
        return []  # the CrashLoop warning says it; restarting would change nothing
    return [
        Action(
            kind="rolloutRestart",
            reason=cause.signal,
            message=f"{cause.signal} on every replica: {cause.message}",
        )
    ]


def _warnings(s: Situation, faults: dict[str, Finding], acted: set[str]) -> list[Action]:
    out = []
    if (
        Signal.CRASH_LOOP in faults
        and Signal.CRASH_LOOP not in acted
        and Signal.OOM_KILLED not in acted
    ):
        out.append(
            Action(
                "warn",
                Signal.CRASH_LOOP,
                f"pods crash-looping; restarting will not help: {faults[Signal.CRASH_LOOP].message}",
            )
        )
    if Signal.DRIFT in faults:
        out.append(
            Action(
                "warn", Signal.DRIFT, f"input drift over maxDrift: {faults[Signal.DRIFT].message}"
            )
        )
    if Signal.ACCURACY in faults and Signal.ACCURACY not in acted:
        out.append(
            Action(
                "warn",
                Signal.ACCURACY,
                f"accuracy below minAccuracy and no earlier model to go back to: {faults[Signal.ACCURACY].message}",
            )
        )
    return out


def decide(s: Situation) -> list[Action]:
    """The actions for this situation, most specific (and least disruptive) first."""
    faults = _by_signal(s.findings)
    actions: list[Action] = []
    for rule in (_memory, _cpu, _failover, _failback, _rollback):
        found = rule(s, faults)
        if found is not None:
            actions.append(found)
    # A resize, failover or rollback answers the fault itself; restarting pods as well
    # would only add a disruption (and slow pods under CPU pressure are not sick).
    if not actions:
        actions.extend(_restarts(s, faults))
    if not actions:  # giving headroom back is for quiet times only
        shrink = _shrink(s)
        actions.extend([shrink] if shrink is not None else [])
    return actions + _warnings(s, faults, {a.reason for a in actions})
