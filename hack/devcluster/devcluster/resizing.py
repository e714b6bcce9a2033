"""In-place resize of a serving container, as the kubelet does it on its periodic sync: the
spec's resources against those applied, the node's room (`resize.decide`), the cgroup's new
limits, and the pod's resize state (Deferred, in progress with an Error) with its Events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import cgroups
from .podhost import PodHost
from .podstatus import ContainerView, ResizeView
from .resize import decide, limits_of, normalized, pod_requests

# Deferred or failed resizes are retried on the kubelet's periodic sync.
RESIZE_RETRY_S = 2.0


class Resizing:
    """The container's applied resources and the pod's resize state."""

    def __init__(self, generation: int) -> None:
        self.applied: dict[str, Any] = {}  # set by `applied_now` before anything reads it
        self.state = ResizeView()
        self.retry_at = 0.0
        self.observed_generation = generation

    def applied_now(self, resources: Mapping[str, Any], view: ContainerView) -> None:
        """The container is (re)created with ``resources``: they are what is applied."""
        self.applied = normalized(resources)
        view.resources = self.applied
        view.allocated = dict(self.applied.get("requests", {}))

    def sync(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        cgroup: cgroups.ContainerCgroup | None,
        host: PodHost,
        view: ContainerView,
        now: float,
    ) -> bool:
        """Apply the spec's resources if they changed and fit; True when the change needs the
        container restarted (its ``resizePolicy``)."""
        meta = pod["metadata"]
        generation = int(meta.get("generation") or 1)
        desired = normalized(container.get("resources") or {})
        if desired == self.applied:
            if self.state != ResizeView():
                self.state = ResizeView()
            self.observed_generation = generation
            return False
        # A container waiting out a crash back-off is resized too: its next run gets the new
        # limits (an OOM-looping pod is exactly the one a memory resize is for).
        if cgroup is None or now < self.retry_at:
            return False
        self.retry_at = now + RESIZE_RETRY_S
        self.observed_generation = generation
        node = pod["spec"]["nodeName"]
        others = [
            pod_requests(p)
            for p in host.node_pods(node)
            if p["metadata"]["uid"] != meta["uid"]
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        decision = decide(
            desired,
            self.applied,
            container.get("resizePolicy") or [],
            node_allocatable=host.node(node).get("status", {}).get("allocatable", {}),
            others=others,
        )
        if decision.action == "defer":
            if self.state.pending_reason != "Deferred":
                host.post_event(pod, "ResizeDeferred", decision.message, warning=True)
            self.state = ResizeView(pending_reason="Deferred", pending_message=decision.message)
            return False
        if self.state.pending_reason or not self.state.in_progress:
            host.post_event(pod, "ResizeStarted", f"Pod resize started: {desired}")
        view.allocated = dict(desired.get("requests", {}))
        try:
            cgroup.apply(limits_of(desired))
        except cgroups.LimitError as error:
            if self.state.error_message != str(error):
                host.post_event(pod, "ResizeError", str(error), warning=True)
            self.state = ResizeView(in_progress=True, error_message=str(error))
            return False
        self.applied = desired
        view.resources = desired
        self.state = ResizeView()
        host.post_event(pod, "ResizeCompleted", f"Pod resize completed: {desired}")
        return decision.restart
