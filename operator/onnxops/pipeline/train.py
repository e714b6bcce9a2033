"""Training: data + algorithm -> a fitted estimator, saved in a work dir the later steps read.

Work dir layout: `train.json` (what was trained, on what), `model.joblib` (the fitted
scikit-learn estimator), `split.npz` (the fixed train/test rows), and after `validate`,
`validation.json`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from pydantic import BaseModel, ValidationError
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning

from onnxops.errors import UserInputError
from onnxops.pipeline import algorithms, data
from onnxops.pipeline.bundle import DataInfo, FeatureStats, Task
from onnxops.pipeline.staging import staged_dir

RECORD = "train.json"
ESTIMATOR = "model.joblib"
SPLIT = "split.npz"
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "onnxops")


class TrainRecord(BaseModel):
    """`train.json`: what was trained, on which data, with which settings."""

    name: str
    algorithm: str
    estimator: str
    task: Task
    feature_names: list[str]
    target: str
    classes: list[int] | list[str] | None
    data: DataInfo
    feature_stats: list[FeatureStats]
    hyperparameters: dict[str, Any]
    notes: list[str] = []
    libraries: dict[str, str]
    created: str


@dataclass
class TrainRun:
    record: TrainRecord
    estimator: BaseEstimator
    split: data.Split


def libraries() -> dict[str, str]:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def load_data(dataset: str | None, csv: Path | None, target: str | None) -> data.Dataset:
    if bool(dataset) == bool(csv):
        raise UserInputError("give exactly one of --dataset NAME or --csv PATH")
    if csv is not None:
        if not target:
            raise UserInputError("--csv needs --target COLUMN")
        return data.load_csv(csv, target)
    return data.load_builtin(str(dataset))


def decide_task(ds: data.Dataset, algo: algorithms.Algorithm, task: Task | None) -> Task:
    if ds.task_hint and task and task != ds.task_hint:
        raise UserInputError(
            f"{ds.source} is a {ds.task_hint} data set; {algo.name} was asked to do {task}"
        )
    if task:
        return task
    if ds.task_hint:
        return ds.task_hint
    return "classification" if data.is_discrete(ds.y) else "regression"


def plan(ds: data.Dataset, algorithm: str, task: Task | None) -> tuple[algorithms.Algorithm, Task]:
    """The algorithm and the task it will do on this data; raises if they do not fit."""
    algo, pinned = algorithms.resolve(algorithm, task)
    return algo, decide_task(ds, algo, pinned)


def train(
    ds: data.Dataset,
    algorithm: str,
    *,
    task: Task | None = None,
    seed: int = 42,
    test_size: float = 0.2,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainRun:
    """Fit `algorithm` on a fixed-seed split of `ds`."""
    algo, chosen = plan(ds, algorithm, task)
    data.check_features(ds)
    y = data.labels_for(chosen, ds.y)
    parts = data.split(ds, chosen, y, test_size=test_size, seed=seed)
    estimator = algorithms.make_estimator(algo, chosen, seed, params or {})
    info = parts.info
    progress(
        f"training {algo.name} ({chosen}) on {ds.source}: {info.train_rows} train / {info.test_rows} test rows"
    )
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # SVC(probability=True) is deprecated in 1.9
        try:
            estimator.fit(parts.X_train, parts.y_train)
        except ValueError as exc:
            # scikit-learn's messages can run to a paragraph; the first line says what is wrong.
            raise UserInputError(f"training {algo.name} failed: {first_line(exc)}") from None
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append("the optimizer did not fully converge (raise max_iter with --param)")
    classes = None
    if chosen == "classification":
        classes = [c.item() if isinstance(c, np.generic) else c for c in estimator.classes_]
    record = TrainRecord(
        name=name or default_name(ds.source),
        algorithm=algo.name,
        estimator=type(algorithms.final_step(estimator)).__name__,
        task=chosen,
        feature_names=ds.feature_names,
        target=ds.target,
        classes=classes,
        data=parts.info,
        feature_stats=data.feature_stats(parts.X_train, ds.feature_names),
        hyperparameters=algorithms.jsonable_params(estimator),
        notes=notes,
        libraries=libraries(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return TrainRun(record, estimator, parts)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def default_name(source: str) -> str:
    stem = source.removeprefix("sklearn:") if source.startswith("sklearn:") else Path(source).stem
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-._")
    return cleaned or "model"


def save(run: TrainRun, work: Path) -> None:
    """Write the work dir atomically."""
    with staged_dir(work, RECORD) as stage:
        joblib.dump(run.estimator, stage / ESTIMATOR)
        s = run.split
        np.savez(
            stage / SPLIT, X_train=s.X_train, X_test=s.X_test, y_train=s.y_train, y_test=s.y_test
        )
        (stage / RECORD).write_text(run.record.model_dump_json(indent=2) + "\n", encoding="utf-8")


def load(work: Path) -> TrainRun:
    """Read a work dir written by `save` (only trust work dirs you made: joblib is pickle)."""
    if not (work / RECORD).is_file():
        raise UserInputError(
            f"{work} is not a training work dir (no {RECORD}); run `onnxops train` first"
        )
    try:
        record = TrainRecord.model_validate_json((work / RECORD).read_text(encoding="utf-8"))
        estimator = joblib.load(work / ESTIMATOR)
        with np.load(work / SPLIT, allow_pickle=False) as arrays:
            split = data.Split(
                arrays["X_train"],
                arrays["X_test"],
                arrays["y_train"],
                arrays["y_test"],
                record.data,
            )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise UserInputError(
            f"cannot read work dir {work}: {RECORD} invalid at {where}: {first['msg']}"
        ) from None
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise UserInputError(f"cannot read work dir {work}: {first_line(exc)}") from None
    return TrainRun(record, estimator, split)
