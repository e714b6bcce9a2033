"""Benchmark baseline (a): raw ``session.run`` on one row in a loop — the limit for any server.

Usage: python raw.py MODEL_DIR [SECONDS]  ->  one JSON line: calls/s and per-call p50/p99 (µs).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main(folder: Path, seconds: float) -> None:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(
        str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    name = sess.get_inputs()[0].name
    x = np.asarray(json.loads((folder / "row.json").read_text()), dtype=np.float32)
    for _ in range(200):
        sess.run(None, {name: x})
    times = []
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        sess.run(None, {name: x})
        times.append(time.perf_counter() - now)
    arr = np.asarray(times) * 1e6
    print(json.dumps({
        "rps": len(arr) / arr.sum() * 1e6,
        "mean_us": float(arr.mean()),
        "p50_us": float(np.percentile(arr, 50)),
        "p99_us": float(np.percentile(arr, 99)),
    }))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)
