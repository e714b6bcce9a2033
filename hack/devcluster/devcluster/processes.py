"""Start and stop the devcluster's processes: each in its own process group, recorded by PID.

A record carries the PID, the process start time and argv[0], so that stopping from a later
command (``cluster-down``) never signals an unrelated process that reused the PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


class ProcessExited(RuntimeError):
    """A process we depend on exited; waiting for it any longer is pointless."""


@dataclass(frozen=True)
class ProcessRecord:
    """One started process, as written to the state file."""

    name: str
    pid: int
    start_ticks: int
    argv0: str
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(**{k: data[k] for k in ("name", "pid", "start_ticks", "argv0", "log")})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel kills it if its parent dies,
    # so a test run killed with SIGKILL still leaves nothing behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    tie_to_parent: bool = False,
    preexec: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``argv`` in a new session (its own process group), output appended to ``log_path``;
    ``preexec`` runs in the child before exec (e.g. joining a cgroup)."""

    def before_exec() -> None:
        if tie_to_parent:
            _die_with_parent()
        if preexec is not None:
            preexec()

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=before_exec if tie_to_parent or preexec else None,
        )
    ticks = _start_ticks(proc.pid) or 0
    return proc, ProcessRecord(name, proc.pid, ticks, argv[0], str(log_path))


def is_running(record: ProcessRecord) -> bool:
    """True if the recorded process is still the one we started (same PID and start time)."""
    _reap(record.pid)
    ticks = _start_ticks(record.pid)
    return ticks is not None and (record.start_ticks == 0 or ticks == record.start_ticks)


def _reap(pid: int) -> None:
    # Collect the exit status if the process is our own child, so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(record: ProcessRecord, sig: signal.Signals) -> None:
    if not is_running(record):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The process leads its own session, so its PID is its process-group id.
        os.killpg(record.pid, sig)


def stop(records: Sequence[ProcessRecord], *, grace_s: float = 10.0) -> None:
    """SIGTERM each recorded process group, then SIGKILL whatever is left after ``grace_s``."""
    for record in records:
        _signal_group(record, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_running(r) for r in records):
        time.sleep(0.05)
    for record in records:
        _signal_group(record, signal.SIGKILL)
    for record in records:
        # A killed group may take a moment to disappear from /proc.
        for _ in range(100):
            if not is_running(record):
                break
            time.sleep(0.02)


def wait_for(predicate: Any, *, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ProcessExited:
            raise
        except Exception as error:  # the thing we wait for may not exist yet
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(interval_s)
