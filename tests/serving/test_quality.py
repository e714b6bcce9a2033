"""Ground-truth feedback feeds online quality metrics; shifted inputs raise drift (PSI)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from support.serving_harness import Models, Server, maybe_metric, metric, running

IRIS = {"model": "iris", "version": "3"}


@pytest.fixture(scope="module")
def fresh_iris(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("quality"), model_uri=str(models.iris)) as server:
        yield server


def _scrape(server: Server) -> str:
    return httpx.get(server.url + "/metrics").text


def test_feedback_by_request_id_drives_accuracy(fresh_iris: Server, models: Models) -> None:
    url = fresh_iris.url
    first = httpx.post(url + "/predict", json={"features": models.iris_x[:20].tolist()}).json()
    body = httpx.post(
        url + "/v2/models/iris/feedback", json={"id": first["id"], "labels": first["predictions"]}
    ).json()
    assert body["accepted"] == 20 and body["metrics"]["accuracy"] == 1.0
    text = _scrape(fresh_iris)
    assert metric(text, "onnxops_online_accuracy", **IRIS) == 1.0
    assert metric(text, "onnxops_online_f1", **IRIS) == 1.0

    # A caller-chosen id over the OIP endpoint; every label wrong this time.
    x = models.iris_x[60:80]
    infer = {
        "id": "batch-7",
        "inputs": [{"name": "X", "shape": [20, 4], "datatype": "FP32", "data": x.tolist()}],
    }
    preds = httpx.post(url + "/v2/models/iris/infer", json=infer).json()["outputs"][0]["data"]
    wrong = [(p + 1) % 3 for p in preds]
    resp = httpx.post(url + "/v2/models/iris/feedback", json={"id": "batch-7", "labels": wrong})
    assert resp.status_code == 200
    text = _scrape(fresh_iris)
    assert metric(text, "onnxops_online_accuracy", **IRIS) == pytest.approx(0.5)
    assert 0 < metric(text, "onnxops_online_recall", **IRIS) < 1
    assert 0 < metric(text, "onnxops_online_precision", **IRIS) < 1
    assert metric(text, "onnxops_feedback_rows_total", **IRIS) == 40
    assert metric(text, "onnxops_quality_window_rows", **IRIS) == 40

    # Each prediction can be labelled once.
    again = httpx.post(url + "/v2/models/iris/feedback", json={"id": "batch-7", "labels": wrong})
    assert again.status_code == 404 and "batch-7" in again.json()["error"]


def test_feedback_for_a_numeric_caller_id(fresh_iris: Server, models: Models) -> None:
    body = {"id": 42, "features": models.iris_x[:2].tolist()}
    answer = httpx.post(fresh_iris.url + "/predict", json=body).json()
    assert answer["id"] == "42"
    fb = {"id": 42, "labels": answer["predictions"]}
    assert httpx.post(fresh_iris.url + "/v2/models/iris/feedback", json=fb).status_code == 200


def test_feedback_with_predictions_inline(fresh_iris: Server) -> None:
    resp = httpx.post(
        fresh_iris.url + "/v2/models/iris/feedback",
        json={"predictions": [0, 1, 2, 2], "labels": ["0", 1.0, 2, 1]},
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 4


def test_drift_psi_rises_for_shifted_inputs(fresh_iris: Server, models: Models) -> None:
    url = fresh_iris.url
    httpx.post(url + "/predict", json={"features": models.iris_x.tolist()})
    text = _scrape(fresh_iris)
    calm = metric(text, "onnxops_drift_psi_max", **IRIS)
    assert calm < 0.1
    assert metric(text, "onnxops_drift_psi", feature="petal width (cm)", **IRIS) >= 0

    shifted = models.iris_x + np.array([3.0, 0, 0, 0], dtype=np.float32)
    for _ in range(7):  # 1050 rows push every training-like row out of the 1000-row window
        httpx.post(url + "/predict", json={"features": shifted.tolist()})
    text = _scrape(fresh_iris)
    assert metric(text, "onnxops_drift_psi", feature="sepal length (cm)", **IRIS) > 1.0
    assert metric(text, "onnxops_drift_psi", feature="sepal width (cm)", **IRIS) < 0.1
    assert metric(text, "onnxops_drift_psi_max", **IRIS) > 1.0
    assert metric(text, "onnxops_drift_window_rows", **IRIS) == 1000  # the window, not all rows
    assert metric(text, "onnxops_drift_rows_total", **IRIS) >= 1050


def test_wide_models_export_only_the_largest_psi(
    models: Models, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = {"drift_max_feature_series": "3", "drift_min_rows": "10"}
    with running(tmp_path_factory.mktemp("wide"), model_uri=str(models.iris), **settings) as srv:
        httpx.post(srv.url + "/predict", json={"features": models.iris_x[:50].tolist()})
        text = _scrape(srv)
        assert metric(text, "onnxops_drift_psi_max", **IRIS) >= 0
        assert maybe_metric(text, "onnxops_drift_psi", **IRIS) is None  # 4 features > 3


def test_the_feedback_cache_is_bounded_by_rows_not_requests() -> None:
    from onnxops_serving.quality import PredictionCache

    cache = PredictionCache(100)
    for rid in ("a", "b", "c"):
        cache.put(rid, np.zeros(60, dtype=np.int64))
    assert cache.rows <= 100
    with pytest.raises(Exception, match="evicted"):
        cache.take("a")
    assert len(cache.take("c")) == 60 and cache.rows == 0
    cache.put("big", np.zeros(500))  # one request over the bound is still kept
    assert len(cache.take("big")) == 500


def test_regression_feedback_gives_mae_and_rmse(
    models: Models, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with running(tmp_path_factory.mktemp("reg"), model_uri=str(models.regressor)) as server:
        x = models.reg_x[:10]
        body = httpx.post(server.url + "/predict", json={"features": x.tolist()}).json()
        np.testing.assert_allclose(body["predictions"], models.reg_pred[:10], rtol=1e-5)
        labels = [p + (2.0 if i % 2 else 0.0) for i, p in enumerate(body["predictions"])]
        resp = httpx.post(
            server.url + "/v2/models/reg/feedback", json={"id": body["id"], "labels": labels}
        )
        assert resp.status_code == 200
        text = _scrape(server)
        labels_reg = {"model": "reg", "version": "1"}
        assert metric(text, "onnxops_online_mae", **labels_reg) == pytest.approx(1.0, rel=1e-4)
        assert metric(text, "onnxops_online_rmse", **labels_reg) == pytest.approx(
            np.sqrt(2.0), rel=1e-4
        )
        assert maybe_metric(text, "onnxops_online_accuracy", **labels_reg) is None
