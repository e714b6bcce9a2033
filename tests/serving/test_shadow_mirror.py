"""Shadow mirroring between two real runtime processes on loopback: a stable runtime copies
requests to a candidate (ONNXOPS_MIRROR_CONFIG), compares answers, counts the outcomes, and
never delays or fails the user's request."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from support.serving_harness import Models, Server, maybe_metric, metric, running

SHADOW = "onnxops_shadow_requests_total"
OUTCOMES = ("agree", "disagree", "error", "dropped")


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris classifier trained on shifted labels: same inputs, mostly different answers."""
    iris = load_iris()
    x = iris.data.astype(np.float32)
    clf = LogisticRegression(max_iter=500).fit(x, (iris.target + 1) % 3)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    path = tmp_path_factory.mktemp("other") / "other.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture(scope="module")
def same(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The stable's own model, served as version 4."""
    with running(
        tmp_path_factory.mktemp("same"), model_uri=str(models.iris), model_version="4"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def other(other_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(
        tmp_path_factory.mktemp("other-srv"),
        model_uri=str(other_model),
        model_name="iris",
        model_version="5",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mirror") / "mirror.json"


@pytest.fixture(scope="module")
def stable(
    models: Models, config_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with running(
        tmp_path_factory.mktemp("stable"),
        model_uri=str(models.iris),
        mirror_config=str(config_path),
        # A loopback alias rewritten to the address the candidates listen on: a rewrite that
        # failed to apply would be refused (nothing listens there), never leave loopback.
        mirror_address_rewrite="127.0.0.99=127.0.0.1",
        log_level="info",
    ) as server:
        yield server


def write_config(path: Path, doc: dict[str, object] | str) -> None:
    """Replace the file in one rename, as a ConfigMap volume swaps its ..data link."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(tmp, path)


def scrape(server: Server) -> str:
    return httpx.get(server.url + "/metrics").text


def shadow_counts(server: Server, candidate: str) -> dict[str, float]:
    text = scrape(server)
    return {
        o: maybe_metric(text, SHADOW, candidate_version=candidate, outcome=o) or 0.0
        for o in OUTCOMES
    }


def wait_for(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def reload(stable: Server, path: Path, doc: dict[str, object] | str) -> None:
    """Write the config and wait until the runtime has read it (it logs every change)."""
    seen = stable.log().count("shadow mirroring")
    write_config(path, doc)
    wait_for(lambda: stable.log().count("shadow mirroring") > seen, "the config re-read")


def switch_on(stable: Server, path: Path, target: Server, version: str) -> None:
    doc = {
        "percent": 100,
        "targets": [f"127.0.0.99:{target.port}"],
        "stableVersion": "3",
        "candidateVersion": version,
        "tolerance": 0.0,
    }
    reload(stable, path, doc)


def settled(server: Server, candidate: str, total: int) -> dict[str, float]:
    """The counts once ``total`` mirrored requests have an outcome."""
    wait_for(
        lambda: sum(shadow_counts(server, candidate).values()) >= total,
        f"{total} mirrored outcomes for {candidate}",
    )
    return shadow_counts(server, candidate)


def infer_count(server: Server) -> float:
    return maybe_metric(scrape(server), "onnxops_requests_total", endpoint="infer", code="200") or 0


def rows(models: Models, n: int) -> list[list[float]]:
    return models.iris_x[:: max(1, len(models.iris_x) // n)][:n].tolist()


def test_same_model_agrees(stable: Server, same: Server, config_path: Path, models: Models) -> None:
    switch_on(stable, config_path, same, "4")
    before = infer_count(same)
    with httpx.Client(base_url=stable.url) as client:
        for row in rows(models, 10):
            r = client.post("/predict", json={"features": [row]})
            assert r.status_code == 200
        for row in rows(models, 10):
            body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": row}]}
            assert client.post("/v2/models/iris/infer", json=body).status_code == 200
    # gRPC requests share the data plane, so they are mirrored too.
    grpc_client = triton.InferenceServerClient(url=stable.grpc_target)
    inp = triton.InferInput("X", [5, 4], "FP32")
    inp.set_data_from_numpy(models.iris_x[:5])
    grpc_client.infer("iris", [inp])
    counts = settled(stable, "4", 21)
    assert counts == {"agree": 21, "disagree": 0, "error": 0, "dropped": 0}
    # The copies really reached the candidate, over HTTP.
    assert infer_count(same) - before == 21
    text = scrape(stable)
    labels = {"model": "iris", "version": "3", "candidate_version": "4"}
    assert metric(text, "onnxops_shadow_latency_seconds_count", **labels) == 21
    assert (
        metric(text, SHADOW, model="iris", version="3", candidate_version="4", outcome="agree")
        == 21
    )


def test_different_model_disagrees(
    stable: Server, other: Server, config_path: Path, models: Models
) -> None:
    sample = rows(models, 30)
    # What each version answers, asked directly: the expected disagreements, exactly.
    ours = httpx.post(stable.url + "/predict", json={"features": sample}).json()["predictions"]
    theirs = httpx.post(other.url + "/predict", json={"features": sample}).json()["predictions"]
    expected = sum(a != b for a, b in zip(ours, theirs, strict=True))
    assert expected > 0
    switch_on(stable, config_path, other, "5")
    with httpx.Client(base_url=stable.url) as client:
        for row, label in zip(sample, ours, strict=True):
            r = client.post("/predict", json={"features": [row]})
            assert r.json()["predictions"] == [label]  # the user gets the stable's answer
    counts = settled(stable, "5", 30)
    assert counts == {"agree": 30 - expected, "disagree": expected, "error": 0, "dropped": 0}


def test_dead_target_is_an_error_not_a_failure(
    stable: Server, config_path: Path, models: Models
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    doc = {"percent": 100, "targets": [f"127.0.0.1:{dead_port}"], "candidateVersion": "9"}
    reload(stable, config_path, doc)
    with httpx.Client(base_url=stable.url) as client:
        for row in rows(models, 10):
            assert client.post("/predict", json={"features": [row]}).status_code == 200
    assert settled(stable, "9", 10) == {"agree": 0, "disagree": 0, "error": 10, "dropped": 0}


def test_switched_off_and_on_without_restart(
    stable: Server, same: Server, config_path: Path, models: Models
) -> None:
    pid = stable.proc.pid
    switch_on(stable, config_path, same, "6")
    reload(stable, config_path, {"percent": 0, "targets": [], "candidateVersion": "6"})
    before, start = infer_count(same), shadow_counts(stable, "6")
    with httpx.Client(base_url=stable.url) as client:
        for row in rows(models, 10):
            assert client.post("/predict", json={"features": [row]}).status_code == 200
    time.sleep(1.5)  # what a copy in the background would need to arrive
    assert infer_count(same) == before
    assert shadow_counts(stable, "6") == start
    switch_on(stable, config_path, same, "6")
    with httpx.Client(base_url=stable.url) as client:
        for row in rows(models, 10):
            assert client.post("/predict", json={"features": [row]}).status_code == 200
    assert settled(stable, "6", sum(start.values()) + 10)["agree"] == start["agree"] + 10
    assert stable.proc.poll() is None and stable.proc.pid == pid


def test_bad_config_turns_mirroring_off_and_is_logged_once(
    stable: Server, same: Server, config_path: Path, models: Models
) -> None:
    switch_on(stable, config_path, same, "7")
    invalid = stable.log().count("is invalid")
    reload(stable, config_path, '{"percent": 100, "targets": ')
    before = infer_count(same)
    with httpx.Client(base_url=stable.url) as client:
        for row in rows(models, 5):
            assert client.post("/predict", json={"features": [row]}).status_code == 200
    time.sleep(2.5)  # two more polls of the same bad file
    assert infer_count(same) == before
    assert stable.log().count("is invalid") == invalid + 1
    reload(stable, config_path, {"percent": 250, "targets": ["127.0.0.1:1"]})
    assert "percent 250 is not a number from 0 to 100" in stable.log()
    missing = stable.log().count("cannot read")
    config_path.unlink()
    wait_for(lambda: stable.log().count("cannot read") > missing, "the missing file logged")
    time.sleep(1.5)
    assert stable.log().count("cannot read") == missing + 1
    assert httpx.get(stable.url + "/v2/health/ready").status_code == 200


def test_full_queue_drops_and_counts(models: Models, tmp_path: Path) -> None:
    # A peer that accepts connections (the kernel's backlog) and never answers holds the one
    # worker; one copy waits in the queue of one, the rest are dropped.
    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(16)
        config = tmp_path / "mirror.json"
        write_config(
            config,
            {
                "percent": 100,
                "targets": [f"127.0.0.1:{stalled.getsockname()[1]}"],
                "candidateVersion": "8",
            },
        )
        with running(
            tmp_path / "srv",
            model_uri=str(models.iris),
            mirror_config=str(config),
            mirror_queue_size="1",
            mirror_concurrency="1",
            mirror_timeout_s="30",
        ) as server:
            with httpx.Client(base_url=server.url) as client:
                for row in rows(models, 10):
                    r = client.post("/predict", json={"features": [row]}, timeout=5)
                    assert r.status_code == 200
            counts = shadow_counts(server, "8")
            assert counts == {"agree": 0, "disagree": 0, "error": 0, "dropped": 8}


def test_regression_agrees_within_the_tolerance(models: Models, tmp_path: Path) -> None:
    # A candidate whose every prediction is the stable's + 1.0: outside 0.5, inside 2.0.
    shifted = LinearRegression().fit(models.reg_x, models.reg_pred + 1.0)
    onx = to_onnx(shifted, models.reg_x[:1], target_opset=17)
    (tmp_path / "shifted.onnx").write_bytes(onx.SerializeToString())
    config = tmp_path / "mirror.json"
    with (
        running(
            tmp_path / "cand", model_uri=str(tmp_path / "shifted.onnx"), model_name="reg",
            model_version="2",
        ) as cand,
        running(
            tmp_path / "stable", model_uri=str(models.regressor), mirror_config=str(config),
            log_level="info",
        ) as stable,
    ):  # fmt: skip
        sample = models.reg_x[:10].tolist()
        for tolerance, outcome in ((0.5, "disagree"), (2.0, "agree")):
            doc = {
                "percent": 100,
                "targets": [f"127.0.0.1:{cand.port}"],
                "candidateVersion": f"tol{tolerance}",
                "tolerance": tolerance,
            }
            reload(stable, config, doc)
            with httpx.Client(base_url=stable.url) as client:
                for row in sample:
                    assert client.post("/predict", json={"features": [row]}).status_code == 200
            counts = settled(stable, f"tol{tolerance}", 10)
            assert counts[outcome] == 10 and sum(counts.values()) == 10
