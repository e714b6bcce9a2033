"""Export: scikit-learn -> ONNX (float32 in, plain tensors out), checked against scikit-learn.

Two forms: "ml" uses the compact `ai.onnx.ml` operators skl2onnx picks by default; "standard"
spells scalers and linear models as Sub/Div/MatMul/Add so quantization and float16 can work
on them. A model that fails the parity check is never written.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

from onnxops.errors import GateFailed, UserInputError
from onnxops.pipeline.algorithms import final_step
from onnxops.pipeline.bundle import (
    DEFAULT_FILE,
    MANIFEST,
    Metrics,
    ModelBundle,
    Parity,
    TensorSpec,
    file_entry,
    write_manifest,
)
from onnxops.pipeline.staging import staged_dir
from onnxops.pipeline.train import TrainRun

Form = Literal["ml", "standard"]
INPUT_NAME = "input"
# Opsets every onnxruntime since 1.14 runs, so a bundle outlives the exporter's version.
OPSETS = {"": 17, "ai.onnx.ml": 3}
# ai.onnx.ml operators that have a plain-operator spelling in skl2onnx.
STANDARD_FORM_BLOCKLIST = {"Scaler", "LinearClassifier", "LinearRegressor"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.STRING: "string",
}


def convert(run: TrainRun, form: Form = "ml") -> onnx.ModelProto:
    n_features = len(run.record.feature_names)
    options = {"zipmap": False} if run.record.task == "classification" else {}
    try:
        with warnings.catch_warnings():
            # SVC's probA_ is deprecated in scikit-learn 1.9; the converter still reads it.
            warnings.simplefilter("ignore", FutureWarning)
            model = to_onnx(
                run.estimator,
                initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                options={id(final_step(run.estimator)): options} if options else None,
                target_opset=OPSETS,
                black_op=STANDARD_FORM_BLOCKLIST if form == "standard" else None,
            )
    except RuntimeError as exc:
        raise UserInputError(f"cannot convert {run.record.estimator} to ONNX: {exc}") from None
    names = ["label", "probabilities"] if run.record.task == "classification" else ["value"]
    rename_outputs(model, names)
    model.doc_string = (
        f"onnxops {run.record.algorithm} ({run.record.estimator}) on {run.record.data.source}"
    )
    return model


def rename_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Give graph outputs stable names (skl2onnx calls a regressor's output 'variable')."""
    for out, new in zip(model.graph.output, names, strict=False):
        old = out.name
        if old == new:
            continue
        for node in model.graph.node:
            node.output[:] = [new if o == old else o for o in node.output]
            node.input[:] = [new if i == old else i for i in node.input]
        out.name = new


def session(model: onnx.ModelProto | bytes | str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    payload = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(payload, opts, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(prediction, probabilities or None) from an ONNX session, on float32 rows."""
    outs = sess.run(None, {sess.get_inputs()[0].name: np.asarray(X, dtype=np.float32)})
    proba = np.asarray(outs[1], dtype=np.float64) if len(outs) > 1 else None
    return np.asarray(outs[0]).reshape(len(X), -1)[:, 0] if outs[0].ndim > 1 else np.asarray(
        outs[0]
    ), proba


def parity(
    run: TrainRun, sess: ort.InferenceSession, *, tolerance: float, min_agreement: float
) -> Parity:
    """ONNX Runtime vs scikit-learn on the validation rows, both fed the same float32 values."""
    X32 = run.split.X_test.astype(np.float32)
    X = X32.astype(np.float64)  # scikit-learn sees exactly what ONNX sees
    label, proba = predict(sess, X32)
    agreement = None
    if run.record.task == "classification":
        expected = run.estimator.predict(X)
        agreement = float(np.mean(label.astype(expected.dtype) == expected))
        ref = run.estimator.predict_proba(X)
        got = proba if proba is not None else np.zeros_like(ref)
    else:
        ref = np.asarray(run.estimator.predict(X), dtype=np.float64).ravel()
        got = label.astype(np.float64).ravel()
    diff = np.abs(got - ref)
    rel = diff / np.maximum(1.0, np.abs(ref))
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel.max()) if rel.size else 0.0
    checked = max_abs if run.record.task == "classification" else max_rel
    passed = checked <= tolerance and (agreement is None or agreement >= min_agreement)
    return Parity(
        rows=len(X32),
        label_agreement=agreement,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        tolerance=tolerance,
        min_label_agreement=min_agreement,
        passed=passed,
    )


class ParityFailed(GateFailed):
    """The ONNX model does not match scikit-learn closely enough; carries the figures."""

    def __init__(self, message: str, parity: Parity) -> None:
        super().__init__(message)
        self.parity = parity


def parity_failure(p: Parity, task: str) -> str:
    what = "max |Δprob|" if task == "classification" else "max relative |Δ|"
    value = p.max_abs_diff if task == "classification" else p.max_rel_diff
    parts = []
    if p.label_agreement is not None and p.label_agreement < p.min_label_agreement:
        parts.append(f"label agreement {p.label_agreement:.4f} < {p.min_label_agreement}")
    if value > p.tolerance:
        parts.append(f"{what} {value:.3g} > {p.tolerance:g}")
    return "parity check failed: " + "; ".join(parts) + " (model not written)"


def tensor_specs(values: list[onnx.ValueInfoProto]) -> list[TensorSpec]:
    specs = []
    for v in values:
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        specs.append(
            TensorSpec(name=v.name, dtype=DTYPES.get(t.elem_type, str(t.elem_type)), shape=shape)
        )
    return specs


def checked_model(
    run: TrainRun, form: Form, *, tolerance: float, min_agreement: float
) -> tuple[onnx.ModelProto, Parity]:
    """Convert and run the parity check; raise GateFailed if it misses."""
    model = convert(run, form)
    p = parity(run, session(model), tolerance=tolerance, min_agreement=min_agreement)
    if not p.passed:
        raise ParityFailed(parity_failure(p, run.record.task), p)
    return model, p


def check_name(name: str, what: str = "model name") -> str:
    # Names and versions end up in URLs (/v2/models/NAME/versions/VERSION) and file names.
    if not NAME.fullmatch(name):
        raise UserInputError(
            f"bad {what} {name!r}: use letters, digits, '.', '_' and '-' (a letter or digit first)"
        )
    return name


def export(
    run: TrainRun,
    out: Path,
    metrics: Metrics,
    *,
    form: Form = "ml",
    name: str | None = None,
    version: str = "1",
    tolerance: float = 1e-4,
    min_agreement: float = 1.0,
) -> ModelBundle:
    """Write the bundle dir `out` (model.onnx + model.json) atomically, parity first."""
    bundle_name = check_name(name or run.record.name)
    check_name(version, "--version")
    model, p = checked_model(run, form, tolerance=tolerance, min_agreement=min_agreement)
    r = run.record
    with staged_dir(out, MANIFEST) as stage:
        onnx.save_model(model, str(stage / DEFAULT_FILE))
        bundle = ModelBundle(
            name=bundle_name,
            version=version,
            task=r.task,
            algorithm=r.algorithm,
            estimator=r.estimator,
            input=tensor_specs(list(model.graph.input))[0],
            feature_names=r.feature_names,
            outputs=tensor_specs(list(model.graph.output)),
            classes=r.classes,
            files={DEFAULT_FILE: file_entry(stage / DEFAULT_FILE, "default")},
            feature_stats=r.feature_stats,
            metrics=metrics,
            parity=p,
            data=r.data,
            hyperparameters={**r.hyperparameters, "onnx_form": form},
            notes=r.notes,
            libraries=r.libraries,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_manifest(stage, bundle)
    return bundle
