"""The loaded model: an ONNX Runtime session, its tensor signature and its bundle metadata."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import LoadFailure, ModelUnavailable
from .fetch import FetchedModel

# ONNX Runtime type strings -> Open Inference Protocol datatypes.
_ORT_TO_OIP = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

OIP_TO_NUMPY: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as OIP describes it; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: list[int]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass
class LoadedModel:
    """A ready-to-run model. ``run`` is the only thing the data plane calls per request."""

    name: str
    version: str
    sha256: str
    task: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    session: ort.InferenceSession
    metadata: dict[str, Any] = field(default_factory=dict)
    load_seconds: float = 0.0
    inference_ms: float = 0.0

    def __post_init__(self) -> None:
        # The session's own binding, called with the output names: the public ``run`` lists
        # the outputs and re-checks the feed's names on every call, which the data plane has
        # already checked against the model (a few µs of a small model's ~10 µs). The CPU
        # provider has no fallback for that wrapper to retry with.
        self._names = [spec.name for spec in self.outputs]
        self._bound = getattr(self.session, "_sess", None)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._bound is None:
            return self.session.run(self._names, feeds)
        return self._bound.run(self._names, feeds, None)

    @property
    def feature_stats(self) -> list[dict[str, Any]]:
        return list(self.metadata.get("feature_stats") or [])

    @property
    def feature_names(self) -> list[str]:
        names = self.metadata.get("feature_names")
        return [str(n) for n in names] if names else [s["name"] for s in self.feature_stats]


def _spec(node: Any) -> TensorSpec:
    datatype = _ORT_TO_OIP.get(node.type)
    if datatype is None:
        raise ModelUnavailable(
            f"tensor {node.name!r} has type {node.type}, which the Open Inference Protocol "
            "cannot carry (classifiers: export with zipmap disabled)"
        )
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or [])]
    return TensorSpec(node.name, datatype, shape)


def _session(path: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn a core while idle; serving pods share nodes.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated types for a bad file
        raise ModelUnavailable(f"ONNX Runtime cannot load {path}: {exc}") from exc


def _dummy(spec: TensorSpec, rows: int) -> np.ndarray:
    dims = [rows] + [d if d > 0 else 1 for d in spec.shape[1:]]
    if spec.datatype == "BYTES":
        return np.full(dims, "", dtype=object)
    return np.zeros(dims, dtype=OIP_TO_NUMPY[spec.datatype])


def warm_up(model: LoadedModel, max_rows: int) -> float:
    """Run the model until its caches are warm; return the median single-row time in ms."""
    for rows in sorted({1, max(1, max_rows)}):
        feeds = {spec.name: _dummy(spec, rows) for spec in model.inputs}
        for _ in range(3):
            try:
                model.run(feeds)
            except Exception as exc:
                raise ModelUnavailable(f"warm-up inference failed: {exc}") from exc
    feeds = {spec.name: _dummy(spec, 1) for spec in model.inputs}
    times = []
    for _ in range(20):
        start = time.perf_counter()
        model.run(feeds)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def check_schema(meta: dict[str, Any], inputs: list[TensorSpec]) -> None:
    """model.json's ``input`` and ``feature_names`` must describe the graph's input: a bundle
    whose metadata belongs to another model would be served with the wrong drift baseline."""
    declared = meta.get("input")
    if not isinstance(declared, dict):
        return
    by_name = {spec.name: spec for spec in inputs}
    name = declared.get("name")
    if name not in by_name:
        raise ModelUnavailable(
            f"model.json names input {name!r}, the model has {sorted(by_name)}",
            LoadFailure.INPUT_SCHEMA_MISMATCH,
        )
    actual = by_name[name].shape
    shape = declared.get("shape") or []
    width = shape[-1] if isinstance(shape, list) and shape else None
    if isinstance(width, int) and len(actual) > 1 and actual[-1] > 0 and actual[-1] != width:
        raise ModelUnavailable(
            f"model.json says input {name!r} has {width} features, the model takes {actual[-1]}",
            LoadFailure.INPUT_SCHEMA_MISMATCH,
        )
    names = meta.get("feature_names")
    if isinstance(names, list) and isinstance(width, int) and names and len(names) != width:
        raise ModelUnavailable(
            f"model.json lists {len(names)} feature_names for an input of {width} features",
            LoadFailure.INPUT_SCHEMA_MISMATCH,
        )


def load_model(
    fetched: FetchedModel, *, name: str, version: str, threads: int, warm_rows: int
) -> LoadedModel:
    """Open the session, read its signature, and warm it up."""
    start = time.perf_counter()
    session = _session(str(fetched.onnx_path), threads)
    meta = fetched.metadata or {}
    inputs = [_spec(n) for n in session.get_inputs()]
    outputs = [_spec(n) for n in session.get_outputs()]
    for spec in inputs:
        if not spec.shape:
            raise ModelUnavailable(f"input {spec.name!r} is a scalar; a batch dimension is needed")
    check_schema(meta, inputs)
    stem = fetched.onnx_path.name.split(".")[0]
    model = LoadedModel(
        name=name or str(meta.get("name") or stem),
        version=version or str(meta.get("version") or "1"),
        sha256=fetched.sha256,
        task=str(meta.get("task") or ""),
        inputs=inputs,
        outputs=outputs,
        session=session,
        metadata=meta,
    )
    model.inference_ms = warm_up(model, warm_rows)
    model.load_seconds = time.perf_counter() - start
    return model
