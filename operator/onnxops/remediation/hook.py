"""Heal plugged into the monitor: a `Healer` is one of the monitor cycle's hooks
(`monitor.cycle.Hook`); after each detection it runs one remediation cycle (`act.heal`) for
the ModelDeployment, posts its Events and counts its actions in the operator's metrics.
It runs in the monitor's write pool: several models heal at once (one at a time each), so
what is shared between them (the fleet limit, the metrics) is safe across threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from onnxops import build, disruption, k8s, override, podapi, status
from onnxops.api import ACTIONS, RESULTS, Fault, ModelDeployment
from onnxops.monitor.metrics import NAMESPACE_LABEL
from onnxops.monitor.pods import PodFacts
from onnxops.override import active, model_ref
from onnxops.pools import PoolProfile, free_per_node, replicas_that_fit
from onnxops.reasons import Phase, Reason
from onnxops.remediation import act, guardrails, history

EVENT_COMPONENT = "onnxops-operator"
log = logging.getLogger("onnxops.heal")


def preferred_has_room(md: ModelDeployment, pools: dict[str, PoolProfile]) -> bool | None:
    """After a failover: whether the spec's own pool could hold the model again, at the
    resources its pods serve now (None when there was no failover, or the pool is unknown)."""
    target = md.spec.target
    moved = active(md).pool
    pool = pools.get(target.pool)
    if moved is None or moved == target.pool or pool is None:
        return None
    nodes, pods = podapi.nodes_and_pods()
    others = [
        p
        for p in pods
        if not (
            p["metadata"].get("namespace") == md.namespace
            and (p["metadata"].get("labels") or {}).get(build.MD_LABEL) == md.name
        )
    ]
    free = free_per_node(nodes, others, {**pool.node_selector, **target.node_selector})
    needed = md.spec.autoscaling.min_replicas if md.spec.autoscaling else md.spec.replicas
    return replicas_that_fit(free, override.pod_resources(md, pool)["requests"]) >= needed


def _idle(md: ModelDeployment, faults: list[Fault]) -> bool:
    """Nothing for heal to do or remember: no fault, no long low use, nothing in flight, no
    failover to undo, no resources resized in place to keep on new pods, and the model
    already marked healthy (or not Ready: a rollout in progress is the
    deploy path's, and writing status into it would only race its writes). Spares a read
    and a write per model per cycle."""
    if faults or active(md).pool is not None or override.resized_in_place(md):
        return False
    if status.placed_reason(md.status) == Reason.AWAITING_SCALE_UP:
        return False  # the wait for the autoscaler's node is over: Placed says so
    if md.status.low_use and md.spec.remediation.resize.shrink.enabled:
        return False  # a resize down may be due (as of the monitor's previous write)
    if any(r.result in guardrails.IN_FLIGHT for r in md.status.remediations):
        return False
    if history.says_in_flight(md):
        # Remediating=True with nothing in flight: a writer with an older copy of the
        # conditions put it back after the action ended; heal's next write corrects it.
        return False
    if md.status.phase != Phase.READY or active(md).model is not None:
        return True
    marks = md.status.models
    return marks is not None and marks.current == marks.healthy == model_ref(md.spec)


def skippable(md: ModelDeployment, faults: list[Fault], pods: Sequence[PodFacts]) -> bool:
    """Idle, and no pod carries a disruption hint the rule (`disruption.protected`) no longer
    wants: such a hint, left behind, is heal's to take off. The hints a rollout's analysis
    step wants are the rollout cycle's to put on, so they do not wake heal mid-rollout."""
    hinted = any(p.disruption_hint for p in pods if not p.deleting)
    return _idle(md, faults) and (not hinted or disruption.protected(md))


class Healer:
    """The monitor hook that heals; one per operator process."""

    def __init__(
        self,
        pools: dict[str, PoolProfile],
        fleet: guardrails.FleetLimit,
        reapply: act.Reapply,
        *,
        registry: CollectorRegistry | None = None,
        unreadable: Any = None,
    ) -> None:
        self.pools = pools
        self.fleet = fleet
        self.reapply = reapply
        # `unreadable(key) -> int`: consecutive failed metric reads of a model (the monitor's
        # tracks); faults that stand from before a failed read are not acted on.
        self.unreadable = unreadable or (lambda _key: 0)
        self.actions = Counter(
            "onnxops_operator_remediations",
            "Remediation actions by kind (restart, resize, ...) and result (Succeeded, Refused, ...)",
            ["action", "result", NAMESPACE_LABEL],
            registry=registry,
        )
        self._counted: set[str] = set()  # namespaces whose series exist

    def __call__(
        self,
        md: ModelDeployment,
        faults: list[Fault],
        pods: Sequence[PodFacts] | None,
        at: datetime,
    ) -> None:
        if md.namespace not in self._counted:
            # Every pair has a series once the namespace has a watched model, 0 until it happens.
            self._counted.add(md.namespace)
            for kind in ACTIONS:
                for result in RESULTS:
                    self.actions.labels(kind, result, md.namespace)
        if skippable(md, faults, pods or ()):
            return
        # The monitor just wrote status.faults, and our own last cycle wrote the history:
        # decide on the object as it is now, not as the watch last delivered it.
        fresh = k8s.get(md.api_version, md.kind, md.namespace, md.name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return
        current = ModelDeployment.model_validate(fresh)
        healed = act.heal(
            fresh,
            faults,
            pods,  # as the monitor's cycle listed them: no second pod list
            pools=self.pools,
            fleet=self.fleet,
            reapply=self.reapply,
            now=at,
            monitoring_known=self.unreadable((md.namespace, md.name)) == 0,
            preferred_has_room=preferred_has_room(current, self.pools),
        )
        if healed.verdicts:
            log.info(
                "heal %s/%s: %s",
                md.namespace,
                md.name,
                ", ".join(
                    f"{v.action.kind} {v.result} {v.refusal or ''}".strip() for v in healed.verdicts
                ),
            )
        for type_, reason, message in healed.events:
            k8s.post_event(fresh, type_, reason, message, EVENT_COMPONENT)
        for action, result in healed.outcomes:
            self.actions.labels(action, result, md.namespace).inc()
