"""Autoscaler-aware failover: what Karpenter or Cluster Autoscaler said of the unschedulable
pods (their Events), and how long the policy waits for a node before failing over."""

from __future__ import annotations

from typing import Any

import pytest
from heal_kit import NOW, ago, facts, fault, findings, md, pod
from onnxops.api import ModelDeployment, ModelDeploymentSpec
from onnxops.override import pod_resources
from onnxops.pools import default_pools
from onnxops.remediation import policy, scaleup
from onnxops.remediation.act import placed_condition
from pydantic import ValidationError

EDGE = default_pools()["edge"]


def event(
    pod_name: str,
    reason: str,
    message: str,
    *,
    seconds_ago: float = 10,
    component: str = "karpenter",
    new_style: bool = False,
) -> dict[str, Any]:
    """A core/v1 Event about a pod as the apiserver lists it (Karpenter and Cluster Autoscaler
    write `source.component`; the scheduler's events.k8s.io ones carry `reportingComponent`)."""
    body: dict[str, Any] = {
        "involvedObject": {"kind": "Pod", "name": pod_name, "uid": f"uid-{pod_name}"},
        "reason": reason,
        "message": message,
        "lastTimestamp": ago(seconds_ago),
    }
    if new_style:
        body["reportingComponent"] = component
        body["eventTime"] = body.pop("lastTimestamp")
    else:
        body["source"] = {"component": component}
    return body


NOMINATED = "Pod should schedule on: nodeclaim/edge-x2k4p"
AT_LIMIT = 'Failed to schedule pod, all available instance types exceed limits for nodepool: "edge"'


def heard(events: list[dict[str, Any]], *pods: dict[str, Any]) -> scaleup.ScaleUp | None:
    return scaleup.heard(events, [facts(p) for p in pods])


def test_karpenter_nominating_a_node_claim_is_a_node_coming() -> None:
    said = heard([event("p-a", "Nominated", NOMINATED)], pod("p-a", unschedulable_for=30))
    assert said is not None and said.coming
    assert said.claims == "nodeclaim/edge-x2k4p"
    assert said.by == "karpenter"


def test_a_node_launched_but_not_initialized_is_named_when_no_claim_is() -> None:
    message = "Pod should schedule on: node/kwok-edge-x2k4p-abc-1"
    said = heard([event("p-a", "Nominated", message)], pod("p-a", unschedulable_for=30))
    assert said is not None and said.coming and said.claims == "node/kwok-edge-x2k4p-abc-1"


@pytest.mark.parametrize(
    ("component", "reason", "coming"),
    [
        ("karpenter", "FailedScheduling", False),
        ("cluster-autoscaler", "TriggeredScaleUp", True),
        ("cluster-autoscaler", "NotTriggerScaleUp", False),
    ],
)
def test_each_autoscalers_words(component: str, reason: str, coming: bool) -> None:
    said = heard(
        [event("p-a", reason, "words", component=component)], pod("p-a", unschedulable_for=30)
    )
    assert said is not None and said.coming is coming and said.by == component


def test_the_schedulers_own_failed_scheduling_is_no_autoscaler_word() -> None:
    scheduler = event(
        "p-a", "FailedScheduling", "0/5 nodes are available", component="default-scheduler",
        new_style=True,
    )  # fmt: skip
    assert heard([scheduler], pod("p-a", unschedulable_for=30)) is None


def test_the_latest_word_counts() -> None:
    stuck = pod("p-a", unschedulable_for=120)
    nominated_then_limit = [
        event("p-a", "Nominated", NOMINATED, seconds_ago=60),
        event("p-a", "FailedScheduling", AT_LIMIT, seconds_ago=5),
    ]
    said = heard(nominated_then_limit, stuck)
    assert said is not None and not said.coming and "exceed limits" in said.claims
    limit_then_nominated = [
        event("p-a", "FailedScheduling", AT_LIMIT, seconds_ago=60),
        event("p-a", "Nominated", NOMINATED, seconds_ago=5),
    ]
    said = heard(limit_then_nominated, stuck)
    assert said is not None and said.coming


def test_a_node_coming_for_only_some_pods_is_not_enough() -> None:
    said = heard(
        [event("p-a", "Nominated", NOMINATED)],
        pod("p-a", unschedulable_for=30),
        pod("p-b", unschedulable_for=30),
    )
    assert said is not None and not said.coming


def test_words_about_other_or_scheduled_pods_are_ignored() -> None:
    assert heard([event("p-z", "Nominated", NOMINATED)], pod("p-a", unschedulable_for=30)) is None
    assert heard([event("p-a", "Nominated", NOMINATED)], pod("p-a")) is None


def situation(
    model: ModelDeployment, unschedulable_for: float, events: list[dict[str, Any]]
) -> policy.Situation:
    stuck = [facts(pod("p-a", unschedulable_for=unschedulable_for))]
    return policy.Situation(
        md=model,
        findings=findings([fault("Unschedulable", since=unschedulable_for)]),
        pods=stuck,
        resources=pod_resources(model, EDGE),
        now=NOW,
        scale_up=scaleup.heard(events, stuck),
    )


def kinds(s: policy.Situation) -> list[str]:
    return [a.kind for a in policy.decide(s)]


COMING = [event("p-a", "Nominated", NOMINATED)]
CANNOT = [event("p-a", "FailedScheduling", AT_LIMIT)]
BOUNDS = {"remediation": {"unschedulableSeconds": 120, "scaleUpGraceSeconds": 600}}


@pytest.mark.parametrize(
    ("events", "seconds", "failover", "awaiting"),
    [
        (COMING, 200, False, True),  # past unschedulableSeconds, within the grace: wait
        (COMING, 601, True, False),  # the grace spent: fail over
        (CANNOT, 121, True, False),  # the autoscaler cannot help: as without one
        ([], 121, True, False),  # no word at all: as today
        (COMING, 60, False, True),  # a node coming, before either bound
        (CANNOT, 60, False, False),
    ],
)
def test_a_node_coming_holds_the_failover_back_for_the_grace(
    events: list[dict[str, Any]], seconds: float, failover: bool, awaiting: bool
) -> None:
    s = situation(md(spec=BOUNDS), seconds, events)
    assert ("failover" in kinds(s)) is failover
    assert (policy.awaiting_scale_up(s) is not None) is awaiting


def test_the_failover_message_says_what_the_autoscaler_said() -> None:
    (action,) = policy.decide(situation(md(spec=BOUNDS), 601, COMING))
    assert "karpenter said it adds a node: nodeclaim/edge-x2k4p" in action.message
    assert "for over 600s" in action.message and "moving to cloud" in action.message
    (action,) = policy.decide(situation(md(spec=BOUNDS), 121, CANNOT))
    assert "said it cannot add a node" in action.message and "for over 120s" in action.message


def test_a_grace_shorter_than_unschedulable_seconds_never_shortens_the_wait() -> None:
    spec = {"remediation": {"unschedulableSeconds": 120, "scaleUpGraceSeconds": 30}}
    assert kinds(situation(md(spec=spec), 60, COMING)) == []
    assert kinds(situation(md(spec=spec), 121, COMING)) == ["failover"]


def test_scale_up_grace_defaults_to_600_and_is_bounded() -> None:
    base = {"model": {"uri": "https://h/m.onnx"}}
    assert ModelDeploymentSpec.model_validate(base).remediation.scale_up_grace_seconds == 600
    for bad in (-1, 86401, "soon"):
        with pytest.raises(ValidationError):
            ModelDeploymentSpec.model_validate(
                {**base, "remediation": {"scaleUpGraceSeconds": bad}}
            )


def placed(model: ModelDeployment, seconds: float | None, events: list[dict[str, Any]]) -> Any:
    """The Placed condition heal writes: (reason, message), or None (the deploy path's)."""
    if seconds is None:  # the pods run: nothing unschedulable any more
        s = policy.Situation(
            md=model, findings=[], pods=[facts(pod("p-a"))],
            resources=pod_resources(model, EDGE), now=NOW,
        )  # fmt: skip
        return placed_condition(s, EDGE)
    return placed_condition(situation(model, seconds, events), EDGE)


def test_placed_says_awaiting_scale_up_with_the_claim_and_the_deadline() -> None:
    reason, message = placed(md(spec=BOUNDS), 60, COMING)
    assert reason == "AwaitingScaleUp"
    assert "karpenter adds a node for them: nodeclaim/edge-x2k4p" in message
    assert "failover to cloud after 600s unschedulable" in message
    assert placed(md(spec=BOUNDS), 60, CANNOT) is None  # nothing to wait for: the deploy path's


def test_placed_goes_back_to_pool_chosen_once_the_wait_is_over() -> None:
    waiting = {"conditions": [{"type": "Placed", "status": "True", "reason": "AwaitingScaleUp"}]}
    model = md(spec=BOUNDS, status=waiting)
    reason, message = placed(model, None, [])
    assert reason == "PoolChosen" and "the node the autoscaler added" in message
    reason, message = placed(model, 601, COMING)  # the grace spent, still unschedulable
    assert reason == "PoolChosen" and "no node came within 600s" in message
    assert placed(md(spec=BOUNDS), None, []) is None  # never waited: nothing to undo
