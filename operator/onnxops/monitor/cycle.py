"""One monitor cycle: collect (one query per signal for every model, one pod list) → detect
(pure, per ModelDeployment) → write (status, Events, metrics) → hand over to the heal hooks.

`Monitor` keeps what must outlive a cycle: each ModelDeployment's streaks and the time slot
of its last evaluation. ModelDeployments are due on a wall-clock grid of their own
`intervalSeconds`, so all those with the same interval share one cycle and one set of queries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from onnxops import k8s
from onnxops.api import Fault, ModelDeployment
from onnxops.config import OperatorConfig
from onnxops.monitor import detect, lowuse, pods, queries, report, signals
from onnxops.monitor.metrics import OperatorMetrics
from onnxops.monitor.pods import PodFacts
from onnxops.monitor.prom import History, Key, PrometheusReader, PromSettings, Reading
from onnxops.outage import unreachable
from onnxops.reasons import Phase
from onnxops.status import differs

log = logging.getLogger("onnxops.monitor")

EVENT_COMPONENT = "onnxops-operator"

Hook = Callable[[ModelDeployment, list[Fault], Sequence[PodFacts], datetime], None]
"""Called after detection for every evaluated ModelDeployment with its current faults, its
pods' facts and the cycle's time: where remediation plugs in. Exceptions are logged."""


@dataclass
class CycleReport:
    """What one cycle did, for logs, metrics and the benchmark."""

    evaluated: int = 0
    queries: int = 0
    writes: int = 0
    events: int = 0
    seconds: float = 0.0


def _key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Monitor:
    """The monitor of every ModelDeployment this operator watches."""

    def __init__(self, cfg: OperatorConfig, metrics: OperatorMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or OperatorMetrics()
        self.reader = (
            PrometheusReader(
                PromSettings(
                    cfg.prometheus_url,
                    cfg.prometheus_bearer_token_file,
                    cfg.prometheus_ca_file,
                    cfg.prometheus_timeout_s,
                ),
                cfg.prometheus_model_label,
            )
            if cfg.prometheus_url
            else None
        )
        self.tracks: dict[Key, detect.Track] = {}
        self._slots: dict[Key, int] = {}
        self.hooks: list[Hook] = []

    # -- when ---------------------------------------------------------------------------------
    def due(self, bodies: Mapping[Key, Mapping[str, Any]], now: float) -> list[Key]:
        """The ModelDeployments whose interval slot moved on since their last evaluation
        (a new one is due at once); forgets deleted ones."""
        for gone in set(self._slots) - set(bodies):
            self._slots.pop(gone, None)
            self.tracks.pop(gone, None)
        self.metrics.forget(bodies)
        self.metrics.watched.set(len(bodies))
        self.metrics.record_phases(
            str((b.get("status") or {}).get("phase") or Phase.PENDING) for b in bodies.values()
        )
        due = []
        for key, body in bodies.items():
            interval = ((body.get("spec") or {}).get("monitoring") or {}).get("intervalSeconds", 30)
            slot = int(now // max(int(interval), 1))
            if self._slots.get(key) != slot:
                due.append(key)
                self._slots[key] = slot
        return due

    # -- collect ------------------------------------------------------------------------------
    def collect(self, models: Sequence[ModelDeployment], now: float) -> signals.Observations:
        """Everything this cycle's models need, read once for all of them."""
        if self.reader is None:  # monitoring is off: nothing to read
            return signals.Observations(now, configured=False)
        try:
            facts = pods.by_model(
                k8s.serving_pods([n for n in self.cfg.namespaces.split(",") if n])
            )
            pods_error = None
        except Exception as exc:  # the API can fail too; pod signals are then unknown
            facts, pods_error = {}, f"{type(exc).__name__}: {exc}"
        window = self.cfg.monitor_rate_window
        label = self.cfg.prometheus_model_label
        readings: dict[str, Reading] = {}
        for q in queries.instant_queries(label, window):
            failed = next((r.error for r in readings.values() if r.error), None)
            # Once Prometheus failed to answer, the rest would only wait out their timeouts.
            readings[q.name] = Reading(error=failed) if failed else self.reader.instant(q, at=now)
        if any(r.error for r in readings.values()):
            return signals.Observations(now, readings, {}, facts, pods_error=pods_error)
        histories: dict[str, History] = {}
        spans = [
            signals.seconds(md.spec.monitoring.anomaly.window)
            for md in models
            if md.spec.monitoring.anomaly.enabled
        ]
        if spans:  # one range over the longest window; each model slices its own
            for q in queries.history_queries(label, window):
                histories[q.name] = self.reader.history(
                    q, start=now - max(spans), end=now, step_s=self.cfg.monitor_history_step_s
                )
        low_use: dict[str, Reading] = {}
        for span in lowuse.windows(models):
            step = self.cfg.monitor_history_step_s
            for q in queries.low_use_queries(window, span, step):
                low_use[q.name] = self.reader.instant(q, at=now)
        return signals.Observations(
            now, readings, histories, facts, pods_error=pods_error, low_use=low_use
        )

    # -- detect and write ---------------------------------------------------------------------
    def run_cycle(self, bodies: Sequence[Mapping[str, Any]], now: float) -> CycleReport:
        """Evaluate these ModelDeployments (all due now) and write what changed."""
        started = time.perf_counter()
        queries_before = self.reader.queries if self.reader else 0
        errors_before = self.reader.errors if self.reader else 0
        models = []
        for body in bodies:
            try:
                models.append(ModelDeployment.model_validate(dict(body)))
            except ValidationError as exc:  # the schema should prevent it; never crash on it
                log.warning("not evaluating %s/%s: %s", *_key(body), exc.errors()[:1])
        enabled = [md for md in models if md.spec.monitoring.enabled]
        obs = self.collect(enabled, now) if enabled else signals.Observations(now)
        result = CycleReport(evaluated=len(models))
        at = datetime.fromtimestamp(now, UTC)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        for md in models:
            try:
                self._one(md, obs, stamp, at, result)
            except Exception as exc:  # one model's failure (an API error) must not stop the others
                if unreachable(exc):  # the outage log says so once; no traceback per model
                    log.info("monitoring %s/%s skipped: %s", md.namespace, md.name, exc)
                else:
                    log.exception("monitoring %s/%s failed", md.namespace, md.name)
        if self.reader:
            result.queries = self.reader.queries - queries_before
            self.metrics.queries.inc(result.queries)
            self.metrics.prometheus_errors.inc(self.reader.errors - errors_before)
        result.seconds = time.perf_counter() - started
        self.metrics.cycle_seconds.observe(result.seconds)
        return result

    def _one(
        self,
        md: ModelDeployment,
        obs: signals.Observations,
        stamp: str,
        at: datetime,
        out: CycleReport,
    ) -> None:
        key = (md.namespace, md.name)
        if not md.spec.monitoring.enabled:
            self._write(
                md,
                lambda m: report.disabled_patch(
                    m, "Disabled", "spec.monitoring.enabled is false", now=stamp
                ),
                out,
            )
            self.metrics.record_faults(key, [])
            return
        problem = signals.problem(obs, key)
        evaluations = (
            signals.evaluate(md, obs, key)
            if problem is None or problem[0] != "NotConfigured"
            else []
        )
        track = detect.readability(self.tracks.get(key, detect.Track()), problem and problem[1])
        track, faults = detect.judge(
            track,
            evaluations,
            md.status.faults,
            failure_threshold=md.spec.monitoring.failure_threshold,
            now=stamp,
        )
        self.tracks[key] = track
        self.metrics.evaluations.labels("unreadable" if problem else "read").inc()
        avail = report.availability(md, problem, track.unreadable)
        low = lowuse.evaluate(md, obs.pods.get(key, []), obs.low_use, at=obs.at)
        self._write(
            md, lambda m: report.status_patch(m, faults, avail, now=stamp, low_use=low), out
        )
        self.metrics.record_faults(key, [f.signal for f in faults])
        for hook in self.hooks:
            try:
                hook(md, faults, list(obs.pods.get(key, [])), at)
            except Exception as exc:
                if unreachable(exc):
                    log.info("monitor hook %r skipped for %s/%s: %s", hook, *key, exc)
                else:
                    log.exception("monitor hook %r failed for %s/%s", hook, *key)

    def _write(
        self,
        md: ModelDeployment,
        patch_of: Callable[[ModelDeployment], dict[str, Any]],
        out: CycleReport,
    ) -> None:
        """Write the patch if it changes status, against the version it was computed from; on
        a conflict, once more from a fresh read. Events follow the write that made the change."""
        body = md.wire()
        for attempt in range(2):
            patch = patch_of(md)
            if not differs(body.get("status") or {}, patch):
                return
            version = str(md.metadata.get("resourceVersion", ""))
            if k8s.patch_status_at(md.namespace, md.name, patch, version):
                out.writes += 1
                new = [Fault.model_validate(f) for f in patch["faults"]]
                for type_, reason, message in report.events(md.status.faults, new):
                    k8s.post_event(body, type_, reason, message, EVENT_COMPONENT)
                    out.events += 1
                return
            if attempt == 0:
                fresh = k8s.get(md.api_version, md.kind, md.namespace, md.name)
                if fresh is None:
                    return
                md = ModelDeployment.model_validate(fresh)
                body = md.wire()
