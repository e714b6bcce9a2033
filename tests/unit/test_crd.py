"""The CRD rendered from the pydantic models: fresh on disk, structural, and complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from onnxops import api, crdgen

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeldeployment.yaml"


def _version() -> dict[str, Any]:
    return crdgen.crd()["spec"]["versions"][0]


def _schema() -> dict[str, Any]:
    return _version()["schema"]["openAPIV3Schema"]


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}[*]")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    return found


def test_checked_in_crd_is_current() -> None:
    assert CRD_FILE.read_text() == crdgen.render(), "run `make crds` to regenerate"


def test_render_is_deterministic() -> None:
    assert crdgen.render() == crdgen.render()
    assert yaml.safe_load(crdgen.render()) == crdgen.crd()


def test_schema_is_structural() -> None:
    for path, node in _walk(_schema()):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & node.keys(), path
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed, f"{path} has no type"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


def test_names_scope_and_subresources() -> None:
    spec = crdgen.crd()["spec"]
    assert spec["group"] == "onnxops.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["mdep"]
    assert spec["names"]["kind"] == "ModelDeployment"
    version = _version()
    assert version["name"] == "v1alpha1" and version["storage"] is True
    assert version["subresources"]["status"] == {}
    # `kubectl scale mdep` and `kubectl get --subresource=scale` use these paths.
    scale = version["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status_props = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status_props["replicas"]["type"] == "integer"
    assert status_props["selector"]["type"] == "string"


def test_printer_columns() -> None:
    printed = _version()["additionalPrinterColumns"]
    columns = {c["name"]: c["jsonPath"] for c in printed}
    default = [c["name"] for c in printed if not c.get("priority")]
    assert default == ["Pool", "Phase", "Ready", "Model", "Age"]
    assert list(columns)[len(default) :] == [  # -o wide
        "Reason",
        "Variant",
        "Endpoint",
        "Rollout",
        "Step",
        "Canary",
        "Candidate",
    ]
    assert columns["Rollout"] == ".status.rollout.phase"
    assert columns["Phase"] == ".status.phase"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_validation_rules_present() -> None:
    props = _schema()["properties"]["spec"]["properties"]
    rules = [r["rule"] for r in props["autoscaling"]["x-kubernetes-validations"]]
    assert "self.minReplicas <= self.maxReplicas" in rules
    assert props["replicas"]["minimum"] == 0 and props["replicas"]["default"] == 1
    assert props["remediation"]["properties"]["mode"]["enum"] == ["auto", "dryRun", "off"]
    assert props["model"]["required"] == ["uri"]
    assert _schema()["x-kubernetes-validations"], "metadata.name rule"
    # Sub-objects default to {} so nested defaults (pool: auto) are filled in by the apiserver.
    assert props["target"]["default"] == {}
    assert props["target"]["properties"]["pool"]["default"] == "auto"


def test_status_has_no_defaults_and_full_conditions() -> None:
    status = _schema()["properties"]["status"]
    # One default, at the top: a new object reads observedGeneration 0, which kstatus takes
    # for InProgress (no status at all would read Current). None inside: the operator's.
    assert status["default"] == {"observedGeneration": 0}
    inside = {k: v for k, v in status.items() if k != "default"}
    assert all("default" not in node for _, node in _walk(inside))
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= (
        condition.keys()
    )
    assert status["properties"]["phase"]["enum"] == list(api.PHASES)


def test_patterns_accept_and_refuse() -> None:
    model = _schema()["properties"]["spec"]["properties"]["model"]["properties"]
    uri, sha = re.compile(model["uri"]["pattern"]), re.compile(model["sha256"]["pattern"])
    for good in (
        "https://h/iris/model.onnx",
        "file:///models/a.onnx",
        "pvc://claim/a/b.onnx",
        "configmap://iris/model.onnx",
        "/opt/model.onnx",
        "s3://models/iris/3/",
        "s3://my.bucket-1/iris.onnx",
    ):
        assert uri.search(good), good
    for bad in (
        "ftp://h/m.onnx", "gs://bucket/m", "model.onnx", "https://h/a b", "",
        "s3://Bad_Bucket/m.onnx", "s3://b/m", "s3:///key",
    ):  # fmt: skip
        assert not uri.search(bad), bad
    assert sha.search("a" * 64)
    assert not sha.search("A" * 64) and not sha.search("a" * 63)
    quantity = re.compile(api.QUANTITY_PATTERN)
    assert all(quantity.search(q) for q in ("250m", "1Gi", "2", "0.5", "1e3", ".5", "+1", "3."))
    # Strings the apiserver's own loose `quantity` regex lets through, but no parser reads.
    bad = ("lots", "1 Gi", "-", "-1", "1.5.3", "1Ki1", "1KiB", "..", "1e", "1mi", "")
    assert not any(quantity.search(q) for q in bad)


def test_every_quantity_the_schema_admits_is_one_the_operator_reads() -> None:
    # Exhaustive over short strings of the characters quantities use: what the pattern
    # admits must parse, or the spec would pass the apiserver and loop in the operator.
    from itertools import product

    from onnxops.pools import QuantityError, quantity

    pattern = re.compile(api.QUANTITY_PATTERN)
    admitted = 0
    for size in range(1, 5):
        for chars in product("1.+-eEKkMmiu", repeat=size):
            text = "".join(chars)
            if pattern.search(text):
                admitted += 1
                try:
                    quantity(text)
                except QuantityError as exc:
                    raise AssertionError(f"{text!r} passes the schema: {exc}") from exc
    assert admitted > 100


def test_cli_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    from onnxops.cli import main

    assert main(["crd"]) == 0
    assert capsys.readouterr().out == CRD_FILE.read_text()


def test_rollout_rules() -> None:
    rollout = _schema()["properties"]["spec"]["properties"]["rollout"]
    steps = rollout["properties"]["steps"]
    assert (steps["minItems"], steps["maxItems"]) == (1, 10)
    step = steps["items"]
    assert [r["rule"] for r in step["x-kubernetes-validations"]] == [
        "has(self.shadow) != has(self.weight)"
    ]
    assert step["properties"]["pauseSeconds"]["maximum"] == 86400
    assert (step["properties"]["weight"]["minimum"], step["properties"]["weight"]["maximum"]) == (
        1,
        100,
    )
    (increasing,) = rollout["x-kubernetes-validations"]
    # Every pair of the ten positions is spelt out (CEL has no index ranges).
    assert increasing["rule"].count("self.steps[0].weight < self.steps[9].weight") == 1
    assert increasing["rule"].count(" && ") == 44
    assert "rollout" not in _schema()["properties"]["spec"].get("required", [])
    status = _schema()["properties"]["status"]["properties"]["rollout"]["properties"]
    assert status["phase"]["enum"] == list(api.ROLLOUT_PHASES)
