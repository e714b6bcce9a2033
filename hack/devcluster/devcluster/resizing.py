"""In-place resize of a serving container, as the kubelet does it on its periodic sync: the
spec's resources against those applied, the node's room (`resize.decide`), the cgroup's new
limits, and the pod's resize state (Deferred, in progress with an Error) with its Events.

As in kubelet v1.36.3, only a *running* container is resized: `computePodResizeAction`
(pkg/kubelet/kuberuntime/kuberuntime_manager.go) returns at once for a container that is not
running, so a resize accepted while the container waits out a crash back-off is never actuated
on the pod's cgroup. The container's next start gets the new limits on its own cgroup, inside a
pod cgroup that keeps the old ones (kubernetes/kubernetes#138760): an OOM-looping pod stays
OOM-looping. The pod runner keeps one cgroup per container, so it holds the tighter of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import cgroups
from .podhost import PodHost
from .podstatus import ContainerView, ResizeView
from .resize import decide, limits_of, normalized, pod_requests

Resources = dict[str, Any]

# Deferred or failed resizes are retried on the kubelet's periodic sync.
RESIZE_RETRY_S = 2.0


class Resizing:
    """The container's applied resources and the pod's resize state."""

    def __init__(self, generation: int) -> None:
        self.applied: Resources = {}  # set by `applied_now` before anything reads it
        self.pod_level: Resources = {}
        """What the pod's cgroup was last set to: at creation, or by a resize of the running
        container (the only kind the kubelet actuates on the pod's cgroup)."""
        self.accepted: Resources | None = None
        """A resize accepted while the container was not running: its next start takes it."""
        self.state = ResizeView()
        self.retry_at = 0.0
        self.observed_generation = generation

    def applied_now(self, resources: Mapping[str, Any], view: ContainerView) -> None:
        """The container is (re)created with ``resources``: they are what is applied."""
        self.pod_level = normalized(resources)
        self._take(self.pod_level, view)

    def _take(self, resources: Resources, view: ContainerView) -> None:
        """``resources`` are on the container now: applied, allocated and reported."""
        self.applied, self.accepted = resources, None
        view.resources = resources
        view.allocated = dict(resources.get("requests", {}))

    def restarted(
        self,
        pod: Mapping[str, Any],
        cgroup: cgroups.ContainerCgroup,
        host: PodHost,
        view: ContainerView,
    ) -> None:
        """The container starts again: a resize accepted meanwhile reaches its own cgroup only,
        so what binds is the tighter of it and the pod's cgroup (the kubelet's behaviour)."""
        if self.accepted is None:
            return
        wanted = self.accepted
        self._take(wanted, view)
        binding = tighter(limits_of(self.pod_level), limits_of(wanted))
        try:
            cgroup.apply(binding, current_usage=0)  # nothing runs in it yet
        except cgroups.LimitError as error:  # the kernel refusing the write (EBUSY)
            host.post_event(pod, "ResizeError", str(error), warning=True)
        self.state = ResizeView()
        host.post_event(pod, "ResizeCompleted", f"Pod resize completed: {wanted}")

    def sync(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        cgroup: cgroups.ContainerCgroup | None,
        host: PodHost,
        view: ContainerView,
        now: float,
        *,
        running: bool,
    ) -> bool:
        """Apply the spec's resources if they changed and fit; True when the change needs the
        container restarted (its ``resizePolicy``). A container that is not ``running`` gets
        the resize accepted (allocated, in progress) and actuated only at its next start."""
        meta = pod["metadata"]
        generation = int(meta.get("generation") or 1)
        desired = normalized(container.get("resources") or {})
        if desired == self.applied:
            if self.state != ResizeView():
                self.state = ResizeView()
            self.accepted = None
            self.observed_generation = generation
            return False
        if desired == self.accepted:
            self.observed_generation = generation
            return False  # accepted already; waiting for the container's next start
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
        if not running:
            self.accepted = desired
            self.state = ResizeView(in_progress=True)
            return False
        try:
            cgroup.apply(limits_of(desired))
        except cgroups.LimitError as error:
            if self.state.error_message != str(error):
                host.post_event(pod, "ResizeError", str(error), warning=True)
            self.state = ResizeView(in_progress=True, error_message=str(error))
            return False
        self.pod_level = desired
        self._take(desired, view)
        self.state = ResizeView()
        host.post_event(pod, "ResizeCompleted", f"Pod resize completed: {desired}")
        return decision.restart


def tighter(pod_level: cgroups.Limits, container: cgroups.Limits) -> cgroups.Limits:
    """The limits that bind a container whose own cgroup sits in a pod cgroup with others:
    the lower CPU quota and memory limit (None: unlimited); CPU shares are the pod's."""

    def lower(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else min(a, b)

    return cgroups.Limits(
        cpu_request_m=pod_level.cpu_request_m,
        cpu_limit_m=lower(pod_level.cpu_limit_m, container.cpu_limit_m),
        memory_limit=lower(pod_level.memory_limit, container.memory_limit),
    )
