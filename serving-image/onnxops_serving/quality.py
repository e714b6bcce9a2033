"""Online model quality: ground-truth feedback against recent predictions, and input drift.

The hot path only stores a prediction or copies input rows into a ring buffer; the figures
are computed when metrics are scraped or feedback arrives.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Any

import numpy as np

from .errors import BadRequest, NotFound

# Keeps PSI finite when a bin is empty on one side (a common smoothing choice).
_PSI_EPS = 1e-4


def _rows(predictions: np.ndarray) -> int:
    return predictions.shape[0] if predictions.ndim else 1


class PredictionCache:
    """The latest predictions by request id, at most ``size`` rows in all (not requests: at
    4096 rows a request, 10 000 requests would hold 300 MB); oldest requests go first, the
    newest always stays. Feedback consumes an entry once."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def put(self, request_id: str, predictions: np.ndarray) -> None:
        items = self._items
        if request_id in items:  # a reused id replaces its entry
            self._rows -= _rows(items.pop(request_id))
        items[request_id] = predictions
        self._rows += predictions.shape[0] if predictions.ndim else 1
        while self._rows > self._size and len(items) > 1:
            self._rows -= _rows(items.popitem(last=False)[1])

    @property
    def rows(self) -> int:
        return self._rows

    def take(self, request_id: str) -> np.ndarray:
        try:
            predictions = self._items.pop(request_id)
            self._rows -= _rows(predictions)
            return predictions
        except KeyError:
            raise NotFound(
                f"no stored predictions for request id {request_id!r} "
                "(unknown, already labelled, or evicted from the cache)"
            ) from None


class QualityWindow:
    """Windowed accuracy / macro precision, recall, F1 (classification) or MAE / RMSE."""

    def __init__(self, task: str, window: int) -> None:
        self.task = task
        self.total = 0
        self._pred: deque[Any] = deque(maxlen=window)
        self._true: deque[Any] = deque(maxlen=window)

    def add(self, predictions: np.ndarray, labels: list[Any]) -> int:
        preds: list[Any] = predictions.ravel().tolist()
        truth: list[Any]
        if len(labels) != len(preds):
            raise BadRequest(f"got {len(labels)} labels for {len(preds)} predictions")
        if self.task == "regression":
            try:
                truth = [float(v) for v in labels]
            except (TypeError, ValueError):
                raise BadRequest("regression labels must be numbers") from None
            if not all(math.isfinite(v) for v in truth):
                raise BadRequest("labels must be finite numbers")
            try:
                preds = [float(v) for v in preds]
            except (TypeError, ValueError):
                raise BadRequest("regression 'predictions' must be numbers") from None
            if not all(math.isfinite(v) for v in preds):
                raise BadRequest("'predictions' must be finite numbers")
        else:
            if not all(isinstance(v, str | int | float | bool) for v in labels):
                raise BadRequest("classification labels must be strings or numbers")
            # Compare as text so 2, 2.0 and "2" name the same class.
            truth = [_label(v) for v in labels]
            preds = [_label(v) for v in preds]
        self._pred.extend(preds)
        self._true.extend(truth)
        self.total += len(labels)
        return len(labels)

    def snapshot(self) -> dict[str, float]:
        if not self._pred:
            return {}
        if self.task == "regression":
            err = np.asarray(self._pred, dtype=float) - np.asarray(self._true, dtype=float)
            return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}
        pred, true = np.asarray(self._pred), np.asarray(self._true)
        precision, recall, f1 = [], [], []
        for cls in np.union1d(pred, true):
            tp = float(np.sum((pred == cls) & (true == cls)))
            p = tp / n if (n := float(np.sum(pred == cls))) else 0.0
            r = tp / n if (n := float(np.sum(true == cls))) else 0.0
            precision.append(p)
            recall.append(r)
            f1.append(2 * p * r / (p + r) if p + r else 0.0)
        return {
            "accuracy": float(np.mean(pred == true)),
            "precision": float(np.mean(precision)),
            "recall": float(np.mean(recall)),
            "f1": float(np.mean(f1)),
        }

    @property
    def size(self) -> int:
        return len(self._pred)


def _label(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class DriftMonitor:
    """PSI per feature of the latest ``window`` input rows against the training bins."""

    def __init__(self, feature_stats: list[dict[str, Any]], window: int, min_rows: int) -> None:
        self.names = [str(s.get("name", f"f{i}")) for i, s in enumerate(feature_stats)]
        self._edges = [np.asarray(s["bin_edges"], dtype=np.float64) for s in feature_stats]
        self._expected = [
            np.clip(np.asarray(s["proportions"], dtype=np.float64), _PSI_EPS, None)
            for s in feature_stats
        ]
        for name, edges, expected in zip(self.names, self._edges, self._expected, strict=True):
            if len(expected) != len(edges) + 1:
                raise ValueError(f"feature_stats of {name!r}: need len(bin_edges) + 1 proportions")
        self._buf = np.zeros((window, len(feature_stats)), dtype=np.float64)
        self._pos = 0
        self.rows = 0
        self._min_rows = min_rows

    def observe(self, x: np.ndarray) -> None:
        if x.ndim != 2 or x.shape[1] != self._buf.shape[1]:
            return
        window = self._buf.shape[0]
        if x.shape[0] >= window:
            x = x[-window:]
        n = x.shape[0]
        end = self._pos + n
        if end <= window:
            self._buf[self._pos : end] = x
        else:
            split = window - self._pos
            self._buf[self._pos :] = x[:split]
            self._buf[: n - split] = x[split:]
        self._pos = end % window
        self.rows += n

    def psi(self) -> dict[str, float]:
        """PSI per feature, or {} until ``min_rows`` rows were seen."""
        if self.rows < self._min_rows:
            return {}
        data = self._buf[: min(self.rows, self._buf.shape[0])]
        result = {}
        for i, name in enumerate(self.names):
            counts = np.bincount(
                np.searchsorted(self._edges[i], data[:, i], side="right"),
                minlength=len(self._expected[i]),
            )
            actual = np.clip(counts / len(data), _PSI_EPS, None)
            expected = self._expected[i]
            result[name] = float(np.sum((actual - expected) * np.log(actual / expected)))
        return result
