"""Graceful shutdown: SIGTERM lets in-flight requests finish, within a bound."""

from __future__ import annotations

import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
from support.serving_harness import Models, Server, maybe_metric, spawn, stop


def _post_slow(server: Server, models: Models) -> Future[httpx.Response]:
    body = {
        "inputs": [
            {
                "name": "X",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": models.iris_x[70:72].tolist(),
            }
        ]
    }
    pool = ThreadPoolExecutor(1)
    future = pool.submit(httpx.post, server.url + "/v2/models/iris/infer", json=body, timeout=60)
    pool.shutdown(wait=False)
    # The scrape counts itself: above one means the slow request is inside the server.
    deadline = time.monotonic() + 20
    while (
        maybe_metric(httpx.get(server.url + "/metrics").text, "onnxops_inflight_requests") or 0
    ) < 2:
        assert time.monotonic() < deadline and not future.done()
        time.sleep(0.02)
    return future


def test_sigterm_drains_in_flight_requests(models: Models, tmp_path: Path) -> None:
    # A lone request waits 1.5 s for a batch to fill: it is in flight when SIGTERM lands.
    server = spawn(
        tmp_path, model_uri=str(models.iris), max_batch_size="64", max_batch_latency_ms="1500"
    )
    try:
        future = _post_slow(server, models)
        server.proc.send_signal(signal.SIGTERM)
        resp = future.result(timeout=30)
        assert resp.status_code == 200
        assert resp.json()["outputs"][0]["data"] == models.iris_labels[70:72].tolist()
        assert server.proc.wait(timeout=20) == 0
    finally:
        stop(server)


def test_drain_is_bounded(models: Models, tmp_path: Path) -> None:
    # This request would wait 60 s; the 1 s drain bound ends the process well before.
    server = spawn(
        tmp_path,
        model_uri=str(models.iris),
        max_batch_size="64",
        max_batch_latency_ms="60000",
        drain_seconds="1",
    )
    try:
        future = _post_slow(server, models)
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=20)
        assert future.exception(timeout=20) is not None or future.result().status_code >= 500
    finally:
        stop(server)


def test_shutdown_delay_keeps_serving_while_not_ready(models: Models, tmp_path: Path) -> None:
    # Kubernetes still sends new connections for a while after SIGTERM: they are served,
    # while readiness already says no.
    server = spawn(tmp_path, model_uri=str(models.iris), shutdown_delay_s="3")
    body = {
        "inputs": [
            {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": models.iris_x[:1].tolist()}
        ]
    }
    try:
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while httpx.get(server.url + "/v2/health/ready").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/v2/models/iris/ready").status_code == 503
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
        with httpx.Client() as fresh:  # a new connection
            resp = fresh.post(server.url + "/v2/models/iris/infer", json=body)
        assert resp.status_code == 200
        assert resp.json()["outputs"][0]["data"] == models.iris_labels[:1].tolist()
        assert server.proc.wait(timeout=20) == 0
    finally:
        stop(server)
