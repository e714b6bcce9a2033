"""Remediation policy: findings + pod facts + spec -> ordered actions, one table row each."""

from __future__ import annotations

from typing import Any

import pytest
from heal_kit import NOW, ago, facts, fault, findings, md, pod
from onnxops.api import ModelDeployment
from onnxops.override import pod_resources
from onnxops.pools import default_pools
from onnxops.remediation import inplace, policy
from onnxops.remediation.action import Action

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
    found = findings(faults)
    situation = policy.Situation(
        md=model,
        findings=found,
        pods=[facts(p) for p in pods],
        resources=pod_resources(model, EDGE),
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
    found = findings(faults)
    situation = policy.Situation(
        md=model,
        findings=found,
        pods=[facts(p) for p in THREE],
        resources=pod_resources(model, EDGE),
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
    assert Action("restart", "ErrorRate", "").disruptive
    assert Action("rollback", "ErrorRate", "").disruptive
    assert not Action("resize", "OOMKilled", "").disruptive
    assert not Action("warn", "Drift", "").disruptive


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
    pods = [facts(pod("p-a", resize=resize)), facts(pod("p-b"))]
    assert inplace.fallback(model, pods, NOW) == expected


def test_a_deferred_resize_of_a_pod_going_away_is_not_waited_on() -> None:
    going = pod("p-a", resize=("PodResizePending", "Deferred", 600))
    going["metadata"]["deletionTimestamp"] = ago(1)
    assert inplace.fallback(BOUNDED, [facts(going)], NOW) is None


def test_deferred_seconds_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"deferredSeconds|deferred_seconds"):
        md(spec={"remediation": {"resize": {"deferredSeconds": -1}}})


# -- right-sizing down after long low use --------------------------------------------------

MIB = 2**20
SHRINK = {"remediation": {"resize": {"shrink": {"enabled": True, "afterSeconds": 3600}}}}


def low_use(cpu: float | None = 0.005, memory: float | None = 40 * MIB) -> list[dict[str, Any]]:
    found = []
    for resource, peak in (("cpu", cpu), ("memory", memory)):
        if peak is not None:
            found.append(
                {"resource": resource, "peak": peak, "value": 0.05, "threshold": 0.3,
                 "windowSeconds": 3600, "message": f"{resource} low"}
            )  # fmt: skip
    return found


def quiet(
    spec: dict[str, Any] | None = None,
    *,
    history: list[dict[str, Any]] | None = None,
    **use: float | None,
) -> ModelDeployment:
    return md(
        spec={**SHRINK, **(spec or {})},
        status={"lowUse": low_use(**use), "remediations": history or []},
    )


def shrink_of(model: ModelDeployment, pods: list[dict[str, Any]] | None = None) -> Any:
    """The resources the policy lowers to (None when it proposes nothing)."""
    situation = policy.Situation(
        md=model,
        findings=[],
        pods=[facts(p) for p in pods or THREE],
        resources=pod_resources(model, EDGE),
        now=NOW,
    )
    actions = policy.decide(situation)
    if not actions:
        return None
    (action,) = actions
    assert (action.kind, action.reason, action.shrinks) == ("resize", "LowUse", True)
    assert action.resource is None  # no single resource grows
    return action.resources


def test_long_low_use_divides_requests_and_limits_by_the_factor() -> None:
    # edge defaults: requests 100m / 128Mi, memory limit 256Mi; / 1.5, rounded up.
    assert shrink_of(quiet()) == {
        "requests": {"cpu": "67m", "memory": "86Mi"},
        "limits": {"memory": "171Mi"},
    }


def test_never_below_the_peak_use_plus_headroom() -> None:
    # Peak 100Mi x 1.2 = 120Mi: the request goes only that far down, the limit by the factor.
    lowered = shrink_of(quiet(memory=100 * MIB, cpu=0.08))
    assert lowered["requests"] == {"cpu": "96m", "memory": "120Mi"}
    assert lowered["limits"] == {"memory": "171Mi"}


def test_never_below_the_floor_nor_a_request_above_its_limit() -> None:
    small = {"requests": {"cpu": "12m", "memory": "40Mi"}, "limits": {"memory": "40Mi"}}
    lowered = shrink_of(quiet({"resources": small}, cpu=0.0, memory=0.0))
    assert lowered == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}
    tight = {"requests": {"memory": "100Mi"}, "limits": {"memory": "110Mi"}}
    kept = shrink_of(quiet({"resources": tight}, cpu=None, memory=60 * MIB))
    # The request stops at 72Mi (60Mi x 1.2); the limit's 73.3Mi rounds up to 74Mi.
    assert kept["requests"]["memory"] == "72Mi" and kept["limits"]["memory"] == "74Mi"


def test_at_the_floor_nothing_is_proposed() -> None:
    floor = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}
    assert shrink_of(quiet({"resources": floor}, cpu=0.0, memory=0.0)) is None


def test_only_what_is_low_is_lowered() -> None:
    lowered = shrink_of(quiet(cpu=None))
    assert lowered["requests"]["cpu"] == "100m"
    assert lowered["requests"]["memory"] == "86Mi"


def test_with_autoscaling_the_hpa_keeps_cpu() -> None:
    model = quiet({"autoscaling": {"minReplicas": 1, "maxReplicas": 4}})
    assert shrink_of(model)["requests"] == {"cpu": "100m", "memory": "86Mi"}
    assert shrink_of(quiet({"autoscaling": {"maxReplicas": 4}}, memory=None)) is None


def test_the_override_is_the_starting_point_of_a_shrink() -> None:
    raised = {"requests": {"cpu": "150m", "memory": "228Mi"}, "limits": {"memory": "384Mi"}}
    model = md(
        spec=SHRINK,
        status={"lowUse": low_use(), "override": {"resources": raised, "resourcesBasis": {}}},
    )
    assert shrink_of(model)["limits"] == {"memory": "256Mi"}


def resize_record(seconds_ago: float, result: str = "Succeeded", action: str = "resize") -> Any:
    return {"id": "r", "time": ago(seconds_ago), "action": action, "result": result}


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (md(status={"lowUse": low_use()}), "shrink not enabled"),
        (quiet(history=[resize_record(600)]), "a raise 10 min ago: low use not yet seen after it"),
        (quiet(history=[resize_record(600, "Failed")]), "a failed raise counts too"),
        (
            quiet(
                {"remediation": {"cooldownSeconds": 7200, **SHRINK["remediation"]}},
                history=[resize_record(4000)],
            ),
            "past afterSeconds but within the cooldown: not even proposed",
        ),
        (quiet(history=[resize_record(7200, "InProgress")]), "a resize still in flight"),
        (quiet(history=[resize_record(60, "Pending", "restart")]), "another action in flight"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_no_shrink_that_could_fight_a_raise(model: ModelDeployment, why: str) -> None:
    assert shrink_of(model) is None, why


def test_a_shrink_after_a_raise_once_the_window_passed_and_after_a_refusal() -> None:
    history = [resize_record(4000), resize_record(60, "Refused")]
    assert shrink_of(quiet(history=history)) is not None


def test_no_shrink_while_a_pod_resize_is_pending() -> None:
    pods = [pod("p-a"), pod("p-b", resize=("PodResizePending", "Deferred", 10))]
    assert shrink_of(quiet(), pods) is None


def test_no_shrink_while_any_fault_stands() -> None:
    model = quiet()
    assert decide(model, [fault("OOMKilled")], THREE) == [("resize", "OOMKilled", ())]
    assert decide(model, [fault("Drift")], THREE) == [("warn", "Drift", ())]
    assert decide(model, [], THREE) == [("resize", "LowUse", ())]


def test_no_shrink_beside_a_failback() -> None:
    model = md(
        spec=SHRINK,
        status={
            "pool": "cloud",
            "override": {"pool": "cloud", "poolSince": ago(700)},
            "lowUse": low_use(),
        },
    )
    assert decide(model, [], THREE, room=True) == [("failback", "PoolHasRoom", ())]


def test_no_rollback_of_a_version_that_is_only_a_canary() -> None:
    rollout = {
        "phase": "Progressing",
        "step": 0,
        "steps": 1,
        "stableModel": V1,
        "candidate": V2,
    }
    canary = md(
        spec={"rollout": {"steps": [{"weight": 10}]}},
        status={**marks(100), "rollout": rollout},
    )
    # The rollout judges the canary; heal keeps to what answers for the stable pods.
    assert decide(canary, [fault("ErrorRate")], THREE) == [("rolloutRestart", "ErrorRate", ())]
    promoted = md(
        spec={"rollout": {"steps": [{"weight": 10}]}},
        status={**marks(100), "rollout": {**rollout, "phase": "Promoted", "candidate": None}},
    )
    assert decide(promoted, [fault("ErrorRate")], THREE) == [("rollback", "ErrorRate", ())]
