"""Fixtures for the operator's cluster tests: the CRDs installed once per session, a fresh
namespace per module, and one operator process per module (always stopped).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config
from onnxops import k8s
from support.operator_kit import FAKE_SERVING, ROOT, Kube, Operator, serving_kubelet


@pytest.fixture(scope="session")
def crds(devcluster: Any) -> Any:
    """The project's CRDs, applied with kubectl as a user would, and Established."""
    devcluster.run_kubectl("apply", "-f", str(ROOT / "crds"))
    devcluster.wait_established("modeldeployments.onnxops.io", "clusterkopfpeerings.kopf.dev")
    return devcluster


@pytest.fixture(scope="module")
def pod_runner_env() -> dict[str, str]:
    """What the pod runner adds to every serving pod's environment; a module overrides this
    fixture to give its pods more (e.g. ``SSL_CERT_FILE``, the CA a node's image trusts)."""
    return {}


@pytest.fixture(scope="module")
def pod_resolv_conf() -> Path | None:
    """The serving pods' /etc/resolv.conf (None: the host's); a module overrides this fixture
    to name a nameserver on loopback, so that a lookup fails with no query leaving."""
    return None


@pytest.fixture(scope="module")
def kube(
    crds: Any,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pod_runner_env: dict[str, str],
    pod_resolv_conf: Path | None,
) -> Iterator[Kube]:
    """A fresh namespace for one test module, deleted afterwards (children cascade), with a pod
    runner as the kubelet of its serving pods: without one they would stay Pending, as on a
    node whose kubelet is down. The runner's process is ``fake_serving.py`` (cheap, answers the
    probes), or the real serving runtime where the module sets ``POD_RUNNER_COMMAND = None``.
    """
    stem = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:40]
    namespace = f"{stem}-{uuid.uuid4().hex[:5]}"
    crds.run_kubectl("create", "namespace", namespace)
    command = getattr(request.module, "POD_RUNNER_COMMAND", FAKE_SERVING)
    pods = tmp_path_factory.mktemp("kube-pods")
    with serving_kubelet(crds, namespace, pods, command, pod_runner_env, pod_resolv_conf):
        yield Kube(crds, namespace)


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


@pytest.fixture(scope="module")
def in_process_client(crds: Any) -> Iterator[None]:
    """The operator's k8s module, in this process, talking to the devcluster (for tests that
    run operator code here, with no kopf loop: `pytest.mark.usefixtures("in_process_client")`)."""
    saved = k8s._client
    k8s._client = config.new_client_from_config(config_file=str(crds.kubeconfig))
    try:
        yield
    finally:
        k8s._client = saved
