"""What remediation decides on from the monitor: its faults (typed `api.Fault`s, as detection
made them) as `Finding`s, with the times read once. The pods' facts are the monitor's
`PodFacts`, handed over with them. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from onnxops.api import Fault
from onnxops.monitor.pods import parse_time


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Finding:
    """One current fault: a signal over its threshold since some time, on some pods."""

    signal: str
    message: str = ""
    value: float | None = None
    threshold: float | None = None
    since: datetime | None = None
    pods: tuple[str, ...] = ()
    """Affected pods; empty means the whole deployment."""


def findings(faults: Sequence[Fault]) -> list[Finding]:
    """The monitor's faults as Findings (an unreadable `since` is unknown, never guessed)."""
    return [
        Finding(
            signal=str(f.signal),
            message=f.message,
            value=f.value,
            threshold=f.threshold,
            since=parse_time(f.since),
            pods=tuple(f.pods),
        )
        for f in faults
    ]
