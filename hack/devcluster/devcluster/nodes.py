"""Node pools of fake (KWOK-managed) nodes: a ``cloud`` pool and a tainted ``edge`` pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

POOL_LABEL = "onnxops.io/pool"
FAKE_ANNOTATION = "kwok.x-k8s.io/node"
EDGE_ROLE = "node-role.kubernetes.io/edge"


@dataclass(frozen=True)
class NodePool:
    """``count`` identical nodes with the given capacity, labels and taints."""

    name: str
    count: int
    cpu: str
    memory: str
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()


def default_pools(
    cloud_nodes: int = 3,
    edge_nodes: int = 2,
    cloud_size: tuple[str, str] = ("8", "32Gi"),
    edge_size: tuple[str, str] = ("2", "2Gi"),
) -> list[NodePool]:
    """The pools the operator's cloud/edge profiles select on."""
    return [
        NodePool("cloud", cloud_nodes, *cloud_size),
        NodePool(
            "edge",
            edge_nodes,
            *edge_size,
            labels={EDGE_ROLE: ""},
            taints=({"key": EDGE_ROLE, "value": "true", "effect": "NoSchedule"},),
        ),
    ]


def node_manifests(pool: NodePool) -> list[dict[str, Any]]:
    """One Node object per node of ``pool``, annotated so that KWOK manages it."""
    nodes = []
    for index in range(pool.count):
        name = f"{pool.name}-{index}"
        capacity = {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.pods)}
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            POOL_LABEL: pool.name,
            **pool.labels,
        }
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    # ttl 0: the node controller should not cache this node's absence.
                    "annotations": {FAKE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                },
                "spec": {"taints": [dict(t) for t in pool.taints]},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
        )
    return nodes
