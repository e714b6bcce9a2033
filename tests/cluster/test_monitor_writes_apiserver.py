"""The monitor's status writes against the real apiserver, 16 in flight through the write
pool and the operator's own client (`k8s.api_client`): every model written once, only what
changed (a second cycle writes nothing), and a write that lost a race with another writer
decided again from a fresh read, the other writer's fields kept.

`Monitor.run_cycle` runs in this process without Prometheus (every model: not configured),
so the statuses it writes are known in advance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.config import kube_config
from onnxops import k8s
from onnxops.config import OperatorConfig
from onnxops.monitor.cycle import Monitor
from support.deployments import model_deployment
from support.operator_kit import Kube

pytestmark = pytest.mark.cluster

N = 40


@pytest.fixture(scope="module", autouse=True)
def operator_client(crds: Any) -> Iterator[None]:
    """`k8s.api_client()` as the operator builds it (its connection pool), on the devcluster."""
    saved = k8s._client, kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(crds.kubeconfig)
    k8s._client = None
    try:
        yield
    finally:
        k8s._client, kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved


def create(kube: Kube, prefix: str) -> list[dict[str, Any]]:
    items = [model_deployment(f"{prefix}{i}") for i in range(N)]
    assert kube.apply({"apiVersion": "v1", "kind": "List", "items": items}).returncode == 0
    return [b for b in kube.items("mdep") if b["metadata"]["name"].startswith(prefix)]


def conditions(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c["reason"])
        for c in (body.get("status") or {}).get("conditions", [])
    }


def test_a_cycle_writes_every_status_once_through_the_pool(kube: Kube) -> None:
    bodies = create(kube, "w")
    monitor = Monitor(OperatorConfig(monitor_write_concurrency=16))
    now = time.time()
    assert monitor.run_cycle(bodies, now).writes == N
    after = [b for b in kube.items("mdep") if b["metadata"]["name"].startswith("w")]
    assert len(after) == N
    for body in after:
        # compared with the object as stored, not as the model fills in defaults: the field
        # the server lacks is written (an empty list the API model would have shown anyway)
        assert body["status"]["faults"] == []
        assert conditions(body) == {
            "MonitoringAvailable": ("False", "NotConfigured"),
            "Healthy": ("Unknown", "MetricsUnavailable"),
        }
    # the same evaluation on what was written changes nothing, so nothing is sent
    assert monitor.run_cycle(after, now).writes == 0


def test_a_write_that_lost_a_race_is_decided_again_from_a_fresh_read(kube: Kube) -> None:
    stale = create(kube, "r")
    for body in stale:  # another writer (the deploy path) moves each object on meanwhile
        k8s.patch_status(kube.namespace, body["metadata"]["name"], {"endpoint": "http://x:8080"})
    report = Monitor(OperatorConfig(monitor_write_concurrency=16)).run_cycle(stale, time.time())
    assert report.writes == N  # each conflicted once (resourceVersion), then was written
    for body in (b for b in kube.items("mdep") if b["metadata"]["name"].startswith("r")):
        assert body["status"]["endpoint"] == "http://x:8080"
        assert conditions(body)["MonitoringAvailable"] == ("False", "NotConfigured")
