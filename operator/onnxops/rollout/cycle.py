"""The rollout cycle: every tick, each ModelDeployment whose rollout is in progress (or has
a user action waiting) is moved on by `machine.advance`; those whose analysis interval came
round share one query per signal (per measurement window, `queries.window_s`: at most five).
The new status.rollout (the intent) is written before the children are re-applied through
`reapply` (the reconcile, handed in), the mirror ConfigMap follows the canary's
EndpointSlices, and the pods carry the disruption hints through an analysis step
(`disruption`). The only part of `rollout/` with I/O."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from onnxops import build, disruption, k8s, podapi, status
from onnxops.api import ModelDeployment, RolloutStatus
from onnxops.monitor import pods as pod_facts
from onnxops.monitor.prom import PrometheusReader
from onnxops.monitor.signals import seconds
from onnxops.outage import unreachable
from onnxops.rollout import analysis, machine, plan, queries

log = logging.getLogger("onnxops.rollout")
Key = tuple[str, str]
COMPONENT = "onnxops-rollout"


def _dump(r: RolloutStatus | None) -> dict[str, Any] | None:
    # Nulls included: a merge patch removes what the new state leaves unset.
    return None if r is None else r.model_dump(by_alias=True, mode="json")


def runs_version(deployment: dict[str, Any] | None, version: str | None) -> bool:
    """Whether a Deployment rolled out with every pod serving `version`."""
    if deployment is None or not status.rollout(deployment)[2]:
        return False
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}
    return env.get("ONNXOPS_MODEL_VERSION") == version


def ready_targets(slices: list[dict[str, Any]]) -> list[str]:
    """podIP:port of the ready endpoints of a Service's EndpointSlices (the http port)."""
    out = []
    for s in slices:
        ports = [p.get("port") for p in s.get("ports") or [] if p.get("name") == "http"]
        if not ports:
            continue
        for endpoint in s.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            out += [f"{address}:{ports[0]}" for address in endpoint.get("addresses") or []]
    return sorted(out)


class Rollouts:
    """The rollouts of every ModelDeployment this operator watches."""

    def __init__(
        self,
        reader: PrometheusReader | None,
        reapply: Callable[[Mapping[str, Any]], Any],
        *,
        model_label: str,
        window: str,
    ) -> None:
        self.reader = reader
        self.reapply = reapply
        self.model_label = model_label
        self.window = window
        self._slots: dict[Key, tuple[int, int]] = {}
        self._mirrors: dict[Key, str] = {}  # the mirror.json last written
        self._mirroring: set[Key] = set()  # those with mirroring on

    def _due(self, key: Key, md: ModelDeployment, now: float) -> bool:
        assert md.spec.rollout is not None
        interval = md.spec.rollout.analysis.interval_seconds
        slot = (interval, int(now // interval))
        if self._slots.get(key) == slot:
            return False
        self._slots[key] = slot
        return True

    def run(self, bodies: Mapping[Key, Mapping[str, Any]], now: float) -> int:
        """One turn for every rollout in progress; how many were looked at."""
        work: list[tuple[ModelDeployment, Mapping[str, Any], bool]] = []
        for key, body in bodies.items():
            if not (body.get("spec") or {}).get("rollout"):
                self._mirrors.pop(key, None)
                self._mirroring.discard(key)
                continue
            try:
                md = ModelDeployment.model_validate(dict(body))
            except ValidationError:
                continue  # the reconcile says why
            r = md.status.rollout
            pending = machine.action(md) is not None
            if r is None or not (plan.active(r) or pending or key in self._mirroring):
                continue
            work.append((md, body, plan.active(r) and self._due(key, md, now)))
        readings = self.read([md for md, _, due in work if due], now)
        at = datetime.fromtimestamp(now, UTC)
        for md, body, _ in work:
            try:
                self._one(md, body, readings.get((md.namespace, md.name)), at)
            except Exception as exc:  # one rollout's failure must not stop the others
                if unreachable(exc):
                    log.info("rollout of %s/%s skipped: %s", md.namespace, md.name, exc)
                else:
                    log.exception("rollout of %s/%s failed", md.namespace, md.name)
        return len(work)

    def read(self, models: list[ModelDeployment], now: float) -> dict[Key, analysis.Readings]:
        """One query per signal for all `models` whose steps share a measurement window (at
        most five windows: `queries.window_s`); per model, stable beside candidate."""
        if not models:
            return {}
        if self.reader is None:
            missing = analysis.Readings(error="no Prometheus configured (ONNXOPS_PROMETHEUS_URL)")
            return {(m.namespace, m.name): missing for m in models}
        out: dict[Key, analysis.Readings] = {}
        error = None
        for window, group in sorted(by_window(models, now, self.window).items()):
            if error:  # Prometheus failed once: the rest would only wait out their timeouts
                out.update({(m.namespace, m.name): analysis.Readings(error=error) for m in group})
                continue
            found, error = self._read(group, f"{window}s", now)
            out.update(found)
        return out

    def _read(
        self, models: list[ModelDeployment], window: str, now: float
    ) -> tuple[dict[Key, analysis.Readings], str | None]:
        """The readings of `models` over one window, and Prometheus' error if it failed."""
        assert self.reader is not None
        values: dict[str, dict[tuple[str, ...], float]] = {}
        error = None
        wanted = queries.by_version(self.model_label, window)
        if any(_shadowing(m) for m in models):
            wanted.append(queries.shadow(self.model_label, window))
        for q in wanted:
            if error:  # Prometheus failed once: the rest would only wait out their timeouts
                break
            values[q.name], error = self.reader.instant_by(q.promql, q.labels, at=now)
        out = {}
        for m in models:
            r = m.status.rollout
            assert r is not None
            if error:
                out[(m.namespace, m.name)] = analysis.Readings(error=error)
                continue

            def side(version: str | None, m: ModelDeployment = m) -> analysis.Side:
                k = (m.namespace, m.name, version or "")
                return analysis.Side(
                    **{name: values.get(name, {}).get(k) for name in analysis.Side.__annotations__}
                )

            shadow = {
                key[3]: v
                for key, v in values.get("shadow", {}).items()
                if key[:3] == (m.namespace, m.name, r.candidate_version or "")
            }
            out[(m.namespace, m.name)] = analysis.Readings(
                side(r.stable_version), side(r.candidate_version), shadow
            )
        return out, error

    def _one(
        self,
        md: ModelDeployment,
        body: Mapping[str, Any],
        readings: analysis.Readings | None,
        at: datetime,
    ) -> None:
        r = md.status.rollout
        assert r is not None
        canary = k8s.get("apps/v1", "Deployment", md.namespace, plan.canary_name(md.name))
        stable = k8s.get("apps/v1", "Deployment", md.namespace, md.name)
        wanted, _, rolled_out = status.rollout(canary)
        moved = machine.advance(
            md,
            now=at,
            readings=readings,
            canary_ready=rolled_out and wanted > 0,
            stable_on_candidate=runs_version(stable, r.candidate_version),
        )
        if moved.rollout != r:
            # The intent first: an operator killed after this write finds the step in status.
            # Only over the object as read: a stale copy (the watch not caught up) would take
            # the same step twice; a conflict leaves the turn to the next tick.
            version = str((body.get("metadata") or {}).get("resourceVersion") or "")
            wrote = k8s.patch_status_at(
                md.namespace, md.name, {"rollout": _dump(moved.rollout)}, version
            )
            if not wrote:
                return
            new_status = {**(body.get("status") or {}), "rollout": _dump(moved.rollout)}
            self.reapply({**body, "status": new_status})
        for type_, reason, message in moved.events:
            k8s.post_event(dict(body), type_, reason, message, COMPONENT)
        now_md = md.model_copy(
            update={"status": md.status.model_copy(update={"rollout": moved.rollout})}
        )
        self._mirror(now_md)
        if moved.rollout != r or readings is not None:
            # At each change of step or phase, and each analysis interval: a canary pod comes
            # a moment after its step began, a stable one may be replaced meanwhile.
            self._hint(now_md)

    def _hint(self, md: ModelDeployment) -> None:
        """The disruption hints on the stable and canary pods: on through an analysis step, off
        once promoting, promoted or aborted (`disruption.protected`, heal's rule too)."""
        listed = podapi.list_pods(md.namespace, build.pod_selector(md))
        pods = [f for p in listed if (f := pod_facts.facts(p)) is not None]
        disruption.hint(md.namespace, pods, on=disruption.protected(md))

    def _mirror(self, md: ModelDeployment) -> None:
        """The NAME-mirror ConfigMap the stable pods read: the canary's ready addresses while
        a shadow step runs, percent 0 otherwise (written only when it changes)."""
        key = (md.namespace, md.name)
        r = md.status.rollout
        shape = plan.shape(md.spec, r, replicas=max(md.spec.replicas, 1), autoscaled=False)
        config: dict[str, Any] = {"percent": 0, "targets": []}
        if shape.shadowing and r is not None:
            found = k8s.request(
                "GET",
                k8s.object_path("discovery.k8s.io/v1", "EndpointSlice", md.namespace),
                query=[
                    ("labelSelector", f"kubernetes.io/service-name={plan.canary_name(md.name)}")
                ],
            )
            config = {
                "percent": shape.shadow_percent,
                "targets": ready_targets(found.get("items") or []),
                "stableVersion": r.stable_version,
                "candidateVersion": r.candidate_version,
                "tolerance": md.spec.rollout.analysis.agreement_tolerance if md.spec.rollout else 0,
            }
        text = json.dumps(config, sort_keys=True)
        if self._mirrors.get(key) == text:
            return
        k8s.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": plan.mirror_name(md.name),
                    "namespace": md.namespace,
                    "labels": build.labels(md, md.status.pool or ""),
                    "ownerReferences": [build.owner_reference(md)],
                },
                "data": {plan.MIRROR_KEY: text},
            }
        )
        self._mirrors[key] = text
        if config["percent"]:
            self._mirroring.add(key)
        else:
            self._mirroring.discard(key)


def by_window(
    models: list[ModelDeployment], now: float, rate_window: str
) -> dict[int, list[ModelDeployment]]:
    """The rollouts due, by the measurement window (seconds) of their current step."""
    at = datetime.fromtimestamp(now, UTC)
    out: dict[int, list[ModelDeployment]] = {}
    for m in models:
        r = m.status.rollout
        assert r is not None
        window = queries.window_s(machine.elapsed(r, at), seconds(rate_window))
        out.setdefault(window, []).append(m)
    return out


def _shadowing(md: ModelDeployment) -> bool:
    r = md.status.rollout
    steps = md.spec.rollout.steps if md.spec.rollout else []
    return r is not None and r.step < len(steps) and steps[r.step].shadow is not None
