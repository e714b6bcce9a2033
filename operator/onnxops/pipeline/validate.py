"""Validation: metrics on the held-out rows, and quality gates a CI or GitOps step can use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from onnxops.errors import UserInputError
from onnxops.pipeline.bundle import (
    ClassificationMetrics,
    ClassMetrics,
    Metrics,
    RegressionMetrics,
    Task,
)
from onnxops.pipeline.train import TrainRun

REPORT = "validation.json"


def evaluate(
    task: Task, y_true: np.ndarray, y_pred: np.ndarray, classes: list | None = None
) -> Metrics:
    """Classification: accuracy, macro and per-class P/R/F1, confusion matrix; regression: R², MAE, RMSE."""
    if task == "regression":
        y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
        return RegressionMetrics(
            rows=len(y_true),
            r2=float(skm.r2_score(y_true, y_pred)),
            mae=float(skm.mean_absolute_error(y_true, y_pred)),
            rmse=float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        )
    labels = list(classes) if classes is not None else sorted(set(y_true) | set(y_pred))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return ClassificationMetrics(
        rows=len(y_true),
        accuracy=float(skm.accuracy_score(y_true, y_pred)),
        precision_macro=float(np.mean(p)),
        recall_macro=float(np.mean(r)),
        f1_macro=float(np.mean(f)),
        per_class=[
            ClassMetrics(
                label=label, precision=float(pi), recall=float(ri), f1=float(fi), support=int(si)
            )
            for label, pi, ri, fi, si in zip(labels, p, r, f, s, strict=True)
        ],
        confusion_matrix=skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    )


def headline(metrics: Metrics) -> tuple[str, float]:
    """The one number optimization budgets are measured in."""
    if isinstance(metrics, ClassificationMetrics):
        return "accuracy", metrics.accuracy
    return "r2", metrics.r2


@dataclass(frozen=True)
class Gates:
    min_accuracy: float | None = None
    min_f1: float | None = None
    min_r2: float | None = None
    max_rmse: float | None = None


def _checks(gates: Gates) -> list[tuple[str, float | None, str, Task]]:
    return [
        ("min-accuracy", gates.min_accuracy, "accuracy", "classification"),
        ("min-f1", gates.min_f1, "f1_macro", "classification"),
        ("min-r2", gates.min_r2, "r2", "regression"),
        ("max-rmse", gates.max_rmse, "rmse", "regression"),
    ]


def check_gates_fit(task: Task, gates: Gates) -> None:
    """Raise when a gate was given for the other task (before any work is done)."""
    for flag, limit, _, gate_task in _checks(gates):
        if limit is not None and gate_task != task:
            raise UserInputError(f"--{flag} applies to {gate_task} models only")


def gate_failures(metrics: Metrics, gates: Gates) -> list[str]:
    """One phrase per missed gate, naming the metric and the miss; empty when all pass."""
    check_gates_fit(metrics.kind, gates)
    missed = []
    for flag, limit, field, _ in _checks(gates):
        if limit is None:
            continue
        value = float(getattr(metrics, field))
        if flag.startswith("min") and value < limit:
            missed.append(f"{field} {value:.4f} < {limit} (short by {limit - value:.4f})")
        if flag.startswith("max") and value > limit:
            missed.append(f"{field} {value:.4f} > {limit} (over by {value - limit:.4f})")
    return missed


def validate(run: TrainRun) -> Metrics:
    """Metrics of the fitted estimator on the held-out rows."""
    y_pred = run.estimator.predict(run.split.X_test)
    return evaluate(run.record.task, run.split.y_test, y_pred, run.record.classes)


def save(metrics: Metrics, work: Path) -> None:
    (work / REPORT).write_text(metrics.model_dump_json(indent=2) + "\n", encoding="utf-8")
