"""The bundle format: the schema file is current, and model.json carries the agreed keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnxops.errors import OnnxopsError
from onnxops.pipeline import bundle, data, export, train, validate

AGREED_KEYS = {
    "format_version", "name", "version", "task", "algorithm", "input", "feature_names", "outputs",
    "classes", "files", "feature_stats", "metrics", "parity", "data", "variants", "libraries", "created",
}  # fmt: skip


def test_schema_file_is_generated_from_the_models() -> None:
    on_disk = bundle.SCHEMA_PATH.read_text(encoding="utf-8")

    assert on_disk == bundle.schema_text(), (
        "stale schema: run `python -m onnxops.pipeline.bundle > operator/onnxops/schemas/model-bundle.schema.json`"
    )


@pytest.fixture(scope="module")
def iris_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = train.train(data.load_builtin("iris"), "logistic_regression")
    out = tmp_path_factory.mktemp("b") / "iris"
    export.export(run, out, validate.validate(run))
    return out


def test_model_json_has_the_agreed_keys_and_shapes(iris_bundle: Path) -> None:
    doc = json.loads((iris_bundle / "model.json").read_text())

    assert set(doc) >= AGREED_KEYS
    assert doc["format_version"] == 1
    assert doc["input"] == {"name": "input", "dtype": "float32", "shape": [None, 4]}
    assert doc["outputs"][0] == {"name": "label", "dtype": "int64", "shape": [None]}
    assert doc["files"]["model.onnx"]["variant"] == "default"
    assert len(doc["feature_stats"]) == len(doc["feature_names"]) == 4
    assert [s["name"] for s in doc["feature_stats"]] == doc["feature_names"]
    for stats in doc["feature_stats"]:
        assert len(stats["proportions"]) == len(stats["bin_edges"]) + 1
        assert sum(stats["proportions"]) == pytest.approx(1.0)
        assert stats["bin_edges"] == sorted(stats["bin_edges"])


def test_schema_required_keys_are_present_and_a_model_path_finds_its_bundle(
    iris_bundle: Path,
) -> None:
    schema = json.loads(bundle.SCHEMA_PATH.read_text())
    doc = json.loads((iris_bundle / "model.json").read_text())

    assert set(schema["required"]) <= set(doc)
    assert (
        bundle.read_bundle(iris_bundle / "model.onnx").name == "iris"
    )  # a model path finds its bundle


def test_feature_stats_bins_hold_the_training_proportions() -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=1000), rng.integers(0, 3, size=1000), np.full(1000, 7.0)])

    stats = data.feature_stats(X, ["normal", "three", "constant"])

    normal, three, constant = stats
    assert len(normal.bin_edges) == 9
    assert normal.proportions == pytest.approx([0.1] * 10, abs=0.002)
    bins = np.bincount(
        np.searchsorted(three.bin_edges, X[:, 1], side="right"), minlength=len(three.proportions)
    )
    assert three.proportions == pytest.approx(list(bins / 1000))
    assert min(three.proportions) > 0  # no bin is empty by construction
    assert constant.bin_edges == [] and constant.proportions == [1.0]
    assert constant.std == 0.0 and constant.min == constant.max == 7.0


def test_a_manifest_with_nan_is_not_written(iris_bundle: Path, tmp_path: Path) -> None:
    # Strict JSON readers (orjson in the serving runtime, Go) reject NaN: no such model.json.
    doc = bundle.read_bundle(iris_bundle)
    broken = doc.model_copy(
        update={"metrics": bundle.RegressionMetrics(rows=3, r2=float("nan"), mae=1.0, rmse=1.0)}
    )

    with pytest.raises(OnnxopsError, match="NaN or infinity"):
        bundle.write_manifest(tmp_path, broken)

    assert not (tmp_path / "model.json").exists()
