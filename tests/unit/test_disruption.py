"""The disruption hints' rule: on while an in-place resize is in flight or a rollout analysis
step runs (Progressing, Paused, Inconclusive before promotion), off otherwise; and the rollout
machine's own turns switch it exactly at the step boundaries: on from step 1, off at the turn
that begins the promotion, and off at an abort."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from onnxops import disruption
from onnxops.api import ModelDeployment, ModelSource
from onnxops.remediation import guardrails
from onnxops.rollout import machine
from onnxops.rollout.analysis import Readings, Side
from support.deployments import model_deployment

NOW = datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC)
V1 = {"uri": "https://h/iris/1/model.onnx", "version": "1"}
V2 = {"uri": "https://h/iris/2/model.onnx", "version": "2"}
STEPS = [{"weight": 20, "pauseSeconds": 0}, {"weight": 60, "pauseSeconds": 0}]


def rollout(phase: str, step: int, *, candidate: bool = True) -> dict[str, Any]:
    return {
        "phase": phase,
        "step": step,
        "steps": len(STEPS),
        "stableModel": V1,
        "stableVersion": "1",
        **({"candidate": V2, "candidateVersion": "2"} if candidate else {}),
        "stepStartedAt": "2026-12-03T08:59:00Z",
    }


def md(
    status: dict[str, Any] | None = None, *, with_rollout: bool = True, **spec: Any
) -> ModelDeployment:
    if with_rollout:
        spec.setdefault("rollout", {"steps": STEPS, "analysis": {"failureLimit": 0}})
    body = model_deployment(
        "iris", namespace="ml", model=V2, replicas=3, status=status or {}, **spec
    )
    return ModelDeployment.model_validate(body)


def resize(result: str) -> dict[str, Any]:
    return {"time": "2026-12-03T08:59:30Z", "action": "resize", "result": result}


def test_heals_in_flight_results_are_the_rules() -> None:
    # The rule cannot import heal (the layering); it must agree with heal's guardrails.
    assert set(disruption._IN_FLIGHT) == set(guardrails.IN_FLIGHT)


@pytest.mark.parametrize(
    ("status", "protected"),
    [
        ({}, False),
        ({"rollout": rollout("Progressing", 0)}, True),
        ({"rollout": rollout("Progressing", 1)}, True),
        ({"rollout": rollout("Paused", 1)}, True),  # the step is still on, only not moving
        ({"rollout": rollout("Inconclusive", 0)}, True),
        ({"rollout": rollout("Progressing", 2)}, False),  # promoting: nothing is measured
        ({"rollout": rollout("Promoted", 2, candidate=False)}, False),
        ({"rollout": rollout("Aborted", 0)}, False),
        ({"remediations": [resize("InProgress")]}, True),
        ({"remediations": [resize("Pending")]}, True),
        ({"remediations": [resize("Succeeded")]}, False),
        ({"remediations": [resize("Failed")]}, False),
        ({"remediations": [{**resize("InProgress"), "action": "restart"}]}, False),
        # Each reason stands alone: a resize in flight keeps them through a promotion.
        ({"rollout": rollout("Progressing", 2), "remediations": [resize("InProgress")]}, True),
    ],
)
def test_the_rule(status: dict[str, Any], protected: bool) -> None:
    assert disruption.protected(md(status)) is protected


def test_no_spec_rollout_is_no_analysis_even_with_a_state_left() -> None:
    # spec.rollout removed mid-step: the state stays until the canary is gone, unmeasured.
    left = md({"rollout": rollout("Progressing", 1)}, with_rollout=False)
    assert not disruption.analysing(left)
    assert not disruption.protected(left)


GOOD = Side(requests=100, error_ratio=0.0, p99_s=0.01)


def _turn(m: ModelDeployment, readings: Readings | None, **kw: Any) -> ModelDeployment:
    moved = machine.advance(
        m,
        now=NOW + timedelta(seconds=5),
        readings=readings,
        canary_ready=True,
        stable_on_candidate=kw.get("stable_on_candidate", False),
    )
    return m.model_copy(update={"status": m.status.model_copy(update={"rollout": moved.rollout})})


def test_the_machines_turns_switch_it_at_the_step_boundaries() -> None:
    before = md({})
    assert not disruption.protected(before)
    begun = machine.begin(before, previous=ModelSource.model_validate(V1), now=NOW)
    m = before.model_copy(
        update={"status": before.status.model_copy(update={"rollout": begun.rollout})}
    )
    assert disruption.protected(m)  # step 1 of 2
    m = _turn(m, Readings(GOOD, GOOD))
    assert m.status.rollout is not None and m.status.rollout.step == 1
    assert disruption.protected(m)  # step 2 of 2
    m = _turn(m, Readings(GOOD, GOOD))
    assert m.status.rollout is not None and m.status.rollout.step == 2
    assert not disruption.protected(m)  # promoting
    m = _turn(m, None, stable_on_candidate=True)
    assert m.status.rollout is not None and m.status.rollout.phase == "Promoted"
    assert not disruption.protected(m)


def test_an_abort_takes_them_off() -> None:
    m = md({"rollout": rollout("Progressing", 0)})
    bad = Side(requests=100, error_ratio=0.5, p99_s=0.01)
    m = _turn(m, Readings(GOOD, bad))
    assert m.status.rollout is not None and m.status.rollout.phase == "Aborted"
    assert not disruption.protected(m)
