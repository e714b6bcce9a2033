"""monitor/lowuse.py (long low use from the peaks over `shrink.afterSeconds`) and how
report.py writes it: beside the faults, never as one."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops.api import Fault, LowUse, ModelDeployment
from onnxops.monitor import lowuse, pods, report
from onnxops.monitor.prom import Reading
from onnxops.monitor.report import Availability

NOW = 100_000.0
DAY = 86400
MIB = 2**20


def _md(shrink: dict[str, Any] | None = None, **st: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "iris", "namespace": "ml", "generation": 1},
            "spec": {
                "model": {"uri": "https://m/iris.onnx"},
                "remediation": {"resize": {"shrink": {"enabled": True, **(shrink or {})}}},
            },
            "status": {"phase": "Ready", **st},
        }
    )


def _pod(
    name: str, cpu: str = "2", memory: str = "1Gi", limits: dict[str, str] | None = None
) -> pods.PodFacts:
    """A serving pod with these requests, or with only `limits` (requests default to them)."""
    resources: dict[str, Any] = (
        {"limits": limits} if limits else {"requests": {"cpu": cpu, "memory": memory}}
    )
    found = pods.facts(
        {
            "metadata": {
                "name": name,
                "namespace": "ml",
                "labels": {"onnxops.io/model-deployment": "iris"},
            },
            "spec": {"containers": [{"name": "server", "resources": resources}]},
            "status": {"phase": "Running"},
        }
    )
    assert found is not None
    return found


def _readings(
    cpu: dict[str, float], memory: dict[str, float], seen: dict[str, float], window: int = DAY
) -> dict[str, Reading]:
    def by_pod(values: dict[str, float]) -> Reading:
        return Reading({("ml", name): v for name, v in values.items()})

    return {
        f"peak_cpu_cores:{window}": by_pod(cpu),
        f"peak_memory_bytes:{window}": by_pod(memory),
        f"first_seen:{window}": by_pod(seen),
    }


TWO = [_pod("iris-a"), _pod("iris-b")]
SEEN = {"iris-a": NOW - DAY - 60, "iris-b": NOW - DAY - 60}


def _low(md: ModelDeployment, readings: dict[str, Reading], pod_list: Any = TWO) -> dict[str, Any]:
    return {u.resource: u for u in lowuse.evaluate(md, pod_list, readings, at=NOW)}


def test_both_resources_low_on_every_pod() -> None:
    readings = _readings(
        {"iris-a": 0.1, "iris-b": 0.3}, {"iris-a": 60 * MIB, "iris-b": 50 * MIB}, SEEN
    )
    low = _low(_md(), readings)
    assert set(low) == {"cpu", "memory"}
    assert low["cpu"].peak == pytest.approx(0.3)  # the busiest pod's peak
    assert low["cpu"].value == pytest.approx(0.15)  # 0.3 of a 2-core request
    assert low["memory"].peak == 60 * MIB
    assert low["memory"].pods == ["iris-a", "iris-b"]
    assert low["memory"].threshold == 0.3 and low["memory"].window_seconds == DAY
    assert "memory peak 60Mi over 86400s, 6% of the request" in low["memory"].message


def test_one_busy_pod_keeps_that_resource_from_being_low() -> None:
    readings = _readings(
        {"iris-a": 0.1, "iris-b": 0.7}, {"iris-a": 60 * MIB, "iris-b": 50 * MIB}, SEEN
    )
    assert set(_low(_md(), readings)) == {"memory"}  # 0.7 / 2 = 35% is not under 30%


def test_below_is_the_spec_share() -> None:
    readings = _readings({"iris-a": 0.7, "iris-b": 0.7}, {"iris-a": 600 * MIB, "iris-b": 0}, SEEN)
    assert set(_low(_md({"below": 0.4}), readings)) == {"cpu"}  # 35% < 40%; memory 59% is not


def test_series_shorter_than_the_window_are_not_long_low_use() -> None:
    seen = {"iris-a": NOW - DAY - 60, "iris-b": NOW - 3600}  # iris-b is an hour old
    readings = _readings({"iris-a": 0.1, "iris-b": 0.1}, {"iris-a": MIB, "iris-b": MIB}, seen)
    assert _low(_md(), readings) == {}


@pytest.mark.parametrize(
    "readings",
    [
        {},  # not read (Prometheus failed before these queries)
        {
            **_readings({"iris-a": 0.1, "iris-b": 0.1}, {}, SEEN),
            f"first_seen:{DAY}": Reading(error="timeout"),
        },
        _readings({"iris-a": 0.1}, {}, SEEN),  # no data of iris-b's CPU, none of memory
        _readings(
            {"iris-a": 0.1, "iris-b": 0.1}, {"iris-a": MIB, "iris-b": MIB}, SEEN, window=3600
        ),
    ],
    ids=["nothing read", "coverage failed", "pods missing", "another window"],
)
def test_unknown_is_never_low(readings: dict[str, Reading]) -> None:
    assert _low(_md(), readings) == {}


def test_shrink_off_or_no_pods_finds_nothing() -> None:
    readings = _readings({"iris-a": 0.1, "iris-b": 0.1}, {"iris-a": MIB, "iris-b": MIB}, SEEN)
    assert _low(_md({"enabled": False}), readings) == {}
    assert _low(_md(), readings, []) == {}


def test_requests_default_to_the_limits() -> None:
    pod = _pod("iris-a", limits={"memory": "100Mi"})
    readings = _readings({}, {"iris-a": 20 * MIB}, {"iris-a": NOW - DAY})
    assert _low(_md(), readings, [pod])["memory"].value == pytest.approx(0.2)


def test_windows_are_read_once_per_distinct_after_seconds() -> None:
    models = [
        _md(),
        _md({"afterSeconds": 3600}),
        _md({"afterSeconds": 3600}),
        _md({"enabled": False, "afterSeconds": 60}),
    ]
    assert lowuse.windows(models) == {DAY, 3600}


LOW = LowUse(resource="memory", peak=50 * MIB, value=0.05, threshold=0.3, window_seconds=DAY)
READ = Availability("True", "MetricsRead", "")


def test_low_use_is_written_beside_the_faults_and_is_no_fault() -> None:
    patch = report.status_patch(_md(), [], READ, now="t1", low_use=[LOW])
    assert patch["lowUse"] == [LOW.wire()]
    assert patch["faults"] == []
    assert "phase" not in patch  # stays Ready
    healthy = next(c for c in patch["conditions"] if c["type"] == "Healthy")
    assert healthy["status"] == "True"


def test_low_use_clears_and_is_not_written_when_never_found() -> None:
    assert "lowUse" not in report.status_patch(_md(), [], READ, now="t1")
    cleared = report.status_patch(_md(lowUse=[LOW.wire()]), [], READ, now="t2")
    assert cleared["lowUse"] == []


def test_a_fault_still_degrades_with_low_use_beside_it() -> None:
    fault = Fault(signal="ErrorRate", value=0.5, threshold=0.05, since="t0", message="5xx")
    patch = report.status_patch(_md(), [fault], READ, now="t1", low_use=[LOW])
    assert patch["phase"] == "Degraded" and patch["lowUse"] == [LOW.wire()]
