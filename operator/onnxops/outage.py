"""The apiserver's availability as the operator sees it: the errors of its calls, and an
outage log that says once that the API went away and once, with a summary, that it is back,
instead of a traceback for each of the thousands of calls that fail meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("onnxops.k8s")


class ApiError(Exception):
    """A non-2xx answer from the apiserver."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message

    @property
    def namespace_terminating(self) -> bool:
        """The namespace is being deleted: creating in it is refused, and that is no failure."""
        return self.status == 403 and "being terminated" in self.message


class ApiUnavailable(ApiError):
    """The apiserver could not be reached (status 0), or is overloaded or failing (429, 5xx):
    retry."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        if status == 0:  # no answer at all: "HTTP 0" would only mislead
            self.args = (message,)


class _Outage:
    """Counts failed calls while the apiserver is unreachable, so the log says it once when
    it goes and once, with a summary, when it is back (not a traceback per call). One failed
    call followed by a success is a blip (a connection dropped under load), not an outage: it
    is logged at INFO only; the second failure in a row announces the outage."""

    ANNOUNCE_AFTER = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0
        self.announced = False

    def failed(self, error: ApiUnavailable) -> None:
        with self._lock:
            self.failures += 1
            if self.since is None:
                self.since = time.monotonic()
            announce = not self.announced and self.failures >= self.ANNOUNCE_AFTER
            self.announced = self.announced or announce
        if announce:
            logger.warning("Kubernetes API unavailable (%s); retrying with back-off", error)

    def succeeded(self) -> None:
        if self.since is None:  # the common case, without taking the lock
            return
        with self._lock:
            since, failures, announced = self.since, self.failures, self.announced
            self.since, self.failures, self.announced = None, 0, False
        if since is None:
            return
        if announced:
            logger.warning(
                "Kubernetes API reachable again after %.1f s (%d calls failed meanwhile)",
                time.monotonic() - since,
                failures,
            )
        else:
            logger.info("one Kubernetes API call failed and the next succeeded (a blip)")

    def describe(self) -> str:
        """ "reachable", or how long the API has been unavailable (for the liveness JSON)."""
        since = self.since
        if since is None:
            return "reachable"
        return f"unavailable for {time.monotonic() - since:.0f} s ({self.failures} calls failed)"


outage = _Outage()


def reason_of(exc: BaseException) -> str:
    """The innermost cause in one line (urllib3 nests it: MaxRetryError > NewConnectionError)."""
    inner = getattr(exc, "reason", None)
    return str(inner if isinstance(inner, BaseException) else exc).splitlines()[0][:200]


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the apiserver being unreachable: such errors
    are said once by the outage log, so callers that catch broadly log no traceback for them."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ApiUnavailable | ConnectionError | TimeoutError):
            return True
        if type(seen).__module__.startswith("urllib3."):  # MaxRetryError, ProtocolError, ...
            return True
        seen = seen.__cause__ or seen.__context__
    return False
