"""What the cluster autoscaler said about a model's unschedulable pods, read from the pods'
Events: a node is coming (Karpenter's `Nominated`, Cluster Autoscaler's `TriggeredScaleUp`),
none is (Karpenter's `FailedScheduling`: no NodePool fits, no compatible instance type, a
NodePool at its limits; Cluster Autoscaler's `NotTriggerScaleUp`), or nothing was said. Pure.

The failover waits `scaleUpGraceSeconds` (counted, like `unschedulableSeconds`, from when the
pods turned Unschedulable) only while the autoscaler's latest word on every unschedulable pod is
that a node is coming; any other word, or none, leaves `unschedulableSeconds` the bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onnxops.monitor.pods import PodFacts, parse_time

KARPENTER = "karpenter"
CLUSTER_AUTOSCALER = "cluster-autoscaler"
# (component, reason) -> whether that word says a node is coming.
WORDS: dict[tuple[str, str], bool] = {
    (KARPENTER, "Nominated"): True,
    (KARPENTER, "FailedScheduling"): False,
    (CLUSTER_AUTOSCALER, "TriggeredScaleUp"): True,
    (CLUSTER_AUTOSCALER, "NotTriggerScaleUp"): False,
}
# Karpenter's "Pod should schedule on: nodeclaim/edge-x2k4p, node/..." names what is coming: a
# claim being launched, or a node already launched but not yet initialized.
_CLAIM = re.compile(r"\b(nodeclaim/[\w.-]+)")
_NODE = re.compile(r"\b(node/[\w.-]+)")


@dataclass(frozen=True)
class Word:
    """The autoscaler's latest word on one pod."""

    pod: str
    coming: bool
    component: str
    reason: str
    message: str
    at: datetime | None

    @property
    def claim(self) -> str:
        """The node claim named (Karpenter), else the autoscaler's own message."""
        found = _CLAIM.search(self.message) or _NODE.search(self.message)
        return found.group(1) if found else self.message


@dataclass(frozen=True)
class ScaleUp:
    """The autoscaler's word on a model's unschedulable pods, all of them."""

    coming: bool
    """A node is coming for every unschedulable pod."""
    words: tuple[Word, ...]

    @property
    def claims(self) -> str:
        """What is coming (or why not), one line: 'nodeclaim/edge-x2k4p'."""
        return ", ".join(sorted({w.claim if w.coming else w.message for w in self.words}))

    @property
    def by(self) -> str:
        return ", ".join(sorted({w.component for w in self.words}))


def _component(event: Mapping[str, Any]) -> str:
    return str(
        (event.get("source") or {}).get("component")
        or event.get("reportingComponent")
        or event.get("reportingController")
        or ""
    )


def _when(event: Mapping[str, Any]) -> datetime | None:
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        moment = parse_time(value)
        if moment is not None:
            return moment
    return None


def words(events: Iterable[Mapping[str, Any]], uids: Mapping[str, str]) -> dict[str, Word]:
    """The latest autoscaler word per pod (by name), of the pods `uids` names (uid -> name)."""
    latest: dict[str, Word] = {}
    for event in events:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        pod = uids.get(str(involved.get("uid") or ""))
        key = (_component(event), str(event.get("reason") or ""))
        if pod is None or key not in WORDS:
            continue
        word = Word(
            pod,
            WORDS[key],
            key[0],
            key[1],
            str(event.get("note") or event.get("message") or ""),
            _when(event),
        )
        seen = latest.get(pod)
        if seen is None or (word.at is not None and (seen.at is None or word.at >= seen.at)):
            latest[pod] = word
    return latest


def heard(events: Iterable[Mapping[str, Any]], pods: Sequence[PodFacts]) -> ScaleUp | None:
    """What the autoscaler said of the unschedulable pods among `pods`; None when it said
    nothing about any of them (no autoscaler, or it has not looked yet)."""
    stuck = {p.uid: p.name for p in pods if p.unschedulable is not None and not p.deleting}
    if not stuck:
        return None
    found = words(events, stuck)
    if not found:
        return None
    said = tuple(found[name] for name in sorted(found))
    coming = len(found) == len(stuck) and all(w.coming for w in said)
    return ScaleUp(coming=coming, words=said)
