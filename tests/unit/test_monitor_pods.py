"""One parser of a serving pod (`PodFacts`): what the monitor judges and heal acts on."""

from __future__ import annotations

from heal_kit import facts, pod


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
