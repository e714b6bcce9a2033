"""The pydantic API models: samples parse, defaults match the design, the wire form is camelCase."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from onnxops.api import ModelDeployment, ModelDeploymentSpec
from pydantic import ValidationError

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"


@pytest.mark.parametrize("name", ["cloud.yaml", "edge.yaml"])
def test_samples_parse(name: str) -> None:
    docs = list(yaml.safe_load_all((SAMPLES / name).read_text()))
    # The model's ConfigMap comes first, so it exists when the operator first looks.
    assert [d["kind"] for d in docs] == ["ConfigMap", "ModelDeployment"]
    md = ModelDeployment.model_validate(docs[1])
    assert md.spec.model.uri == f"configmap://{docs[0]['metadata']['name']}/model.onnx"
    assert md.kind == "ModelDeployment" and md.api_version == "onnxops.io/v1alpha1"
    assert md.spec.model.sha256 is not None and len(md.spec.model.sha256) == 64
    assert md.spec.target.pool in ("cloud", "edge")


def test_defaults_of_a_minimal_spec() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": "https://h/m.onnx"}})
    assert spec.replicas == 1 and spec.autoscaling is None
    assert spec.target.pool == "auto" and spec.model.variant == "auto"
    assert spec.serving.port == 8080
    assert spec.remediation.mode == "auto" and spec.monitoring.failure_threshold == 3


def test_wire_form_is_camel_case_and_round_trips() -> None:
    raw = {
        "model": {"uri": "pvc://store/iris.onnx"},
        "target": {"pool": "edge", "fallbackPool": "cloud", "nodeSelector": {"zone": "a"}},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 60},
        "resources": {"requests": {"cpu": "250m", "memory": 268435456}},
    }
    spec = ModelDeploymentSpec.model_validate(raw)
    assert spec.target.fallback_pool == "cloud"
    assert spec.autoscaling is not None and spec.autoscaling.target_cpu_utilization == 60
    wire = spec.wire()
    assert wire["target"]["fallbackPool"] == "cloud"
    assert wire["autoscaling"]["targetCPUUtilization"] == 60
    assert wire["resources"]["requests"] == {"cpu": "250m", "memory": 268435456}
    assert ModelDeploymentSpec.model_validate(wire) == spec


@pytest.mark.parametrize(
    "bad",
    [
        {"model": {"uri": "gs://bucket/m.onnx"}},
        {"model": {"uri": "https://h/m.onnx", "sha256": "XYZ"}},
        {"model": {"uri": "https://h/m.onnx"}, "replicas": -1},
        {"model": {"uri": "https://h/m.onnx"}, "target": {"pool": "Edge_1"}},
        {"model": {"uri": "https://h/m.onnx"}, "resources": {"requests": {"cpu": "lots"}}},
        {"model": {"uri": "https://h/m.onnx"}, "remediation": {"mode": "sometimes"}},
        {"model": {}},
    ],
)
def test_invalid_specs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ModelDeploymentSpec.model_validate(bad)
