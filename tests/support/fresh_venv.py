"""A fresh virtual environment with only what one image installs, for the tests that start
an image's entry point where no Docker engine runs (the image's dependency list is the
thing under test: a module missing from it fails here, not in a cluster)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# pip on a busy machine: resolving and unpacking from its cache can take minutes.
INSTALL_TIMEOUT_S = 900


def create(folder: Path, *installs: Sequence[str]) -> Path:
    """A venv in `folder` (no system site-packages) after each `pip install ARGS`; its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True, timeout=300
    )
    python = folder / "bin" / "python"
    for args in installs:
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        assert result.returncode == 0, f"pip install {' '.join(args)}:\n{result.stderr[-3000:]}"
    return python


def has_module(python: Path, module: str) -> bool:
    """Whether `module` is importable in that environment (without importing it)."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(python), "-c", probe], timeout=120).returncode == 0
