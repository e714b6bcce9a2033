"""Faults made for real: a model that breaks on some rows at inference, and one that answers
every request (200) with the wrong label."""

from __future__ import annotations

import hashlib
import json
import shutil
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


def permuted_labels(bundle: Path, out: Path) -> Path:
    """A copy of a classifier bundle (model.json + model.onnx, as `build_models` writes iris)
    whose class labels are rotated by one: class k is answered as k+1 (mod the classes), so
    every label is wrong while the probabilities, the latency and the status codes are as
    before — a fault only ground-truth feedback can see. model.json's sha256 follows."""
    shutil.copytree(bundle, out)
    model = onnx.load(str(out / "model.onnx"))
    (clf,) = [n for n in model.graph.node if n.op_type == "LinearClassifier"]
    (labels,) = [a for a in clf.attribute if a.name == "classlabels_ints"]
    rotated = [*labels.ints[1:], labels.ints[0]]
    del labels.ints[:]
    labels.ints.extend(rotated)
    onnx.save(model, str(out / "model.onnx"))
    meta = json.loads((out / "model.json").read_text())
    data = (out / "model.onnx").read_bytes()
    meta["files"]["model.onnx"].update(
        {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    )
    (out / "model.json").write_text(json.dumps(meta, indent=2))
    return out
