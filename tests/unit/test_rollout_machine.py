"""The rollout's state machine, table by table: a spec change starts, restarts or ends a
rollout; a step passes only with its pause elapsed and a conclusive success; inconclusive
never fails nor promotes; more than failureLimit failures abort; user actions act once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from onnxops import override
from onnxops.api import ModelDeployment, ModelSource, RolloutStatus
from onnxops.reasons import Reason, RolloutPhase, Signal, Verdict
from onnxops.rollout import machine, plan
from onnxops.rollout.analysis import Readings, Side
from support.deployments import model_deployment

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
V1 = {"uri": "https://h/iris/1/model.onnx", "version": "1"}
V2 = {"uri": "https://h/iris/2/model.onnx", "version": "2"}
V3 = {"uri": "https://h/iris/3/model.onnx", "version": "3"}
STEPS = [{"shadow": 100, "pauseSeconds": 30}, {"weight": 10, "pauseSeconds": 30}]
GOOD = Readings(
    stable=Side(requests=500, error_ratio=0.0, p99_s=0.01),
    candidate=Side(requests=100, error_ratio=0.0, p99_s=0.011),
    shadow={"agree": 200, "disagree": 1},
)
FAILING = Readings(
    stable=Side(requests=500, error_ratio=0.0, p99_s=0.01),
    candidate=Side(requests=100, error_ratio=0.4, p99_s=0.011),
    shadow={"agree": 200},
)
QUIET = Readings(stable=Side(requests=3), candidate=Side(requests=2))


def md(
    rollout: dict[str, Any] | None = None,
    *,
    model: dict[str, Any] = V2,
    annotations: dict[str, str] | None = None,
    steps: list[dict[str, Any]] = STEPS,
    generation: int = 2,
    **spec_rollout: Any,
) -> ModelDeployment:
    status = {"rollout": rollout} if rollout is not None else {}
    meta: dict[str, Any] = {"generation": generation}
    if annotations:
        meta["annotations"] = annotations
    body = model_deployment(
        "iris",
        namespace="ml",
        model=model,
        replicas=4,
        rollout={"steps": steps, "analysis": {"failureLimit": 0}, **spec_rollout},
        metadata=meta,
        status=status,
    )
    return ModelDeployment.model_validate(body)


def at_step(step: int, *, started: timedelta = timedelta(0), **extra: Any) -> dict[str, Any]:
    return {
        "phase": "Progressing",
        "step": step,
        "steps": 2,
        "stableModel": V1,
        "stableVersion": "1",
        "candidate": V2,
        "candidateVersion": "2",
        "stepStartedAt": (NOW - started).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }


def advance(m: ModelDeployment, readings: Readings | None = GOOD, **kw: Any) -> machine.Moved:
    args: dict[str, Any] = {"canary_ready": True, "stable_on_candidate": False, **kw}
    return machine.advance(m, now=NOW, readings=readings, **args)


def r_of(moved: machine.Moved) -> RolloutStatus:
    assert moved.rollout is not None
    return moved.rollout


# -- begin: spec changes -------------------------------------------------------------------------


def test_first_sight_settles_on_the_spec_model() -> None:
    moved = machine.begin(md(), previous=None, now=NOW)
    r = r_of(moved)
    assert r.phase == RolloutPhase.PROMOTED and r.stable_version == "2" and r.candidate is None
    assert moved.events == []


def test_a_new_model_starts_at_step_zero_with_the_old_one_stable() -> None:
    settled = machine.settled(ModelSource.model_validate(V1), 2).wire()
    moved = machine.begin(md(settled), previous=None, now=NOW)
    r = r_of(moved)
    assert (r.phase, r.step, r.steps) == (RolloutPhase.PROGRESSING, 0, 2)
    assert (r.stable_version, r.candidate_version, r.candidate_generation) == ("1", "2", 2)
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_STARTED]


def test_adding_rollout_with_a_new_model_uses_the_previous_spec_model() -> None:
    moved = machine.begin(md(), previous=ModelSource.model_validate(V1), now=NOW)
    assert r_of(moved).stable_version == "1" and r_of(moved).candidate_version == "2"


def test_a_spec_change_mid_rollout_restarts_with_the_newest() -> None:
    moved = machine.begin(md(at_step(1), model=V3), previous=None, now=NOW)
    r = r_of(moved)
    assert (r.step, r.stable_version, r.candidate_version) == (0, "1", "3")
    assert "restarted" in moved.events[0][2]


def test_the_same_spec_again_changes_nothing() -> None:
    m = md(at_step(1))
    assert machine.begin(m, previous=None, now=NOW).rollout == m.status.rollout


def test_back_to_the_stable_model_ends_the_rollout() -> None:
    moved = machine.begin(md(at_step(1), model=V1), previous=None, now=NOW)
    r = r_of(moved)
    assert r.phase == RolloutPhase.PROMOTED and r.candidate is None and r.stable_version == "1"


def test_an_aborted_candidate_stays_aborted_for_the_same_spec() -> None:
    m = md(at_step(1, phase="Aborted"))
    assert machine.begin(m, previous=None, now=NOW).rollout == m.status.rollout


def test_removing_spec_rollout_leaves_the_state_to_the_reconcile() -> None:
    body = model_deployment("iris", model=V2, status={"rollout": at_step(1)})
    m = ModelDeployment.model_validate(body)
    # Kept until the canary is deleted (the reconcile drops it then); not a rollout anymore.
    assert machine.begin(m, previous=None, now=NOW).rollout == m.status.rollout
    assert override.applied(m).spec.model.version == "2"


# -- advance: steps and analysis -----------------------------------------------------------------


def test_a_success_before_the_pause_ends_holds_the_step() -> None:
    r = r_of(advance(md(at_step(0, started=timedelta(seconds=10)))))
    assert r.step == 0 and r.successes == 1 and "20 s of pause left" in r.message
    assert {m.signal: m.verdict for m in r.measurements}[Signal.ERROR_RATE] == Verdict.SUCCESSFUL


def test_pause_elapsed_and_success_passes_the_step() -> None:
    moved = advance(md(at_step(0, started=timedelta(seconds=31))))
    r = r_of(moved)
    assert (r.step, r.successes, r.phase) == (1, 0, RolloutPhase.PROGRESSING)
    assert r.step_started_at == "2026-01-01T12:00:00Z"
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_STEP]


def test_pause_elapsed_but_inconclusive_never_promotes() -> None:
    moved = advance(md(at_step(1, started=timedelta(hours=1))), QUIET)
    r = r_of(moved)
    assert (r.step, r.phase, r.failures) == (1, RolloutPhase.INCONCLUSIVE, 0)
    assert "minRequests 50" in r.message
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_INCONCLUSIVE]
    again = advance(md(r.wire()), QUIET)  # said once, not every interval
    assert again.events == [] and r_of(again).step == 1


def test_prometheus_unreachable_is_inconclusive() -> None:
    r = r_of(advance(md(at_step(1, started=timedelta(hours=1))), Readings(error="refused")))
    assert r.phase == RolloutPhase.INCONCLUSIVE and r.failures == 0 and r.step == 1


def test_last_step_passing_starts_promotion() -> None:
    moved = advance(md(at_step(1, started=timedelta(seconds=31))))
    r = r_of(moved)
    assert r.step == 2 and r.stable_version == "2" and r.stable_model == r.candidate
    assert plan.active(r)  # the canary stays until the stable rolled out
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_PROMOTING]


def test_promotion_completes_once_the_stable_runs_the_candidate() -> None:
    promoting = at_step(2, stableModel=V2, stableVersion="2")
    assert r_of(advance(md(promoting), stable_on_candidate=False)).phase == RolloutPhase.PROGRESSING
    moved = advance(md(promoting), stable_on_candidate=True)
    r = r_of(moved)
    assert r.phase == RolloutPhase.PROMOTED and r.candidate is None
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_PROMOTED]
    # The reconcile that follows keeps it promoted (the spec names the stable model now).
    assert machine.begin(md(r.wire()), previous=None, now=NOW).rollout == r


def test_failure_beyond_the_limit_aborts_naming_the_signal() -> None:
    moved = advance(md(at_step(1)), FAILING)
    r = r_of(moved)
    assert r.phase == RolloutPhase.ABORTED and r.failures == 1 and r.step == 1
    assert r.message.startswith(f"{Signal.ERROR_RATE}: ")
    assert "candidate 0.4 vs stable 0" in r.message and "threshold 0.02" in r.message
    assert [e[:2] for e in moved.events] == [("Warning", Reason.ROLLOUT_ABORTED)]
    assert not plan.active(r)


def test_failures_within_the_limit_are_tolerated() -> None:
    m = md(at_step(1))
    m.spec.rollout.analysis.failure_limit = 1  # type: ignore[union-attr]
    r = r_of(advance(m, FAILING))
    assert r.phase == RolloutPhase.PROGRESSING and r.failures == 1


def test_no_analysis_before_the_canary_is_ready() -> None:
    r = r_of(advance(md(at_step(1, started=timedelta(hours=1))), canary_ready=False))
    assert r.step == 1 and r.measurements == [] and "waiting for the canary" in r.message


def test_paused_holds_and_resume_continues() -> None:
    moved = advance(md(at_step(1, started=timedelta(hours=1)), paused=True))
    r = r_of(moved)
    assert r.phase == RolloutPhase.PAUSED and r.step == 1
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_PAUSED]
    resumed = advance(md(r.wire(), paused=False))
    assert Reason.ROLLOUT_RESUMED in [e[1] for e in resumed.events]
    assert r_of(resumed).step == 2  # pause long elapsed, measurement good: promoting


# -- user actions ----------------------------------------------------------------------------


def test_promote_action_skips_the_remaining_steps_once() -> None:
    action = {plan.ACTION_ANNOTATION: "promote/2026-01-01T11:59:00Z"}
    r = r_of(advance(md(at_step(0), annotations=action), None))
    assert r.step == 2 and r.stable_version == "2"
    assert r.handled_action == "promote/2026-01-01T11:59:00Z"
    assert machine.action(md(r.wire(), annotations=action)) is None  # acted on once


def test_abort_action() -> None:
    action = {plan.ACTION_ANNOTATION: "abort/2026-01-01T11:59:00Z"}
    r = r_of(advance(md(at_step(1), annotations=action), None))
    assert r.phase == RolloutPhase.ABORTED and r.message.startswith(Reason.USER_ABORTED)


def test_retry_restarts_an_aborted_candidate_from_step_zero() -> None:
    action = {plan.ACTION_ANNOTATION: "retry/2026-01-01T11:59:00Z"}
    aborted = at_step(1, phase="Aborted", failures=1)
    moved = advance(md(aborted, annotations=action), None)
    r = r_of(moved)
    assert (r.phase, r.step, r.failures, r.candidate_version) == (
        RolloutPhase.PROGRESSING,
        0,
        0,
        "2",
    )
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_RETRIED]


def test_an_aborted_rollout_does_nothing_without_an_action() -> None:
    m = md(at_step(1, phase="Aborted"))
    assert advance(m, FAILING).rollout == m.status.rollout


def test_unknown_action_is_a_warning_recorded_once() -> None:
    action = {plan.ACTION_ANNOTATION: "explode/now"}
    moved = advance(md(at_step(1), annotations=action), None)
    assert r_of(moved).handled_action == "explode/now" and r_of(moved).step == 1
    assert moved.events[0][0] == "Warning" and "unknown rollout action" in moved.events[0][2]


def test_zero_replicas_is_judged_once() -> None:
    m = md(at_step(1))
    m.spec.replicas = 0
    moved = advance(m)
    assert r_of(moved).phase == RolloutPhase.INCONCLUSIVE
    assert [e[1] for e in moved.events] == [Reason.ROLLOUT_UNMEETABLE]
    m.status.rollout = moved.rollout
    assert advance(m).events == []


def test_weights_one_replica_cannot_meet_are_a_warning_once_at_the_start() -> None:
    settled = machine.settled(ModelSource.model_validate(V1), 2).wire()
    m = md(settled)
    m.spec.replicas = 1
    moved = machine.begin(m, previous=None, now=NOW)
    assert [e[:2] for e in moved.events] == [
        ("Normal", Reason.ROLLOUT_STARTED),
        ("Warning", Reason.ROLLOUT_UNMEETABLE),
    ]
    assert "weight 10% gives 50%" in moved.events[1][2]
    m.status.rollout = moved.rollout
    assert machine.begin(m, previous=None, now=NOW).events == []  # once, not per reconcile
    assert machine.unmeetable(md()) is None  # 10% of 4 is 1 pod: rounding, not a warning
    m.spec.replicas = 4
    m.spec.rollout.steps[1].weight = 100  # type: ignore[union-attr]
    assert "weight 100% gives 80%" in str(machine.unmeetable(m))


def test_exposure_says_the_split_in_fact() -> None:
    r = r_of(machine.begin(md(at_step(0), model=V3), previous=None, now=NOW))
    assert (r.shadow_percent, r.canary_weight) == (100, 0)
    moved = advance(md(at_step(0, started=timedelta(seconds=31))))
    assert r_of(moved).canary_weight == 25  # ceil(10% of 4) = 1 of 4 pods
