"""End-to-end on kind with real containers, through Docker or kind's podman provider.

Skips, naming the first thing missing, where kind cannot run a cluster; tests/e2e/KIND.md
records what it took on the development machine and the commands that show it.
KIND_NODE_IMAGE names a node image already loaded (built locally: `make kind-node`) instead of
pulling one, and KIND_CONFIG the kind cluster config that goes with it; `make e2e-kind` sets
both (hack/kind/env.sh).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

CLUSTER = "onnxops-e2e"


def _answers(command: list[str]) -> bool:
    try:
        probe = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _registry_resolves() -> bool:
    try:
        socket.getaddrinfo("registry-1.docker.io", 443)
    except OSError:
        return False
    return True


def _cgroup_v1() -> bool:
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def _kind_env() -> tuple[dict[str, str] | None, str]:
    """(environment for kind, "") where it can run here, else (None, the first blocker)."""
    if shutil.which("kind") is None:
        return None, "kind is not on PATH (make e2e-kind builds kind v0.33.0 and puts it there)"
    env = dict(os.environ)
    if _answers(["docker", "info"]):
        env.pop("KIND_EXPERIMENTAL_PROVIDER", None)
        engine = "docker"
    elif _answers(["podman", "info"]):
        env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
        engine = "podman"
    else:
        return None, "neither a Docker engine nor podman answers"
    image = os.environ.get("KIND_NODE_IMAGE")
    if image:
        if not _answers([engine, "image", "inspect", image]):
            return None, f"KIND_NODE_IMAGE {image} is not loaded in {engine} (make kind-node)"
    elif not _registry_resolves():
        return (
            None,
            "no node image: Docker Hub is unreachable, KIND_NODE_IMAGE unset (make kind-node)",
        )
    if not Path("/lib/modules").is_dir():
        return None, "no /lib/modules on the host, which every kind node mounts (hack/kind/host.sh)"
    config = os.environ.get("KIND_CONFIG")
    if config and not Path(config).is_file():
        return None, f"KIND_CONFIG {config} does not exist"
    if _cgroup_v1() and not config:
        # The kubelet of Kubernetes 1.36 exits on cgroup v1 unless its config says otherwise.
        return None, "cgroup v1 host and no KIND_CONFIG patching the kubelet's failCgroupV1: false"
    return env, ""


KIND_ENV, BLOCKER = _kind_env()


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=KIND_ENV, capture_output=True, text=True, check=check)


def _retry(*command: str, seconds: float = 60) -> subprocess.CompletedProcess[str]:
    """command until it succeeds: a namespace's default ServiceAccount, for one, comes a moment
    after the node is Ready."""
    deadline = time.monotonic() + seconds
    while True:
        done = _run(*command, check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(1)


@dataclass(frozen=True)
class Cluster:
    kubectl: tuple[str, ...]
    engine: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One kind cluster for the module (kind create takes 20-40 s here), deleted after."""
    assert KIND_ENV is not None
    image = os.environ.get("KIND_NODE_IMAGE")
    config = os.environ.get("KIND_CONFIG")
    engine = "podman" if KIND_ENV.get("KIND_EXPERIMENTAL_PROVIDER") == "podman" else "docker"
    state = tmp_path_factory.mktemp("kind")
    kubeconfig = str(state / "kubeconfig")
    # kubectl's discovery cache is keyed by host:port: one left by an earlier cluster on the
    # same loopback port (the suites start many) maps kinds wrongly (`apply -k` then failed
    # "AlreadyExists" on the cluster-scoped ClusterKopfPeering). A cache of this cluster's own.
    cache = str(state / "kube-cache")
    create = ["kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s"]
    create += ["--kubeconfig", kubeconfig]
    create += ["--image", image] if image else []
    create += ["--config", config] if config else []
    # kind leaves its network behind on delete: remove it after if this module made it.
    had_network = _answers([engine, "network", "inspect", "kind"])
    created = _run(*create, check=False)
    try:
        assert created.returncode == 0, created.stderr
        kubectl = ("kubectl", "--kubeconfig", kubeconfig, "--cache-dir", cache)
        yield Cluster(kubectl=kubectl, engine=engine)
    finally:
        _run(
            "kind", "delete", "cluster", "--name", CLUSTER, "--kubeconfig", kubeconfig, check=False
        )
        if not had_network:
            _run(engine, "network", "rm", "kind", check=False)


def _pod_done(kubectl: tuple[str, ...], pod: str, seconds: int = 120) -> str:
    """The pod's phase once it has Succeeded or Failed (or what it is after seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        phase = _run(*kubectl, "get", "pod", pod, "-o", "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed") or time.monotonic() > deadline:
            return phase
        time.sleep(1)


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_kind_cluster_starts(cluster: Cluster) -> None:
    """A node Ready through the real kubelet, and a pod in it on the cluster's pod network."""
    kubectl = cluster.kubectl
    assert _run(*kubectl, "get", "nodes", "-o", "name").stdout.strip(), "no nodes"
    # Every node image holds the sandbox image: a pod of it needs no registry.
    pause = _run(
        cluster.engine, "exec", f"{CLUSTER}-control-plane", "sh", "-c",
        "ctr -n k8s.io images ls -q | grep -m1 '^registry.k8s.io/pause:'",
    ).stdout.strip()  # fmt: skip
    tolerate_all = '{"spec":{"tolerations":[{"operator":"Exists"}]}}'
    run = _retry(*kubectl, "run", "probe", f"--image={pause}", "--image-pull-policy=Never",
                 "--overrides", tolerate_all)  # fmt: skip
    assert run.returncode == 0, run.stderr
    ready = _run(*kubectl, "wait", "--for=condition=Ready", "pod/probe", "--timeout=120s",
                 check=False)  # fmt: skip
    assert ready.returncode == 0, ready.stderr
    ip = _run(*kubectl, "get", "pod", "probe", "-o", "jsonpath={.status.podIP}").stdout
    assert ip and not ip.startswith("127."), f"pod IP {ip!r} is not on a pod network"


PY_IMAGE = os.environ.get("KIND_PY_IMAGE")


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
@pytest.mark.skipif(not PY_IMAGE, reason="KIND_PY_IMAGE (an image with python3) is unset")
def test_a_request_reaches_a_pod_through_a_service(cluster: Cluster, tmp_path: Path) -> None:
    """kube-proxy's rules take a pod's request to a Service's ClusterIP on to the pod behind it."""
    assert PY_IMAGE is not None
    kubectl = cluster.kubectl
    archive = tmp_path / "image.tar"
    _run(cluster.engine, "save", "--format", "docker-archive", "-o", str(archive), PY_IMAGE)
    _run("kind", "load", "image-archive", str(archive), "--name", CLUSTER)
    common = [f"--image={PY_IMAGE}", "--image-pull-policy=Never",
              "--overrides", '{"spec":{"tolerations":[{"operator":"Exists"}]}}']  # fmt: skip
    server = _retry(*kubectl, "run", "web", *common, "--labels=app=web", "--port=8080",
                    "--command", "--", "python3", "-m", "http.server", "8080")  # fmt: skip
    assert server.returncode == 0, server.stderr
    _run(*kubectl, "expose", "pod", "web", "--port=80", "--target-port=8080")
    _run(*kubectl, "wait", "--for=condition=Ready", "pod/web", "--timeout=120s")
    service_ip = _run(*kubectl, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    fetch = (
        f"import urllib.request as u; print(u.urlopen('http://{service_ip}/', timeout=10).status)"
    )
    _run(*kubectl, "run", "client", *common, "--restart=Never", "--command", "--",
         "python3", "-c", fetch)  # fmt: skip
    phase = _pod_done(kubectl, "client")
    logs = _run(*kubectl, "logs", "client", check=False)
    assert phase == "Succeeded", logs.stdout + logs.stderr
    assert logs.stdout.strip() == "200"


# The operator in the cluster: its images loaded, the node labelled as the cloud pool, the CRDs
# and manifests/ applied as a user would, and the sample model of manifests/samples/cloud.yaml.
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "cloud.yaml"
NAMESPACE = "onnxops-system"


def _kubectl_apply(kubectl: tuple[str, ...], *objects: dict[str, Any]) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    applied = subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(listed), env=KIND_ENV,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert applied.returncode == 0, applied.stderr


def _built_images() -> tuple[str, str]:
    """(serving, operator) as hack/images/build.sh names them by default, the manifests' names."""
    assert KIND_ENV is not None
    env = {k: v for k, v in KIND_ENV.items() if k not in ("IMAGE_REPO", "IMAGE_TAG")}
    slow = ["nice", "-n", "19"] + (["ionice", "-c3"] if shutil.which("ionice") else [])
    built = subprocess.run([*slow, "bash", str(ROOT / "hack" / "images" / "build.sh")], env=env,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    serving, operator = built.stdout.split()[-2:]
    return serving, operator


def _diagnose(kubectl: tuple[str, ...]) -> str:
    """What the pods and the operator said, for an assertion's message."""
    pods = _run(*kubectl, "get", "pods", "-A", "-o", "wide", check=False).stdout
    events = _run(*kubectl, "get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout
    # Both peers' logs: the one that is not active only says it paused.
    logs = _run(*kubectl, "-n", NAMESPACE, "logs", "-l", "app.kubernetes.io/name=onnxops-operator",
                "--prefix", "--tail=60", check=False)  # fmt: skip
    return f"{pods}\n{events[-4000:]}\n{logs.stdout[-4000:]}{logs.stderr[-1000:]}"


def _until(what: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(2)
    return True


@dataclass(frozen=True)
class Onnxops:
    kubectl: tuple[str, ...]
    engine: str
    serving_image: str


@pytest.fixture(scope="module")
def onnxops(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Onnxops:
    kubectl = cluster.kubectl
    serving, operator = _built_images()
    deployment = yaml.safe_load((ROOT / "manifests" / "operator.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (container["image"], env["ONNXOPS_SERVING_IMAGE"]) == (operator, serving), (
        "manifests/operator.yaml names other images than hack/images/build.sh builds"
    )
    assert container["imagePullPolicy"] in ("IfNotPresent", "Never")
    archives = tmp_path_factory.mktemp("images")
    for image in (serving, operator):
        archive = archives / (image.rsplit("/", 1)[-1].replace(":", "_") + ".tar")
        _run(cluster.engine, "save", "--format", "docker-archive", "-o", str(archive), image)
        _run("kind", "load", "image-archive", str(archive), "--name", CLUSTER)
        archive.unlink()
    # One node plays the cloud pool (manifests/pools.yaml's nodeSelector); a one-node kind
    # cluster's control plane takes pods (kind removes its taint; again here in case).
    _run(*kubectl, "label", "nodes", "--all", "--overwrite", "onnxops.io/pool=cloud")
    _run(*kubectl, "taint", "nodes", "--all", "node-role.kubernetes.io/control-plane-",
         check=False)  # fmt: skip
    _run(*kubectl, "apply", "-f", str(ROOT / "crds"))
    _run(*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    # A second try is what a user does too: right after `kind load` (containerd importing two
    # images, etcd's disk busy) the apiserver once took 2 s over the peering's create and
    # answered 409 AlreadyExists to kubectl's own POST (its GET just before: 404).
    for _ in range(3):
        applied = _run(*kubectl, "apply", "-k", str(ROOT / "manifests"), check=False)
        if applied.returncode == 0:
            break
        time.sleep(2)
    assert applied.returncode == 0, applied.stderr
    rolled = _run(*kubectl, "-n", NAMESPACE, "rollout", "status", "deploy/onnxops-operator",
                  "--timeout=180s", check=False)  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr + _diagnose(kubectl)
    return Onnxops(kubectl=kubectl, engine=cluster.engine, serving_image=serving)


@dataclass(frozen=True)
class Iris:
    name: str
    model: bytes


@pytest.fixture(scope="module")
def iris(onnxops: Onnxops) -> Iris:
    """The cloud sample at one small replica (a 2-core node holds the control plane too)."""
    config_map, md = yaml.safe_load_all(SAMPLE.read_text())
    md["spec"].pop("autoscaling", None)
    md["spec"]["replicas"] = 1
    md["spec"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"},
                               "limits": {"memory": "512Mi"}}  # fmt: skip
    _kubectl_apply(onnxops.kubectl, config_map, md)
    return Iris(
        name=md["metadata"]["name"], model=base64.b64decode(config_map["binaryData"]["model.onnx"])
    )


def _status(kubectl: tuple[str, ...], name: str) -> dict[str, Any]:
    got = _run(*kubectl, "get", "modeldeployment", name, "-o", "json", check=False)
    return json.loads(got.stdout).get("status", {}) if got.returncode == 0 else {}


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_the_operator_makes_a_sample_model_ready(onnxops: Onnxops, iris: Iris) -> None:
    """manifests/ as a user applies it; the sample's pod Ready through the real kubelet."""
    kubectl = onnxops.kubectl
    ready = _until(lambda: _status(kubectl, iris.name).get("phase") == "Ready", 240)
    assert ready, f"{_status(kubectl, iris.name)}\n{_diagnose(kubectl)}"
    assert _status(kubectl, iris.name).get("readyReplicas") == 1
    pods = json.loads(_run(*kubectl, "get", "pods", "-l", f"app.kubernetes.io/instance={iris.name}",
                           "-o", "json").stdout)["items"]  # fmt: skip
    assert [p["spec"]["containers"][0]["image"] for p in pods] == [onnxops.serving_image]
    assert all(p["status"]["containerStatuses"][0]["ready"] for p in pods)


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_a_pod_gets_the_models_answer_through_its_service(onnxops: Onnxops, iris: Iris) -> None:
    """A pod's POST to the Service's ClusterIP (no CoreDNS here) answers what onnxruntime here
    computes from the ConfigMap's model."""
    import numpy as np
    import onnxruntime as ort

    kubectl = onnxops.kubectl
    assert _until(lambda: _status(kubectl, iris.name).get("phase") == "Ready", 240), _diagnose(
        kubectl
    )
    service = json.loads(_run(*kubectl, "get", "service", iris.name, "-o", "json").stdout)
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    url = f"http://{service['spec']['clusterIP']}:{port}/v2/models/iris/infer"
    body = {"inputs": [{"name": "input", "shape": [len(ROWS), 4], "datatype": "FP32",
                        "data": [v for row in ROWS for v in row]}]}  # fmt: skip
    post = (
        "import json, sys, urllib.request as u\n"
        f"r = u.Request({url!r}, data=sys.argv[1].encode(), "
        "headers={'Content-Type': 'application/json'})\n"
        "a = u.urlopen(r, timeout=20)\n"
        "print(a.status)\n"
        "print(a.read().decode())\n"
    )
    started = _run(*kubectl, "run", "infer", f"--image={onnxops.serving_image}",
                   "--image-pull-policy=Never", "--restart=Never", "--command", "--",
                   "python3", "-c", post, json.dumps(body), check=False)  # fmt: skip
    assert started.returncode == 0, started.stderr
    phase = _pod_done(kubectl, "infer")
    logs = _run(*kubectl, "logs", "infer", check=False)
    assert phase == "Succeeded", logs.stdout + logs.stderr + _diagnose(kubectl)
    status, answer = logs.stdout.strip().split("\n", 1)
    assert status == "200"
    outputs = {o["name"]: o["data"] for o in json.loads(answer)["outputs"]}
    session = ort.InferenceSession(iris.model, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"input": np.array(ROWS, dtype=np.float32)})
    assert outputs["label"] == labels.tolist()
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]).reshape(-1, 3), probabilities, rtol=1e-5
    )


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_a_rollout_restart_replaces_the_pod_and_the_operator_lets_it(
    onnxops: Onnxops, iris: Iris
) -> None:
    """`kubectl rollout restart` of the Deployment the operator owns: the real kubelet starts a
    new pod and stops the old one, the model is Ready again, and the operator's server-side
    apply (its own fields only) leaves kubectl's `restartedAt` in the template, no tug of war."""
    kubectl = onnxops.kubectl
    selector = f"app.kubernetes.io/instance={iris.name}"

    def pods() -> list[dict[str, Any]]:
        got = _run(*kubectl, "get", "pods", "-l", selector, "-o", "json", check=False)
        items = json.loads(got.stdout or '{"items": []}')["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def deployment() -> dict[str, Any]:
        got = _run(*kubectl, "get", "deployment", iris.name, "-o", "json")
        found: dict[str, Any] = json.loads(got.stdout)
        return found

    assert _until(lambda: _status(kubectl, iris.name).get("phase") == "Ready", 240), _diagnose(
        kubectl
    )
    (before,) = pods()
    _run(*kubectl, "rollout", "restart", f"deployment/{iris.name}")
    done = _run(*kubectl, "rollout", "status", f"deployment/{iris.name}", "--timeout=240s",
                check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr + _diagnose(kubectl)
    assert _until(lambda: len(pods()) == 1, 120), _diagnose(kubectl)  # the old one stopped
    (after,) = pods()
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["ready"]
    assert _until(lambda: _status(kubectl, iris.name).get("phase") == "Ready", 120), _diagnose(
        kubectl
    )
    settled = deployment()
    annotations = settled["spec"]["template"]["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    time.sleep(20)  # the operator's watch saw the Deployment change and reconciled meanwhile
    later = deployment()
    assert later["metadata"]["generation"] == settled["metadata"]["generation"]  # not reverted
    kept = later["spec"]["template"]["metadata"].get("annotations") or {}
    assert (
        kept.get("kubectl.kubernetes.io/restartedAt")
        == annotations["kubectl.kubernetes.io/restartedAt"]
    )
    assert [p["metadata"]["uid"] for p in pods()] == [after["metadata"]["uid"]]


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_deleting_the_model_deletes_what_the_operator_made(onnxops: Onnxops, iris: Iris) -> None:
    """The ModelDeployment's Deployment, Service and pods go with it (the cluster's garbage
    collector following the operator's owner references, the kubelet stopping the pods)."""
    kubectl = onnxops.kubectl
    selector = f"app.kubernetes.io/instance={iris.name}"

    def children() -> list[str]:
        got = _run(*kubectl, "get", "deployments,services,pods", "-l", selector, "-o", "name")
        return got.stdout.split()

    before = children()
    assert any(c.startswith("deployment") for c in before), before
    assert any(c.startswith("service/") for c in before), before
    assert any(c.startswith("pod/") for c in before), before
    _run(*kubectl, "delete", "modeldeployment", iris.name, "--timeout=120s")
    assert _until(lambda: not children(), 180), children()
    assert _run(*kubectl, "get", "modeldeployment", iris.name, check=False).returncode != 0


def _pod_cgroup_memory(engine: str, uid: str) -> str:
    """The pod-level cgroup's memory limit in the node (cgroup v1 or v2), as the kernel has it."""
    pattern = f"*pod{uid.replace('-', '_')}.slice"
    # The memory controller's directory (cgroup v1 has one per controller), else the unified one.
    script = (f"d=$(find /sys/fs/cgroup/memory /sys/fs/cgroup -type d -path '{pattern}' "
              "2>/dev/null | head -n1); "
              "cat $d/memory.limit_in_bytes 2>/dev/null || cat $d/memory.max")  # fmt: skip
    got = _run(engine, "exec", f"{CLUSTER}-control-plane", "sh", "-c", script, check=False)
    return got.stdout.strip()


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_an_oom_looping_pod_is_healed_through_the_real_kubelet(
    onnxops: Onnxops, iris: Iris
) -> None:
    """tests/loop/test_heal.py's OOM case with the kernel and the kubelet real: the runtime
    (~44 MiB once loaded) killed under a 32Mi limit at every start, the operator raising it to
    132Mi by a rollout (the kubelet v1.36.3 resizes only a running container: an in-place
    resize during the crash back-off leaves the pod's cgroup at 32Mi, kubernetes#138760), a
    new pod Ready with the new limit in its pod cgroup."""
    kubectl = onnxops.kubectl
    _, md = yaml.safe_load_all(SAMPLE.read_text())
    md["metadata"] = {"name": "hungry"}
    md["spec"].pop("autoscaling", None)
    md["spec"].update(
        replicas=1,
        resources={"requests": {"cpu": "100m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        monitoring={"intervalSeconds": 5, "failureThreshold": 2, "unknownThreshold": 2},
        remediation={"resize": {"maxMemory": "256Mi", "inPlace": "auto"}},
    )
    # Without a Prometheus URL the monitor is off altogether, pod signals (OOMKilled) too. No
    # Prometheus runs here: a URL on the operator's own loopback that refuses at once, so the
    # metrics read as unavailable while the pods' facts come from the API.
    _run(*kubectl, "-n", NAMESPACE, "set", "env", "deploy/onnxops-operator",
         "ONNXOPS_PROMETHEUS_URL=http://127.0.0.1:9")  # fmt: skip
    rolled = _run(*kubectl, "-n", NAMESPACE, "rollout", "status", "deploy/onnxops-operator",
                  "--timeout=180s", check=False)  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr + _diagnose(kubectl)
    _kubectl_apply(kubectl, md)
    selector = "app.kubernetes.io/instance=hungry"

    def pods() -> list[dict[str, Any]]:
        got = _run(*kubectl, "get", "pods", "-l", selector, "-o", "json", check=False)
        items = json.loads(got.stdout or '{"items": []}')["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def faulted() -> bool:
        faults = _status(kubectl, "hungry").get("faults") or []
        return any(f["signal"] == "OOMKilled" for f in faults)

    def resized() -> list[dict[str, Any]]:
        return [
            r
            for r in _status(kubectl, "hungry").get("remediations") or []
            if r["action"] == "resize" and r["result"] == "Succeeded"
        ]

    try:
        assert _until(lambda: len(pods()) == 1, 60), _diagnose(kubectl)
        uid = pods()[0]["metadata"]["uid"]
        assert _until(faulted, 180), f"{_status(kubectl, 'hungry')}\n{_diagnose(kubectl)}"
        assert _until(lambda: bool(resized()), 240), (
            f"{_status(kubectl, 'hungry')}\n{_diagnose(kubectl)}"
        )
        (record,) = resized()
        assert record["reason"] == "OOMKilled"
        assert record["message"].endswith("rolled out instead"), record
        ready = _until(lambda: _status(kubectl, "hungry").get("readyReplicas") == 1, 240)
        assert ready, f"{_status(kubectl, 'hungry')}\n{_diagnose(kubectl)}"
        assert _until(lambda: len(pods()) == 1, 60), _diagnose(kubectl)  # the old one gone
        (pod,) = pods()
        cgroup = _pod_cgroup_memory(onnxops.engine, pod["metadata"]["uid"])
        assert pod["metadata"]["uid"] != uid  # a new pod, from the raised template
        assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "132Mi"
        # What the kubelet reports the container runs with, not only what the spec asks.
        running = pod["status"]["containerStatuses"][0].get("resources") or {}
        assert running.get("limits", {}).get("memory") == "132Mi", pod["status"]
        assert cgroup == str(132 * 2**20), cgroup
    finally:
        _run(*kubectl, "delete", "modeldeployment", "hungry", "--wait=false", check=False)
