"""OIP v2 REST endpoints, /predict and /metrics, driven with plain HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from support.serving_harness import Models, Server, maybe_metric, metric, running


def _infer_body(x: np.ndarray, **extra: object) -> dict[str, object]:
    return {
        "inputs": [{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}],
        **extra,
    }


def test_health_and_server_metadata(iris_server: Server) -> None:
    assert httpx.get(iris_server.url + "/v2/health/live").status_code == 200
    assert httpx.get(iris_server.url + "/v2/health/ready").status_code == 200
    meta = httpx.get(iris_server.url + "/v2").json()
    assert meta["name"] == "onnxops-serving"
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("prefix", ["/v2/models/iris", "/v2/models/iris/versions/3"])
def test_model_metadata_and_ready(iris_server: Server, prefix: str) -> None:
    meta = httpx.get(iris_server.url + prefix).json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["3"]
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert meta["parameters"]["classes"] == [0, 1, 2]
    ready = httpx.get(iris_server.url + prefix + "/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_infer_returns_the_models_own_answers(iris_server: Server, models: Models) -> None:
    x = models.iris_x[:5]
    for url in ("/v2/models/iris/infer", "/v2/models/iris/versions/3/infer"):
        resp = httpx.post(iris_server.url + url, json=_infer_body(x, id="req-a"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model_name"] == "iris" and body["model_version"] == "3"
        assert body["id"] == "req-a"
        label, proba = body["outputs"]
        assert label["shape"] == [5] and label["datatype"] == "INT64"
        assert label["data"] == models.iris_labels[:5].tolist()
        assert proba["shape"] == [5, 3]
        np.testing.assert_allclose(proba["data"], models.iris_proba[:5].ravel(), rtol=1e-6)


def test_infer_flat_data_and_output_selection(iris_server: Server, models: Models) -> None:
    x = models.iris_x[50:53]
    body = {
        "inputs": [{"name": "X", "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    out = httpx.post(iris_server.url + "/v2/models/iris/infer", json=body).json()["outputs"]
    assert [o["name"] for o in out] == ["probabilities"]
    np.testing.assert_allclose(out[0]["data"], models.iris_proba[50:53].ravel(), rtol=1e-6)


def test_predict(iris_server: Server, models: Models) -> None:
    x = models.iris_x[100:104]
    body = httpx.post(iris_server.url + "/predict", json={"features": x.tolist()}).json()
    assert body["predictions"] == models.iris_labels[100:104].tolist()
    assert np.asarray(body["probabilities"]).shape == (4, 3)
    one = httpx.post(iris_server.url + "/predict", json={"features": x[0].tolist()}).json()
    assert one["predictions"] == models.iris_labels[100:101].tolist()


def test_unknown_model_and_version_and_route(iris_server: Server, models: Models) -> None:
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/iris/versions/9"):
        resp = httpx.get(iris_server.url + path)
        assert resp.status_code == 404 and "error" in resp.json()
    resp = httpx.post(
        iris_server.url + "/v2/models/nope/infer", json=_infer_body(models.iris_x[:1])
    )
    assert resp.status_code == 404 and "nope" in resp.json()["error"]
    assert httpx.get(iris_server.url + "/nothing/here").status_code == 404
    assert httpx.get(iris_server.url + "/v2/models/iris/infer").status_code == 405


@pytest.mark.parametrize(
    "path", ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready", "/metrics"]
)
def test_read_only_endpoints_refuse_other_methods(iris_server: Server, path: str) -> None:
    assert httpx.get(iris_server.url + path).status_code == 200
    for method in ("POST", "DELETE"):
        reply = httpx.request(method, iris_server.url + path)
        assert reply.status_code == 405, (method, path)
        assert "GET" in reply.json()["error"]


def test_metrics_exposition(iris_server: Server, models: Models) -> None:
    httpx.post(iris_server.url + "/v2/models/iris/infer", json=_infer_body(models.iris_x[:3]))
    text = httpx.get(iris_server.url + "/metrics").text
    m = {"model": "iris", "version": "3"}
    assert metric(text, "onnxops_requests_total", endpoint="infer", code="200", **m) >= 1
    assert metric(text, "onnxops_request_duration_seconds_count", **m) >= 1
    assert metric(text, "onnxops_inference_duration_seconds_count", **m) >= 1
    assert metric(text, "onnxops_batch_size_sum", **m) >= 3
    assert metric(text, "onnxops_inflight_requests", **m) >= 1  # the scrape itself
    assert metric(text, "onnxops_model_load_seconds", **m) > 0
    sha = httpx.get(iris_server.url + "/v2/models/iris").json()["parameters"]["sha256"]
    assert metric(text, "onnxops_model_info", sha256=sha, **m) == 1
    assert metric(text, "onnxops_model_ready", **m) == 1
    assert metric(text, "onnxops_process_cpu_seconds_total") > 0
    assert metric(text, "onnxops_process_resident_memory_bytes") > 0
    assert metric(text, "onnxops_model_disk_free_bytes", **m) > 0
    assert metric(text, "onnxops_model_disk_used_bytes", **m) > 0


def test_bare_onnx_file_is_served_by_its_stem(models: Models, tmp_path: Path) -> None:
    with running(tmp_path, model_uri="file://" + str(models.bare)) as server:
        meta = httpx.get(server.url + "/v2/models/flowers").json()
        assert meta["versions"] == ["1"] and meta["inputs"][0]["name"] == "X"
        out = httpx.post(
            server.url + "/v2/models/flowers/infer", json=_infer_body(models.iris_x[:2])
        ).json()["outputs"]
        assert out[0]["data"] == models.iris_labels[:2].tolist()
        httpx.post(server.url + "/predict", json={"features": models.iris_x.tolist()})
        text = httpx.get(server.url + "/metrics").text
        assert maybe_metric(text, "onnxops_drift_psi_max") is None  # no training statistics
