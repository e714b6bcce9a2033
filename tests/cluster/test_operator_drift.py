"""Drift: children edited or deleted behind the operator's back are restored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def drifty(kube: Kube, operator: Operator) -> str:
    spec = model_deployment("drifty", target={"pool": "cloud"}, replicas=2)
    assert kube.apply(spec).returncode == 0
    wait_for(lambda: kube.status("drifty").get("phase") == "Ready", "drifty Ready", 60)
    return "drifty"


def uid(kube: Kube, kind: str, name: str) -> str | None:
    obj = kube.get(kind, name)
    return obj["metadata"]["uid"] if obj else None


@pytest.mark.parametrize("kind", ["deployment", "service", "pdb"])
def test_deleted_child_is_recreated(kube: Kube, drifty: str, kind: str) -> None:
    old = uid(kube, kind, drifty)
    assert old is not None
    kube.run("delete", kind, drifty, "--wait=false")
    new = wait_for(
        lambda: (u := uid(kube, kind, drifty)) not in (None, old) and u, f"{kind} recreated"
    )
    assert new != old
    # The child exists as soon as the apply returns, but the handler still applies the other
    # children and writes status, and kopf posts its Events afterwards from a queue: reading
    # them the moment the child reappears was early (the flake on a busy machine).
    title = {"deployment": "Deployment", "service": "Service", "pdb": "PodDisruptionBudget"}[kind]

    def restored() -> list[dict[str, Any]]:
        return [
            e
            for e in kube.events(drifty)
            if e["reason"] == "DriftRestored" and f" {title} {drifty}" in e["message"]
        ]

    wait_for(restored, f"a DriftRestored Event for the {kind}")
    # ...and the restoration was not (also) reported as a creation.
    created = [e for e in kube.events(drifty) if e["reason"] == "Created" and title in e["message"]]
    assert sum(e.get("count", 1) for e in created) == 1, created


def test_edited_deployment_is_restored(kube: Kube, drifty: str) -> None:
    kube.run("set", "image", f"deployment/{drifty}", "server=evil/image:latest")
    kube.run("scale", f"deployment/{drifty}", "--replicas=5")

    def restored() -> bool:
        dep = kube.get("deployment", drifty)
        assert dep is not None
        container = dep["spec"]["template"]["spec"]["containers"][0]
        return "onnxops-serving" in container["image"] and dep["spec"]["replicas"] == 2

    wait_for(restored, "image and replicas restored")
    wait_for(lambda: kube.status(drifty).get("phase") == "Ready", "Ready again", 60)


def test_edited_service_is_restored_by_resync(kube: Kube, drifty: str) -> None:
    patch = {"spec": {"selector": {"onnxops.io/model-deployment": "someone-else"}}}
    kube.run("patch", "service", drifty, "--type=merge", "-p", json.dumps(patch))

    def restored() -> bool:
        svc = kube.get("service", drifty)
        return svc is not None and svc["spec"]["selector"] == {
            "onnxops.io/model-deployment": drifty
        }

    wait_for(restored, "service selector restored by the resync timer")


def test_no_duplicate_children(kube: Kube, drifty: str) -> None:
    for kind in ("deployments", "services", "poddisruptionbudgets"):
        items = kube.items(kind, f"onnxops.io/model-deployment={drifty}")
        assert [i["metadata"]["name"] for i in items] == [drifty], kind
