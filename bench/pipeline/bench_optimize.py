"""Benchmark of `onnxops optimize` on an MLP: size, accuracy and batch-1 latency per variant.

Run:  .venv/bin/python bench/pipeline/bench_optimize.py [--dataset digits] [--hidden 128,64]

Every variant is measured as built with an unlimited metric budget; a second pass with the
default budget (0.01) says which ones `onnxops optimize` would keep. Latencies are the median
of interleaved rounds of single-row `session.run` calls on one thread, all in this one run, so
only the ratios between variants mean anything.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxops.pipeline import data, export, optimize, train, validate
from onnxops.pipeline.bundle import VariantReport


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def latencies(files: dict[str, Path], row: np.ndarray, rounds: int, runs: int) -> dict[str, float]:
    """Median µs per single-row run; models take turns each round so drift hits all alike."""
    sessions = {name: session(path) for name, path in files.items()}
    feeds = {name: {s.get_inputs()[0].name: row} for name, s in sessions.items()}
    for name, s in sessions.items():
        for _ in range(200):
            s.run(None, feeds[name])
    per_round: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            feed = feeds[name]
            start = time.perf_counter()
            for _ in range(runs):
                s.run(None, feed)
            per_round[name].append((time.perf_counter() - start) / runs * 1e6)
    return {name: statistics.median(v) for name, v in per_round.items()}


def verdict(v: VariantReport) -> str:
    if v.status == "kept":
        return "kept" if "pruning:" not in v.technique else f"kept ({v.technique.split(': ')[1]})"
    return f"{v.status}: {v.reason}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits", choices=["digits", "breast_cancer"])
    p.add_argument("--hidden", default="128,64", help="hidden layer sizes (default 128,64)")
    p.add_argument("--sparsity", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--runs", type=int, default=500)
    args = p.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train.train(
            data.load_builtin(args.dataset),
            "mlp",
            params={"hidden_layer_sizes": hidden, "max_iter": 500},
        )
    metrics = validate.validate(run)
    with tempfile.TemporaryDirectory() as tmp:
        # Standard (MatMul) form, as `onnxops build --optimize` exports it.
        export.export(run, Path(tmp) / "budget", metrics, form="standard")
        budgeted = optimize.optimize(
            run, Path(tmp) / "budget", target_sparsity=args.sparsity, measure_latency=False
        )
        kept = {v.name: v for v in budgeted.variants}
        out = Path(tmp) / "bundle"
        export.export(run, out, metrics, form="standard")
        result = optimize.optimize(
            run, out, max_metric_drop=1.0, target_sparsity=args.sparsity, measure_latency=False
        )
        reports: dict[str, VariantReport] = {v.name: v for v in result.variants}
        files = {v.name: out / v.file for v in result.variants if v.status == "kept" and v.file}
        lat = latencies(files, run.split.X_test[:1].astype(np.float32), args.rounds, args.runs)

    base = reports["default"]
    assert base.bytes and base.gzip_bytes and base.value is not None
    print(f"# onnxops optimize bench: MLP {hidden} on {args.dataset}\n")
    print(
        f"- {run.split.info.train_rows} train / {run.split.info.test_rows} validation rows, seed "
        f"{run.split.info.seed}; default model accuracy {base.value:.4f}"
    )
    print(
        f"- {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"onnxruntime {ort.__version__}, 1 intra-op thread; {args.rounds} rounds x {args.runs} runs\n"
    )
    print(
        "| variant | with the default budget (0.01) | accuracy Δ | bytes | size ratio | gzip ratio | "
        "sparsity | batch-1 µs | latency ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, v in reports.items():
        if v.status in ("not_applicable", "failed"):
            print(f"| {name} | {v.status}: {v.reason} |  |  |  |  |  |  |  |")
            continue
        delta = (v.value or 0.0) - base.value
        size = (v.bytes or 0) / base.bytes
        gz = (v.gzip_bytes or 0) / base.gzip_bytes
        sp = "" if v.sparsity is None else f"{v.sparsity:.0%}"
        us = lat.get(name)
        ratio = "" if us is None else f"{us / lat['default']:.2f}"
        print(
            f"| {name} | {verdict(kept[name])} | {delta:+.4f} | "
            f"{v.bytes} | {size:.2f} | {gz:.2f} | {sp} | {'' if us is None else f'{us:.1f}'} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
