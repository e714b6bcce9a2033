"""Killing the operator mid-way and starting it again converges without duplicate objects."""

from __future__ import annotations

from collections import Counter

import pytest
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, wait_for

pytestmark = pytest.mark.cluster

COUNT = 16  # 12 applied while the operator runs, 4 while it is down


def names() -> list[str]:
    return [f"batch-{i:02d}" for i in range(COUNT)]


def children(kube: Kube, plural: str) -> Counter[str]:
    items = kube.items(plural, "app.kubernetes.io/managed-by=onnxops")
    return Counter(i["metadata"]["labels"]["onnxops.io/model-deployment"] for i in items)


def as_list(items: list[dict[str, object]]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "List", "items": items}


def spec(index: int, replicas: int = 2) -> dict[str, object]:
    pool = ("cloud", "edge")[index % 2]
    return model_deployment(f"batch-{index:02d}", target={"pool": pool}, replicas=replicas)


def test_kill_and_restart_converges(kube: Kube, operator: Operator) -> None:
    assert kube.apply(as_list([spec(i) for i in range(12)])).returncode == 0
    # SIGKILL as soon as some Deployments exist, batch-01's among them (it is deleted by hand
    # below; waiting for it after the kill waited for what only the dead operator could make):
    # whatever was in flight is cut off.
    wait_for(
        lambda: (
            kube.get("deployment", "batch-01") is not None
            and sum(children(kube, "deployments").values()) >= 2
        ),
        "first Deployments, batch-01's among them",
        120,
    )
    operator.kill()
    # While it is down: new resources, a spec change, and a child deleted by hand.
    assert kube.apply(as_list([spec(i) for i in range(12, COUNT)])).returncode == 0
    assert kube.apply(spec(0, replicas=3)).returncode == 0
    kube.run("delete", "deployment", "batch-01", "--wait=false")
    operator.start()

    def all_ready() -> bool:
        return all(kube.status(n).get("phase") == "Ready" for n in names())

    wait_for(all_ready, f"all {COUNT} Ready after the restart", 120)
    assert kube.status("batch-00")["readyReplicas"] == 3
    for plural in ("deployments", "services", "poddisruptionbudgets"):
        counts = children(kube, plural)
        assert counts == Counter({n: 1 for n in names()}), plural
    # One active ReplicaSet per Deployment: no spurious template changes across the restart.
    replicasets = Counter(
        rs["metadata"]["labels"]["onnxops.io/model-deployment"]
        for rs in kube.items("replicasets", "app.kubernetes.io/managed-by=onnxops")
        if rs["spec"].get("replicas", 0) > 0
    )
    assert replicasets == Counter({n: 1 for n in names()})

    def live_pods() -> int:
        pods = kube.items("pods", "app.kubernetes.io/managed-by=onnxops")
        return len([p for p in pods if not p["metadata"].get("deletionTimestamp")])

    wait_for(lambda: live_pods() == 2 * COUNT + 1, "exactly the wanted pods")  # batch-00: 3


def test_restart_is_quiet_when_nothing_changed(kube: Kube, operator: Operator) -> None:
    """A resume over converged resources applies nothing new: no Created/Updated events."""
    before = Counter(e["reason"] for n in names() for e in kube.events(n))
    operator.stop()
    offset = operator.log_path.stat().st_size
    operator.start()

    def resumed() -> int:
        with operator.log_path.open() as log:
            log.seek(offset)
            done = log.read().count("Handler 'reconcile_model' succeeded")
        return done if done >= COUNT else 0

    # The resume handler ran over every resource (and any in other modules' namespaces).
    wait_for(resumed, "the resume handler over every resource", 60)
    assert all(kube.status(n).get("phase") == "Ready" for n in names())
    after = Counter(e["reason"] for n in names() for e in kube.events(n))
    assert after["Created"] == before["Created"]
    assert after["Updated"] == before["Updated"]
