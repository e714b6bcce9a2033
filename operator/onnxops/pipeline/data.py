"""Training data: scikit-learn's built-in data sets or a numeric CSV, checked, split, described.

Every problem a user can cause (missing file, missing target column, text in a feature column,
missing values, one class, too few rows) is a `UserInputError` with one clear line.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

from onnxops.errors import UserInputError
from onnxops.pipeline.bundle import DataInfo, FeatureStats, Task

# name -> (loader, task); all ship inside scikit-learn, no download needed.
BUILTIN: dict[str, tuple[Callable[..., Any], Task]] = {
    "iris": (datasets.load_iris, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "digits": (datasets.load_digits, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}
# An integer target with at most this many distinct values reads as class labels.
MAX_AUTO_CLASSES = 20
DRIFT_BINS = 10
F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Dataset:
    X: np.ndarray  # float64, rows x features
    y: np.ndarray  # numeric, or str for text labels
    feature_names: list[str]
    target: str
    source: str
    task_hint: Task | None  # known for built-in data sets; inferred for CSV later


@dataclass
class Split:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    info: DataInfo


def load_builtin(name: str) -> Dataset:
    if name not in BUILTIN:
        known = ", ".join(sorted(BUILTIN))
        raise UserInputError(f"unknown data set {name!r} (known: {known})")
    loader, task = BUILTIN[name]
    bunch = loader()
    names = [str(n) for n in getattr(bunch, "feature_names", [])]
    if len(names) != bunch.data.shape[1]:  # digits names pixels loosely; keep them unique
        names = [f"pixel_{i}" for i in range(bunch.data.shape[1])]
    return Dataset(
        X=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target),
        feature_names=names,
        target="target",
        source=f"sklearn:{name}",
        task_hint=task,
    )


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_csv(path: Path, target: str) -> Dataset:
    """Read a CSV with a header row; every column but the target must be numeric."""
    if not path.exists():
        raise UserInputError(f"no such file: {path}")
    if not path.is_file():
        raise UserInputError(f"not a file: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise UserInputError(f"cannot read {path} as CSV: {exc}") from None
    if not rows:
        raise UserInputError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if target not in header:
        other = next((d for d in (";", "\t", "|") if len(header) == 1 and d in header[0]), None)
        hint = f"; the file is read as comma-separated, not {other!r}-separated" if other else ""
        raise UserInputError(
            f"target column {target!r} is not in {path} (columns: {', '.join(header)}){hint}"
        )
    if len(set(header)) != len(header):
        raise UserInputError(f"{path} has duplicate column names")
    if not body:
        raise UserInputError(f"{path} has a header but no data rows")
    for lineno, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise UserInputError(
                f"{path}: a row has {len(row)} fields, the header has {len(header)} (row {lineno})"
            )
    t = header.index(target)
    features = [i for i in range(len(header)) if i != t]
    if not features:
        raise UserInputError(f"{path} has no feature columns besides {target!r}")
    columns = {
        i: [_as_float(r[i].strip()) if r[i].strip() else math.nan for r in body] for i in features
    }
    text_cols = [header[i] for i, col in columns.items() if any(v is None for v in col)]
    if text_cols:
        raise UserInputError(
            "non-numeric feature column(s): "
            + ", ".join(repr(c) for c in text_cols[:5])
            + " (encode them as numbers first)"
        )
    X = np.array([columns[i] for i in features], dtype=np.float64).T
    raw_y = [r[t].strip() for r in body]
    if any(not v for v in raw_y):
        raise UserInputError(f"target column {target!r} has empty cells")
    numbers = [_as_float(v) for v in raw_y]
    y: np.ndarray = (
        np.array(raw_y) if any(v is None for v in numbers) else np.array(numbers, dtype=np.float64)
    )
    return Dataset(X, y, [header[i] for i in features], target, str(path), None)


def check_features(ds: Dataset) -> None:
    if ds.X.shape[0] == 0:
        raise UserInputError("the data set is empty")
    bad = [ds.feature_names[j] for j in range(ds.X.shape[1]) if not np.isfinite(ds.X[:, j]).all()]
    if bad:
        raise UserInputError(
            f"missing or infinite values in column(s): {', '.join(map(repr, bad[:5]))}"
        )
    # The ONNX model takes float32: a larger value would reach it as infinity.
    huge = [ds.feature_names[j] for j in range(ds.X.shape[1]) if np.abs(ds.X[:, j]).max() > F32_MAX]
    if huge:
        raise UserInputError(
            f"values beyond the float32 range (|x| > {F32_MAX:.3g}) in column(s): "
            f"{', '.join(map(repr, huge[:5]))}; the ONNX model takes float32 (rescale them)"
        )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value a person expects to read (1, not np.int64(1))."""
    return value.item() if isinstance(value, np.generic) else value


def is_discrete(y: np.ndarray) -> bool:
    """Text labels, or whole numbers with few distinct values."""
    if y.dtype.kind in "USO":
        return True
    whole = bool(np.all(np.mod(y, 1) == 0))
    return whole and len(np.unique(y)) <= MAX_AUTO_CLASSES


def labels_for(task: Task, y: np.ndarray) -> np.ndarray:
    """Class labels as int64 or str; regression targets as float64."""
    if task == "regression":
        if y.dtype.kind in "USO":
            raise UserInputError("the target is text; regression needs a numeric target")
        y = y.astype(np.float64)
        _check_numeric_target(y)
        if np.abs(y).max() > F32_MAX:
            raise UserInputError(
                f"target values beyond the float32 range (|y| > {F32_MAX:.3g}); "
                "the ONNX model computes in float32 (rescale the target)"
            )
        return y
    if y.dtype.kind in "USO":
        return y.astype(str)
    _check_numeric_target(y)
    if not np.all(np.mod(y, 1) == 0):
        distinct = len(np.unique(y))
        raise UserInputError(
            f"classification needs class labels, but the target is continuous "
            f"({distinct} distinct values, not whole numbers); use a regression algorithm"
        )
    if np.abs(y).max() >= 2.0**63:  # would wrap around to a wrong label in int64
        raise UserInputError("class labels beyond the int64 range; use smaller numbers or text")
    return y.astype(np.int64)


def _check_numeric_target(y: np.ndarray) -> None:
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise UserInputError(f"the target has missing (NaN) or infinite values in {bad} row(s)")


def split(ds: Dataset, task: Task, y: np.ndarray, *, test_size: float, seed: int) -> Split:
    """Fixed-seed split, stratified for classification."""
    if not 0.0 < test_size < 1.0:
        raise UserInputError(f"--test-size must be between 0 and 1, got {test_size}")
    n = len(y)
    stratify = None
    if task == "classification":
        values, counts = np.unique(y, return_counts=True)
        if len(values) < 2:
            raise UserInputError(
                f"the target has one class only ({_plain(values[0])!r}); classification needs two or more"
            )
        if counts.min() < 2:
            lonely = _plain(values[counts.argmin()])
            raise UserInputError(f"class {lonely!r} has only 1 row; every class needs at least 2")
        stratify = y
    elif n < 5:
        raise UserInputError(f"too few rows to split ({n}); regression needs at least 5")
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            ds.X, y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:  # e.g. fewer test rows than classes
        raise UserInputError(f"cannot split {n} rows with --test-size {test_size}: {exc}") from None
    info = DataInfo(
        source=ds.source,
        target=ds.target,
        rows=n,
        train_rows=len(y_train),
        test_rows=len(y_test),
        test_size=test_size,
        seed=seed,
        stratified=stratify is not None,
    )
    return Split(X_train, X_test, y_train, y_test, info)


def feature_stats(X: np.ndarray, names: list[str], bins: int = DRIFT_BINS) -> list[FeatureStats]:
    """Per-feature mean/std/range and quantile bins of the training rows, for PSI later."""
    stats = []
    for j, name in enumerate(names):
        col = X[:, j]
        quantiles = np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1])
        edges = np.unique(quantiles)  # discrete features repeat cut points
        edges = edges[edges > col.min()]  # a cut at the minimum would leave an empty first bin
        counts = np.bincount(np.searchsorted(edges, col, side="right"), minlength=len(edges) + 1)
        stats.append(
            FeatureStats(
                name=name,
                mean=float(col.mean()),
                std=float(col.std()),
                min=float(col.min()),
                max=float(col.max()),
                bin_edges=[float(e) for e in edges],
                proportions=[float(c) / len(col) for c in counts],
            )
        )
    return stats
