"""The pod runner's kubelet decisions, pure and table-driven: probe counting, pod status,
resize admission, KWOK's stage filter and the cAdvisor exposition (no cluster, no processes)."""

from __future__ import annotations

from typing import Any

import pytest
from devcluster.cadvisor import ContainerSample, render
from devcluster.cgroups import Limits, Stats
from devcluster.kwokstages import without_serving_pods
from devcluster.podstatus import ContainerView, ResizeView, build_status
from devcluster.probes import ProbeError, Prober, parse
from devcluster.resize import decide, limits_of, normalized, pod_requests

PORTS = {"8080": 31000, "http": 31000}


def test_probe_defaults_are_the_kubelets() -> None:
    spec = parse("liveness", {"httpGet": {"path": "/live", "port": "http"}}, PORTS)
    assert (spec.period_s, spec.timeout_s, spec.success_threshold, spec.failure_threshold) == (
        10,
        1,
        1,
        3,
    )
    assert spec.port == 31000
    assert parse("readiness", {"httpGet": {"port": 8080}}, PORTS).path == "/"


@pytest.mark.parametrize(
    "probe",
    [{"exec": {"command": ["true"]}}, {"httpGet": {"path": "/", "port": "grpc"}}],
)
def test_probes_the_runner_cannot_run_are_errors(probe: dict[str, Any]) -> None:
    with pytest.raises(ProbeError):
        parse("readiness", probe, PORTS)


@pytest.mark.parametrize(
    ("kind", "results", "flips", "final"),
    [
        # readiness starts failed; one success (threshold 1) flips it
        ("readiness", [True], [True], True),
        # failureThreshold 3: two failures change nothing, the third flips
        ("readiness", [True, False, False, False], [True, None, None, False], False),
        ("readiness", [True, False, True, False, False], [True, None, None, None, None], True),
        # liveness starts unknown: failures flip it to failed at the threshold only
        ("liveness", [False, False, False], [None, None, False], False),
        ("liveness", [True, False, False, True], [True, None, None, None], True),
    ],
)
def test_probe_thresholds(
    kind: str, results: list[bool], flips: list[bool | None], final: bool
) -> None:
    spec = parse(kind, {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2}, PORTS)
    prober = Prober(spec, started_at=0.0)
    seen = [prober.record(ok, "", now=float(i)) for i, ok in enumerate(results)]
    assert seen == flips
    assert prober.result is final


def test_probe_schedule_waits_initial_delay_then_period() -> None:
    spec = parse(
        "readiness",
        {"httpGet": {"port": "http"}, "initialDelaySeconds": 5, "periodSeconds": 3},
        PORTS,
    )
    prober = Prober(spec, started_at=100.0)
    assert not prober.due(104.9) and prober.due(105.0)
    prober.in_flight = True
    assert not prober.due(200.0)  # one probe at a time
    prober.record(True, "", now=105.2)
    assert not prober.due(108.1) and prober.due(108.2)


def _pod(conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"nodeName": "cloud-0", "containers": [{"name": "server", "image": "i"}]},
        "status": {"qosClass": "Burstable", "conditions": conditions or []},
    }


def _status(view: ContainerView, pod: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "host_ip": "10.0.0.1",
        "pod_ip": "10.130.1.2",
        "start_time": 0.0,
        "observed_generation": 1,
        "resize": ResizeView(),
        "terminal_phase": None,
        "now": 1000.0,
    }
    args.update(kw)
    return build_status(pod or _pod(), view, **args)


def test_status_of_a_container_being_created_is_pending() -> None:
    status = _status(ContainerView("server", "i"))
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    assert status["qosClass"] == "Burstable"


def test_status_keeps_other_conditions_and_unchanged_transition_times() -> None:
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"}
    ready_before = {"type": "Ready", "status": "True", "lastTransitionTime": "T1"}
    view = ContainerView("server", "i", state="running", started_at=5.0, started=True, ready=True)
    status = _status(view, _pod([scheduled, ready_before]))
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["PodScheduled"] == scheduled
    assert by_type["Ready"]["lastTransitionTime"] == "T1"  # still True: time kept
    assert by_type["ContainersReady"]["lastTransitionTime"] == "1970-01-01T00:16:40Z"
    assert status["phase"] == "Running"


def test_status_of_a_crash_looping_container() -> None:
    last = {"reason": "OOMKilled", "exitCode": 137, "startedAt": "a", "finishedAt": "b"}
    view = ContainerView(
        "server",
        "i",
        state="waiting",
        reason="CrashLoopBackOff",
        message="back-off 2s",
        restart_count=3,
        started_at=1.0,
        last_terminated=last,
    )
    cs = _status(view)["containerStatuses"][0]
    assert _status(view)["phase"] == "Running"
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"] == {"terminated": last}
    assert (cs["restartCount"], cs["ready"]) == (3, False)


def test_status_reports_resize_conditions() -> None:
    view = ContainerView("server", "i", state="running", started_at=1.0, ready=True)
    deferred = _status(view, resize=ResizeView("Deferred", "Node didn't have enough resource"))
    pending = next(c for c in deferred["conditions"] if c["type"] == "PodResizePending")
    assert (pending["reason"], pending["message"]) == (
        "Deferred",
        "Node didn't have enough resource",
    )
    error = _status(view, resize=ResizeView(in_progress=True, error_message="below usage"))
    progress = next(c for c in error["conditions"] if c["type"] == "PodResizeInProgress")
    assert (progress["reason"], progress["message"]) == ("Error", "below usage")
    done = _status(view)
    assert not {"PodResizePending", "PodResizeInProgress"} & {c["type"] for c in done["conditions"]}


def test_limits_and_reported_resources() -> None:
    res = {"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "64Mi"}}
    assert limits_of(res) == Limits(cpu_request_m=250, cpu_limit_m=1000, memory_limit=64 * 2**20)
    assert normalized(res)["requests"] == {"cpu": "250m", "memory": "64Mi"}
    assert Limits(cpu_limit_m=100).quota_us == 10_000
    assert Limits().quota_us == -1
    assert Limits(cpu_request_m=0).shares == 2  # the kubelet's MinShares
    assert Limits(cpu_request_m=500).shares == 512


NODE = {"cpu": "2", "memory": "2Gi"}
APPLIED = {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}


@pytest.mark.parametrize(
    ("desired", "others", "policy", "action", "restart"),
    [
        (APPLIED, [], [], "none", False),
        (
            {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            [(500, 0)],
            [],
            "apply",
            False,
        ),
        (
            {"requests": {"cpu": "1600m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            [(500, 0)],
            [],
            "defer",
            False,
        ),
        (
            {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
            [(0, 1)],
            [],
            "defer",
            False,
        ),
        (
            {"requests": {"cpu": "500m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
            [],
            [{"resourceName": "memory", "restartPolicy": "RestartContainer"}],
            "apply",
            True,
        ),
        (
            {"requests": {"cpu": "700m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            [],
            [{"resourceName": "memory", "restartPolicy": "RestartContainer"}],
            "apply",
            False,  # only CPU changed, and CPU's policy is NotRequired
        ),
    ],
)
def test_resize_decision(
    desired: dict[str, Any],
    others: list[tuple[int, int]],
    policy: list[dict[str, str]],
    action: str,
    restart: bool,
) -> None:
    decision = decide(desired, APPLIED, policy, node_allocatable=NODE, others=others)
    assert (decision.action, decision.restart) == (action, restart)
    if action == "defer":
        assert decision.message.startswith("Node didn't have enough resource: ")


def test_pod_requests_prefer_allocated_values() -> None:
    pod = {
        "spec": {"containers": [{"name": "server", "resources": {"limits": {"cpu": "1"}}}]},
        "status": {"containerStatuses": [{"name": "server", "allocatedResources": {"cpu": "2"}}]},
    }
    assert pod_requests(pod) == (2000, 0)
    del pod["status"]
    assert pod_requests(pod) == (1000, 0)  # requests default to limits


UPSTREAM = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions'
      operator: 'DoesNotExist'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
"""


def test_kwok_pod_stages_leave_serving_pods_alone() -> None:
    out = without_serving_pods(UPSTREAM)
    node, pod = out.split("\n---")
    assert "onnxops-serving" not in node
    assert 'select(.name == "server" and (.image | contains("onnxops-serving")))' in pod
    assert pod.count("operator: 'DoesNotExist'") == 2
    with pytest.raises(ValueError, match="without selector"):
        without_serving_pods("kind: Stage\nspec:\n  resourceRef:\n    kind: Pod\n")


def test_cadvisor_exposition_names_and_labels() -> None:
    sample = ContainerSample(
        namespace="ml",
        pod="iris-1",
        container="server",
        node="edge-0",
        image="onnxops-serving:1",
        cgroup_id="/devcluster/u-server",
        limits=Limits(cpu_request_m=100, cpu_limit_m=500, memory_limit=64 * 2**20),
        stats=Stats(cpu_usage_s=1.5, cfs_periods=10, cfs_throttled_periods=4, oom_kills=2),
        start_time=1700000000.0,
    )
    text = render([sample])
    labels = (
        'container="server",id="/devcluster/u-server",image="onnxops-serving:1",'
        'name="/devcluster/u-server",namespace="ml",node="edge-0",pod="iris-1"'
    )
    for line in (
        f"container_cpu_usage_seconds_total{{{labels}}} 1.5",
        f"container_cpu_cfs_throttled_periods_total{{{labels}}} 4.0",
        f"container_oom_events_total{{{labels}}} 2.0",
        f"container_spec_memory_limit_bytes{{{labels}}} 67108864.0",
        f"container_spec_cpu_quota{{{labels}}} 50000.0",
        f"container_spec_cpu_period{{{labels}}} 100000.0",
    ):
        assert line in text.splitlines()
    assert "# TYPE container_oom_events_total counter" in text
