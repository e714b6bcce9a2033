"""Placement through a cluster autoscaler: time from Unschedulable to Ready through a
Karpenter scale-up, failovers avoided, and nodes removed once a fleet is right-sized.

Runs `tests/loop/test_heal_autoscaler.py` (real devcluster, Karpenter's KWOK provider with nodes
that take `BOOT_S` to appear, Prometheus, pod runner, operator) `--runs` times; each run
appends its figures (seconds from the scheduler's first FailedScheduling to Karpenter's
nomination, to the new node, to the pod Ready there; and, with the NodePool at its limit, to
Ready on cloud after the failover) to a JSON-lines file. The `consolidation` phase runs
`tests/loop/test_heal_consolidation.py`: idle over-provisioned models filling one Karpenter node
each, shrunk by `resize.shrink`, with the NodePool consolidating WhenEmptyOrUnderutilized; it
records Karpenter's nodes before and after, seconds from the last shrink confirmed to a node
gone, and models not Ready at the end. Prints the medians and updates
bench/autoscale/results.json (the phases run replace their cases, the others stay).

    .venv/bin/python bench/autoscale/run.py --runs 3
    .venv/bin/python bench/autoscale/run.py --runs 1 --phase consolidation
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
PHASES = {
    "scale-up": "tests/loop/test_heal_autoscaler.py",
    "consolidation": "tests/loop/test_heal_consolidation.py",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--phase", choices=(*PHASES, "all"), default="all", help="which tests to run"
    )
    args = parser.parse_args()
    tests = list(PHASES.values()) if args.phase == "all" else [PHASES[args.phase]]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.jsonl"
        env = {**os.environ, "HEAL_BENCH_OUT": str(out)}
        for i in range(args.runs):
            for path in tests:
                print(f"run {i + 1}/{args.runs}: {path}", flush=True)
                test = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", path]
                if subprocess.run(test, cwd=ROOT, env=env).returncode != 0:
                    print("a run failed; figures of failed runs are not recorded", file=sys.stderr)
                    return 1
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_case[row.pop("fault")].append(row)
    results = HERE / "results.json"
    summary: dict[str, dict[str, Any]] = json.loads(results.read_text()) if results.exists() else {}
    ran: list[str] = []
    for case, found in sorted(by_case.items()):
        figures = {k: [r[k] for r in found] for k in found[0]}
        ran.append(case)
        summary[case] = {
            "runs": len(found),
            **{f"{k}_median": statistics.median(v) for k, v in figures.items()},
            **figures,
        }
    results.write_text(json.dumps(summary, indent=2) + "\n")
    for case in ran:
        fig = summary[case]
        medians = ", ".join(f"{k[:-7]} {v:g}" for k, v in fig.items() if k.endswith("_median"))
        print(f"{case} (median of {fig['runs']}): {medians}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
