"""A long retry back-off never delays a fix: a spec change re-judges a Failed resource at once.

The operator here retries after 300 s and resyncs every 300 s, so only the prompt path can
turn the fixed resource Ready within the test's wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.deployments import model_deployment
from support.operator_kit import Kube, Operator, wait_for

pytestmark = pytest.mark.cluster

SLOW = {
    "ONNXOPS_RETRY_BASE_S": "300",
    "ONNXOPS_RETRY_MAX_S": "300",
    "ONNXOPS_RESYNC_S": "300",
}


@pytest.fixture(scope="module")
def operator(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(crds.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", SLOW)
    try:
        op.start()
        yield op
    finally:
        op.stop()


def test_spec_fix_does_not_wait_out_the_back_off(kube: Kube, operator: Operator) -> None:
    broken = model_deployment("fixme", model={"uri": "configmap://absent/model.onnx"})
    assert kube.apply(broken).returncode == 0
    wait_for(lambda: kube.status("fixme").get("phase") == "Failed", "fixme Failed")
    # The resync timer's first run (it skips a failed generation) is over; the next is 300 s
    # away, and so is the handler's retry.
    wait_for(
        lambda: (
            f"[{kube.namespace}/fixme] Timer 'resync_model' succeeded"
            in operator.log_path.read_text()
        ),
        "the first resync of fixme",
        # The timer runs once the object has been left alone for its idle 10 s: on a loaded
        # machine (the suite's workers side by side) the last status write can come late.
        timeout_s=90,
    )
    assert kube.apply(model_deployment("fixme")).returncode == 0  # an https model now
    status = wait_for(
        lambda: (s := kube.status("fixme")).get("phase") == "Ready" and s, "fixme Ready", 30
    )
    assert status["observedGeneration"] == 2
    # Still broken after a change: judged again (new generation in status), once.
    worse = model_deployment("fixme", model={"uri": "configmap://absent-too/model.onnx"})
    assert kube.apply(worse).returncode == 0
    wait_for(lambda: kube.status("fixme").get("observedGeneration") == 3, "generation 3 judged", 30)
    assert kube.status("fixme")["phase"] == "Failed"
