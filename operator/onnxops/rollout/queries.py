"""PromQL of a rollout's analysis, one query per signal for every rollout due, grouped by
namespace, ModelDeployment and model version (the runtime labels its series with the version
it serves, so the candidate and the stable version read apart behind one Service). Pure."""

from __future__ import annotations

from dataclasses import dataclass

_INFERENCE = 'endpoint=~"infer|predict"'


@dataclass(frozen=True)
class RolloutQuery:
    name: str
    promql: str
    labels: tuple[str, ...]


def by_version(model_label: str, window: str) -> list[RolloutQuery]:
    """The per-version signals: requests, 5xx ratio, p99 (seconds), accuracy, drift."""
    labels = ("namespace", model_label, "version")
    by = ", ".join(labels)
    total = f"sum by ({by}) (rate(onnxops_requests_total{{{_INFERENCE}}}[{window}]))"
    errors = f'sum by ({by}) (rate(onnxops_requests_total{{{_INFERENCE},code=~"5.."}}[{window}]))'
    buckets = f"sum by ({by}, le) (rate(onnxops_request_duration_seconds_bucket[{window}]))"
    return [
        RolloutQuery(
            "requests",
            f"sum by ({by}) (increase(onnxops_requests_total{{{_INFERENCE}}}[{window}]))",
            labels,
        ),
        RolloutQuery("error_ratio", f"({errors} or {total} * 0) / {total}", labels),
        RolloutQuery("p99_s", f"histogram_quantile(0.99, {buckets})", labels),
        RolloutQuery("accuracy", f"min by ({by}) (onnxops_online_accuracy)", labels),
        RolloutQuery("drift", f"max by ({by}) (onnxops_drift_psi_max)", labels),
    ]


def shadow(model_label: str, window: str) -> RolloutQuery:
    """Mirrored requests by outcome, counted by the stable pods, per candidate version."""
    labels = ("namespace", model_label, "candidate_version", "outcome")
    by = ", ".join(labels)
    return RolloutQuery(
        "shadow", f"sum by ({by}) (increase(onnxops_shadow_requests_total[{window}]))", labels
    )
