"""mergepatch.changes: the merge patch that carries only what changed gives the same object
as the whole patch would."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops.mergepatch import changes


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch, as the apiserver applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


CONDITIONS = [{"type": "Healthy", "status": "True"}, {"type": "Ready", "status": "True"}]


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        # nothing moved: nothing to send
        ({"phase": "Ready", "conditions": CONDITIONS}, {"conditions": CONDITIONS}, {}),
        # a list is replaced whole, so it goes whole when one item moved
        (
            {"phase": "Ready", "conditions": CONDITIONS, "faults": []},
            {"conditions": [CONDITIONS[0], {"type": "Ready", "status": "False"}], "faults": []},
            {"conditions": [CONDITIONS[0], {"type": "Ready", "status": "False"}]},
        ),
        # objects key by key; a removal only where there is something to remove
        (
            {"override": {"pool": "cloud", "model": {"uri": "a"}}},
            {"override": {"pool": None, "resources": None, "model": {"uri": "a"}, "x": None}},
            {"override": {"pool": None}},
        ),
        # new fields and scalars
        ({}, {"phase": "Degraded", "lowUse": []}, {"phase": "Degraded", "lowUse": []}),
        ({"faults": [{"signal": "Drift"}]}, {"faults": []}, {"faults": []}),
    ],
)
def test_changes_is_the_part_that_changes(
    current: dict[str, Any], desired: dict[str, Any], expected: dict[str, Any]
) -> None:
    patch = changes(current, desired)
    assert patch == expected
    assert merged(current, patch) == merged(current, desired)
