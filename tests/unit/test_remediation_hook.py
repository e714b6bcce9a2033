"""When the monitor's heal hook may skip a model without reading it again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from heal_kit import ago, facts, md, pod
from onnxops.api import Condition, Fault
from onnxops.remediation.hook import _idle, skippable
from onnxops.remediation.record import Cycle

NOW = datetime.now(UTC)

V2 = {"uri": "https://h/iris/2/model.onnx", "version": "2"}
RESIZED = {"resources": {"limits": {"memory": "132Mi"}}, "resourcesBasis": {}}
MARKED = {"models": {"current": V2, "currentSince": ago(10), "healthy": V2}}
DONE = {"id": "a1", "time": ago(60), "action": "resize", "result": "Succeeded", "message": "m"}
STALE = {"type": "Remediating", "status": "True", "reason": "ActionInFlight", "message": "m"}
IDLE = {"type": "Remediating", "status": "False", "reason": "Idle", "message": "last: m"}


@pytest.mark.parametrize(
    ("status", "faults", "idle"),
    [
        (MARKED, [], True),
        (MARKED, [Fault(signal="ErrorRate")], False),
        ({}, [], False),  # the model marks are still to be written
        ({"phase": "Progressing"}, [], True),  # a rollout is the deploy path's
        (
            {
                **MARKED,
                "remediations": [{"time": ago(5), "action": "resize", "result": "InProgress"}],
            },
            [],
            False,
        ),
        ({**MARKED, "override": {"pool": "cloud"}}, [], False),  # a failback may be due
        # Resized in place at this generation: a pod made from the template later needs it too.
        ({**MARKED, "override": {**RESIZED, "inPlaceGeneration": 3}}, [], False),
        (
            {**MARKED, "override": {**RESIZED, "inPlaceGeneration": None}},
            [],
            True,
        ),  # in the template
        ({"models": {"current": V2, "currentSince": ago(10)}}, [], False),  # v2 not yet healthy
        ({"phase": "Progressing", "models": {"current": V2, "currentSince": ago(10)}}, [], True),
        # Remediating=True with nothing in flight (a racing writer put an old copy back): heal
        # runs, and its write corrects the condition (test_a_stale_remediating_is_rewritten).
        ({**MARKED, "remediations": [DONE], "conditions": [STALE]}, [], False),
        ({**MARKED, "remediations": [DONE], "conditions": [IDLE]}, [], True),
    ],
)
def test_idle(status: dict[str, Any], faults: list[Fault], idle: bool) -> None:
    assert _idle(md(status=status), faults) is idle


LOW = {"resource": "memory", "peak": 1e7, "value": 0.05, "threshold": 0.3, "windowSeconds": 60}


@pytest.mark.parametrize(("enabled", "idle"), [(True, False), (False, True)])
def test_long_low_use_wakes_heal_only_when_it_may_shrink(enabled: bool, idle: bool) -> None:
    model = md(
        spec={"remediation": {"resize": {"shrink": {"enabled": enabled}}}},
        status={**MARKED, "lowUse": [LOW]},
    )
    assert _idle(model, []) is idle


HINTED = dataclasses.replace(facts(pod("iris-a")), disruption_hint=True)
ROLLING = {
    "phase": "Progressing",
    "rollout": {"phase": "Progressing", "step": 0, "steps": 2, "stableModel": V2, "candidate": V2},
}
STEPS = {"rollout": {"steps": [{"weight": 20}, {"weight": 60}]}}


def test_a_hint_left_on_a_pod_wakes_heal_to_take_it_off() -> None:
    assert skippable(md(status=MARKED), [], [facts(pod("iris-a"))])
    assert not skippable(md(status=MARKED), [], [HINTED])
    # Being deleted: its hint no longer matters.
    assert skippable(md(status=MARKED), [], [dataclasses.replace(HINTED, deleting=True)])


def test_the_hints_of_an_analysis_step_do_not_wake_heal_mid_rollout() -> None:
    # Idle (a rollout is the deploy path's) and the rule wants them: the rollout cycle's.
    assert skippable(md(spec=STEPS, status=ROLLING), [], [HINTED])
    assert not skippable(md(status=ROLLING), [], [HINTED])  # spec.rollout gone: take them off


def test_a_stale_remediating_is_rewritten_by_the_cycle() -> None:
    """The cycle writes when what status holds differs from what the history says, even where
    the history itself did not change in this cycle."""
    stale = Cycle(md(status={**MARKED, "remediations": [DONE], "conditions": [STALE]}), NOW)
    assert stale._written != stale._ours()  # so `write()` patches the condition
    (fixed,) = stale._ours()["remediating"]
    assert (fixed["status"], fixed["reason"]) == ("False", "Idle")
    settled = Cycle(stale.md.model_copy(), NOW)
    settled.set(conditions=[Condition.model_validate(c) for c in stale._ours()["remediating"]])
    assert Cycle(settled.md, NOW)._written == Cycle(settled.md, NOW)._ours()  # nothing to write
