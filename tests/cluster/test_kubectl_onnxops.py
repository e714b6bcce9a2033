"""`kubectl onnxops rollout ...` against the real apiserver: kubectl finds the plugin on PATH,
pause/resume patch spec.rollout.paused, promote/abort/retry write the action annotation, status
prints status.rollout (written here through the status subresource, as the operator does) and
--watch follows it to the end. No operator runs: these are what the plugin writes and reads.

Where the CRD has no spec.rollout yet (the rollout schema lands from another branch), the
module applies a copy of crds/modeldeployment.yaml with open `rollout` fields added, and puts
the real one back afterwards."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.deployments import model_deployment
from support.operator_kit import ROOT

pytestmark = pytest.mark.cluster

CRD = ROOT / "crds" / "modeldeployment.yaml"
ROLLOUT = {
    "paused": False,
    "steps": [{"shadow": 100, "pauseSeconds": 120}, {"weight": 10, "pauseSeconds": 60}],
}
OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _with_rollout_fields(crd: dict[str, Any]) -> dict[str, Any] | None:
    """The CRD with open spec/status.rollout added, or None when it has them already."""
    out = copy.deepcopy(crd)
    changed = False
    for version in out["spec"]["versions"]:
        props = version["schema"]["openAPIV3Schema"]["properties"]
        for part in ("spec", "status"):
            if "rollout" not in props[part].setdefault("properties", {}):
                props[part]["properties"]["rollout"] = dict(OPEN)
                changed = True
    return out if changed else None


@pytest.fixture(scope="module")
def cluster(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    patched = _with_rollout_fields(yaml.safe_load(CRD.read_text()))
    if patched is not None:
        crds.apply(patched)
        time.sleep(2)  # the apiserver's schema cache follows a CRD update within a second
    try:
        yield crds
    finally:
        if patched is not None:
            crds.run_kubectl("apply", "-f", str(CRD))


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding `kubectl-onnxops` (as the console script would be), this tree's."""
    bin_dir = tmp_path_factory.mktemp("plugin-bin")
    shim = bin_dir / "kubectl-onnxops"
    shim.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT / "operator"}" exec {sys.executable} '
        '-m onnxops.kubectl_plugin "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def kubectl(
    cluster: Any, plugin_path: Path, *args: str, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """`kubectl onnxops ...`, the way a user runs it: kubectl finds the plugin on PATH."""
    env = {**cluster.env(), "PATH": f"{plugin_path}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(cluster.kubectl), "onnxops", *args],
        env=env, capture_output=True, text=True, timeout=60, **kw,
    )  # fmt: skip


@pytest.fixture
def md(cluster: Any, k8s_namespace: str) -> str:
    body = model_deployment("iris", target={"pool": "cloud"}, rollout=copy.deepcopy(ROLLOUT))
    cluster.run_kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(body))
    return k8s_namespace


def read(cluster: Any, namespace: str, name: str = "iris") -> dict[str, Any]:
    obj: dict[str, Any] = cluster.kubectl_json("get", "modeldeployment", name, "-n", namespace)
    return obj


def write_status(cluster: Any, namespace: str, rollout: dict[str, Any]) -> None:
    cluster.run_kubectl(
        "patch", "modeldeployment", "iris", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"rollout": rollout}}),
    )  # fmt: skip


def test_pause_and_resume_patch_spec_rollout_paused(
    cluster: Any, plugin_path: Path, md: str
) -> None:
    done = kubectl(cluster, plugin_path, "rollout", "pause", "iris", "-n", md)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "modeldeployment.onnxops.io/iris rollout paused"
    rollout = read(cluster, md)["spec"]["rollout"]
    assert rollout["paused"] is True
    assert rollout["steps"] == ROLLOUT["steps"]  # a merge patch: the rest untouched
    done = kubectl(cluster, plugin_path, "rollout", "resume", "iris", "-n", md)
    assert done.returncode == 0, done.stderr
    assert read(cluster, md)["spec"]["rollout"]["paused"] is False


@pytest.mark.parametrize("action", ["promote", "abort", "retry"])
def test_actions_set_the_annotation_once_per_request(
    cluster: Any, plugin_path: Path, md: str, action: str
) -> None:
    before = read(cluster, md)["metadata"]["generation"]
    done = kubectl(cluster, plugin_path, "rollout", action, "iris", "-n", md)
    assert done.returncode == 0, done.stderr
    obj = read(cluster, md)
    value = obj["metadata"]["annotations"]["onnxops.io/rollout-action"]
    assert re.fullmatch(rf"{action}/\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value), value
    assert value in done.stdout
    assert obj["metadata"]["generation"] == before  # metadata only: the spec did not change


def test_status_prints_status_rollout_and_watch_follows_it_to_the_end(
    cluster: Any, plugin_path: Path, md: str
) -> None:
    waiting = kubectl(cluster, plugin_path, "rollout", "status", "iris", "-n", md)
    assert waiting.returncode == 0 and "not started" in waiting.stdout
    measurement = {
        "signal": "Agreement", "stable": 1.0, "candidate": 0.97, "threshold": 0.95,
        "verdict": "Successful", "message": "97% of 200 requests agree",
        "time": "2026-12-02T20:00:00Z",
    }  # fmt: skip
    progressing = {
        "phase": "Progressing", "step": 0, "steps": 2, "canaryWeight": 0, "shadowPercent": 100,
        "stableVersion": "1", "candidateVersion": "2", "failures": 0,
        "measurements": [measurement],
    }  # fmt: skip
    write_status(cluster, md, progressing)
    shown = kubectl(cluster, plugin_path, "rollout", "status", "iris", "-n", md)
    assert shown.returncode == 0, shown.stderr
    assert "Phase:      Progressing" in shown.stdout
    assert "Step:       1/2 (shadow 100%, pause 120s)" in shown.stdout
    assert "Versions:   stable 1, candidate 2" in shown.stdout
    row = next(line for line in shown.stdout.splitlines() if line.startswith("  Agreement"))
    words = "Agreement 1 0.97 0.95 Successful 97% of 200 requests agree"
    assert row.split() == words.split(" ")

    env = {**cluster.env(), "PATH": f"{plugin_path}{os.pathsep}{os.environ['PATH']}"}
    watch = subprocess.Popen(
        [str(cluster.kubectl), "onnxops", "rollout", "status", "iris", "-n", md, "--watch"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watch.stdout is not None
    seen: list[str] = []

    def shown_step(step: str) -> None:
        # Each change is written once the watch printed the last: the plugin's start (seconds
        # on a loaded machine) must not let a write land before its first block.
        for line in watch.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if line.startswith(f"Step:       {step}"):
                return
        raise AssertionError(f"--watch ended before showing step {step}: {''.join(seen)}")

    try:
        shown_step("1/2")
        assert watch.poll() is None, "--watch ended before the rollout did"
        write_status(
            cluster, md, {**progressing, "step": 1, "canaryWeight": 10, "shadowPercent": 0}
        )
        shown_step("2/2")
        write_status(cluster, md, {**progressing, "phase": "Promoted", "step": 1})
        rest, err = watch.communicate(timeout=30)
        out = "".join(seen) + rest
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, err
    blocks = out.strip().split("\n\n")  # one block per change seen
    assert "Step:       1/2 (shadow 100%, pause 120s)" in blocks[0]
    assert any("Step:       2/2 (weight 10%, pause 60s)" in b for b in blocks[1:-1])
    assert "Phase:      Promoted" in blocks[-1]


def test_no_rollout_not_found_and_bad_arguments_are_one_line(
    cluster: Any, plugin_path: Path, k8s_namespace: str
) -> None:
    plain = model_deployment("plain", target={"pool": "cloud"})
    cluster.run_kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(plain))
    for verb in ("status", "pause", "promote"):
        done = kubectl(cluster, plugin_path, "rollout", verb, "plain", "-n", k8s_namespace)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "has no spec.rollout" in done.stderr
    annotations = read(cluster, k8s_namespace, "plain")["metadata"].get("annotations") or {}
    assert "onnxops.io/rollout-action" not in annotations  # nothing written
    missing = kubectl(cluster, plugin_path, "rollout", "status", "nope", "-n", k8s_namespace)
    assert missing.returncode == 1 and "ModelDeployment" in missing.stderr
    assert missing.stderr.count("\n") == 1 and "not found" in missing.stderr
    bad = kubectl(cluster, plugin_path, "rollout", "explode", "plain")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
