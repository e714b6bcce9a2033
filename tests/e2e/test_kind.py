"""End-to-end on kind with real containers, through Docker or kind's podman provider.

Skips, naming the first thing missing, where kind cannot run a cluster; tests/e2e/KIND.md
records what it took on the development machine and the commands that show it.
KIND_NODE_IMAGE names a node image already loaded (built locally: `make kind-node`) instead of
pulling one, and KIND_CONFIG the kind cluster config that goes with it; `make e2e-kind` sets
both (hack/kind/env.sh).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

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


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_kind_cluster_starts(tmp_path: Path) -> None:
    """A node Ready through the real kubelet, and a pod in it on the cluster's pod network."""
    assert KIND_ENV is not None
    image = os.environ.get("KIND_NODE_IMAGE")
    config = os.environ.get("KIND_CONFIG")
    engine = "podman" if KIND_ENV.get("KIND_EXPERIMENTAL_PROVIDER") == "podman" else "docker"
    kubeconfig = str(tmp_path / "kubeconfig")
    kubectl = ("kubectl", "--kubeconfig", kubeconfig)
    create = ["kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s"]
    create += ["--kubeconfig", kubeconfig]
    create += ["--image", image] if image else []
    create += ["--config", config] if config else []
    # kind leaves its network behind on delete: remove it after if this test made it.
    had_network = _answers([engine, "network", "inspect", "kind"])
    created = _run(*create, check=False)
    try:
        assert created.returncode == 0, created.stderr
        assert _run(*kubectl, "get", "nodes", "-o", "name").stdout.strip(), "no nodes"
        # Every node image holds the sandbox image: a pod of it needs no registry.
        pause = _run(
            engine, "exec", f"{CLUSTER}-control-plane", "sh", "-c",
            "ctr -n k8s.io images ls -q | grep -m1 '^registry.k8s.io/pause:'",
        ).stdout.strip()  # fmt: skip
        tolerate_all = '{"spec":{"tolerations":[{"operator":"Exists"}]}}'
        # The namespace's default ServiceAccount comes a moment after the node is Ready.
        deadline = time.monotonic() + 60
        while True:
            run = _run(*kubectl, "run", "probe", f"--image={pause}", "--image-pull-policy=Never",
                       "--overrides", tolerate_all, check=False)  # fmt: skip
            if run.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert run.returncode == 0, run.stderr
        ready = _run(*kubectl, "wait", "--for=condition=Ready", "pod/probe", "--timeout=120s",
                     check=False)  # fmt: skip
        assert ready.returncode == 0, ready.stderr
        ip = _run(*kubectl, "get", "pod", "probe", "-o", "jsonpath={.status.podIP}").stdout
        assert ip and not ip.startswith("127."), f"pod IP {ip!r} is not on a pod network"
    finally:
        _run(
            "kind", "delete", "cluster", "--name", CLUSTER, "--kubeconfig", kubeconfig, check=False
        )
        if not had_network:
            _run(engine, "network", "rm", "kind", check=False)
