"""Acting on remediation decisions: the only place heal changes anything.

One `heal` call per monitor cycle: follow up the actions in flight, decide (policy), admit
(guardrails), record the intent in status *before* acting, act, record the outcome. Actions
change the operator's desired state (`status.override`, after which the children are
re-applied through `reconcile`) or call the Eviction API / `pods/resize`. Every execution is
idempotent, so an operator killed mid-action finds the Pending record and finishes that same
action: nothing repeated, nothing lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onnxops import k8s, reconcile
from onnxops.api import GROUP, KIND, VERSION, Condition, ModelDeployment, RemediationRecord, Result
from onnxops.build import CONTAINER, pod_selector
from onnxops.config import OperatorConfig
from onnxops.mergepatch import changes
from onnxops.pools import PoolProfile, effective_resources
from onnxops.reasons import ConditionType, HealResult, Phase, Reason
from onnxops.remediation import facts, guardrails, history, policy
from onnxops.remediation.override import active, serving


@dataclass
class Healed:
    """What one heal cycle did: Events to post, and the guardrails' verdicts."""

    events: list[history.Event] = field(default_factory=list)
    verdicts: list[guardrails.Verdict] = field(default_factory=list)
    outcomes: list[tuple[str, str]] = field(default_factory=list)
    """(action, result) of every record announced, for the operator's metrics."""


def heal(
    body: Mapping[str, Any],
    faults: Any,
    pods: list[dict[str, Any]] | None = None,
    *,
    pools: dict[str, PoolProfile],
    cfg: OperatorConfig,
    fleet: guardrails.FleetLimit,
    now: datetime,
    monitoring_known: bool = True,
    preferred_has_room: bool | None = None,
) -> Healed:
    """One remediation cycle for one ModelDeployment (the monitor's hook after detection).

    `faults`: status.faults as the monitor found them; `pods`: the serving pods (listed here
    when None); `monitoring_known`: False when the monitor could not measure (Prometheus
    down): actions in flight are still followed up, but nothing new is decided."""
    md = ModelDeployment.model_validate(dict(body))
    pool = pools.get(md.status.pool or "")
    if pool is None:
        return Healed()  # not placed yet: that is deploying, not healing
    found, problems = facts.findings(faults)
    in_flight = any(r.result in guardrails.IN_FLIGHT for r in md.status.remediations)
    if pods is None:  # only a fault, low use, an action in flight or pods resized in place
        needed = found or in_flight or md.status.low_use or resized_in_place(md)
        pods = k8s.list_pods(md.namespace, pod_selector(md)) if needed else []
    pod_facts = [facts.pod_facts(p) for p in pods]
    cycle = _Cycle(md, pools, cfg, now)
    cycle.follow_up(pod_facts)
    cycle.keep_resized(pod_facts)
    healthy = not found and not problems and monitoring_known and md.status.phase == Phase.READY
    cycle.set(models=history.remember_models(cycle.md, healthy=healthy, now=now))
    current = effective_resources(serving(cycle.md), pool)
    actions = policy.decide(
        policy.Situation(
            md=cycle.md,
            findings=found,
            pods=pod_facts,
            resources=current,
            now=now,
            preferred_has_room=preferred_has_room,
        )
    )
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
        problems=problems,
        metrics_unknown=None if monitoring_known else "the monitor could not read Prometheus",
        current_replicas=len([p for p in pod_facts if not p.deleting]) or None,
    )
    pending = cycle.record(verdicts)
    cycle.write()  # the intent, before anything changes
    for record in pending:
        cycle.execute(record, pod_facts)
    cycle.write()
    return Healed(cycle.events, verdicts, cycle.outcomes)


def resized_in_place(md: ModelDeployment) -> bool:
    """Whether resources resized in place stand for this generation (kept off the template)."""
    ov = active(md)
    return ov.resources is not None and ov.in_place_generation == md.metadata.get("generation")


class _Cycle:
    """One heal cycle: the ModelDeployment as it will be written back, and its Events."""

    def __init__(
        self, md: ModelDeployment, pools: dict[str, PoolProfile], cfg: OperatorConfig, now: datetime
    ) -> None:
        self.md = md
        self.pools = pools
        self.cfg = cfg
        self.now = now
        self.events: list[history.Event] = []
        self.outcomes: list[tuple[str, str]] = []
        self._written = self._ours()

    def set(self, **changes: Any) -> None:
        st = self.md.status.model_copy(update=changes)
        self.md = self.md.model_copy(update={"status": st})

    def _ours(self) -> dict[str, Any]:
        """The part of status remediation owns, as it would be written now."""
        st = self.md.status
        remediating = [
            c
            for c in history.remediating(self.md, self.now)
            if c["type"] == ConditionType.REMEDIATING
        ]
        return {
            "remediations": [r.wire() for r in st.remediations],
            # With its None parts: a merge patch removes what ended.
            "override": active(self.md).model_dump(by_alias=True, mode="json"),
            "models": st.models.wire() if st.models else None,
            "remediating": remediating,
        }

    def write(self) -> None:
        """Patch the remediation part of status (history, override, marks, condition)."""
        ours = self._ours()
        if ours == self._written:
            return
        # Conditions are one list in a merge patch: start from the latest ones (a reconcile
        # or a readiness refresh may have written some since this cycle read them).
        latest = k8s.get(f"{GROUP}/{VERSION}", KIND, self.md.namespace, self.md.name)
        if latest is None:
            return  # deleted meanwhile: nothing left to heal
        self.set(conditions=ModelDeployment.model_validate(latest).status.conditions)
        conditions = history.remediating(self.md, self.now)
        patch = {k: v for k, v in ours.items() if k != "remediating"}
        # Only what differs from the object as just read: the write carries what changed.
        patch = changes(latest.get("status") or {}, {**patch, "conditions": conditions})
        if patch:
            k8s.patch_status(self.md.namespace, self.md.name, patch)
        self.set(conditions=[Condition.model_validate(c) for c in conditions])
        self._written = ours

    def _announce(self, record: RemediationRecord) -> None:
        self.outcomes.append((record.action, record.result))
        self.events.append(history.event(record))

    def record(self, verdicts: list[guardrails.Verdict]) -> list[RemediationRecord]:
        """History entries and Events for the verdicts; returns the admitted records."""
        new, pending = [], []
        for verdict in verdicts:
            if not verdict.news and verdict.result != HealResult.PENDING:
                continue  # said recently; saying it every cycle would drown the Events
            record = history.new_record(verdict, self.now)
            new.append(record)
            if verdict.result == HealResult.PENDING:
                pending.append(record)
                self.set(override=history.intended(self.md, verdict.action, self.now))
            else:
                self._announce(record)
        self.set(remediations=history.appended(self.md.status.remediations, new))
        return pending

    def finish(self, record: RemediationRecord, result: Result, note: str = "") -> None:
        done = history.finished(record, result, note, self.now)
        self.set(remediations=history.replaced(self.md.status.remediations, done))
        self._announce(done)

    def follow_up(self, pods: list[facts.PodFacts]) -> None:
        """Resume a Pending action (the operator died mid-action); confirm an in-place resize
        or fall back to a rollout."""
        for record in list(self.md.status.remediations):
            if record.result == HealResult.PENDING:
                self.execute(record, pods)
            elif record.result == HealResult.IN_PROGRESS and record.action == "resize":
                self._confirm_resize(record, pods)

    def keep_resized(self, pods: list[facts.PodFacts]) -> None:
        """Resources resized in place are not in the template: a pod the ReplicaSet makes
        later (an eviction, a lost node) starts with the old ones. Resize it in place too, as
        VPA's updater does, so the override holds for every pod of this generation."""
        if not resized_in_place(self.md):
            return
        if any(
            r.action == "resize" and r.result in guardrails.IN_FLIGHT
            for r in self.md.status.remediations
        ):
            return  # the resize in flight is still reaching its pods
        ov = active(self.md)
        assert ov.resources is not None
        wanted = {k: v for k, v in ov.resources.wire().items() if v}
        behind = [p for p in pods if not facts.same_resources(p.resources, wanted)]
        refused = dict(self._resize_pods(behind, wanted))
        for pod in behind:
            if pod.deleting:
                continue
            if pod.name in refused:
                why = f"{pod.name} keeps the template's resources: {refused[pod.name]}"
                self.events.append(("Warning", Reason.RESIZE_REFUSED, why))
            else:
                why = (
                    f"{pod.name} started with the template's resources; resized in place to the"
                    f" remediated ones ({_short(wanted)})"
                )
                self.events.append(("Normal", Reason.RESIZE_APPLIED, why))

    def _resize_pods(
        self, pods: list[facts.PodFacts], wanted: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """`pods/resize` of each live pod; (pod, why) for each the apiserver refused."""
        refused = []
        for pod in pods:
            if pod.deleting:
                continue
            try:
                k8s.resize_pod(self.md.namespace, pod.name, CONTAINER, wanted)
            except k8s.ApiError as exc:
                if exc.status >= 500:
                    raise
                refused.append((pod.name, exc.message))
        return refused

    # -- the actions ------------------------------------------------------------------------

    def execute(self, record: RemediationRecord, pods: list[facts.PodFacts]) -> None:
        """Carry out a recorded action; safe to repeat (its override is already in status)."""
        try:
            if record.action == "restart":
                self._evict(record)
            elif record.action == "resize":
                self._resize(record, pods)
            else:  # rolloutRestart, failover, failback, rollback: the override does it
                self._reapply(record)
        except k8s.ApiError as exc:
            self.finish(record, HealResult.FAILED, f"the apiserver refused: {exc}")

    def _evict(self, record: RemediationRecord) -> None:
        blocked = []
        for ref in record.pods:
            name, _, uid = ref.partition("/")
            if k8s.evict(self.md.namespace, name, uid or None) == "blocked":
                blocked.append(name)
        if blocked:
            note = f"a PodDisruptionBudget forbids evicting {', '.join(blocked)} now"
            self.finish(record, HealResult.FAILED, note)
        else:
            self.finish(record, HealResult.SUCCEEDED, "evicted; the Deployment replaces it")

    def _reapply(self, record: RemediationRecord, note: str = "") -> None:
        try:
            reconcile.reconcile(self._body(), self.pools, self.cfg)
        except reconcile.Judged as judged:
            self.finish(
                record, HealResult.FAILED, f"{judged.failure.reason}: {judged.failure.message}"
            )
            return
        self.finish(record, HealResult.SUCCEEDED, note or "children re-applied with the override")

    def _body(self) -> dict[str, Any]:
        body = self.md.model_dump(by_alias=True, mode="json", exclude_none=True)
        body["status"]["override"] = active(self.md).wire()
        return body

    def _resize(self, record: RemediationRecord, pods: list[facts.PodFacts]) -> None:
        ov = active(self.md)
        if ov.resources is None:
            self.finish(record, HealResult.FAILED, "the spec's resources changed meanwhile")
            return
        if ov.in_place_generation is None:
            self._reapply(record, "rolled out with the new resources")
            return
        wanted = {k: v for k, v in ov.resources.wire().items() if v}
        refused = self._resize_pods(pods, wanted)
        if refused:
            why = "; ".join(f"{name}: {message}" for name, message in refused)
            self._fall_back(record, f"in-place resize refused ({why})")
        else:
            done = history.finished(record, HealResult.IN_PROGRESS, "resized in place", self.now)
            self.set(remediations=history.replaced(self.md.status.remediations, done))
            self._announce(done)

    def _confirm_resize(self, record: RemediationRecord, pods: list[facts.PodFacts]) -> None:
        live = [p for p in pods if not p.deleting]
        if live and all(p.resized for p in live):
            self.finish(record, HealResult.SUCCEEDED, "the kubelet applied the new resources")
            return
        why = policy.resize_fallback(self.md, live, self.now)
        if why is not None:
            self._fall_back(record, why)

    def _fall_back(self, record: RemediationRecord, why: str) -> None:
        """Resources through a rollout instead: the template takes them now."""
        if self.md.spec.remediation.resize.in_place == "always":
            self.finish(record, HealResult.FAILED, f"{why}; inPlace is always, so no rollout")
            return
        ov = active(self.md).model_copy(update={"in_place_generation": None})
        self.set(override=ov)
        self.write()  # the fallback is part of the intent: a restart must not redo the resize
        self._reapply(record, f"{why}: rolled out instead")


def _short(resources: Mapping[str, Mapping[str, str]]) -> str:
    return ", ".join(f"{part} {k}={v}" for part, vals in resources.items() for k, v in vals.items())
