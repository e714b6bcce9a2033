"""Faults made for real: a model that breaks on some rows at inference."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def broken_copy(good: Path, out: Path) -> Path:
    """The same model with a shorter lookup table: rows with index 3 now fail at inference."""
    model = onnx.load(str(good))
    (table,) = [t for t in model.graph.initializer if t.name == "table"]
    table.CopyFrom(helper.make_tensor("table", TensorProto.FLOAT, [2], [10.0, 11.0]))
    onnx.save(model, str(out))
    return out
