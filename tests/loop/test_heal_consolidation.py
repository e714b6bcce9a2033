"""Right-sizing that consolidates: the operator (monitor + remediation) against a real
Prometheus, the pod runner as kubelet and Karpenter (its KWOK provider) with consolidation
WhenEmptyOrUnderutilized. Three idle models asking for more than a third of an edge node each
fill two Karpenter-made nodes (two pods fit on a node, three do not; the static edge nodes are
cordoned). `resize.shrink` lowers their requests in place (the pods keep their nodes: nothing is
freed by that alone); Karpenter then finds that one node's pods fit beside the other's, evicts
them (the PDB allows it: the shrink's do-not-disrupt hint is gone once the resize is
confirmed), the ReplicaSet's new pod lands on the node that stays, the operator resizes it in
place too (`keep_resized`), and the emptied node is removed. Fewer nodes, every model Ready.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import karpenter as autoscaler
from devcluster.nodes import default_pools
from support.benchrecord import bench_write
from support.deployments import watched_deployment
from support.operator_kit import Kube, Operator, wait_for
from support.serving_harness import Models

pytestmark = [pytest.mark.loop, pytest.mark.slow]

POOL_LABEL = "onnxops.io/pool"
KARPENTER_EXTRA = {"cloud": 0, "edge": 2}
EDGE = next(p for p in default_pools() if p.name == "edge")
MODELS = ("roomy-a", "roomy-b", "roomy-c")
# More than a third of an edge node (2 CPU / 2Gi; the edge pool's ceiling is 1 CPU / 1Gi a pod):
# two pods per node, three models on two nodes. Lowered by `resize.factor` 1.5 to 467m / 467Mi,
# two fit beside one still at the template's 700m / 700Mi: the pod the ReplicaSet makes in
# place of an evicted one starts from the template.
GENEROUS = {"cpu": "700m", "memory": "700Mi"}
LOWERED = {"cpu": "467m", "memory": "467Mi"}


def _md(name: str, uri: str) -> dict[str, Any]:
    body = watched_deployment(name, uri, anomaly={"enabled": False})
    body["spec"]["model"]["name"] = "iris"
    body["spec"]["target"] = {"pool": "edge"}
    body["spec"]["replicas"] = 1
    body["spec"]["resources"] = {"requests": GENEROUS, "limits": GENEROUS}
    body["spec"]["remediation"] = {
        "cooldownSeconds": 3600,  # one shrink each
        "resize": {"shrink": {"enabled": True, "afterSeconds": 30, "below": 0.3}},
    }
    return body


def _ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conditions.get("Ready") == "True"


def _pods(kube: Kube, name: str) -> list[dict[str, Any]]:
    found = kube.items("pods", f"onnxops.io/model-deployment={name}")
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def _karpenter_nodes(kube: Kube) -> set[str]:
    return {n["metadata"]["name"] for n in autoscaler.karpenter_nodes(kube.cluster, "edge")}


def _shrunk(kube: Kube, name: str) -> bool:
    return any(
        r["action"] == "resize" and r["result"] == "Succeeded"
        for r in kube.status(name).get("remediations") or []
    )


@pytest.fixture
def static_edge_drained(loop_kube: Kube, karpenter: autoscaler.Karpenter) -> Iterator[Any]:
    """Karpenter's edge NodePool consolidating underutilized nodes after 10 s; `drain()`: the
    static edge nodes cordoned and the models' pods evicted from them, as for maintenance, so
    the ReplicaSets' new pods go to nodes Karpenter adds. Undone afterwards, Karpenter's nodes
    removed."""
    static = loop_kube.cluster.kubectl_json(
        "get", "nodes", "-l", f"{POOL_LABEL}=edge,!karpenter.sh/nodepool"
    )["items"]
    names = [n["metadata"]["name"] for n in static]
    selector = f"onnxops.io/model-deployment in ({','.join(MODELS)})"

    def drain() -> None:
        for node in names:
            drained = loop_kube.run(
                "drain", node, f"--pod-selector={selector}", "--ignore-daemonsets",
                "--delete-emptydir-data", "--timeout=180s", check=False,
            )  # fmt: skip
            assert drained.returncode == 0, drained.stderr

    try:
        autoscaler.set_consolidation(loop_kube.cluster, EDGE, autoscaler.WHEN_UNDERUTILIZED, "10s")
        yield drain
    finally:
        for node in names:
            loop_kube.run("uncordon", node, check=False)
        autoscaler.set_consolidation(
            loop_kube.cluster, EDGE, autoscaler.WHEN_EMPTY, autoscaler.CONSOLIDATE_AFTER
        )
        loop_kube.cluster.run_kubectl(
            "delete", "nodeclaims.karpenter.sh", "--all", "--wait=true", "--timeout=90s",
            check=False, timeout_s=120,
        )  # fmt: skip


def test_lowered_requests_let_karpenter_remove_a_node_and_every_model_is_ready_after(
    watcher: Operator, loop_kube: Kube, loop_models: Models, static_edge_drained: Any
) -> None:
    try:
        for name in MODELS:
            assert loop_kube.apply(_md(name, f"file://{loop_models.iris}")).returncode == 0

        def placed() -> dict[str, str] | None:
            pods = {m: _pods(loop_kube, m) for m in MODELS}
            if not all(len(p) == 1 and _ready(p[0]) for p in pods.values()):
                return None
            return {m: p[0]["spec"]["nodeName"] for m, p in pods.items()}

        wait_for(placed, "every model Ready on the static edge nodes", 300)
        static_edge_drained()
        first = wait_for(
            lambda: (p := placed()) and set(p.values()) <= _karpenter_nodes(loop_kube) and p,
            "every model Ready on nodes Karpenter added",
            300,
        )
        before = _karpenter_nodes(loop_kube)
        # Two Karpenter nodes: the static edge nodes cordoned, three pods fit on no one node.
        assert set(first.values()) == before and len(before) == 2, (first, before)

        try:
            wait_for(lambda: all(_shrunk(loop_kube, m) for m in MODELS), "every shrink", 300)
        except AssertionError as exc:
            statuses = {m: loop_kube.status(m).get("remediations") for m in MODELS}
            raise AssertionError(f"{exc}; remediations {statuses}") from None
        shrunk_at = time.monotonic()
        for name in MODELS:
            (pod,) = _pods(loop_kube, name)
            assert pod["spec"]["nodeName"] == first[name]  # in place: nothing moved yet
            assert pod["spec"]["containers"][0]["resources"]["requests"] == LOWERED

        # Karpenter notes the lower requests in its cluster state (a pod update), but an update
        # of a bound pod does not mark the cluster changed for consolidation: it looks again at
        # its next pass after one (a pod bound or deleted, a node or NodePool changing) or,
        # without one, once its last verdict ("Can't replace with a cheaper node") is 5 minutes
        # old. In a busy cluster something changes within seconds; this quiet one gets a
        # NodePool annotation instead of the 5-minute wait (it changes nothing Karpenter
        # decides on). The single-node consolidation then finds the emptier node's pods fit on
        # the other and, after its 15 s validation, evicts them and removes the node.
        autoscaler.reconsider(loop_kube.cluster, EDGE)
        after = wait_for(
            lambda: (n := _karpenter_nodes(loop_kube)) and len(n) < len(before) and n,
            "Karpenter removing a node",
            420,
        )
        removed_s = round(time.monotonic() - shrunk_at, 1)
        (gone,) = before - after

        # The mechanism: the gone node's model was evicted by Karpenter (not by the operator)
        # and its new pod runs on the node that stays, resized in place to the lowered values.
        moved = [m for m in MODELS if first[m] == gone]
        assert moved, (first, gone)
        final = wait_for(placed, "every model Ready after the consolidation", 240)
        assert set(final.values()) == after and len(after) == 1, (final, after)
        for name in MODELS:
            wait_for(
                lambda n=name: (
                    _pods(loop_kube, n)[0]["spec"]["containers"][0]["resources"]["requests"]
                    == LOWERED
                ),
                f"{name}'s pod at the lowered requests",
                120,
            )
            # The operator's status follows the moved pod's readiness at its next look.
            wait_for(
                lambda n=name: loop_kube.status(n).get("phase") == "Ready",
                f"{name} Ready in its status",
                60,
            )
        events = loop_kube.cluster.kubectl_json(
            "get",
            "events",
            "-n",
            loop_kube.namespace,
            "--field-selector",
            "involvedObject.kind=Pod",
        )["items"]
        disrupted = [
            e
            for e in events
            if e["involvedObject"]["name"].startswith(tuple(f"{m}-" for m in moved))
            and (
                e.get("source", {}).get("component") == "karpenter"
                or e.get("reportingComponent") == "karpenter"
            )
        ]
        assert disrupted, "no Karpenter event about the moved model's pod"
        for name in moved:
            applied = [e for e in loop_kube.events(name) if e["reason"] == "ResizeApplied"]
            assert applied, loop_kube.events(name)
        bench_write(
            {
                "fault": "right-size-consolidation",
                "models": len(MODELS),
                "nodes_before": len(before),
                "nodes_after": len(after),
                "removed_s": removed_s,
                "models_down": sum(loop_kube.status(m)["phase"] != "Ready" for m in MODELS),
            }
        )
    finally:
        for name in MODELS:
            loop_kube.run("delete", "mdep", name, "--wait=false", check=False)
