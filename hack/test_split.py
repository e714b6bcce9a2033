"""`make test-parallel`: the suite as two pytest runs side by side, each with a devcluster of its own —
`tests/loop` (watch and heal end to end, which mostly waits: on Prometheus scrapes, the
operator's 5 s evaluations, back-offs) beside everything else. The loop run's lines are
printed as they come, prefixed `[loop]`; the exit status is the worse of the two. SIGINT or
SIGTERM stops both (tests/conftest.py turns SIGTERM into an unwinding KeyboardInterrupt, so
their fixtures stop what they started).

    python hack/test_split.py [pytest args...]    # e.g. -x, -k heal
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
# Fixed per run, so that neither pytest session prunes the other's numbered temp folders.
TEMP = Path(os.environ.get("TMPDIR", "/tmp")) / "onnxops-tests"


def _pytest(args: list[str], name: str, **kw: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pytest", "-m", "not e2e", f"--basetemp={TEMP / name}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*command, *args], cwd=ROOT, env=env, text=True, **kw)  # type: ignore[call-overload]


def _relay(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"[loop] {line}")
        sys.stdout.flush()


def main(extra: list[str]) -> int:
    TEMP.mkdir(parents=True, exist_ok=True)  # pytest makes the basetemp, not its parents
    loop = _pytest(["tests/loop", *extra], "loop", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    relay = threading.Thread(target=_relay, args=(loop,), daemon=True)
    relay.start()
    rest = _pytest(["tests", "--ignore=tests/loop", *extra], "rest")

    def stop(signum: int, _frame: FrameType | None) -> None:
        for proc in (loop, rest):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [rest.wait(), loop.wait()]
    relay.join(timeout=10)
    print(f"tests (all but tests/loop): exit {codes[0]}; tests/loop: exit {codes[1]}", flush=True)
    failed = [c for c in codes if c != 0]
    if not failed:
        return 0
    return failed[0] if failed[0] > 0 else 128 - failed[0]  # killed by a signal: 128 + its number


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
