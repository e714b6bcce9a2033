"""Reading the monitor's findings and the pods' facts: what cannot be read is reported."""

from __future__ import annotations

from typing import Any

import pytest
from heal_kit import NOW, fault, pod
from onnxops.remediation import facts


def test_findings_follow_the_monitor_contract() -> None:
    found, problems = facts.findings([fault("OOMKilled", pods=["p-a"], since=30)])
    assert problems == []
    (f,) = found
    assert (f.signal, f.pods, f.value, f.threshold) == ("OOMKilled", ("p-a",), 1.0, 0.5)
    assert f.since is not None and (NOW - f.since).total_seconds() == 30


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"faults": []}, "faults is dict, not a list"),
        ([{"signal": "Gremlins"}], "unknown fault signal 'Gremlins'"),
        (["OOMKilled"], "is not an object"),
        ([{"signal": "ErrorRate", "pods": "p-a"}], "pods must be a list"),
    ],
)
def test_unreadable_findings_are_problems(raw: Any, problem: str) -> None:
    found, problems = facts.findings(raw)
    assert found == []
    assert len(problems) == 1 and problem in problems[0]


def test_a_bad_value_is_unknown_not_zero() -> None:
    (f,), _ = facts.findings([{"signal": "ErrorRate", "value": "NaN?", "since": "yesterday"}])
    assert f.value is None and f.since is None


def test_pod_facts_of_an_oom_crash_loop() -> None:
    p = facts.pod_facts(pod("p-a", ready=False, waiting="CrashLoopBackOff", terminated="OOMKilled"))
    assert (p.name, p.uid, p.ready, p.crash_looping, p.last_terminated, p.restarts) == (
        "p-a",
        "uid-p-a",
        False,
        True,
        "OOMKilled",
        2,
    )


def test_pod_facts_of_a_resize() -> None:
    deferred = facts.pod_facts(pod("p-a", resize=("PodResizePending", "Deferred", 10)))
    assert deferred.resize == "Deferred" and not deferred.resized
    raw = pod("p-b")
    assert not facts.pod_facts(raw).resized  # the kubelet reports no resources yet
    container = raw["spec"]["containers"][0]
    raw["status"]["containerStatuses"][0]["resources"] = {
        "requests": {"cpu": "0.1", "memory": "128Mi"},
        "limits": {"memory": str(256 * 1024 * 1024)},
    }
    assert container["resources"]["requests"]["cpu"] == "100m"
    assert facts.pod_facts(raw).resized  # equal quantities, written differently
    raw["metadata"]["generation"] = 2  # a newer resize the kubelet has not seen
    assert not facts.pod_facts(raw).resized
