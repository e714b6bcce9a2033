"""PromQL of a rollout's analysis, one query per signal for every rollout due, grouped by
namespace, ModelDeployment and model version (the runtime labels its series with the version
it serves, so the candidate and the stable version read apart behind one Service), over a
window that does not reach back before the step began (`window_s`). Pure."""

from __future__ import annotations

from dataclasses import dataclass

_INFERENCE = 'endpoint=~"infer|predict"'


def window_s(elapsed_s: float, rate_window_s: float) -> int:
    """The measurement window, in whole seconds, of a rollout whose step began `elapsed_s`
    ago: the monitor's rate window, but no further back than the step's start, so that a
    measurement counts the requests, errors and latencies of this step's exposure only (not
    the previous step's weight, nor the stable pods' minutes before the canary ran), and
    `minRequests` the step's own requests.

    Two bounds keep it honest. Never under half the rate window, however young the step: the
    rate window is at least four scrape intervals (`monitor_rate_window`), so half of it holds
    the two scrapes rate() and increase() need (a younger step's measurement reaches back that
    far, no more). And one of five rungs from there to the rate window (the longest not
    longer than the step): rollouts due together share at most five windows, so a turn sends
    at most five queries per signal, however many rollouts have young steps."""
    rate = max(1, int(rate_window_s))
    floor = max(1, rate // 2)
    rungs = [floor + (rate - floor) * k // 4 for k in range(5)]  # floor ... rate
    return max((w for w in rungs if w <= elapsed_s), default=floor)


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
