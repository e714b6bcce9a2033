"""The README's "Deploy it" tour, run as written: its shell block is taken from README.md and run
by bash in the repository, with a private devcluster state dir (``DEVCLUSTER_STATE``) and a
private KUBECONFIG. Nothing of the test's own is set up beforehand: ``make cluster-up`` must
bring up everything the tour needs (control plane, KWOK nodes, the pod runner), and the sample's
ConfigMap-carried model must really serve. The operator the block starts (``python -m
onnxops.run &``) is stopped by the test by PID; ``make cluster-down`` stops the rest.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from support.operator_kit import ROOT, wait_for

pytestmark = pytest.mark.cluster


def deploy_block() -> str:
    """The first ```bash block of the README's "### Deploy it" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Deploy it\n", 1)[1].split("\n### ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README's Deploy it section has no bash block"
    return match.group(1)


def printed_table(block: str) -> list[list[str]]:
    """What the README says `kubectl get mdep` prints: the ``# NAME ...`` comment lines."""
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# NAME"))
    table = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        table.append(line[2:].split())
    return table


@dataclass
class Tour:
    env: dict[str, str]
    output: str
    state: Path

    def run(self, *argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def kubectl(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        state = json.loads((self.state / "state.json").read_text())
        kubectl = str(Path(state["bin_dir"]) / "kubectl")
        return self.run(kubectl, f"--kubeconfig={self.state / 'kubeconfig'}", *args,
                        timeout_s=timeout_s)  # fmt: skip


def _stop(pid: int) -> None:
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    work = tmp_path_factory.mktemp("tour")
    state, pids, out = work / "state", work / "jobs.pid", work / "tour.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONNXOPS_", "VIRTUAL_ENV"))}
    env.update(DEVCLUSTER_STATE=str(state), KUBECONFIG=str(work / "no-kubeconfig"))
    # The block as written; the test's own lines only record the background jobs' PIDs.
    script = f"trap 'jobs -p > {pids}' EXIT\nset -e\n{deploy_block()}"
    (work / "tour.sh").write_text(script)
    recorded: list[int] = []
    try:
        with open(out, "w") as sink:  # a file, not a pipe: the operator keeps it open
            done = subprocess.run(
                ["bash", str(work / "tour.sh")], cwd=ROOT, env=env, stdout=sink,
                stderr=subprocess.STDOUT, timeout=400,
            )  # fmt: skip
        recorded = [int(p) for p in pids.read_text().split()] if pids.exists() else []
        output = out.read_text()
        assert done.returncode == 0, f"the tour failed (rc {done.returncode}):\n{output[-4000:]}"
        yield Tour(env, output, state)
    finally:
        if not recorded and pids.exists():
            recorded = [int(p) for p in pids.read_text().split()]
        for pid in recorded:  # the operator of `python -m onnxops.run &`
            _stop(pid)
        subprocess.run(["make", "-s", "cluster-down"], cwd=ROOT, env=env, timeout=120, check=False)


def test_get_mdep_prints_what_the_readme_says(tour: Tour) -> None:
    expected = printed_table(deploy_block())
    rows = [line.split() for line in tour.output.splitlines()]
    header = next(r for r in rows if r[:1] == ["NAME"])
    assert header == expected[0]
    row = next(r for r in rows if r[:1] == ["iris-edge"])
    assert row[:5] == expected[1][:5]  # all but AGE


def test_the_sample_model_really_serves_from_its_configmap(tour: Tour) -> None:
    # The pod runner projected the ConfigMap and the real runtime loaded /models/model.onnx.
    pods = json.loads(tour.kubectl("get", "pods", "-o", "json").stdout)["items"]
    serving = [p for p in pods if p["metadata"]["labels"].get("onnxops.io/model-deployment")]
    ready = [
        p for p in serving
        if any(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))
    ]  # fmt: skip
    assert ready, [p.get("status") for p in serving]
    name = ready[0]["metadata"]["name"]
    log = (tour.state / "logs" / "pods" / f"default.{name}.log").read_text()
    # The ConfigMap projected under the pod's volume dir, /models/model.onnx rebound to it.
    assert re.search(r"volumes/model/model\.onnx fetched \(695 bytes, sha256 70b17a", log), log


def test_cluster_status_shows_the_pod_runner(tour: Tour) -> None:
    status = tour.run("make", "-s", "cluster-status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"^podrunner\s+pid \d+\s+running", status.stdout, re.M), status.stdout


def test_a_second_pod_runner_is_refused_and_the_first_keeps_serving(tour: Tour) -> None:
    # `make demo` once started its own runner beside cluster-up's: both ran every pod, the
    # second lost the bind and reported the pods crash-looping (a Degraded model that served).
    second = tour.run(
        "env", f"PYTHONPATH={ROOT / 'hack' / 'devcluster'}", str(ROOT / ".venv" / "bin" / "python"),
        "-m", "devcluster", f"--state-dir={tour.state}", "podrunner", timeout_s=30,
    )  # fmt: skip
    assert second.returncode != 0
    holder = int((tour.state / "podrunner.lock").read_text())
    assert f"a pod runner (pid {holder}) already serves the devcluster" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    status = tour.run("make", "-s", "cluster-status")
    assert re.search(rf"^podrunner\s+pid {holder}\s+running", status.stdout, re.M), status.stdout


def test_deleting_a_namespace_with_serving_pods_finishes(tour: Tour) -> None:
    assert tour.kubectl("create", "namespace", "tour-gone").returncode == 0
    sample = str(ROOT / "manifests" / "samples" / "edge.yaml")
    assert tour.kubectl("apply", "-n", "tour-gone", "-f", sample).returncode == 0
    wait = tour.kubectl(
        "wait", "-n", "tour-gone", "--for=condition=Ready", "mdep/iris-edge", "--timeout=120s",
        timeout_s=150,
    )  # fmt: skip
    assert wait.returncode == 0, wait.stderr
    started = time.monotonic()
    gone = tour.kubectl("delete", "namespace", "tour-gone", "--timeout=90s", timeout_s=120)
    assert gone.returncode == 0, gone.stderr
    assert time.monotonic() - started < 90
    wait_for(
        lambda: tour.kubectl("get", "namespace", "tour-gone").returncode != 0, "namespace gone"
    )
