"""kstatus compliance, judged by kstatus itself: `hack/kstatus` (sigs.k8s.io/cli-utils'
pkg/kstatus/status, the library Flux waits with) reads live ModelDeployments through their
life, and must say InProgress while a generation rolls out or a failure is retried by
itself, Current once Ready, Failed when the user must act (a spec judged unworkable, pods
that cannot load the model), Terminating while deleted. Degraded by a monitor fault while
serving reads Current (docs/gitops.md says why)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster import processes
from factories import doubler_model
from onnxops.api import Fault, ModelDeployment
from onnxops.monitor import report
from operator_kit import ROOT, Kube, Operator, model_deployment

pytestmark = pytest.mark.cluster

POD_RUNNER_COMMAND = None  # the real serving runtime: a bad model really fails to load
# (every model here is a local file: the runtime must never try to reach a remote host)


@pytest.fixture(scope="module")
def kstatus() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "kstatus" / "build.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(built.stdout.strip().splitlines()[-1])


def verdict(kstatus: Path, obj: dict[str, Any]) -> dict[str, str]:
    done = subprocess.run(
        [str(kstatus)], input=json.dumps(obj), capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    path = tmp_path_factory.mktemp("kstatus-model") / "doubler.onnx"
    yield str(path), doubler_model(path)


def _watch(
    kube: Kube, kstatus: Path, name: str, until: str, timeout_s: float = 90
) -> list[dict[str, str]]:
    """kstatus' verdicts on the live object, polled until it says `until` (all of them)."""
    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        obj = kube.get("mdep", name)
        if obj is not None:
            seen.append(verdict(kstatus, obj))
            if seen[-1]["status"] == until:
                return seen
        time.sleep(0.2)
    raise AssertionError(f"{name}: kstatus never said {until}; it said {seen[-3:]}")


def test_a_new_object_reads_in_progress_before_any_operator_writes(
    kube: Kube, kstatus: Path, model: tuple[str, str]
) -> None:
    """First in the module, before the module's operator starts: the CRD's status default
    (observedGeneration 0) is all there is, and kstatus must not take that for Current."""
    uri, sha = model
    kube.apply(model_deployment("unseen", model={"uri": uri, "sha256": sha}))
    obj = kube.get("mdep", "unseen")
    assert obj is not None and obj["status"] == {"observedGeneration": 0}
    said = verdict(kstatus, obj)
    assert said["status"] == "InProgress" and "observed generation is 0" in said["message"]


def test_created_then_changed_reads_in_progress_then_current(
    kube: Kube, operator: Operator, kstatus: Path, model: tuple[str, str]
) -> None:
    uri, sha = model
    kube.apply(model_deployment("life", model={"uri": uri, "sha256": sha}))
    _watch(kube, kstatus, "life", "Current")
    assert kube.status("life")["phase"] == "Ready"
    # A new generation: InProgress (observedGeneration behind, then Reconciling while the
    # second pod loads), Current once both serve.
    kube.apply(model_deployment("life", model={"uri": uri, "sha256": sha}, replicas=2))
    seen = _watch(kube, kstatus, "life", "Current")
    assert "InProgress" in [v["status"] for v in seen], seen
    assert kube.status("life")["ready"] == "2/2"


def test_a_spec_judged_unworkable_fails_and_a_retried_one_is_in_progress(
    kube: Kube, operator: Operator, kstatus: Path
) -> None:
    kube.apply(model_deployment("nowhere", target={"pool": "gpu"}))
    failed = _watch(kube, kstatus, "nowhere", "Failed")[-1]
    assert "gpu" in failed["message"]
    # A ConfigMap that may yet be applied (GitOps order): retried, so not Failed.
    kube.apply(model_deployment("later", model={"uri": "configmap://not-yet/model.onnx"}))
    processes.wait_for(
        lambda: kube.status("later").get("phase") == "Failed",
        timeout_s=60,
        what="later judged (ModelUnreachable, retried)",
    )
    waiting = verdict(kstatus, kube.get("mdep", "later") or {})
    assert waiting["status"] == "InProgress" and "not-yet" in waiting["message"], waiting


def test_pods_that_cannot_load_the_model_read_failed(
    kube: Kube, operator: Operator, kstatus: Path, model: tuple[str, str]
) -> None:
    uri, _ = model
    kube.apply(model_deployment("tampered", model={"uri": uri, "sha256": "0" * 64}))
    failed = _watch(kube, kstatus, "tampered", "Failed")[-1]
    assert "sha256 mismatch" in failed["message"], failed


def test_degraded_by_a_fault_while_serving_reads_current(
    kube: Kube, operator: Operator, kstatus: Path, model: tuple[str, str]
) -> None:
    """The monitor's own status patch (report.status_patch, as its cycle writes it) over a
    live Ready object, judged by kstatus: the model serves, so Current; Healthy=False says
    the fault."""
    uri, sha = model
    kube.apply(model_deployment("faulty", model={"uri": uri, "sha256": sha}))
    _watch(kube, kstatus, "faulty", "Current")
    live = kube.get("mdep", "faulty")
    assert live is not None
    fault = Fault(signal="LatencyP99", message="p99 1.2s over 0.5s", since="2026-12-02T00:00:00Z")
    patch = report.status_patch(
        ModelDeployment.model_validate(live), [fault], None, now="2026-12-02T00:00:01Z"
    )
    degraded = {**live, "status": {**live["status"], **patch}}
    assert degraded["status"]["phase"] == "Degraded"
    assert verdict(kstatus, degraded)["status"] == "Current"


def test_deleted_reads_terminating(
    kstatus: Path, kube: Kube, operator: Operator, model: tuple[str, str]
) -> None:
    uri, sha = model
    kube.apply(model_deployment("going", model={"uri": uri, "sha256": sha}))
    _watch(kube, kstatus, "going", "Current")
    live = kube.get("mdep", "going")
    assert live is not None
    going = {**live, "metadata": {**live["metadata"], "deletionTimestamp": "2026-12-02T00:00:00Z"}}
    assert verdict(kstatus, going)["status"] == "Terminating"
