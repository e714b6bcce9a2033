"""Open Inference Protocol v2 wire format: JSON bodies and the binary tensor data extension.

Turns request bytes into numpy arrays and results back into bytes; knows nothing of HTTP.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .errors import BadRequest
from .model import OIP_TO_NUMPY

# numpy kinds a JSON array may decode to, per declared datatype family.
_NUMERIC_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}
# Per declared datatype, the numpy dtype and the kinds its JSON data may decode to (once, not
# per request).
_JSON_TARGETS = {
    name: (np.dtype(t), _NUMERIC_KINDS[np.dtype(t).kind])
    for name, t in OIP_TO_NUMPY.items()
    if name != "BYTES"
}
_ORJSON_NUMPY = frozenset("biuf")
# numpy refuses more than 64 dimensions with a ValueError; no model here needs more than a few.
MAX_RANK = 32


@dataclass
class InferRequest:
    """A decoded infer request: named input arrays plus what the caller wants back."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None = None
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def loads(body: bytes | memoryview) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc


def shape_of(raw: Any, name: str) -> tuple[int, ...]:
    """A request's shape, checked: a list of non-negative ints of sane rank."""
    good = isinstance(raw, list)
    if good:
        for d in raw:  # a plain loop: cheaper than all() over a generator for a few dims
            if type(d) is not int or d < 0:
                good = False
                break
    if not good:
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers")
    if len(raw) > MAX_RANK:
        raise BadRequest(f"input {name!r}: shape has {len(raw)} dimensions; at most {MAX_RANK}")
    return tuple(raw)


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    if datatype == "BYTES":
        arr = np.array(data, dtype=object)
    else:
        try:
            arr = np.array(data)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"input {name!r}: data is not a regular array: {exc}") from exc
        target, kinds = _JSON_TARGETS[datatype]
        if arr.size and arr.dtype.kind not in kinds:
            raise BadRequest(f"input {name!r}: data does not match datatype {datatype}")
        arr = arr.astype(target, copy=False)
    if arr.shape == shape:
        return arr  # the common case: the data nested as the shape says
    if arr.size != (need := math.prod(shape)):
        raise BadRequest(f"input {name!r}: shape {list(shape)} needs {need} values, got {arr.size}")
    return arr.reshape(shape)


def _bytes_tensor(buf: memoryview, count: int, name: str) -> np.ndarray:
    items: list[bytes] = []
    pos = 0
    while pos < len(buf):
        if pos + 4 > len(buf):
            raise BadRequest(f"input {name!r}: truncated BYTES element")
        (length,) = struct.unpack_from("<I", buf, pos)
        items.append(bytes(buf[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    if len(items) != count or pos != len(buf):
        raise BadRequest(f"input {name!r}: BYTES data does not match its shape")
    return np.array(items, dtype=object)


def from_binary(name: str, datatype: str, shape: tuple[int, ...], buf: memoryview) -> np.ndarray:
    """An input tensor from its little-endian bytes (BYTES: length-prefixed elements)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_tensor(buf, count, name).reshape(shape)
    dtype = np.dtype(OIP_TO_NUMPY[datatype]).newbyteorder("<")
    if len(buf) != count * dtype.itemsize:
        raise BadRequest(
            f"input {name!r}: binary data has {len(buf)} bytes, shape {list(shape)} of "
            f"{datatype} needs {count * dtype.itemsize}"
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _params(obj: dict[str, Any]) -> dict[str, Any]:
    params = obj.get("parameters")
    return params if isinstance(params, dict) else {}


def decode_infer(body: bytes, header_length: int | None) -> InferRequest:
    """Decode an infer body; ``header_length`` is the binary extension's JSON length, if any."""
    view = memoryview(body)
    if header_length is not None and not 0 <= header_length <= len(body):
        raise BadRequest("Inference-Header-Content-Length is larger than the body")
    head = loads(view[:header_length] if header_length is not None else body)
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list) or not head["inputs"]:
        raise BadRequest("request must be a JSON object with a non-empty 'inputs' list")
    offset = header_length or 0
    inputs: dict[str, np.ndarray] = {}
    for item in head["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest("every input needs a 'name'")
        name = item["name"]
        if name in inputs:
            raise BadRequest(f"input {name!r} is given twice")
        datatype = item.get("datatype")
        if type(datatype) is not str or datatype not in OIP_TO_NUMPY:
            raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
        shape = shape_of(item.get("shape"), name)
        size = _params(item).get("binary_data_size")
        if size is not None:
            if (
                header_length is None
                or type(size) is not int
                or size < 0
                or offset + size > len(body)
            ):
                raise BadRequest(f"input {name!r}: binary_data_size does not fit the body")
            inputs[name] = from_binary(name, datatype, shape, view[offset : offset + size])
            offset += size
        elif "data" in item:
            inputs[name] = _from_json(name, datatype, shape, item["data"])
        else:
            raise BadRequest(f"input {name!r} has no 'data'")
    if header_length is not None and offset != len(body):
        raise BadRequest(
            f"{len(body) - offset} bytes follow the last binary tensor (binary_data_size "
            "and Inference-Header-Content-Length do not add up to the body)"
        )
    params = _params(head)
    request = InferRequest(
        id=request_id(head.get("id")),
        inputs=inputs,
        parameters=params,
        binary_default=bool(params.get("binary_data_output")),
    )
    wanted = head.get("outputs")
    if wanted is not None and not isinstance(wanted, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects")
    if wanted:
        request.outputs = []
        for out in wanted:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise BadRequest("every requested output needs a 'name'")
            request.outputs.append(out["name"])
            if _params(out).get("binary_data"):
                request.binary_outputs.add(out["name"])
        # Requested outputs choose their own form; the request-wide default is for the rest.
        request.binary_default = False
    return request


def request_id(raw: Any) -> str | None:
    """A caller's request id as text; none when absent or empty. Numbers are taken as their
    text; objects, lists and booleans are refused rather than echoed as Python reprs."""
    if raw is None or raw == "":
        return None
    if type(raw) is str:
        return raw
    if type(raw) not in (int, float):
        raise BadRequest("'id' must be a string (or a number)")
    return str(raw)


def raw_bytes(arr: np.ndarray, datatype: str) -> bytes:
    """An output tensor as the binary extension and gRPC's raw contents carry it."""
    return _bytes_payload(arr) if datatype == "BYTES" else np.ascontiguousarray(arr).tobytes()


def _bytes_payload(arr: np.ndarray) -> bytes:
    parts = []
    for item in arr.ravel():
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(parts)


def encode_infer(
    *,
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: list[tuple[str, str, np.ndarray]],
    binary: AbstractSet[str] | None = None,
) -> tuple[bytes, int | None]:
    """Encode outputs ``(name, datatype, array)``; those named in ``binary`` go after the JSON."""
    described = []
    blobs = []
    for name, datatype, arr in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": arr.shape}
        if binary and name in binary:
            blob = raw_bytes(arr, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif arr.dtype.kind in _ORJSON_NUMPY:
            entry["data"] = arr.ravel()  # C-contiguous, as orjson needs: a view or a copy
        else:
            entry["data"] = [
                x.decode() if isinstance(x, bytes) else x for x in arr.ravel().tolist()
            ]
        described.append(entry)
    head = orjson.dumps(
        {
            "model_name": model_name,
            "model_version": model_version,
            "id": request_id,
            "outputs": described,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
