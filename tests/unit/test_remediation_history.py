"""The audit trail: bounded history that keeps actions in flight, Events, the Remediating
condition, and the model versions remembered for rollback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from heal_kit import NOW, ago, md
from onnxops.api import ModelDeployment, ModelRef, RemediationRecord
from onnxops.remediation import history
from onnxops.remediation.action import Action
from onnxops.remediation.guardrails import Verdict


def rec(n: int, result: str = "Succeeded") -> RemediationRecord:
    return RemediationRecord.model_validate(
        {"id": f"r{n}", "time": ago(n), "action": "restart", "result": result}
    )


def test_history_is_bounded_but_keeps_what_is_in_flight() -> None:
    old = [rec(1000, "Pending")] + [rec(i) for i in range(999, 950, -1)]
    assert len(old) == history.LIMIT
    out = history.appended(old, [rec(1)])
    assert len(out) == history.LIMIT
    assert out[0].id == "r1000"  # in flight: kept although oldest
    assert "r999" not in {r.id for r in out}  # the oldest finished one went
    assert out[-1].id == "r1"


def test_events_name_action_result_and_refusal() -> None:
    refused = history.new_record(
        Verdict(Action("restart", "ErrorRate", "p-b bad"), "Refused", "Cooldown"), NOW
    )
    assert history.event(refused) == (
        "Warning",
        "RestartRefused",
        "restart for ErrorRate (Cooldown): p-b bad",
    )
    done = history.finished(
        history.new_record(Verdict(Action("resize", "OOMKilled", "oom"), "Pending"), NOW),
        "Succeeded",
        "ok",
        NOW,
    )
    assert history.event(done) == ("Normal", "ResizeSucceeded", "resize for OOMKilled: oom; ok")
    warn = history.new_record(Verdict(Action("warn", "Drift", "drift 0.4"), "Succeeded"), NOW)
    assert history.event(warn) == ("Warning", "Drift", "drift 0.4")


def condition(m: ModelDeployment) -> dict[str, Any]:
    (c,) = [c for c in history.remediating(m, NOW) if c["type"] == "Remediating"]
    return c


def test_remediating_is_true_while_an_action_is_in_flight() -> None:
    busy = md(
        status={
            "remediations": [
                {
                    "id": "a",
                    "time": ago(5),
                    "action": "resize",
                    "result": "InProgress",
                    "message": "oom",
                }
            ]
        }
    )
    assert (condition(busy)["status"], condition(busy)["reason"]) == ("True", "ActionInFlight")
    idle = md(
        status={
            "remediations": [
                {
                    "id": "a",
                    "time": ago(5),
                    "action": "resize",
                    "result": "Succeeded",
                    "message": "oom",
                }
            ]
        }
    )
    assert (condition(idle)["status"], condition(idle)["message"]) == (
        "False",
        "last: resize Succeeded: oom",
    )


def test_models_remembered_for_rollback() -> None:
    fresh = history.remember_models(md(version="2"), healthy=True, now=NOW)
    assert fresh.current == ModelRef(uri="https://h/iris/2/model.onnx", version="2")
    assert fresh.healthy is None and fresh.current_since == ago(0)  # not proven yet
    # Healthy once no fault appeared for failureThreshold x intervalSeconds (3 x 30 s).
    early = history.remember_models(
        md(version="2", status={"models": fresh.wire()}),
        healthy=True,
        now=NOW + timedelta(seconds=89),
    )
    assert early.healthy is None
    seen = history.remember_models(
        md(version="2", status={"models": fresh.wire()}),
        healthy=True,
        now=NOW + timedelta(seconds=90),
    )
    assert seen.healthy == fresh.current and seen.current_since == ago(0)
    changed = history.remember_models(
        md(version="3", status={"models": seen.wire()}), healthy=False, now=NOW
    )
    assert changed.healthy == seen.current  # v2 stays the one to go back to
    assert changed.current is not None and changed.current.version == "3"
    rolled = md(
        version="3",
        status={
            "models": {**changed.wire(), "currentSince": ago(3600)},
            "override": {"model": seen.current.wire(), "modelReplaces": changed.current.wire()},
        },
    )
    assert (
        history.remember_models(rolled, healthy=True, now=NOW).healthy == seen.current
    )  # v3 not proven


def test_a_rollout_takes_resources_resized_in_place_into_the_template() -> None:
    resized = {"resources": {"limits": {"memory": "132Mi"}}, "resourcesBasis": {}}
    model = md(status={"override": {**resized, "inPlaceGeneration": 3}})
    assert (
        history.intended(
            model, Action("restart", "ErrorRate", "", pods=("p/u",)), NOW
        ).in_place_generation
        == 3
    )
    for kind in ("rolloutRestart", "failover", "rollback"):
        ov = history.intended(model, Action(kind, "ErrorRate", "", pool="cloud"), NOW)
        assert ov.in_place_generation is None, kind  # every pod is replaced: from the template
        assert ov.resources is not None and ov.resources.wire()["limits"] == {"memory": "132Mi"}


def test_an_action_in_flight_says_reconciling_to_kstatus() -> None:
    """Heal writes Reconciling=True (ActionInFlight) beside Remediating=True, so kstatus reads
    InProgress while the action is in flight; it goes when the action ends, and never
    hides a Stalled (the user must act) or replaces a rollout's own Reconciling."""
    record = {"id": "a", "time": ago(5), "action": "resize", "result": "InProgress"}
    busy = history.remediating(md(status={"remediations": [{**record, "message": "oom"}]}), NOW)
    (reconciling,) = [c for c in busy if c["type"] == "Reconciling"]
    assert (reconciling["status"], reconciling["reason"]) == ("True", "ActionInFlight")
    assert reconciling["message"] == "resize: oom"
    done = {**record, "result": "Succeeded"}
    idle = history.remediating(md(status={"remediations": [done], "conditions": busy}), NOW)
    assert [c["type"] for c in idle if c["type"] == "Reconciling"] == []
    stalled = {"type": "Stalled", "status": "True", "reason": "ModelLoadFailed", "message": "x"}
    held = md(status={"remediations": [record], "conditions": [stalled]})
    assert "Reconciling" not in {c["type"] for c in history.remediating(held, NOW)}
    rolling = {"type": "Reconciling", "status": "True", "reason": "RollingOut", "message": "1/2"}
    rolled = md(status={"remediations": [record], "conditions": [rolling]})
    (kept,) = [c for c in history.remediating(rolled, NOW) if c["type"] == "Reconciling"]
    assert kept["reason"] == "RollingOut"
