"""Graph-level model transformations: quantization, float16, pruning, graph optimization.

Each takes an ONNX model and returns a new one, or raises `NotApplicable` with the reason
when the model has nothing for the technique to work on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxconverter_common import float16
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from onnxops.pipeline import pruning

CALIBRATION_ROWS = 256


class NotApplicable(Exception):
    """This technique has nothing to work on in this model."""


def _ml_ops(model: onnx.ModelProto) -> str:
    return (
        ", ".join(sorted({n.op_type for n in model.graph.node if n.domain == "ai.onnx.ml"}))
        or "none"
    )


def _needs_weights(model: onnx.ModelProto, what: str) -> None:
    if not pruning.weight_names(model):
        raise NotApplicable(
            f"no MatMul/Gemm weights; {what} does not touch ai.onnx.ml operators ({_ml_ops(model)})"
        )


class _Rows(CalibrationDataReader):
    def __init__(self, name: str, X: np.ndarray) -> None:
        self._batches = iter([{name: X[i : i + 32]} for i in range(0, len(X), 32)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def graph_optimized(model: onnx.ModelProto, tmp: Path) -> onnx.ModelProto:
    opts = ort.SessionOptions()
    # BASIC only: its rewrites (constant folding, redundant nodes) stay runnable on any provider.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(tmp / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp / "optimized.onnx"))
    if len(optimized.graph.node) >= len(model.graph.node):
        raise NotApplicable("onnxruntime found nothing to fold or remove in this graph")
    return optimized


def int8_dynamic(model: onnx.ModelProto, tmp: Path) -> onnx.ModelProto:
    _needs_weights(model, "onnxruntime quantization")
    quantize_dynamic(model, tmp / "int8.onnx", weight_type=QuantType.QInt8, per_channel=False)
    return onnx.load(str(tmp / "int8.onnx"))


def int8_static(model: onnx.ModelProto, tmp: Path, X_train: np.ndarray) -> onnx.ModelProto:
    _needs_weights(model, "onnxruntime quantization")
    rows = X_train[:CALIBRATION_ROWS].astype(np.float32)
    quantize_static(
        model,
        tmp / "int8-static.onnx",
        _Rows(model.graph.input[0].name, rows),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        per_channel=False,
    )
    return onnx.load(str(tmp / "int8-static.onnx"))


def fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    _needs_weights(model, "float16 conversion")
    # keep_io_types: callers still send and receive float32.
    half = float16.convert_float_to_float16(copy_model(model), keep_io_types=True)
    # The converter retypes a Cast's output to float16 but leaves its `to` at float32
    # (skl2onnx's MLP casts to float before the first MatMul); make the two agree.
    half_values = {
        v.name
        for v in half.graph.value_info
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    for node in half.graph.node:
        if node.op_type == "Cast" and node.output[0] in half_values:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                    attr.i = onnx.TensorProto.FLOAT16
    return half


def magnitude(model: onnx.ModelProto, target: float) -> onnx.ModelProto:
    _needs_weights(model, "magnitude pruning")
    return pruning.magnitude_prune(model, target)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
