"""Builders of the remediation unit tests: ModelDeployments with status, faults and pods as
the apiserver and the monitor hand them over, and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from onnxops.api import Fault, ModelDeployment
from onnxops.monitor import pods
from onnxops.monitor.pods import PodFacts
from onnxops.remediation.findings import Finding
from onnxops.remediation.findings import findings as read_findings
from support.deployments import model_deployment

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def md(
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    version: str = "2",
    generation: int = 3,
) -> ModelDeployment:
    body = model_deployment(
        "iris",
        namespace="ml",
        metadata={"uid": "u-1", "generation": generation},
        status={"phase": "Ready", "pool": "edge", **(status or {})},
        **{
            "model": {"uri": f"https://h/iris/{version}/model.onnx", "version": version},
            "target": {"pool": "edge", "fallbackPool": "cloud"},
            "replicas": 3,
            **(spec or {}),
        },
    )
    return ModelDeployment.model_validate(body)


def fault(
    signal: str, *, pods: list[str] | None = None, since: float = 60, **extra: Any
) -> dict[str, Any]:
    return {
        "signal": signal,
        "value": 1.0,
        "threshold": 0.5,
        "since": ago(since),
        "message": f"{signal} over threshold",
        "pods": pods or [],
        **extra,
    }


def pod(
    name: str,
    *,
    ready: bool = True,
    waiting: str | None = None,
    terminated: str | None = None,
    memory: str = "256Mi",
    unschedulable_for: float | None = None,
    resize: tuple[str, str, float] | None = None,
) -> dict[str, Any]:
    """A serving pod; `resize` = (condition type, reason, seconds ago)."""
    conditions: list[dict[str, Any]] = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable_for is not None:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": ago(unschedulable_for),
            }
        )
    if resize is not None:
        conditions.append(
            {
                "type": resize[0],
                "status": "True",
                "reason": resize[1],
                "lastTransitionTime": ago(resize[2]),
            }
        )
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": memory}}
    container_status: dict[str, Any] = {"name": "server", "restartCount": 2 if terminated else 0}
    if waiting:
        container_status["state"] = {"waiting": {"reason": waiting}}
    else:
        container_status["state"] = {"running": {"startedAt": ago(60)}}
    if terminated:
        container_status["lastState"] = {"terminated": {"reason": terminated, "exitCode": 137}}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"containers": [{"name": "server", "resources": resources}]},
        "status": {
            "phase": "Running",
            "observedGeneration": 1,
            "conditions": conditions,
            "containerStatuses": [container_status],
        },
    }


def facts(raw: dict[str, Any]) -> PodFacts:
    """A pod's facts as the monitor parses them (once per cycle) and hands them to heal."""
    found = pods.facts(raw)
    assert found is not None, raw
    return found


def findings(faults: list[dict[str, Any]]) -> list[Finding]:
    """Faults as detection makes them (typed), as heal reads them."""
    return read_findings([Fault.model_validate(f) for f in faults])
