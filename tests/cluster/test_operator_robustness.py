"""What must not hang, loop or fail for the wrong reason: large user annotations, a corrupt
kopf bookkeeping annotation, a namespace being deleted, a running model briefly short of room.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, serving_kubelet, wait_for

pytestmark = pytest.mark.cluster

DIFF_BASE = "onnxops.io/last-handled-configuration"


def ready(kube: Kube, name: str, generation: int = 1) -> bool:
    status = kube.status(name)
    return status.get("phase") == "Ready" and status.get("observedGeneration") == generation


def test_large_annotations_never_make_a_resource_undeletable(
    kube: Kube, operator: Operator
) -> None:
    body = model_deployment("annotated", target={"pool": "cloud"})
    # ~85 KB of the user's own: kubectl keeps a copy in last-applied-configuration, and a
    # diff-base copying all annotations would push the object past the 256 KiB limit.
    body["metadata"]["annotations"] = {"example.com/notes": "n" * 85_000}
    assert kube.apply(body).returncode == 0
    wait_for(lambda: ready(kube, "annotated"), "annotated Ready", 60)
    # kopf writes its diff-base after the handler (which wrote Ready) returns.
    obj = wait_for(
        lambda: (
            (o := kube.get("mdep", "annotated")) and DIFF_BASE in o["metadata"]["annotations"] and o
        ),
        "kopf's diff-base annotation",
    )
    diff_base = json.loads(obj["metadata"]["annotations"][DIFF_BASE])
    assert set(diff_base) == {"spec"}  # only what the operator acts on
    result = kube.run("delete", "mdep", "annotated", "--timeout=60s", check=False)
    assert result.returncode == 0, result.stderr
    assert kube.get("mdep", "annotated") is None


def test_corrupt_bookkeeping_is_treated_as_absent_and_said(kube: Kube, operator: Operator) -> None:
    assert kube.apply(model_deployment("scribbled", target={"pool": "cloud"})).returncode == 0
    wait_for(lambda: ready(kube, "scribbled"), "scribbled Ready", 60)
    kube.run("annotate", "--overwrite", "mdep", "scribbled", f"{DIFF_BASE}={{not json")
    changed = model_deployment("scribbled", target={"pool": "cloud"}, replicas=2)
    assert kube.apply(changed).returncode == 0
    wait_for(lambda: ready(kube, "scribbled", generation=2), "the change reconciled", 60)
    assert kube.status("scribbled")["readyReplicas"] == 2
    reasons = wait_for(
        lambda: {e["reason"] for e in kube.events("scribbled") if e["type"] == "Warning"},
        "a Warning about the annotation",
    )
    assert reasons == {"BookkeepingReset"}


@pytest.fixture
def doomed_namespace(kube: Kube, tmp_path: Path) -> Iterator[Kube]:
    doomed = Kube(kube.cluster, f"doomed-{uuid.uuid4().hex[:5]}")
    kube.cluster.run_kubectl("create", "namespace", doomed.namespace)
    with serving_kubelet(kube.cluster, doomed.namespace, tmp_path):
        yield doomed


def test_deleting_a_namespace_is_not_a_failure(doomed_namespace: Kube, operator: Operator) -> None:
    doomed = doomed_namespace
    names = [f"md-{i}" for i in range(4)]
    for i, name in enumerate(names):
        body = model_deployment(name, target={"pool": ("cloud", "edge")[i % 2]}, replicas=2)
        assert doomed.apply(body).returncode == 0
    for name in names:
        wait_for(lambda n=name: ready(doomed, n), f"{name} Ready", 60)
    doomed.cluster.run_kubectl("delete", "namespace", doomed.namespace, "--wait=false")
    phases: set[str] = set()

    def gone() -> bool:
        result = doomed.run("get", "mdep", "-o", "json", check=False)
        if result.returncode != 0:
            return True  # the namespace itself is gone
        items = json.loads(result.stdout)["items"]
        phases.update(i.get("status", {}).get("phase", "") for i in items)
        return not items

    wait_for(gone, "the namespace's ModelDeployments gone", 120)
    assert "Failed" not in phases, phases
    log = operator.log_path.read_text().splitlines()
    refused = [line for line in log if doomed.namespace in line and "Forbidden" in line]
    assert not refused, refused[:3]


@pytest.fixture
def cordoned_edge(kube: Kube) -> Iterator[list[str]]:
    nodes = [n["metadata"]["name"] for n in kube.items("nodes", "onnxops.io/pool=edge")]
    assert nodes
    try:
        yield nodes
    finally:
        for node in nodes:
            kube.cluster.run_kubectl("uncordon", node, check=False)


def test_a_running_model_short_of_room_is_kept_not_failed(
    kube: Kube, operator: Operator, cordoned_edge: list[str]
) -> None:
    assert kube.apply(model_deployment("roomy", target={"pool": "edge"})).returncode == 0
    wait_for(lambda: ready(kube, "roomy"), "roomy Ready", 60)
    for node in cordoned_edge:  # as a node going NotReady for a while: no room to schedule
        kube.cluster.run_kubectl("cordon", node)
    assert (
        kube.apply(model_deployment("roomy", target={"pool": "edge"}, replicas=2)).returncode == 0
    )

    def placed(reason: str) -> dict[str, Any] | None:
        status = kube.status("roomy")
        condition = next((c for c in status.get("conditions", []) if c["type"] == "Placed"), {})
        return status if condition.get("reason") == reason else None

    status = wait_for(lambda: placed("CapacityShort"), "Placed/CapacityShort", 90)
    assert status["phase"] == "Progressing" and status["readyReplicas"] == 1
    assert status["pool"] == "edge"
    warnings = [e["reason"] for e in kube.events("roomy") if e["type"] == "Warning"]
    assert warnings == ["CapacityShort"]
    resynced = f"[{kube.namespace}/roomy] Timer 'resync_model' succeeded"
    seen = operator.log_path.read_text().count(resynced)
    wait_for(  # each resync re-judges the supply: still kept, still one Warning
        lambda: operator.log_path.read_text().count(resynced) >= seen + 2, "two more resyncs", 60
    )
    assert kube.status("roomy")["phase"] != "Failed"
    assert [e["reason"] for e in kube.events("roomy") if e["type"] == "Warning"] == warnings
    for node in cordoned_edge:
        kube.cluster.run_kubectl("uncordon", node)
    wait_for(lambda: ready(kube, "roomy", generation=2), "roomy Ready with 2 replicas", 60)
    wait_for(lambda: placed("PoolChosen"), "Placed/PoolChosen again after the resync", 90)
