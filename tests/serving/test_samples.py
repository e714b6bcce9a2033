"""The samples in manifests/samples/ carry a model the real runtime serves, as the pods would
find it in the ConfigMap's volume (the model file, its sha256 and model.json beside it)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
import yaml
from support.serving_harness import REPO, running

SAMPLES = REPO / "manifests" / "samples"


@pytest.mark.parametrize("name", ["cloud.yaml", "edge.yaml"])
def test_sample_model_is_served(name: str, tmp_path: Path) -> None:
    configmap, md = yaml.safe_load_all((SAMPLES / name).read_text())
    mount = tmp_path / "models"  # what the pod's configMap volume holds
    mount.mkdir()
    for key, value in configmap.get("binaryData", {}).items():
        (mount / key).write_bytes(base64.b64decode(value, validate=True))  # as the apiserver
    for key, value in configmap.get("data", {}).items():
        (mount / key).write_text(value)
    key = md["spec"]["model"]["uri"].rsplit("/", 1)[1]
    with running(
        tmp_path,
        model_uri=str(mount / key),
        model_sha256=md["spec"]["model"]["sha256"],  # a stale digest would refuse to load
        model_name=md["spec"]["model"]["name"],
    ) as server:
        meta = httpx.get(f"{server.url}/v2/models/{md['spec']['model']['name']}").json()
        assert meta["name"] == "iris"
        setosa, virginica = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
        answer = httpx.post(server.url + "/predict", json={"features": [setosa, virginica]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [0, 2]
