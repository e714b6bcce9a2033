"""Fixtures for the operator's cluster tests: the CRDs installed once per session, a fresh
namespace per module, and one operator process per module (always stopped).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from operator_kit import ROOT, Kube, Operator


@pytest.fixture(scope="session")
def crds(devcluster: Any) -> Any:
    """The project's CRDs, applied with kubectl as a user would, and Established."""
    devcluster.run_kubectl("apply", "-f", str(ROOT / "crds"))
    devcluster.run_kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/modeldeployments.onnxops.io",
        "crd/clusterkopfpeerings.kopf.dev",
    )
    return devcluster


@pytest.fixture(scope="module")
def kube(crds: Any, request: pytest.FixtureRequest) -> Iterator[Kube]:
    """A fresh namespace for one test module, deleted afterwards (children cascade)."""
    stem = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:40]
    namespace = f"{stem}-{uuid.uuid4().hex[:5]}"
    crds.run_kubectl("create", "namespace", namespace)
    try:
        yield Kube(crds, namespace)
    finally:
        crds.run_kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(crds: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """One operator process per test module, always stopped."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = Operator(crds.kubeconfig, log)
    try:
        op.start()
        yield op
    finally:
        op.stop()
