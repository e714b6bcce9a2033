"""OIP v2 over gRPC: the standard client (tritonclient.grpc, sync and aio) works unchanged, the
gRPC health protocol answers probes, and gRPC shares the data plane and metrics with REST."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import psutil
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from onnxops_serving.proto import health_pb2
from support.serving_harness import Models, Server, maybe_metric, spawn, stop
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def client(iris_server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=iris_server.grpc_target)


@pytest.fixture
def stub(iris_server: Server) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(iris_server.grpc_target) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _input(x: np.ndarray, datatype: str = "FP32") -> triton.InferInput:
    inp = triton.InferInput("X", list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    return inp


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", model_version="3")
    assert not client.is_model_ready("iris", model_version="4")
    assert not client.is_model_ready("other")
    assert client.get_server_metadata().name == "onnxops-serving"
    meta = client.get_model_metadata("iris")
    assert (meta.name, list(meta.versions)) == ("iris", ["3"])
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("X", "FP32", [-1, 4])]
    assert [t.name for t in meta.outputs] == ["label", "probabilities"]


def test_infer_raw_contents(client: triton.InferenceServerClient, models: Models) -> None:
    x = models.iris_x[30:60]
    result = client.infer("iris", [_input(x)], request_id="g-raw")
    np.testing.assert_array_equal(result.as_numpy("label"), models.iris_labels[30:60])
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), models.iris_proba[30:60], rtol=1e-6
    )
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("g-raw", "iris", "3")
    assert len(response.raw_output_contents) == 2  # JSON-free both ways

    only = client.infer("iris", [_input(x)], outputs=[triton.InferRequestedOutput("probabilities")])
    assert [o.name for o in only.get_response().outputs] == ["probabilities"]


def test_infer_aio_concurrently(iris_server: Server, models: Models) -> None:
    async def run() -> list[np.ndarray]:
        async with triton_aio.InferenceServerClient(url=iris_server.grpc_target) as client:
            assert await client.is_server_ready()
            calls = [
                client.infer("iris", [_input(models.iris_x[i : i + 3])], request_id=f"a-{i}")
                for i in range(0, 120, 3)
            ]
            return [r.as_numpy("label") for r in await asyncio.gather(*calls)]

    labels = asyncio.run(run())
    np.testing.assert_array_equal(np.concatenate(labels), models.iris_labels[:120])


def test_typed_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub, models: Models) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="X", datatype="FP32", shape=[2, 4])
    tensor.contents.fp32_contents.extend(models.iris_x[:2].ravel().tolist())
    response = stub.ModelInfer(request)
    labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    np.testing.assert_array_equal(labels, models.iris_labels[:2])


def test_errors_reach_the_client(client: triton.InferenceServerClient, models: Models) -> None:
    with pytest.raises(InferenceServerException, match="FP32") as err:
        client.infer("iris", [_input(models.iris_x[:2].astype(np.float64), "FP64")])
    assert "INVALID_ARGUMENT" in str(err.value.status())
    with pytest.raises(InferenceServerException, match="unknown model") as err:
        client.infer("nope", [_input(models.iris_x[:2])])
    assert "NOT_FOUND" in str(err.value.status())
    with pytest.raises(InferenceServerException, match="version"):
        client.get_model_metadata("iris", model_version="9")


def _raw(shape: list[int], datatype: str = "FP32", **extra: object) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris", **extra)  # type: ignore[arg-type]
    request.inputs.add(name="X", datatype=datatype, shape=shape)
    request.raw_input_contents.append(np.array(ROW, dtype="<f4").tobytes())
    return request


def _nan() -> pb.ModelInferRequest:
    request = _raw([1, 4])
    request.raw_input_contents[0] = np.array([np.nan, 1, 2, 3], dtype="<f4").tobytes()
    return request


def _typed_int8(values: list[int]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="X", datatype="INT8", shape=[1, 4]).contents.int_contents.extend(values)
    return request


def _both() -> pb.ModelInferRequest:
    request = _raw([1, 4])
    request.inputs[0].contents.fp32_contents.extend(ROW)
    return request


def _twice() -> pb.ModelInferRequest:
    request = _raw([1, 4])
    request.inputs.add(name="X", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(request.raw_input_contents[0])
    return request


def _extra_raw() -> pb.ModelInferRequest:
    request = _raw([1, 4])
    request.raw_input_contents.append(b"\0" * 16)
    return request


# (case, request, word in the error); every one is INVALID_ARGUMENT.
GRPC_CORPUS: list[tuple[str, pb.ModelInferRequest, str]] = [
    ("no inputs", pb.ModelInferRequest(model_name="iris"), "no inputs"),
    ("unknown datatype", _raw([1, 4], "FP99"), "datatype"),
    ("70 dimensions", _raw([1] * 69 + [4]), "dimensions"),
    ("negative dimension", _raw([-1, 4]), "shape"),
    ("raw size vs shape", _raw([2, 4]), "binary data has 16 bytes"),
    ("raw entries vs inputs", _extra_raw(), "raw_input_contents has 2 entries"),
    ("contents and raw", _both(), "both"),
    ("input given twice", _twice(), "twice"),
    ("value over INT8", _typed_int8([300, 1, 2, 3]), "INT8"),
    ("typed count vs shape", _typed_int8([1, 2]), "needs 4 values"),
    ("FP16 typed", pb.ModelInferRequest(model_name="iris", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="X", datatype="FP16", shape=[1, 4])]), "raw"),
    ("wrong width", _raw([1, 3]), "needs 12"),
    ("NaN", _nan(), "NaN"),
    ("unknown output", _raw([1, 4], outputs=[
        pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")]), "unknown output"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "request_", "word"), GRPC_CORPUS, ids=[c[0] for c in GRPC_CORPUS])
def test_malformed_infer_is_invalid_argument(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
    case: str,
    request_: pb.ModelInferRequest,
    word: str,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert word.lower() in (err.value.details() or "").lower()


def test_an_oversized_message_is_refused(
    iris_server: Server, stub: service_pb2_grpc.GRPCInferenceServiceStub
) -> None:
    request = _raw([1, 4])
    request.raw_input_contents[0] = b"\0" * 70_000  # the fixture's body limit is 65536
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.ServerLive(pb.ServerLiveRequest()).live


def test_the_grpc_corpus_leaves_memory_where_it_was(
    iris_server: Server, stub: service_pb2_grpc.GRPCInferenceServiceStub
) -> None:
    def round_() -> None:
        for _, request, _ in GRPC_CORPUS:
            with pytest.raises(grpc.RpcError):
                stub.ModelInfer(request)
        assert stub.ServerReady(pb.ServerReadyRequest()).ready

    proc = psutil.Process(iris_server.proc.pid)
    for _ in range(3):
        round_()
    before = proc.memory_info().rss
    for _ in range(30):
        round_()
    grown = proc.memory_info().rss - before
    assert grown < 4 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over 30 gRPC corpus rounds"


def test_grpc_shares_the_data_plane_with_rest(
    iris_server: Server, client: triton.InferenceServerClient, models: Models
) -> None:
    def sample(name: str, **labels: str) -> float:
        return maybe_metric(httpx.get(iris_server.url + "/metrics").text, name, **labels) or 0.0

    drift_rows = sample("onnxops_drift_rows_total")
    grpc_infers = sample("onnxops_requests_total", endpoint="infer", code="200", protocol="grpc")
    client.infer("iris", [_input(models.iris_x[:5])], request_id="shared-1")
    # REST feedback finds the predictions gRPC made, by the request id.
    labels = [int(v) for v in models.iris_labels[:5]]
    resp = httpx.post(
        iris_server.url + "/v2/models/iris/feedback", json={"id": "shared-1", "labels": labels}
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 5
    assert sample("onnxops_drift_rows_total") == drift_rows + 5
    assert (
        sample("onnxops_requests_total", endpoint="infer", code="200", protocol="grpc")
        == grpc_infers + 1
    )
    assert sample("onnxops_request_duration_seconds_count", protocol="grpc") >= 1


def _health(target: str, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus:
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        return check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_grpc_health_checks(iris_server: Server) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", "inference.GRPCInferenceService", "iris"):
        assert _health(iris_server.grpc_target, service) == serving
    with pytest.raises(grpc.RpcError) as err:
        _health(iris_server.grpc_target, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_draining_turns_grpc_health_not_serving_but_calls_go_on(
    models: Models, tmp_path: Path
) -> None:
    server = spawn(tmp_path, model_uri=str(models.iris), shutdown_delay_s="30")
    try:
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _health(server.grpc_target) != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline, "health never turned NOT_SERVING"
            time.sleep(0.05)
        client = triton.InferenceServerClient(url=server.grpc_target)
        assert not client.is_server_ready()
        result = client.infer("iris", [_input(models.iris_x[:4])])
        np.testing.assert_array_equal(result.as_numpy("label"), models.iris_labels[:4])
    finally:
        server.proc.send_signal(signal.SIGTERM)  # a second SIGTERM stops at once
        stop(server)


def test_a_taken_grpc_port_fails_the_start(models: Models, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = spawn(tmp_path, wait_ready=False, model_uri=str(models.iris), grpc_port=str(port))
        try:
            assert server.proc.wait(timeout=60) == 1
        finally:
            stop(server)
    assert f"cannot listen for gRPC on port {port}" in server.log()
