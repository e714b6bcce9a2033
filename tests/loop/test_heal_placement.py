"""Heal end to end, faults of placement: the operator (monitor + remediation) against a real
Prometheus and the pod runner as kubelet, the scheduler and the nodes' room real. An edge pool
left without room by a drain fails the model over to the cloud pool and back once room
returns; a memory resize the node cannot fit is Deferred by the kubelet, then rolled out to a
node with room. Filler pods (plain pods KWOK runs) take the nodes' room.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from devcluster.podrunner import PodRunner
from devcluster.resize import pod_requests
from support import nodes as node_kit
from support.benchrecord import bench_record
from support.deployments import MEMORY_TIGHT, MEMORY_WATCHED, healing_deployment
from support.operator_kit import Kube, Operator, wait_for
from support.readings import condition, fault, live_pods, succeeded, taken
from support.serving_harness import Models

pytestmark = [pytest.mark.loop, pytest.mark.slow]

POOL_LABEL = "onnxops.io/pool"
MIB = 1024 * 1024


def _md(name: str, uri: str, **spec: Any) -> dict[str, Any]:
    """The heal tests' ModelDeployment, serving iris."""
    body = healing_deployment(name, uri, **spec)
    body["spec"]["model"]["name"] = "iris"
    return body


def _ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conditions.get("Ready") == "True"


def _node(kube: Kube, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.cluster.kubectl_json("get", "node", name)
    return found


def _pool_of(kube: Kube, node: str) -> str:
    return str(_node(kube, node)["metadata"]["labels"].get(POOL_LABEL))


def _ready_on(kube: Kube, name: str, pool: str) -> dict[str, Any]:
    """The model's one live pod once it is Ready on a node of `pool` (and the only one)."""

    def found() -> dict[str, Any] | None:
        pods = list(live_pods(kube, name).values())
        if len(pods) != 1 or not _ready(pods[0]):
            return None
        node = pods[0]["spec"].get("nodeName")
        return pods[0] if node and _pool_of(kube, node) == pool else None

    pod: dict[str, Any] = wait_for(found, f"{name}'s pod alone and Ready on pool {pool}", 300)
    return pod


def _node_pods(kube: Kube, node: str) -> list[dict[str, Any]]:
    """The pods bound to `node`, any namespace, that still hold their requests there."""
    pods = kube.cluster.kubectl_json(
        "get", "pods", "-A", "--field-selector", f"spec.nodeName={node}"
    )["items"]
    return [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]


def _free(kube: Kube, node: str) -> int:
    """Memory bytes of `node` not requested by its pods."""
    return node_kit.allocatable(kube, node)[1] - sum(
        pod_requests(p)[1] for p in _node_pods(kube, node)
    )


def _evaluations(op: Operator) -> float:
    """Model evaluations the monitor made so far (its own counter, read or not)."""
    text = httpx.get(op.metrics_url, timeout=5).text  # type: ignore[attr-defined]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("onnxops_operator_evaluations_total")
    )


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _reasons(kube: Kube, name: str) -> dict[str, str]:
    return {e["reason"]: e["message"] for e in kube.events(name)}


def test_a_full_edge_pool_fails_over_to_cloud_and_back_once_room_returns(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models
) -> None:
    body = _md(
        "edgy",
        f"file://{loop_models.iris}",
        target={"pool": "edge", "fallbackPool": "cloud"},
        replicas=1,
        # Short bounds so the test takes minutes; the cooldown (default 300 s) would otherwise
        # hold the failback back as one disruption too soon after the failover.
        remediation={"unschedulableSeconds": 10, "failbackSeconds": 20, "cooldownSeconds": 10},
    )
    cordoned: list[str] = []
    fillers: list[str] = []
    assert loop_kube.apply(body).returncode == 0
    try:
        first = _ready_on(loop_kube, "edgy", "edge")
        node_a = first["spec"]["nodeName"]
        edge_nodes = loop_kube.cluster.kubectl_json("get", "nodes", "-l", f"{POOL_LABEL}=edge")
        (node_b,) = [
            n["metadata"]["name"] for n in edge_nodes["items"] if n["metadata"]["name"] != node_a
        ]
        # The edge pool full: node B's room all taken, node A drained (cordoned, our pod
        # evicted) as for maintenance. The replacement pod fits nowhere on edge.
        cpu_m, memory = node_kit.allocatable(loop_kube, node_b)
        fillers.append("edge-filler")
        node_kit.filler(loop_kube, "edge-filler", node_b, cpu_m=cpu_m, memory=memory)
        cordoned.append(node_a)
        started = time.monotonic()
        drained = loop_kube.run(
            "drain",
            node_a,
            "--pod-selector=onnxops.io/model-deployment=edgy",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=180s",
            check=False,
        )
        assert drained.returncode == 0, drained.stderr
        st = wait_for(
            lambda: (s := loop_kube.status("edgy")) and fault(s, "Unschedulable") and s,
            "an Unschedulable fault",
            180,
        )
        detected = time.monotonic()
        assert st["pool"] == "edge"  # found on edge, before any failover

        (failover,) = succeeded(loop_kube, "edgy", "failover", 300)
        assert failover["reason"] == "Unschedulable"
        assert "moving to cloud" in failover["message"]
        assert "re-applied with the override" in failover["message"]
        moved = _ready_on(loop_kube, "edgy", "cloud")
        recovered = time.monotonic()
        st = wait_for(
            lambda: (s := loop_kube.status("edgy")).get("pool") == "cloud" and s,
            "status.pool cloud",
            120,
        )
        assert st["override"]["pool"] == "cloud"
        dep = loop_kube.get("deployment", "edgy")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == "cloud"
        md = loop_kube.get("mdep", "edgy")
        assert md is not None
        assert md["spec"]["target"] == {"pool": "edge", "fallbackPool": "cloud"}  # the user's
        assert "FailoverSucceeded" in _reasons(loop_kube, "edgy")
        # Past failbackSeconds and the cooldown, the edge pool still full (node A cordoned,
        # node B filled): six more monitor cycles, 5 s apart, and still no way back.
        seen = _evaluations(watcher)
        wait_for(lambda: _evaluations(watcher) >= seen + 6, "six more evaluations", 180)
        assert not taken(loop_kube.status("edgy"), "failback")

        # Room returns: maintenance over.
        loop_kube.run("uncordon", node_a)
        cordoned.remove(node_a)
        (failback,) = succeeded(loop_kube, "edgy", "failback", 300)
        assert failback["reason"] == "PoolHasRoom"
        assert "pool edge has room again" in failback["message"]
        back = _ready_on(loop_kube, "edgy", "edge")
        assert back["spec"]["nodeName"] == node_a  # B is still full
        assert back["metadata"]["uid"] != moved["metadata"]["uid"]
        wait_for(
            lambda: (
                (s := loop_kube.status("edgy")).get("pool") == "edge"
                and s.get("readyReplicas") == 1
            ),
            "status.pool edge, Ready",
            120,
        )
        dep = loop_kube.get("deployment", "edgy")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == "edge"
        assert "FailbackSucceeded" in _reasons(loop_kube, "edgy")

        # No flapping: a few more monitor cycles (20 s, past the cooldown) change nothing.
        seen = _evaluations(watcher)
        wait_for(lambda: _evaluations(watcher) >= seen + 4, "four more evaluations", 120)
        assert len(taken(loop_kube.status("edgy"), "failover")) == 1
        assert len(taken(loop_kube.status("edgy"), "failback")) == 1
        assert _ready_on(loop_kube, "edgy", "edge")["metadata"]["uid"] == back["metadata"]["uid"]
        bench_record("edge-full", started, detected, recovered, 1)  # the failover, checked above
    finally:
        for node in cordoned:
            loop_kube.run("uncordon", node, check=False)
        for filler in fillers:
            loop_kube.run("delete", "pod", filler, "--wait=false", check=False)
        loop_kube.run("delete", "mdep", "edgy", "--wait=false", check=False)


def test_a_resize_the_node_cannot_fit_is_deferred_then_rolled_out_elsewhere(
    watcher: Operator, loop_kube: Kube, loop_runner: PodRunner, loop_models: Models
) -> None:
    # A running pod short of memory (`MEMORY_WATCHED`): one resizable in place.
    body = _md(
        "squeezed",
        f"file://{loop_models.iris}",
        thresholds=MEMORY_WATCHED,
        resources=MEMORY_TIGHT,
        remediation={"resize": {"maxMemory": "256Mi", "inPlace": "auto", "deferredSeconds": 20}},
    )
    # The model's node X filled before the model comes, so that no resize can race the
    # filler: X keeps room for the 16Mi pod and 50Mi more, too little for the resize to
    # 116Mi requested (+100Mi); the other cloud nodes are full for as long as it takes the
    # pod to land on X, then emptied, so they have room when the resize rolls out instead.
    # X is a node with no pod terminating: one that went later would leave room behind.
    cloud = loop_kube.cluster.kubectl_json("get", "nodes", "-l", f"{POOL_LABEL}=cloud")
    names = [n["metadata"]["name"] for n in cloud["items"]]
    going = {
        n: sum(1 for p in _node_pods(loop_kube, n) if p["metadata"].get("deletionTimestamp"))
        for n in names
    }
    node, *others = sorted(names, key=lambda n: (going[n], n))
    fillers: list[str] = []
    try:
        fillers.append(f"filler-{node}")
        node_kit.filler(
            loop_kube, f"filler-{node}", node, cpu_m=0, memory=_free(loop_kube, node) - 66 * MIB
        )
        for other in others:
            fillers.append(f"filler-{other}")
            node_kit.filler(
                loop_kube,
                f"filler-{other}",
                other,
                cpu_m=0,
                memory=node_kit.allocatable(loop_kube, other)[1],
            )
        assert loop_kube.apply(body).returncode == 0
        started = time.monotonic()
        (pod,) = wait_for(
            lambda: [
                p for p in live_pods(loop_kube, "squeezed").values() if p["spec"].get("nodeName")
            ],
            "the pod bound to a node",
            120,
        )
        assert pod["spec"]["nodeName"] == node  # the one node with room for it
        for other in others:
            loop_kube.run("delete", "pod", f"filler-{other}", "--timeout=60s")
        wait_for(
            lambda: fault(loop_kube.status("squeezed"), "MemoryUtilization"),
            "a MemoryUtilization fault",
            180,
        )
        detected = time.monotonic()

        (record,) = succeeded(loop_kube, "squeezed", "resize", 360)
        assert record["reason"] == "MemoryUtilization"
        assert f"resize Deferred on {pod['metadata']['name']} for over 20s" in record["message"]
        assert "rolled out instead" in record["message"]
        waited = _at(record["finished"]) - _at(record["time"])
        assert waited >= timedelta(seconds=20)  # deferredSeconds passed before the rollout
        reasons = _reasons(loop_kube, "squeezed")
        assert "ResizeInProgress" in reasons  # tried in place first
        assert "rolled out instead" in reasons["ResizeSucceeded"]
        deferred = [
            e
            for e in loop_kube.items("events")
            if e["involvedObject"].get("name") == pod["metadata"]["name"]
            and e["reason"] == "ResizeDeferred"
        ]
        assert deferred, "the kubelet (pod runner) deferred the resize"

        moved = _ready_on(loop_kube, "squeezed", "cloud")
        assert moved["metadata"]["uid"] != pod["metadata"]["uid"]  # a new pod ...
        assert moved["spec"]["nodeName"] != node  # ... on a node with room
        # max(16Mi x 1.5, 16Mi + 100Mi), max(96Mi x 1.5, 96Mi + 100Mi), under the ceiling.
        resources = moved["spec"]["containers"][0]["resources"]
        assert resources["requests"]["memory"] == "116Mi"
        assert resources["limits"]["memory"] == "196Mi"
        dep = loop_kube.get("deployment", "squeezed")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
            "memory": "196Mi"
        }
        # The old pod served throughout (it was short of memory, not down): done is the
        # rollout over and the operator's next cycle saying so.
        try:
            st = wait_for(
                lambda: (
                    (s := loop_kube.status("squeezed")).get("readyReplicas") == 1
                    and condition(s, "Remediating").get("status") == "False"
                    and s
                ),
                "the rollout done, Remediating over",
                240,
            )
        except AssertionError as exc:
            st = loop_kube.status("squeezed")
            raise AssertionError(f"{exc}: {st}") from exc
        recovered = time.monotonic()
        assert "inPlaceGeneration" not in st["override"]  # the template carries it now
        md = loop_kube.get("mdep", "squeezed")
        assert md is not None and md["spec"]["resources"]["limits"] == {"memory": "96Mi"}
        assert len(taken(loop_kube.status("squeezed"), "resize")) == 1  # one action for the fault
        assert json.dumps(st["remediations"]).count('"rolloutRestart"') == 0
        bench_record("resize-deferred", started, detected, recovered, 1)  # one resize, above
    finally:
        for filler in fillers:
            loop_kube.run("delete", "pod", filler, "--wait=false", check=False)
        loop_kube.run("delete", "mdep", "squeezed", "--wait=false", check=False)
