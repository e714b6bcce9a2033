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
