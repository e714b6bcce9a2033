"""One container run's probes and what they make of it: startup first, then liveness and
readiness (`probes.Prober` schedules each); the container view's ``started`` and ``ready``
follow them, and a failed liveness or startup probe asks for the container to be killed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .podstatus import ContainerView
from .probes import ProbeError, Prober, parse

log = logging.getLogger("devcluster.podrunner")


class Readiness:
    """The probes of the container's current run."""

    def __init__(self) -> None:
        self.probers: dict[str, Prober] = {}
        # What the probes of this run reach (a pod's probes cannot change: the API forbids it).
        self._container: Mapping[str, Any] = {}
        self._ports: Mapping[str, int] = {}
        self._address = ""

    def arm(
        self,
        container: Mapping[str, Any],
        ports: Mapping[str, int],
        address: str,
        now: float,
        view: ContainerView,
        target: str,
    ) -> None:
        """A new run: its startup probe, or (none) its liveness and readiness probes."""
        self.probers = {}
        self._container, self._ports, self._address = container, ports, address
        try:
            if "startupProbe" in container:
                self.probers["startup"] = Prober(
                    parse("startup", container["startupProbe"], ports, address), now
                )
            else:
                self._arm_after_startup(now)
        except ProbeError as error:
            log.warning("%s: %s (probe ignored)", target, error)
        view.started = "startup" not in self.probers
        view.ready = view.started and "readiness" not in self.probers

    def _arm_after_startup(self, now: float) -> None:
        container = self._container
        for kind in ("liveness", "readiness"):
            if f"{kind}Probe" in container:
                self.probers[kind] = Prober(
                    parse(kind, container[f"{kind}Probe"], self._ports, self._address), now
                )

    def clear(self) -> None:
        """The run ended: no more probes."""
        self.probers = {}

    def due(self, now: float) -> list[Prober]:
        return [p for p in list(self.probers.values()) if p.due(now)]

    def owns(self, prober: Prober) -> bool:
        """Is ``prober`` one of this run's (not of an earlier run of the container)?"""
        return self.probers.get(prober.spec.kind) is prober

    def record(
        self, prober: Prober, ok: bool, message: str, now: float, view: ContainerView
    ) -> bool:
        """Count one result; True when the container must be killed (liveness or startup
        failed, as the kubelet does)."""
        flipped = prober.record(ok, message, now)
        kind = prober.spec.kind
        if flipped is None:
            return False
        if kind == "startup" and flipped:
            view.started = True
            del self.probers["startup"]
            self._arm_after_startup(now)
            view.ready = "readiness" not in self.probers
        elif kind == "readiness":
            view.ready = flipped
        elif not flipped:
            return True
        return False
