"""Optimization: variants are smaller, re-validated, and honest about what does not apply."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxops.pipeline import data, export, optimize, pruning, train, validate
from onnxops.pipeline.bundle import read_bundle, verify_files


def _bundle(
    tmp_path: Path, dataset: str, algorithm: str, params: dict, form: str = "ml"
) -> tuple[train.TrainRun, Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train.train(data.load_builtin(dataset), algorithm, params=params)
    out = tmp_path / "bundle"
    export.export(run, out, validate.validate(run), form=form)  # type: ignore[arg-type]
    return run, out


@pytest.fixture(scope="module")
def mlp_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("mlp")
    run, out = _bundle(tmp, "breast_cancer", "mlp", {"hidden_layer_sizes": (32,), "max_iter": 300})
    result = optimize.optimize(run, out, measure_latency=False)
    return out, {v.name: v for v in result.variants}


def test_mlp_gets_a_smaller_int8_variant_within_budget(mlp_bundle: tuple[Path, dict]) -> None:
    out, variants = mlp_bundle
    default, int8 = variants["default"], variants["int8"]

    assert int8.status == "kept"
    assert int8.bytes < default.bytes
    assert int8.drop <= 0.01
    assert (out / "model.int8.onnx").is_file()
    ops = {n.op_type for n in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"}


def test_every_variant_is_reported_and_kept_ones_are_in_the_bundle(
    mlp_bundle: tuple[Path, dict],
) -> None:
    out, variants = mlp_bundle
    bundle = read_bundle(out)

    assert set(variants) == {"default", *optimize.TECHNIQUES}
    kept = {v.file for v in bundle.variants if v.status == "kept"}
    assert kept == set(bundle.files)
    assert verify_files(out, bundle) == []
    for v in bundle.variants:
        if v.status == "kept":
            assert v.drop is not None and v.drop <= 0.01
        else:
            assert v.reason  # a rejection always says why
            assert not (out / f"model.{v.name}.onnx").exists()


def test_magnitude_pruning_reaches_the_target_sparsity(mlp_bundle: tuple[Path, dict]) -> None:
    _, variants = mlp_bundle
    pruned = variants["pruned"]

    assert pruned.sparsity == pytest.approx(0.5, abs=0.01)
    assert pruned.gzip_bytes < variants["default"].gzip_bytes


def test_trees_and_svms_report_not_applicable_for_weight_techniques(tmp_path: Path) -> None:
    run, out = _bundle(tmp_path, "iris", "svm", {})

    result = optimize.optimize(
        run, out, techniques=("int8", "fp16", "pruned", "info-pruned"), measure_latency=False
    )

    status = {v.name: (v.status, v.reason) for v in result.variants}
    for name in ("int8", "fp16", "pruned"):
        assert status[name][0] == "not_applicable"
        assert "SVMClassifier" in status[name][1]
    assert status["info-pruned"][0] == "not_applicable"
    assert set(read_bundle(out).files) == {"model.onnx"}


def test_a_zero_budget_rejects_lossy_variants(tmp_path: Path) -> None:
    run, out = _bundle(tmp_path, "diabetes", "mlp", {"hidden_layer_sizes": (16,), "max_iter": 200})

    result = optimize.optimize(
        run, out, max_metric_drop=-1.0, techniques=("int8",), measure_latency=False
    )

    int8 = result.variants[1]
    assert int8.status == "rejected"
    assert "--max-metric-drop" in int8.reason
    assert "model.int8.onnx" not in read_bundle(out).files


def test_linear_model_is_reexported_in_matmul_form_for_quantization(tmp_path: Path) -> None:
    run, out = _bundle(tmp_path, "digits", "logistic_regression", {})

    result = optimize.optimize(run, out, techniques=("int8",), measure_latency=False)

    int8 = result.variants[1]
    assert int8.status != "not_applicable"  # the MatMul form gives quantization something to do
    assert int8.value is not None


def test_forest_information_pruning_drops_trees(tmp_path: Path) -> None:
    run, out = _bundle(tmp_path, "iris", "random_forest", {"n_estimators": 8})

    result = optimize.optimize(run, out, techniques=("info-pruned",), measure_latency=False)

    variant = result.variants[1]
    assert variant.status == "kept", variant.reason
    assert variant.bytes is not None and result.variants[0].bytes is not None
    assert variant.bytes < result.variants[0].bytes
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["files"]["model.info-pruned.onnx"]["variant"] == "info-pruned"


def test_mlp_neuron_pruning_keeps_predictions_close() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train.train(
            data.load_builtin("iris"), "mlp", params={"hidden_layer_sizes": (32,), "max_iter": 500}
        )
    s = run.split

    pruned = pruning.info_prune(run.estimator, s.X_train, s.y_train, 0.25, seed=0)

    assert pruned is not None
    assert pruned[-1].coefs_[0].shape[1] == 24
    assert run.estimator[-1].coefs_[0].shape[1] == 32  # the original is untouched
    agreement = np.mean(pruned.predict(s.X_test) == run.estimator.predict(s.X_test))
    assert agreement >= 0.9


def test_magnitude_prune_zeroes_exactly_the_share_asked() -> None:
    run = train.train(data.load_builtin("wine"), "logistic_regression")
    model = export.convert(run, "standard")

    pruned = pruning.magnitude_prune(model, 0.25)

    assert pruning.sparsity(model) == 0.0
    assert pruning.sparsity(pruned) == pytest.approx(0.25, abs=0.03)
