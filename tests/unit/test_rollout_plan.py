"""What a rollout asks of the children: the replica split, the stable model kept, the canary
built by the same builder with its track labels, the Service leaving a shadow canary out."""

from __future__ import annotations

from typing import Any

import pytest
from onnxops import build, override
from onnxops.api import ModelDeployment
from onnxops.pools import default_pools
from onnxops.rollout import plan
from support.deployments import model_deployment

CLOUD = default_pools()["cloud"]
V1 = {"uri": "https://h/iris/1/model.onnx", "version": "1"}
V2 = {"uri": "https://h/iris/2/model.onnx", "version": "2"}
STEPS = {"steps": [{"shadow": 100}, {"weight": 10}, {"weight": 50}]}


def md(step: int | None = None, *, phase: str = "Progressing", **spec: Any) -> ModelDeployment:
    status: dict[str, Any] = {}
    if step is not None:
        status["rollout"] = {
            "phase": phase,
            "step": step,
            "steps": 3,
            "stableModel": V1,
            "candidate": V2,
            "stableVersion": "1",
            "candidateVersion": "2",
        }
    body = model_deployment("iris", namespace="ml", model=V2, rollout=STEPS, status=status, **spec)
    return ModelDeployment.model_validate(body)


@pytest.mark.parametrize(
    ("weight", "replicas", "expected"),
    [(10, 10, (9, 1)), (50, 4, (2, 2)), (10, 1, (1, 1)), (100, 4, (1, 4)), (34, 3, (1, 2))],
)
def test_split_never_leaves_fewer_than_one_stable(
    weight: int, replicas: int, expected: tuple[int, int]
) -> None:
    assert plan.split(weight, replicas) == expected


def test_one_replica_gives_fifty_percent() -> None:
    assert plan.effective_weight(10, 1) == 50
    assert plan.effective_weight(10, 10) == 10


def test_same_model_compares_what_names_a_model() -> None:
    a = md().spec.model
    assert plan.same_model(a, a.model_copy(update={"name": "other"}))
    assert not plan.same_model(a, a.model_copy(update={"version": "3"}))
    assert not plan.same_model(a, a.model_copy(update={"sha256": "0" * 64}))


def test_no_rollout_status_is_todays_behaviour() -> None:
    m = md(replicas=4)
    shape = override.rollout_shape(m, replicas=4)
    assert shape.canary_model is None and shape.stable_model.version == "2"
    assert override.applied(m).spec.model.version == "2"


def test_shadow_step_runs_a_canary_that_serves_nobody() -> None:
    m = md(0, replicas=4)
    shape = override.rollout_shape(m, replicas=4)
    assert (shape.canary_replicas, shape.stable_replicas, shape.shadow_percent) == (4, None, 100)
    assert shape.shadowing
    assert override.applied(m).spec.model.version == "1"  # the stable stays on v1
    canary = override.canary(m, shape)
    assert canary is not None and canary.spec.model.version == "2"


def test_weight_step_splits_replicas() -> None:
    m = md(2, replicas=4)
    shape = override.rollout_shape(m, replicas=4)
    assert (shape.stable_replicas, shape.canary_replicas, shape.weight) == (2, 2, 50)
    assert not shape.shadowing


def test_autoscaled_stable_keeps_its_count() -> None:
    m = md(1, autoscaling={"minReplicas": 2, "maxReplicas": 10})
    shape = override.rollout_shape(m, replicas=10)
    assert shape.stable_replicas is None and shape.canary_replicas == 1


def test_promoting_rolls_the_stable_and_keeps_the_canary() -> None:
    m = md(3, replicas=4)
    r = m.status.rollout
    assert r is not None
    m.status.rollout = r.model_copy(update={"stable_model": r.candidate})
    shape = override.rollout_shape(m, replicas=4)
    assert shape.stable_model.version == "2" and shape.stable_replicas is None
    assert shape.canary_replicas == 2  # the last weight's, until the stable rolled out


@pytest.mark.parametrize("phase", ["Aborted", "Promoted"])
def test_no_canary_once_settled(phase: str) -> None:
    m = md(1, phase=phase, replicas=4)
    shape = override.rollout_shape(m, replicas=4)
    assert shape.canary_model is None and shape.stable_model.version == "1"


def test_zero_replicas_runs_no_canary() -> None:
    assert override.rollout_shape(md(1, replicas=0), replicas=0).canary_model is None


def _children(m: ModelDeployment, replicas: int) -> list[dict[str, Any]]:
    shape = override.rollout_shape(m, replicas=replicas)
    stable = build.Track(plan.STABLE, replicas=shape.stable_replicas)
    canary_md = override.canary(m, shape)
    canary = None
    if canary_md is not None:
        track = build.Track(plan.CANARY, shape.canary_replicas, serving=shape.canary_serves)
        canary = build.Canary(canary_md, track)
    applied, _ = build.desired_children(
        override.applied(m), CLOUD, image="img", track=stable, canary=canary
    )
    return applied


def _env(dep: dict[str, Any]) -> dict[str, str]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in c["env"]}


def test_shadow_children() -> None:
    objs = _children(md(0, replicas=4), 4)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert kinds == [
        ("Deployment", "iris"),
        ("Service", "iris"),
        ("PodDisruptionBudget", "iris"),
        ("Deployment", "iris-canary"),
        ("Service", "iris-canary"),
    ]
    stable, service, pdb, canary, headless = objs
    assert stable["spec"]["selector"] == {"matchLabels": {build.MD_LABEL: "iris"}}  # immutable
    assert stable["spec"]["template"]["metadata"]["labels"][plan.TRACK_LABEL] == "stable"
    assert _env(stable)["ONNXOPS_MODEL_VERSION"] == "1"
    assert _env(stable)[plan.MIRROR_ENV] == "/etc/onnxops/mirror/mirror.json"
    volumes = {v["name"]: v for v in stable["spec"]["template"]["spec"]["volumes"]}
    assert volumes["mirror"]["configMap"] == {"name": "iris-mirror", "optional": True}
    assert canary["spec"]["replicas"] == 4 and _env(canary)["ONNXOPS_MODEL_VERSION"] == "2"
    assert plan.MIRROR_ENV not in _env(canary)
    labels = canary["spec"]["template"]["metadata"]["labels"]
    assert labels[plan.TRACK_LABEL] == "canary" and labels[plan.SERVING_LABEL] == "false"
    assert canary["spec"]["selector"]["matchLabels"][plan.TRACK_LABEL] == "canary"
    # The Service leaves the shadow canary out; the PDB covers both tracks.
    assert service["spec"]["selector"] == {build.MD_LABEL: "iris", plan.SERVING_LABEL: "true"}
    assert pdb["spec"]["selector"] == {"matchLabels": {build.MD_LABEL: "iris"}}
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == {build.MD_LABEL: "iris", plan.TRACK_LABEL: "canary"}


def test_weight_children_serve_both_tracks() -> None:
    stable, service, _, canary, _ = _children(md(1, replicas=4), 4)
    assert (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (3, 1)
    assert service["spec"]["selector"] == {build.MD_LABEL: "iris"}
    assert canary["spec"]["template"]["metadata"]["labels"][plan.SERVING_LABEL] == "true"


def test_without_rollout_the_template_is_unchanged() -> None:
    plain = ModelDeployment.model_validate(model_deployment("iris", namespace="ml", model=V2))
    (dep, *_) = build.desired_children(plain, CLOUD, image="img")[0]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert plan.TRACK_LABEL not in labels and plan.SERVING_LABEL not in labels
    assert plan.MIRROR_ENV not in _env(dep)


@pytest.mark.parametrize(
    ("step", "phase", "narrowed"),
    [
        (0, "Progressing", True),  # a shadow: the canary's pods serve nobody
        (1, "Progressing", False),  # a weight step: they serve their share
        (0, "Aborted", True),  # aborted in the shadow step: its pods are still going away
        (1, "Aborted", False),  # aborted at a weight step: they were serving anyway
        (None, "Promoted", False),
    ],
)
def test_the_service_leaves_a_shadow_canarys_pods_out_until_they_are_gone(
    step: int | None, phase: str, narrowed: bool
) -> None:
    from onnxops import reconcile

    m = md(step, phase=phase, replicas=4)
    shape = override.rollout_shape(m, replicas=4)
    canary_md = override.canary(m, shape)
    canary = None
    if canary_md is not None:
        track = build.Track(plan.CANARY, shape.canary_replicas, serving=shape.canary_serves)
        canary = build.Canary(canary_md, track)
    assert reconcile._serving_only(m, canary) is narrowed
