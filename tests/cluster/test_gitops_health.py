"""GitOps health, judged by the tools' own code on live ModelDeployments through their life:
kstatus (`hack/kstatus`: sigs.k8s.io/cli-utils' pkg/kstatus/status, what Flux waits with) and
Argo CD's health script (`manifests/argocd/.../health.lua`, run by `hack/argolua` as Argo CD
runs it). kstatus must say InProgress while a generation rolls out or a failure is retried by
itself or a remediation is in flight, Current once Ready (and rolled back), Failed when the
user must act, Terminating while deleted and NotFound once gone; Argo CD Progressing,
Healthy, Degraded. A monitor fault while serving reads Current to kstatus and
Degraded to Argo CD (docs/gitops.md says why).

With ONNXOPS_CAPTURE_ARGO_TESTDATA=1 the objects judged here are written to the health
script's testdata/ (health_test.yaml lists them), so those files are captured, not written.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster import processes
from onnxops.api import Fault, ModelDeployment, RemediationRecord
from onnxops.monitor import report
from onnxops.reasons import HealResult
from onnxops.remediation import history
from support.deployments import model_deployment
from support.factories import doubler_model
from support.operator_kit import ROOT, Kube, Operator

pytestmark = pytest.mark.cluster

POD_RUNNER_COMMAND = None  # the real serving runtime: a bad model really fails to load
# (every model here is a local file: the runtime must never try to reach a remote host)

ARGO = ROOT / "manifests" / "argocd" / "onnxops.io" / "ModelDeployment"


def _tool(folder: str, module: str) -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "gotool.sh"), str(ROOT / "hack" / folder), module],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(built.stdout.strip().splitlines()[-1])


class Judges:
    def __init__(self) -> None:
        self.kstatus_bin = _tool("kstatus", "sigs.k8s.io/cli-utils")
        self.argo_bin = _tool("argolua", "github.com/yuin/gopher-lua")

    def kstatus(self, obj: dict[str, Any]) -> dict[str, str]:
        done = subprocess.run(
            [str(self.kstatus_bin)], input=json.dumps(obj), capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        return dict(json.loads(done.stdout))

    def kstatus_live(self, kube: Kube, name: str) -> dict[str, str]:
        """kstatus on what `kubectl get mdep NAME --ignore-not-found -o json` prints: the
        live object, or nothing once it is gone (the checker then says NotFound)."""
        got = kube.run("get", "mdep", name, "--ignore-not-found", "-o", "json")
        done = subprocess.run(
            [str(self.kstatus_bin)], input=got.stdout, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        return dict(json.loads(done.stdout))

    def argo(self, obj: dict[str, Any], case: str | None = None) -> dict[str, str]:
        done = subprocess.run(
            [str(self.argo_bin), str(ARGO / "health.lua")],
            input=json.dumps(obj), capture_output=True, text=True, check=True,
        )  # fmt: skip
        if case and os.environ.get("ONNXOPS_CAPTURE_ARGO_TESTDATA"):
            kept = {
                **obj,
                "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"},
            }
            plain = json.loads(json.dumps(kept))  # StrEnum members as the strings they are
            (ARGO / "testdata" / f"{case}.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
        return dict(json.loads(done.stdout))

    def action(self, script: Path, obj: dict[str, Any]) -> dict[str, Any]:
        """What an Argo CD action script returns for `obj` (run with Argo CD's `os.date`)."""
        done = subprocess.run(
            [str(self.argo_bin), "--action", str(script)],
            input=json.dumps(obj), capture_output=True, text=True, check=True,
        )  # fmt: skip
        return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def judges() -> Judges:
    return Judges()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    path = tmp_path_factory.mktemp("gitops-model") / "doubler.onnx"
    yield str(path), doubler_model(path)


def _watch(
    kube: Kube, judges: Judges, name: str, until: str, timeout_s: float = 90
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """kstatus' verdicts on the live object, polled until it says `until`: the object then,
    and every verdict seen."""
    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        obj = kube.get("mdep", name)
        if obj is not None:
            seen.append(judges.kstatus(obj))
            if seen[-1]["status"] == until:
                return obj, seen
        time.sleep(0.2)
    raise AssertionError(f"{name}: kstatus never said {until}; it said {seen[-3:]}")


def test_a_new_object_reads_in_progress_before_any_operator_writes(
    kube: Kube, judges: Judges, model: tuple[str, str]
) -> None:
    """First in the module, before the module's operator starts: the CRD's status default
    (observedGeneration 0) is all there is, and neither tool may take that for done."""
    uri, sha = model
    kube.apply(model_deployment("unseen", model={"uri": uri, "sha256": sha}))
    obj = kube.get("mdep", "unseen")
    assert obj is not None and obj["status"] == {"observedGeneration": 0}
    said = judges.kstatus(obj)
    assert said["status"] == "InProgress" and "observed generation is 0" in said["message"]
    assert judges.argo(obj, "unobserved")["status"] == "Progressing"


def test_created_then_changed_reads_in_progress_then_current(
    kube: Kube, operator: Operator, judges: Judges, model: tuple[str, str]
) -> None:
    uri, sha = model
    kube.apply(model_deployment("life", model={"uri": uri, "sha256": sha}))
    obj, _ = _watch(kube, judges, "life", "Current")
    assert obj["status"]["phase"] == "Ready"
    assert judges.argo(obj, "ready") == {"status": "Healthy", "message": "1/1 replicas ready"}
    # A new generation: InProgress (observedGeneration behind, then Reconciling while the
    # second pod loads), Current once both serve.
    kube.apply(model_deployment("life", model={"uri": uri, "sha256": sha}, replicas=2))
    rolling = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        live = kube.get("mdep", "life") or {}
        if live.get("status", {}).get("phase") == "Progressing" and rolling is None:
            rolling = live
        if judges.kstatus(live)["status"] == "Current" and live["status"]["ready"] == "2/2":
            break
        time.sleep(0.1)
    assert rolling is not None, "never seen Progressing"
    assert judges.kstatus(rolling)["status"] == "InProgress"
    assert judges.argo(rolling, "progressing")["status"] == "Progressing"


def test_a_spec_judged_unworkable_fails_and_a_retried_one_is_in_progress(
    kube: Kube, operator: Operator, judges: Judges
) -> None:
    kube.apply(model_deployment("nowhere", target={"pool": "gpu"}))
    obj, seen = _watch(kube, judges, "nowhere", "Failed")
    assert "gpu" in seen[-1]["message"]
    argo = judges.argo(obj, "unknown-pool")
    assert argo["status"] == "Degraded" and argo["message"].startswith("UnknownPool: ")
    # A ConfigMap that may yet be applied (GitOps order): retried, so not Failed.
    kube.apply(model_deployment("later", model={"uri": "configmap://not-yet/model.onnx"}))
    processes.wait_for(
        lambda: kube.status("later").get("phase") == "Failed",
        timeout_s=60,
        what="later judged (ModelUnreachable, retried)",
    )
    live = kube.get("mdep", "later") or {}
    waiting = judges.kstatus(live)
    assert waiting["status"] == "InProgress" and "not-yet" in waiting["message"], waiting
    argo = judges.argo(live, "retried-failure")
    assert argo["status"] == "Progressing" and "not-yet" in argo["message"]


def test_pods_that_cannot_load_the_model_read_failed(
    kube: Kube, operator: Operator, judges: Judges, model: tuple[str, str]
) -> None:
    uri, _ = model
    kube.apply(model_deployment("tampered", model={"uri": uri, "sha256": "0" * 64}))
    obj, seen = _watch(kube, judges, "tampered", "Failed")
    assert "sha256 mismatch" in seen[-1]["message"], seen[-1]
    argo = judges.argo(obj, "load-failed")
    assert argo["status"] == "Degraded" and argo["message"].startswith("ModelLoadFailed: ")


def _write_status(kube: Kube, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of the status subresource through the apiserver, as the operator writes
    its status (k8s.patch_status); the live object as the apiserver then returns it."""
    body = json.dumps({"status": patch})
    kube.run("patch", "mdep", name, "--subresource=status", "--type=merge", "-p", body)
    return kube.get("mdep", name) or {}


def test_degraded_by_a_fault_while_serving_reads_current_and_argo_degraded(
    kube: Kube, operator: Operator, judges: Judges, model: tuple[str, str]
) -> None:
    """The monitor's own status patch (report.status_patch, as its cycle writes it), written
    through the apiserver's status subresource over a live Ready object (the operator stopped
    for it, as below): the model serves, so kstatus says Current on the live object; Argo CD
    shows the fault. (The fault is the patch, not a slow model: the judges read status, and
    the monitor's loop tests produce real faults.)"""
    uri, sha = model
    kube.apply(model_deployment("faulty", model={"uri": uri, "sha256": sha}))
    live, _ = _watch(kube, judges, "faulty", "Current")
    fault = Fault(signal="LatencyP99", message="p99 1.2s over 0.5s", since="2026-12-02T00:00:00Z")
    patch = report.status_patch(
        ModelDeployment.model_validate(live), [fault], None, now="2026-12-02T00:00:01Z"
    )
    # With the operator stopped for the write: its own monitor, without a Prometheus here,
    # clears faults it cannot see (as it must), and would race the judges for the object.
    operator.stop()
    try:
        degraded = _write_status(kube, "faulty", json.loads(json.dumps(patch)))
    finally:
        operator.start()
    assert degraded["status"]["phase"] == "Degraded"
    assert {"type": "Healthy", "status": "False"}.items() <= next(
        c for c in degraded["status"]["conditions"] if c["type"] == "Healthy"
    ).items()
    assert judges.kstatus(degraded)["status"] == "Current"
    argo = judges.argo(degraded, "fault")
    assert argo == {"status": "Degraded", "message": "LatencyP99: p99 1.2s over 0.5s"}


def test_rolled_back_reads_current_and_argo_degraded(
    kube: Kube,
    operator: Operator,
    judges: Judges,
    model: tuple[str, str],
    tmp_path: Path,
) -> None:
    """A rollback as heal writes it (status.override: the model rolled back to and the spec's
    model it replaces, through the status subresource); the operator's next reconcile (a
    replica change) serves the older model and says RolledBack=True itself: Degraded, and
    kstatus reads Current on the live object (docs/gitops.md's table)."""
    uri, sha = model
    older = tmp_path / "older.onnx"
    older_sha = doubler_model(older)
    kube.apply(model_deployment("back", model={"uri": uri, "sha256": sha}))
    _watch(kube, judges, "back", "Current")
    override = {
        "model": {"uri": str(older), "sha256": older_sha},
        "modelReplaces": {"uri": uri, "sha256": sha},
    }
    _write_status(kube, "back", {"override": override})
    kube.apply(model_deployment("back", model={"uri": uri, "sha256": sha}, replicas=2))

    def rolled_back() -> dict[str, Any] | None:
        live = kube.get("mdep", "back") or {}
        st = live.get("status", {})
        kinds = {c["type"]: c["status"] for c in st.get("conditions", [])}
        done = st.get("phase") == "Degraded" and st.get("ready") == "2/2"
        return live if done and kinds.get("RolledBack") == "True" else None

    live = processes.wait_for(rolled_back, timeout_s=120, what="back rolled back, 2/2 ready")
    said = judges.kstatus(live)
    assert said["status"] == "Current", said
    argo = judges.argo(live, "rolled-back")
    assert argo["status"] == "Degraded" and "serving version" in argo["message"], argo


def _heal_writes(kube: Kube, name: str, record: RemediationRecord) -> dict[str, Any]:
    """What heal's cycle writes for `record` (record.Cycle.write: the history and the
    conditions history.remediating gives), through the status subresource."""
    live = ModelDeployment.model_validate(kube.get("mdep", name))
    md = live.model_copy(
        update={"status": live.status.model_copy(update={"remediations": [record]})}
    )
    conditions = history.remediating(md, datetime.now(UTC))
    patch = {"remediations": [record.wire()], "conditions": conditions}
    return _write_status(kube, name, json.loads(json.dumps(patch)))


def test_being_healed_reads_in_progress_until_the_action_ends(
    kube: Kube, operator: Operator, judges: Judges, model: tuple[str, str]
) -> None:
    """A remediation in flight (an InProgress record, Remediating=True) as heal writes it:
    Reconciling=True (ActionInFlight) with it, so kstatus says InProgress on the live object,
    and the operator's own reconciles (a resync runs every 5 s here) keep saying so while it
    lasts; Current again once the record is finished."""
    uri, sha = model
    kube.apply(model_deployment("healing", model={"uri": uri, "sha256": sha}))
    _watch(kube, judges, "healing", "Current")
    started = datetime.now(UTC)
    record = RemediationRecord.model_validate(
        {
            "id": "gitops-1",
            "time": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "action": "restart",
            "reason": "ErrorRate",
            "result": "InProgress",
            "message": "5xx ratio 0.4 over 0.05",
        }
    )
    busy = _heal_writes(kube, "healing", record)
    kinds = {c["type"]: c for c in busy["status"]["conditions"]}
    assert kinds["Remediating"]["status"] == "True"
    assert kinds["Reconciling"]["reason"] == "ActionInFlight"
    said = judges.kstatus(busy)
    assert said["status"] == "InProgress" and "5xx ratio" in said["message"], said
    # The reconcile path recomputes conditions on each resync and writes what differs: one
    # that dropped Reconciling would turn this Current within the wait.
    time.sleep(8)
    assert judges.kstatus_live(kube, "healing")["status"] == "InProgress"
    done = history.finished(record, HealResult.SUCCEEDED, "pods replaced", datetime.now(UTC))
    ended = _heal_writes(kube, "healing", done)
    assert "Reconciling" not in {c["type"] for c in ended["status"]["conditions"]}
    assert judges.kstatus(ended)["status"] == "Current"


def test_deleted_reads_terminating_then_not_found(
    judges: Judges, kube: Kube, operator: Operator, model: tuple[str, str]
) -> None:
    """A real `kubectl delete` of an object held by a finalizer (one of the test's, beside
    kopf's onnxops.io/finalizer, so deletion stays observable): kstatus says Terminating on
    the live object; once the finalizer goes the apiserver has none left, which kstatus'
    poller reports as NotFound."""
    uri, sha = model
    kube.apply(model_deployment("going", model={"uri": uri, "sha256": sha}))
    _watch(kube, judges, "going", "Current")
    live = kube.get("mdep", "going") or {}
    held = [*live["metadata"].get("finalizers", []), "test.onnxops.io/hold"]
    hold = json.dumps({"metadata": {"finalizers": held}})
    kube.run("patch", "mdep", "going", "--type=merge", "-p", hold)
    kube.run("delete", "mdep", "going", "--wait=false")
    going = kube.get("mdep", "going")
    assert going is not None and going["metadata"].get("deletionTimestamp")
    said = judges.kstatus(going)
    assert said["status"] == "Terminating", said
    # kopf lets its own finalizer go; ours still holds the object, still Terminating.
    processes.wait_for(
        lambda: (
            (kube.get("mdep", "going") or {}).get("metadata", {}).get("finalizers")
            == ["test.onnxops.io/hold"]
        ),
        timeout_s=60,
        what="the operator released its finalizer",
    )
    assert judges.kstatus_live(kube, "going")["status"] == "Terminating"
    kube.run("patch", "mdep", "going", "--type=json", "-p",
             '[{"op":"remove","path":"/metadata/finalizers"}]')  # fmt: skip
    processes.wait_for(lambda: kube.get("mdep", "going") is None, timeout_s=30, what="going gone")
    assert judges.kstatus_live(kube, "going")["status"] == "NotFound"


def test_the_health_script_passes_its_captured_cases(judges: Judges) -> None:
    """Argo CD's own layout: health_test.yaml names each testdata file and the health it must
    give (the files captured above with ONNXOPS_CAPTURE_ARGO_TESTDATA=1)."""
    cases = yaml.safe_load((ARGO / "health_test.yaml").read_text())["tests"]
    assert len(cases) >= 6
    for case in cases:
        obj = yaml.safe_load((ARGO / case["inputPath"]).read_text())
        assert judges.argo(obj) == case["healthStatus"], case["inputPath"]


def test_the_argo_restart_action_rolls_the_pods(
    judges: Judges, kube: Kube, operator: Operator, model: tuple[str, str]
) -> None:
    """Argo CD's `restart` action (actions/restart/action.lua, run as Argo CD runs actions),
    its change patched onto the live object as Argo CD does: every pod is replaced, and the
    model is Ready again."""
    uri, sha = model
    kube.apply(model_deployment("bounce", model={"uri": uri, "sha256": sha}))
    live, _ = _watch(kube, judges, "bounce", "Current")
    assert "restart" in judges.action(ARGO / "actions" / "discovery.lua", live)
    before = {
        p["metadata"]["name"] for p in kube.items("pods", "onnxops.io/model-deployment=bounce")
    }
    restarted = judges.action(ARGO / "actions" / "restart" / "action.lua", live)
    annotations = restarted["metadata"]["annotations"]
    assert "onnxops.io/restart-requested-at" in annotations
    patch = json.dumps({"metadata": {"annotations": annotations}})
    kube.run("patch", "mdep", "bounce", "--type", "merge", "-p", patch)

    def replaced() -> bool:
        pods = kube.items("pods", "onnxops.io/model-deployment=bounce")
        names = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
        return bool(names) and not names & before and kube.status("bounce").get("phase") == "Ready"

    processes.wait_for(replaced, timeout_s=120, what="bounce's pods replaced and Ready")


def _action(judges: Judges, kube: Kube, name: str, verb: str) -> dict[str, Any]:
    """Argo CD's `verb` action run on the live object (offered by discovery.lua), its
    annotation patched on as Argo CD patches an action's result; the object before."""
    live = kube.get("mdep", name) or {}
    offered = judges.action(ARGO / "actions" / "discovery.lua", live)
    assert offered[verb] == {"disabled": False}, offered
    changed = judges.action(ARGO / "actions" / verb / "action.lua", live)
    value = changed["metadata"]["annotations"]["onnxops.io/rollout-action"]
    assert value.startswith(f"{verb}/"), value
    patch = json.dumps({"metadata": {"annotations": {"onnxops.io/rollout-action": value}}})
    kube.run("patch", "mdep", name, "--type", "merge", "-p", patch)
    return live


def _rollout_phase(kube: Kube, name: str, phase: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        live = kube.get("mdep", name) or {}
        return live if live.get("status", {}).get("rollout", {}).get("phase") == phase else None

    return processes.wait_for(reached, timeout_s=120, what=f"{name}'s rollout {phase}")


def test_a_rollout_reads_in_progress_an_aborted_one_failed_and_argo_actions_drive_it(
    kube: Kube, operator: Operator, judges: Judges, model: tuple[str, str]
) -> None:
    """A real rollout (a canary Deployment with serving pods; no Prometheus here, so every
    measurement is inconclusive and only the user moves it on): kstatus InProgress while it
    runs and Argo CD Progressing (Suspended while paused); Argo CD's abort action ends it with
    the canary gone and kstatus Failed (Stalled: the spec names a model that is not served);
    retry starts it again; promote rolls the stable pods to the candidate: Current, Healthy."""
    uri, sha = model
    steps = {"steps": [{"weight": 50, "pauseSeconds": 3600}]}

    def spec(version: str, **rollout: Any) -> dict[str, Any]:
        model_ = {"uri": uri, "sha256": sha, "version": version}
        return model_deployment("canaried", model=model_, replicas=2, rollout={**steps, **rollout})

    kube.apply(spec("1"))
    _watch(kube, judges, "canaried", "Current")
    kube.apply(spec("2"))
    running = _rollout_phase(kube, "canaried", "Inconclusive")
    processes.wait_for(
        lambda: kube.get("deployment", "canaried-canary") is not None,
        timeout_s=60,
        what="the canary Deployment",
    )
    said = judges.kstatus_live(kube, "canaried")
    assert said["status"] == "InProgress" and "rolling out version 2" in said["message"], said
    argo = judges.argo(kube.get("mdep", "canaried") or running, "rollout-progressing")
    assert argo["status"] == "Progressing" and "rolling out version 2" in argo["message"], argo
    offered = judges.action(ARGO / "actions" / "discovery.lua", running)
    assert offered["retry"] == {"disabled": True}  # nothing aborted yet

    kube.apply(spec("2", paused=True))
    paused = _rollout_phase(kube, "canaried", "Paused")
    processes.wait_for(
        lambda: "paused" in judges.argo(kube.get("mdep", "canaried") or paused)["message"],
        timeout_s=30,
        what="the paused step in Reconciling's message",
    )
    assert judges.argo(kube.get("mdep", "canaried") or paused, "rollout-paused") == {
        "status": "Suspended",
        "message": "rolling out version 2 (stable 1): step 1/1, paused",
    }
    assert judges.kstatus_live(kube, "canaried")["status"] == "InProgress"
    kube.apply(spec("2", paused=False))

    _action(judges, kube, "canaried", "abort")
    _rollout_phase(kube, "canaried", "Aborted")
    aborted, seen = _watch(kube, judges, "canaried", "Failed", timeout_s=60)
    assert "version 2 not rolled out" in seen[-1]["message"], seen[-1]
    processes.wait_for(
        lambda: kube.get("deployment", "canaried-canary") is None,
        timeout_s=60,
        what="the canary removed",
    )
    argo = judges.argo(aborted, "rollout-aborted")
    assert argo["status"] == "Degraded" and argo["message"].startswith("UserAborted: "), argo
    offered = judges.action(ARGO / "actions" / "discovery.lua", aborted)
    assert offered["promote"] == {"disabled": True} and offered["abort"] == {"disabled": True}

    _action(judges, kube, "canaried", "retry")
    _watch(kube, judges, "canaried", "InProgress", timeout_s=60)
    _rollout_phase(kube, "canaried", "Inconclusive")
    _action(judges, kube, "canaried", "promote")
    _rollout_phase(kube, "canaried", "Promoted")
    promoted, _ = _watch(kube, judges, "canaried", "Current", timeout_s=120)
    assert judges.argo(promoted)["status"] == "Healthy"
    stable = kube.get("deployment", "canaried") or {}
    env = {
        e["name"]: e.get("value")
        for e in stable["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ONNXOPS_MODEL_VERSION"] == "2"
    processes.wait_for(
        lambda: kube.get("deployment", "canaried-canary") is None,
        timeout_s=60,
        what="the canary removed after promotion",
    )
