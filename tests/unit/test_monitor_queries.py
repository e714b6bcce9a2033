"""monitor/queries.py: every runtime series the monitor reads per model or per pod leaves a
rollout's canary pods out (the rollout judges them; a fault of theirs would be heal's to act
on), while the rollout's own analysis reads both versions."""

from __future__ import annotations

import re

from devcluster.prometheus import label_name
from onnxops.monitor import queries
from onnxops.rollout import plan
from onnxops.rollout import queries as rollout_queries

LABEL = "onnxops_io_model_deployment"
# A metric name with its label matchers, if any (`rate(x{a="b"}[1m])` -> x, `{a="b"}`).
SELECTOR = re.compile(r"\b((?:onnxops|container)_[a-z_]+)(\{[^}]*\})?")


def selectors(promql: str) -> list[tuple[str, str]]:
    """The series selectors of a query (label names such as onnxops_io_* are not series)."""
    return [s for s in SELECTOR.findall(promql) if not s[0].startswith("onnxops_io_")]


def test_the_track_label_is_the_pod_label_as_prometheus_names_it() -> None:
    # The devcluster's scrape targets map pod labels as `labelmap` does; so does the PodMonitor.
    assert queries.TRACK_LABEL == label_name(plan.TRACK_LABEL) == "onnxops_io_track"
    assert queries.SERVED == 'onnxops_io_track!="canary"'


def test_every_runtime_series_of_a_cycle_leaves_the_canary_out() -> None:
    found = queries.instant_queries(LABEL, "1m") + queries.history_queries(LABEL, "1m")
    runtime = [
        (q.name, s) for q in found for s in selectors(q.promql) if s[0].startswith("onnxops_")
    ]
    assert {name for name, _ in runtime} == {
        "presence", "error_ratio", "pod_error_ratio", "latency_p99", "accuracy", "drift",
    }  # fmt: skip
    unfiltered = [(name, s) for name, s in runtime if queries.SERVED not in s[1]]
    assert unfiltered == []


def test_cadvisor_series_are_read_as_they_are() -> None:
    # They carry no pod labels (namespace, pod, container only): a track matcher would
    # match nothing there but for `!=`, so none is added; canary pods' resources count.
    found = queries.instant_queries(LABEL, "1m") + queries.low_use_queries("1m", 600, 30)
    cadvisor = [s for q in found for s in selectors(q.promql) if s[0].startswith("container_")]
    assert cadvisor and all(queries.TRACK_LABEL not in matchers for _, matchers in cadvisor)


def test_the_error_ratio_keeps_its_shape_with_the_filter() -> None:
    promql = queries.error_ratio(LABEL, "5m").promql
    assert promql == (
        f"(sum by (namespace, {LABEL}) (rate(onnxops_requests_total"
        '{endpoint=~"infer|predict",onnxops_io_track!="canary",code=~"5.."}[5m]))'
        f" or sum by (namespace, {LABEL}) (rate(onnxops_requests_total"
        '{endpoint=~"infer|predict",onnxops_io_track!="canary"}[5m])) * 0)'
        f" / sum by (namespace, {LABEL}) (rate(onnxops_requests_total"
        '{endpoint=~"infer|predict",onnxops_io_track!="canary"}[5m]))'
    )


def test_the_rollouts_analysis_reads_both_tracks() -> None:
    found = [*rollout_queries.by_version(LABEL, "30s"), rollout_queries.shadow(LABEL, "30s")]
    assert all(queries.TRACK_LABEL not in q.promql for q in found)
    assert all("version" in q.labels[2] for q in found)  # the versions read apart instead
