"""Which errors count as the apiserver being unreachable (said once by the outage log, so the
monitor loop logs no traceback per model for them)."""

from __future__ import annotations

import pytest
import urllib3.exceptions
from onnxops.outage import ApiError, ApiUnavailable, unreachable


def _caused_by(cause: BaseException) -> Exception:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ApiUnavailable(0, "connection refused"), True),
        (ApiUnavailable(503, "overloaded"), True),
        (ConnectionResetError(), True),
        (urllib3.exceptions.MaxRetryError(None, "/api", None), True),  # type: ignore[arg-type]
        (_caused_by(urllib3.exceptions.ProtocolError("reset")), True),
        (ApiError(422, "invalid"), False),
        (ValueError("a bug"), False),
        (_caused_by(KeyError("x")), False),
    ],
)
def test_unreachable(error: BaseException, expected: bool) -> None:
    assert unreachable(error) is expected
