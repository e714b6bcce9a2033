"""Node-level helpers of the placement loop tests: a node's allocatable room, and filler pods
(plain pods KWOK runs) that take it."""

from __future__ import annotations

from typing import Any

from devcluster.nodes import EDGE_ROLE
from devcluster.resize import pod_requests

from support.operator_kit import Kube, wait_for

EDGE_TOLERATION = {"key": EDGE_ROLE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def allocatable(kube: Kube, node: str) -> tuple[int, int]:
    """(cpu millicores, memory bytes) of `node`, as the scheduler and the kubelet count them."""
    alloc = kube.cluster.kubectl_json("get", "node", node)["status"]["allocatable"]
    return pod_requests({"spec": {"containers": [{"resources": {"requests": alloc}}]}})


def filler(kube: Kube, name: str, node: str, *, cpu_m: int, memory: int) -> dict[str, Any]:
    """A plain pod bound to `node` by name taking `cpu_m` and `memory` of it, once Running."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "filler",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": f"{cpu_m}m", "memory": str(memory)}},
                }
            ],
            "tolerations": [EDGE_TOLERATION],
        },
    }
    result = kube.apply(body)
    assert result.returncode == 0, result.stderr
    pod: dict[str, Any] = wait_for(
        lambda: (p := kube.get("pod", name)) and p["status"].get("phase") == "Running" and p,
        f"the filler {name} running on {node}",
        120,
    )
    return pod
