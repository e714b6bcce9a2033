"""watch.py: only the active replica (kopf's peering rule) runs the monitor's cycles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from onnxops.watch import peering_allows

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _peer(priority: int, seconds_ago: int, lifetime: int = 60) -> dict[str, object]:
    seen = NOW.timestamp() - seconds_ago
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": datetime.fromtimestamp(seen, UTC).isoformat(),
    }


@pytest.mark.parametrize(
    ("peers", "allowed"),
    [
        ({"me": _peer(5, 1)}, True),
        ({"me": _peer(5, 1), "other": _peer(3, 1)}, True),
        ({"me": _peer(5, 1), "other": _peer(9, 1)}, False),  # the other one is active
        ({"me": _peer(5, 1), "other": _peer(9, 120)}, True),  # ... but dead
        ({"me": _peer(5, 1), "twin": _peer(5, 1)}, False),  # kopf pauses both
        ({}, True),  # not yet registered: kopf itself is not paused either
    ],
)
def test_peering_allows(peers: dict[str, object], allowed: bool) -> None:
    assert peering_allows({"status": peers}, 5, NOW) is allowed


def _body(name: str, interval: int) -> dict[str, object]:
    return {
        "metadata": {"namespace": "ml", "name": name},
        "spec": {"monitoring": {"intervalSeconds": interval}},
    }


def test_models_are_due_on_a_grid_of_their_own_interval() -> None:
    from onnxops.config import OperatorConfig
    from onnxops.monitor.cycle import Monitor

    monitor = Monitor(OperatorConfig())
    bodies = {("ml", "a"): _body("a", 10), ("ml", "b"): _body("b", 10), ("ml", "c"): _body("c", 30)}
    assert sorted(monitor.due(bodies, 1000.0)) == [("ml", "a"), ("ml", "b"), ("ml", "c")]  # new
    assert monitor.due(bodies, 1005.0) == []
    # a and b share their slot, so they share one cycle (and one set of queries)
    assert sorted(monitor.due(bodies, 1010.0)) == [("ml", "a"), ("ml", "b")]
    # c's grid is 990, 1020, 1050...: all three meet at 1020
    assert sorted(monitor.due(bodies, 1020.0)) == [("ml", "a"), ("ml", "b"), ("ml", "c")]
    assert sorted(monitor.due(bodies, 1030.0)) == [("ml", "a"), ("ml", "b")]
    del bodies[("ml", "b")]
    assert monitor.due(bodies, 1040.0) == [("ml", "a")]
    assert ("ml", "b") not in monitor._slots  # a deleted model is forgotten
