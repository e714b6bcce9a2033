"""Shadow mirroring through the local cluster as a rollout uses it: the stable pod mounts an
optional ConfigMap (absent at first), the pod runner projects it when it appears and updates it
in place, and the runtime mirrors to the candidate pod's IP (10.x, as an EndpointSlice lists
it), reached on loopback through the runner's ONNXOPS_MIRROR_ADDRESS_REWRITE."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devcluster import controlplane, processes
from devcluster.podrunner import PodRunner, ServingProcess
from support.factories import doubler_model
from support.serving_harness import maybe_metric

pytestmark = pytest.mark.cluster

IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"
MIRROR_FILE = "/etc/onnxops/mirror/mirror.json"
SHADOW = "onnxops_shadow_requests_total"
BODY = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}


def _pod(name: str, model: Path, sha: str, version: str, *, mirror: bool) -> dict[str, Any]:
    env = [
        {"name": "ONNXOPS_MODEL_URI", "value": str(model)},
        {"name": "ONNXOPS_MODEL_SHA256", "value": sha},
        {"name": "ONNXOPS_MODEL_VERSION", "value": version},
    ]
    container: dict[str, Any] = {
        "name": "server", "image": IMAGE, "env": env,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
    }  # fmt: skip
    spec: dict[str, Any] = {"nodeSelector": {"onnxops.io/pool": "cloud"}, "containers": [container]}
    if mirror:  # as the contract has the stable pods mount NAME-mirror
        env.append({"name": "ONNXOPS_MIRROR_CONFIG", "value": MIRROR_FILE})
        # A copy answered later than the timeout counts as an error, not a verdict; what is
        # tested here is where copies go and what they say, so a loaded machine (the suite's
        # workers side by side) must not turn a slow answer into a failure: 10 s, not 2.
        env.append({"name": "ONNXOPS_MIRROR_TIMEOUT_S", "value": "10"})
        container["volumeMounts"] = [{"name": "mirror", "mountPath": "/etc/onnxops/mirror"}]
        spec["volumes"] = [
            {"name": "mirror", "configMap": {"name": "stable-mirror", "optional": True}}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _apply(cluster: controlplane.Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.run_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(listing))


def _ready(proc: ServingProcess) -> bool:
    try:
        return httpx.get(f"{proc.url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _outcomes(proc: ServingProcess) -> dict[str, float]:
    text = httpx.get(f"{proc.url}/metrics", timeout=5).text
    return {
        o: maybe_metric(text, SHADOW, candidate_version="2", outcome=o) or 0.0
        for o in ("agree", "disagree", "error", "dropped")
    }


def _infer(proc: ServingProcess, n: int) -> None:
    with httpx.Client(timeout=5) as client:
        for _ in range(n):
            reply = client.post(f"{proc.url}/v2/models/doubler/infer", json=BODY)
            assert reply.status_code == 200, reply.text


def test_a_stable_pod_mirrors_to_the_candidate_pods_ip(
    devcluster: controlplane.Cluster,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    model = tmp_path / "doubler.onnx"
    sha = doubler_model(model)
    runner = make_pod_runner(namespace=k8s_namespace)  # the real serving runtime
    _apply(
        devcluster,
        k8s_namespace,
        _pod("stable", model, sha, "1", mirror=True),
        _pod("cand", model, sha, "2", mirror=False),
    )
    stable, cand = (
        processes.wait_for(
            lambda key=key: runner.serving().get(f"{k8s_namespace}.{key}"),
            timeout_s=60,
            what=f"the {key} process",
        )
        for key in ("stable", "cand")
    )
    for proc in (stable, cand):
        processes.wait_for(lambda p=proc: _ready(p), timeout_s=60, what=f"{proc.target} ready")
    cand_ip = devcluster.kubectl_json("get", "pod", "cand", "-n", k8s_namespace)["status"]["podIP"]
    assert cand_ip.startswith("10.")

    # No ConfigMap yet: the optional volume is empty and mirroring is off.
    _infer(stable, 3)
    assert _outcomes(stable) == dict.fromkeys(("agree", "disagree", "error", "dropped"), 0.0)

    doc = {"percent": 100, "targets": [f"{cand_ip}:8080"], "candidateVersion": "2"}
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "stable-mirror"},
        "data": {"mirror.json": json.dumps(doc)},
    }
    _apply(devcluster, k8s_namespace, cm)
    text = f"{stable.url}/metrics"
    processes.wait_for(
        lambda: maybe_metric(httpx.get(text).text, SHADOW, candidate_version="2") is not None,
        timeout_s=30,
        what="the ConfigMap projected and read by the stable runtime",
    )
    _infer(stable, 10)
    counted = processes.wait_for(
        lambda: (o := _outcomes(stable)) and sum(o.values()) >= 10 and o,
        timeout_s=30,
        what="10 copies answered",
    )
    assert counted == {"agree": 10, "disagree": 0, "error": 0, "dropped": 0}, counted

    # Updated in place: percent 0 switches mirroring off, with no restart.
    host_file = Path((stable.env or {})["ONNXOPS_MIRROR_CONFIG"])
    off = json.dumps({**doc, "percent": 0})
    devcluster.run_kubectl(
        "patch", "configmap", "stable-mirror", "-n", k8s_namespace,
        "-p", json.dumps({"data": {"mirror.json": off}}),
    )  # fmt: skip
    processes.wait_for(
        lambda: host_file.read_text() == off, timeout_s=20, what="the volume to follow the change"
    )
    time.sleep(1.5)  # the runtime's once-a-second check
    _infer(stable, 5)
    time.sleep(1.0)
    assert _outcomes(stable)["agree"] == 10
    pod = devcluster.kubectl_json("get", "pod", "stable", "-n", k8s_namespace)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
