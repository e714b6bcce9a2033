"""The operator against the real control plane: samples land on their pools, status follows
readiness, spec changes roll out, optional children come and go, deletion cascades."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, wait_for

pytestmark = pytest.mark.cluster

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"


def ready(kube: Kube, name: str, replicas: int | None = None) -> dict[str, Any] | None:
    status = kube.status(name)
    if status.get("phase") != "Ready":
        return None
    if replicas is not None and status.get("readyReplicas") != replicas:
        return None
    return status


def absent(kube: Kube, kind: str, name: str) -> bool:
    return kube.get(kind, name) is None


def nodes_by_name(kube: Kube) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in kube.items("nodes")}


def pods_of(kube: Kube, name: str) -> list[dict[str, Any]]:
    return kube.items("pods", f"onnxops.io/model-deployment={name}")


def test_samples_land_on_their_pools_and_become_ready(kube: Kube, operator: Operator) -> None:
    for sample in ("cloud.yaml", "edge.yaml"):
        result = kube.run("apply", "-f", str(SAMPLES / sample))
        assert "created" in result.stdout
    for name, pool, variant in (
        ("iris-cloud", "cloud", "default"),
        ("iris-edge", "edge", "default"),
    ):
        status = wait_for(partial(ready, kube, name), f"{name} Ready", timeout_s=60)
        assert status["pool"] == pool and status["variant"] == variant
        assert status["endpoint"] == f"http://{name}.{kube.namespace}.svc.cluster.local:8080"
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["status"] == "True"
        assert conditions["Ready"]["observedGeneration"] == status["observedGeneration"]
        assert conditions["ModelAvailable"]["status"] == "True"  # the ready pods loaded it
        nodes = nodes_by_name(kube)
        pods = pods_of(kube, name)
        assert pods, f"{name} has no pods"
        for pod in pods:
            node = nodes[pod["spec"]["nodeName"]]
            assert node["metadata"]["labels"]["onnxops.io/pool"] == pool
            assert pod["spec"]["containers"][0]["name"] == "server"
            assert pod["status"]["phase"] == "Running"
    # The cloud sample autoscales from 2: the HPA and a disruption budget exist.
    assert wait_for(lambda: ready(kube, "iris-cloud", replicas=2), "iris-cloud 2/2 ready")
    assert kube.get("hpa", "iris-cloud") is not None
    assert kube.get("pdb", "iris-cloud") is not None
    assert kube.get("pdb", "iris-edge") is None  # one replica: no budget
    printed = kube.run("get", "mdep").stdout.splitlines()
    assert printed[0].split() == ["NAME", "POOL", "PHASE", "READY", "MODEL", "AGE"]
    assert any(
        line.split()[:5] == ["iris-edge", "edge", "Ready", "1/1", "iris:1"] for line in printed
    )
    wide = kube.run("get", "mdep", "iris-edge", "-o", "wide").stdout.splitlines()
    header, row = wide[0].split(), wide[1].split()
    assert header[6:] == ["REASON", "VARIANT", "ENDPOINT", "ROLLOUT", "STEP", "CANARY", "CANDIDATE"]
    assert row[6:9] == [
        "RolloutComplete",
        "default",
        f"http://iris-edge.{kube.namespace}.svc.cluster.local:8080",
    ]
    assert row[9:] == []  # no spec.rollout: the rollout's columns print blank


def test_children_are_owned_and_events_recorded(kube: Kube, operator: Operator) -> None:
    wait_for(lambda: ready(kube, "iris-edge"), "iris-edge Ready")
    md = kube.get("mdep", "iris-edge")
    assert md is not None
    for kind in ("deployment", "service"):
        child = kube.get(kind, "iris-edge")
        assert child is not None
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "ModelDeployment",
            md["metadata"]["uid"],
            True,
        )
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "onnxops"
    # Resyncs re-apply the children; as nothing changed, they post no Event (the revision
    # annotation the Deployment controller adds is not our change).
    # Count this resource's own resyncs: objects left by other modules resync too.
    line = f"[{kube.namespace}/iris-edge] Timer 'resync_model' succeeded"
    resyncs = operator.log_path.read_text().count(line)
    wait_for(
        lambda: operator.log_path.read_text().count(line) >= resyncs + 2,
        "two resyncs of iris-edge",
    )
    reasons = [e["reason"] for e in kube.events("iris-edge")]
    assert {"PoolChosen", "Created"} <= set(reasons)
    assert "Updated" not in reasons and "DriftRestored" not in reasons
    assert reasons.count("PoolChosen") == 1
    pod_spec = kube.get("deployment", "iris-edge")["spec"]["template"]["spec"]  # type: ignore[index]
    container = pod_spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_spec_change_rolls_out(kube: Kube, operator: Operator) -> None:
    assert kube.apply(model_deployment("roll", target={"pool": "cloud"})).returncode == 0
    wait_for(lambda: ready(kube, "roll", replicas=1), "roll Ready 1/1")
    before = kube.get("deployment", "roll")
    assert before is not None
    changed = model_deployment("roll", target={"pool": "cloud"}, replicas=3)
    changed["spec"]["model"]["version"] = "2"
    assert kube.apply(changed).returncode == 0
    status = wait_for(
        lambda: ready(kube, "roll", replicas=3), "roll Ready 3/3 after the change", 60
    )
    md = kube.get("mdep", "roll")
    assert md is not None and status["observedGeneration"] == md["metadata"]["generation"] == 2
    assert status["model"] == "roll:2"
    after = kube.get("deployment", "roll")
    assert after is not None
    env = {e["name"]: e["value"] for e in after["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ONNXOPS_MODEL_VERSION"] == "2"
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    pods = [p for p in pods_of(kube, "roll") if not p["metadata"].get("deletionTimestamp")]
    wait_for(
        lambda: (
            len([p for p in pods_of(kube, "roll") if not p["metadata"].get("deletionTimestamp")])
            == 3
        ),
        "old pods replaced",
    )
    assert pods
    assert "Updated" in {e["reason"] for e in kube.events("roll")}
    assert kube.get("pdb", "roll") is not None  # replicas > 1 now


def test_autoscaling_adds_and_removes_the_hpa(kube: Kube, operator: Operator) -> None:
    scaled = model_deployment(
        "scaled", target={"pool": "cloud"}, autoscaling={"minReplicas": 2, "maxReplicas": 4}
    )
    assert kube.apply(scaled).returncode == 0
    wait_for(lambda: ready(kube, "scaled", replicas=2), "scaled Ready 2/2")
    hpa = kube.get("hpa", "scaled")
    assert hpa is not None and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    # kubectl scale on an autoscaled model is no silent no-op: a Warning says the HPA decides.
    kube.run("scale", "mdep", "scaled", "--replicas=5")
    wait_for(
        lambda: "ReplicasIgnored" in {e["reason"] for e in kube.events("scaled")},
        "a ReplicasIgnored Warning",
    )
    ignored = next(e for e in kube.events("scaled") if e["reason"] == "ReplicasIgnored")
    assert ignored["type"] == "Warning" and "spec.replicas=5 is ignored" in ignored["message"]
    assert kube.get("deployment", "scaled")["spec"]["replicas"] == 2  # type: ignore[index]
    plain = model_deployment("scaled", target={"pool": "cloud"}, replicas=1)
    assert kube.run("replace", "-f", "-", input=yaml.safe_dump(plain)).returncode == 0
    wait_for(lambda: kube.get("hpa", "scaled") is None, "the HPA removed")
    wait_for(lambda: kube.get("pdb", "scaled") is None, "the PDB removed")
    wait_for(lambda: ready(kube, "scaled", replicas=1), "scaled back to 1")
    # Said once for its generation, though resyncs and child events ran meanwhile.
    assert [e["reason"] for e in kube.events("scaled")].count("ReplicasIgnored") == 1


def test_kubectl_scale_uses_the_scale_subresource(kube: Kube, operator: Operator) -> None:
    assert kube.apply(model_deployment("scalable", target={"pool": "cloud"})).returncode == 0
    wait_for(lambda: ready(kube, "scalable", replicas=1), "scalable Ready 1/1")
    assert "scaled" in kube.run("scale", "mdep", "scalable", "--replicas=3").stdout
    wait_for(lambda: ready(kube, "scalable", replicas=3), "scalable Ready 3/3", 60)
    assert kube.get("deployment", "scalable")["spec"]["replicas"] == 3  # type: ignore[index]
    scale = json.loads(
        kube.run("get", "mdep", "scalable", "--subresource=scale", "-o", "json").stdout
    )
    assert scale["kind"] == "Scale"
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (3, 3)
    # status.selector selects exactly the model's pods (what an HPA on the CR would count).
    selector = scale["status"]["selector"]
    assert selector == "onnxops.io/model-deployment=scalable"
    names = {p["metadata"]["name"] for p in kube.items("pods", selector)}
    assert names == {p["metadata"]["name"] for p in pods_of(kube, "scalable")} and len(names) == 3


def test_delete_cascades(kube: Kube, operator: Operator) -> None:
    assert (
        kube.apply(model_deployment("gone", target={"pool": "cloud"}, replicas=2)).returncode == 0
    )
    wait_for(lambda: ready(kube, "gone", replicas=2), "gone Ready")
    kube.run("delete", "mdep", "gone", "--wait=true", "--timeout=30s")
    # The garbage collector in kube-controller-manager deletes the children; it learns of a
    # new CRD's kind on its discovery resync (every 30 s), hence the generous wait.
    for kind in ("deployment", "service", "pdb"):
        wait_for(partial(absent, kube, kind, "gone"), f"{kind} garbage-collected", 90)
    wait_for(lambda: not pods_of(kube, "gone"), "pods gone")
