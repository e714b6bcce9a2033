"""Reading the monitor's faults as heal's findings: typed in, times read once."""

from __future__ import annotations

from heal_kit import NOW, fault, findings


def test_findings_follow_the_monitor_contract() -> None:
    (f,) = findings([fault("OOMKilled", pods=["p-a"], since=30)])
    assert (f.signal, f.pods, f.value, f.threshold) == ("OOMKilled", ("p-a",), 1.0, 0.5)
    assert f.since is not None and (NOW - f.since).total_seconds() == 30


def test_an_unreadable_since_is_unknown_not_guessed() -> None:
    (f,) = findings([{"signal": "ErrorRate", "since": "yesterday"}])
    assert f.since is None and f.value is None
