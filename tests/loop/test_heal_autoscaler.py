"""Heal with a cluster autoscaler: the operator (monitor + remediation) against a real
Prometheus, the pod runner as kubelet and Karpenter (its KWOK provider) adding edge nodes.
The edge pool full and the edge NodePool below its limit: Karpenter nominates a node claim, the
model waits for it (Placed AwaitingScaleUp) instead of failing over, and runs on the new node.
The NodePool at its limit: Karpenter says it cannot, and the model fails over to cloud after
`unschedulableSeconds` as without an autoscaler, and back once room returns on the static edge
nodes (a failback counts only room on nodes that exist), serving every request meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from devcluster import karpenter as autoscaler
from devcluster.nodes import default_pools
from support.benchrecord import bench_write
from support.deployments import healing_deployment
from support.nodes import allocatable, filler
from support.operator_kit import Kube, Operator, wait_for
from support.readings import condition, fault, live_pods, succeeded, taken
from support.serving_harness import Models
from support.traffic import ServiceTraffic

pytestmark = [pytest.mark.loop, pytest.mark.slow]

POOL_LABEL = "onnxops.io/pool"
KARPENTER_EXTRA = {"cloud": 0, "edge": 1}
EDGE = next(p for p in default_pools() if p.name == "edge")
# A launched node shows after this long, as a booting instance would: long past
# unschedulableSeconds, so a model that did not wait for it would have failed over.
BOOT_S = 40
# A terminating pod serves on for the Deployment's shutdown delay, as behind kube-proxy: the
# failback's traffic follows the EndpointSlices, which drop it a moment after its SIGTERM.
RUNNER_ENV = {"ONNXOPS_SHUTDOWN_DELAY_S": "5"}
FLOWER = {
    "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
}


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


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _stamp(event: dict[str, Any]) -> str:
    return str(
        event.get("eventTime")
        or event.get("firstTimestamp")
        or event.get("lastTimestamp")
        or event["metadata"]["creationTimestamp"]
    )


def _pod_events(kube: Kube, model: str, reason: str) -> list[dict[str, Any]]:
    """Events of `reason` about the model's pods (those gone too), oldest first."""
    listed = kube.cluster.kubectl_json(
        "get", "events", "-n", kube.namespace, "--field-selector",
        f"involvedObject.kind=Pod,reason={reason}",
    )["items"]  # fmt: skip
    mine = [e for e in listed if e["involvedObject"]["name"].startswith(f"{model}-")]
    return sorted(mine, key=_stamp)


def _since_unschedulable(kube: Kube, model: str, *moments: str) -> list[float]:
    """Seconds from the scheduler's first FailedScheduling of the model's pods to each moment
    (RFC 3339), all as the apiserver and its clients stamped them (1 s resolution or better)."""
    start = _at(_stamp(_pod_events(kube, model, "FailedScheduling")[0]))
    return [round((_at(m) - start).total_seconds(), 1) for m in moments]


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
        ready_at = next(c for c in moved["status"]["conditions"] if c["type"] == "Ready")
        nominated = _pod_events(loop_kube, "waits", "Nominated")
        nominated_s, node_s, ready_s = _since_unschedulable(
            loop_kube, "waits", _stamp(nominated[0]),
            node["metadata"]["creationTimestamp"], ready_at["lastTransitionTime"],
        )  # fmt: skip
        assert nominated_s < BOOT_S <= node_s <= ready_s, (nominated_s, node_s, ready_s)
        bench_write(
            {
                "fault": "edge-full-scale-up",
                "boot_s": BOOT_S,
                "nominated_s": nominated_s,
                "node_s": node_s,
                "ready_s": ready_s,
                "failovers": len(taken(loop_kube.status("waits"), "failover")),
            }
        )
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
        on_cloud = _ready_on(loop_kube, "capped", "cloud")
        assert not autoscaler.karpenter_nodes(loop_kube.cluster, "edge")
        ready_at = next(c for c in on_cloud["status"]["conditions"] if c["type"] == "Ready")
        (ready_s,) = _since_unschedulable(loop_kube, "capped", ready_at["lastTransitionTime"])
        bench_write({"fault": "edge-full-at-limit", "ready_s": ready_s, "failovers": 1})

        api = loop_kube.cluster.api()
        with ServiceTraffic(api, loop_kube.namespace, "capped", "iris", lambda: FLOWER) as traffic:
            wait_for(lambda: traffic.total() >= 20, "requests answered on cloud", 60)
            edge_full.uncordon()  # room returns: maintenance over
            (failback,) = succeeded(loop_kube, "capped", "failback", 300)
            assert failback["reason"] == "PoolHasRoom"
            assert "pool edge has room again" in failback["message"]
            back = _ready_on(loop_kube, "capped", "edge")
            name = back["metadata"]["name"]
            wait_for(
                lambda: traffic.by_pod.get(name, {}).get(200, 0) >= 20,
                "requests answered on edge",
                60,
            )
        # Served throughout the way back: the edge pod Ready before the cloud pod went.
        assert traffic.codes == {200: traffic.total()}, (traffic.codes, traffic.errors[:20])
        # No ready endpoint at most for a moment (the Deployment and EndpointSlice controllers
        # each follow the new pod's readiness; kube-proxy falls back to a terminating one then).
        assert traffic.unserved_s <= 1.0, traffic.unserved_s
        assert traffic.by_pod.get(on_cloud["metadata"]["name"], {}).get(200, 0) >= 20
        node = loop_kube.cluster.kubectl_json("get", "node", back["spec"]["nodeName"])
        assert "karpenter.sh/nodepool" not in node["metadata"]["labels"]  # a static edge node
        assert not autoscaler.karpenter_nodes(loop_kube.cluster, "edge")
        st = wait_for(
            lambda: (s := loop_kube.status("capped")).get("pool") == "edge" and s,
            "status.pool edge",
            120,
        )
        moves = [r["action"] for r in taken(st) if r["action"] in ("failover", "failback")]
        assert moves == ["failover", "failback"], st["remediations"]
        dep = loop_kube.get("deployment", "capped")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == "edge"
        seen = {e["reason"] for e in loop_kube.events("capped")}
        assert {"FailoverSucceeded", "FailbackSucceeded"} <= seen, seen
    finally:
        loop_kube.run("delete", "mdep", "capped", "--wait=false", check=False)


def test_a_new_model_on_a_full_pool_a_nodepool_can_grow_gets_a_node_not_no_capacity(
    watcher: Operator, loop_kube: Kube, loop_models: Models, edge_full: Any
) -> None:
    """A new model asks for the edge pool while no static edge node has room (one filled, the
    other cordoned): the edge NodePool can still add a node, so the operator creates the
    Deployment (never Failed NoCapacity, which would leave Karpenter no pending pod to act
    on), Placed says the pods wait for the autoscaler, and the model serves on Karpenter's
    node. Without a fallback pool nothing else could serve it."""
    static = loop_kube.cluster.kubectl_json(
        "get", "nodes", "-l", f"{POOL_LABEL}=edge,!karpenter.sh/nodepool"
    )["items"]
    edge_full(static[0]["metadata"]["name"], "newcomer")
    body = _md("newcomer", f"file://{loop_models.iris}", scaleUpGraceSeconds=300)
    body["spec"]["target"] = {"pool": "edge"}
    assert loop_kube.apply(body).returncode == 0
    try:
        phases: list[str] = []

        def placed() -> dict[str, Any] | None:
            st = loop_kube.status("newcomer")
            phases.append(str(st.get("phase")))
            c = condition(st, "Placed")
            return c if "autoscaler can add nodes" in c.get("message", "") else None

        said = wait_for(placed, "Placed: the pods wait for the autoscaler's node", 120)
        assert said["status"] == "True" and "pool edge (requested" in said["message"], said
        assert loop_kube.get("deployment", "newcomer") is not None
        pod = _ready_on(loop_kube, "newcomer", "edge")
        node = loop_kube.cluster.kubectl_json("get", "node", pod["spec"]["nodeName"])
        assert node["metadata"]["labels"].get("karpenter.sh/nodepool") == "edge"
        st = wait_for(
            lambda: (s := loop_kube.status("newcomer")).get("phase") == "Ready" and s,
            "newcomer Ready",
            120,
        )
        assert st["pool"] == "edge" and not taken(st, "failover")
        assert "Failed" not in phases, phases
        warnings = [e["reason"] for e in loop_kube.events("newcomer") if e["type"] == "Warning"]
        assert "NoCapacity" not in warnings, warnings
    finally:
        loop_kube.run("delete", "mdep", "newcomer", "--wait=false", check=False)
