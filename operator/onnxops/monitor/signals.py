"""Every signal of one ModelDeployment evaluated from one cycle's shared observations: the
query results for all models, the histories, and the pods from the API. Pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from onnxops.api import ModelDeployment
from onnxops.monitor import detect
from onnxops.monitor.detect import Evaluation
from onnxops.monitor.pods import PodFacts
from onnxops.monitor.prom import History, Key, Reading
from onnxops.reasons import KubeReason, PodPhase, Problem, Signal

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Deviation floors of the anomaly scores, absolute and relative to the usual value: a flat
# history (no errors ever, a p99 pinned to one bucket) must not turn noise into anomalies.
_FLOORS: dict[str, tuple[float, float]] = {
    Signal.LATENCY_ANOMALY: (0.0005, 0.1),
    Signal.ERROR_RATE_ANOMALY: (0.001, 0.1),
}


def seconds(duration: str) -> float:
    """A Prometheus duration such as `90s`, `5m`, `1h` in seconds."""
    return float(duration[:-1]) * _UNIT_S[duration[-1]]


@dataclass(frozen=True)
class Observations:
    """What one cycle read, shared by every ModelDeployment evaluated in it."""

    at: float
    """When (epoch seconds)."""
    readings: Mapping[str, Reading] = field(default_factory=dict)
    histories: Mapping[str, History] = field(default_factory=dict)
    pods: Mapping[Key, Sequence[PodFacts]] = field(default_factory=dict)
    configured: bool = True
    """False when the operator has no Prometheus URL."""
    pods_error: str | None = None
    """Why the pod list could not be read (its signals are then unknown)."""
    low_use: Mapping[str, Reading] = field(default_factory=dict)
    """Peaks over the long windows of `resize.shrink` (`queries.low_use_queries`), apart from
    `readings`: a slow or failed long query leaves low use unknown, not the model's faults."""
    listed: Mapping[Key, Sequence[PodFacts]] | None = None
    """Every serving pod as listed this cycle, terminating ones too (None: not listed): what
    heal gets, so that it need not list them again."""


def problem(obs: Observations, key: Key) -> tuple[str, str] | None:
    """(reason, message) when this model's metrics cannot be read at all, else None."""
    if not obs.configured:
        return Problem.NOT_CONFIGURED, "the operator has no Prometheus URL (ONNXOPS_PROMETHEUS_URL)"
    failed = [f"{name}: {r.error}" for name, r in obs.readings.items() if r.error]
    if failed:
        return Problem.PROMETHEUS_UNAVAILABLE, f"queries failed ({len(failed)}), e.g. {failed[0]}"
    if obs.pods.get(key) and key not in obs.readings["presence"].values:
        return Problem.NO_METRICS, "Prometheus has no onnxops_* series of this deployment's pods"
    return None


def _value(obs: Observations, name: str, key: Key) -> float | None:
    reading = obs.readings.get(name)
    return None if reading is None else reading.values.get(key)


def _pods_over(
    signal: str,
    obs: Observations,
    pods: Sequence[PodFacts],
    measure: Callable[[PodFacts], float | None],
    limit: float,
    what: str,
) -> Evaluation:
    """A per-pod ratio: bad when any pod is over `limit`; the value is the worst pod's."""
    values = {p.name: v for p in pods if (v := measure(p)) is not None}
    if not values:
        return detect.unknown(signal, f"no {what} data")
    worst = max(values.values())
    over = tuple(sorted(name for name, v in values.items() if v > limit))
    message = f"{what} {worst:.0%} (limit {limit:.0%})"
    if over:
        message += f" on {', '.join(over)}"
    return Evaluation(signal, "bad" if over else "good", worst, limit, message, over)


def _ratio(obs: Observations, query: str, pod: PodFacts, divisor: float | None) -> float | None:
    used = _value(obs, query, (pod.namespace, pod.name))
    if used is None or not divisor:
        return None
    return used / divisor


def _pods_where(
    signal: str, pods: Sequence[PodFacts], hit: Callable[[PodFacts], bool], what: str
) -> Evaluation:
    """A pod fact from the API: bad when any pod shows it (no pods: nothing is wrong)."""
    affected = tuple(sorted(p.name for p in pods if hit(p)))
    message = f"{what}: {', '.join(affected)}" if affected else f"no pod {what}"
    return Evaluation(
        signal, "bad" if affected else "good", float(len(affected)), 0, message, affected
    )


def _error_rate(obs: Observations, key: Key, pods: Sequence[PodFacts], limit: float) -> Evaluation:
    """The deployment's 5xx ratio, unless some of its pods are over the limit while others
    are not: then those pods are named (outliers, each to be replaced on its own), even where
    their peers' good answers dilute the deployment's ratio under the limit. Pods that served
    nothing in the window, and pods the API no longer lists, do not count either way."""
    overall = _value(obs, "error_ratio", key)
    per_pod = {
        p.name: v
        for p in pods
        if (v := _value(obs, "pod_error_ratio", (p.namespace, p.name))) is not None
    }
    over = sorted(name for name, v in per_pod.items() if v > limit)
    if per_pod and not over and overall is not None and overall > limit:
        # Every pod serving now is fine: the excess is a replaced pod's, whose series outlive
        # it by a rate window (its replacement would otherwise look like a second fault).
        best = max(per_pod.values())
        message = (
            f"5xx ratio at most {best:.4g} on each of the {len(per_pod)} pods serving now, "
            f"limit {limit:.4g}; the deployment's {overall:.4g} counts pods gone"
        )
        return Evaluation(Signal.ERROR_RATE, "good", best, limit, message)
    if not over or len(over) == len(per_pod):
        return detect.above(Signal.ERROR_RATE, overall, limit, what="5xx ratio")
    worst = max(per_pod[name] for name in over)
    deployment = "unknown" if overall is None else f"{overall:.4g}"
    message = (
        f"5xx ratio {worst:.4g} on {', '.join(over)} ({len(over)} of {len(per_pod)} pods), "
        f"limit {limit:.4g}; the deployment's {deployment}"
    )
    return Evaluation(Signal.ERROR_RATE, "bad", worst, limit, message, tuple(over))


def _anomaly(
    signal: str, md: ModelDeployment, obs: Observations, key: Key, query: str, what: str
) -> Evaluation:
    mon = md.spec.monitoring
    value = _value(obs, query, key)
    history = obs.histories.get(query)
    if history is None or history.error:
        return detect.unknown(signal, f"no {what} history")
    samples = detect.baseline(
        history.series.get(key, []),
        now=obs.at,
        window_s=seconds(mon.anomaly.window),
        # A fault that lasts failureThreshold evaluations must not become its own baseline.
        recent_s=mon.interval_seconds * mon.failure_threshold,
    )
    absolute, relative = _FLOORS[signal]
    centre = abs(statistics.median(samples)) if samples else 0.0
    return detect.anomaly(
        signal,
        value,
        samples,
        method=mon.anomaly.method,
        limit=mon.anomaly.z_score,
        min_samples=mon.anomaly.min_samples,
        floor=max(absolute, relative * centre),
        what=what,
    )


def evaluate(md: ModelDeployment, obs: Observations, key: Key) -> list[Evaluation]:
    """All signals of one ModelDeployment at this cycle."""
    mon = md.spec.monitoring
    th = mon.thresholds
    pods = list(obs.pods.get(key, []))
    found = [
        _error_rate(obs, key, pods, th.error_rate),
        detect.above(
            Signal.LATENCY_P99,
            _value(obs, "latency_p99", key),
            th.latency_p99_ms / 1000,
            what="p99 latency",
            unit=" ms",
            scale=1000,
        ),
    ]
    if th.min_accuracy is not None:
        value = _value(obs, "accuracy", key)
        found.append(detect.below(Signal.ACCURACY, value, th.min_accuracy, what="online accuracy"))
    if th.max_drift is not None:
        value = _value(obs, "drift", key)
        found.append(detect.above(Signal.DRIFT, value, th.max_drift, what="largest feature PSI"))
    if mon.anomaly.enabled:
        found.append(_anomaly(Signal.LATENCY_ANOMALY, md, obs, key, "latency_p99", "p99 latency"))
        found.append(_anomaly(Signal.ERROR_RATE_ANOMALY, md, obs, key, "error_ratio", "5xx ratio"))
    found += [
        _pods_over(
            Signal.CPU_UTILIZATION, obs, pods,
            lambda p: _ratio(obs, "cpu_cores", p, p.cpu_cores),
            th.cpu_utilization, "CPU use of limit",
        ),
        _pods_over(
            Signal.CPU_THROTTLING, obs, pods,
            lambda p: _value(obs, "cpu_throttling", (p.namespace, p.name)),
            th.cpu_throttling, "throttled CPU periods",
        ),
        _pods_over(
            Signal.MEMORY_UTILIZATION, obs, pods,
            lambda p: _ratio(obs, "memory_bytes", p, p.memory_bytes),
            th.memory_utilization, "memory working set of limit",
        ),
    ]  # fmt: skip
    if obs.pods_error:
        why = f"pods unreadable: {obs.pods_error}"
        return found + [
            detect.unknown(s, why)
            for s in (Signal.OOM_KILLED, Signal.CRASH_LOOP, Signal.UNSCHEDULABLE, Signal.NOT_READY)
        ]
    # An OOM kill stays news for a few evaluations, long enough to count as a fault.
    lookback = mon.interval_seconds * (mon.failure_threshold + 1)
    found += [
        _pods_where(
            Signal.OOM_KILLED,
            pods,
            lambda p: (
                (_value(obs, "oom_events", (p.namespace, p.name)) or 0) > 0
                or (
                    p.last_termination == KubeReason.OOM_KILLED
                    and (p.last_termination_at or 0) >= obs.at - lookback
                )
            ),
            "OOM-killed recently",
        ),
        _pods_where(
            Signal.CRASH_LOOP,
            pods,
            lambda p: p.waiting == KubeReason.CRASH_LOOP_BACK_OFF,
            "in CrashLoopBackOff",
        ),
        _pods_where(
            Signal.UNSCHEDULABLE, pods, lambda p: p.unschedulable is not None, "unschedulable"
        ),
        _pods_where(
            Signal.NOT_READY,
            pods,
            lambda p: (
                p.phase == PodPhase.RUNNING
                and not p.ready
                and p.waiting != KubeReason.CRASH_LOOP_BACK_OFF
            ),
            "running but not ready",
        ),
    ]
    return found
