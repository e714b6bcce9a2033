"""The pipeline commands' options, help texts and error guard (see `onnxops.pipeline.cli`)."""

from __future__ import annotations

import argparse
import functools
import math
import os
from collections.abc import Callable
from pathlib import Path

from onnxops.errors import OnnxopsError
from onnxops.pipeline import algorithms, optimize, train

EXIT_CODES = "exit codes: 0 done; 1 a quality gate or the parity check missed; 2 bad input"


def finite(text: str) -> float:
    """A float option; NaN would make every comparison false and silently pass a gate."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def data_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("data (one of)")
    src.add_argument(
        "--dataset",
        metavar="NAME",
        help=f"built-in data set: {', '.join(sorted(train.data.BUILTIN))}",
    )
    src.add_argument("--csv", type=Path, metavar="PATH", help="CSV file with a header row")
    src.add_argument("--target", metavar="COLUMN", help="target column of the CSV")
    p.add_argument("--algorithm", required=True, metavar="NAME", help=", ".join(algorithms.CHOICES))
    p.add_argument(
        "--task", choices=algorithms.TASKS, help="default: from the algorithm and the data"
    )
    p.add_argument(
        "--seed", type=int, default=42, help="seed of the split and the estimator (default 42)"
    )
    p.add_argument(
        "--test-size", type=finite, default=0.2, help="share of rows held out (default 0.2)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="estimator setting, repeatable",
    )
    p.add_argument("--name", help="model name (default: the data set's)")


def gate_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quality gates (exit 1 when missed)")
    g.add_argument("--min-accuracy", type=finite, metavar="X", help="accuracy >= X")
    g.add_argument("--min-f1", type=finite, metavar="X", help="macro F1 >= X")
    g.add_argument("--min-r2", type=finite, metavar="X", help="R² >= X")
    g.add_argument("--max-rmse", type=finite, metavar="X", help="RMSE <= X")


def export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", default="1", help="model version (default 1)")
    p.add_argument(
        "--parity-tolerance",
        type=finite,
        default=1e-4,
        help="max |Δprob|, or relative |Δ| (default 1e-4)",
    )
    p.add_argument("--min-label-agreement", type=finite, default=1.0, help="default 1.0")


def optimize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-metric-drop", type=finite, default=0.01, help="budget per variant (default 0.01)"
    )
    p.add_argument(
        "--sparsity", type=finite, default=0.5, help="magnitude-pruning target (default 0.5)"
    )
    p.add_argument(
        "--only",
        metavar="LIST",
        help=f"comma-separated subset of: {', '.join(optimize.TECHNIQUES)}",
    )


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a report")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A failure nobody planned for is still one line (exit 1), not a traceback in a CI log."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (OnnxopsError, BrokenPipeError):
            raise  # main() reports these
        except Exception as exc:
            if os.environ.get("ONNXOPS_DEBUG"):
                raise
            detail = train.first_line(exc)
            raise OnnxopsError(
                f"unexpected {type(exc).__name__}: {detail} (set ONNXOPS_DEBUG=1 for the traceback)"
            ) from None

    return run


def parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=summary, epilog=EXIT_CODES)
