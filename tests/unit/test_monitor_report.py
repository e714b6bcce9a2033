"""monitor/report.py: the status fields and Events the monitor writes, and status.py keeping
phase Degraded while faults stand."""

from __future__ import annotations

from typing import Any

from onnxops import status
from onnxops.api import Fault, ModelDeployment
from onnxops.monitor import report
from onnxops.monitor.report import Availability

FAULT = Fault(signal="ErrorRate", value=0.5, threshold=0.05, since="t0", message="5xx ratio 0.5")


def _md(phase: str = "Ready", faults: list[Fault] | None = None, **st: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ml", "generation": 2},
            "spec": {"model": {"uri": "https://m/iris.onnx"}},
            "status": {
                "phase": phase,
                "faults": [f.wire() for f in faults or []],
                "conditions": [{"type": "Ready", "status": "True", "reason": "RolloutComplete"}],
                **st,
            },
        }
    )


def _cond(patch: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in patch["conditions"] if c["type"] == type_)


def test_a_fault_makes_a_ready_model_degraded_and_unhealthy() -> None:
    patch = report.status_patch(_md(), [FAULT], Availability("True", "MetricsRead", ""), now="t1")
    assert patch["phase"] == "Degraded"
    assert patch["faults"] == [FAULT.wire()]
    assert _cond(patch, "Healthy")["status"] == "False"
    assert "ErrorRate" in _cond(patch, "Healthy")["message"]
    assert _cond(patch, "Ready")["reason"] == "RolloutComplete"  # the reconcile's stays as is


def test_cleared_faults_make_it_ready_again() -> None:
    patch = report.status_patch(
        _md("Degraded", [FAULT]), [], Availability("True", "MetricsRead", ""), now="t2"
    )
    assert patch["phase"] == "Ready"
    assert patch["faults"] == []
    assert _cond(patch, "Healthy")["status"] == "True"


def test_a_progressing_model_keeps_its_phase() -> None:
    patch = report.status_patch(
        _md("Progressing"), [FAULT], Availability("True", "MetricsRead", ""), now="t"
    )
    assert "phase" not in patch


def test_availability_flips_only_after_unknown_threshold() -> None:
    md = _md()
    problem = ("PrometheusUnavailable", "refused")
    assert report.availability(md, problem, unreadable=2) is None  # keep what it says
    assert report.availability(md, problem, unreadable=3) == Availability("False", *problem)
    assert report.availability(md, None, unreadable=0).status == "True"  # type: ignore[union-attr]
    assert report.availability(md, ("NotConfigured", "no URL"), unreadable=1).status == "False"  # type: ignore[union-attr]


def test_no_fault_but_unreadable_metrics_is_not_called_healthy() -> None:
    patch = report.status_patch(
        _md(), [], Availability("False", "PrometheusUnavailable", "x"), now="t"
    )
    assert _cond(patch, "Healthy")["status"] == "Unknown"
    assert _cond(patch, "MonitoringAvailable")["reason"] == "PrometheusUnavailable"


def test_events_once_per_start_and_clear() -> None:
    assert report.events([], [FAULT]) == [("Warning", "FaultDetected", "ErrorRate: 5xx ratio 0.5")]
    assert report.events([FAULT], [FAULT]) == []  # still standing: no Event per evaluation
    assert [e[1] for e in report.events([FAULT], [])] == ["FaultCleared"]


def test_reconcile_status_keeps_degraded_while_faults_stand() -> None:
    deployment = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "updatedReplicas": 1,
        },
    }
    args: dict[str, Any] = {
        "pool": "cloud", "variant": "default", "endpoint": "", "deployment": deployment,
        "placement": "", "now": "t",
    }  # fmt: skip
    assert status.healthy_status(_md("Degraded", [FAULT]), **args)["phase"] == "Degraded"
    assert status.healthy_status(_md("Ready"), **args)["phase"] == "Ready"


def test_an_aborted_rollout_or_a_rollback_keeps_degraded_without_faults() -> None:
    for held in ("RolloutAborted", "RolledBack"):
        conditions = [
            {"type": "Ready", "status": "True", "reason": "RolloutComplete"},
            {"type": held, "status": "True", "reason": "ErrorRate"},
        ]
        patch = report.status_patch(
            _md("Degraded", [FAULT], conditions=conditions),
            [],
            Availability("True", "MetricsRead", ""),
            now="t2",
        )
        assert "phase" not in patch, held  # the reconcile path clears it with the spec
