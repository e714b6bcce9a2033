"""The standard OIP client, tritonclient.http, works unchanged: JSON and binary tensors."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from support.serving_harness import Models, Server
from tritonclient.utils import InferenceServerException


@pytest.fixture
def client(iris_server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{iris_server.port}")


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", model_version="3")
    assert not client.is_model_ready("other")
    meta = client.get_model_metadata("iris")
    assert meta["inputs"][0]["name"] == "X"
    assert client.get_server_metadata()["name"] == "onnxops-serving"


@pytest.mark.parametrize("binary", [False, True])
def test_infer(client: triton.InferenceServerClient, models: Models, binary: bool) -> None:
    x = models.iris_x[40:60]
    inp = triton.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer("iris", [inp], outputs=outputs, request_id="t-1")
    np.testing.assert_array_equal(result.as_numpy("label"), models.iris_labels[40:60])
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), models.iris_proba[40:60], rtol=1e-6
    )
    assert result.get_response()["id"] == "t-1"


def test_infer_without_requested_outputs_gets_binary(
    client: triton.InferenceServerClient, models: Models
) -> None:
    # With no outputs named, tritonclient asks for every output in binary form.
    x = models.iris_x[:7]
    inp = triton.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("iris", [inp], model_version="3")
    np.testing.assert_array_equal(result.as_numpy("label"), models.iris_labels[:7])
    assert result.as_numpy("probabilities").shape == (7, 3)


def test_errors_reach_the_client(client: triton.InferenceServerClient, models: Models) -> None:
    x = models.iris_x[:2].astype(np.float64)
    inp = triton.InferInput("X", list(x.shape), "FP64")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="FP32"):
        client.infer("iris", [inp])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", [inp])


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(
    client: triton.InferenceServerClient, models: Models, algorithm: str
) -> None:
    x = models.iris_x[90:110]
    inp = triton.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    result = client.infer("iris", [inp], request_compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("label"), models.iris_labels[90:110])
