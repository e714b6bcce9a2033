"""Bad input gets a 4xx with {"error": ...} and never takes the server down."""

from __future__ import annotations

import json
import random
import struct
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.serving_harness import Models, Server, metric

INFER = "/v2/models/iris/infer"


def _tensor(shape: list[int], data: object, name: str = "X", datatype: object = "FP32") -> bytes:
    return json.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}
    ).encode()


def _input(data: object) -> dict[str, object]:
    return {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": data}


def _outputs(outputs: object) -> bytes:
    return json.dumps({"inputs": [_input(ROW)], "outputs": outputs}).encode()


def _binary_head(shape: list[int], size: int) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "X", "shape": shape, "datatype": "FP32",
                     "parameters": {"binary_data_size": size}}]}
    ).encode()  # fmt: skip


ROW = [5.1, 3.5, 1.4, 0.2]
BIN_HEAD = _binary_head([1, 4], 16)
BIN_70 = _binary_head([1] * 66 + [1, 1, 1, 4], 16)
BIN_NEG = _binary_head([1, 4], -16)

# (case, path, body, extra headers, expected status, word expected in the error)
CORPUS: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("malformed json", INFER, b'{"inputs": [', {}, 400, "malformed JSON"),
    ("not an object", INFER, b"[1, 2, 3]", {}, 400, "inputs"),
    ("no inputs", INFER, b'{"inputs": []}', {}, 400, "inputs"),
    ("wrong input name", INFER, _tensor([1, 4], ROW, name="Y"), {}, 400, "unknown input"),
    ("wrong width", INFER, _tensor([2, 3], ROW + ROW[:2]), {}, 400, "shape"),
    ("shape vs data", INFER, _tensor([2, 4], ROW), {}, 400, "needs 8 values"),
    ("negative shape", INFER, _tensor([-1, 4], ROW), {}, 400, "shape"),
    ("rank", INFER, _tensor([4], ROW), {}, 400, "shape"),
    ("wrong datatype", INFER, _tensor([1, 4], [5, 3, 1, 0], datatype="INT64"), {}, 400, "FP32"),
    ("unknown datatype", INFER, _tensor([1, 4], ROW, datatype="FP99"), {}, 400, "datatype"),
    ("strings as FP32", INFER, _tensor([1, 4], ["a", "b", "c", "d"]), {}, 400, "datatype"),
    ("ragged rows", INFER, _tensor([2, 4], [ROW, ROW[:3]]), {}, 400, "regular"),
    ("NaN literal", INFER, b'{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[NaN,1,2,3]}]}', {}, 400, "JSON"),
    ("overflow to inf", INFER, _tensor([1, 4], [1e39, 1, 2, 3]), {}, 400, "infinity"),
    ("binary NaN", INFER, BIN_HEAD + struct.pack("<4f", float("nan"), 1, 2, 3),
     {"Inference-Header-Content-Length": str(len(BIN_HEAD))}, 400, "NaN"),
    ("binary too short", INFER, BIN_HEAD + b"\0" * 8,
     {"Inference-Header-Content-Length": str(len(BIN_HEAD))}, 400, "binary_data_size"),
    ("header length past body", INFER, BIN_HEAD, {"Inference-Header-Content-Length": "99999"}, 400, "Header"),
    ("unknown output", INFER, json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": ROW}],
                                          "outputs": [{"name": "nope"}]}).encode(), {}, 400, "unknown output"),
    ("too many rows", INFER, _tensor([501, 4], [ROW] * 501), {}, 400, "too many rows"),
    ("zero rows", INFER, _tensor([0, 4], []), {}, 400, "at least one row"),
    ("oversized body", INFER, b" " * 70_000, {}, 413, "limit"),
    ("unknown model", "/v2/models/nope/infer", _tensor([1, 4], ROW), {}, 404, "unknown model"),
    ("unknown version", "/v2/models/iris/versions/7/infer", _tensor([1, 4], ROW), {}, 404, "version"),
    ("predict without features", "/predict", b'{"rows": []}', {}, 400, "features"),
    ("predict strings", "/predict", b'{"features": [["a", "b", "c", "d"]]}', {}, 400, "numbers"),
    ("predict wrong width", "/predict", b'{"features": [[1, 2]]}', {}, 400, "shape"),
    ("feedback unknown id", "/v2/models/iris/feedback", b'{"id": "never-made", "labels": [1]}', {}, 404, "never-made"),
    ("feedback no labels", "/v2/models/iris/feedback", b'{"id": "x"}', {}, 400, "labels"),
    ("feedback neither", "/v2/models/iris/feedback", b'{"labels": [1]}', {}, 400, "predictions"),
    ("feedback count", "/v2/models/iris/feedback", b'{"predictions": [1, 2], "labels": [1]}', {}, 400, "labels"),
    ("feedback malformed", "/v2/models/iris/feedback", b"{", {}, 400, "malformed"),
    ("infer object id", INFER, b'{"id": {"a": 1}, ' + _tensor([1, 4], ROW)[1:], {}, 400, "'id'"),
    ("predict no rows", "/predict", b'{"features": []}', {}, 400, "at least one row"),
    ("predict list id", "/predict", b'{"id": ["a"], "features": [[1, 2, 3, 4]]}', {}, 400, "'id'"),
    ("feedback bool id", "/v2/models/iris/feedback", b'{"id": true, "labels": [1]}', {}, 400, "'id'"),
    # Found by a request corpus run against the server (issue 12): these were 500s, or 200s.
    ("datatype a list", INFER, _tensor([1, 4], ROW, datatype=["FP32"]), {}, 400, "datatype"),
    ("datatype an object", INFER, _tensor([1, 4], ROW, datatype={"a": 1}), {}, 400, "datatype"),
    ("outputs a number", INFER, _outputs(7), {}, 400, "'outputs'"),
    ("outputs true", INFER, _outputs(True), {}, 400, "'outputs'"),
    ("70-dimension shape", INFER, _tensor([1] * 70, [ROW]), {}, 400, "dimensions"),
    ("70-dimension binary shape", INFER, BIN_70 + struct.pack("<4f", *ROW),
     {"Inference-Header-Content-Length": str(len(BIN_70))}, 400, "dimensions"),
    ("duplicated input", INFER, json.dumps({"inputs": [_input(ROW), _input(ROW)]}).encode(), {}, 400, "twice"),
    ("bytes after binary tensor", INFER, BIN_HEAD + struct.pack("<4f", *ROW) + b"\0" * 4,
     {"Inference-Header-Content-Length": str(len(BIN_HEAD))}, 400, "4 bytes follow"),
    ("negative binary size", INFER, BIN_NEG + struct.pack("<4f", *ROW),
     {"Inference-Header-Content-Length": str(len(BIN_NEG))}, 400, "binary_data_size"),
    ("ragged feedback predictions", "/v2/models/iris/feedback",
     b'{"predictions": [[1], [1, [2]]], "labels": [1, 1]}', {}, 400, "predictions"),
    ("feedback predictions of null", "/v2/models/iris/feedback",
     b'{"predictions": [null], "labels": [1]}', {}, 400, "predictions"),
]  # fmt: skip

# Feedback on a regression model (the ``reg_server`` fixture): predictions must be numbers.
REG_FEEDBACK: list[tuple[str, bytes]] = [
    ("predictions a word", b'{"predictions": "abc", "labels": [1.0]}'),
    ("predictions null", b'{"predictions": null, "labels": [1.0]}'),
    ("predictions an object", b'{"predictions": {}, "labels": [1.0]}'),
    ("predictions ragged", b'{"predictions": [[1.0], [1.0, [2.0]]], "labels": [1.0, 2.0]}'),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "headers", "status", "word"), CORPUS, ids=[c[0] for c in CORPUS]
)
def test_bad_input_gets_4xx_with_error(
    iris_server: Server,
    case: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    word: str,
) -> None:
    resp = httpx.post(iris_server.url + path, content=body, headers=headers)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert word.lower() in error.lower(), error


@pytest.mark.parametrize(("case", "body"), REG_FEEDBACK, ids=[c[0] for c in REG_FEEDBACK])
def test_bad_regression_feedback_gets_400(reg_server: Server, case: str, body: bytes) -> None:
    resp = httpx.post(reg_server.url + "/v2/models/reg/feedback", content=body)
    assert resp.status_code == 400, resp.text
    assert "predictions" in resp.json()["error"]
    # Nothing was taken into the quality window.
    text = httpx.get(reg_server.url + "/metrics").text
    assert metric(text, "onnxops_quality_window_rows") == 0


def test_burst_of_bad_among_good(iris_server: Server, models: Models) -> None:
    rng = random.Random(7)
    jobs: list[tuple[int, int]] = [(i, rng.randrange(len(CORPUS))) for i in range(240)]

    def call(job: tuple[int, int]) -> tuple[int, int, object]:
        i, bad = job
        with httpx.Client(base_url=iris_server.url) as client:
            if i % 2:
                _, path, body, headers, _, _ = CORPUS[bad]
                return i, client.post(path, content=body, headers=headers).status_code, None
            row = i % len(models.iris_x)
            resp = client.post(INFER, content=_tensor([1, 4], models.iris_x[row].tolist()))
            return i, resp.status_code, resp.json()["outputs"][0]["data"]

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(call, jobs))
    for i, status, labels in results:
        if i % 2:
            assert 400 <= status < 500
        else:
            assert status == 200
            assert labels == [int(models.iris_labels[i % len(models.iris_x)])]
    assert iris_server.proc.poll() is None
    assert httpx.get(iris_server.url + "/v2/health/ready").status_code == 200
    # Failures are counted under the endpoint they hit, for error-rate alerts per endpoint.
    text = httpx.get(iris_server.url + "/metrics").text
    labels = {"model": "iris", "version": "3"}
    assert metric(text, "onnxops_requests_total", endpoint="infer", code="400", **labels) >= 1
    assert metric(text, "onnxops_requests_total", endpoint="infer", code="200", **labels) >= 120
