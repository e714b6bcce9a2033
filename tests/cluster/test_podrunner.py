"""The pod runner (kubelet stand-in): env resolution, which pods it serves, and a process it
starts being scraped by Prometheus with the pod's labels."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devcluster import controlplane, processes
from devcluster import prometheus as prom
from devcluster.podenv import EnvError, container_env, quantity
from devcluster.podrunner import PodRunner, ServingProcess, target_labels, wants_process
from devcluster.servingpod import loopback_of
from devcluster.termlog import TerminationLog
from support.factories import doubler_model

FAKE_SERVING = Path(__file__).with_name("fake_serving.py")
IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"


def _pod(containers: list[dict[str, Any]], phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "iris-abc",
            "namespace": "ml",
            "uid": "u-1",
            "labels": {"onnxops.io/model-deployment": "iris", "app": "x"},
        },
        "spec": {"nodeName": "edge-1", "containers": containers},
        "status": {"phase": phase, "podIP": "10.244.0.9"},
    }


def test_container_env_resolves_values_refs_and_expansion() -> None:
    container = {
        "name": "server",
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "envFrom": [{"configMapRef": {"name": "base"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-$(CM_X)-$$(A)-$(NOPE)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "DEP",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['onnxops.io/model-deployment']"}
                },
            },
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {
                    "resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}
                },
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}},
            {
                "name": "GONE",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
        ],
    }
    data = {("ConfigMap", "ml", "base"): {"X": "x"}, ("Secret", "ml", "sec"): {"k": "v"}}
    env = container_env(_pod([container]), container, lambda *key: data.get(key))
    assert env == {
        "CM_X": "x",
        "A": "1",
        "B": "1-x-$(A)-$(NOPE)",
        "POD": "iris-abc",
        "DEP": "iris",
        "IP": "10.244.0.9",
        "MEM_MI": "256",
        "CPU": "1",  # the kubelet rounds cpu up to whole cores with the default divisor
        "S": "v",
    }


def test_container_env_missing_required_configmap_is_an_error() -> None:
    container = {
        "name": "server",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}],
    }
    with pytest.raises(EnvError, match="ConfigMap ml/nope not found"):
        container_env(_pod([container]), container, lambda *_: None)


def test_quantity_parses_binary_and_milli_suffixes() -> None:
    assert quantity("1.5Gi") == 1.5 * 2**30
    assert quantity("250m") == 0.25
    with pytest.raises(EnvError):
        quantity("12parsecs")


def test_only_scheduled_serving_containers_get_a_process() -> None:
    server = {"name": "server", "image": IMAGE}
    assert wants_process(_pod([server]))
    assert wants_process(_pod([server], phase="Pending"))  # the runner is its kubelet
    unscheduled = _pod([server], phase="Pending")
    del unscheduled["spec"]["nodeName"]
    assert not wants_process(unscheduled)
    assert not wants_process(_pod([{"name": "server", "image": "nginx:1"}]))
    assert not wants_process(_pod([{"name": "sidecar", "image": IMAGE}]))
    deleting = _pod([server])
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not wants_process(deleting)


def test_target_labels_carry_pod_identity_and_sanitized_labels() -> None:
    labels = target_labels(_pod([{"name": "server", "image": IMAGE}]))
    assert labels == {
        "onnxops_io_model_deployment": "iris",
        "app": "x",
        "namespace": "ml",
        "pod": "iris-abc",
        "container": "server",
        "node": "edge-1",
    }


def _serving_deployment(name: str, image: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "onnxops", "onnxops.io/model-deployment": name}
    env = [
        {"name": "ONNXOPS_MODEL_NAME", "value": name},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "ONNXOPS_THREADS", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "t"}}},
        {"name": "FAKE_SECRET", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "s"}}},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"onnxops.io/pool": "cloud"},
                    "containers": [{"name": "server", "image": image, "env": env}],
                },
            },
        },
    }


@pytest.mark.cluster
def test_prometheus_scrapes_a_runner_process_with_the_pods_labels(
    devcluster: controlplane.Cluster,
    prometheus: prom.Prometheus,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
) -> None:
    ns = k8s_namespace
    runner = make_pod_runner(command=[sys.executable, str(FAKE_SERVING)], namespace=ns)
    setup = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"t": "2"}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sec"},
            "stringData": {"s": "pw"},
        },
        _serving_deployment("iris", IMAGE),
        _serving_deployment("not-ours", "nginx:1"),  # container "server", but not our image
    ]
    listing = {"apiVersion": "v1", "kind": "List", "items": setup}
    devcluster.run_kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(listing))

    series = prometheus.wait_for(f'onnxops_fake_info{{namespace="{ns}"}}', timeout_s=60)
    pod = devcluster.kubectl_json("get", "pods", "-n", ns, "-l", "onnxops.io/model-deployment=iris")
    pod = pod["items"][0]
    labels = series[0]["metric"]
    assert labels["pod"] == labels["pod_name_env"] == pod["metadata"]["name"]
    assert labels["container"] == "server"
    assert labels["node"] == pod["spec"]["nodeName"]
    assert labels["onnxops_io_model_deployment"] == "iris"
    assert labels["job"] == prom.JOB
    # The container's env reached the process: value, configMapKeyRef and secretKeyRef.
    assert (labels["model"], labels["threads"], labels["secret"]) == ("iris", "2", "pw")
    ours = [name for name in runner.serving() if name.startswith(f"{ns}.")]
    assert ours == [f"{ns}.{pod['metadata']['name']}"], "the nginx pod must not get a process"
    proc = runner.serving()[ours[0]]

    devcluster.run_kubectl("delete", "deployment", "iris", "-n", ns)
    processes.wait_for(
        lambda: ours[0] not in runner.serving() and not processes.is_running(proc.record),
        timeout_s=60,
        what="the serving process to stop with its pod",
    )
    assert ours[0] not in prometheus.targets.names()
    processes.wait_for(
        lambda: not prometheus.query(f'up{{namespace="{ns}"}}'),
        timeout_s=30,
        what="Prometheus to drop the target",
    )


@pytest.mark.cluster
def test_runner_serves_a_pod_with_the_real_serving_runtime(
    devcluster: controlplane.Cluster,
    prometheus: prom.Prometheus,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    model = tmp_path / "doubler.onnx"
    sha = doubler_model(model)
    deployment = _serving_deployment("doubler", IMAGE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "ONNXOPS_MODEL_URI", "value": str(model)},
        {"name": "ONNXOPS_MODEL_SHA256", "value": sha},
    ]
    # Default command: python -m onnxops_serving from .venv.
    runner = make_pod_runner(namespace=k8s_namespace)
    devcluster.run_kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(deployment))

    up = prometheus.wait_for(f'up{{namespace="{k8s_namespace}"}} == 1', timeout_s=90)
    proc = runner.serving()[f"{k8s_namespace}.{up[0]['metric']['pod']}"]
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 3]}]}
    reply = httpx.post(f"{proc.url}/v2/models/doubler/infer", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == [3.0, 6.0]
    prometheus.wait_for(
        f'onnxops_inference_duration_seconds_count{{namespace="{k8s_namespace}",'
        f'onnxops_io_model_deployment="doubler"}} >= 1',
        timeout_s=30,
    )


def _config_objects(*, configmap: bool = True) -> list[dict[str, Any]]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}}
    objects: list[dict[str, Any]] = [{**secret, "stringData": {"s": "pw"}}]
    if configmap:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}
        objects.append({**cm, "data": {"t": "2"}})
    return objects


def _apply(cluster: controlplane.Cluster, namespace: str, objects: list[dict[str, Any]]) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": objects}
    cluster.run_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(listing))


def _ready(proc: ServingProcess) -> bool:
    try:
        return httpx.get(f"{proc.url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.cluster
def test_runner_restarts_a_process_that_exits_on_the_same_port(
    devcluster: controlplane.Cluster,
    prometheus: prom.Prometheus,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
) -> None:
    """A crashed container is restarted by the kubelet; its target stays (``up`` reads 0)."""
    runner = make_pod_runner(command=[sys.executable, str(FAKE_SERVING)], namespace=k8s_namespace)
    _apply(devcluster, k8s_namespace, [*_config_objects(), _serving_deployment("crashy", IMAGE)])
    proc = processes.wait_for(
        lambda: next(iter(runner.serving().values()), None), timeout_s=60, what="a process"
    )
    processes.wait_for(lambda: _ready(proc), timeout_s=30, what="the first process to serve")
    first_pid, port = proc.child.pid, proc.port

    os.kill(first_pid, signal.SIGKILL)  # the test's own process, started through the runner
    processes.wait_for(
        lambda: proc.child.pid != first_pid and _ready(proc),
        timeout_s=30,
        what="the runner to restart the process",
    )
    assert (proc.restarts, proc.port) == (1, port)
    assert runner.serving() == {proc.target: proc}
    assert proc.target in prometheus.targets.names()


@pytest.mark.cluster
def test_runner_starts_a_pod_once_its_configmap_exists(
    devcluster: controlplane.Cluster,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The kubelet retries a container whose env source is missing (CreateContainerConfigError)."""
    caplog.set_level(logging.WARNING, logger="devcluster.podrunner")
    runner = make_pod_runner(command=[sys.executable, str(FAKE_SERVING)], namespace=k8s_namespace)
    _apply(
        devcluster,
        k8s_namespace,
        [*_config_objects(configmap=False), _serving_deployment("late", IMAGE)],
    )
    processes.wait_for(
        lambda: f"ConfigMap {k8s_namespace}/cfg not found" in caplog.text,
        timeout_s=60,
        what="the runner to find the ConfigMap missing",
    )
    assert not runner.serving()

    _apply(devcluster, k8s_namespace, _config_objects())
    proc = processes.wait_for(
        lambda: next(iter(runner.serving().values()), None), timeout_s=30, what="a process"
    )
    processes.wait_for(lambda: _ready(proc), timeout_s=30, what="the process to serve")
    assert 'threads="2"' in httpx.get(f"{proc.url}/metrics", timeout=5).text


@pytest.mark.cluster
def test_every_pod_listens_on_its_own_address_with_its_container_ports(
    devcluster: controlplane.Cluster,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
) -> None:
    """As in a pod's network namespace: three replicas all listen on their container port 8080,
    each on its pod IP moved into 127.0.0.0/8, so no port is ever handed to two processes."""
    runner = make_pod_runner(command=[sys.executable, str(FAKE_SERVING)], namespace=k8s_namespace)
    deployment = _serving_deployment("many", IMAGE)
    deployment["spec"]["replicas"] = 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": 8080}]
    _apply(devcluster, k8s_namespace, [*_config_objects(), deployment])
    procs = processes.wait_for(
        lambda: (found := list(runner.serving().values())) and len(found) == 3 and found,
        timeout_s=60,
        what="three processes",
    )
    for proc in procs:
        processes.wait_for(lambda p=proc: _ready(p), timeout_s=30, what=f"{proc.target} serving")
    assert {p.port for p in procs} == {8080}
    assert len({p.address for p in procs}) == 3
    pods = devcluster.kubectl_json("get", "pods", "-n", k8s_namespace)["items"]
    ips = {p["status"]["podIP"] for p in pods}
    assert {p.address for p in procs} == {loopback_of(ip) for ip in ips}
    assert all(p.url == f"http://{p.address}:8080" for p in procs)
    # Each process can reach the others' pod IPs (mirroring): the rewrite is loopback_of's.
    for proc in procs:
        assert 'mirror_rewrite="10.=127."' in httpx.get(proc.url + "/metrics").text


def test_termination_message_is_the_file_or_the_logs_tail(tmp_path: Path) -> None:
    log_file = tmp_path / "pod.log"
    log_file.write_text("".join(f"line {i}\n" for i in range(200)))
    container = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    term = TerminationLog(container, tmp_path / "pod" / "termination-log", log_file)
    assert term.rewrite_env({"A": "/dev/termination-log", "B": "/x"}) == {
        "A": str(tmp_path / "pod" / "termination-log"),
        "B": "/x",
    }
    term.reset()
    tail = term.message(exit_code=1)  # nothing written, a failed run: the log's last 80 lines
    assert tail.splitlines()[0] == "line 120" and tail.splitlines()[-1] == "line 199"
    assert term.message(exit_code=0) == "", "no fallback for a clean exit"
    term.host_file.write_text("ModelNotFound: " + "x" * 5000)
    assert len(term.message(exit_code=1)) == 4096
    term.reset()
    assert term.message(exit_code=1) != "" and not term.host_file.read_text(), "fresh per run"
    plain = TerminationLog({}, tmp_path / "plain" / "termination-log", log_file)
    plain.reset()
    assert plain.message(exit_code=1) == "", "policy File: no log fallback"
