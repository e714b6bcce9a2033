"""What the pod runner reports of one serving pod: its status, written only when it changed
(and written again after a failed write), and its container's cAdvisor sample.
"""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Mapping
from typing import Any

from . import cgroups
from .cadvisor import ContainerSample
from .podstatus import ContainerView

log = logging.getLogger("devcluster.podrunner")


class StatusReport:
    """The pod's status as last handed to the writers."""

    def __init__(self) -> None:
        self.last_status: dict[str, Any] | None = None

    def seen(self, pod: Mapping[str, Any]) -> Mapping[str, Any]:
        """The pod with the status last sent: transition times are judged against it (the
        watch may not have echoed it yet)."""
        return {**pod, "status": self.last_status} if self.last_status else pod

    def changed(self, status: dict[str, Any]) -> bool:
        """Is ``status`` new (then it is the one last sent)?"""
        if status == self.last_status:
            return False
        self.last_status = status
        return True

    def written(self, error: Exception | None, target: str) -> bool:
        """The writers' answer: True when the pod is gone; a failed write is sent again at
        the next sync."""
        if isinstance(error, urllib.error.HTTPError) and error.code == 404:
            return True
        if error is not None:
            log.warning("status of %s not written: %s", target, error)
            self.last_status = None
        return False


def sample(
    view: ContainerView,
    cgroup: cgroups.ContainerCgroup,
    *,
    namespace: str,
    pod: str,
    node: str,
    start_wall: float,
) -> ContainerSample:
    """The container's cAdvisor sample (usage from its cgroup)."""
    return ContainerSample(
        namespace=namespace,
        pod=pod,
        container=view.name,
        node=node,
        image=view.image,
        cgroup_id=cgroup.id,
        limits=cgroup.limits,
        stats=cgroup.stats(),
        start_time=view.started_at or start_wall,
    )
