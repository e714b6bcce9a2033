"""Bad answers users get while a bad model version goes out, all at once (heal's rollback) vs
through spec.rollout's steps; and how long a good version takes to full promotion.

Runs `tests/loop/bench_rollout.py` (real devcluster, Prometheus, the serving runtime behind
the pod runner, the operator; steady traffic spread over the Service's EndpointSlices, every
answer checked): (a) a version failing at inference applied with no spec.rollout, so heal
rolls it back; (b) the same through a shadow 100 %, a weight 10 and a weight 50 step; (b') the
same without the shadow step; and a good version through (b)'s steps. Each case writes one row
(answers after the spec change, the failed or wrong ones, seconds to the decision) to a
JSON-lines file; this prints the table and the ratios of one invocation and writes
bench/rollout/results.json.

    .venv/bin/python bench/rollout/run.py            # replicas 4, pauses 6 s
    .venv/bin/python bench/rollout/run.py --quick    # replicas 3, pauses 3 s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = {
    "bad-all-at-once": "(a) bad, all at once, heal rolls back",
    "bad-shadow-10-50": "(b) bad, shadow 100 -> weight 10 -> 50",
    "bad-10-50": "(b') bad, weight 10 -> 50, no shadow",
    "good-shadow-10-50": "good, shadow 100 -> weight 10 -> 50",
}


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.1f}x" if b else f"inf ({a} vs none)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--pause", type=int, default=6, help="pauseSeconds of every step")
    parser.add_argument("--quick", action="store_true", help="replicas 3, pauses 3 s")
    args = parser.parse_args()
    replicas, pause = (3, 3) if args.quick else (args.replicas, args.pause)
    if replicas < 2 or pause < 0:
        print("--replicas must be at least 2 and --pause at least 0", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs.jsonl"
        env = {
            **os.environ,
            "HEAL_BENCH_OUT": str(out),
            "ROLLOUT_BENCH_REPLICAS": str(replicas),
            "ROLLOUT_BENCH_PAUSE_S": str(pause),
        }
        test = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        test += ["tests/loop/bench_rollout.py"]
        if subprocess.run(test, cwd=ROOT, env=env).returncode != 0:
            print("a case failed; figures of failed runs are not recorded", file=sys.stderr)
            return 1
        rows: dict[str, dict[str, Any]] = {}
        for line in out.read_text().splitlines():
            row = json.loads(line)
            rows[row.pop("fault")] = row
    print(f"\nreplicas {replicas}, pauses {pause} s; seconds from the spec change")
    print(f"{'case':44} {'answers':>8} {'bad':>6} {'canary':>7} {'decided':>8} {'last bad':>9}")
    for case, label in CASES.items():
        if case not in rows:
            continue
        r = rows[case]
        last = "-" if r["last_bad_s"] is None else f"{r['last_bad_s']:g} s"
        print(
            f"{label:44} {r['answers']:>8} {r['bad_answers']:>6} {r['by_canary']:>7}"
            f" {r['decided_s']:>6g} s {last:>9}  {r['how']}"
        )
    a = rows["bad-all-at-once"]["bad_answers"]
    summary: dict[str, Any] = {"replicas": replicas, "pause_s": pause, "cases": rows}
    ratios = {"a_over_b": _ratio(a, rows["bad-shadow-10-50"]["bad_answers"])}
    if "bad-10-50" in rows:
        ratios["a_over_b_weights_only"] = _ratio(a, rows["bad-10-50"]["bad_answers"])
    good = rows["good-shadow-10-50"]
    ratios["promotion_over_pauses"] = f"{good['decided_s'] / good['pauses_s']:.2f}x"
    summary["ratios"] = ratios
    print(f"\nbad answers (a)/(b): {ratios['a_over_b']}", end="")
    if "a_over_b_weights_only" in ratios:
        print(f"; (a)/(b'): {ratios['a_over_b_weights_only']}", end="")
    print(
        f"\ngood version promoted in {good['decided_s']:g} s for {good['pauses_s']} s of pauses"
        f" ({ratios['promotion_over_pauses']}), {good['bad_answers']} bad answers"
    )
    (HERE / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
