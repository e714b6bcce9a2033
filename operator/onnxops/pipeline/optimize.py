"""Optimization: smaller or faster variants of a bundle's model, each re-validated.

A variant is kept only if its headline metric (accuracy or R²) on the validation rows is no
more than `max_metric_drop` below the default model's. Techniques that cannot apply to a
model say so, with the reason, instead of producing a copy that changed nothing.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from onnxops.errors import OnnxopsError, UserInputError
from onnxops.pipeline import export, pruning, validate
from onnxops.pipeline.bundle import (
    DEFAULT_FILE,
    MANIFEST,
    ModelBundle,
    VariantReport,
    file_entry,
    read_bundle,
    verify_files,
    write_manifest,
)
from onnxops.pipeline.staging import staged_dir
from onnxops.pipeline.techniques import (
    NotApplicable,
    fp16,
    graph_optimized,
    int8_dynamic,
    int8_static,
    magnitude,
)
from onnxops.pipeline.train import TrainRun

DESCRIPTIONS = {
    "optimized": "offline graph optimization (onnxruntime, basic level)",
    "int8": "dynamic int8 quantization of MatMul/Gemm weights",
    "int8-static": "static int8 quantization (QDQ, MinMax calibration on training rows)",
    "fp16": "float16 weights and compute, float32 inputs/outputs",
    "pruned": "magnitude pruning to {sparsity:.0%} sparsity (zeros compress; gzip size compared)",
    "info-pruned": "information-based pruning",
}
TECHNIQUES = tuple(DESCRIPTIONS)
INFO_FRACTIONS = (0.5, 0.25, 0.125)  # tried largest first; the first within budget is kept
Progress = Callable[[str], None]
SizeKey = Literal["bytes", "gzip_bytes"]


def latency_us(model: bytes, row: np.ndarray, runs: int = 200) -> float:
    sess = export.session(model)
    feed = {sess.get_inputs()[0].name: row}
    for _ in range(20):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


class Optimizer:
    """Builds, measures and judges variants against the default model of one bundle."""

    def __init__(
        self, run: TrainRun, base: onnx.ModelProto, *, max_metric_drop: float, measure_latency: bool
    ) -> None:
        self.run = run
        self.max_drop = max_metric_drop
        self.measure_latency = measure_latency
        self.X = run.split.X_test.astype(np.float32)
        self.base_pred, _ = export.predict(export.session(base), self.X)
        self.metric, self.base_value = self.score(base)
        self.default: VariantReport | None = None  # set once the default model is measured

    def score(self, model: onnx.ModelProto | bytes) -> tuple[str, float]:
        pred, _ = export.predict(export.session(model), self.X)
        r = self.run.record
        return validate.headline(validate.evaluate(r.task, self.run.split.y_test, pred, r.classes))

    def judge(
        self, name: str, technique: str, model: onnx.ModelProto, smaller: SizeKey | None = None
    ) -> tuple[VariantReport, bytes]:
        payload = model.SerializeToString()
        report = VariantReport(
            name=name,
            technique=technique,
            status="kept",
            file=DEFAULT_FILE if name == "default" else f"model.{name}.onnx",
            metric=self.metric,
            bytes=len(payload),
            gzip_bytes=len(gzip.compress(payload, 9)),
            sparsity=pruning.sparsity(model),
        )
        try:
            pred, _ = export.predict(export.session(payload), self.X)
            _, value = self.score(payload)
        except (
            Exception
        ) as exc:  # a variant onnxruntime cannot load or run is a result, not a crash
            return report.model_copy(
                update={
                    "status": "failed",
                    "reason": f"onnxruntime: {exc}".splitlines()[0],
                    "file": None,
                }
            ), b""
        report.value = value
        report.drop = self.base_value - value
        if self.run.record.task == "classification":
            report.label_agreement = float(np.mean(pred == self.base_pred))
        if self.measure_latency:
            report.latency_us = latency_us(payload, self.X[:1])
        if report.drop > self.max_drop + 1e-12:
            report.status, report.file = "rejected", None
            report.reason = (
                f"{self.metric} drops {report.drop:.4f} > --max-metric-drop {self.max_drop}"
            )
        elif (
            smaller
            and self.default is not None
            and getattr(report, smaller) >= getattr(self.default, smaller)
        ):
            # A compression technique that does not compress is not worth shipping.
            report.status, report.file = "rejected", None
            size = "size" if smaller == "bytes" else "gzip size"
            report.reason = f"{size} {getattr(report, smaller)} B is not below the default model's {getattr(self.default, smaller)} B"
        return report, payload

    def info_pruned(self) -> tuple[VariantReport, bytes]:
        technique = DESCRIPTIONS["info-pruned"]
        s = self.run.split
        last: tuple[VariantReport, bytes] | None = None
        for fraction in INFO_FRACTIONS:
            est = pruning.info_prune(
                self.run.estimator, s.X_train, s.y_train, fraction, self.run.record.data.seed
            )
            if est is None:
                raise NotApplicable(f"no information-based pruning for {self.run.record.estimator}")
            form: export.Form = "standard" if pruning_form_standard(self.run) else "ml"
            pruned_run = dataclasses.replace(self.run, estimator=est)
            model, _ = export.checked_model(pruned_run, form, tolerance=1e-4, min_agreement=1.0)
            last = self.judge(
                "info-pruned", f"{technique}: {describe(self.run, fraction)}", model, "gzip_bytes"
            )
            if last[0].status == "kept":
                return last
        assert last is not None
        return last


def pruning_form_standard(run: TrainRun) -> bool:
    return run.record.algorithm in {"mlp", "linear_regression", "logistic_regression"}


def describe(run: TrainRun, fraction: float) -> str:
    what = {"mlp": "hidden neurons", "random_forest": "trees"}.get(
        run.record.algorithm, "input features"
    )
    return f"removed {fraction:.1%} of {what} with the least information"


def optimize(
    run: TrainRun,
    bundle_dir: Path,
    *,
    max_metric_drop: float = 0.01,
    target_sparsity: float = 0.5,
    techniques: tuple[str, ...] = TECHNIQUES,
    measure_latency: bool = True,
    progress: Progress = lambda _: None,
) -> ModelBundle:
    """Add the variants that stay within budget to the bundle, and report on every technique."""
    if not 0.0 < target_sparsity < 1.0:
        raise UserInputError(f"--sparsity must be between 0 and 1, got {target_sparsity}")
    bundle = read_bundle(bundle_dir)
    if bundle.feature_names != run.record.feature_names or bundle.task != run.record.task:
        raise UserInputError(f"bundle {bundle_dir} was not exported from this work dir")
    # Variants are derived from model.onnx: it must be the file model.json describes.
    # (Variant files are replaced below, so only model.onnx has to be intact.)
    problems = [p for p in verify_files(bundle_dir, bundle) if p.startswith(f"{DEFAULT_FILE}:")]
    if problems:
        raise UserInputError(
            f"bundle {bundle_dir} does not match its {MANIFEST}: {'; '.join(problems)}"
        )
    try:
        base = onnx.load(str(bundle_dir / DEFAULT_FILE))
    except (OSError, DecodeError) as exc:
        raise UserInputError(f"cannot read {bundle_dir / DEFAULT_FILE}: {exc}") from None
    opt = Optimizer(run, base, max_metric_drop=max_metric_drop, measure_latency=measure_latency)
    default_report, _ = opt.judge(
        "default", f"export ({bundle.hyperparameters.get('onnx_form', 'ml')} form)", base
    )
    opt.default = default_report
    reports = [default_report]
    payloads: dict[str, bytes] = {}
    work_base = base
    if pruning_form_standard(run) and any(
        n.op_type in export.STANDARD_FORM_BLOCKLIST for n in base.graph.node
    ):
        progress("re-exporting in standard-operator form (MatMul) so quantization can apply")
        work_base, _ = export.checked_model(run, "standard", tolerance=1e-4, min_agreement=1.0)
    with tempfile.TemporaryDirectory(prefix="onnxops-opt-") as tmp_name, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = Path(tmp_name)
        builders: dict[str, tuple[Callable[[], onnx.ModelProto], SizeKey | None]] = {
            "optimized": (lambda: graph_optimized(work_base, tmp), None),
            "int8": (lambda: int8_dynamic(work_base, tmp), "bytes"),
            "int8-static": (lambda: int8_static(work_base, tmp, run.split.X_train), "bytes"),
            "fp16": (lambda: fp16(work_base), "bytes"),
            "pruned": (lambda: magnitude(work_base, target_sparsity), "gzip_bytes"),
        }
        # onnxruntime.quantization logs advice on the root logger; the report says what matters.
        logging.disable(logging.WARNING)
        try:
            for name in techniques:
                progress(f"variant {name}")
                report, payload = _attempt(opt, name, builders.get(name), target_sparsity)
                reports.append(report)
                if report.status == "kept":
                    payloads[name] = payload
        finally:
            logging.disable(logging.NOTSET)
    return _write(bundle_dir, bundle, reports, payloads)


def _attempt(
    opt: Optimizer,
    name: str,
    builder: tuple[Callable[[], onnx.ModelProto], SizeKey | None] | None,
    target_sparsity: float,
) -> tuple[VariantReport, bytes]:
    technique = DESCRIPTIONS[name].format(sparsity=target_sparsity)
    status: Literal["not_applicable", "failed"]
    try:
        if builder is None:
            return opt.info_pruned()
        build, smaller = builder
        return opt.judge(name, technique, build(), smaller)
    except NotApplicable as exc:
        status, reason = "not_applicable", str(exc)
    except (OnnxopsError, RuntimeError, ValueError) as exc:
        status, reason = "failed", str(exc).splitlines()[0]
    return VariantReport(name=name, technique=technique, status=status, reason=reason), b""


def _write(
    bundle_dir: Path, bundle: ModelBundle, reports: list[VariantReport], payloads: dict[str, bytes]
) -> ModelBundle:
    with staged_dir(bundle_dir, MANIFEST, copy_existing=True) as stage:
        files = {}
        for fname, entry in bundle.files.items():
            if entry.variant == "default":
                files[fname] = entry
            else:  # variants of an earlier run are replaced, not mixed with these
                (stage / fname).unlink(missing_ok=True)
        for r in reports:
            if r.name in payloads and r.file:
                (stage / r.file).write_bytes(payloads[r.name])
                files[r.file] = file_entry(stage / r.file, r.name)
        updated = bundle.model_copy(update={"files": files, "variants": reports})
        write_manifest(stage, updated)
    return updated
