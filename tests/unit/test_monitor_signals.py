"""monitor/signals.py, pods.py and queries.py: one ModelDeployment's signals from a cycle's
shared observations, pod facts from pod objects, and the batched PromQL."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops.api import ModelDeployment
from onnxops.monitor import pods, queries, signals
from onnxops.monitor.prom import History, Reading
from onnxops.monitor.signals import Observations

KEY = ("ml", "iris")
NOW = 10_000.0


def _md(**monitoring: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ml", "generation": 1},
            "spec": {"model": {"uri": "https://m/iris.onnx"}, "monitoring": monitoring},
        }
    )


def _pod(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {"onnxops.io/model-deployment": "iris"},
        },
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "resources": {
                        "requests": {"cpu": "250m"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                }
            ]
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            **status,
        },
    }


def _obs(
    values: dict[str, float], pod_list: list[dict[str, Any]] | None = None, **kw: Any
) -> Observations:
    by_pod = {"cpu_cores", "cpu_throttling", "memory_bytes", "oom_events"}
    readings = {"presence": Reading({KEY: 1.0})}
    for name, value in values.items():
        key = ("ml", "iris-a") if name in by_pod else KEY
        readings[name] = Reading({key: value})
    return Observations(
        NOW,
        readings,
        pods=pods.by_model(pod_list if pod_list is not None else [_pod("iris-a")]),
        **kw,
    )


def _by_signal(md: ModelDeployment, obs: Observations) -> dict[str, Any]:
    return {ev.signal: ev for ev in signals.evaluate(md, obs, KEY)}


@pytest.mark.parametrize(
    ("values", "signal", "verdict"),
    [
        ({"error_ratio": 0.5}, "ErrorRate", "bad"),
        ({"error_ratio": 0.0}, "ErrorRate", "good"),
        ({}, "ErrorRate", "unknown"),  # no traffic: 0/0 leaves no value
        ({"latency_p99": 0.3}, "LatencyP99", "bad"),
        ({"latency_p99": 0.01}, "LatencyP99", "good"),
        ({"drift": 0.6}, "Drift", "bad"),
        ({"cpu_cores": 0.48}, "CpuUtilization", "bad"),  # 0.48 of a 500m limit = 96%
        ({"cpu_cores": 0.3}, "CpuUtilization", "good"),  # over the request: no fault
        ({"cpu_throttling": 0.5}, "CpuThrottling", "bad"),
        ({"memory_bytes": 250 * 2**20}, "MemoryUtilization", "bad"),
        ({"memory_bytes": 100 * 2**20}, "MemoryUtilization", "good"),
        ({"oom_events": 1.0}, "OOMKilled", "bad"),
        ({}, "OOMKilled", "good"),
    ],
)
def test_signal_verdicts(values: dict[str, float], signal: str, verdict: str) -> None:
    ev = _by_signal(_md(), _obs(values))[signal]
    assert ev.verdict == verdict, ev.message
    if signal.startswith(("Cpu", "Memory", "OOM")) and verdict == "bad":
        assert ev.pods == ("iris-a",)


THREE = [_pod("iris-a"), _pod("iris-b"), _pod("iris-c")]


def _errors(overall: float | None, per_pod: dict[str, float], pod_list: Any = None) -> Any:
    """The ErrorRate evaluation from the deployment's 5xx ratio and the pods' own."""
    obs = _obs({}, THREE if pod_list is None else pod_list)
    readings = dict(obs.readings)
    readings["error_ratio"] = Reading({} if overall is None else {KEY: overall})
    readings["pod_error_ratio"] = Reading({("ml", name): v for name, v in per_pod.items()})
    return _by_signal(_md(), Observations(NOW, readings, pods=obs.pods))["ErrorRate"]


@pytest.mark.parametrize(
    ("overall", "per_pod", "verdict", "named"),
    [
        # One failing replica of three: named, so that it alone is replaced.
        (0.33, {"iris-a": 0.0, "iris-b": 1.0, "iris-c": 0.0}, "bad", ("iris-b",)),
        # Diluted under the limit by its peers' good answers: still that pod's fault.
        (0.03, {"iris-a": 0.0, "iris-b": 0.2, "iris-c": 0.0}, "bad", ("iris-b",)),
        (0.6, {"iris-a": 0.0, "iris-b": 0.9, "iris-c": 0.9}, "bad", ("iris-b", "iris-c")),
        # Every pod over the limit: the deployment's fault (no pod named; rollback's case).
        (0.5, {"iris-a": 0.5, "iris-b": 0.4, "iris-c": 0.6}, "bad", ()),
        # A pod without traffic in the window counts neither way.
        (1.0, {"iris-b": 1.0}, "bad", ()),
        (0.01, {"iris-a": 0.01, "iris-b": 0.0, "iris-c": 0.02}, "good", ()),
        # No per-pod series (an older scrape config without a pod label): the deployment's.
        (0.5, {}, "bad", ()),
    ],
)
def test_error_rate_names_the_outlier_pods(
    overall: float, per_pod: dict[str, float], verdict: str, named: tuple[str, ...]
) -> None:
    ev = _errors(overall, per_pod)
    assert (ev.verdict, ev.pods) == (verdict, named), ev.message
    if named:
        assert ev.value == max(per_pod[n] for n in named)
        assert all(n in ev.message for n in named) and f"of {len(per_pod)} pods" in ev.message


def test_error_rate_ignores_pods_the_api_no_longer_lists() -> None:
    # A replaced pod's series lingers for a rate window, in the deployment's ratio too: its
    # replacement and peers, all fine, are no new fault (nor a rollout restart's reason).
    ev = _errors(0.3, {"iris-old": 1.0, "iris-a": 0.0, "iris-b": 0.01}, THREE[:2])
    assert (ev.verdict, ev.pods, ev.value) == ("good", (), 0.01), ev.message
    assert "pods gone" in ev.message
    # Only the listed pods are judged: one of them failing is still named.
    ev = _errors(0.5, {"iris-old": 1.0, "iris-a": 0.0, "iris-b": 0.6}, THREE[:2])
    assert (ev.verdict, ev.pods) == ("bad", ("iris-b",))


def test_error_rate_without_any_traffic_is_unknown() -> None:
    assert _errors(None, {}).verdict == "unknown"


def test_accuracy_is_judged_only_with_a_minimum() -> None:
    assert "Accuracy" not in _by_signal(_md(), _obs({"accuracy": 0.2}))
    md = _md(thresholds={"minAccuracy": 0.8})
    assert _by_signal(md, _obs({"accuracy": 0.2}))["Accuracy"].verdict == "bad"


@pytest.mark.parametrize(
    ("status", "signal"),
    [
        (
            {
                "containerStatuses": [
                    {"name": "server", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]
            },
            "CrashLoop",
        ),
        (
            {
                "containerStatuses": [
                    {
                        "name": "server",
                        "restartCount": 1,
                        "lastState": {
                            "terminated": {
                                "reason": "OOMKilled",
                                "finishedAt": "1970-01-01T02:46:00Z",
                            }
                        },
                    }
                ]
            },
            "OOMKilled",
        ),
        (
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/5 nodes",
                    }
                ],
            },
            "Unschedulable",
        ),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, "NotReady"),
    ],
)
def test_pod_facts_from_the_api(status: dict[str, Any], signal: str) -> None:
    found = _by_signal(_md(), _obs({}, [_pod("iris-a"), _pod("iris-b", **status)]))
    assert found[signal].verdict == "bad"
    assert found[signal].pods == ("iris-b",)
    healthy = _by_signal(_md(), _obs({}, [_pod("iris-a")]))
    assert healthy[signal].verdict == "good"


def test_an_old_oom_kill_is_no_longer_news() -> None:
    status = {
        "containerStatuses": [
            {
                "name": "server",
                "lastState": {
                    "terminated": {"reason": "OOMKilled", "finishedAt": "1970-01-01T00:00:01Z"}
                },
            }
        ]
    }
    assert _by_signal(_md(), _obs({}, [_pod("iris-a", **status)]))["OOMKilled"].verdict == "good"


def test_unreadable_pods_make_pod_signals_unknown() -> None:
    found = _by_signal(_md(), _obs({}, [], pods_error="HTTP 503"))
    assert {found[s].verdict for s in ("CrashLoop", "NotReady", "OOMKilled", "Unschedulable")} == {
        "unknown"
    }


def test_anomaly_compares_against_history_older_than_the_fault() -> None:
    md = _md(intervalSeconds=5, failureThreshold=3, anomaly={"window": "10m", "minSamples": 10})
    steady = [(NOW - 300 + i * 5, 0.010 + 0.001 * (i % 3)) for i in range(60)]  # up to NOW - 5
    spike = [(t, 0.2) if t > NOW - 15 else (t, v) for t, v in steady]
    obs = _obs({"latency_p99": 0.2})
    obs = Observations(
        obs.at,
        obs.readings,
        {"latency_p99": History({KEY: spike}), "error_ratio": History()},
        obs.pods,
    )
    found = _by_signal(md, obs)
    assert found["LatencyAnomaly"].verdict == "bad", found["LatencyAnomaly"].message
    assert found["ErrorRateAnomaly"].verdict == "unknown"  # no history at all


def test_problem_reasons() -> None:
    assert signals.problem(_obs({}), KEY) is None
    failed = Observations(NOW, {"presence": Reading(error="ConnectionError: refused")}, pods={})
    assert signals.problem(failed, KEY)[0] == "PrometheusUnavailable"  # type: ignore[index]
    unseen = Observations(NOW, {"presence": Reading()}, pods=pods.by_model([_pod("iris-a")]))
    assert signals.problem(unseen, KEY)[0] == "NoMetrics"  # type: ignore[index]
    assert signals.problem(Observations(NOW, configured=False), KEY)[0] == "NotConfigured"  # type: ignore[index]


def test_pod_facts_ignore_foreign_pods_and_terminating_ones() -> None:
    foreign = {
        "metadata": {"name": "x", "namespace": "ml"},
        "spec": {"containers": [{"name": "server"}]},
    }
    going = _pod("iris-z")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    grouped = pods.by_model([foreign, going, _pod("iris-a")])
    assert [p.name for p in grouped[KEY]] == ["iris-a"]
    assert grouped[KEY][0].cpu_cores == 0.5  # against the limit, not the 250m request
    assert grouped[KEY][0].memory_bytes == 256 * 2**20


def test_queries_are_one_per_signal_grouped_for_all_models() -> None:
    found = queries.instant_queries("onnxops_io_model_deployment", "1m")
    assert len({q.name for q in found}) == len(found)
    for q in found:
        by = "namespace, onnxops_io_model_deployment" if q.grouping == "model" else "namespace, pod"
        assert f"by ({by}" in q.promql, q.promql
    error = next(q for q in found if q.name == "error_ratio").promql
    assert 'code=~"5.."' in error and "or" in error  # no 5xx series yet reads as 0, not nothing
    per_pod = next(q for q in found if q.name == "pod_error_ratio")
    assert per_pod.grouping == "pod" and 'code=~"5.."' in per_pod.promql and "or" in per_pod.promql
    assert all("[1m]" in q.promql for q in found if "rate" in q.promql or "increase" in q.promql)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h", 3600), ("2d", 172800)]
)
def test_duration(text: str, seconds: float) -> None:
    assert signals.seconds(text) == seconds
