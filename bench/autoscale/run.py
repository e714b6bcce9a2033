"""Placement through a cluster autoscaler: time from Unschedulable to Ready through a
Karpenter scale-up, and failovers avoided.

Runs `tests/loop/test_heal_autoscaler.py` (real devcluster, Karpenter's KWOK provider with nodes
that take `BOOT_S` to appear, Prometheus, pod runner, operator) `--runs` times; each run
appends its figures (seconds from the scheduler's first FailedScheduling to Karpenter's
nomination, to the new node, to the pod Ready there; and, with the NodePool at its limit, to
Ready on cloud after the failover) to a JSON-lines file. Prints the medians and writes
bench/autoscale/results.json.

    .venv/bin/python bench/autoscale/run.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEST = "tests/loop/test_heal_autoscaler.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.jsonl"
        env = {**os.environ, "HEAL_BENCH_OUT": str(out)}
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs}: {TEST}", flush=True)
            test = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", TEST]
            if subprocess.run(test, cwd=ROOT, env=env).returncode != 0:
                print("a run failed; figures of failed runs are not recorded", file=sys.stderr)
                return 1
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_case[row.pop("fault")].append(row)
    summary: dict[str, dict[str, Any]] = {}
    for case, found in sorted(by_case.items()):
        figures = {k: [r[k] for r in found] for k in found[0]}
        summary[case] = {
            "runs": len(found),
            **{f"{k}_median": statistics.median(v) for k, v in figures.items()},
            **figures,
        }
    (HERE / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    for case, fig in summary.items():
        medians = ", ".join(f"{k[:-7]} {v:g}" for k, v in fig.items() if k.endswith("_median"))
        print(f"{case} (median of {fig['runs']}): {medians}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
