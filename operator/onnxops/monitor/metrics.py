"""The operator's own Prometheus metrics (`onnxops_operator_*`), in one registry, served on
`ONNXOPS_METRICS_PORT`: how much the monitor evaluates, how long a cycle takes, what it finds.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from onnxops.api import FAULT_SIGNALS, PHASES


class OperatorMetrics:
    """Counters and gauges the monitor updates once per cycle."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.evaluations = Counter(
            "onnxops_operator_evaluations",
            "ModelDeployment evaluations, by whether their metrics could be read",
            ["result"],
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "onnxops_operator_evaluation_cycle_seconds",
            "Duration of one monitor cycle (all ModelDeployments due at once)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.queries = Counter(
            "onnxops_operator_prometheus_queries", "Queries sent to Prometheus", registry=r
        )
        self.prometheus_errors = Counter(
            "onnxops_operator_prometheus_errors",
            "Prometheus queries that failed (their signals read as unknown)",
            registry=r,
        )
        self.cycles_skipped = Counter(
            "onnxops_operator_monitor_cycles_skipped",
            "Evaluation slots skipped because a cycle ran past them (cycles never queue up)",
            registry=r,
        )
        self.faults = Gauge(
            "onnxops_operator_faults", "Faults standing, by signal", ["signal"], registry=r
        )
        self.watched = Gauge(
            "onnxops_operator_model_deployments", "ModelDeployments the monitor watches", registry=r
        )
        self.by_phase = Gauge(
            "onnxops_operator_model_deployments_by_phase",
            "ModelDeployments the monitor watches, by status.phase",
            ["phase"],
            registry=r,
        )
        for phase in PHASES:  # every phase has a series, 0 when none is in it
            self.by_phase.labels(phase).set(0)
        for signal in FAULT_SIGNALS:  # every signal has a series, 0 when nothing stands
            self.faults.labels(signal).set(0)
        self._faults_by_model: dict[tuple[str, str], list[str]] = {}

    def record_phases(self, phases: Iterable[str]) -> None:
        """The watched ModelDeployments' phases (a new one without status counts as Pending)."""
        counts = dict.fromkeys(PHASES, 0)
        for phase in phases:
            if phase in counts:
                counts[phase] += 1
        for phase, count in counts.items():
            self.by_phase.labels(phase).set(count)

    def record_faults(self, key: tuple[str, str], signals: Iterable[str]) -> None:
        self._faults_by_model[key] = list(signals)
        self._publish()

    def forget(self, live: Iterable[tuple[str, str]]) -> None:
        """Drop deleted ModelDeployments' faults."""
        keep = set(live)
        self._faults_by_model = {k: v for k, v in self._faults_by_model.items() if k in keep}
        self._publish()

    def _publish(self) -> None:
        counts = Tally(s for signals in self._faults_by_model.values() for s in signals)
        for signal in FAULT_SIGNALS:
            self.faults.labels(signal).set(counts.get(signal, 0))

    def serve(self, port: int) -> None:
        """Serve /metrics on all interfaces (a daemon thread of prometheus_client)."""
        start_http_server(port, registry=self.registry)
