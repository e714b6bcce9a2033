"""The pod runner's volumes (`devcluster/volumes.py`): configMap/secret projected with the
kubelet's atomic writer and kept current, emptyDir, a PVC bound to a hostPath PV; the
container's mount paths rebound in its environment so the real runtime serves a ``pvc://`` model.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devcluster import controlplane, processes
from devcluster.podrunner import PodRunner
from devcluster.volumes import DATA_LINK, PodVolumes, VolumeError, atomic_write, projection
from support.factories import doubler_model

FAKE_SERVING = Path(__file__).with_name("fake_serving.py")
IMAGE = "ghcr.io/onnxops/onnxops-serving:0.1.0"


def test_atomic_write_switches_the_whole_set_in_one_rename(tmp_path: Path) -> None:
    atomic_write(tmp_path, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
    first = os.readlink(tmp_path / DATA_LINK)
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "a").is_symlink()
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600
    atomic_write(tmp_path, {"a": (b"new", 0o644)})
    assert os.readlink(tmp_path / DATA_LINK) != first
    assert (tmp_path / "a").read_bytes() == b"new"
    assert not (tmp_path / "b").exists(), "a key that went away goes"
    assert not (tmp_path / first).exists(), "the old payload is removed after the switch"


def test_projection_honours_items_modes_binary_data_and_optional() -> None:
    cm = {"data": {"k": "v", "other": "x"}, "binaryData": {"bin": "AAE="}}
    assert projection(cm, {"name": "c"}, "ConfigMap") == {
        "k": (b"v", 0o644), "other": (b"x", 0o644), "bin": (b"\x00\x01", 0o644),
    }  # fmt: skip
    source = {
        "name": "c",
        "defaultMode": 0o400,
        "items": [{"key": "k", "path": "d/f", "mode": 0o440}],
    }
    assert projection(cm, source, "ConfigMap") == {"d/f": (b"v", 0o440)}
    assert projection({"data": {"s": "cHc="}}, {"secretName": "s"}, "Secret") == {
        "s": (b"pw", 0o644)
    }
    assert projection(None, {"name": "c", "optional": True}, "ConfigMap") == {}
    assert projection(None, {"name": "c"}, "ConfigMap") is None
    with pytest.raises(VolumeError, match="no key 'nope'"):
        projection(cm, {"name": "c", "items": [{"key": "nope", "path": "p"}]}, "ConfigMap")


def test_mount_paths_are_rebound_in_the_environment(tmp_path: Path) -> None:
    pod = {
        "metadata": {"namespace": "ml"},
        "spec": {"volumes": [{"name": "m", "emptyDir": {}}, {"name": "t", "emptyDir": {}}]},
    }
    container = {
        "volumeMounts": [{"name": "m", "mountPath": "/models"}, {"name": "t", "mountPath": "/tmp"}]
    }
    volumes = PodVolumes(pod, container, tmp_path)
    volumes.set_up(lambda path: None)
    env = volumes.rewrite_env(
        {"A": "/models/x.onnx", "B": "file:///models", "C": "/modelsx", "D": "http://h/models"}
    )
    assert env["A"] == f"{tmp_path}/volumes/m/x.onnx" and env["B"] == f"file://{tmp_path}/volumes/m"
    assert (env["C"], env["D"]) == ("/modelsx", "http://h/models")
    assert env["TMPDIR"] == f"{tmp_path}/volumes/t"
    # /tmp is the host's shared file system here: a host path under it is not rebound.
    assert volumes.rewrite_env({"M": "/tmp/model.onnx"})["M"] == "/tmp/model.onnx"


def _pod_with_volumes(name: str, host_dir: Path) -> list[dict[str, Any]]:
    labels = {"onnxops.io/model-deployment": name}
    mounts = [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "sec", "mountPath": "/etc/sec"},
        {"name": "cache", "mountPath": "/var/cache/onnxops"},
        {"name": "model", "mountPath": "/models", "readOnly": True},
    ]
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "t", "path": "threads"}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "cache", "emptyDir": {}},
        {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
    ]
    env = [
        {"name": "ONNXOPS_MODEL_URI", "value": "/models/doubler.onnx"},
        {"name": "ONNXOPS_MODEL_CACHE_DIR", "value": "/var/cache/onnxops"},
        {"name": "CFG_FILE", "value": "/etc/cfg/threads"},
        {"name": "SEC_DIR", "value": "/etc/sec"},
    ]
    container = {
        "name": "server", "image": IMAGE, "env": env, "volumeMounts": mounts,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 1},
    }  # fmt: skip
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"models-{host_dir.name}"},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
            "storageClassName": "", "hostPath": {"path": str(host_dir)},
        },
    }  # fmt: skip
    pvc = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models"},
        "spec": {
            "accessModes": ["ReadOnlyMany"], "storageClassName": "",
            "volumeName": pv["metadata"]["name"], "resources": {"requests": {"storage": "1Gi"}},
        },
    }  # fmt: skip
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeSelector": {"onnxops.io/pool": "cloud"}, "containers": [container],
            "volumes": volumes,
        },
    }  # fmt: skip
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"t": "2"}}
    sec = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sec"},
        "stringData": {"s": "pw"},
    }
    return [pv, pvc, cm, sec, pod]


@pytest.mark.cluster
def test_a_pvc_model_serves_and_configmaps_stay_current(
    devcluster: controlplane.Cluster,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    sha = doubler_model(store / "doubler.onnx")
    objects = _pod_with_volumes("vol", store)
    objects[-1]["spec"]["containers"][0]["env"].append(
        {"name": "ONNXOPS_MODEL_SHA256", "value": sha}
    )
    runner = make_pod_runner(namespace=k8s_namespace)  # the real serving runtime
    listing = {"apiVersion": "v1", "kind": "List", "items": objects}
    try:
        devcluster.run_kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(listing))
        proc = processes.wait_for(
            lambda: next(iter(runner.serving().values()), None), timeout_s=60, what="a process"
        )
        body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
        reply = processes.wait_for(
            lambda: (r := httpx.post(f"{proc.url}/v2/models/doubler/infer", json=body, timeout=5))
            .status_code == 200 and r,
            timeout_s=60, what="the pvc:// model to serve",
        )  # fmt: skip
        assert reply.json()["outputs"][0]["data"] == [2.0, 4.0]
        env = proc.env or {}
        assert env["ONNXOPS_MODEL_URI"] == f"{store}/doubler.onnx"  # the PV's path, in place
        cache = Path(env["ONNXOPS_MODEL_CACHE_DIR"])
        assert cache.is_dir() and cache.is_relative_to(runner.volumes_dir / proc.uid)
        assert Path(env["CFG_FILE"]).read_text() == "2"
        secret = Path(env["SEC_DIR"]) / "s"
        assert secret.read_text() == "pw" and stat.S_IMODE(secret.stat().st_mode) == 0o400

        patch = json.dumps({"data": {"t": "5"}})
        devcluster.run_kubectl("patch", "configmap", "cfg", "-n", k8s_namespace, "-p", patch)
        processes.wait_for(
            lambda: Path(env["CFG_FILE"]).read_text() == "5", timeout_s=20,
            what="the configMap volume to follow the change",
        )  # fmt: skip
    finally:
        devcluster.run_kubectl("delete", "pv", objects[0]["metadata"]["name"], "--wait=false",
                               check=False)  # fmt: skip
    root = runner.volumes_dir / proc.uid
    devcluster.run_kubectl("delete", "pod", "vol", "-n", k8s_namespace, "--timeout=60s")
    processes.wait_for(lambda: not root.exists(), timeout_s=30, what="the pod's volumes removed")
    assert (store / "doubler.onnx").exists(), "a PV's data outlives the pod"


@pytest.mark.cluster
def test_a_missing_volume_source_waits_with_failed_mount(
    devcluster: controlplane.Cluster,
    make_pod_runner: Callable[..., PodRunner],
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    objects = _pod_with_volumes("late", tmp_path)
    pod = objects[-1]
    pod["spec"]["volumes"] = [pod["spec"]["volumes"][0]]
    pod["spec"]["containers"][0]["volumeMounts"] = [pod["spec"]["containers"][0]["volumeMounts"][0]]
    runner = make_pod_runner(command=[sys.executable, str(FAKE_SERVING)], namespace=k8s_namespace)
    devcluster.run_kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(pod))

    def waiting() -> Any:
        got = devcluster.kubectl_json("get", "pod", "late", "-n", k8s_namespace)
        statuses = got.get("status", {}).get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting")

    state = processes.wait_for(
        lambda: (w := waiting()) and "not found" in w.get("message", "") and w,
        timeout_s=30, what="ContainerCreating with the mount error",
    )  # fmt: skip
    assert (
        state["reason"] == "ContainerCreating" and 'configmap "cfg" not found' in state["message"]
    )
    assert not runner.serving()
    devcluster.apply({**objects[2], "metadata": {"name": "cfg", "namespace": k8s_namespace}})
    processes.wait_for(lambda: runner.serving(), timeout_s=30, what="the pod to start")
