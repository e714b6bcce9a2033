"""Karpenter (its KWOK provider) as the devcluster's optional cluster autoscaler.

Karpenter's KWOK provider "launches" a NodeClaim by creating a Node object annotated
``kwok.x-k8s.io/node: fake``: the annotation our KWOK manages, so the new node turns Ready as the
static ones do, and the pod runner serves pods bound to it. One NodePool per devcluster pool
(``cloud``, ``edge``) carries that pool's labels and taints and one instance type of that pool's
node size, and a limit of ``extra`` nodes' worth of CPU and memory (Karpenter counts only the
nodes it made). It runs as one more recorded process: no leader election, a kubeconfig of its
own, free health and metrics ports, no webhooks (v1.15 starts no webhook server: the CRDs' CEL
rules validate).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import binaries, processes
from .cluster import Cluster, ClusterError
from .nodes import POOL_LABEL, NodePool
from .processes import ProcessRecord

NAME = "karpenter"
NODE_CLASS = "devcluster"
# One zone and on-demand only: one offering per instance type, so the node Karpenter picks is
# the pool's node size and nothing else varies between runs.
ZONE = "devcluster-a"
CAPACITY_TYPE = "on-demand"
CRDS = (
    "nodepools.karpenter.sh",
    "nodeclaims.karpenter.sh",
    "nodeoverlays.karpenter.sh",
    "kwoknodeclasses.karpenter.kwok.sh",
)
# A node emptied of pods goes after this long (consolidationPolicy WhenEmpty): long enough that
# a pod replaced during a test finds its node still there, short enough to see it go.
# $DEVCLUSTER_KARPENTER_CONSOLIDATION=WhenEmptyOrUnderutilized also lets Karpenter move pods off
# a node whose pods fit on the others, and $DEVCLUSTER_KARPENTER_CONSOLIDATE_AFTER sets the wait;
# `set_consolidation` changes both on a running cluster.
CONSOLIDATE_AFTER = "30s"
WHEN_EMPTY = "WhenEmpty"
WHEN_UNDERUTILIZED = "WhenEmptyOrUnderutilized"


def disruption(policy: str | None = None, after: str | None = None) -> dict[str, Any]:
    """A NodePool's disruption block: ``policy`` and ``after`` or the environment's, or
    WhenEmpty after 30 s; at most one node disrupted at a time."""
    policy = policy or os.environ.get("DEVCLUSTER_KARPENTER_CONSOLIDATION") or WHEN_EMPTY
    if policy not in (WHEN_EMPTY, WHEN_UNDERUTILIZED):
        raise ClusterError(
            f"consolidation policy {policy!r}: expected {WHEN_EMPTY} or {WHEN_UNDERUTILIZED}"
        )
    after = after or os.environ.get("DEVCLUSTER_KARPENTER_CONSOLIDATE_AFTER") or CONSOLIDATE_AFTER
    return {
        "consolidationPolicy": policy,
        "consolidateAfter": after,
        "budgets": [{"nodes": "1"}],
    }


def instance_type(pool: NodePool) -> str:
    """The instance type name of a pool's node size (``edge-2x2Gi``)."""
    return f"{pool.name}-{pool.cpu}x{pool.memory}"


def instance_types(pools: Sequence[NodePool]) -> list[dict[str, Any]]:
    """The provider's instance types file: one type per pool, the pool's node size."""
    return [
        {
            "name": instance_type(pool),
            "architecture": "amd64",
            "operatingSystems": ["linux"],
            "resources": {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.pods)},
            "offerings": [
                {
                    "Price": 1.0,
                    "Available": True,
                    "Requirements": [
                        {
                            "key": "karpenter.sh/capacity-type",
                            "operator": "In",
                            "values": [CAPACITY_TYPE],
                        },
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [ZONE]},
                    ],
                }
            ],
        }
        for pool in pools
    ]


def limits(pool: NodePool, nodes: int) -> dict[str, str]:
    """A NodePool limit of ``nodes`` of the pool's node size (0: it may add none)."""
    cpu = _number(pool.cpu) * nodes
    memory, unit = _split_unit(pool.memory)
    return {"cpu": _text(cpu), "memory": f"{_text(memory * nodes)}{unit}"}


def _number(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _split_unit(text: str) -> tuple[float, str]:
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return float(digits), text[len(digits) :]


def _text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def node_pool(pool: NodePool, nodes: int) -> dict[str, Any]:
    """The Karpenter NodePool for one devcluster pool."""
    labels = {POOL_LABEL: pool.name, "type": "kwok", **pool.labels}
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool.name},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.kwok.sh",
                        "kind": "KWOKNodeClass",
                        "name": NODE_CLASS,
                    },
                    "requirements": [
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": [instance_type(pool)],
                        },
                        {
                            "key": "karpenter.sh/capacity-type",
                            "operator": "In",
                            "values": [CAPACITY_TYPE],
                        },
                    ],
                    "taints": [dict(t) for t in pool.taints],
                    "expireAfter": "Never",
                },
            },
            "limits": limits(pool, nodes),
            "disruption": disruption(),
        },
    }


def node_class() -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.kwok.sh/v1alpha1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": NODE_CLASS},
    }


def _node_class_ready(cluster: Cluster) -> None:
    """Nothing in the KWOK provider sets its node class Ready (a real provider's node class
    controller would, once it resolved images and subnets), and a NodePool whose node class is
    not Ready launches nothing: the devcluster sets it, once."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "",
        "lastTransitionTime": now,
        "observedGeneration": 1,
    }
    cluster.run_kubectl(
        "patch", f"kwoknodeclass/{NODE_CLASS}", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"conditions": [condition]}}),
    )  # fmt: skip


@dataclass
class Karpenter:
    """A running Karpenter: its process record and its health endpoint."""

    record: ProcessRecord
    health_url: str
    metrics_url: str

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.health_url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False


def install(cluster: Cluster, pools: Sequence[NodePool], extra: Mapping[str, int]) -> None:
    """Karpenter's CRDs (server-side: the NodePool CRD's schema is too large for the
    last-applied annotation of a client-side apply), its node class and the NodePools."""
    crds = binaries.require_karpenter() / binaries.KARPENTER_CRDS
    cluster.run_kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    cluster.wait_established(*CRDS)
    cluster.apply(node_class())
    _node_class_ready(cluster)
    cluster.apply([node_pool(p, extra.get(p.name, 0)) for p in pools])


def set_limit(cluster: Cluster, pool: NodePool, nodes: int) -> None:
    """Let the pool's NodePool grow to ``nodes`` nodes of its own (0: none)."""
    patch = {"spec": {"limits": limits(pool, nodes)}}
    cluster.run_kubectl("patch", f"nodepool/{pool.name}", "--type=merge", "-p", json.dumps(patch))


def set_consolidation(cluster: Cluster, pool: NodePool, policy: str, after: str) -> None:
    """The pool's NodePool consolidates by ``policy`` (WhenEmpty, WhenEmptyOrUnderutilized)
    once a node has had no pod scheduled or removed for ``after`` (``"10s"``)."""
    patch = {"spec": {"disruption": disruption(policy, after)}}
    cluster.run_kubectl("patch", f"nodepool/{pool.name}", "--type=merge", "-p", json.dumps(patch))


def reconsider(cluster: Cluster, pool: NodePool) -> None:
    """Have Karpenter look at consolidating ``pool`` again now: any change to a NodePool marks
    its cluster state unconsolidated (an annotation will do). Without a change (a pod bound or
    deleted, a node or NodePool updated) it looks again only once its last verdict is 5
    minutes old; in a busy cluster something changes within seconds."""
    stamp = f"{time.time():.3f}"
    cluster.run_kubectl(
        "annotate",
        f"nodepool/{pool.name}",
        f"devcluster.onnxops.io/reconsider={stamp}",
        "--overwrite",
    )


def set_registration_delay(cluster: Cluster, seconds: int) -> None:
    """How long a launched node takes to appear (KWOKNodeClass nodeRegistrationDelay): a real
    instance boots for a minute or more, the provider's default is at once."""
    patch = {"spec": {"nodeRegistrationDelay": f"{seconds}s"}}
    cluster.run_kubectl(
        "patch", f"kwoknodeclass/{NODE_CLASS}", "--type=merge", "-p", json.dumps(patch)
    )


def start(
    cluster: Cluster,
    pools: Sequence[NodePool],
    *,
    extra: Mapping[str, int] | None = None,
    tie_to_parent: bool = False,
    timeout_s: float = 90,
) -> Karpenter:
    """Install Karpenter's objects and start it against ``cluster``; return once /readyz
    answers. ``extra``: nodes each pool's NodePool may add (default 2 each)."""
    bin_dir = binaries.require_karpenter()
    extra = dict(extra) if extra is not None else {p.name: 2 for p in pools}
    install(cluster, pools, extra)
    work = cluster.state_dir / NAME
    work.mkdir(exist_ok=True)
    types_file = work / "instance-types.json"
    types_file.write_text(json.dumps(instance_types(pools), indent=1) + "\n")
    kubeconfig = cluster.state_dir / "kubeconfigs" / f"{NAME}.yaml"
    if not kubeconfig.exists():
        raise ClusterError(f"{kubeconfig} missing: the cluster was started without a {NAME} user")
    for attempt in range(1, 4):
        health, metrics = processes.free_port(), processes.free_port()
        env = {
            **os.environ,
            # controller-runtime reads the kubeconfig from $KUBECONFIG (Karpenter's own flag
            # set has no --kubeconfig).
            "KUBECONFIG": str(kubeconfig),
            "DISABLE_LEADER_ELECTION": "true",  # one replica, a process: nothing to elect
            "HEALTH_PROBE_PORT": str(health),
            "METRICS_PORT": str(metrics),
            "INSTANCE_TYPES_FILE_PATH": str(types_file),
            # Pending pods are batched until 1 s without a new one (at most 10 s): the defaults.
            "LOG_LEVEL": "info",
        }
        log = cluster.state_dir / "logs" / f"{NAME}.log"
        child, record = processes.start(
            NAME,
            [str(bin_dir / binaries.KARPENTER)],
            log,
            env=env,
            tie_to_parent=tie_to_parent,
        )
        cluster.processes.append(record)
        cluster._children.append(child)
        cluster.save()
        running = Karpenter(record, f"http://127.0.0.1:{health}", f"http://127.0.0.1:{metrics}")

        def ready(child: Any = child, running: Karpenter = running, log: Path = log) -> bool:
            if child.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise processes.ProcessExited(f"{NAME} exited ({child.returncode}):\n{tail}")
            return running.ready()

        try:
            processes.wait_for(ready, timeout_s=timeout_s, what=f"{NAME} /readyz")
        except processes.ProcessExited as error:
            forget(cluster, record)
            if "address already in use" not in str(error) or attempt == 3:
                raise ClusterError(str(error)) from None
            continue
        except BaseException:
            stop(cluster, running)
            raise
        return running
    raise AssertionError("unreachable")


def forget(cluster: Cluster, record: ProcessRecord) -> None:
    processes.stop([record], grace_s=5)
    cluster.processes[:] = [r for r in cluster.processes if r != record]
    cluster.save()


def stop(cluster: Cluster, running: Karpenter, *, remove_nodes: bool = True) -> None:
    """Stop Karpenter; with ``remove_nodes`` first its NodePools go (their NodeClaims and nodes
    with them, which Karpenter's finalizers need it running for), so the cluster is left with
    its static nodes only."""
    if remove_nodes and processes.is_running(running.record):
        cluster.run_kubectl(
            "delete", "nodepools.karpenter.sh", "--all", "--wait=true", "--timeout=60s",
            check=False, timeout_s=90,
        )  # fmt: skip
        cluster.run_kubectl(
            "delete", "nodeclaims.karpenter.sh", "--all", "--wait=true", "--timeout=60s",
            check=False, timeout_s=90,
        )  # fmt: skip
    forget(cluster, running.record)
    if remove_nodes:
        # Nodes a stopped Karpenter left behind (it was killed mid-termination): the static
        # nodes carry no Karpenter label.
        cluster.run_kubectl(
            "delete", "nodes", "-l", "karpenter.sh/nodepool", "--wait=false", check=False
        )


def karpenter_nodes(cluster: Cluster, pool: str | None = None) -> list[dict[str, Any]]:
    """The nodes Karpenter made (of one pool, if given)."""
    selector = "karpenter.sh/nodepool" + (f"={pool}" if pool else "")
    items: list[dict[str, Any]] = cluster.kubectl_json("get", "nodes", "-l", selector)["items"]
    return items
