"""Why a model's serving pods cannot load it, read from the pods' termination messages.

The serving runtime ends a start it cannot complete with ``Reason: message`` in its
termination message (`serving-image/onnxops_serving/termination.py`); the kubelet copies that
into the container's ``terminated.message``. A pod that is not ready and whose last run ended
so is a load failure with that cause: the operator shows it as ``ModelAvailable=False`` with
the cause as reason, without Prometheus and without reading logs. A message without a known
cause (an OOM kill, a crash) is not judged here: that is the monitor's and heal's business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from onnxops.build import CONTAINER
from onnxops.reasons import LOAD_FAILURE_REASONS

MESSAGE_CHARS = 600
"""Of the runtime's message, what a condition carries (the pod's status keeps all of it)."""


@dataclass(frozen=True)
class LoadFailure:
    reason: str
    message: str
    pods: int = 1
    """How many not-ready pods failed with this cause."""


def parse(message: str | None) -> tuple[str, str] | None:
    """(cause, text) of a runtime's termination message; None if it names no known cause."""
    head, sep, text = (message or "").strip().partition(": ")
    if not sep or head not in LOAD_FAILURE_REASONS:
        return None
    return head, " ".join(text.split())[:MESSAGE_CHARS]


def of_pod(pod: Mapping[str, Any]) -> LoadFailure | None:
    """The load failure of one serving pod, if its container is not ready and its last run
    ended with a known cause."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    container = next((c for c in statuses if c.get("name") == CONTAINER), None)
    if container is None or container.get("ready"):
        return None
    state, last = container.get("state") or {}, container.get("lastState") or {}
    ended = state.get("terminated") or last.get("terminated") or {}
    if int(ended.get("exitCode") or 0) == 0:
        return None
    cause = parse(ended.get("message"))
    return LoadFailure(*cause) if cause else None


def of_pods(pods: Iterable[Mapping[str, Any]]) -> LoadFailure | None:
    """The most common cause among the pods (ties: the first seen), with its pod count."""
    found = [f for f in (of_pod(p) for p in pods) if f is not None]
    if not found:
        return None
    counts = Counter(f.reason for f in found)
    reason = max(counts, key=lambda r: counts[r])  # max keeps the first of equal counts
    first = next(f for f in found if f.reason == reason)
    return LoadFailure(reason, first.message, counts[reason])
