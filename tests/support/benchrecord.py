"""Figures a test run records for bench/heal/run.py (JSON lines to HEAL_BENCH_OUT, when set)."""

from __future__ import annotations

import json
import os
from typing import Any


def bench_record(fault_type: str, *moments_and_actions: float) -> None:
    """With HEAL_BENCH_OUT set (bench/heal/run.py), append this run's figures: seconds from
    the fault's injection to its detection and to recovery, and actions taken."""
    started, detected, recovered, actions = moments_and_actions
    bench_write(
        {
            "fault": fault_type,
            "detect_s": round(detected - started, 1),
            "recover_s": round(recovered - started, 1),
            "actions": int(actions),
        }
    )


def bench_write(row: dict[str, Any]) -> None:
    """Append one row of figures to HEAL_BENCH_OUT (JSON lines), when it is set."""
    out = os.environ.get("HEAL_BENCH_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
