"""The algorithms onnxops trains, which task each serves, and their default settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from onnxops.errors import UserInputError
from onnxops.pipeline.bundle import Task

TASKS: tuple[Task, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Algorithm:
    name: str
    tasks: tuple[Task, ...]
    scaled: bool  # wants standardized inputs (a StandardScaler step in front)
    weights: bool  # has weight matrices, so MatMul quantization and pruning can apply


ALGORITHMS = {
    a.name: a
    for a in (
        Algorithm("linear_regression", ("regression",), scaled=False, weights=True),
        Algorithm("logistic_regression", ("classification",), scaled=True, weights=True),
        Algorithm("svm", TASKS, scaled=True, weights=False),
        Algorithm("random_forest", TASKS, scaled=False, weights=False),
        Algorithm("mlp", TASKS, scaled=True, weights=True),
    )
}
# Task-specific names people also type.
ALIASES: dict[str, tuple[str, Task]] = {
    "svc": ("svm", "classification"),
    "svr": ("svm", "regression"),
    "random_forest_classifier": ("random_forest", "classification"),
    "random_forest_regressor": ("random_forest", "regression"),
    "mlp_classifier": ("mlp", "classification"),
    "mlp_regressor": ("mlp", "regression"),
}
CHOICES = sorted([*ALGORITHMS, *ALIASES])


def resolve(name: str, task: Task | None) -> tuple[Algorithm, Task | None]:
    """Canonical algorithm and the task it pins (None: either task, decided by the data)."""
    pinned: Task | None = None
    if name in ALIASES:
        name, pinned = ALIASES[name]
    if name not in ALGORITHMS:
        raise UserInputError(f"unknown algorithm {name!r} (known: {', '.join(CHOICES)})")
    algo = ALGORITHMS[name]
    if len(algo.tasks) == 1:
        pinned = algo.tasks[0]
    if task and pinned and task != pinned:
        raise UserInputError(f"{name} does {pinned}, not {task}")
    return algo, task or pinned


def _final(algo: Algorithm, task: Task, seed: int) -> BaseEstimator:
    classify = task == "classification"
    if algo.name == "linear_regression":
        return LinearRegression()
    if algo.name == "logistic_regression":
        return LogisticRegression(max_iter=2000)
    if algo.name == "svm":
        # probability=True so the ONNX graph has a probabilities output like the others.
        return SVC(probability=True, random_state=seed) if classify else SVR(C=100.0, epsilon=1.0)
    if algo.name == "random_forest":
        forest = RandomForestClassifier if classify else RandomForestRegressor
        return forest(n_estimators=50, random_state=seed, n_jobs=1)
    mlp = MLPClassifier if classify else MLPRegressor
    return mlp(
        hidden_layer_sizes=(64,),
        max_iter=1000,
        random_state=seed,
        learning_rate_init=0.01 if not classify else 0.001,
    )


def make_estimator(algo: Algorithm, task: Task, seed: int, params: dict[str, Any]) -> BaseEstimator:
    """A fresh estimator; `params` override the final step's settings."""
    final = _final(algo, task, seed)
    if params:
        try:
            final.set_params(**params)
        except ValueError as exc:
            raise UserInputError(f"bad --param for {type(final).__name__}: {exc}") from None
    return Pipeline([("scale", StandardScaler()), ("model", final)]) if algo.scaled else final


def final_step(estimator: BaseEstimator) -> BaseEstimator:
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def parse_params(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are JSON where they parse ("64,32" is a tuple of ints)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--param wants KEY=VALUE, got {item!r}")
        value: Any
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            parts = text.split(",")
            value = (
                tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else text
            )
        params[key] = tuple(value) if isinstance(value, list) else value
    return params


def jsonable_params(estimator: BaseEstimator) -> dict[str, Any]:
    """The final step's settings, as JSON can hold them."""
    out: dict[str, Any] = {}
    for key, value in final_step(estimator).get_params(deep=False).items():
        if isinstance(value, tuple):
            value = list(value)
        if value is None or isinstance(value, (bool, int, float, str, list)):
            out[key] = value
    return out
