"""Build the three benchmark models (iris logistic regression, 100-tree forest, MLP) as bundles.

Usage: python bench/serving/models.py OUT_DIR  ->  OUT_DIR/{iris,forest,mlp}/model.onnx + model.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier


def _stats(x: np.ndarray) -> list[dict[str, object]]:
    out = []
    for i in range(x.shape[1]):
        col = x[:, i].astype(np.float64)
        edges = np.unique(np.quantile(col, np.linspace(0, 1, 11)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, col, side="right"), minlength=len(edges) + 1)
        out.append({
            "name": f"f{i}", "mean": float(col.mean()), "std": float(col.std()),
            "min": float(col.min()), "max": float(col.max()),
            "bin_edges": edges.tolist(), "proportions": (counts / counts.sum()).tolist(),
        })  # fmt: skip
    return out


def _bundle(out: Path, name: str, model: object, x: np.ndarray, algorithm: str) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    path = folder / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    meta = {
        "format_version": 1, "name": name, "version": "1", "task": "classification",
        "algorithm": algorithm,
        "input": {"name": onx.graph.input[0].name, "dtype": "float32", "shape": [None, x.shape[1]]},
        "feature_names": [f"f{i}" for i in range(x.shape[1])],
        "files": {"model.onnx": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                 "bytes": path.stat().st_size, "variant": "default"}},
        "feature_stats": _stats(x),
    }  # fmt: skip
    (folder / "model.json").write_text(json.dumps(meta))
    # One representative row, as the load generator will send it.
    (folder / "row.json").write_text(json.dumps(x[:1].astype(float).round(4).tolist()))


def main(out: Path) -> None:
    iris = load_iris()
    xi = iris.data.astype(np.float32)
    _bundle(
        out,
        "iris",
        LogisticRegression(max_iter=500).fit(xi, iris.target),
        xi,
        "logistic_regression",
    )
    xf, yf = make_classification(n_samples=2000, n_features=20, n_informative=10, random_state=0)
    xf = xf.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(xf, yf)
    _bundle(out, "forest", forest, xf, "random_forest")
    mlp = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=300, random_state=0).fit(xf, yf)
    _bundle(out, "mlp", mlp, xf, "mlp")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
