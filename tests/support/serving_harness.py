"""Helpers for the serving tests: test models, server processes, metric parsing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from support.factories import poison_model

REPO = Path(__file__).resolve().parents[2]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _feature_stats(x: np.ndarray, names: list[str], bins: int = 4) -> list[dict[str, object]]:
    stats = []
    for i, name in enumerate(names):
        col = x[:, i].astype(np.float64)
        edges = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, col, side="right"), minlength=len(edges) + 1)
        stats.append(
            {
                "name": name,
                "mean": float(col.mean()),
                "std": float(col.std()),
                "min": float(col.min()),
                "max": float(col.max()),
                "bin_edges": edges.tolist(),
                "proportions": (counts / counts.sum()).tolist(),
            }
        )
    return stats


def _write_bundle(folder: Path, onx: onnx.ModelProto, meta: dict[str, object]) -> Path:
    folder.mkdir(parents=True)
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(onx.SerializeToString())
    meta = {
        "format_version": 1,
        **meta,
        "files": {
            "model.onnx": {
                "sha256": _sha256(onnx_path),
                "bytes": onnx_path.stat().st_size,
                "variant": "default",
            }
        },
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2))
    return folder


@dataclass(frozen=True)
class Models:
    """Paths of the test models and the data they were trained on."""

    iris: Path  # bundle dir with model.json and feature_stats
    iris_x: np.ndarray
    iris_labels: np.ndarray  # what the model itself predicts for iris_x
    iris_proba: np.ndarray
    bare: Path  # the same classifier as a lone .onnx file
    regressor: Path  # bundle dir, task regression
    reg_x: np.ndarray
    reg_pred: np.ndarray
    poison: Path  # a lone .onnx that fails at run time for any row holding 99


def build_models(root: Path) -> Models:
    """Train and export the test models into ``root``."""
    import onnxruntime as ort

    iris = load_iris()
    x = iris.data.astype(np.float32)
    clf = LogisticRegression(max_iter=500).fit(x, iris.target)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    names = [str(n) for n in iris.feature_names]
    iris_dir = _write_bundle(
        root / "iris",
        onx,
        {
            "name": "iris",
            "version": "3",
            "task": "classification",
            "algorithm": "logistic_regression",
            "input": {"name": onx.graph.input[0].name, "dtype": "float32", "shape": [None, 4]},
            "feature_names": names,
            "outputs": [
                {"name": "label", "dtype": "int64", "shape": [None]},
                {"name": "probabilities", "dtype": "float32", "shape": [None, 3]},
            ],
            "classes": [0, 1, 2],
            "feature_stats": _feature_stats(x, names),
        },
    )
    bare_dir = root / "bare"
    bare_dir.mkdir()
    shutil.copy(iris_dir / "model.onnx", bare_dir / "flowers.onnx")
    sess = ort.InferenceSession(str(iris_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, proba = sess.run(None, {sess.get_inputs()[0].name: x})

    rx, ry = make_regression(n_samples=200, n_features=3, noise=0.1, random_state=0)
    rx = rx.astype(np.float32)
    reg = LinearRegression().fit(rx, ry)
    ronx = to_onnx(reg, rx[:1], target_opset=17)
    rnames = ["a", "b", "c"]
    reg_dir = _write_bundle(
        root / "reg",
        ronx,
        {
            "name": "reg",
            "version": "1",
            "task": "regression",
            "algorithm": "linear_regression",
            "feature_names": rnames,
            "feature_stats": _feature_stats(rx, rnames),
        },
    )
    rsess = ort.InferenceSession(str(reg_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (rpred,) = rsess.run(None, {rsess.get_inputs()[0].name: rx})

    poison = root / "poison.onnx"
    poison.write_bytes(poison_model().SerializeToString())
    return Models(
        iris=iris_dir,
        iris_x=x,
        iris_labels=labels,
        iris_proba=proba,
        bare=bare_dir / "flowers.onnx",
        regressor=reg_dir,
        reg_x=rx,
        reg_pred=rpred.ravel(),
        poison=poison,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``python -m onnxops_serving`` process."""

    url: str
    port: int
    proc: subprocess.Popen[str]
    log_path: Path
    grpc_port: int = 0  # 0: gRPC off

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _env(settings: dict[str, str], source_tree: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONNXOPS_", "PYTHONPATH"))}
    env.update({f"ONNXOPS_{k.upper()}": str(v) for k, v in settings.items()})
    if source_tree:  # else the package as installed in that python's environment
        env["PYTHONPATH"] = str(REPO / "serving-image")
    return env


def spawn(
    tmp: Path, *, wait_ready: bool = True, env: dict[str, str] | None = None, **settings: str
) -> Server:
    """Start a server with ``ONNXOPS_*`` settings (and other variables in ``env``); by default
    wait until it is ready."""
    return _start(tmp, settings, wait_ready, env=env)


def _start(
    tmp: Path,
    settings: dict[str, str],
    wait_ready: bool,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    # gRPC on a port of its own unless a test chooses (0 turns it off).
    settings = {
        "host": "127.0.0.1",
        "port": str(port),
        "grpc_port": str(free_port()),
        "log_level": "warning",
        **settings,
    }
    settings.setdefault("model_cache_dir", str(tmp / "cache"))
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"server-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [python, "-m", "onnxops_serving"],
            env={**_env(settings, source_tree=python == sys.executable), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, log_path, int(settings["grpc_port"]))
    if wait_ready:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return server
            time.sleep(0.05)
        stop(server)
        raise RuntimeError(f"server not ready in time:\n{server.log()}")
    return server


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@contextlib.contextmanager
def running(tmp: Path, python: str = sys.executable, **settings: str) -> Iterator[Server]:
    server = _start(tmp, settings, True, python)
    try:
        yield server
    finally:
        stop(server)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition; it must be there."""
    value = maybe_metric(text, name, **labels)
    assert value is not None, f"no sample {name} {labels}"
    return value


def maybe_metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None
