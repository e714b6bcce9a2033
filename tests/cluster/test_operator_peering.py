"""Two operator replicas with kopf peering: one works, the other stands by and takes over
when the first stops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, wait_for

pytestmark = pytest.mark.cluster

HANDLED = "Handler 'reconcile_model' succeeded"


@pytest.fixture(scope="module")
def pair(
    kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Operator, Operator]]:
    peering = f"onnxops-test-{uuid.uuid4().hex[:6]}"
    # Operators limited to namespaces peer through a namespaced KopfPeering object.
    peering_object = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": peering},
    }
    assert kube.apply(peering_object).returncode == 0
    logs = tmp_path_factory.mktemp("peering")
    ops = tuple(
        Operator(
            kube.cluster.kubeconfig,
            logs / f"{which}.log",
            {
                "ONNXOPS_STANDALONE": "false",
                "ONNXOPS_PEERING": peering,
                "ONNXOPS_PEERING_PRIORITY": str(priority),
                "ONNXOPS_NAMESPACES": kube.namespace,
            },
        )
        for which, priority in (("high", 200), ("low", 100))
    )
    try:
        for op in ops:
            op.start()
        yield ops  # type: ignore[misc]
    finally:
        for op in ops:
            op.stop()
        kube.run("delete", "kopfpeering", peering, check=False)


def test_only_the_higher_priority_replica_works_and_the_other_takes_over(
    kube: Kube, pair: tuple[Operator, Operator]
) -> None:
    high, low = pair
    # kopf starts paused and resumes once peering shows no peer of higher priority.
    resumed = "Resuming operations after the pause"
    wait_for(lambda: resumed in high.log_path.read_text(), "the high-priority replica to resume")
    assert kube.apply(model_deployment("peered-1", target={"pool": "cloud"})).returncode == 0
    wait_for(lambda: kube.status("peered-1").get("phase") == "Ready", "peered-1 Ready", 60)
    assert HANDLED in high.log_path.read_text()
    assert HANDLED not in low.log_path.read_text()
    assert resumed not in low.log_path.read_text()
    high.stop()  # a graceful stop withdraws its peering record, so the standby resumes at once
    wait_for(
        lambda: resumed in low.log_path.read_text(),
        "the standby to resume",
    )
    assert kube.apply(model_deployment("peered-2", target={"pool": "edge"})).returncode == 0
    status: dict[str, Any] = wait_for(
        lambda: (s := kube.status("peered-2")).get("phase") == "Ready" and s,
        "peered-2 Ready via the standby",
        60,
    )
    assert status["pool"] == "edge"
    assert HANDLED in low.log_path.read_text()
