"""Why serving pods cannot load a model: the runtime's termination message parsed into a
cause, and what status and Events make of it (phase Failed or Degraded, ModelAvailable=False
with the cause, one Warning per cause)."""

from __future__ import annotations

from typing import Any

from onnxops import loadfailure, status
from onnxops.api import ModelDeployment, ModelDeploymentStatus
from onnxops.loadfailure import LoadFailure
from onnxops.reasons import LOAD_FAILURE_REASONS
from onnxops_serving.errors import LoadFailure as RuntimeCauses
from test_status import PLACED_ON_EDGE, deployment, md


def pod(
    *, ready: bool = False, message: str | None = None, code: int = 1, current: bool = False
) -> dict[str, Any]:
    ended: dict[str, Any] = {"reason": "Error", "exitCode": code}
    if message is not None:
        ended["message"] = message
    container: dict[str, Any] = {"name": "server", "ready": ready, "restartCount": 2}
    if current:  # ended just now, not restarted yet
        container["state"] = {"terminated": ended}
    else:
        container["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
        container["lastState"] = {"terminated": ended}
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [container]}}


def test_the_operator_knows_every_cause_the_runtime_writes() -> None:
    written = {v for k, v in vars(RuntimeCauses).items() if k.isupper() and isinstance(v, str)} - {
        RuntimeCauses.INVALID_URI
    }  # the operator judges URIs before a pod starts
    assert written == set(LOAD_FAILURE_REASONS)


def test_parse_takes_a_known_cause_and_nothing_else() -> None:
    assert loadfailure.parse("ModelNotFound: cannot download http://h/m: HTTP 404") == (
        "ModelNotFound",
        "cannot download http://h/m: HTTP 404",
    )
    assert loadfailure.parse("Traceback (most recent call last): ...") is None
    assert loadfailure.parse("SomethingElse: x") is None
    assert loadfailure.parse("") is None and loadfailure.parse(None) is None
    long = loadfailure.parse("InvalidModel: " + "x " * 2000)
    assert long is not None and len(long[1]) == loadfailure.MESSAGE_CHARS


def test_of_pod_needs_a_failed_run_with_a_cause_and_a_pod_not_ready() -> None:
    cause = "ModelDigestMismatch: sha256 mismatch for model.onnx"
    assert loadfailure.of_pod(pod(message=cause)) == LoadFailure(
        "ModelDigestMismatch", "sha256 mismatch for model.onnx"
    )
    assert loadfailure.of_pod(pod(message=cause, current=True)) is not None
    assert loadfailure.of_pod(pod(message=cause, ready=True)) is None, "it recovered"
    assert loadfailure.of_pod(pod(message=cause, code=0)) is None, "a clean stop"
    assert loadfailure.of_pod(pod(message="OOM or a log tail")) is None, "heal's business"
    assert loadfailure.of_pod(pod()) is None
    going = pod(message=cause)
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert loadfailure.of_pod(going) is None


def test_of_pods_counts_the_most_common_cause() -> None:
    pods = [
        pod(message="ModelFetchFailed: timeout"),
        pod(message="ModelNotFound: HTTP 404 (a)"),
        pod(message="ModelNotFound: HTTP 404 (b)"),
        pod(ready=True, message="ModelFetchFailed: earlier"),
    ]
    assert loadfailure.of_pods(pods) == LoadFailure("ModelNotFound", "HTTP 404 (a)", pods=2)
    assert loadfailure.of_pods([pod(ready=True)]) is None


def _cond(st: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == kind)


def test_no_pod_serving_is_failed_with_the_cause_and_the_uri() -> None:
    failing = LoadFailure("ModelAccessDenied", "cannot download: HTTP 403 Forbidden", pods=2)
    st = status.healthy_status(
        md(), deployment=deployment(2, 0, 2), load_failure=failing, **PLACED_ON_EDGE
    )
    assert st["phase"] == "Failed"
    available = _cond(st, "ModelAvailable")
    assert (available["status"], available["reason"]) == ("False", "ModelAccessDenied")
    assert available["message"] == (
        "2 of 2 serving pods cannot load https://h/m.onnx: cannot download: HTTP 403 Forbidden"
    )
    ready = _cond(st, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ModelLoadFailed")
    assert "ModelAccessDenied" in ready["message"]
    assert status.load_failed(st["conditions"])
    failed = ModelDeploymentStatus.model_validate(st)
    assert not status.judged_failed(failed), "not the spec's judgement: reconciling goes on"


def test_some_pods_serving_is_degraded_and_a_rolled_out_model_ignores_old_messages() -> None:
    failing = LoadFailure("ModelFetchFailed", "connection refused")
    st = status.healthy_status(
        md(), deployment=deployment(2, 1, 2), load_failure=failing, **PLACED_ON_EDGE
    )
    assert st["phase"] == "Degraded"
    assert _cond(st, "ModelAvailable")["reason"] == "ModelFetchFailed"
    done = status.healthy_status(
        md(), deployment=deployment(2, 2, 2), load_failure=failing, **PLACED_ON_EDGE
    )
    assert done["phase"] == "Ready" and _cond(done, "ModelAvailable")["status"] == "True"


def test_a_judged_failure_is_not_a_load_failure() -> None:
    judged = status.failed_status(
        md(), status.Failure("InvalidModelURI", "no host", permanent=True), now="t"
    )
    assert status.judged_failed(ModelDeploymentStatus.model_validate(judged))
    assert not status.load_failed(judged["conditions"])


def _status(st: dict[str, Any]) -> ModelDeploymentStatus:
    return ModelDeploymentStatus.model_validate(st)


def test_one_warning_per_cause_and_a_normal_when_it_loads() -> None:
    def failing(reason: str) -> dict[str, Any]:
        return status.healthy_status(
            md(),
            deployment=deployment(1, 0, 1),
            load_failure=LoadFailure(reason, "m"),
            **PLACED_ON_EDGE,
        )

    loading = status.healthy_status(md(), deployment=deployment(1, 0, 1), **PLACED_ON_EDGE)
    first = failing("ModelNotFound")
    assert [e[:2] for e in status.load_failure_events(_status(loading), first)] == [
        ("Warning", "ModelNotFound")
    ]
    assert status.load_failure_events(_status(first), failing("ModelNotFound")) == []
    assert [e[:2] for e in status.load_failure_events(_status(first), failing("InvalidModel"))] == [
        ("Warning", "InvalidModel")
    ]
    loaded = status.healthy_status(
        ModelDeployment.model_validate({**md().wire(), "status": first}),
        deployment=deployment(1, 1, 1),
        **PLACED_ON_EDGE,
    )
    assert [e[:2] for e in status.load_failure_events(_status(first), loaded)] == [
        ("Normal", "ModelLoaded")
    ]
    assert status.load_failure_events(_status(loaded), loaded) == []
