"""Container faults seen by the monitor, produced for real by the pod runner's kubelet: a CPU
limit enforced as a CFS quota throttles a model under load (and its p99 climbs), a memory
limit is filled by the runtime's own working set, and a limit too small to start in gets the
process OOM-killed by the kernel. Signals: cAdvisor's container_* series and the pod status.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.deployments import watched_deployment
from support.operator_kit import Kube
from support.readings import fault, status_when
from support.serving_harness import Models
from support.traffic import Load

pytestmark = [pytest.mark.loop, pytest.mark.slow]


def test_cpu_limit_under_load_is_throttling_and_latency_faults(
    deploy: Any, loop_kube: Kube, loop_models: Models
) -> None:
    body = watched_deployment(
        "throttled",
        f"file://{loop_models.iris}",
        thresholds={"latencyP99Ms": 50, "cpuThrottling": 0.25, "cpuUtilization": 0.9},
        anomaly={"enabled": False},
    )
    body["spec"]["model"]["name"] = "iris"
    body["spec"]["resources"] = {"requests": {"cpu": "50m"}, "limits": {"cpu": "50m"}}
    proc = deploy(body)
    big = {"features": loop_models.iris_x[[i % 150 for i in range(3000)]].tolist()}
    with Load(proc.url, "/predict", lambda: big, gap_s=0.0):
        st = status_when(
            loop_kube, "throttled", "CpuThrottling and LatencyP99 faults",
            lambda s: fault(s, "CpuThrottling") and fault(s, "LatencyP99"), 180,
        )  # fmt: skip
    throttling, latency = fault(st, "CpuThrottling"), fault(st, "LatencyP99")
    assert throttling is not None and latency is not None
    assert throttling["value"] > 0.25 and throttling["pods"] == [proc.pod]
    assert latency["value"] > 0.05  # seconds: over the 50 ms limit
    assert st["phase"] == "Degraded"


def test_working_set_near_the_memory_limit_is_a_memory_fault(
    deploy: Any, loop_kube: Kube, loop_models: Models
) -> None:
    # The runtime's own working set (Python, numpy, ONNX Runtime: tens of MiB) is over 30% of
    # a 128 MiB limit, which it still runs within.
    body = watched_deployment(
        "heavy", f"file://{loop_models.iris}", thresholds={"memoryUtilization": 0.3}
    )
    body["spec"]["model"]["name"] = "iris"
    body["spec"]["resources"] = {"limits": {"memory": "128Mi"}, "requests": {"memory": "128Mi"}}
    proc = deploy(body)
    st = status_when(
        loop_kube, "heavy", "a MemoryUtilization fault", lambda s: fault(s, "MemoryUtilization")
    )
    found = fault(st, "MemoryUtilization")
    assert found is not None and 0.3 < found["value"] < 1 and found["pods"] == [proc.pod]
    assert not fault(st, "OOMKilled")


def test_a_limit_too_small_to_start_in_is_an_oom_kill_fault(
    watcher: Any, loop_kube: Kube, loop_models: Models
) -> None:
    body = watched_deployment("starved", f"file://{loop_models.iris}")
    body["spec"]["model"]["name"] = "iris"
    body["spec"]["resources"] = {"limits": {"memory": "40Mi"}, "requests": {"memory": "40Mi"}}
    assert loop_kube.apply(body).returncode == 0
    try:
        st = status_when(
            loop_kube, "starved", "an OOMKilled fault", lambda s: fault(s, "OOMKilled"), 180
        )
        found = fault(st, "OOMKilled")
        assert found is not None and found["value"] >= 1 and len(found["pods"]) == 1
        assert found["pods"][0].startswith("starved-")
    finally:
        loop_kube.run("delete", "mdep", "starved", "--wait=false", check=False)
