"""Time to recover per fault type, and actions per fault, for the heal loop.

Runs the heal loop tests that recover from a fault (FIGURES: real devcluster, Prometheus, pod
runner as kubelet, operator), `--runs` times; each run appends its figures (seconds from
injecting the fault to its detection and to recovery, actions taken) to a JSON-lines file. Then, once,
the baselines (tests/loop/bench_baselines.py): the same faults with remediation off, so only
the kubelet's own restarts act, watched for `--window` seconds. Prints the medians beside the
baselines and writes bench/heal/results.json.

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
# The heal tests that record a recovery (bench_record); the guardrail tests record none.
FIGURES = ("test_heal.py", "test_heal_load.py", "test_heal_placement.py")
ROOT = HERE.parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=180, help="baseline watch, seconds")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    heal_tests = [f"tests/loop/{name}" for name in FIGURES]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.jsonl"
        env = {**os.environ, "HEAL_BENCH_OUT": str(out), "HEAL_BENCH_WINDOW_S": str(args.window)}
        suites = [heal_tests] * args.runs
        if not args.no_baseline:
            suites.append(["tests/loop/bench_baselines.py"])
        for i, files in enumerate(suites):
            print(f"run {i + 1}/{len(suites)}: {' '.join(files)}", flush=True)
            test = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files]
            if subprocess.run(test, cwd=ROOT, env=env).returncode != 0:
                print("a run failed; figures of failed runs are not recorded", file=sys.stderr)
                return 1
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_fault: dict[str, list[dict[str, float]]] = defaultdict(list)
    baselines = {row["fault"]: row for row in rows if row.get("baseline")}
    for row in rows:
        if not row.get("baseline"):
            by_fault[row["fault"]].append(row)
    summary = {
        fault: {
            "runs": len(found),
            "detect_s_median": statistics.median(r["detect_s"] for r in found),
            "recover_s_median": statistics.median(r["recover_s"] for r in found),
            "recover_s": [r["recover_s"] for r in found],
            "actions": [r["actions"] for r in found],
            "remediation_off": baselines.get(fault),
        }
        for fault, found in sorted(by_fault.items())
    }
    (HERE / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    for fault, fig in summary.items():
        print(
            f"{fault}: detected {fig['detect_s_median']} s, recovered {fig['recover_s_median']} s"
            f" after injection (median of {fig['runs']}), actions {fig['actions']}"
        )
        off = fig["remediation_off"]
        if off:
            then = f"{off['recover_s']} s" if off["recover_s"] is not None else "never"
            print(
                f"  remediation off: recovered {then} within {off['window_s']:g} s,"
                f" kubelet restarts {off['kubelet_restarts']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
