"""Node pools (cloud, edge, ...): profiles from the operator's configuration, and the choice
of a pool by supply (Ready nodes' allocatable minus what is already requested there).

Everything here is pure: the node and pod lists come in as plain dicts from `k8s.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from kubernetes.utils import parse_quantity
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from onnxops.api import ModelDeploymentSpec, Toleration
from onnxops.errors import UserInputError
from onnxops.reasons import KubeCondition, PodPhase, Reason

POOL_LABEL = "onnxops.io/pool"
RESOURCES = ("cpu", "memory")
# What a node runs out of: requested cpu and memory, and its pod slots.
SUPPLY = (*RESOURCES, "pods")


class PoolProfile(BaseModel):
    """What the operator applies to a model placed on one node pool."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    name: str
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    requests: dict[str, str] = Field(default_factory=lambda: {"cpu": "250m", "memory": "256Mi"})
    """Per-replica requests when the spec leaves them out."""
    limits: dict[str, str] = Field(default_factory=lambda: {"memory": "512Mi"})
    """Per-replica limits when the spec leaves them out."""
    ceilings: dict[str, str] = Field(default_factory=dict)
    """Largest per-replica request or limit a spec may ask for on this pool."""
    threads: int = 1
    preferred_variant: str | None = None
    """Model variant served here when the spec offers it (edge: `int8`)."""
    autoscaled: bool = False
    """A cluster autoscaler adds nodes to this pool on demand (a Cluster Autoscaler node group):
    a lack of room now is not a placement failure. Karpenter NodePools are found without it
    (`nodepools.py`)."""


def default_pools() -> dict[str, PoolProfile]:
    """Built-in profiles, matching the devcluster's node labels and taints."""
    edge_taint = Toleration(
        key="node-role.kubernetes.io/edge", operator="Equal", value="true", effect="NoSchedule"
    )
    return {
        "cloud": PoolProfile(
            name="cloud",
            node_selector={POOL_LABEL: "cloud"},
            requests={"cpu": "500m", "memory": "512Mi"},
            limits={"memory": "1Gi"},
            ceilings={"cpu": "8", "memory": "16Gi"},
            threads=2,
        ),
        "edge": PoolProfile(
            name="edge",
            node_selector={POOL_LABEL: "edge"},
            tolerations=[edge_taint],
            requests={"cpu": "100m", "memory": "128Mi"},
            limits={"memory": "256Mi"},
            ceilings={"cpu": "1", "memory": "1Gi"},
            threads=1,
            preferred_variant="int8",
        ),
    }


def load_pools(path: str | Path | None) -> dict[str, PoolProfile]:
    """Profiles from a YAML file `{pools: {NAME: {...}}}` (a mounted ConfigMap), else defaults."""
    if not path:
        return default_pools()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserInputError(f"cannot read pool configuration {path}: {exc}") from exc
    pools = raw.get("pools", raw)
    if not isinstance(pools, dict) or not pools:
        raise UserInputError(f"{path}: expected a mapping `pools: {{NAME: profile}}`")
    return {name: PoolProfile(name=name, **(body or {})) for name, body in pools.items()}


class QuantityError(ValueError):
    """A resource value that is no Kubernetes quantity (the spec's fault, not the operator's)."""


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity ("250m", "1Gi", 2) as a Decimal of base units."""
    try:
        parsed = Decimal(parse_quantity(value))
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity") from exc
    if parsed < 0:
        raise QuantityError(f"{value!r} is negative")
    return parsed


Resources = dict[str, dict[str, str]]
"""A container's requests and limits: {"requests": {"cpu": "250m"}, "limits": {...}}."""
MIB = Decimal(1024 * 1024)


def quantity_text(name: str, value: Decimal, *, up: bool = True) -> str:
    """A quantity in the one form heal writes: memory in Mi, CPU in millicores; rounded up
    (a grown or lowered value) or down (a ceiling, which must not be exceeded)."""
    rounded = math.ceil if up else math.floor
    if name == "memory":
        return f"{rounded(value / MIB)}Mi"
    return f"{rounded(value * 1000)}m"


def effective_resources(spec: ModelDeploymentSpec, pool: PoolProfile) -> Resources:
    """Per-replica requests and limits: the user's values kept as given, pool defaults only
    for what is unset.

    As Kubernetes does for a container, an unset request defaults to the user's limit (not to
    the pool's request, which could exceed that limit and would then have raised it); an unset
    limit defaults to the pool's, lifted to the request when the request is larger (a limit
    below the request is refused by the apiserver). So no value the user gave is changed."""
    given = {
        part: {
            k: str(v)
            for k, v in getattr(spec.resources, part).model_dump().items()
            if v is not None
        }
        for part in ("requests", "limits")
    }
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for name in RESOURCES:
        request = (
            given["requests"].get(name) or given["limits"].get(name) or pool.requests.get(name)
        )
        limit = given["limits"].get(name) or pool.limits.get(name)
        if request is not None:
            requests[name] = request
        if limit is not None:
            if request is not None and name not in given["limits"]:
                limit = max(limit, request, key=quantity)
            limits[name] = limit
    return {"requests": requests, "limits": limits}


def ceiling_violations(resources: dict[str, dict[str, str]], pool: PoolProfile) -> list[str]:
    """Human-readable reasons why the resources exceed the pool's per-replica ceilings."""
    found = []
    for part in ("requests", "limits"):
        for name, value in resources[part].items():
            cap = pool.ceilings.get(name)
            if cap is not None and quantity(value) > quantity(cap):
                found.append(f"{part}.{name} {value} exceeds pool {pool.name} ceiling {cap}")
    return found


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _ready(node: dict[str, Any]) -> bool:
    if node.get("spec", {}).get("unschedulable"):
        return False
    conditions = node.get("status", {}).get("conditions") or []
    return any(
        c.get("type") == KubeCondition.READY and c.get("status") == "True" for c in conditions
    )


def free_per_node(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]], selector: dict[str, str]
) -> list[dict[str, Decimal]]:
    """For each Ready node matching the selector: allocatable minus requests of its pods
    (and pod slots minus its pods)."""
    used: dict[str, dict[str, Decimal]] = {}
    for pod in pods:
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name or pod.get("status", {}).get("phase") in (
            PodPhase.SUCCEEDED,
            PodPhase.FAILED,
        ):
            continue
        bucket = used.setdefault(node_name, dict.fromkeys(SUPPLY, Decimal(0)))
        bucket["pods"] += 1
        for container in pod.get("spec", {}).get("containers", []):
            requests = (container.get("resources") or {}).get("requests") or {}
            for name in RESOURCES:
                if name in requests:
                    bucket[name] += quantity(requests[name])
    free = []
    for node in nodes:
        meta = node.get("metadata", {})
        if not _ready(node) or not _matches(meta.get("labels") or {}, selector):
            continue
        alloc = node.get("status", {}).get("allocatable") or {}
        taken = used.get(meta.get("name", ""), {})
        free.append(
            {name: quantity(alloc.get(name, 0)) - taken.get(name, Decimal(0)) for name in SUPPLY}
        )
    return free


def replicas_that_fit(free: list[dict[str, Decimal]], requests: dict[str, str]) -> int:
    """How many replicas with these requests the nodes can still hold (node by node)."""
    need = {name: quantity(requests.get(name, 0)) for name in RESOURCES}
    need["pods"] = Decimal(1)
    total = 0
    for room in free:
        counts = [
            int(room[name] // need[name]) if need[name] > 0 else 1_000_000
            for name in SUPPLY
            if name in room
        ]
        total += max(0, min(counts))
    return total


def choose_pool(
    *,
    order: list[str],
    fits: dict[str, int],
    replicas: int,
    current: str | None = None,
) -> str | None:
    """The first pool in `order` with room for `replicas`; the current pool wins if it fits.

    `fits` says how many replicas each pool can still hold, with this model's own pods
    already discounted, so a pool that is merely full of this model stays eligible.
    """
    if current in order and fits.get(current, 0) >= replicas:
        return current
    for name in order:
        if fits.get(name, 0) >= replicas:
            return name
    return None


class PlacementError(Exception):
    """No pool can take the model; `reason` is a condition reason, `permanent` means
    only a spec (or pool configuration) change can help."""

    def __init__(self, reason: str, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.permanent = permanent


@dataclass(frozen=True)
class Placement:
    pool: PoolProfile
    resources: dict[str, dict[str, str]]
    message: str


def _min_replicas(spec: ModelDeploymentSpec) -> int:
    return spec.autoscaling.min_replicas if spec.autoscaling else spec.replicas


def place(
    spec: ModelDeploymentSpec,
    pools: dict[str, PoolProfile],
    *,
    nodes: list[dict[str, Any]],
    other_pods: list[dict[str, Any]],
    current: str | None = None,
    growable: Callable[[dict[str, tuple[dict[str, str], dict[str, str]]]], frozenset[str]]
    | None = None,
) -> Placement:
    """Choose the pool: the requested one (then its fallback), or for `auto` the first with
    room, trying `prefer` first. `other_pods` excludes this model's own pods.

    No pool with room now: the first (the current one first) that an autoscaler can grow —
    configured `autoscaled`, or one `growable(name -> (node selector, one replica's requests))`
    says so (asked only then; see `nodepools.py`) — its pods left to wait for a node; else
    NoCapacity. Room now always wins
    over headroom: a NodePool's limits say what it may add, not what the cloud will give."""
    target = spec.target
    if target.pool == "auto":
        first = [target.prefer] if target.prefer else []
        order = first + sorted(p for p in pools if p not in first)
    else:
        order = [target.pool] + ([target.fallback_pool] if target.fallback_pool else [])
    unknown = [p for p in order if p not in pools]
    if unknown:
        raise PlacementError(
            Reason.UNKNOWN_POOL,
            f"pool {unknown[0]!r} is not configured (known: {', '.join(sorted(pools))})",
            permanent=True,
        )
    candidates, refused = [], []
    for name in order:
        resources = effective_resources(spec, pools[name])
        violations = ceiling_violations(resources, pools[name])
        if violations:
            refused.extend(violations)
        else:
            candidates.append(name)
    if not candidates:
        raise PlacementError(Reason.ABOVE_CEILING, "; ".join(refused), permanent=True)
    needed = _min_replicas(spec)
    fits = {}
    for name in candidates:
        selector = {**pools[name].node_selector, **target.node_selector}
        free = free_per_node(nodes, other_pods, selector)
        fits[name] = replicas_that_fit(free, effective_resources(spec, pools[name])["requests"])
    chosen = choose_pool(order=candidates, fits=fits, replicas=needed, current=current)
    waits = chosen is None
    if waits:
        grows = {n for n in candidates if pools[n].autoscaled}
        ask = {
            n: (
                {**pools[n].node_selector, **target.node_selector},
                effective_resources(spec, pools[n])["requests"],
            )
            for n in candidates
            if n not in grows
        }
        if ask and growable is not None:
            grows |= growable(ask)
        chosen = current if current in grows else next((n for n in candidates if n in grows), None)
    if chosen is None:
        room = ", ".join(f"{n}: {fits[n]}" for n in candidates)
        raise PlacementError(
            Reason.NO_CAPACITY,
            f"no pool has room for {needed} replica(s) (replicas that fit: {room})",
            permanent=False,
        )
    why = (
        "requested" if chosen == target.pool else ("fallback" if target.pool != "auto" else "auto")
    )
    if waits:
        message = (
            f"pool {chosen} ({why}; room now for {fits[chosen]} replica(s), need {needed}: "
            "its autoscaler can add nodes, the pods wait for them)"
        )
    else:
        message = f"pool {chosen} ({why}; room for {fits[chosen]} replica(s), need {needed})"
    return Placement(pools[chosen], effective_resources(spec, pools[chosen]), message)
