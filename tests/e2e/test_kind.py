"""End-to-end on kind with real containers: only where kind and a Docker engine exist."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.e2e


def _docker_engine_running() -> bool:
    if shutil.which("docker") is None or shutil.which("kind") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_engine_running(), reason="needs kind and a running Docker engine")
def test_kind_cluster_starts() -> None:
    created = subprocess.run(
        ["kind", "create", "cluster", "--name", "onnxops-e2e", "--wait", "120s"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        assert created.returncode == 0, created.stderr
        nodes = subprocess.run(
            ["kubectl", "--context", "kind-onnxops-e2e", "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert nodes.stdout.strip(), "kind cluster has no nodes"
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", "onnxops-e2e"], check=False)
