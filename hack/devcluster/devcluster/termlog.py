"""The termination message, as the kubelet gathers it.

The kubelet bind-mounts a fresh host file at the container's ``terminationMessagePath``
(default ``/dev/termination-log``) for each run, and when the run ends copies what the
process wrote there (at most 4096 bytes) into the container's ``terminated.message``. With
``terminationMessagePolicy: FallbackToLogsOnError`` an empty file and a failed run take the
tail of the container's log instead (80 lines, at most 2048 bytes).

There is no mount namespace here: environment values that name the path are rebound to the
host file (as `volumes` does for volume mounts), which is how the serving runtime learns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_PATH = "/dev/termination-log"
MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


class TerminationLog:
    """One container's termination-message file and its log, on the host."""

    def __init__(self, container: Mapping[str, Any], host_file: Path, log_file: Path) -> None:
        self.path = str(container.get("terminationMessagePath") or DEFAULT_PATH)
        self.fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        self.host_file = host_file
        self.log_file = log_file

    def rewrite_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with values naming the message path rebound to the host file."""
        return {k: str(self.host_file) if v == self.path else v for k, v in env.items()}

    def reset(self) -> None:
        """A new, empty file for the next run (a message belongs to one run)."""
        self.host_file.parent.mkdir(parents=True, exist_ok=True)
        self.host_file.write_bytes(b"")

    def message(self, exit_code: int) -> str:
        """The message of the run that just ended ("" for none)."""
        try:
            with self.host_file.open("rb") as fh:
                written = fh.read(MESSAGE_BYTES)
        except OSError:
            written = b""
        if written.strip() or not self.fallback or exit_code == 0:
            return written.decode(errors="replace").strip()
        return self._log_tail()

    def _log_tail(self) -> str:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - 64 * FALLBACK_BYTES))
                data = fh.read()
        except OSError:
            return ""
        tail = b"\n".join(data.splitlines()[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
        return tail.decode(errors="replace").strip()
