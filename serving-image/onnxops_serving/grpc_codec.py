"""Open Inference Protocol v2 over gRPC, the message side: protobuf messages <-> numpy arrays.

The gRPC twin of ``codec``: inputs come as ``raw_input_contents`` (little-endian bytes, what
tritonclient sends) or as typed ``contents``; outputs always go back as raw contents, as
Triton does, so no number is ever turned into text. Knows nothing of the gRPC server.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .codec import InferRequest, from_binary, raw_bytes, shape_of
from .errors import BadRequest
from .model import OIP_TO_NUMPY
from .proto import inference_pb2 as pb

# Which typed list of InferTensorContents carries each datatype (FP16 has none: raw only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _typed(name: str, datatype: str, shape: tuple[int, ...], contents: Any) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise BadRequest(f"input {name!r}: {datatype} data must come as raw_input_contents")
    values = getattr(contents, field)
    if len(values) != math.prod(shape):
        raise BadRequest(
            f"input {name!r}: shape {list(shape)} needs {math.prod(shape)} values, "
            f"got {len(values)} in {field}"
        )
    if datatype == "BYTES":
        return np.array(list(values), dtype=object).reshape(shape)
    try:
        return np.array(values, dtype=OIP_TO_NUMPY[datatype]).reshape(shape)
    except OverflowError:  # e.g. 300 in int_contents for an INT8 input
        raise BadRequest(f"input {name!r}: a value does not fit {datatype}") from None


def decode_request(request: pb.ModelInferRequest) -> InferRequest:
    """The data plane's view of a ModelInfer request; malformed ones raise BadRequest."""
    raw = request.raw_input_contents
    if not request.inputs:
        raise BadRequest("the request has no inputs")
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    inputs: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        if not name:
            raise BadRequest("every input needs a 'name'")
        if name in inputs:
            raise BadRequest(f"input {name!r} is given twice")
        datatype = tensor.datatype
        if datatype not in OIP_TO_NUMPY:
            raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
        shape = shape_of(list(tensor.shape), name)
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(f"input {name!r} has both contents and raw_input_contents")
            inputs[name] = from_binary(name, datatype, shape, memoryview(raw[i]))
        else:
            inputs[name] = _typed(name, datatype, shape, tensor.contents)
    return InferRequest(
        id=request.id or None,
        inputs=inputs,
        outputs=[out.name for out in request.outputs] or None,
    )


def encode_response(
    *, model_name: str, model_version: str, request_id: str, outputs: list[Any]
) -> pb.ModelInferResponse:
    """A ModelInfer response with every output ``(name, datatype, array)`` as raw contents."""
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id
    )
    for name, datatype, arr in outputs:
        response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        response.raw_output_contents.append(raw_bytes(arr, datatype))
    return response


def model_metadata(meta: dict[str, Any]) -> pb.ModelMetadataResponse:
    """The data plane's model metadata as the gRPC message."""
    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=meta["versions"],
        platform=meta["platform"],
        inputs=[_tensor_meta(t) for t in meta["inputs"]],
        outputs=[_tensor_meta(t) for t in meta["outputs"]],
    )


def _tensor_meta(spec: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec["name"], datatype=spec["datatype"], shape=spec["shape"]
    )
