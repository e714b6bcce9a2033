"""Karpenter (its KWOK provider) as the devcluster's autoscaler: a pod no edge node has room
for gets a new edge node from the edge NodePool, with the pool's labels and taint, and the pod
runner serves the pod there as on a static node; a NodePool at its limit adds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devcluster import controlplane, processes
from devcluster import karpenter as autoscaler
from devcluster.nodes import EDGE_ROLE, POOL_LABEL, default_pools
from devcluster.podrunner import PodRunner
from support.operator_kit import FAKE_SERVING, ROOT, serving_kubelet, wait_for

IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"
KARPENTER_EXTRA = {"cloud": 0, "edge": 1}
EDGE_TOLERATION = {"key": EDGE_ROLE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def namespace(
    devcluster: controlplane.Cluster,
    karpenter: autoscaler.Karpenter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, PodRunner]]:
    name = "karpenter-nodes"
    devcluster.run_kubectl("create", "namespace", name)
    with serving_kubelet(devcluster, name, tmp_path_factory.mktemp("pods"), FAKE_SERVING) as runner:
        yield name, runner


def _edge_pod(name: str, cpu: str, *, serving: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "server" if serving else "filler",
        "image": IMAGE if serving else "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"onnxops.io/model-deployment": name}},
        "spec": {
            "nodeSelector": {POOL_LABEL: "edge"},
            "tolerations": [EDGE_TOLERATION],
            "containers": [container],
        },
    }


def _apply(cluster: controlplane.Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.run_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def _pod(cluster: controlplane.Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "pod", "-n", namespace, name)
    return found


def _fill_edge(cluster: controlplane.Cluster, namespace: str) -> None:
    """One non-serving pod (KWOK runs it) on each static edge node, leaving no room for a
    second one anywhere: 1500m of each node's 2 CPU."""
    edge = next(p for p in default_pools() if p.name == "edge")
    for index in range(edge.count):
        _apply(cluster, namespace, _edge_pod(f"filler-{index}", "1500m", serving=False))
    wait_for(
        lambda: all(
            _pod(cluster, namespace, f"filler-{i}")["status"].get("phase") == "Running"
            for i in range(edge.count)
        ),
        "the filler pods Running on the static edge nodes",
        timeout_s=60,
    )


def _events(cluster: controlplane.Cluster, namespace: str, pod: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={pod}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def test_a_pod_without_room_gets_a_new_edge_node_and_is_served_there(
    devcluster: controlplane.Cluster, namespace: tuple[str, PodRunner]
) -> None:
    ns, runner = namespace
    _fill_edge(devcluster, ns)
    _apply(devcluster, ns, _edge_pod("model", "1", serving=True))

    def bound() -> str:
        return str(_pod(devcluster, ns, "model")["spec"].get("nodeName") or "")

    node_name = wait_for(bound, "the pod bound to a node Karpenter made", timeout_s=90)
    node = devcluster.kubectl_json("get", "node", node_name)
    labels, taints = node["metadata"]["labels"], node["spec"].get("taints") or []
    assert labels.get("karpenter.sh/nodepool") == "edge", labels
    assert labels[POOL_LABEL] == "edge" and EDGE_ROLE in labels
    assert labels["node.kubernetes.io/instance-type"] == "edge-2x2Gi"
    assert {"key": EDGE_ROLE, "value": "true", "effect": "NoSchedule"} in taints
    assert node["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake"
    claims = devcluster.kubectl_json("get", "nodeclaims.karpenter.sh")["items"]
    assert [c["status"].get("nodeName") for c in claims] == [node_name]
    nominated = [e for e in _events(devcluster, ns, "model") if e["reason"] == "Nominated"]
    assert nominated and claims[0]["metadata"]["name"] in nominated[0]["message"]

    # Served as on a static node: the pod runner's process answers, the pod turns Ready.
    def ready() -> bool:
        conditions = _pod(devcluster, ns, "model")["status"].get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(ready, "the pod Ready on the new node", timeout_s=60)
    proc = runner.serving()[f"{ns}.model"]
    assert httpx.get(f"{proc.url}/v2/health/ready", timeout=5).status_code == 200
    conditions = devcluster.kubectl_json("get", "node", node_name)["status"]["conditions"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)  # KWOK's
    name = claims[0]["metadata"]["name"]

    def initialized() -> bool:
        claim = devcluster.kubectl_json("get", "nodeclaims.karpenter.sh", name)
        found = claim["status"].get("conditions") or []
        return any(c["type"] == "Initialized" and c["status"] == "True" for c in found)

    wait_for(initialized, f"nodeclaim {name} Initialized (Karpenter saw the node join)", 60)


def test_a_nodepool_at_its_limit_adds_no_node(
    devcluster: controlplane.Cluster, namespace: tuple[str, PodRunner]
) -> None:
    ns, _runner = namespace
    # The first test's node holds 1 of its 2 CPU: a 1500m pod fits nowhere, and the edge
    # NodePool (1 node) is at its limit.
    before = {n["metadata"]["name"] for n in autoscaler.karpenter_nodes(devcluster, "edge")}
    assert len(before) == 1, before
    _apply(devcluster, ns, _edge_pod("too-many", "1500m", serving=True))

    def refused() -> list[dict[str, Any]]:
        return [
            e
            for e in _events(devcluster, ns, "too-many")
            if e["reason"] == "FailedScheduling" and "karpenter" in str(e.get("source"))
        ]

    said = wait_for(refused, "Karpenter's FailedScheduling for the pod", timeout_s=60)
    assert "limit" in said[0]["message"], said[0]["message"]
    after = {n["metadata"]["name"] for n in autoscaler.karpenter_nodes(devcluster, "edge")}
    assert after == before
    assert not _pod(devcluster, ns, "too-many")["spec"].get("nodeName")


def _cli(state_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devcluster", f"--state-dir={state_dir}", *args],
        capture_output=True,
        text=True,
        # KUBECACHEDIR: kubectl's discovery cache (up applies Karpenter's objects) goes to the
        # test's folder, not to ./.kube in the work tree (HOME: the build cache is found there).
        env={
            "PYTHONPATH": str(ROOT / "hack" / "devcluster"),
            "PATH": "/usr/bin:/bin",
            "HOME": str(Path.home()),
            "KUBECACHEDIR": str(state_dir / "kube-cache"),
            **env,
        },
        timeout=180,
        check=False,
    )


def test_cli_up_with_karpenter_and_down_leaves_nothing_running(tmp_path: Path) -> None:
    try:
        up = _cli(tmp_path, "up", "--cloud=1", "--edge=1", "--autoscaler-nodes=3",
                  DEVCLUSTER_AUTOSCALER="karpenter")  # fmt: skip
        cluster = controlplane.load(tmp_path)
        assert up.returncode == 0, up.stderr
        assert cluster is not None
        assert "karpenter" in [r.name for r in cluster.processes]
        assert all(cluster.running().values()), cluster.running()
        pools = cluster.kubectl_json("get", "nodepools.karpenter.sh")["items"]
        limits = {p["metadata"]["name"]: p["spec"]["limits"] for p in pools}
        assert limits == {
            "cloud": {"cpu": "24", "memory": "96Gi"},
            "edge": {"cpu": "6", "memory": "6Gi"},
        }
        ready = {
            p["metadata"]["name"]: next(
                c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready"
            )
            for p in pools
        }
        assert ready == {"cloud": "True", "edge": "True"}  # launchable: node class Ready too
    finally:
        down = _cli(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert not any(processes.is_running(r) for r in cluster.processes)


def test_up_without_the_karpenter_build_fails_before_starting_anything(tmp_path: Path) -> None:
    up = _cli(
        tmp_path, "up", "--autoscaler=karpenter", ONNXOPS_KARPENTER_BIN=str(tmp_path / "none")
    )
    assert up.returncode == 1
    assert "Karpenter missing" in up.stderr and "AUTOSCALER=karpenter" in up.stderr
    assert "Traceback" not in up.stderr
    assert controlplane.load(tmp_path) is None
