"""One monitor cycle: collect (one query per signal for every model, one pod list) → detect
(pure, per ModelDeployment, one after another) → write (status, Events) and hand over to the
heal hooks, several models at once through a bounded pool (`monitor/writes.py`).

`Monitor` keeps what must outlive a cycle: each ModelDeployment's streaks and the time slot
of its last evaluation. ModelDeployments are due on a wall-clock grid of their own
`intervalSeconds`, so all those with the same interval share one cycle and one set of queries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from onnxops import podapi
from onnxops.api import Fault, ModelDeployment
from onnxops.config import OperatorConfig
from onnxops.monitor import detect, lowuse, pods, queries, report, signals, writes
from onnxops.monitor.metrics import OperatorMetrics
from onnxops.monitor.pods import PodFacts
from onnxops.monitor.prom import History, Key, PrometheusReader, PromSettings, Reading
from onnxops.outage import unreachable
from onnxops.reasons import Phase, Problem

log = logging.getLogger("onnxops.monitor")

Hook = Callable[[ModelDeployment, list[Fault], Sequence[PodFacts] | None, datetime], None]
"""Called after detection for every evaluated ModelDeployment with its current faults, its
pods' facts as this cycle listed them (terminating ones too; None when the cycle listed no
pods: monitoring off, or the list failed) and the cycle's time: where remediation plugs in.
Exceptions are logged. Runs in
the cycle's write pool, after that model's status write: hooks of several models run at once,
never two for one model."""


@dataclass
class CycleReport:
    """What one cycle did, for logs, metrics and the benchmark."""

    evaluated: int = 0
    queries: int = 0
    writes: int = 0
    events: int = 0
    stopped: int = 0  # models whose writes were not started: the operator is stopping
    seconds: float = 0.0


@dataclass(frozen=True)
class _Plan:
    """One model's detection outcome: the status patch to write and what the hooks get."""

    md: ModelDeployment
    body: Mapping[str, Any]
    """The object as read (what a merge patch is compared against)."""
    patch_of: Callable[[ModelDeployment], dict[str, Any]]
    faults: list[Fault]
    pods: list[PodFacts] | None
    heal: bool = True


def _key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Monitor:
    """The monitor of every ModelDeployment this operator watches."""

    def __init__(self, cfg: OperatorConfig, metrics: OperatorMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or OperatorMetrics()
        # Set when the operator stops: the cycle in flight starts no further model's writes.
        self.stopping = threading.Event()
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
        self._slots: dict[Key, tuple[int, int]] = {}  # (interval, slot) last evaluated
        self.last_cycle_s = 0.0
        self.hooks: list[Hook] = []

    # -- when ---------------------------------------------------------------------------------
    def due(self, bodies: Mapping[Key, Mapping[str, Any]], now: float) -> list[Key]:
        """The ModelDeployments whose interval slot moved on since their last evaluation
        (a new one is due at once); forgets deleted ones. Slots that passed meanwhile (a cycle
        longer than the interval) are skipped, not made up for: counted and logged."""
        for gone in set(self._slots) - set(bodies):
            self._slots.pop(gone, None)
            self.tracks.pop(gone, None)
        self.metrics.forget(bodies)
        self.metrics.watched.set(len(bodies))
        self.metrics.record_phases(
            (
                namespace,
                str((b.get("status") or {}).get("phase") or Phase.PENDING),
                ((b.get("status") or {}).get("rollout") or {}).get("phase")
                if (b.get("spec") or {}).get("rollout")
                else None,
            )
            for (namespace, _), b in bodies.items()
        )
        due = []
        skipped: dict[int, int] = {}  # interval -> slots of its grid that passed unevaluated
        for key, body in bodies.items():
            interval = ((body.get("spec") or {}).get("monitoring") or {}).get("intervalSeconds", 30)
            interval = max(int(interval), 1)
            slot = int(now // interval)
            last = self._slots.get(key)
            if last != (interval, slot):
                due.append(key)
                self._slots[key] = (interval, slot)
                if last is not None and last[0] == interval and slot - last[1] > 1:
                    skipped[interval] = max(skipped.get(interval, 0), slot - last[1] - 1)
        for interval, count in sorted(skipped.items()):
            # A cycle that overran its interval is never caught up with a queue of cycles:
            # the slots it ran past are dropped, and said.
            self.metrics.cycles_skipped.inc(count)
            log.warning(
                "monitor: %d slot(s) of the %d s interval skipped (the previous cycle took %.1f s)",
                count,
                interval,
                self.last_cycle_s,
            )
        return due

    # -- collect ------------------------------------------------------------------------------
    def collect(self, models: Sequence[ModelDeployment], now: float) -> signals.Observations:
        """Everything this cycle's models need, read once for all of them."""
        if self.reader is None:  # monitoring is off: nothing to read
            return signals.Observations(now, configured=False)
        try:
            listed: dict[Key, list[PodFacts]] | None = pods.grouped(
                podapi.serving_pods([n for n in self.cfg.namespaces.split(",") if n])
            )
            pods_error = None
        except Exception as exc:  # the API can fail too; pod signals are then unknown
            listed, pods_error = None, f"{type(exc).__name__}: {exc}"
        facts = pods.live(listed or {})
        window = self.cfg.monitor_rate_window
        label = self.cfg.prometheus_model_label
        readings: dict[str, Reading] = {}
        for q in queries.instant_queries(label, window):
            failed = next((r.error for r in readings.values() if r.error), None)
            # Once Prometheus failed to answer, the rest would only wait out their timeouts.
            readings[q.name] = Reading(error=failed) if failed else self.reader.instant(q, at=now)
        if any(r.error for r in readings.values()):
            return signals.Observations(
                now, readings, {}, facts, pods_error=pods_error, listed=listed
            )
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
            now, readings, histories, facts, pods_error=pods_error, low_use=low_use, listed=listed
        )

    # -- detect and write ---------------------------------------------------------------------
    def run_cycle(self, bodies: Sequence[Mapping[str, Any]], now: float) -> CycleReport:
        """Evaluate these ModelDeployments (all due now) and write what changed: detection one
        model after another, then each model's writes, Events and heal hooks through the
        bounded pool (`monitor_write_concurrency` in flight)."""
        started = time.perf_counter()
        queries_before = self.reader.queries if self.reader else 0
        errors_before = self.reader.errors if self.reader else 0
        models: list[tuple[ModelDeployment, Mapping[str, Any]]] = []
        for body in bodies:
            try:
                models.append((ModelDeployment.model_validate(dict(body)), body))
            except ValidationError as exc:  # the schema should prevent it; never crash on it
                log.warning("not evaluating %s/%s: %s", *_key(body), exc.errors()[:1])
        enabled = [md for md, _ in models if md.spec.monitoring.enabled]
        obs = self.collect(enabled, now) if enabled else signals.Observations(now)
        result = CycleReport(evaluated=len(models))
        at = datetime.fromtimestamp(now, UTC)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        plans = []
        for md, body in models:
            try:
                plans.append(self._detect(md, body, obs, stamp))
            except Exception:  # pure code; a bug for one model must not stop the others
                log.exception("monitoring %s/%s failed", md.namespace, md.name)
        tasks = [partial(self._io, plan, at) for plan in plans]
        for plan, done in zip(
            plans,
            writes.run_bounded(tasks, self.cfg.monitor_write_concurrency, self.stopping),
            strict=True,
        ):
            md = plan.md
            if isinstance(done, writes.Written):
                result.writes += done.writes
                result.events += done.events
            elif isinstance(done, writes.Stopped):
                result.stopped += 1
            elif unreachable(done):  # the outage log says so once; no traceback per model
                log.info("monitoring %s/%s skipped: %s", md.namespace, md.name, done)
            else:  # one model's failure (an API error) must not stop the others
                log.error("monitoring %s/%s failed", md.namespace, md.name, exc_info=done)
        if self.reader:
            result.queries = self.reader.queries - queries_before
            self.metrics.queries.inc(result.queries)
            self.metrics.prometheus_errors.inc(self.reader.errors - errors_before)
        result.seconds = self.last_cycle_s = time.perf_counter() - started
        self.metrics.cycle_seconds.observe(result.seconds)
        return result

    def _detect(
        self, md: ModelDeployment, body: Mapping[str, Any], obs: signals.Observations, stamp: str
    ) -> _Plan:
        """Detection for one model, pure but for the streaks it keeps: what to write."""
        key = (md.namespace, md.name)
        if not md.spec.monitoring.enabled:
            self.metrics.record_faults(key, [])
            return _Plan(
                md,
                body,
                lambda m: report.disabled_patch(
                    m, Problem.DISABLED, "spec.monitoring.enabled is false", now=stamp
                ),
                [],
                [],
                heal=False,
            )
        problem = signals.problem(obs, key)
        evaluations = (
            signals.evaluate(md, obs, key)
            if problem is None or problem[0] != Problem.NOT_CONFIGURED
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
        self.metrics.record_faults(key, [f.signal for f in faults])
        return _Plan(
            md,
            body,
            lambda m: report.status_patch(m, faults, avail, now=stamp, low_use=low),
            faults,
            None if obs.listed is None else list(obs.listed.get(key, [])),
        )

    def _io(self, plan: _Plan, at: datetime) -> writes.Written:
        """One model's writes, in a pool thread: its status and Events, then the heal hooks
        (which read the object the write just changed)."""
        done = writes.write_status(plan.body, plan.patch_of)
        if not plan.heal:
            return done
        key = (plan.md.namespace, plan.md.name)
        for hook in self.hooks:
            try:
                hook(plan.md, plan.faults, plan.pods, at)
            except Exception as exc:
                if unreachable(exc):
                    log.info("monitor hook %r skipped for %s/%s: %s", hook, *key, exc)
                else:
                    log.exception("monitor hook %r failed for %s/%s", hook, *key)
        return done
