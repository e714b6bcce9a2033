"""A container's runs ending and starting again, as the kubelet records them for
``restartPolicy: Always``: the terminated state of the run that ended (``OOMKilled``,
``Completed``, ``Error`` and the exit code), then a crash back-off that doubles up to a cap and
starts afresh after a long run (``CrashLoopBackOff`` while it waits).
"""

from __future__ import annotations

import time

from .podstatus import ContainerView

# A container that ran this long without exiting starts its back-off afresh.
BACKOFF_RESET_S = 120.0


def exit_code(returncode: int) -> int:
    """The container's exit code: a signal N is 128 + N, as the runtime reports it."""
    return 128 - returncode if returncode < 0 else returncode


def record_exit(view: ContainerView, returncode: int, *, oom: bool, message: str) -> None:
    """The run that just ended, as the container's terminated state."""
    view.state, view.finished_at, view.ready = "terminated", time.time(), False
    view.exit_code = exit_code(returncode)
    view.reason = "OOMKilled" if oom else ("Completed" if returncode == 0 else "Error")
    view.message = message


def record_backoff(view: ContainerView, delay_s: float, container: str, pod: str) -> None:
    """The container waits ``delay_s`` before its next run."""
    view.state, view.reason = "waiting", "CrashLoopBackOff"
    view.message = f"back-off {delay_s:.0f}s restarting failed container={container} pod={pod}"


class Backoff:
    """The delay before a crashed container's next run: 0 the first time, then ``first_s``
    doubling up to ``max_s``."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s, self.max_s = first_s, max_s
        self.next_delay_s = 0.0

    def after(self, ran_s: float) -> float:
        """The delay after a run of ``ran_s`` seconds (and the next one doubles)."""
        if ran_s >= BACKOFF_RESET_S:
            self.next_delay_s = 0.0
        delay = self.next_delay_s
        self.next_delay_s = min(self.max_s, max(self.first_s, self.next_delay_s * 2))
        return delay
