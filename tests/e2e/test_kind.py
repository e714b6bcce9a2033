"""End-to-end on kind with real containers, through Docker or kind's podman provider.

Skips, naming the first thing missing, where kind cannot run a cluster; tests/e2e/KIND.md
records what blocks it on the development machine and the commands that show it.
KIND_NODE_IMAGE names a node image already loaded (built locally) instead of pulling one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
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


def _kind_env() -> tuple[dict[str, str] | None, str]:
    """(environment for kind, "") where it can run here, else (None, the first blocker)."""
    if shutil.which("kind") is None:
        return None, "kind is not installed (go install sigs.k8s.io/kind@v0.33.0)"
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
            return None, f"KIND_NODE_IMAGE {image} is not loaded in {engine}"
    elif not _registry_resolves():
        return None, "no node image: Docker Hub is unreachable and KIND_NODE_IMAGE is unset"
    if not Path("/lib/modules").is_dir():
        return None, "no /lib/modules on the host, which every kind node mounts"
    return env, ""


KIND_ENV, BLOCKER = _kind_env()


@pytest.mark.skipif(KIND_ENV is None, reason=f"kind cannot run here: {BLOCKER} (tests/e2e/KIND.md)")
def test_kind_cluster_starts() -> None:
    assert KIND_ENV is not None
    image = os.environ.get("KIND_NODE_IMAGE")
    created = subprocess.run(
        ["kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s"]
        + (["--image", image] if image else []),
        env=KIND_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        assert created.returncode == 0, created.stderr
        nodes = subprocess.run(
            ["kubectl", "--context", f"kind-{CLUSTER}", "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert nodes.stdout.strip(), "kind cluster has no nodes"
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=KIND_ENV, check=False)
