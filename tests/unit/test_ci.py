"""The CI entry point and the Makefile: lint is enforced, every declared target exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_lint_and_the_tests() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in lines  # a failing lint stops the run
    assert "make lint" in lines and "make test" in lines


def phony_targets() -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    declared = re.search(r"^\.PHONY:(.*)$", text, re.MULTILINE)
    assert declared is not None
    return declared.group(1).split()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", phony_targets())
def test_every_declared_target_has_a_rule(target: str) -> None:
    # -n: print the recipe without running it; a target without a rule fails here.
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60
    )
    assert "No rule to make target" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr


def test_test_module_basenames_are_unique() -> None:
    """pytest imports test modules by basename (rootdir, no packages): two files of one name
    in different suites stop the whole collection of `make test`."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
