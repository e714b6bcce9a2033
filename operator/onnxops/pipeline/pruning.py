"""Pruning: zero the smallest weights (magnitude), or remove what carries the least information.

Magnitude pruning works on the ONNX graph's MatMul/Gemm weight matrices. Information-based
pruning works on the fitted scikit-learn model and is re-exported afterwards:
- MLP: hidden neurons whose activation varies least over the training rows are removed, and
  their mean activation is folded into the next layer's bias (the model gets smaller);
- random forest: the trees with the worst out-of-bag score are dropped;
- linear models: the input features with the least mutual information with the target lose
  their coefficients (their mean contribution is folded into the intercept).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import numpy_helper
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline

from onnxops.pipeline.algorithms import final_step

WEIGHT_OPS = {"MatMul": 1, "Gemm": 1}  # op -> index of the weight input


def weight_names(model: onnx.ModelProto) -> set[str]:
    """Initializers used as 2-D float weight matrices of MatMul/Gemm."""
    inits = {t.name: t for t in model.graph.initializer}
    names = set()
    for node in model.graph.node:
        idx = WEIGHT_OPS.get(node.op_type)
        if idx is None or len(node.input) <= idx:
            continue
        t = inits.get(node.input[idx])
        if t is not None and t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2:
            names.add(t.name)
    return names


def sparsity(model: onnx.ModelProto) -> float | None:
    """Share of exact zeros among the weight matrices; None when there are none."""
    names = weight_names(model)
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name in names]
    total = sum(a.size for a in arrays)
    return sum(int((a == 0).sum()) for a in arrays) / total if total else None


def magnitude_prune(model: onnx.ModelProto, target: float) -> onnx.ModelProto:
    """Zero the `target` share of smallest-|w| entries in each weight matrix."""
    pruned = copy.deepcopy(model)
    names = weight_names(pruned)
    for i, t in enumerate(pruned.graph.initializer):
        if t.name not in names:
            continue
        w = numpy_helper.to_array(t).copy()
        k = round(target * w.size)
        if k == 0:
            continue
        # argsort, not a threshold, so ties cannot push the share past the target.
        order = np.argsort(np.abs(w), axis=None, kind="stable")[:k]
        w.flat[order] = 0.0
        pruned.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, t.name))
    return pruned


def _activate(z: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def _inputs(estimator: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """The rows as the final step sees them (after the scaler, if any)."""
    if isinstance(estimator, Pipeline):
        return np.asarray(estimator[:-1].transform(X))
    return X


def _prune_mlp(mlp: MLPClassifier | MLPRegressor, X: np.ndarray, fraction: float) -> None:
    coefs, biases = mlp.coefs_, mlp.intercepts_
    a = X
    sizes = []
    for i in range(len(coefs) - 1):  # hidden layers only; the output layer keeps its width
        h = _activate(a @ coefs[i] + biases[i], mlp.activation)
        width = h.shape[1]
        n_drop = min(int(fraction * width), width - 1)
        order = np.argsort(h.var(axis=0), kind="stable")
        drop, keep = np.sort(order[:n_drop]), np.sort(order[n_drop:])
        # A dropped neuron is replaced by its mean output, which the next layer adds as bias.
        biases[i + 1] = biases[i + 1] + h[:, drop].mean(axis=0) @ coefs[i + 1][drop, :]
        coefs[i] = coefs[i][:, keep]
        biases[i] = biases[i][keep]
        coefs[i + 1] = coefs[i + 1][keep, :]
        a = h[:, keep]
        sizes.append(len(keep))
    mlp.hidden_layer_sizes = tuple(sizes)


def _prune_forest(
    forest: RandomForestClassifier | RandomForestRegressor,
    X: np.ndarray,
    y: np.ndarray,
    fraction: float,
) -> None:
    classify = isinstance(forest, RandomForestClassifier)
    target = np.searchsorted(forest.classes_, y) if classify else y
    scores = []
    for tree, rows in zip(forest.estimators_, forest.estimators_samples_, strict=True):
        oob = np.ones(len(X), dtype=bool)
        oob[rows] = False
        if not oob.any():
            scores.append(-np.inf)
            continue
        pred = tree.predict(X[oob].astype(np.float32))
        score = np.mean(pred == target[oob]) if classify else -np.mean((pred - target[oob]) ** 2)
        scores.append(float(score))
    n_keep = max(1, len(scores) - int(fraction * len(scores)))
    best = sorted(np.argsort(scores, kind="stable")[::-1][:n_keep])
    forest.estimators_ = [forest.estimators_[i] for i in best]
    forest.n_estimators = len(best)


def _prune_linear(
    model: LinearRegression | LogisticRegression,
    X: np.ndarray,
    y: np.ndarray,
    fraction: float,
    seed: int,
) -> None:
    info = (
        mutual_info_classif if isinstance(model, LogisticRegression) else mutual_info_regression
    )(X, y, random_state=seed)
    n_drop = min(int(fraction * X.shape[1]), X.shape[1] - 1)
    drop = np.argsort(info, kind="stable")[:n_drop]
    coef = np.atleast_2d(model.coef_).copy()
    model.intercept_ = model.intercept_ + coef[:, drop] @ X[:, drop].mean(axis=0)
    coef[:, drop] = 0.0
    model.coef_ = coef.reshape(np.shape(model.coef_))


def info_prune(
    estimator: BaseEstimator, X: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> BaseEstimator | None:
    """A pruned copy of `estimator`, or None when no information-based pruning applies."""
    pruned = copy.deepcopy(estimator)
    final = final_step(pruned)
    rows = _inputs(pruned, X)
    if isinstance(final, (MLPClassifier, MLPRegressor)):
        _prune_mlp(final, rows, fraction)
    elif isinstance(final, (RandomForestClassifier, RandomForestRegressor)):
        _prune_forest(final, rows, y, fraction)
    elif isinstance(final, (LinearRegression, LogisticRegression)):
        _prune_linear(final, rows, y, fraction, seed)
    else:
        return None
    return pruned
