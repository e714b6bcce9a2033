"""A newcomer's path: the README's "Deploy it" tour as written (no test settings), `kopf run
--standalone` as handlers.py names it, and the operator image's dependencies alone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.deployments import model_deployment
from support.fresh_venv import create, has_module
from support.operator_kit import ROOT, Kube, Operator, wait_for

pytestmark = pytest.mark.cluster

PEERING = "onnxops"  # the default of ONNXOPS_PEERING


@pytest.fixture
def no_peering_object(crds: Any) -> Iterator[None]:
    """As on a fresh cluster: kopf's CRDs from crds/, but no peering object applied."""
    crds.run_kubectl("delete", "clusterkopfpeering", PEERING, "--ignore-not-found")
    try:
        yield
    finally:
        crds.run_kubectl("delete", "clusterkopfpeering", PEERING, "--ignore-not-found")


def test_readme_tour_works_as_written(kube: Kube, no_peering_object: None, tmp_path: Path) -> None:
    # `python -m onnxops.run &` with nothing set (the liveness endpoint only tells the test
    # it is up); kopf's peering object is missing, which once paused it silently for good.
    op = Operator(kube.cluster.kubeconfig, tmp_path / "operator.log", fast=False)
    try:
        op.start()
        health = wait_for(lambda: (h := op.health()) and "peering" in h and h, "health")
        assert health["peering"].startswith(f"peering {PEERING} (priority ")
        assert f"peering {PEERING}" in op.log_path.read_text()  # said in the log at once
        result = kube.run("apply", "-f", str(ROOT / "manifests" / "samples" / "edge.yaml"))
        assert "modeldeployment.onnxops.io/iris-edge created" in result.stdout
        status = wait_for(
            lambda: (s := kube.status("iris-edge")).get("phase") == "Ready" and s,
            "iris-edge Ready",
            90,
        )
        assert status["pool"] == "edge" and status["ready"] == "1/1"
        assert kube.cluster.run_kubectl("get", "clusterkopfpeering", PEERING).returncode == 0
        printed = kube.run("get", "mdep").stdout.splitlines()
        assert printed[1].split()[:5] == ["iris-edge", "edge", "Ready", "1/1", "iris:1"]
    finally:
        op.stop()


def test_kopf_run_standalone_is_respected(kube: Kube, tmp_path: Path) -> None:
    argv = (
        "-m", "kopf", "run", "-m", "onnxops.handlers", "--standalone",
        "-n", kube.namespace, "--liveness=http://127.0.0.1:{port}/healthz",
    )  # fmt: skip
    op = Operator(kube.cluster.kubeconfig, tmp_path / "kopf.log", fast=False, argv=argv)
    try:
        op.start()
        assert wait_for(lambda: (op.health() or {}).get("peering"), "health") == "standalone"
        body = model_deployment("kopf-run", target={"pool": "cloud"})
        assert kube.apply(body).returncode == 0
        wait_for(lambda: kube.status("kopf-run").get("phase") == "Ready", "kopf-run Ready", 90)
    finally:
        op.stop()


@pytest.mark.slow
def test_operator_image_dependencies_alone_start(kube: Kube, tmp_path: Path) -> None:
    # What operator/Dockerfile copies and installs: pyproject.toml, README.md, operator/.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "operator", source / "operator", ignore=shutil.ignore_patterns("*.egg-info")
    )
    python = create(tmp_path / "venv", [f"{source}[operator]"])
    assert not has_module(python, "sklearn") and not has_module(python, "onnxruntime")
    op = Operator(
        kube.cluster.kubeconfig,
        tmp_path / "operator.log",
        {"ONNXOPS_NAMESPACES": kube.namespace},
        python=str(python),
    )
    try:
        op.start()
        assert kube.apply(model_deployment("from-image", target={"pool": "edge"})).returncode == 0
        wait_for(lambda: kube.status("from-image").get("phase") == "Ready", "Ready", 90)
    finally:
        op.stop()
