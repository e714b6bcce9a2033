"""Which pools Karpenter can grow: those a NodePool's node template carries the labels of, with
limits that leave room for one more replica (pools.yaml's `autoscaled: true` says the same of a
Cluster Autoscaler node group, which has no API object to read). Read only when no pool has
room now, so a full cluster costs one list.

A model placed on such a pool gets its Deployment at once: its pods are Unschedulable until the
autoscaler adds a node, and heal waits for that (`scaleUpGraceSeconds`) or fails over
(`unschedulableSeconds`) as for any running model. Without this, a new model on a full pool (or
on a Karpenter pool that starts with no node at all) would fail NoCapacity and never create the
pending pod the autoscaler needs to see.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from onnxops import k8s
from onnxops.pools import QuantityError, quantity

log = logging.getLogger("onnxops.nodepools")
PATH = "/apis/karpenter.sh/v1/nodepools"


def has_headroom(nodepool: Mapping[str, Any], requests: Mapping[str, str]) -> bool:
    """Whether the NodePool's limits let it add a node for one replica of `requests`: for each
    limited resource the replica asks for, what it has launched plus the request stays within
    the limit. No limits: unbounded (as Karpenter reads them)."""
    limits = (nodepool.get("spec") or {}).get("limits") or {}
    used = (nodepool.get("status") or {}).get("resources") or {}
    for resource, limit in limits.items():
        try:
            need = quantity(requests.get(resource, 0))
            if quantity(used.get(resource, 0)) + need > quantity(limit):
                return False
        except QuantityError:
            return False  # a limit we cannot read is no promise of room
    return True


def _backs(nodepool: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = ((nodepool.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
        "labels"
    ) or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def growable(wanted: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]]) -> frozenset[str]:
    """The pools in `wanted` (name -> (node selector, one replica's requests)) a Karpenter
    NodePool can grow. Karpenter absent or not readable (no CRD, no RBAC): none."""
    try:
        listed = k8s.request("GET", PATH).get("items") or []
    except k8s.ApiError as exc:
        if exc.status not in (403, 404):
            log.info("cannot list Karpenter NodePools: %s", exc)
        return frozenset()
    return frozenset(
        name
        for name, (selector, requests) in wanted.items()
        if any(_backs(np, selector) and has_headroom(np, requests) for np in listed)
    )
