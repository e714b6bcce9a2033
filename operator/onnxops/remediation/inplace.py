"""Resizing pods in place (`pods/resize`, as VPA's updater does): writing the resources to
each live pod, and judging from the pods' facts whether a resize in flight should be rolled
out instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from onnxops import k8s, podapi
from onnxops.api import ModelDeployment
from onnxops.build import CONTAINER
from onnxops.monitor.pods import PodFacts
from onnxops.pools import Resources
from onnxops.reasons import KubeReason


def wanted(resources: Resources) -> Resources:
    """The parts a resize writes (an empty part would clear the pod's)."""
    return {part: values for part, values in resources.items() if values}


def resize_pods(namespace: str, pods: Sequence[PodFacts], to: Resources) -> list[tuple[str, str]]:
    """`pods/resize` of each live pod; (pod, why) for each the apiserver refused."""
    refused = []
    for pod in pods:
        if pod.deleting:
            continue
        try:
            podapi.resize_pod(namespace, pod.name, CONTAINER, to)
        except k8s.ApiError as exc:
            if exc.status >= 500:
                raise
            refused.append((pod.name, exc.message))
    return refused


def fallback(md: ModelDeployment, pods: Sequence[PodFacts], now: datetime) -> str | None:
    """Why an in-place resize in flight should be rolled out instead; None: keep waiting.

    The kubelet refuses for good (`Infeasible`: the node could never fit it; `Error`), or
    defers it while the node lacks room, which may last: after `resize.deferredSeconds` a
    rollout takes the new resources to a node with room (VPA's InPlaceOrRecreate)."""
    bound = md.spec.remediation.resize.deferred_seconds
    for pod in pods:
        if pod.deleting:
            continue
        waited = (now - pod.resize_since).total_seconds() if pod.resize_since else None
        stuck = pod.resize == KubeReason.RESIZE_DEFERRED and waited is not None and waited >= bound
        if pod.resize in (KubeReason.RESIZE_INFEASIBLE, KubeReason.RESIZE_ERROR) or stuck:
            return f"resize {pod.resize} on {pod.name}" + (
                f" for over {bound}s" if pod.resize == KubeReason.RESIZE_DEFERRED else ""
            )
    return None


def short(resources: Mapping[str, Mapping[str, str]]) -> str:
    return ", ".join(f"{part} {k}={v}" for part, vals in resources.items() for k, v in vals.items())
