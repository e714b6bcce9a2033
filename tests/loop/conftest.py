"""Fixtures of the watch loop tests: per module, a Prometheus of its own (a test stops it), a
pod runner that runs the real serving runtime for every serving pod, a namespace, and the
operator with monitoring on, reading that Prometheus. All are stopped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import processes
from devcluster import prometheus as prom
from devcluster.podrunner import (
    PodRunner,
    ServingProcess,
)
from support.operator_kit import ROOT, Kube, Operator, wait_for
from support.serving_harness import Models, build_models
from support.traffic import serving_ready

# Short enough that a fault shows in seconds; the rate window spans 10 scrapes (1 s apart).
MONITOR_ENV = {
    "ONNXOPS_MONITOR_RATE_WINDOW": "10s",
    "ONNXOPS_MONITOR_HISTORY_STEP_S": "1",
    "ONNXOPS_PROMETHEUS_TIMEOUT_S": "2",
}


@pytest.fixture(scope="module")
def loop_crds(devcluster: Any) -> Any:
    devcluster.run_kubectl("apply", "-f", str(ROOT / "crds"))
    devcluster.wait_established("modeldeployments.onnxops.io")
    return devcluster


@pytest.fixture(scope="module")
def loop_models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return build_models(tmp_path_factory.mktemp("loop-models"))


@pytest.fixture(scope="module")
def loop_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prom.Prometheus]:
    server = prom.start(tmp_path_factory.mktemp("loop-prometheus"), tie_to_parent=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def loop_kube(loop_crds: Any, request: pytest.FixtureRequest) -> Iterator[Kube]:
    stem = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:40]
    namespace = f"{stem}-{uuid.uuid4().hex[:5]}"
    loop_crds.run_kubectl("create", "namespace", namespace)
    try:
        yield Kube(loop_crds, namespace)
    finally:
        loop_crds.run_kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def loop_runner(
    devcluster: Any,
    loop_prometheus: prom.Prometheus,
    loop_kube: Kube,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[PodRunner]:
    """The pod runner; a module's `POD_ENV` (a dict) adds to every serving process's env."""
    runner = PodRunner(
        devcluster.api(),
        loop_prometheus.targets,
        tmp_path_factory.mktemp("loop-pods"),
        namespace=loop_kube.namespace,
        # The operator's pods ask for /var/cache/onnxops; a local process gets its own folder.
        extra_env={
            "ONNXOPS_MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("model-cache")),
            **getattr(request.module, "POD_ENV", {}),
        },
    )
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def watcher(
    loop_crds: Any,
    loop_prometheus: prom.Prometheus,
    loop_runner: PodRunner,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    """The operator with monitoring on; `.metrics_url` is its own /metrics."""
    port = processes.free_port()
    env = {
        **MONITOR_ENV,
        "ONNXOPS_PROMETHEUS_URL": loop_prometheus.url,
        "ONNXOPS_METRICS_PORT": str(port),
    }
    op = Operator(loop_crds.kubeconfig, tmp_path_factory.mktemp("watcher") / "operator.log", env)
    op.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    try:
        op.start()
        yield op
    finally:
        op.stop()


@pytest.fixture
def deploy(watcher: Operator, loop_kube: Kube, loop_runner: PodRunner) -> Iterator[Any]:
    """Apply a ModelDeployment and return its serving process once it answers; deleted after."""
    names: list[str] = []

    def make(body: dict[str, Any]) -> ServingProcess:
        name = body["metadata"]["name"]
        result = loop_kube.apply(body)
        assert result.returncode == 0, result.stderr
        names.append(name)
        prefix = f"{loop_kube.namespace}.{name}-"
        proc: ServingProcess = wait_for(
            lambda: next(
                (p for t, p in loop_runner.serving().items() if t.startswith(prefix)), None
            ),
            f"a serving process for {name}",
            timeout_s=120,
        )
        wait_for(lambda: serving_ready(proc), f"{name} to load its model", timeout_s=120)
        return proc

    yield make
    for name in names:
        loop_kube.run("delete", "mdep", name, "--wait=false", check=False)
