"""Heal end to end: the operator (monitor + remediation) against a real Prometheus and the
pod runner as kubelet, with faults produced for real: OOM kills at every start under a small
memory limit are healed by rolling out raised memory, within the ceiling (a container in a crash
back-off cannot be resized in place: the kubelet would leave the pod's cgroup at the old limit);
a new model version that fails at inference is rolled back, the spec left as it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from devcluster.podrunner import PodRunner
from support.benchrecord import bench_record
from support.deployments import healing_deployment
from support.faults import broken_copy
from support.operator_kit import Kube, Operator, wait_for
from support.readings import condition, fault, live_pods, succeeded, taken
from support.serving_harness import Models
from support.traffic import Traffic, rows

pytestmark = [pytest.mark.loop, pytest.mark.slow]


def test_an_oom_looping_pod_is_healed_by_rolling_out_raised_memory(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models
) -> None:
    # The serving runtime holds ~44 MiB of anonymous memory once loaded: under a 32Mi limit
    # the kernel kills it as it starts, again and again.
    body = healing_deployment(
        "hungry",
        f"file://{loop_models.iris}",
        resources={"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        remediation={"resize": {"maxMemory": "256Mi", "inPlace": "auto"}},
    )
    body["spec"]["model"]["name"] = "iris"
    result = loop_kube.apply(body)
    assert result.returncode == 0, result.stderr
    try:
        (pod,) = wait_for(lambda: list(live_pods(loop_kube, "hungry").values()), "the pod", 60)
        uid = pod["metadata"]["uid"]
        started = time.monotonic()
        wait_for(lambda: fault(loop_kube.status("hungry"), "OOMKilled"), "an OOMKilled fault", 180)
        detected = time.monotonic()
        (record,) = succeeded(loop_kube, "hungry", "resize", 240)
        assert record["reason"] == "OOMKilled"
        # The pod was between two OOM kills (waiting out its back-off), or running again
        # seconds after one: either way not to be trusted with an in-place resize.
        said = record["message"]
        assert "is not running" in said or "ago and may be again" in said, record
        assert "the kubelet resizes only running containers" in record["message"]
        assert record["message"].endswith("rolled out instead"), record
        st = wait_for(
            lambda: (s := loop_kube.status("hungry")).get("readyReplicas") == 1 and s,
            "Ready again",
            240,
        )
        recovered = time.monotonic()
        # Written by heal's cycle; a racing writer may put an older copy back for a cycle.
        wait_for(
            lambda: condition(loop_kube.status("hungry"), "Remediating").get("status") == "False",
            "Remediating False",
            60,
        )
        (now,) = live_pods(loop_kube, "hungry").values()
        assert now["metadata"]["uid"] != uid  # a new pod, created with the raised limit
        # max(32Mi x 1.5, 32Mi + 100Mi) = 132Mi, under the 256Mi ceiling, in the template.
        assert now["spec"]["containers"][0]["resources"]["limits"]["memory"] == "132Mi"
        status = now["status"]["containerStatuses"][0]
        assert status["ready"] and status["resources"]["limits"]["memory"] == "132Mi"
        dep = loop_kube.get("deployment", "hungry")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
            "memory": "132Mi"
        }
        assert st["override"]["resources"]["limits"]["memory"] == "132Mi"
        assert "inPlaceGeneration" not in st["override"]  # the template carries it
        md = loop_kube.get("mdep", "hungry")
        assert md is not None and md["spec"]["resources"]["limits"] == {"memory": "32Mi"}
        resizes = taken(loop_kube.status("hungry"), "resize")
        assert len(resizes) == 1  # one action for the fault
        reasons = {e["reason"] for e in loop_kube.events("hungry")}
        assert "ResizeSucceeded" in reasons
        bench_record("oom", started, detected, recovered, len(resizes))
    finally:
        loop_kube.run("delete", "mdep", "hungry", "--wait=false", check=False)


def test_a_model_failing_at_inference_is_rolled_back_with_the_spec_unchanged(
    watcher: Operator,
    loop_kube: Kube,
    loop_runner: PodRunner,
    loop_models: Models,
    tmp_path: Path,
) -> None:
    v1 = {"uri": f"file://{loop_models.poison}", "name": "lookup", "version": "1"}
    broken = broken_copy(loop_models.poison, tmp_path / "lookup-2.onnx")
    v2 = {"uri": f"file://{broken}", "name": "lookup", "version": "2"}
    body = healing_deployment("lookup", v1["uri"])
    body["spec"]["model"] = v1
    assert loop_kube.apply(body).returncode == 0
    try:
        three = rows([3.0, 0.0])  # index 3: served by v1, out of range for v2
        with Traffic(loop_runner, loop_kube.namespace, "lookup", lambda: three) as traffic:
            # v1 serves well long enough (failureThreshold x intervalSeconds) to count as healthy.
            wait_for(
                lambda: (
                    ((loop_kube.status("lookup").get("models") or {}).get("healthy") or {}).get(
                        "version"
                    )
                    == "1"
                ),
                "v1 remembered as healthy",
                180,
            )
            loop_kube.run(
                "patch", "mdep", "lookup", "--type=merge", "-p", json.dumps({"spec": {"model": v2}})
            )
            started = time.monotonic()
            wait_for(lambda: fault(loop_kube.status("lookup"), "ErrorRate"), "ErrorRate", 180)
            detected = time.monotonic()
            (record,) = wait_for(
                lambda: [
                    r
                    for r in loop_kube.status("lookup").get("remediations") or []
                    if r["action"] == "rollback" and r["result"] == "Succeeded"
                ],
                "the rollback",
                240,
            )
            assert record["reason"] == "ErrorRate"
            assert "serving version 1 again" in record["message"]
            st = wait_for(
                lambda: (
                    (s := loop_kube.status("lookup")).get("phase") == "Degraded"
                    and condition(s, "RolledBack").get("status") == "True"
                    and not fault(s, "ErrorRate")
                    and s
                ),
                "v1 serving again, the fault cleared",
                240,
            )
            recovered = time.monotonic()
            assert "version 1 instead of 2" in condition(st, "RolledBack")["message"]
            assert traffic.codes.get(500, 0) > 0  # v2 failed for real
        md = loop_kube.get("mdep", "lookup")
        assert md is not None and md["spec"]["model"]["version"] == "2"  # GitOps owns the spec
        dep = loop_kube.get("deployment", "lookup")
        assert dep is not None
        env = {
            e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["ONNXOPS_MODEL_URI"] == v1["uri"] and env["ONNXOPS_MODEL_VERSION"] == "1"
        actions = [r["action"] for r in taken(st)]
        assert actions == ["rollback"]  # one action for the fault; no restart on top of it
        bench_record("bad-model", started, detected, recovered, len(actions))
        assert any(e["reason"] == "RollbackSucceeded" for e in loop_kube.events("lookup"))
    finally:
        loop_kube.run("delete", "mdep", "lookup", "--wait=false", check=False)
