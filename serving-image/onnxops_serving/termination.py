"""The termination message: why the process could not start, for the pod's status.

The kubelet copies the file at the container's ``terminationMessagePath`` into
``status.containerStatuses[].lastState.terminated.message`` (at most 4096 bytes), so the
operator can tell *why* a pod crash-loops without reading its logs. The first word is the
cause (`errors.LoadFailure`), then ``: `` and the message, which names the model's URI but
never a credential.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

LIMIT_BYTES = 4096
"""What the kubelet keeps of the file."""


def message(reason: str, text: str) -> str:
    """``Reason: text``, cut to what the kubelet keeps (whole characters)."""
    line = f"{reason}: {' '.join(text.split())}"
    data = line.encode()
    if len(data) <= LIMIT_BYTES:
        return line
    return data[: LIMIT_BYTES - 3].decode(errors="ignore") + "..."


def write(path: str, reason: str, text: str) -> bool:
    """Write the termination message; False (and a log line) where the path cannot be
    written: outside a container ``/dev/termination-log`` usually cannot, which is fine."""
    if not path:
        return False
    try:
        Path(path).write_text(message(reason, text), encoding="utf-8")
    except OSError as exc:
        log.debug("termination message not written to %s: %s", path, exc)
        return False
    return True
