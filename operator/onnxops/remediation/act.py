"""Acting on remediation decisions: the only place heal changes anything.

One `heal` call per monitor cycle: follow up the actions in flight, decide (policy), admit
(guardrails), record the intent in status *before* acting, act, record the outcome
(`record.Cycle` keeps the books). Actions change the operator's desired state
(`status.override`, after which the children are re-applied through the `reapply` callable
the wiring hands in) or call the Eviction API / `pods/resize`. Every execution is
idempotent, so an operator killed mid-action finds the Pending record and finishes that same
action: nothing repeated, nothing lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onnxops import disruption, k8s, override, podapi, status
from onnxops.api import Fault, ModelDeployment, RemediationRecord
from onnxops.build import pod_selector
from onnxops.judgement import Judged
from onnxops.monitor import pods as pod_facts
from onnxops.monitor.pods import PodFacts, same_resources
from onnxops.pools import PoolProfile
from onnxops.reasons import HealResult, Phase, Reason
from onnxops.remediation import guardrails, history, inplace, policy, scaleup
from onnxops.remediation.findings import findings
from onnxops.remediation.record import Cycle

log = logging.getLogger("onnxops.heal")

Reapply = Callable[[Mapping[str, Any]], object]
"""Re-applies a ModelDeployment's children from its desired state (the operator's reconcile);
raises `judgement.Judged` when that fails. Handed in, so heal never imports the deploy path."""


@dataclass
class Healed:
    """What one heal cycle did: Events to post, and the guardrails' verdicts."""

    events: list[history.Event] = field(default_factory=list)
    verdicts: list[guardrails.Verdict] = field(default_factory=list)
    outcomes: list[tuple[str, str]] = field(default_factory=list)
    """(action, result) of every record announced, for the operator's metrics."""


def heal(
    body: Mapping[str, Any],
    faults: Sequence[Fault],
    pods: Sequence[PodFacts] | None,
    *,
    pools: dict[str, PoolProfile],
    fleet: guardrails.FleetLimit,
    reapply: Reapply,
    now: datetime,
    monitoring_known: bool = True,
    preferred_has_room: bool | None = None,
) -> Healed:
    """One remediation cycle for one ModelDeployment (the monitor's hook after detection).

    `faults`: the monitor's current faults; `pods`: the serving pods' facts as the monitor's
    cycle listed them (None when it listed none: then listed here, only if needed);
    `monitoring_known`: False when the monitor could not measure (Prometheus down): actions
    in flight are still followed up, but nothing new is decided."""
    md = ModelDeployment.model_validate(dict(body))
    pool = pools.get(md.status.pool or "")
    if pool is None:
        return Healed()  # not placed yet: that is deploying, not healing
    found = findings(faults)
    in_flight = any(r.result in guardrails.IN_FLIGHT for r in md.status.remediations)
    if pods is None:  # only a fault, low use, an action in flight or pods resized in place
        needed = found or in_flight or md.status.low_use or override.resized_in_place(md)
        listed = podapi.list_pods(md.namespace, pod_selector(md)) if needed else []
        pods = [f for p in listed if (f := pod_facts.facts(p)) is not None]
    known = list(pods)
    acting = _Acting(Cycle(md, now), pool, reapply)
    acting.follow_up(known)
    acting.keep_resized(known)
    cycle = acting.cycle
    healthy = not found and monitoring_known and md.status.phase == Phase.READY
    cycle.set(models=history.remember_models(cycle.md, healthy=healthy, now=now))
    current = override.pod_resources(cycle.md, pool)
    situation = policy.Situation(
        md=cycle.md,
        findings=found,
        pods=known,
        resources=current,
        now=now,
        preferred_has_room=preferred_has_room,
        scale_up=_scale_up(md.namespace, known),
    )
    actions = policy.decide(situation)
    # The fault an action in flight answers stands until it is done: proposing that action
    # again meanwhile would only fill the history with refusals.
    answering = {r.action for r in cycle.md.status.remediations if r.result in guardrails.IN_FLIGHT}
    actions = [a for a in actions if a.kind not in answering]
    verdicts = guardrails.admit(
        actions,
        md=cycle.md,
        pool=pool,
        current=current,
        now=now,
        fleet=fleet,
        metrics_unknown=None if monitoring_known else "the monitor could not read Prometheus",
        current_replicas=len([p for p in known if not p.deleting]) or None,
    )
    pending = cycle.record(verdicts)
    if not any(r.action in ("failover", "failback") for r in pending):
        cycle.placed = placed_condition(situation, pool)  # a move's Placed is the deploy path's
    cycle.write()  # the intent, before anything changes
    for record in pending:
        acting.execute(record, known)
    acting.keep_hints(known)
    cycle.write()
    return Healed(cycle.events, verdicts, cycle.outcomes)


def _scale_up(namespace: str, pods: Sequence[PodFacts]) -> scaleup.ScaleUp | None:
    """What a cluster autoscaler said of the unschedulable pods (their Events, read only
    while some pod is unschedulable); None when it said nothing or the Events are unreadable."""
    stuck = [p for p in pods if p.unschedulable is not None and not p.deleting]
    if not stuck:
        return None
    try:
        events = [e for p in stuck for e in podapi.pod_events(namespace, p.uid)]
    except k8s.ApiError as exc:
        log.warning("events of %s's unschedulable pods unreadable: %s", namespace, exc)
        return None
    return scaleup.heard(events, stuck)


def placed_condition(s: policy.Situation, pool: PoolProfile) -> tuple[str, str] | None:
    """The Placed condition while heal waits for the autoscaler's node, and once that wait
    is over; None leaves it to the deploy path."""
    awaiting = policy.awaiting_scale_up(s)
    fallback = s.md.spec.target.fallback_pool
    if awaiting is not None:
        then = (
            f"; failover to {fallback} after {policy.unschedulable_bound(s)}s unschedulable"
            if fallback and fallback != pool.name
            else ""
        )
        return (
            Reason.AWAITING_SCALE_UP,
            f"pods unschedulable on pool {pool.name}; {awaiting.by} adds a node for them: "
            f"{awaiting.claims}{then}",
        )
    if status.placed_reason(s.md.status) != Reason.AWAITING_SCALE_UP:
        return None
    if any(p.unschedulable is not None for p in s.pods if not p.deleting):
        # Not CapacityShort: that makes the deploy path re-judge the pool (and move it).
        why = f"no node came within {policy.unschedulable_bound(s)}s"
        return Reason.POOL_CHOSEN, f"pool {pool.name}; pods unschedulable, {why}"
    return Reason.POOL_CHOSEN, f"pool {pool.name} (the pods run on the node the autoscaler added)"


class _Acting:
    """The actions of one heal cycle, carried out against the API; the books in `cycle`."""

    def __init__(self, cycle: Cycle, pool: PoolProfile, reapply: Reapply) -> None:
        self.cycle = cycle
        self.pool = pool
        self.reapply = reapply

    @property
    def md(self) -> ModelDeployment:
        return self.cycle.md

    def _wanted(self) -> dict[str, dict[str, str]]:
        """What the pods should run now (spec, pool defaults, override): a resize's target."""
        return inplace.wanted(override.pod_resources(self.md, self.pool))

    def follow_up(self, pods: list[PodFacts]) -> None:
        """Resume a Pending action (the operator died mid-action); confirm an in-place resize
        or fall back to a rollout."""
        for record in list(self.md.status.remediations):
            if record.result == HealResult.PENDING:
                self.execute(record, pods)
            elif record.result == HealResult.IN_PROGRESS and record.action == "resize":
                self._confirm_resize(record, pods)

    def keep_resized(self, pods: list[PodFacts]) -> None:
        """Resources resized in place are not in the template: a pod the ReplicaSet makes
        later (an eviction, a lost node) starts with the old ones. Resize it in place too, as
        VPA's updater does, so the override holds for every pod of this generation."""
        if not override.resized_in_place(self.md):
            return
        if any(
            r.action == "resize" and r.result in guardrails.IN_FLIGHT
            for r in self.md.status.remediations
        ):
            return  # the resize in flight is still reaching its pods
        wanted = self._wanted()
        # A pod that is not running yet is resized once it runs: the kubelet would accept the
        # resize now and never apply it to the pod's cgroup (`inplace.not_running`).
        behind = [p for p in pods if p.running and not same_resources(p.resources, wanted)]
        refused = dict(inplace.resize_pods(self.md.namespace, behind, wanted))
        for pod in behind:
            if pod.deleting:
                continue
            if pod.name in refused:
                why = f"{pod.name} keeps the template's resources: {refused[pod.name]}"
                self.cycle.events.append(("Warning", Reason.RESIZE_REFUSED, why))
            else:
                why = (
                    f"{pod.name} started with the template's resources; resized in place to the"
                    f" remediated ones ({inplace.short(wanted)})"
                )
                self.cycle.events.append(("Normal", Reason.RESIZE_APPLIED, why))

    def keep_hints(self, pods: list[PodFacts]) -> None:
        """Disruption hints (`karpenter.sh/do-not-disrupt`, `safe-to-evict: "false"`) on the
        live pods exactly while `disruption.protected` says (an in-place resize in flight, a
        rollout's analysis step); removed from every pod otherwise, so a pod is evictable (the
        PDB guards availability) and a node can be consolidated whenever nothing is mid-change."""
        disruption.hint(self.md.namespace, pods, on=disruption.protected(self.md))

    def execute(self, record: RemediationRecord, pods: list[PodFacts]) -> None:
        """Carry out a recorded action; safe to repeat (its override is already in status)."""
        try:
            if record.action == "restart":
                self._evict(record)
            elif record.action == "resize":
                self._resize(record, pods)
            else:  # rolloutRestart, failover, failback, rollback: the override does it
                self._reapply(record)
        except k8s.ApiError as exc:
            self.cycle.finish(record, HealResult.FAILED, f"the apiserver refused: {exc}")

    def _evict(self, record: RemediationRecord) -> None:
        blocked = []
        for ref in record.pods:
            name, _, uid = ref.partition("/")
            if podapi.evict(self.md.namespace, name, uid or None) == "blocked":
                blocked.append(name)
        if blocked:
            note = f"a PodDisruptionBudget forbids evicting {', '.join(blocked)} now"
            self.cycle.finish(record, HealResult.FAILED, note)
        else:
            self.cycle.finish(record, HealResult.SUCCEEDED, "evicted; the Deployment replaces it")

    def _reapply(self, record: RemediationRecord, note: str = "") -> None:
        body = self.md.model_dump(by_alias=True, mode="json", exclude_none=True)
        body["status"]["override"] = override.active(self.md).wire()
        try:
            self.reapply(body)
        except Judged as judged:
            why = f"{judged.failure.reason}: {judged.failure.message}"
            self.cycle.finish(record, HealResult.FAILED, why)
            return
        note = note or "children re-applied with the override"
        self.cycle.finish(record, HealResult.SUCCEEDED, note)

    def _resize(self, record: RemediationRecord, pods: list[PodFacts]) -> None:
        ov = override.active(self.md)
        if ov.resources is None:
            self.cycle.finish(record, HealResult.FAILED, "the spec's resources changed meanwhile")
            return
        if ov.in_place_generation is None:
            self._reapply(record, "rolled out with the new resources")
            return
        if self.md.spec.remediation.resize.in_place == "auto":
            stopped = inplace.not_running(pods, self.cycle.now)
            if stopped is not None:
                self._fall_back(record, stopped)
                return
        # Hinted before the resize is sent: an autoscaler's consolidation must not evict a pod
        # in the middle of it (the resize would be lost with the pod, and retried on a new one).
        disruption.hint(self.md.namespace, pods, on=True)
        refused = inplace.resize_pods(self.md.namespace, pods, self._wanted())
        if refused:
            why = "; ".join(f"{name}: {message}" for name, message in refused)
            self._fall_back(record, f"in-place resize refused ({why})")
        else:
            self.cycle.finish(record, HealResult.IN_PROGRESS, "resized in place")

    def _confirm_resize(self, record: RemediationRecord, pods: list[PodFacts]) -> None:
        live = [p for p in pods if not p.deleting]
        if live and all(p.resized for p in live):
            self.cycle.finish(record, HealResult.SUCCEEDED, "the kubelet applied the new resources")
            return
        why = inplace.fallback(self.md, live, self.cycle.now)
        if why is not None:
            self._fall_back(record, why)

    def _fall_back(self, record: RemediationRecord, why: str) -> None:
        """Resources through a rollout instead: the template takes them now."""
        if self.md.spec.remediation.resize.in_place == "always":
            note = f"{why}; inPlace is always, so no rollout"
            self.cycle.finish(record, HealResult.FAILED, note)
            return
        ov = override.active(self.md).model_copy(update={"in_place_generation": None})
        self.cycle.set(override=ov)
        self.cycle.write()  # the fallback is part of the intent: a restart must not redo the resize
        self._reapply(record, f"{why}: rolled out instead")
