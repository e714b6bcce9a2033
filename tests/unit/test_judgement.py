"""Exceptions judged into readable failures, and the outage log (pure; no cluster)."""

from __future__ import annotations

import logging

import pytest
from onnxops import judgement
from onnxops.api import ModelDeploymentSpec
from onnxops.outage import ApiError, ApiUnavailable, _Outage
from onnxops.reasons import Reason
from pydantic import ValidationError


def test_an_unreadable_spec_is_a_permanent_invalid_spec() -> None:
    # As stored before the schema refused it: a quantity no parser reads.
    bad = {"model": {"uri": "https://h/m.onnx"}, "resources": {"requests": {"cpu": "1.5.3"}}}
    with pytest.raises(ValidationError) as caught:
        ModelDeploymentSpec.model_validate(bad)
    failure = judgement.invalid_spec(caught.value)
    assert failure.reason == Reason.INVALID_SPEC and failure.permanent
    assert "resources.requests.cpu" in failure.message and "\n" not in failure.message


def test_an_unforeseen_exception_is_a_temporary_operator_error_in_one_line() -> None:
    failure = judgement.unforeseen(KeyError("first line\nsecond line"))
    assert failure.reason == Reason.OPERATOR_ERROR and not failure.permanent
    assert failure.message.startswith("operator error KeyError:") and "\n" not in failure.message


def test_terminating_namespace_is_recognised() -> None:
    message = 'deployments.apps "x" is forbidden: unable to create new content in namespace t because it is being terminated'
    assert ApiError(403, message).namespace_terminating
    assert not ApiError(403, "forbidden: RBAC").namespace_terminating


def test_outage_is_logged_once_and_summarised(caplog: pytest.LogCaptureFixture) -> None:
    outage = _Outage()
    caplog.set_level(logging.WARNING, logger="onnxops.k8s")
    outage.succeeded()  # nothing to say while all is well
    assert outage.describe() == "reachable"
    for _ in range(50):
        outage.failed(ApiUnavailable(0, "ConnectionRefusedError: refused"))
    assert outage.describe().startswith("unavailable for ")
    assert outage.describe().endswith(" s (50 calls failed)")
    outage.succeeded()
    assert outage.describe() == "reachable"
    outage.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("Kubernetes API unavailable (ConnectionRefusedError: refused)")
    assert "reachable again after" in lines[1] and "(50 calls failed meanwhile)" in lines[1]


def test_a_single_failed_call_is_a_blip_not_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    outage = _Outage()
    caplog.set_level(logging.WARNING, logger="onnxops.k8s")
    outage.failed(ApiUnavailable(0, "ConnectionResetError: reset"))
    assert outage.describe().startswith("unavailable for ")
    outage.succeeded()
    assert outage.describe() == "reachable"
    assert not caplog.records  # neither "unavailable" nor "reachable again" at WARNING
