"""PromQL for every signal the monitor reads, as pure builders: one query per signal, for all
ModelDeployments at once (grouped by namespace and ModelDeployment, or by namespace and pod),
so the cost of a cycle grows with the number of signals, not with the number of models.

The runtime's `onnxops_*` series carry the pod's labels (the scrape target's, mapped like
Prometheus' `labelmap`), so they group by ModelDeployment directly (and by their `pod` label
where one replica must be told from its peers). cAdvisor's `container_*`
series carry only namespace/pod/container: they group by pod, and the monitor maps pods to
ModelDeployments with the pod list it reads from the Kubernetes API anyway.

During a rollout the canary's pods (`NAME-canary`) stand beside the stable ones with the same
ModelDeployment label. The runtime's series of every signal here leave them out
(`SERVED`): a canary answering 5xx is the rollout's to judge (`rollout/queries.py` reads both
versions apart), not a fault of the ModelDeployment for heal to restart or roll back. The
cAdvisor series carry no pod labels, so CPU, memory and OOM stay per pod, canary pods included
(resize applies to both Deployments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from onnxops.build import CONTAINER
from onnxops.rollout import plan as rollout_plan

Grouping = Literal["model", "pod"]

TRACK_LABEL = re.sub(r"[^a-zA-Z0-9_]", "_", rollout_plan.TRACK_LABEL)
"""The pod label `onnxops.io/track` on the runtime's series, as `labelmap` relabelling maps it
(manifests/monitoring/podmonitor.yaml copies it; the devcluster's targets carry every label)."""
SERVED = f'{TRACK_LABEL}!="{rollout_plan.CANARY}"'
"""The series of the version the ModelDeployment serves: not the canary's. `!=` also matches
series without the label (stable pods carry it only once spec.rollout is set)."""
# Traffic that counts: inference, not health checks, scrapes or feedback.
_INFERENCE = f'endpoint=~"infer|predict",{SERVED}'
_SERVER = f'container="{CONTAINER}"'


@dataclass(frozen=True)
class Query:
    """One PromQL expression and how its series map back to deployments or pods."""

    name: str
    promql: str
    grouping: Grouping


def _by(grouping: Grouping, model_label: str) -> str:
    return f"namespace, {model_label}" if grouping == "model" else "namespace, pod"


def presence(model_label: str) -> Query:
    """1 per deployment whose runtime Prometheus scrapes: absence means no metrics at all."""
    by = _by("model", model_label)
    return Query("presence", f"max by ({by}) (onnxops_model_ready{{{SERVED}}})", "model")


def error_ratio(model_label: str, window: str) -> Query:
    """Share of inference requests answered 5xx (client errors are not the model's fault).

    With no 5xx series yet (a model that never failed) the numerator falls back to 0, so a
    healthy model reads 0 rather than nothing; no traffic at all reads NaN (unknown)."""
    by = _by("model", model_label)
    total = f"sum by ({by}) (rate(onnxops_requests_total{{{_INFERENCE}}}[{window}]))"
    errors = f'sum by ({by}) (rate(onnxops_requests_total{{{_INFERENCE},code=~"5.."}}[{window}]))'
    return Query("error_ratio", f"({errors} or {total} * 0) / {total}", "model")


def pod_error_ratio(window: str) -> Query:
    """The same share per pod: one failing replica among healthy ones shows here, where the
    deployment's ratio dilutes it with its peers' good answers. No 5xx series reads 0 as above."""
    by = "namespace, pod"
    total = f"sum by ({by}) (rate(onnxops_requests_total{{{_INFERENCE}}}[{window}]))"
    errors = f'sum by ({by}) (rate(onnxops_requests_total{{{_INFERENCE},code=~"5.."}}[{window}]))'
    return Query("pod_error_ratio", f"({errors} or {total} * 0) / {total}", "pod")


def latency_p99(model_label: str, window: str) -> Query:
    """p99 of inference request latency in seconds, over all of a deployment's pods."""
    by = _by("model", model_label)
    buckets = (
        f"sum by ({by}, le) (rate(onnxops_request_duration_seconds_bucket{{{SERVED}}}[{window}]))"
    )
    return Query("latency_p99", f"histogram_quantile(0.99, {buckets})", "model")


def accuracy(model_label: str) -> Query:
    """Online accuracy from ground-truth feedback; the worst pod's (each keeps its own window)."""
    by = _by("model", model_label)
    return Query("accuracy", f"min by ({by}) (onnxops_online_accuracy{{{SERVED}}})", "model")


def drift(model_label: str) -> Query:
    """Largest input-feature PSI over the deployment's pods."""
    by = _by("model", model_label)
    return Query("drift", f"max by ({by}) (onnxops_drift_psi_max{{{SERVED}}})", "model")


def cpu_cores(window: str) -> Query:
    """CPU in use per pod, in cores (divided by the pod's limit or request from the API)."""
    usage = f"rate(container_cpu_usage_seconds_total{{{_SERVER}}}[{window}])"
    return Query("cpu_cores", f"sum by (namespace, pod) ({usage})", "pod")


def cpu_throttling(window: str) -> Query:
    """Share of CFS periods in which the pod's serving container was throttled."""
    throttled = f"rate(container_cpu_cfs_throttled_periods_total{{{_SERVER}}}[{window}])"
    periods = f"rate(container_cpu_cfs_periods_total{{{_SERVER}}}[{window}])"
    by = "namespace, pod"
    return Query(
        "cpu_throttling", f"sum by ({by}) ({throttled}) / sum by ({by}) ({periods})", "pod"
    )


def memory_bytes() -> Query:
    """Working set per pod (what the kernel's OOM killer compares to the limit)."""
    return Query(
        "memory_bytes",
        f"max by (namespace, pod) (container_memory_working_set_bytes{{{_SERVER}}})",
        "pod",
    )


def oom_events(window: str) -> Query:
    """OOM kills per pod within the window."""
    return Query(
        "oom_events",
        f"sum by (namespace, pod) (increase(container_oom_events_total{{{_SERVER}}}[{window}]))",
        "pod",
    )


def peak_cpu_cores(rate_window: str, window_s: int, step_s: float) -> Query:
    """The highest CPU use per pod (cores, as `cpu_cores` reads it) over the last `window_s`."""
    usage = f"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{{_SERVER}}}[{rate_window}]))"
    return Query(
        f"peak_cpu_cores:{window_s}",
        f"max_over_time(({usage})[{window_s}s:{_step(step_s)}])",
        "pod",
    )


def peak_memory_bytes(window_s: int) -> Query:
    """The highest working set per pod over the last `window_s` (every scrape counts)."""
    return Query(
        f"peak_memory_bytes:{window_s}",
        f"max by (namespace, pod) "
        f"(max_over_time(container_memory_working_set_bytes{{{_SERVER}}}[{window_s}s]))",
        "pod",
    )


def first_seen(window_s: int, step_s: float) -> Query:
    """Per pod, the time (epoch seconds) of its oldest working-set sample found in the window:
    a peak read over a window only counts when the series reaches back across all of it (a
    new pod, or a Prometheus that lost its data, has seen too little to call use low)."""
    stamps = f"timestamp(container_memory_working_set_bytes{{{_SERVER}}})"
    return Query(
        f"first_seen:{window_s}",
        f"min by (namespace, pod) (min_over_time({stamps}[{window_s}s:{_step(step_s)}]))",
        "pod",
    )


def _step(step_s: float) -> str:
    return f"{max(1, round(step_s))}s"


def low_use_queries(rate_window: str, window_s: int, step_s: float) -> list[Query]:
    """What long low use over one window is judged from (only for models that shrink)."""
    return [
        peak_cpu_cores(rate_window, window_s, step_s),
        peak_memory_bytes(window_s),
        first_seen(window_s, step_s),
    ]


def instant_queries(model_label: str, window: str) -> list[Query]:
    """Every instant query of one cycle."""
    return [
        presence(model_label),
        error_ratio(model_label, window),
        pod_error_ratio(window),
        latency_p99(model_label, window),
        accuracy(model_label),
        drift(model_label),
        cpu_cores(window),
        cpu_throttling(window),
        memory_bytes(),
        oom_events(window),
    ]


def history_queries(model_label: str, window: str) -> list[Query]:
    """The series anomaly detection compares against (read as a range, one query each)."""
    return [latency_p99(model_label, window), error_ratio(model_label, window)]
