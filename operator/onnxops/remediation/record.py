"""One heal cycle's record in status: the ModelDeployment as it will be written back (history,
override, model marks, the `Remediating` condition), its Events and outcomes, and the one
write that carries only what changed. `act.py` decides and acts; this keeps the books.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onnxops import k8s, status
from onnxops.api import GROUP, KIND, VERSION, Condition, ModelDeployment, RemediationRecord, Result
from onnxops.mergepatch import changes
from onnxops.override import active
from onnxops.reasons import ConditionType, HealResult
from onnxops.remediation import guardrails, history
from onnxops.remediation.findings import iso


class Cycle:
    """One heal cycle: the ModelDeployment as it will be written back, and its Events."""

    def __init__(self, md: ModelDeployment, now: datetime) -> None:
        self.md = md
        self.now = now
        self.events: list[history.Event] = []
        self.outcomes: list[tuple[str, str]] = []
        """(action, result) of every record announced, for the operator's metrics."""
        self.placed: tuple[str, str] | None = None
        """(reason, message) of the Placed condition, where heal has a word on it (waiting
        for the autoscaler's node); else the deploy path's."""
        # What status holds now: the Remediating condition as read (a stale one, put back by a
        # writer with an older copy of the conditions, is rewritten by this cycle's write).
        self._written = {**self._ours(), "remediating": self._stored_remediating()}

    def _stored_remediating(self) -> list[dict[str, Any]]:
        return [c.wire() for c in self.md.status.conditions if c.type == ConditionType.REMEDIATING]

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
            "placed": self.placed,
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
        if self.placed is not None:
            conditions = status.set_condition(
                conditions,
                type_=ConditionType.PLACED,
                status=True,
                reason=self.placed[0],
                message=self.placed[1],
                generation=self.md.metadata.get("generation"),
                now=iso(self.now),
            )
        patch = {k: v for k, v in ours.items() if k not in ("remediating", "placed")}
        # Only what differs from the object as just read: the write carries what changed.
        patch = changes(latest.get("status") or {}, {**patch, "conditions": conditions})
        if patch:
            k8s.patch_status(self.md.namespace, self.md.name, patch)
        self.set(conditions=[Condition.model_validate(c) for c in conditions])
        self._written = ours

    def announce(self, record: RemediationRecord) -> None:
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
                self.announce(record)
        self.set(remediations=history.appended(self.md.status.remediations, new))
        return pending

    def finish(self, record: RemediationRecord, result: Result, note: str = "") -> None:
        """A record moved on (done, or still in flight): replaced in the history, announced."""
        done = history.finished(record, result, note, self.now)
        self.set(remediations=history.replaced(self.md.status.remediations, done))
        self.announce(done)
