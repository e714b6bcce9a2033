"""Status computation: phases from the Deployment's rollout, conditions per API conventions."""

from __future__ import annotations

from typing import Any

from onnxops import status
from onnxops.api import ModelDeployment
from support.deployments import model_deployment


def md(conditions: list[dict[str, Any]] | None = None) -> ModelDeployment:
    body = model_deployment(
        "iris",
        namespace="ml",
        metadata={"generation": 4},
        status={"conditions": conditions or []},
        model={"uri": "https://h/m.onnx", "name": "iris", "version": "3"},
    )
    return ModelDeployment.model_validate(body)


def deployment(wanted: int, ready: int, updated: int, observed: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": wanted},
        "status": {
            "observedGeneration": observed,
            "replicas": updated,
            "updatedReplicas": updated,
            "readyReplicas": ready,
        },
    }


# healthy_status's arguments besides the model and its Deployment.
PLACED_ON_EDGE: dict[str, Any] = {
    "pool": "edge",
    "variant": "int8",
    "endpoint": "http://e",
    "placement": "p",
    "now": "t",
}


def test_rollout() -> None:
    assert status.rollout(None) == (0, 0, False)
    assert status.rollout(deployment(2, 2, 2)) == (2, 2, True)
    assert status.rollout(deployment(2, 1, 2)) == (2, 1, False)
    assert status.rollout(deployment(2, 2, 2, observed=1)) == (2, 2, False)


def test_set_condition_moves_transition_time_only_on_flip() -> None:
    first = status.set_condition(
        [], type_="Ready", status=False, reason="A", message="", generation=1, now="t1"
    )
    same = status.set_condition(
        first, type_="Ready", status=False, reason="B", message="m", generation=2, now="t2"
    )
    flipped = status.set_condition(
        same, type_="Ready", status=True, reason="C", message="", generation=2, now="t3"
    )
    assert [c["lastTransitionTime"] for c in (first[0], same[0], flipped[0])] == ["t1", "t1", "t3"]
    assert same[0]["reason"] == "B" and same[0]["observedGeneration"] == 2
    assert len(flipped) == 1 and flipped[0]["status"] == "True"


def test_healthy_status_ready_and_progressing() -> None:
    ready = status.healthy_status(md(), deployment=deployment(2, 2, 2), **PLACED_ON_EDGE)
    assert ready["phase"] == "Ready" and ready["ready"] == "2/2"
    assert ready["observedGeneration"] == 4 and ready["model"] == "iris:3"
    assert ready["selector"] == "onnxops.io/model-deployment=iris"  # matches the pods' labels
    assert {c["type"]: c["status"] for c in ready["conditions"]} == {
        "Placed": "True",
        "Ready": "True",
        "ModelAvailable": "True",
    }
    rolling = status.healthy_status(md(), deployment=deployment(2, 1, 2), **PLACED_ON_EDGE)
    assert rolling["phase"] == "Progressing" and rolling["readyReplicas"] == 1


def _model_available(st: dict[str, Any]) -> tuple[str, str]:
    cond = next(c for c in st["conditions"] if c["type"] == "ModelAvailable")
    return cond["status"], cond["reason"]


def test_model_available_follows_the_serving_pods() -> None:
    # No pod has loaded the model yet: not known, neither available nor failed.
    loading = status.healthy_status(md(), deployment=deployment(2, 0, 2), **PLACED_ON_EDGE)
    assert _model_available(loading) == ("Unknown", "ModelLoading")
    half = status.healthy_status(md(), deployment=deployment(2, 1, 2), **PLACED_ON_EDGE)
    assert _model_available(half) == ("Unknown", "ModelLoading")
    loaded = status.healthy_status(md(), deployment=deployment(2, 2, 2), **PLACED_ON_EDGE)
    assert _model_available(loaded) == ("True", "ModelLoaded")
    # A later rollout (scaling, a new model) with pods still serving keeps it available.
    served = md(loaded["conditions"])
    rolling = status.healthy_status(served, deployment=deployment(3, 2, 3), **PLACED_ON_EDGE)
    assert _model_available(rolling) == ("True", "ModelLoaded")
    gone = status.healthy_status(served, deployment=deployment(2, 0, 2), **PLACED_ON_EDGE)
    assert _model_available(gone) == ("Unknown", "ModelLoading")
    # The Deployment controller gave up with no pod ready: the model is not being served.
    stuck = deployment(2, 0, 2)
    stuck["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    failed = status.healthy_status(md(), deployment=stuck, **PLACED_ON_EDGE)
    assert _model_available(failed) == ("False", "ProgressDeadlineExceeded")


def test_failed_status_carries_reason_in_conditions() -> None:
    failure = status.Failure("UnknownPool", "pool 'gpu' is not configured", permanent=True)
    got = status.failed_status(md(), failure, now="t")
    assert got["selector"] == "onnxops.io/model-deployment=iris"
    assert got["phase"] == "Failed" and got["observedGeneration"] == 4
    assert {(c["type"], c["status"], c["reason"]) for c in got["conditions"]} == {
        ("Ready", "False", "UnknownPool"),
        ("Placed", "False", "UnknownPool"),
        ("Stalled", "True", "UnknownPool"),  # kstatus: Failed, not InProgress
    }
    model_fail = status.failed_status(
        md(), status.Failure("ModelUnreachable", "x", permanent=False), now="t"
    )
    assert {(c["type"], c["status"], c["reason"]) for c in model_fail["conditions"]} == {
        ("Ready", "False", "ModelUnreachable"),
        ("ModelAvailable", "False", "ModelUnreachable"),
        ("Reconciling", "True", "ModelUnreachable"),  # retried by itself: kstatus InProgress
    }
    assert status.differs(got, {"phase": "Failed"}) is False
    assert status.differs(got, {"phase": "Ready"}) is True


def test_replicas_beside_autoscaling_are_reported_once_per_generation() -> None:
    def scaled(replicas: int, observed: int | None) -> ModelDeployment:
        return ModelDeployment.model_validate(
            {
                "metadata": {"name": "iris", "namespace": "ml", "generation": 4},
                "spec": {
                    "model": {"uri": "https://h/m.onnx"},
                    "replicas": replicas,
                    "autoscaling": {"minReplicas": 2, "maxReplicas": 6},
                },
                "status": {"observedGeneration": observed},
            }
        )

    message = status.ignored_replicas(scaled(5, observed=3))
    assert message is not None
    assert "spec.replicas=5 is ignored" in message and "2..6" in message
    assert status.ignored_replicas(scaled(5, observed=4)) is None  # said for generation 4
    assert status.ignored_replicas(scaled(1, observed=3)) is None  # the default: unset
    assert status.ignored_replicas(md()) is None  # no autoscaling: replicas count


def _kstatus_pair(got: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (c["type"], c["status"], c["reason"])
        for c in got["conditions"]
        if c["type"] in ("Reconciling", "Stalled")
    }


def test_an_action_in_flight_reads_reconciling_until_it_ends() -> None:
    """Heal's Remediating=True makes the reconcile path say Reconciling=True (kstatus:
    InProgress), and only while it lasts; a rollout's own Reconciling keeps its reason."""
    busy = {"type": "Remediating", "status": "True", "reason": "ActionInFlight", "message": "m"}
    ready = status.healthy_status(md([busy]), deployment=deployment(2, 2, 2), **PLACED_ON_EDGE)
    assert _kstatus_pair(ready) == {("Reconciling", "True", "ActionInFlight")}
    assert next(c for c in ready["conditions"] if c["type"] == "Reconciling")["message"] == "m"
    idle = {**busy, "status": "False", "reason": "Idle"}
    ended = [idle if c["type"] == "Remediating" else c for c in ready["conditions"]]
    after = status.healthy_status(md(ended), deployment=deployment(2, 2, 2), **PLACED_ON_EDGE)
    assert _kstatus_pair(after) == set()
    rolling = status.healthy_status(md([busy]), deployment=deployment(2, 1, 2), **PLACED_ON_EDGE)
    assert _kstatus_pair(rolling) == {("Reconciling", "True", "RollingOut")}


def _rolling(phase: str, step: int = 0, message: str = "step 1/2") -> ModelDeployment:
    """iris with a two-step spec.rollout, and status.rollout in `phase` at `step`."""
    body = model_deployment(
        "iris",
        namespace="ml",
        metadata={"generation": 4},
        model={"uri": "https://h/m4.onnx", "version": "4"},
        rollout={"steps": [{"weight": 10, "pauseSeconds": 5}, {"weight": 50, "pauseSeconds": 5}]},
        status={
            "rollout": {
                "phase": phase,
                "step": step,
                "steps": 2,
                "stableModel": {"uri": "https://h/m3.onnx", "version": "3"},
                "stableVersion": "3",
                "candidate": {"uri": "https://h/m4.onnx", "version": "4"},
                "candidateVersion": "4",
                "message": message,
            }
        },
    )
    return ModelDeployment.model_validate(body)


def test_a_rollout_in_progress_reads_reconciling_and_an_aborted_one_stalled() -> None:
    """kstatus: InProgress while a canary runs (the step in the message, paused said), and
    while promotion rolls the stable pods; Failed once aborted, naming the signal that
    aborted it; Current once promoted. Every case has its stable Deployment rolled out."""
    done = deployment(2, 2, 2)
    running = status.healthy_status(_rolling("Progressing", 1), deployment=done, **PLACED_ON_EDGE)
    assert running["phase"] == "Ready"
    assert _kstatus_pair(running) == {("Reconciling", "True", "RolloutInProgress")}
    said = next(c for c in running["conditions"] if c["type"] == "Reconciling")["message"]
    assert said == "rolling out version 4 (stable 3): step 2/2"
    paused = status.healthy_status(_rolling("Paused"), deployment=done, **PLACED_ON_EDGE)
    assert next(c for c in paused["conditions"] if c["type"] == "Reconciling")["message"].endswith(
        "step 1/2, paused"
    )
    promoting = status.healthy_status(_rolling("Progressing", 2), deployment=done, **PLACED_ON_EDGE)
    assert (
        "promoting"
        in next(c for c in promoting["conditions"] if c["type"] == "Reconciling")["message"]
    )
    aborted = _rolling("Aborted", 1, message="AccuracyDrop: candidate 0.41 vs stable 0.97")
    stalled = status.healthy_status(aborted, deployment=done, **PLACED_ON_EDGE)
    assert stalled["phase"] == "Degraded"
    assert _kstatus_pair(stalled) == {("Stalled", "True", "AccuracyDrop")}
    text = next(c for c in stalled["conditions"] if c["type"] == "Stalled")["message"]
    assert text == "version 4 not rolled out: candidate 0.41 vs stable 0.97"
    promoted = _rolling("Promoted", 2).model_copy()
    st = promoted.status.model_copy(
        update={"rollout": promoted.status.rollout.model_copy(update={"candidate": None})}
    )
    after = status.healthy_status(
        promoted.model_copy(update={"status": st}), deployment=done, **PLACED_ON_EDGE
    )
    assert after["phase"] == "Ready" and _kstatus_pair(after) == set()
