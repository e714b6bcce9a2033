"""Write an output directory all at once: build it beside the target, then rename it into place.

A failure (bad input, failed gate, Ctrl-C) leaves the previous directory, or nothing, behind,
never a half-written bundle.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onnxops.errors import UserInputError


def check_target(target: Path, marker: str) -> None:
    """Refuse to replace a directory that is not ours (it must be empty or hold `marker`)."""
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).exists():
        raise UserInputError(f"{target} is not empty and has no {marker}; refusing to replace it")
    if target.parent.exists() and not target.parent.is_dir():
        raise UserInputError(f"{target.parent} is not a directory")


@contextmanager
def staged_dir(target: Path, marker: str, *, copy_existing: bool = False) -> Iterator[Path]:
    """Yield a fresh directory that replaces `target` when the block succeeds."""
    target = target.resolve()
    check_target(target, marker)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Same parent, so the final rename is atomic on one file system.
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise UserInputError(f"cannot write into {target.parent}: {exc.strerror or exc}") from None
    stage.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be read by servers
    try:
        if copy_existing and target.is_dir():
            shutil.copytree(target, stage, dirs_exist_ok=True)
        yield stage
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            stage.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
