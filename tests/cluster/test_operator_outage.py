"""An apiserver outage, as the operator sees it (its connections refused and reset for 20 s,
through a relay; kubectl keeps its own path): the log says so in a line or two, not with a
traceback per failed call, and the operator catches up on what changed meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, wait_for
from tcp_cut import Relay

pytestmark = pytest.mark.cluster

COUNT = 6
OUTAGE_S = 20


@pytest.fixture
def relayed(kube: Kube, tmp_path: Path) -> Iterator[tuple[Relay, Operator]]:
    relay = Relay(kube.cluster.server)
    kubeconfig = tmp_path / "kubeconfig"
    text = kube.cluster.kubeconfig.read_text()
    kubeconfig.write_text(text.replace(kube.cluster.server, relay.url()))
    op = Operator(kubeconfig, tmp_path / "operator.log", {"ONNXOPS_NAMESPACES": kube.namespace})
    try:
        op.start()
        yield relay, op
    finally:
        op.stop()
        relay.stop()


def ready(kube: Kube, name: str, generation: int = 1) -> dict[str, Any] | None:
    status = kube.status(name)
    ok = status.get("phase") == "Ready" and status.get("observedGeneration") == generation
    return status if ok else None


def test_outage_is_logged_briefly_and_caught_up(
    kube: Kube, relayed: tuple[Relay, Operator]
) -> None:
    relay, op = relayed
    names = [f"outage-{i}" for i in range(COUNT)]
    for name in names:
        assert kube.apply(model_deployment(name, target={"pool": "cloud"})).returncode == 0
    for name in names:
        wait_for(lambda n=name: ready(kube, n), f"{name} Ready", 60)
    offset = op.log_path.stat().st_size
    assert (op.health() or {}).get("api") == "reachable"
    relay.cut()
    # While the operator is cut off, a user changes a spec (kubectl's path is direct).
    changed = model_deployment(names[0], target={"pool": "cloud"}, replicas=2)
    assert kube.apply(changed).returncode == 0
    # The liveness JSON says so once the operator's calls fail (its timers run every 5 s).
    wait_for(
        lambda: str((op.health() or {}).get("api", "")).startswith("unavailable for"),
        "the liveness JSON to say the API is unavailable",
        90,  # a loaded machine delays the timers and kopf caches probes for 10 s
    )
    time.sleep(OUTAGE_S)  # the fault itself: its length, not a wait for a result
    relay.restore()
    status = wait_for(lambda: ready(kube, names[0], 2), "the change made during the outage", 120)
    assert status["readyReplicas"] == 2
    back = "Kubernetes API reachable again after"
    wait_for(lambda: back in op.log_path.read_text(), "the outage's summary in the log")
    # kopf keeps probe results up to 10 s.
    wait_for(lambda: (op.health() or {}).get("api") == "reachable", "API reachable again", 90)
    with op.log_path.open() as log:
        log.seek(offset)
        during = log.read()
    assert "Traceback" not in during
    assert "Retrying (Retry(" not in during  # urllib3's three lines per failed call
    assert during.count("Kubernetes API unavailable") <= 2  # once per outage seen
    assert len(during) < 100_000, f"{len(during)} bytes of log for a {OUTAGE_S} s outage"
    assert op.proc is not None and op.proc.poll() is None
