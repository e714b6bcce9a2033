"""Small real artefacts shared by tests and benchmarks (one builder each, no copies)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from onnx import TensorProto, helper


def doubler_model(path: Path) -> str:
    """Write a bare ONNX model ``y = 2x`` over float rows of 2 to ``path``; return its sha256."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()
