"""The remediation override as the child builders consume it: resources, model, pool and a
restart stamp over the spec, each ended by a spec change; phase Degraded while rolled back."""

from __future__ import annotations

from typing import Any

from heal_kit import md
from onnxops import build, override, status
from onnxops.api import ModelDeployment
from onnxops.override import RESTARTED_AT, active, applied
from onnxops.pools import default_pools

EDGE, CLOUD = default_pools()["edge"], default_pools()["cloud"]
IMAGE = "img"
BIGGER = {"requests": {"memory": "228Mi"}, "limits": {"memory": "384Mi"}}
V1 = {"uri": "https://h/iris/1/model.onnx", "version": "1"}
V2 = {"uri": "https://h/iris/2/model.onnx", "version": "2"}


def container(m: ModelDeployment) -> dict[str, Any]:
    dep = build.build_deployment(applied(m), EDGE, image=IMAGE)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dict(c)


def env(m: ModelDeployment) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(m)["env"]}


def test_no_override_builds_the_spec() -> None:
    assert applied(md()) == md()
    assert container(md())["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }


def test_resized_resources_reach_the_template() -> None:
    m = md(status={"override": {"resources": BIGGER, "resourcesBasis": {}}})
    assert container(m)["resources"] == {
        "requests": {"cpu": "100m", "memory": "228Mi"},
        "limits": {"memory": "384Mi"},
    }


def test_resized_in_place_waits_for_the_next_spec_rollout() -> None:
    ov = {"resources": BIGGER, "resourcesBasis": {}, "inPlaceGeneration": 3}
    same = md(status={"override": ov}, generation=3)
    assert container(same)["resources"]["limits"] == {"memory": "256Mi"}  # no rollout now
    later = md(status={"override": ov}, generation=4)  # say, a replicas change
    assert container(later)["resources"]["limits"] == {"memory": "384Mi"}  # kept by the rollout


def test_a_spec_resources_change_ends_the_resize() -> None:
    spec = {"resources": {"limits": {"memory": "300Mi"}}}
    m = md(spec=spec, status={"override": {"resources": BIGGER, "resourcesBasis": {}}})
    assert active(m).resources is None
    assert container(m)["resources"]["limits"] == {"memory": "300Mi"}


def test_rollback_serves_the_earlier_model_until_the_spec_changes() -> None:
    rolled = {"override": {"model": V1, "modelReplaces": V2}}
    assert env(md(status=rolled))["ONNXOPS_MODEL_URI"] == V1["uri"]
    assert env(md(status=rolled))["ONNXOPS_MODEL_VERSION"] == "1"
    newer = md(status=rolled, version="3")
    assert env(newer)["ONNXOPS_MODEL_URI"] == "https://h/iris/3/model.onnx"


def test_failover_pool_replaces_the_target() -> None:
    m = md(status={"override": {"pool": "cloud", "poolSince": "t"}})
    target = applied(m).spec.target
    assert (target.pool, target.fallback_pool) == ("cloud", None)
    moved = md(spec={"target": {"pool": "cloud"}}, status={"override": {"pool": "edge"}})
    assert active(moved).pool is None  # edge is no longer a pool the spec allows


def test_a_rollout_restart_stamps_the_pod_template() -> None:
    m = md(status={"override": {"restartedAt": "2026-11-29T12:00:00Z"}})
    stamp = override.template_annotations(m)
    annotations = build.build_deployment(applied(m), EDGE, image=IMAGE, annotations=stamp)["spec"][
        "template"
    ]["metadata"]["annotations"]
    assert annotations[RESTARTED_AT] == "2026-11-29T12:00:00Z"
    plain = build.build_deployment(md(), EDGE, image=IMAGE)["spec"]["template"]["metadata"]
    assert RESTARTED_AT not in plain["annotations"]


def rolled_out() -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 1,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 3,
        },
    }


def healthy(m: ModelDeployment) -> dict[str, Any]:
    return status.healthy_status(
        applied(m),
        pool="edge",
        variant="default",
        endpoint="e",
        deployment=rolled_out(),
        placement="p",
        now="t",
    )


def test_rolled_back_is_degraded_with_a_condition_naming_the_versions() -> None:
    new = healthy(md(status={"override": {"model": V1, "modelReplaces": V2}}))
    assert new["phase"] == "Degraded"
    (cond,) = [c for c in new["conditions"] if c["type"] == status.ROLLED_BACK]
    assert cond["status"] == "True"
    assert "version 1 instead of 2" in cond["message"]
    assert new["model"] == "iris:1"  # what is served


def test_a_new_spec_model_ends_degraded() -> None:
    was = md(status={"override": {"model": V1, "modelReplaces": V2}})
    conditions = healthy(was)["conditions"]
    fixed = md(
        version="3",
        status={"override": {"model": V1, "modelReplaces": V2}, "conditions": conditions},
    )
    new = healthy(fixed)
    assert new["phase"] == "Ready"
    assert all(c["type"] != status.ROLLED_BACK for c in new["conditions"])


def test_the_next_resize_starts_from_what_the_pods_serve() -> None:
    # Resized in place at this generation: the template keeps the spec's values, the pods (and
    # so the next resize, up or down) have the override's.
    ov = {"resources": BIGGER, "resourcesBasis": {}, "inPlaceGeneration": 3}
    m = md(status={"override": ov}, generation=3)
    assert override.serving(m).resources.limits.memory == "384Mi"
    assert override.serving(md()).resources == md().spec.resources  # no override: the spec
    ended = md(spec={"resources": {"limits": {"memory": "300Mi"}}}, status={"override": ov})
    assert override.serving(ended).resources.limits.memory == "300Mi"
