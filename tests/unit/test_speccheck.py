"""Spec checks the schema cannot express: label and taint keys on a pod."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops import speccheck
from onnxops.api import ModelDeployment
from support.deployments import model_deployment


def md(target: dict[str, Any]) -> ModelDeployment:
    body = model_deployment("m", model={"uri": "https://h/m.onnx"}, target=target)
    return ModelDeployment.model_validate(body)


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ({"nodeSelector": {"not a key": "x"}}, "nodeSelector key 'not a key'"),
        ({"nodeSelector": {"zone": "a b"}}, "nodeSelector value 'a b'"),
        ({"nodeSelector": {"a/b/c": "x"}}, "nodeSelector key 'a/b/c'"),
        ({"tolerations": [{"key": "-bad", "operator": "Exists"}]}, "toleration key '-bad'"),
    ],
)
def test_invalid_labels_names_the_bad_key(target: dict[str, Any], named: str) -> None:
    got = speccheck.invalid_labels(md(target))
    assert got is not None and named in got


def test_valid_labels_pass() -> None:
    target = {
        "nodeSelector": {"topology.kubernetes.io/zone": "eu-1", "gpu": ""},
        "tolerations": [{"key": "node-role.kubernetes.io/edge", "operator": "Exists"}],
    }
    assert speccheck.invalid_labels(md(target)) is None
