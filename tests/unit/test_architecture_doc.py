"""docs/architecture.md names modules and functions; each must exist, or the page drifts."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
NAME = re.compile(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`")


def resolves(dotted: str) -> bool:
    """`module.attr...` under onnxops: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module("onnxops." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(found, attr):
                return False
            found = getattr(found, attr)
        return True
    return False


def test_every_name_in_the_architecture_page_exists() -> None:
    names = NAME.findall(DOC.read_text())
    assert len(names) > 30  # the page names the path; the check must have something to check
    assert [n for n in names if not resolves(n)] == []


def test_a_wrong_name_does_not_resolve() -> None:
    assert not resolves("override.no_such_door")
    assert not resolves("nosuchmodule.thing")
