"""Heal with a cluster autoscaler: the operator (monitor + remediation) against a real
Prometheus, the pod runner as kubelet and Karpenter (its KWOK provider) adding edge nodes.
The edge pool full and the edge NodePool below its limit: Karpenter nominates a node claim, the
model waits for it (Placed AwaitingScaleUp) instead of failing over, and runs on the new node.
The NodePool at its limit: Karpenter says it cannot, and the model fails over to cloud after
`unschedulableSeconds` as without an autoscaler, and back once room returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import karpenter as autoscaler
from devcluster.nodes import default_pools
from support.deployments import healing_deployment
from support.nodes import allocatable, filler
from support.operator_kit import Kube, Operator, wait_for
from support.readings import condition, fault, live_pods, succeeded, taken
from support.serving_harness import Models

pytestmark = [pytest.mark.loop, pytest.mark.slow]

POOL_LABEL = "onnxops.io/pool"
KARPENTER_EXTRA = {"cloud": 0, "edge": 1}
EDGE = next(p for p in default_pools() if p.name == "edge")
# A launched node shows after this long, as a booting instance would: long past
# unschedulableSeconds, so a model that did not wait for it would have failed over.
BOOT_S = 40


def _md(name: str, uri: str, **remediation: Any) -> dict[str, Any]:
    body = healing_deployment(
        name,
        uri,
        target={"pool": "edge", "fallbackPool": "cloud"},
        replicas=1,
        remediation={
            "unschedulableSeconds": 10,
            "failbackSeconds": 20,
            "cooldownSeconds": 10,
            **remediation,
        },
    )
    body["spec"]["model"]["name"] = "iris"
    return body


def _ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conditions.get("Ready") == "True"


def _ready_on(kube: Kube, name: str, pool: str) -> dict[str, Any]:
    """The model's one live pod once it is Ready on a node of `pool` (and the only one)."""

    def found() -> dict[str, Any] | None:
        pods = list(live_pods(kube, name).values())
        if len(pods) != 1 or not _ready(pods[0]):
            return None
        node = pods[0]["spec"].get("nodeName")
        labels = kube.cluster.kubectl_json("get", "node", node)["metadata"]["labels"]
        return pods[0] if labels.get(POOL_LABEL) == pool else None

    pod: dict[str, Any] = wait_for(found, f"{name}'s pod alone and Ready on pool {pool}", 300)
    return pod


@pytest.fixture
def edge_full(loop_kube: Kube, karpenter: autoscaler.Karpenter) -> Iterator[Any]:
    """`fill(node_a)`: the static edge pool left without room for the model's pod: the other
    static edge node filled, `node_a` drained (cordoned, the model's pod evicted) as for
    maintenance. Undone afterwards, Karpenter's nodes removed."""
    cordoned: list[str] = []
    fillers: list[str] = []

    def fill(node_a: str, model: str) -> None:
        static = loop_kube.cluster.kubectl_json(
            "get", "nodes", "-l", f"{POOL_LABEL}=edge,!karpenter.sh/nodepool"
        )["items"]
        for node in [n["metadata"]["name"] for n in static if n["metadata"]["name"] != node_a]:
            cpu_m, memory = allocatable(loop_kube, node)
            fillers.append(f"filler-{node}")
            filler(loop_kube, f"filler-{node}", node, cpu_m=cpu_m, memory=memory)
        cordoned.append(node_a)
        drained = loop_kube.run(
            "drain", node_a, f"--pod-selector=onnxops.io/model-deployment={model}",
            "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s", check=False,
        )  # fmt: skip
        assert drained.returncode == 0, drained.stderr

    def uncordon() -> None:
        for node in cordoned:
            loop_kube.run("uncordon", node, check=False)
        cordoned.clear()

    fill.uncordon = uncordon  # type: ignore[attr-defined]
    try:
        yield fill
    finally:
        uncordon()
        for name in fillers:
            loop_kube.run("delete", "pod", name, "--wait=false", check=False)
        autoscaler.set_limit(loop_kube.cluster, EDGE, KARPENTER_EXTRA["edge"])
        loop_kube.cluster.run_kubectl(
            "delete", "nodeclaims.karpenter.sh", "--all", "--wait=true", "--timeout=90s",
            check=False, timeout_s=120,
        )  # fmt: skip


def _placed(kube: Kube, name: str) -> dict[str, Any]:
    return condition(kube.status(name), "Placed")


def test_a_node_coming_is_waited_for_and_no_failover_is_taken(
    watcher: Operator, loop_kube: Kube, loop_models: Models, edge_full: Any
) -> None:
    autoscaler.set_registration_delay(loop_kube.cluster, BOOT_S)
    body = _md("waits", f"file://{loop_models.iris}", scaleUpGraceSeconds=300)
    assert loop_kube.apply(body).returncode == 0
    try:
        first = _ready_on(loop_kube, "waits", "edge")
        started = time.monotonic()
        edge_full(first["spec"]["nodeName"], "waits")

        wait_for(
            lambda: fault(loop_kube.status("waits"), "Unschedulable"), "an Unschedulable fault", 120
        )
        placed = wait_for(
            lambda: (c := _placed(loop_kube, "waits")).get("reason") == "AwaitingScaleUp" and c,
            "Placed AwaitingScaleUp",
            120,
        )
        assert "nodeclaim/edge-" in placed["message"], placed
        assert "karpenter adds a node" in placed["message"]
        assert "failover to cloud after 300s" in placed["message"]

        moved = _ready_on(loop_kube, "waits", "edge")
        recovered = time.monotonic()
        node = loop_kube.cluster.kubectl_json("get", "node", moved["spec"]["nodeName"])
        assert node["metadata"]["labels"].get("karpenter.sh/nodepool") == "edge"
        # Well past unschedulableSeconds (10 s) on the way, and yet no failover.
        assert recovered - started > BOOT_S
        st = loop_kube.status("waits")
        assert st["pool"] == "edge" and not taken(st, "failover"), st.get("remediations")
        wait_for(
            lambda: _placed(loop_kube, "waits").get("reason") == "PoolChosen",
            "Placed back to PoolChosen",
            120,
        )
        assert "the node the autoscaler added" in _placed(loop_kube, "waits")["message"]
        dep = loop_kube.get("deployment", "waits")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == "edge"
    finally:
        autoscaler.set_registration_delay(loop_kube.cluster, 0)
        loop_kube.run("delete", "mdep", "waits", "--wait=false", check=False)


def test_a_nodepool_at_its_limit_fails_over_after_unschedulable_seconds_and_back(
    watcher: Operator, loop_kube: Kube, loop_models: Models, edge_full: Any
) -> None:
    autoscaler.set_limit(loop_kube.cluster, EDGE, 0)
    body = _md("capped", f"file://{loop_models.iris}", scaleUpGraceSeconds=600)
    assert loop_kube.apply(body).returncode == 0
    try:
        first = _ready_on(loop_kube, "capped", "edge")
        edge_full(first["spec"]["nodeName"], "capped")
        (failover,) = succeeded(loop_kube, "capped", "failover", 240)
        assert "for over 10s" in failover["message"], failover  # not scaleUpGraceSeconds
        assert "karpenter said it cannot add a node" in failover["message"]
        assert "exceed limits" in failover["message"]
        _ready_on(loop_kube, "capped", "cloud")
        assert not autoscaler.karpenter_nodes(loop_kube.cluster, "edge")

        edge_full.uncordon()  # room returns: maintenance over
        (failback,) = succeeded(loop_kube, "capped", "failback", 300)
        assert failback["reason"] == "PoolHasRoom"
        _ready_on(loop_kube, "capped", "edge")
    finally:
        loop_kube.run("delete", "mdep", "capped", "--wait=false", check=False)
