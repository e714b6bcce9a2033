"""The pydantic API models: samples parse, defaults match the design, the wire form is camelCase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _rollout(**rollout: Any) -> dict[str, Any]:
    return {"model": {"uri": "https://h/m.onnx"}, "rollout": rollout}


def test_rollout_absent_by_default_and_defaults_when_given() -> None:
    assert (
        ModelDeploymentSpec.model_validate({"model": {"uri": "https://h/m.onnx"}}).rollout is None
    )
    spec = ModelDeploymentSpec.model_validate(_rollout(steps=[{"shadow": 100}, {"weight": 10}]))
    assert spec.rollout is not None and not spec.rollout.paused
    assert [(s.shadow, s.weight, s.pause_seconds) for s in spec.rollout.steps] == [
        (100, None, 60),
        (None, 10, 60),
    ]
    a = spec.rollout.analysis
    assert (a.interval_seconds, a.failure_limit, a.min_requests) == (10, 1, 50)
    assert (a.max_error_rate_increase, a.max_latency_ratio, a.min_agreement) == (0.02, 1.5, 0.95)


@pytest.mark.parametrize(
    ("steps", "phrase"),
    [
        ([], "at least 1"),
        ([{"weight": 5 * i} for i in range(1, 12)], "at most 10"),
        ([{"shadow": 100, "weight": 10}], "exactly one of shadow or weight"),
        ([{"pauseSeconds": 5}], "exactly one of shadow or weight"),
        ([{"weight": 50}, {"shadow": 10}, {"weight": 10}], "increase strictly"),
        ([{"weight": 20}, {"weight": 20}], "increase strictly"),
        ([{"weight": 0}], "greater than or equal to 1"),
        ([{"weight": 101}], "less than or equal to 100"),
        ([{"weight": 10, "pauseSeconds": 86401}], "less than or equal to 86400"),
    ],
)
def test_bad_rollout_steps_are_refused(steps: list[dict[str, Any]], phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase):
        ModelDeploymentSpec.model_validate(_rollout(steps=steps))


def test_rollout_status_round_trips() -> None:
    raw = {
        "phase": "Progressing",
        "step": 1,
        "steps": 3,
        "canaryWeight": 10,
        "stableModel": {"uri": "https://h/1.onnx", "version": "1"},
        "candidate": {"uri": "https://h/2.onnx", "version": "2"},
        "measurements": [
            {"signal": "Agreement", "candidate": 0.99, "verdict": "Successful", "message": ""}
        ],
        "handledAction": "promote/2026-01-01T00:00:00Z",
    }
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "m"},
            "spec": {"model": {"uri": "https://h/2.onnx"}},
            "status": {"rollout": raw},
        }
    )
    assert md.status.rollout is not None
    wire = md.status.rollout.wire()
    assert {k: wire[k] for k in raw} == {
        **raw,
        "stableModel": {**raw["stableModel"], "variant": "auto", "variants": {}},
        "candidate": {**raw["candidate"], "variant": "auto", "variants": {}},
    }


def test_the_readme_rollout_block_parses() -> None:
    """The README's "Roll it out" spec, as written, is a valid spec.rollout."""
    readme = (SAMPLES.parents[1] / "README.md").read_text()
    section = readme.split("### Roll it out\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = yaml.safe_load(block)["spec"]
    parsed = ModelDeploymentSpec.model_validate({"model": {"uri": "https://h/m.onnx"}, **spec})
    assert parsed.rollout is not None
    assert [s.shadow or s.weight for s in parsed.rollout.steps] == [100, 10, 50]
    assert parsed.rollout.analysis.min_agreement == 0.95
