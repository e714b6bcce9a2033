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
from onnxops.reasons import KubeReason, PodPhase


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


# A container OOM-killed this recently is likely to be killed again before the kubelet gets
# to resize it (the runtime dies within seconds of each start): treated as not running.
OOM_RECENT_S = 60.0


def not_running(pods: Sequence[PodFacts], now: datetime) -> str | None:
    """Why an in-place resize cannot be trusted to reach these pods now; None: it can.

    The kubelet actuates a resize only on a running container (v1.36.3's
    `computePodResizeAction` returns at once for any other): one resized while it waits out a
    crash back-off restarts with the new limit on its own cgroup inside a pod cgroup that keeps
    the old one (kubernetes/kubernetes#138760), so an OOM-looping pod would go on OOM-looping
    with its status saying resized. A new pod gets the resources whole: a rollout."""
    why = "the kubelet resizes only running containers"
    for pod in pods:
        if pod.deleting:
            continue
        if not pod.running:
            state = pod.waiting or ("pending" if pod.phase == PodPhase.PENDING else "not running")
            return f"{pod.name} is not running ({state}): {why}"
        ended = pod.last_termination_at
        ago = now.timestamp() - ended if ended is not None else None
        if pod.last_termination == KubeReason.OOM_KILLED and ago is not None and ago < OOM_RECENT_S:
            return f"{pod.name} was OOM-killed {max(ago, 0):.0f}s ago and may be again: {why}"
    return None


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
