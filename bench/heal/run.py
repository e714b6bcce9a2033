"""Time to recover per fault type, and actions per fault, for the heal loop.

Runs the loop tests of tests/loop/test_heal.py (real devcluster, Prometheus, pod runner as
kubelet, operator) `--runs` times; each run appends its figures (seconds from injecting the
fault to its detection and to recovery, actions taken) to a JSON-lines file; this script
prints the medians and writes bench/heal/results.json.

    .venv/bin/python bench/heal/run.py --runs 3
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.jsonl"
        env = {**os.environ, "HEAL_BENCH_OUT": str(out)}
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs}", flush=True)
            test = [sys.executable, "-m", "pytest", "-q", "-x", "tests/loop/test_heal.py"]
            if subprocess.run(test, cwd=ROOT, env=env).returncode != 0:
                print("a run failed; figures of failed runs are not recorded", file=sys.stderr)
                return 1
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_fault: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row in rows:
        by_fault[row["fault"]].append(row)
    summary = {
        fault: {
            "runs": len(found),
            "detect_s_median": statistics.median(r["detect_s"] for r in found),
            "recover_s_median": statistics.median(r["recover_s"] for r in found),
            "recover_s": [r["recover_s"] for r in found],
            "actions": [r["actions"] for r in found],
        }
        for fault, found in sorted(by_fault.items())
    }
    (HERE / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    for fault, fig in summary.items():
        print(
            f"{fault}: detected {fig['detect_s_median']} s, recovered {fig['recover_s_median']} s"
            f" after injection (median of {fig['runs']}), actions {fig['actions']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
