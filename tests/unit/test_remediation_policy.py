"""Remediation policy: findings + pod facts + spec -> ordered actions, one table row each."""

from __future__ import annotations

from typing import Any

import pytest
from heal_kit import NOW, ago, fault, md, pod
from onnxops.api import ModelDeployment
from onnxops.pools import default_pools, effective_resources
from onnxops.remediation import facts, policy
from onnxops.remediation.override import applied

EDGE = default_pools()["edge"]
THREE = [pod("p-a"), pod("p-b"), pod("p-c")]
V1 = {"uri": "https://h/iris/1/model.onnx", "version": "1"}
V2 = {"uri": "https://h/iris/2/model.onnx", "version": "2"}


def decide(
    model: ModelDeployment,
    faults: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    room: bool | None = None,
) -> list[tuple[str, str, tuple[str, ...]]]:
    found, problems = facts.findings(faults)
    assert not problems
    situation = policy.Situation(
        md=model,
        findings=found,
        pods=[facts.pod_facts(p) for p in pods],
        resources=effective_resources(applied(model).spec, EDGE),
        now=NOW,
        preferred_has_room=room,
    )
    return [(a.kind, a.reason, a.pods) for a in policy.decide(situation)]


def marks(since: float) -> dict[str, Any]:
    return {"models": {"current": V2, "currentSince": ago(since), "healthy": V1}}


CASES = [
    ("nothing wrong", md(), [], THREE, []),
    ("OOM kills: more memory", md(), [fault("OOMKilled")], THREE, [("resize", "OOMKilled", ())]),
    (
        "crash loop from OOM: more memory, no restart",
        md(),
        [fault("CrashLoop", pods=["p-a"])],
        [pod("p-a", waiting="CrashLoopBackOff", terminated="OOMKilled"), pod("p-b")],
        [("resize", "OOMKilled", ("p-a",))],
    ),
    (
        "crash loop for another reason: reported, never restarted",
        md(),
        [fault("CrashLoop", pods=["p-a"]), fault("ErrorRate", pods=["p-a"])],
        [pod("p-a", waiting="CrashLoopBackOff", terminated="Error"), pod("p-b"), pod("p-c")],
        [("warn", "CrashLoop", ())],
    ),
    ("throttled but fast: nothing", md(), [fault("CpuThrottling")], THREE, []),
    (
        "throttled and slow: more CPU",
        md(),
        [fault("CpuThrottling"), fault("LatencyP99")],
        THREE,
        [("resize", "CpuThrottling", ())],
    ),
    (
        "one bad replica of three: only it is restarted",
        md(),
        [fault("ErrorRate", pods=["p-b"])],
        THREE,
        [("restart", "ErrorRate", ("p-b/uid-p-b",))],
    ),
    (
        "a finding about a pod already replaced: nothing",
        md(),
        [fault("ErrorRate", pods=["p-old"])],
        THREE,
        [],
    ),
    (
        "one replica not ready for minutes",
        md(),
        [fault("NotReady", pods=["p-c"], since=200)],
        [pod("p-a"), pod("p-b"), pod("p-c", ready=False)],
        [("restart", "NotReady", ("p-c/uid-p-c",))],
    ),
    (
        "one replica not ready for a moment: maybe still starting",
        md(),
        [fault("NotReady", pods=["p-c"], since=30)],
        [pod("p-a"), pod("p-b"), pod("p-c", ready=False)],
        [],
    ),
    (
        "every replica slow for long: rollout restart",
        md(),
        [fault("LatencyP99", since=200)],  # held back 2 x 30 s x 3 evaluations = 180 s
        THREE,
        [("rolloutRestart", "LatencyP99", ())],
    ),
    (
        "every replica slow for a moment: wait, CPU pressure may not have counted yet",
        md(),
        [fault("LatencyP99", since=120)],
        THREE,
        [],
    ),
    (
        "slow for a moment, then CPU pressure counts too: more CPU, no restart",
        md(),
        [fault("LatencyP99", since=120), fault("CpuUtilization", since=20)],
        THREE,
        [("resize", "CpuUtilization", ())],
    ),
    (
        "every replica erring at once: no such wait",
        md(),
        [fault("ErrorRate", since=20)],
        THREE,
        [("rolloutRestart", "ErrorRate", ())],
    ),
    (
        "errors right after a model change: rollback",
        md(status=marks(100)),
        [fault("ErrorRate")],
        THREE,
        [("rollback", "ErrorRate", ())],
    ),
    (
        "errors on some pods mid-rollout of a new model: rollback, not a restart of them",
        md(status=marks(100)),
        [fault("ErrorRate", pods=["p-c"])],
        THREE,
        [("rollback", "ErrorRate", ())],
    ),
    (
        "errors on one pod long after the model change: only it is restarted",
        md(status=marks(2000)),
        [fault("ErrorRate", pods=["p-c"])],
        THREE,
        [("restart", "ErrorRate", ("p-c/uid-p-c",))],
    ),
    (
        "errors long after the model change: not the model's fault",
        md(status=marks(2000)),
        [fault("ErrorRate")],
        THREE,
        [("rolloutRestart", "ErrorRate", ())],
    ),
    (
        "accuracy collapse after a model change: rollback",
        md(status=marks(60)),
        [fault("Accuracy")],
        THREE,
        [("rollback", "Accuracy", ())],
    ),
    (
        "already rolled back: no second rollback",
        md(status={**marks(100), "override": {"model": V1, "modelReplaces": V2}}),
        [fault("ErrorRate")],
        THREE,
        [("rolloutRestart", "ErrorRate", ())],
    ),
    (
        "accuracy low, no earlier model; drift: warnings only",
        md(),
        [fault("Accuracy"), fault("Drift")],
        THREE,
        [("warn", "Drift", ()), ("warn", "Accuracy", ())],
    ),
    (
        "unschedulable past the bound: fail over",
        md(),
        [fault("Unschedulable", since=200)],
        [pod("p-a", unschedulable_for=200)],
        [("failover", "Unschedulable", ())],
    ),
    ("unschedulable briefly: wait", md(), [fault("Unschedulable", since=30)], THREE, []),
    (
        "no fallback pool: no failover",
        md(spec={"target": {"pool": "edge"}}),
        [fault("Unschedulable", since=200)],
        THREE,
        [],
    ),
]


@pytest.mark.parametrize(
    ("model", "faults", "pods", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide(
    model: ModelDeployment,
    faults: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    expected: list[Any],
) -> None:
    assert decide(model, faults, pods) == expected


def on_fallback(seconds: float) -> ModelDeployment:
    return md(status={"pool": "cloud", "override": {"pool": "cloud", "poolSince": ago(seconds)}})


@pytest.mark.parametrize(
    ("model", "room", "expected"),
    [
        (on_fallback(700), True, [("failback", "PoolHasRoom", ())]),
        (on_fallback(100), True, []),  # hysteresis: too soon
        (on_fallback(700), False, []),
        (on_fallback(700), None, []),  # unknown room: stay
    ],
)
def test_failback_with_hysteresis(
    model: ModelDeployment, room: bool | None, expected: list[Any]
) -> None:
    assert decide(model, [], THREE, room=room) == expected


def resize_of(model: ModelDeployment, faults: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    found, _ = facts.findings(faults)
    situation = policy.Situation(
        md=model,
        findings=found,
        pods=[facts.pod_facts(p) for p in THREE],
        resources=effective_resources(applied(model).spec, EDGE),
        now=NOW,
    )
    (action,) = policy.decide(situation)
    assert action.resources is not None
    return action.resources


def test_memory_grows_by_the_factor_or_at_least_100mi() -> None:
    # edge defaults: requests 128Mi, limit 256Mi; x1.5 = 192Mi / 384Mi; +100Mi wins for 128Mi.
    grown = resize_of(md(), [fault("OOMKilled")])
    assert grown["limits"]["memory"] == "384Mi"
    assert grown["requests"]["memory"] == "228Mi"
    assert grown["requests"]["cpu"] == "100m"  # untouched


def test_cpu_grows_by_the_spec_factor() -> None:
    model = md(spec={"remediation": {"resize": {"factor": 2}}})
    grown = resize_of(model, [fault("CpuThrottling"), fault("LatencyP99")])
    assert grown["requests"] == {"cpu": "200m", "memory": "128Mi"}


def test_the_override_is_the_starting_point_of_the_next_resize() -> None:
    resized = {"requests": {"cpu": "100m", "memory": "228Mi"}, "limits": {"memory": "384Mi"}}
    model = md(status={"override": {"resources": resized, "resourcesBasis": {}}})
    assert resize_of(model, [fault("OOMKilled")])["limits"]["memory"] == "576Mi"


def test_disruptive_kinds() -> None:
    assert policy.Action("restart", "ErrorRate", "").disruptive
    assert policy.Action("rollback", "ErrorRate", "").disruptive
    assert not policy.Action("resize", "OOMKilled", "").disruptive
    assert not policy.Action("warn", "Drift", "").disruptive


BOUNDED = md(spec={"remediation": {"resize": {"deferredSeconds": 20}}})


@pytest.mark.parametrize(
    ("model", "resize", "expected"),
    [
        # Deferred: the node lacks room now; wait resize.deferredSeconds (default VPA's 300).
        (md(), ("PodResizePending", "Deferred", 299), None),
        (md(), ("PodResizePending", "Deferred", 300), "resize Deferred on p-a for over 300s"),
        (BOUNDED, ("PodResizePending", "Deferred", 19), None),
        (BOUNDED, ("PodResizePending", "Deferred", 21), "resize Deferred on p-a for over 20s"),
        # The node can never fit it, or the kubelet failed it: no point waiting.
        (md(), ("PodResizePending", "Infeasible", 0), "resize Infeasible on p-a"),
        (md(), ("PodResizeInProgress", "Error", 0), "resize Error on p-a"),
        # Being applied: the kubelet is on it.
        (BOUNDED, ("PodResizeInProgress", "InProgress", 600), None),
        (BOUNDED, None, None),
    ],
)
def test_a_resize_in_place_falls_back_to_a_rollout(
    model: ModelDeployment, resize: tuple[str, str, float] | None, expected: str | None
) -> None:
    pods = [facts.pod_facts(pod("p-a", resize=resize)), facts.pod_facts(pod("p-b"))]
    assert policy.resize_fallback(model, pods, NOW) == expected


def test_a_deferred_resize_of_a_pod_going_away_is_not_waited_on() -> None:
    going = pod("p-a", resize=("PodResizePending", "Deferred", 600))
    going["metadata"]["deletionTimestamp"] = ago(1)
    assert policy.resize_fallback(BOUNDED, [facts.pod_facts(going)], NOW) is None


def test_deferred_seconds_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"deferredSeconds|deferred_seconds"):
        md(spec={"remediation": {"resize": {"deferredSeconds": -1}}})
