"""What a serving pod's worker (`container.ServingProcess`) may ask of the pod runner: the
`PodHost` protocol, and the runner's fixed `RunnerSettings`. The worker depends on these two
alone; `podrunner.PodRunner` implements the protocol, so neither module imports the other's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from .cgroups import Mode
from .probes import Prober


@dataclass(frozen=True)
class RunnerSettings:
    """How the runner runs every serving container; fixed when the runner is made."""

    command: tuple[str, ...]
    """The container's command (the serving runtime, or a test's stand-in)."""
    log_dir: Path
    """Each container's output, as ``<namespace>.<pod>.log``."""
    volumes_dir: Path
    """Each pod's volumes and termination-message file, under its uid."""
    mode: Mode
    """How resource limits are enforced (cgroup v1, v2 or the watchdog)."""
    extra_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Set in every container's environment, over its spec's."""
    tie_to_parent: bool = True
    """A container dies with the runner's sync thread (PR_SET_PDEATHSIG)."""
    backoff_s: float = 2.0
    """The first crash back-off (the kubelet's is 10 s)."""
    backoff_max_s: float = 60.0
    """The back-off doubles up to this (the kubelet's: 300 s)."""
    resolv_conf: Path | None = None
    """The kubelet's ``--resolv-conf``: each container sees this file as /etc/resolv.conf (a
    mount namespace of its own, `launch.py`); None: the host's. A test that names a
    nameserver on loopback makes name resolution fail for real with no query leaving."""


class PodHost(Protocol):
    """The runner's services for one pod's worker, all safe to call from the sync thread."""

    def read(self, path: str) -> Mapping[str, Any] | None:
        """GET an API object; None when it does not exist."""
        ...

    def node(self, name: str) -> Mapping[str, Any]:
        """The Node object (read once, then cached)."""
        ...

    def node_pods(self, node: str) -> list[Mapping[str, Any]]:
        """Every pod bound to ``node``."""
        ...

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Remove the pod object once its container is gone (grace 0, this uid only)."""
        ...

    def post_event(
        self, pod: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """Post an Event about ``pod``; never blocks."""
        ...

    def add_target(self, name: str, address: str, labels: Mapping[str, str]) -> None:
        """Register a Prometheus scrape target."""
        ...

    def remove_target(self, name: str) -> None: ...

    def run_probe(self, uid: str, prober: Prober) -> None:
        """Run one probe off the sync thread; the result comes back to the pod ``uid``'s
        ``probe_result`` in the sync thread."""
        ...

    def background(self, work: Callable[[], None]) -> None:
        """Run ``work`` off the sync thread."""
        ...

    def write_status(self, uid: str, path: str, status: dict[str, Any], *, wait: bool) -> None:
        """PATCH the pod's status at ``path``; the answer comes back to the pod ``uid``'s
        ``status_written`` in the sync thread (at once when ``wait``)."""
        ...
