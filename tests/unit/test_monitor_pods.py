"""One parser of a serving pod (`PodFacts`): what the monitor judges and heal acts on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from heal_kit import facts, pod
from onnxops.remediation import inplace


def test_pod_facts_of_an_oom_crash_loop() -> None:
    p = facts(pod("p-a", ready=False, waiting="CrashLoopBackOff", terminated="OOMKilled"))
    assert (p.name, p.uid, p.ready, p.crash_looping, p.last_termination, p.restarts) == (
        "p-a",
        "uid-p-a",
        False,
        True,
        "OOMKilled",
        2,
    )


def test_pod_facts_of_an_unschedulable_pod() -> None:
    p = facts(pod("p-a", unschedulable_for=30))
    assert p.unschedulable == "no node fits"
    assert p.unschedulable_since is not None


def test_pod_facts_of_a_resize() -> None:
    deferred = facts(pod("p-a", resize=("PodResizePending", "Deferred", 10)))
    assert deferred.resize == "Deferred" and not deferred.resized
    raw = pod("p-b")
    assert not facts(raw).resized  # the kubelet reports no resources yet
    container = raw["spec"]["containers"][0]
    raw["status"]["containerStatuses"][0]["resources"] = {
        "requests": {"cpu": "0.1", "memory": "128Mi"},
        "limits": {"memory": str(256 * 1024 * 1024)},
    }
    assert container["resources"]["requests"]["cpu"] == "100m"
    assert facts(raw).resized  # equal quantities, written differently
    raw["metadata"]["generation"] = 2  # a newer resize the kubelet has not seen
    assert not facts(raw).resized


def test_only_running_pods_can_be_resized_in_place() -> None:
    now = datetime.now(UTC)
    up, looping = facts(pod("p-a")), facts(pod("p-b", ready=False, waiting="CrashLoopBackOff"))
    assert up.running and not looping.running
    assert inplace.not_running([up], now) is None
    why = "the kubelet resizes only running containers"
    assert (
        inplace.not_running([up, looping], now) == f"p-b is not running (CrashLoopBackOff): {why}"
    )
    assert inplace.not_running([up, replace(looping, deleting=True)], now) is None  # going anyway
    pending = replace(looping, waiting=None, phase="Pending")
    assert inplace.not_running([pending], now) == f"p-b is not running (pending): {why}"
    # Running again after an OOM kill 5 s ago: likely to die before the kubelet resizes it.
    restarted = replace(up, last_termination="OOMKilled", last_termination_at=now.timestamp() - 5)
    assert (
        inplace.not_running([restarted], now)
        == f"p-a was OOM-killed 5s ago and may be again: {why}"
    )
    long_ago = replace(restarted, last_termination_at=now.timestamp() - 600)
    assert inplace.not_running([long_ago], now) is None
    errored = replace(restarted, last_termination="Error")
    assert inplace.not_running([errored], now) is None
