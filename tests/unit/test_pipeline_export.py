"""Export to ONNX: accuracy and parity of the reference model, and parity for every algorithm."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnxops.errors import GateFailed
from onnxops.pipeline import data, export, train, validate
from onnxops.pipeline.bundle import ClassificationMetrics, read_bundle, verify_files

# Few trees and small networks keep the whole matrix to a few seconds.
FAST: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 5},
    "mlp": {"hidden_layer_sizes": (16,), "max_iter": 300},
}
MATRIX = [
    ("linear_regression", "regression"),
    ("logistic_regression", "classification"),
    ("svm", "classification"),
    ("svm", "regression"),
    ("random_forest", "classification"),
    ("random_forest", "regression"),
    ("mlp", "classification"),
    ("mlp", "regression"),
]
DATASET = {"classification": "iris", "regression": "diabetes"}


def _run(algorithm: str, task: str, dataset: str | None = None) -> train.TrainRun:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train.train(
            data.load_builtin(dataset or DATASET[task]),
            algorithm,
            task=task,  # type: ignore[arg-type]
            params=FAST.get(algorithm, {}),
        )


def test_iris_logistic_regression_is_accurate_and_exports_with_parity(tmp_path: Path) -> None:
    run = train.train(data.load_builtin("iris"), "logistic_regression")
    metrics = validate.validate(run)
    assert isinstance(metrics, ClassificationMetrics)
    assert metrics.accuracy >= 0.9

    bundle = export.export(run, tmp_path / "iris", metrics)

    assert bundle.parity.passed
    assert bundle.parity.label_agreement == 1.0
    assert bundle.parity.max_abs_diff <= 1e-4
    on_disk = read_bundle(tmp_path / "iris")
    assert on_disk == bundle
    assert verify_files(tmp_path / "iris", on_disk) == []
    assert [o.name for o in bundle.outputs] == ["label", "probabilities"]
    assert bundle.outputs[1].shape == [None, 3]
    assert bundle.input.model_dump() == {"name": "input", "dtype": "float32", "shape": [None, 4]}
    assert bundle.classes == [0, 1, 2]
    # Plain tensors only: ZipMap would give a sequence of maps no OIP datatype can carry.
    model = onnx.load(str(tmp_path / "iris" / "model.onnx"))
    assert "ZipMap" not in {n.op_type for n in model.graph.node}


@pytest.mark.parametrize(("algorithm", "task"), MATRIX, ids=[f"{a}-{t}" for a, t in MATRIX])
@pytest.mark.parametrize("form", ["ml", "standard"])
def test_every_algorithm_and_task_exports_with_parity(algorithm: str, task: str, form: str) -> None:
    run = _run(algorithm, task)

    model, parity = export.checked_model(run, form, tolerance=1e-4, min_agreement=1.0)  # type: ignore[arg-type]

    assert parity.passed
    assert parity.rows == run.split.info.test_rows
    if task == "classification":
        assert parity.label_agreement == 1.0
        assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    else:
        assert parity.max_rel_diff <= 1e-4
        assert [o.name for o in model.graph.output] == ["value"]


def test_standard_form_spells_linear_models_with_matmul() -> None:
    run = _run("logistic_regression", "classification")

    ml, _ = export.checked_model(run, "ml", tolerance=1e-4, min_agreement=1.0)
    standard, _ = export.checked_model(run, "standard", tolerance=1e-4, min_agreement=1.0)

    assert "LinearClassifier" in {n.op_type for n in ml.graph.node}
    ops = {n.op_type for n in standard.graph.node}
    assert "MatMul" in ops
    assert not ops & export.STANDARD_FORM_BLOCKLIST


def test_failed_parity_writes_no_bundle(tmp_path: Path) -> None:
    run = _run("mlp", "classification")
    metrics = validate.validate(run)

    # A tolerance no float32 model can meet forces the failure path.
    with pytest.raises(GateFailed, match="parity check failed"):
        export.export(run, tmp_path / "out", metrics, tolerance=0.0)

    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_string_class_labels_round_trip(tmp_path: Path) -> None:
    csv = tmp_path / "fruit.csv"
    rng = np.random.default_rng(0)
    rows = ["weight,width,kind"]
    for i in range(60):
        kind = ["apple", "pear", "plum"][i % 3]
        rows.append(
            f"{100 + 40 * (i % 3) + rng.normal():.3f},{5 + (i % 3) + rng.normal() / 10:.3f},{kind}"
        )
    csv.write_text("\n".join(rows) + "\n")
    run = train.train(data.load_csv(csv, "kind"), "random_forest", params={"n_estimators": 5})

    bundle = export.export(run, tmp_path / "fruit", validate.validate(run))

    assert bundle.classes == ["apple", "pear", "plum"]
    assert bundle.outputs[0].dtype == "string"
    assert bundle.parity.label_agreement == 1.0
