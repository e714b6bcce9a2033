"""Heal end to end: the operator (monitor + remediation) against a real Prometheus and the
pod runner as kubelet, with faults produced for real. OOM kills under a small memory limit
are healed by raising memory in place, within the ceiling, without restarting the pod.
"""

from __future__ import annotations

from typing import Any

import pytest
from devcluster.podrunner import PodRunner
from faults import condition, fault
from operator_kit import Kube, Operator, wait_for
from serving_harness import Models

pytestmark = [pytest.mark.loop, pytest.mark.slow]

FAST = {"intervalSeconds": 5, "failureThreshold": 2, "unknownThreshold": 2}


def _md(name: str, uri: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": uri, "name": name},
            "target": {"pool": "cloud"},
            "monitoring": {**FAST, "anomaly": {"enabled": False}},
            **spec,
        },
    }


def _records(kube: Kube, name: str, action: str) -> list[dict[str, Any]]:
    return [r for r in kube.status(name).get("remediations") or [] if r["action"] == action]


def _pods(kube: Kube, name: str) -> list[dict[str, Any]]:
    return kube.items("pods", f"onnxops.io/model-deployment={name}")


def _resize_confirmed(kube: Kube) -> list[dict[str, Any]]:
    """The resize records the kubelet confirmed; on a timeout the failure shows status."""
    try:
        found: list[dict[str, Any]] = wait_for(
            lambda: [r for r in _records(kube, "hungry", "resize") if r["result"] == "Succeeded"],
            "the resize confirmed by the kubelet",
            240,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status {kube.status('hungry')}") from None
    return found


def test_oom_kills_raise_memory_in_place_within_the_ceiling(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models
) -> None:
    # The serving runtime holds ~44 MiB of anonymous memory once loaded: under a 32Mi limit
    # the kernel kills it as it starts, again and again.
    body = _md(
        "hungry",
        f"file://{loop_models.iris}",
        resources={"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        remediation={"resize": {"maxMemory": "256Mi", "inPlace": "auto"}},
    )
    body["spec"]["model"]["name"] = "iris"
    result = loop_kube.apply(body)
    assert result.returncode == 0, result.stderr
    try:
        (pod,) = wait_for(lambda: _pods(loop_kube, "hungry"), "the pod", 60)
        uid = pod["metadata"]["uid"]
        wait_for(lambda: fault(loop_kube.status("hungry"), "OOMKilled"), "an OOMKilled fault", 180)
        (record,) = _resize_confirmed(loop_kube)
        assert record["reason"] == "OOMKilled"
        assert "the kubelet applied the new resources" in record["message"]
        # max(32Mi x 1.5, 32Mi + 100Mi) = 132Mi, under the 256Mi ceiling.
        (now,) = _pods(loop_kube, "hungry")
        assert now["metadata"]["uid"] == uid  # resized in place: the same pod
        resources = now["spec"]["containers"][0]["resources"]
        assert resources["limits"]["memory"] == "132Mi"
        st = wait_for(
            lambda: (s := loop_kube.status("hungry")).get("readyReplicas") == 1 and s,
            "Ready again",
            240,
        )
        assert condition(st, "Remediating")["status"] == "False"
        # The template keeps the spec's values until the spec's next rollout: nothing rolled.
        dep = loop_kube.get("deployment", "hungry")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
            "memory": "32Mi"
        }
        assert st["override"]["resources"]["limits"]["memory"] == "132Mi"
        taken = [r for r in _records(loop_kube, "hungry", "resize") if r["result"] != "Refused"]
        assert len(taken) == 1  # one action for the fault
        reasons = {e["reason"] for e in loop_kube.events("hungry")}
        assert {"ResizeInProgress", "ResizeSucceeded"} <= reasons
    finally:
        loop_kube.run("delete", "mdep", "hungry", "--wait=false", check=False)
