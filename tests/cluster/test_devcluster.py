"""The devcluster is a real Kubernetes: scheduling onto pools, garbage collection, CRD schema
validation, and start/stop that leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from devcluster import controlplane, processes
from devcluster import prometheus as prom
from devcluster.apiclient import ApiClient
from devcluster.nodes import default_pools
from support.operator_kit import processes_naming

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def _deployment(name: str, replicas: int, *, tolerate_edge: bool) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "nodeSelector": {"onnxops.io/pool": "edge"},
        "containers": [{"name": "app", "image": "registry.example/app:1"}],
    }
    if tolerate_edge:
        pod_spec["tolerations"] = [
            {"key": "node-role.kubernetes.io/edge", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def _pods(cluster: controlplane.Cluster, ns: str, app: str) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")["items"])


def test_edge_deployment_runs_on_edge_nodes_and_is_garbage_collected(
    devcluster: controlplane.Cluster, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    edgy = _deployment("edgy", 2, tolerate_edge=True)
    devcluster.run_kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(edgy))

    def running() -> list[dict[str, Any]] | None:
        pods = _pods(devcluster, ns, "edgy")
        ok = len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)
        return pods if ok else None

    pods = processes.wait_for(running, timeout_s=60, what="2 Running edge pods")
    nodes = {p["spec"]["nodeName"] for p in pods}
    for node in nodes:
        labels = devcluster.kubectl_json("get", "node", node)["metadata"]["labels"]
        assert labels["onnxops.io/pool"] == "edge"
        assert "node-role.kubernetes.io/edge" in labels

    devcluster.run_kubectl("delete", "deployment", "edgy", "-n", ns, "--wait=false")

    def collected() -> bool:
        rs = devcluster.kubectl_json("get", "replicasets", "-n", ns, "-l", "app=edgy")["items"]
        return not rs and not _pods(devcluster, ns, "edgy")

    processes.wait_for(collected, timeout_s=60, what="ReplicaSet and Pods garbage-collected")


def test_edge_taint_keeps_intolerant_pods_pending(
    devcluster: controlplane.Cluster, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    intolerant = _deployment("intolerant", 1, tolerate_edge=False)
    devcluster.run_kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(intolerant))

    def unschedulable() -> bool:
        pods = _pods(devcluster, ns, "intolerant")
        conditions = pods[0]["status"].get("conditions", []) if pods else []
        return any(
            c["type"] == "PodScheduled" and c["reason"] == "Unschedulable" for c in conditions
        )

    processes.wait_for(unschedulable, timeout_s=60, what="the scheduler to refuse the pod")
    pod = _pods(devcluster, ns, "intolerant")[0]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.test.onnxops.io"},
    "spec": {
        "group": "test.onnxops.io",
        "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["pool"],
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.minReplicas <= self.maxReplicas",
                                        "message": "minReplicas must not exceed maxReplicas",
                                    }
                                ],
                                "properties": {
                                    "pool": {"type": "string", "enum": ["cloud", "edge"]},
                                    "minReplicas": {"type": "integer", "minimum": 0},
                                    "maxReplicas": {"type": "integer", "minimum": 1},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _gadget(pool: str, low: int, high: int) -> str:
    spec = {"pool": pool, "minReplicas": low, "maxReplicas": high}
    return json.dumps(
        {
            "apiVersion": "test.onnxops.io/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": spec,
        }
    )


def test_crd_schema_rejects_invalid_objects(
    devcluster: controlplane.Cluster, k8s_namespace: str
) -> None:
    devcluster.apply(CRD)
    devcluster.wait_established("gadgets.test.onnxops.io")
    try:
        bad_enum = devcluster.run_kubectl(
            "apply", "-n", k8s_namespace, "-f", "-", input=_gadget("moon", 1, 2), check=False
        )
        assert bad_enum.returncode != 0
        assert 'spec.pool: Unsupported value: "moon"' in bad_enum.stderr

        bad_cel = devcluster.run_kubectl(
            "apply", "-n", k8s_namespace, "-f", "-", input=_gadget("edge", 5, 2), check=False
        )
        assert bad_cel.returncode != 0
        assert "minReplicas must not exceed maxReplicas" in bad_cel.stderr

        good = devcluster.run_kubectl(
            "apply", "-n", k8s_namespace, "-f", "-", input=_gadget("edge", 1, 2)
        )
        assert "gadget.test.onnxops.io/g created" in good.stdout
    finally:
        devcluster.run_kubectl("delete", "crd", "gadgets.test.onnxops.io", "--wait=false")


def _cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devcluster", f"--state-dir={state_dir}", *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "hack" / "devcluster"), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )


def test_cli_up_status_down_leaves_nothing_running(tmp_path: Path) -> None:
    """``up`` outlives its command; ``down`` stops exactly what ``up`` recorded."""
    try:  # `up` inside: interrupted mid-start, `down` still stops what it recorded
        up = _cli(tmp_path, "up", "--cloud=1", "--edge=1")
        cluster = controlplane.load(tmp_path)
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in up.stdout
        assert cluster is not None
        assert all(cluster.running().values()), cluster.running()
        status = _cli(tmp_path, "status")
        assert status.returncode == 0 and "ready" in status.stdout
        again = _cli(tmp_path, "up")  # a second `make cluster-up` keeps the running cluster
        assert again.returncode == 0, again.stderr
        assert f"already running at {cluster.server}" in again.stdout
        assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in again.stdout
        assert all(cluster.running().values())
        nodes = cluster.kubectl_json("get", "nodes")["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["cloud-0", "edge-0"]
    finally:
        down = _cli(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert not any(processes.is_running(r) for r in cluster.processes)
    assert _cli(tmp_path, "status").returncode == 1


def _recorded(state_dir: Path) -> list[str]:
    cluster = controlplane.load(state_dir)
    return [r.name for r in cluster.processes] if cluster else []


def test_make_clean_stops_what_a_killed_up_had_started(tmp_path: Path) -> None:
    """``up`` killed mid-start (SIGKILL, a CI timeout), then ``make clean``: its ``cluster-down``
    must find and stop what ``up`` had started before the state folder is removed."""
    root = tmp_path / "repo"  # a copy of the Makefile and the tool: `make clean` runs there
    shutil.copytree(
        REPO / "hack" / "devcluster" / "devcluster", root / "hack/devcluster/devcluster"
    )
    shutil.copy(REPO / "Makefile", root)
    state_dir = root / ".devcluster"
    env = {"PYTHONPATH": str(REPO / "hack" / "devcluster"), "PATH": "/usr/bin:/bin"}
    up = subprocess.Popen(
        [sys.executable, "-m", "devcluster", f"--state-dir={state_dir}", "up", "--cloud=1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Wait for the apiserver to be recorded, not for its log file: the file exists a moment
        # before the record, and a kill in between (seen on a loaded machine) leaves a process
        # that no state file names.
        processes.wait_for(
            lambda: "kube-apiserver" in _recorded(state_dir),
            timeout_s=60,
            what="up to record the apiserver",
            interval_s=0.01,
        )
        up.kill()
        up.wait()
        assert processes_naming(state_dir), "etcd and the apiserver outlive the killed `up`"
        status = _cli(state_dir, "status")
        assert status.returncode == 1 and "start did not finish" in status.stdout
        partial = controlplane.load(state_dir)
        assert partial is not None
        # No CA file yet perhaps (`up` was killed before extracting it): skip verification.
        orphan = ApiClient(partial.server, partial.token, None)
        processes.wait_for(orphan.ready, timeout_s=60, what="the orphaned apiserver")
        again = _cli(state_dir, "up")  # a ready apiserver is not a whole cluster
        assert again.returncode == 1 and "make cluster-down" in again.stderr
        clean = subprocess.run(
            ["make", "-C", str(root), "clean"], capture_output=True, text=True, timeout=60
        )
        assert clean.returncode == 0, clean.stderr
        assert "devcluster stopped" in clean.stdout
        assert not state_dir.exists()
        assert not processes_naming(state_dir)
    finally:
        up.kill()
        for proc in processes_naming(state_dir):  # only if the assertions above failed
            proc.kill()


@contextmanager
def _port_taken_after(monkeypatch: pytest.MonkeyPatch, honest_probes: int) -> Iterator[int]:
    """A port bound by someone else, which `free_port` hands out after `honest_probes` free
    ones (and answers honestly again afterwards): the race between probing and binding."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        probes = iter([*(processes.free_port() for _ in range(honest_probes)), busy])
        real_free_port = processes.free_port
        monkeypatch.setattr(processes, "free_port", lambda: next(probes, None) or real_free_port())
        yield busy


def test_start_retries_when_a_probed_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port that was free when probed but bound by someone else before the apiserver binds it."""
    with _port_taken_after(monkeypatch, honest_probes=2) as busy:
        cluster = controlplane.start(
            tmp_path, pools=default_pools(1, 0), tie_to_parent=True, timeout_s=60
        )
        try:
            assert cluster.server != f"https://127.0.0.1:{busy}"
            assert cluster.api().ready()
            assert (
                "address already in use" in (tmp_path / "logs" / "kube-apiserver.log").read_text()
            )
        finally:
            cluster.stop()
    assert not processes_naming(tmp_path)


def test_prometheus_start_retries_when_its_probed_port_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _port_taken_after(monkeypatch, honest_probes=0) as busy:
        server = prom.start(tmp_path, tie_to_parent=True)
        try:
            assert not server.url.endswith(f":{busy}")
            assert server.query("vector(1)")[0]["value"][1] == "1"
            assert "address already in use" in (tmp_path / "prometheus.log").read_text()
        finally:
            server.stop()
    assert not processes.is_running(server.record)


SLOW_TEST = """
import time
from pathlib import Path

import pytest


@pytest.fixture
def stopped_in_finally(tmp_path_factory):
    try:
        yield
    finally:
        Path({mark!r}).write_text("finalized")


def test_slow(stopped_in_finally):
    Path({started!r}).write_text("started")
    time.sleep(60)
"""


def test_sigterm_to_pytest_still_runs_fixture_finalizers(tmp_path: Path) -> None:
    """``timeout``/CI cancel send SIGTERM: the session must unwind and stop what it started."""
    started, mark = tmp_path / "started", tmp_path / "finalized"
    test_file = tmp_path / "test_slow.py"
    test_file.write_text(SLOW_TEST.format(started=str(started), mark=str(mark)))
    # Our conftest as a plugin (the file lies outside tests/), no ini file, no cache: so the
    # path pyproject's `pythonpath` gives every suite is given here.
    options = ["-q", "-p", "no:cacheprovider", "-p", "conftest", "-c", "/dev/null"]
    path = os.pathsep.join(str(REPO / d) for d in ("tests", "hack/devcluster"))
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", *options, f"--rootdir={tmp_path}", str(test_file)],
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        processes.wait_for(started.exists, timeout_s=60, what="the inner test to start")
        inner.terminate()
        output, _ = inner.communicate(timeout=30)
    finally:
        inner.kill()
    assert mark.read_text() == "finalized", output
    assert inner.returncode != 0
