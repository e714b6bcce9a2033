"""The pod runner as the kubelet of serving pods, against the real control plane, real
processes and real cgroups: pod status, probes, restarts and back-off, OOM kills, CPU
throttling, in-place resize, graceful deletion, and what the Deployment, EndpointSlices and
the operator make of it.

Faults are produced for real with ``fake_serving.py`` (allocate, burn CPU, exit) and signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devcluster import controlplane, processes
from devcluster import prometheus as prom
from devcluster.podrunner import PodRunner, ServingProcess
from devcluster.resize import pod_requests
from support.deployments import model_deployment
from support.factories import doubler_model
from support.operator_kit import Kube, Operator

pytestmark = pytest.mark.cluster

FAKE_SERVING = Path(__file__).with_name("fake_serving.py")
FAKE = [sys.executable, str(FAKE_SERVING)]
IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"
Runner = Callable[..., PodRunner]
# The `kube` fixture's runner (used by the operator test) runs the real serving runtime.
POD_RUNNER_COMMAND = None


def _probe(path: str, period: int = 1, failures: int = 2) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 1,
    }


def _container(
    resources: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    resize_policy: dict[str, str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "server",
        "image": IMAGE,
        "ports": [{"name": "http", "containerPort": 8080}],
        # A startup probe guards liveness while the process starts, as it should in any pod.
        "startupProbe": _probe("/v2/health/live", failures=60),
        "readinessProbe": _probe("/v2/health/ready"),
        "livenessProbe": _probe("/v2/health/live"),
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    if resources:
        container["resources"] = resources
    if resize_policy:
        container["resizePolicy"] = [
            {"resourceName": k, "restartPolicy": v} for k, v in resize_policy.items()
        ]
    return container


def _pod(name: str, *, grace_s: int = 2, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"onnxops.io/pool": "cloud"},
            "terminationGracePeriodSeconds": grace_s,
            "containers": [_container(**container)],
        },
    }


def _apply(cluster: controlplane.Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.run_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def _get(cluster: controlplane.Cluster, namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = cluster.api().get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    return pod


def _cstatus(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == kind), None)


def _is_ready(pod: dict[str, Any]) -> bool:
    cond = _condition(pod, "Ready")
    return cond is not None and cond["status"] == "True"


def _wait_pod(
    cluster: controlplane.Cluster,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], Any],
    what: str,
    timeout_s: float = 60,
) -> dict[str, Any]:
    def step() -> dict[str, Any] | None:
        pod = _get(cluster, namespace, name)
        return pod if check(pod) else None

    pod: dict[str, Any] = processes.wait_for(step, timeout_s=timeout_s, what=what, interval_s=0.2)
    return pod


def _proc(runner: PodRunner, namespace: str, name: str) -> ServingProcess:
    found: ServingProcess = processes.wait_for(
        lambda: runner.serving().get(f"{namespace}.{name}"), timeout_s=60, what="a process"
    )
    return found


def _hit(proc: ServingProcess, path: str) -> None:
    # The request may kill the process (that is the point): no reply is fine.
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{proc.url}{path}", timeout=10)


def test_status_is_the_kubelets_and_readiness_follows_the_probe(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    _apply(devcluster, ns, _pod("p1", resources={"limits": {"cpu": "200m", "memory": "128Mi"}}))
    pod = _wait_pod(devcluster, ns, "p1", _is_ready, "p1 Ready")
    status, cs = pod["status"], _cstatus(pod)
    assert status["phase"] == "Running"
    assert status["podIP"] and status["hostIP"] and status["startTime"]
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds == {
        "PodScheduled": "True",  # the scheduler's, kept
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
    assert "running" in cs["state"] and cs["containerID"].startswith("devcluster://")
    assert cs["image"] == IMAGE
    # Resources as the kubelet reports them (requests defaulted from limits): what lets the
    # apiserver accept a pods/resize for this pod.
    assert cs["resources"] == {
        "requests": {"cpu": "200m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }

    # Readiness follows the probe, both ways.
    proc = _proc(runner, ns, "p1")
    _hit(proc, "/ready?ok=0")
    _wait_pod(devcluster, ns, "p1", lambda p: not _is_ready(p), "p1 not Ready")
    _hit(proc, "/ready?ok=1")
    _wait_pod(devcluster, ns, "p1", _is_ready, "p1 Ready again")
    assert _cstatus(_get(devcluster, ns, "p1"))["restartCount"] == 0


def test_an_exit_is_restarted_with_back_off_and_recorded(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    _apply(devcluster, ns, _pod("crashy"))
    _wait_pod(devcluster, ns, "crashy", _is_ready, "crashy Ready")
    _hit(_proc(runner, ns, "crashy"), "/exit?code=3")
    pod = _wait_pod(
        devcluster, ns, "crashy", lambda p: _cstatus(p)["restartCount"] == 1, "one restart"
    )
    last = _cstatus(pod)["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("Error", 3)
    assert last["startedAt"] <= last["finishedAt"]
    _wait_pod(devcluster, ns, "crashy", _is_ready, "crashy Ready after the restart")

    # The second exit waits out a back-off, shown as CrashLoopBackOff, as the kubelet does.
    _hit(_proc(runner, ns, "crashy"), "/exit?code=4")
    pod = _wait_pod(
        devcluster,
        ns,
        "crashy",
        lambda p: _cstatus(p)["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff",
        "CrashLoopBackOff",
    )
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always: still Running
    assert not _is_ready(pod)
    pod = _wait_pod(
        devcluster, ns, "crashy", lambda p: _cstatus(p)["restartCount"] == 2, "second restart"
    )
    assert _cstatus(pod)["lastState"]["terminated"]["exitCode"] == 4
    reasons = {e["reason"] for e in _events(devcluster, ns, "crashy")}
    assert {"Started", "BackOff"} <= reasons


def _events(cluster: controlplane.Cluster, namespace: str, pod: str) -> list[dict[str, Any]]:
    items = cluster.kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={pod}"
    )["items"]
    return list(items)


def test_memory_limit_oom_kills_for_real(
    devcluster: controlplane.Cluster,
    prometheus: prom.Prometheus,
    make_pod_runner: Runner,
    k8s_namespace: str,
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    _apply(devcluster, ns, _pod("hungry", resources={"limits": {"memory": "64Mi"}}))
    _wait_pod(devcluster, ns, "hungry", _is_ready, "hungry Ready")
    _hit(_proc(runner, ns, "hungry"), "/alloc?mb=100")
    pod = _wait_pod(
        devcluster, ns, "hungry", lambda p: _cstatus(p)["restartCount"] == 1, "the OOM restart"
    )
    last = _cstatus(pod)["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137)
    series = prometheus.wait_for(
        f'container_oom_events_total{{namespace="{ns}",pod="hungry",container="server"}} >= 1',
        timeout_s=30,
    )
    assert series[0]["metric"]["job"] == "kubelet"
    limit = prometheus.wait_for(
        f'container_spec_memory_limit_bytes{{namespace="{ns}",pod="hungry"}}', timeout_s=30
    )
    assert float(limit[0]["value"][1]) == 64 * 2**20


def test_watchdog_mode_keeps_the_oom_behaviour(
    devcluster: controlplane.Cluster,
    make_pod_runner: Runner,
    k8s_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no cgroup is writable (forced here), memory keeps its observable behaviour and the
    mode says CPU is not capped."""
    monkeypatch.setenv("DEVCLUSTER_CGROUPS", "watchdog")
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    assert runner.mode.name == "watchdog" and not runner.mode.enforces_cpu
    assert "CPU is NOT capped" in runner.mode.reason
    _apply(devcluster, ns, _pod("hungry", resources={"limits": {"memory": "64Mi"}}))
    _wait_pod(devcluster, ns, "hungry", _is_ready, "hungry Ready")
    _hit(_proc(runner, ns, "hungry"), "/alloc?mb=100")
    pod = _wait_pod(
        devcluster, ns, "hungry", lambda p: _cstatus(p)["restartCount"] == 1, "the OOM restart"
    )
    last = _cstatus(pod)["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137)


@pytest.mark.quiet  # a 100m pod starved by the suite's own load is never throttled
def test_cpu_limit_throttles_for_real(
    devcluster: controlplane.Cluster,
    prometheus: prom.Prometheus,
    make_pod_runner: Runner,
    k8s_namespace: str,
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    if not runner.mode.enforces_cpu:
        pytest.fail(f"CPU is not capped in cgroup mode {runner.mode.name}: {runner.mode.reason}")
    _apply(devcluster, ns, _pod("busy", resources={"limits": {"cpu": "100m", "memory": "128Mi"}}))
    _wait_pod(devcluster, ns, "busy", _is_ready, "busy Ready")
    proc = _proc(runner, ns, "busy")
    selector = f'namespace="{ns}",pod="busy",container="server"'
    before = float(
        prometheus.wait_for(f"container_cpu_usage_seconds_total{{{selector}}}")[0]["value"][1]
    )
    _hit(proc, "/burn?s=4")
    prometheus.wait_for(f"container_cpu_cfs_throttled_periods_total{{{selector}}} > 5", 30)
    time.sleep(4)  # let the burn end: the usage below is over its whole length
    after = float(
        prometheus.wait_for(f"container_cpu_usage_seconds_total{{{selector}}}")[0]["value"][1]
    )
    # 4 s of spinning under a 100m quota can use at most ~0.4 s of CPU (plus the idle server);
    # uncapped it would use ~4 s.
    assert after - before < 1.5
    quota = prometheus.wait_for(f"container_spec_cpu_quota{{{selector}}}")
    assert float(quota[0]["value"][1]) == 10_000


def _resize(
    cluster: controlplane.Cluster, namespace: str, name: str, resources: dict[str, Any]
) -> None:
    patch = {"spec": {"containers": [{"name": "server", "resources": resources}]}}
    cluster.run_kubectl(
        "patch", "pod", name, "-n", namespace, "--subresource", "resize", "-p", json.dumps(patch)
    )


def _resize_done(pod: dict[str, Any]) -> bool:
    spec = pod["spec"]["containers"][0]["resources"]
    cs = _cstatus(pod)
    return (
        pod["status"].get("observedGeneration", 0) >= pod["metadata"]["generation"]
        and _condition(pod, "PodResizePending") is None
        and _condition(pod, "PodResizeInProgress") is None
        and cs.get("resources") == spec
        and cs.get("allocatedResources") == spec["requests"]
    )


def _cgroup_file(proc: ServingProcess, controller: str, name: str) -> str:
    assert proc.cgroup is not None
    return (proc.cgroup.dirs[controller] / name).read_text().strip()


def test_resize_in_place_changes_the_cgroup_without_a_restart(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    if runner.mode.name != "v1":
        pytest.skip(f"reads cgroup v1 files; this machine's mode is {runner.mode.name}")
    small = {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }
    _apply(devcluster, ns, _pod("elastic", resources=small))
    _wait_pod(devcluster, ns, "elastic", _is_ready, "elastic Ready")
    proc = _proc(runner, ns, "elastic")
    pid = proc.child.pid if proc.child else 0

    big = {
        "requests": {"cpu": "200m", "memory": "128Mi"},
        "limits": {"cpu": "400m", "memory": "256Mi"},
    }
    _resize(devcluster, ns, "elastic", big)
    pod = _wait_pod(devcluster, ns, "elastic", _resize_done, "the resize up to finish")
    assert _cgroup_file(proc, "memory", "memory.limit_in_bytes") == str(256 * 2**20)
    assert _cgroup_file(proc, "cpu", "cpu.cfs_quota_us") == "40000"
    assert _cgroup_file(proc, "cpu", "cpu.shares") == str(200 * 1024 // 1000)
    assert _cstatus(pod)["restartCount"] == 0 and proc.child and proc.child.pid == pid

    _resize(devcluster, ns, "elastic", small)
    pod = _wait_pod(devcluster, ns, "elastic", _resize_done, "the resize down to finish")
    assert _cgroup_file(proc, "memory", "memory.limit_in_bytes") == str(128 * 2**20)
    assert _cgroup_file(proc, "cpu", "cpu.cfs_quota_us") == "20000"
    assert _cstatus(pod)["restartCount"] == 0 and proc.child and proc.child.pid == pid
    reasons = [e["reason"] for e in _events(devcluster, ns, "elastic")]
    assert reasons.count("ResizeCompleted") >= 1 and "ResizeStarted" in reasons


def test_resize_with_restart_policy_restarts_once(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    make_pod_runner(command=FAKE, namespace=ns)
    res = {"requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    _apply(
        devcluster, ns, _pod("strict", resources=res, resize_policy={"memory": "RestartContainer"})
    )
    _wait_pod(devcluster, ns, "strict", _is_ready, "strict Ready")
    _resize(
        devcluster, ns, "strict", {"requests": {"memory": "96Mi"}, "limits": {"memory": "192Mi"}}
    )
    pod = _wait_pod(
        devcluster,
        ns,
        "strict",
        lambda p: _resize_done(p) and _is_ready(p),
        "the restarting resize to finish",
    )
    assert _cstatus(pod)["restartCount"] == 1


def test_a_resize_during_a_crash_back_off_reaches_only_the_container(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    """As kubelet v1.36.3 does (kubernetes/kubernetes#138760): a container OOM-killed at every
    start is resized while it waits out its back-off; the resize is accepted and reported done
    once the container starts again, with the new limit on the container, but the pod's cgroup
    keeps the old one, so it is OOM-killed again. A new pod with the new limit starts."""
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns, extra_env={"FAKE_ALLOC_MB": "100"})
    res = {"requests": {"memory": "64Mi"}, "limits": {"memory": "64Mi"}}
    _apply(devcluster, ns, _pod("looping", resources=res))

    def backing_off(p: dict[str, Any]) -> bool:
        # The second back-off or later (4 s and more): long enough that the resize lands
        # while the container is not running.
        waiting = (_cstatus(p).get("state") or {}).get("waiting") or {}
        return waiting.get("reason") == "CrashLoopBackOff" and _cstatus(p)["restartCount"] >= 2

    pod = _wait_pod(devcluster, ns, "looping", backing_off, "a crash back-off after OOM kills")
    assert (_cstatus(pod)["lastState"].get("terminated") or {}).get("reason") == "OOMKilled"
    big = {"requests": {"memory": "256Mi"}, "limits": {"memory": "256Mi"}}
    _resize(devcluster, ns, "looping", big)
    pod = _wait_pod(devcluster, ns, "looping", _resize_done, "the resize reported done", 60)
    assert _cstatus(pod)["resources"]["limits"]["memory"] == "256Mi"  # the container's own
    seen = _cstatus(pod)["restartCount"]
    again = _wait_pod(
        devcluster,
        ns,
        "looping",
        lambda p: _cstatus(p)["restartCount"] > seen,
        "another OOM kill after the resize",
        90,
    )
    assert (_cstatus(again)["lastState"].get("terminated") or {}).get("reason") == "OOMKilled"
    assert not _is_ready(again)
    if runner.mode.name == "v1":  # the pod's cgroup still binds at 64Mi
        proc = _proc(runner, ns, "looping")
        assert _cgroup_file(proc, "memory", "memory.limit_in_bytes") == str(64 * 2**20)
    # What does heal it: a new pod created with the raised limit (the operator's rollout).
    _apply(devcluster, ns, _pod("renewed", resources=big))
    renewed = _wait_pod(devcluster, ns, "renewed", _is_ready, "a new pod with 256Mi Ready")
    assert _cstatus(renewed)["restartCount"] == 0


def test_resize_that_cannot_fit_or_apply_is_reported(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    res = {
        "requests": {"cpu": "100m", "memory": "32Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }
    _apply(devcluster, ns, _pod("stuck", resources=res))
    _wait_pod(devcluster, ns, "stuck", _is_ready, "stuck Ready")

    # More CPU than the node has left (the apiserver itself refuses more than it has at all):
    # Deferred, as the kubelet reports it, and applied once a filler pod makes room.
    node = _get(devcluster, ns, "stuck")["spec"]["nodeName"]
    on_node = devcluster.api().get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")["items"]
    free_m = 8000 - sum(pod_requests(p)[0] for p in on_node)
    filler = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "filler"},
        "spec": {
            "nodeName": node,  # KWOK runs it: not a serving pod
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/filler:1",
                    "resources": {"requests": {"cpu": f"{free_m - 1000}m"}},
                }
            ],
        },
    }
    _apply(devcluster, ns, filler)
    grown = {
        "requests": {"cpu": "2", "memory": "32Mi"},
        "limits": {"cpu": "2", "memory": "128Mi"},
    }
    _resize(devcluster, ns, "stuck", grown)
    pod = _wait_pod(
        devcluster,
        ns,
        "stuck",
        lambda p: (_condition(p, "PodResizePending") or {}).get("reason") == "Deferred",
        "PodResizePending Deferred",
    )
    assert "Node didn't have enough resource: cpu" in _condition(pod, "PodResizePending")["message"]
    assert _cstatus(pod)["resources"] == res  # nothing applied yet
    devcluster.run_kubectl("delete", "pod", "filler", "-n", ns, "--grace-period=0")
    pod = _wait_pod(devcluster, ns, "stuck", _resize_done, "the deferred resize to be applied")
    assert _cstatus(pod)["restartCount"] == 0
    _resize(devcluster, ns, "stuck", res)
    _wait_pod(devcluster, ns, "stuck", _resize_done, "the resize back")

    # A memory limit below what the process uses is not applied: PodResizeInProgress Error.
    _hit(_proc(runner, ns, "stuck"), "/alloc?mb=48")
    tiny = {
        "requests": {"cpu": "100m", "memory": "16Mi"},
        "limits": {"cpu": "200m", "memory": "32Mi"},
    }
    _resize(devcluster, ns, "stuck", tiny)
    pod = _wait_pod(
        devcluster,
        ns,
        "stuck",
        lambda p: (_condition(p, "PodResizeInProgress") or {}).get("reason") == "Error",
        "PodResizeInProgress Error",
    )
    assert "below current usage" in _condition(pod, "PodResizeInProgress")["message"]
    assert _cstatus(pod)["restartCount"] == 0  # nothing was killed


def test_a_stopped_process_fails_liveness_and_is_restarted(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns)
    _apply(devcluster, ns, _pod("frozen", grace_s=1))
    _wait_pod(devcluster, ns, "frozen", _is_ready, "frozen Ready")
    proc = _proc(runner, ns, "frozen")
    assert proc.child is not None
    os.kill(proc.child.pid, signal.SIGSTOP)  # the test's own process, started via the runner
    pod = _wait_pod(
        devcluster, ns, "frozen", lambda p: _cstatus(p)["restartCount"] == 1, "a liveness restart"
    )
    # SIGTERM cannot stop a stopped process: the grace period ends in SIGKILL.
    assert _cstatus(pod)["lastState"]["terminated"]["exitCode"] == 137
    messages = " ".join(e["message"] for e in _events(devcluster, ns, "frozen"))
    assert "failed liveness probe, will be restarted" in messages
    _wait_pod(devcluster, ns, "frozen", _is_ready, "frozen Ready after the restart")


def test_deletion_honours_the_grace_period(
    devcluster: controlplane.Cluster, make_pod_runner: Runner, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=FAKE, namespace=ns, extra_env={"FAKE_IGNORE_TERM": "1"})
    _apply(devcluster, ns, _pod("stubborn", grace_s=4))
    _wait_pod(devcluster, ns, "stubborn", _is_ready, "stubborn Ready")
    proc = _proc(runner, ns, "stubborn")
    child = proc.child
    assert child is not None and proc.record is not None
    devcluster.run_kubectl("delete", "pod", "stubborn", "-n", ns, "--wait=false")
    time.sleep(1.5)
    assert processes.is_running(proc.record), "killed before its grace period ended"
    processes.wait_for(
        lambda: devcluster.api().get_or_none(f"/api/v1/namespaces/{ns}/pods/stubborn") is None,
        timeout_s=30,
        what="the pod object to be removed",
    )
    assert child.poll() == -signal.SIGKILL  # it ignored SIGTERM, so the grace ended in SIGKILL


def test_a_model_that_cannot_load_is_never_ready_and_the_operator_says_so(
    kube: Kube, operator: Operator, tmp_path: Path
) -> None:
    """The real serving runtime: a good model becomes Ready and listed as a ready endpoint; a
    model whose sha256 does not match never does, its Deployment is not Available, and the
    ModelDeployment is not Ready."""
    cluster, ns = kube.cluster, kube.namespace
    model = tmp_path / "doubler.onnx"
    sha = doubler_model(model)
    kube.apply(model_deployment("good", model={"uri": str(model), "sha256": sha}))
    kube.apply(model_deployment("bad", model={"uri": str(model), "sha256": "0" * 64}))

    def ready_endpoints(service: str) -> list[bool]:
        slices = cluster.kubectl_json(
            "get", "endpointslices", "-n", ns, "-l", f"kubernetes.io/service-name={service}"
        )["items"]
        return [
            e["conditions"].get("ready", False) for s in slices for e in s.get("endpoints") or []
        ]

    processes.wait_for(
        lambda: (kube.status("good").get("phase") == "Ready") and ready_endpoints("good") == [True],
        timeout_s=120,
        what="good Ready with one ready endpoint",
    )
    # The bad one: the process exits (sha256 mismatch) and is restarted at least twice; in
    # all that time it is never Ready.
    processes.wait_for(
        lambda: any(
            _cstatus(p).get("restartCount", 0) >= 2
            for p in kube.items("pods", "app.kubernetes.io/instance=bad")
        ),
        timeout_s=120,
        what="the bad model's pod to crash-loop",
    )
    pods = kube.items("pods", "app.kubernetes.io/instance=bad")
    assert pods and not any(_is_ready(p) for p in pods)
    assert _cstatus(pods[0])["lastState"]["terminated"]["reason"] == "Error"
    deployment = kube.get("deployment", "bad")
    assert deployment is not None and not deployment["status"].get("availableReplicas")
    assert True not in ready_endpoints("bad")
    status = kube.status("bad")
    assert status.get("phase") != "Ready"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
