"""The operator's own Prometheus metrics (`onnxops_operator_*`), in one registry, served on
`ONNXOPS_METRICS_PORT`: how much the monitor evaluates, how long a cycle takes, what it finds.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from onnxops.api import FAULT_SIGNALS, PHASES, ROLLOUT_PHASES

NAMESPACE_LABEL = "model_namespace"
"""The namespace of the ModelDeployments a fleet-wide series counts."""


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
        # Per namespace of the models counted (`model_namespace`: the scrape's own `namespace`
        # label is the operator pod's), so the fleet dashboard's $namespace filters them; every
        # namespace with a watched model has every phase and signal, 0 when none is in it.
        self.faults = Gauge(
            "onnxops_operator_faults",
            "Faults standing, by signal",
            ["signal", NAMESPACE_LABEL],
            registry=r,
        )
        self.watched = Gauge(
            "onnxops_operator_model_deployments", "ModelDeployments the monitor watches", registry=r
        )
        self.by_phase = Gauge(
            "onnxops_operator_model_deployments_by_phase",
            "ModelDeployments the monitor watches, by status.phase",
            ["phase", NAMESPACE_LABEL],
            registry=r,
        )
        self.rollouts = Gauge(
            "onnxops_operator_rollouts",
            "ModelDeployments with spec.rollout, by status.rollout.phase",
            ["phase", NAMESPACE_LABEL],
            registry=r,
        )
        self._namespaces: set[str] = set()
        self._faults_by_model: dict[tuple[str, str], list[str]] = {}

    def record_phases(self, models: Iterable[tuple[str, str, str | None]]) -> None:
        """(namespace, status.phase, status.rollout.phase or None) of every watched
        ModelDeployment (a new one without status counts as Pending). A namespace left with
        no model loses its series."""
        phases: Tally[tuple[str, str]] = Tally()
        rollouts: Tally[tuple[str, str]] = Tally()
        for namespace, phase, rollout in models:
            phases[(phase, namespace)] += 1
            if rollout is not None:
                rollouts[(rollout, namespace)] += 1
        namespaces = {ns for _, ns in phases}
        for ns in self._namespaces - namespaces:
            for phase in PHASES:
                self.by_phase.remove(phase, ns)
            for phase in ROLLOUT_PHASES:
                self.rollouts.remove(phase, ns)
            for signal in FAULT_SIGNALS:
                self.faults.remove(signal, ns)
        for ns in namespaces - self._namespaces:
            self._publish_faults(ns)
        self._namespaces = namespaces
        for ns in namespaces:
            for phase in PHASES:
                self.by_phase.labels(phase, ns).set(phases.get((phase, ns), 0))
            for phase in ROLLOUT_PHASES:
                self.rollouts.labels(phase, ns).set(rollouts.get((phase, ns), 0))

    def record_faults(self, key: tuple[str, str], signals: Iterable[str]) -> None:
        self._faults_by_model[key] = list(signals)
        self._publish_faults(key[0])

    def forget(self, live: Iterable[tuple[str, str]]) -> None:
        """Drop deleted ModelDeployments' faults."""
        keep = set(live)
        gone = {k[0] for k in self._faults_by_model if k not in keep}
        self._faults_by_model = {k: v for k, v in self._faults_by_model.items() if k in keep}
        for ns in gone & self._namespaces:
            self._publish_faults(ns)

    def _publish_faults(self, namespace: str) -> None:
        counts = Tally(
            s
            for (ns, _), signals in self._faults_by_model.items()
            if ns == namespace
            for s in signals
        )
        for signal in FAULT_SIGNALS:
            self.faults.labels(signal, namespace).set(counts.get(signal, 0))

    def serve(self, port: int) -> None:
        """Serve /metrics on all interfaces (a daemon thread of prometheus_client)."""
        start_http_server(port, registry=self.registry)
