"""The operator image against the local cluster: started as manifests/operator.yaml runs it
(non-root, read-only root filesystem, no capabilities, the pool profiles mounted read-only),
it must reconcile a ModelDeployment to Ready and stop cleanly on SIGTERM.

Host networking lets the container reach the devcluster's apiserver on 127.0.0.1; the
kubeconfig it gets carries the cluster's CA inline, so no host path leaks into the container.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from engine import REPO, Engine, Images
from support.operator_kit import serving_kubelet
from support.serving_harness import free_port

pytestmark = [pytest.mark.images, pytest.mark.cluster]


def _container_kubeconfig(cluster: Any, folder: Path) -> Path:
    """The cluster's kubeconfig with its CA inline, readable by the image's uid 65532."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        ca_path = Path(entry["cluster"].pop("certificate-authority"))
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(
            ca_path.read_bytes()
        ).decode()
    folder.mkdir(mode=0o755)
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


def _wait(what: str, check: Callable[[], Any], alive: Callable[[], str], timeout_s: float) -> Any:
    """Poll `check` until truthy; stop early (with the container's log) if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        problem = alive()
        if problem:
            raise AssertionError(f"{what}: the operator container exited\n{problem}")
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen in {timeout_s}s\n{alive() or '(still running)'}")


@pytest.fixture
def namespace(devcluster: Any, tmp_path: Path) -> Iterator[str]:
    """A namespace whose serving pods have a kubelet (the pod runner, with the light fake
    server: the sample's model comes from a ConfigMap volume, which the runner cannot mount)."""
    devcluster.run_kubectl("apply", "-f", str(REPO / "crds"))
    devcluster.wait_established("modeldeployments.onnxops.io")
    name = f"operator-image-{uuid.uuid4().hex[:6]}"
    devcluster.run_kubectl("create", "namespace", name)
    with serving_kubelet(devcluster, name, tmp_path / "pods"):
        yield name


def test_operator_image_reconciles_a_model_to_ready(
    engine: Engine,
    images: Images,
    devcluster: Any,
    namespace: str,
    container_names: list[str],
    tmp_path: Path,
) -> None:
    kubeconfig = _container_kubeconfig(devcluster, tmp_path / "kube")
    pools = tmp_path / "pools"
    pools.mkdir(mode=0o755)
    (pools / "pools.yaml").write_text((REPO / "manifests" / "pools.yaml").read_text())
    (pools / "pools.yaml").chmod(0o644)
    health = f"http://127.0.0.1:{free_port()}/healthz"
    name = f"onnxops-operator-test-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    engine(
        "run", "--detach", "--name", name,
        *engine.limits(),
        "--network", "host",
        "--read-only", *(["--read-only-tmpfs=false"] if engine.name == "podman" else []),
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp:rw,mode=1777",
        "--volume", f"{kubeconfig.parent}:/etc/kube:ro",
        "--volume", f"{pools}:/etc/onnxops:ro",
        "--env", "KUBECONFIG=/etc/kube/kubeconfig",
        # As manifests/operator.yaml sets them, but one replica watching one namespace.
        "--env", "ONNXOPS_POOLS_FILE=/etc/onnxops/pools.yaml",
        "--env", f"ONNXOPS_LIVENESS={health}",
        "--env", f"ONNXOPS_SERVING_IMAGE={images.serving}",
        "--env", "ONNXOPS_STANDALONE=true",
        "--env", f"ONNXOPS_NAMESPACES={namespace}",
        images.operator,
    )  # fmt: skip

    def exited() -> str:
        state = engine("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
        if state.stdout.split()[0] == "true":
            return ""
        logs = engine("logs", name, check=False)
        return f"{state.stdout.strip()}\n{logs.stdout}{logs.stderr}"

    sample = REPO / "manifests" / "samples" / "cloud.yaml"
    devcluster.run_kubectl("-n", namespace, "apply", "-f", str(sample))

    def ready() -> dict[str, Any] | None:
        got = devcluster.run_kubectl("-n", namespace, "get", "mdep", "iris-cloud", "-o", "json")
        status = json.loads(got.stdout).get("status", {})
        return status if status.get("phase") == "Ready" else None

    status = _wait("iris-cloud Ready", ready, exited, timeout_s=120)
    assert status["pool"] == "cloud"
    # kopf's liveness endpoint, bound inside the read-only container, answers on the host.
    assert httpx.get(health, timeout=5).status_code == 200
    deployment = devcluster.kubectl_json("-n", namespace, "get", "deployment", "iris-cloud")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # The operator read its settings from the container's environment.
    assert container["image"] == images.serving
    assert json.loads(engine("inspect", "--format", "{{json .Config.User}}", name).stdout) == (
        "65532:65532"
    )

    # SIGTERM as the kubelet sends it: kopf stops its watches and the process exits 0.
    engine("kill", "--signal", "TERM", name)
    exit_code = engine("wait", name, timeout=60).stdout.strip()
    assert exit_code == "0", exited()
