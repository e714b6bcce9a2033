"""`make demo`'s script, end to end, in a state directory of its own.

The demo is one of the project's two commands; this keeps it working. It starts its own
local cluster (beside the session's, on other free ports), Prometheus, the pod runner and
the operator, and must stop all of them, failing or not.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.operator_kit import ROOT, processes_naming

pytestmark = pytest.mark.cluster


def _settled_empty(path: Path) -> list[psutil.Process]:
    """What still runs under `path` after a short grace for processes that are exiting."""
    deadline = time.monotonic() + 5
    while (left := processes_naming(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _devcluster_down(state: Path) -> None:
    if (state / "state.json").exists():
        subprocess.run(
            [sys.executable, "-m", "devcluster", "--state-dir", str(state), "down"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "hack" / "devcluster")},
            capture_output=True,
            timeout=60,
            check=False,
        )


def test_demo_runs_end_to_end_and_leaves_nothing_running(tmp_path: Path) -> None:
    out, state = tmp_path / "demo", tmp_path / "state"
    out.mkdir()
    # A previous run's log. The demo must read the address of the Prometheus it starts now;
    # it once raced to read this stale line instead (seen on a second `make demo`).
    (out / "prometheus.log").write_text("prometheus at http://127.0.0.1:1; targets in /gone\n")
    env = {**os.environ, "DEMO_DIR": str(out), "DEVCLUSTER_STATE": str(state)}
    env.pop("KEEP", None)
    demo = subprocess.Popen(
        ["bash", str(ROOT / "hack" / "demo.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = ""
    try:
        try:
            log, _ = demo.communicate(timeout=600)
        finally:
            if demo.poll() is None:
                # SIGTERM first, so the demo's own trap stops what it started; then the group.
                os.killpg(demo.pid, signal.SIGTERM)
                try:
                    demo.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(demo.pid, signal.SIGKILL)
                    demo.wait()
        left = _settled_empty(state) + _settled_empty(out)  # what the demo did not stop
    finally:
        _devcluster_down(state)  # a safety net for the rest of the session, not the check
    assert demo.returncode == 0, log[-4000:]
    # The pipeline's gates, parity and optimize report ran.
    assert re.search(r"^parity on \d+ rows: labels agree 100\.00%.*: passed$", log, re.M)
    assert re.search(r"^int8\s+kept\s", log, re.M), log[:4000]
    # Both models became Ready on their pools.
    assert re.search(r"^iris\s+cloud\s+Ready\s+2/2", log, re.M), log[-4000:]
    assert re.search(r"^breast-cancer\s+edge\s+Ready\s+1/1", log, re.M), log[-4000:]
    # Every serving process answered /predict, and Prometheus counted each one's requests.
    counts = re.findall(r"^  onnxops-demo/(\S+): (\d+)$", log, re.M)
    assert len(counts) == 3 and all(int(n) >= 1 for _, n in counts), log[-2000:]
    # The bad spec was refused by the apiserver with readable reasons.
    # The drift the demo causes is detected, with its Event, and iris says Degraded.
    assert re.search(r"^iris\s+cloud\s+Degraded\s+2/2", log, re.M), log[-4000:]
    assert re.search(r"^fault Drift: largest feature PSI", log, re.M), log[-4000:]
    assert re.search(r"^iris\s+Warning\s+FaultDetected\s+Drift:", log, re.M), log[-4000:]
    # The OOM the demo causes is healed: memory raised by a rollout (the pod crash-loops, and
    # the kubelet resizes only running containers).
    assert re.search(
        r"^remediation resize Succeeded: .*resizes only running containers: rolled out instead$",
        log,
        re.M,
    ), log[-4000:]
    assert re.search(r"^iris-small\s+Normal\s+ResizeSucceeded\s", log, re.M), log[-4000:]
    assert 'The ModelDeployment "broken" is invalid' in log
    assert "minReplicas must be <= maxReplicas" in log
    assert left == []
