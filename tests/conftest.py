"""Session fixtures shared by every test suite: the local Kubernetes control plane
(``devcluster``), Prometheus with file-based discovery (``prometheus``), a fresh namespace per
test (``k8s_namespace``), started pod runners (``make_pod_runner``) and https model origins
behind a private CA (``https_origins``).

Everything a fixture starts runs in its own process group and is stopped in ``finally``; the
kernel also kills it if the test process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

import pytest
from devcluster import certs, controlplane
from devcluster import karpenter as autoscaler
from devcluster import prometheus as prom
from devcluster.binaries import BinariesMissing, require, require_karpenter
from devcluster.nodes import default_pools
from devcluster.podrunner import PodRunner
from support.factories import ModelOrigin

MakePodRunner = Callable[..., PodRunner]


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # `timeout`, a cancelled CI job or a plain `kill` send SIGTERM, which by default ends Python
    # without running finalizers: unwind like Ctrl-C instead, so every fixture stops what it
    # started (PR_SET_PDEATHSIG covers only processes tied to a thread that dies).
    signal.signal(signal.SIGTERM, _terminate)


# `make test` runs the suite on pytest-xdist workers, each with a devcluster of its own (the
# session fixture below), with `--dist loadfile`: a test module is one unit of work, so its
# module-scoped operator, Prometheus and pod runner are made once and its tests run in order.
# (Not `--dist loadgroup`: pytest-xdist 3.8 tags a grouped test by rewriting `item._nodeid`,
# which pytest 9.2 no longer reads, so its groups fall apart into single tests.) Modules go
# out in the order collected, so the longest start first and the short ones fill in behind
# them (the figures: `--durations` of a full run, see the README).
LONGEST_FIRST = (
    "tests/loop/test_heal_consolidation.py",
    "tests/images/",
    "tests/loop/test_heal_shrink.py",
    "tests/loop/test_rollout.py",
    "tests/loop/test_heal_guardrails.py",
    "tests/loop/test_heal_placement.py",
    "tests/loop/",
    "tests/cluster/test_demo.py",
    "tests/cluster/",
    "tests/serving/",
)


def _rank(nodeid: str) -> int:
    path = nodeid.split("::", 1)[0]
    return next((i for i, p in enumerate(LONGEST_FIRST) if path.startswith(p)), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort: a module's tests stay together and in their order.
    items.sort(key=lambda item: _rank(item.nodeid))


@pytest.fixture(scope="session")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.Cluster]:
    """A running devcluster (cloud pool: 3 nodes, edge pool: 2 tainted nodes).

    Attributes: ``kubeconfig``, ``kubectl``, ``bin_dir``, ``server``; helpers ``run_kubectl``,
    ``kubectl_json``, ``apply``, ``env()`` (KUBECONFIG set) and ``api()``.
    """
    try:
        bin_dir = require()
    except BinariesMissing as error:
        # Fail, not skip: a cluster test that silently does not run proves nothing.
        pytest.fail(str(error), pytrace=False)
    state_dir = tmp_path_factory.mktemp("devcluster")
    cluster = controlplane.start(state_dir, bin_dir=bin_dir, tie_to_parent=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def karpenter(
    devcluster: controlplane.Cluster, request: pytest.FixtureRequest
) -> Iterator[autoscaler.Karpenter]:
    """Karpenter (its KWOK provider) against the session devcluster for one test module, with a
    NodePool per pool that may add ``KARPENTER_EXTRA`` nodes (the module's, default 1 each).
    Stopped afterwards with its NodePools, NodeClaims and nodes removed, so the next module
    sees the static nodes only and no autoscaler acting on its pending pods."""
    try:
        require_karpenter()
    except BinariesMissing as error:
        pytest.fail(str(error), pytrace=False)
    extra = getattr(request.module, "KARPENTER_EXTRA", {"cloud": 1, "edge": 1})
    running = autoscaler.start(devcluster, default_pools(), extra=extra, tie_to_parent=True)
    try:
        yield running
    finally:
        autoscaler.stop(devcluster, running)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prom.Prometheus]:
    """Prometheus on a free port scraping every 1s; ``add_target``/``remove_target``,
    ``query``/``wait_for`` (PromQL), ``url``, ``targets.directory`` (file_sd folder)."""
    try:
        server = prom.start(tmp_path_factory.mktemp("prometheus"), tie_to_parent=True)
    except FileNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def k8s_namespace(devcluster: controlplane.Cluster) -> Iterator[str]:
    """A fresh namespace in the devcluster, deleted (without waiting) after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    devcluster.run_kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        devcluster.run_kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def make_pod_runner(
    devcluster: controlplane.Cluster,
    prometheus: prom.Prometheus,
    tmp_path: Path,
) -> Iterator[MakePodRunner]:
    """Start pod runners: ``make(command=None, extra_env=None, namespace=None)``; the default
    command is the real serving runtime. All are stopped (with their processes) afterwards."""
    runners: list[PodRunner] = []

    def make(
        command: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> PodRunner:
        runner = PodRunner(
            devcluster.api(),
            prometheus.targets,
            tmp_path / "pods",
            command=command,
            extra_env=extra_env,
            namespace=namespace,
        )
        runners.append(runner.start())
        return runner

    try:
        yield make
    finally:
        for runner in runners:
            if runner.namespace:
                devcluster.release_namespace(runner.namespace)
            runner.stop()


@pytest.fixture(scope="module")
def https_origins(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, ModelOrigin, ModelOrigin]]:
    """(a private CA, an https origin it signed, one signed by a CA nobody trusts): a runtime
    given the CA (``SSL_CERT_FILE``) reaches the first and refuses the second."""
    ca, cert, key = certs.private_ca(tmp_path_factory.mktemp("ca"))
    _, other_cert, other_key = certs.private_ca(tmp_path_factory.mktemp("other-ca"))
    trusted = ModelOrigin(tls=(cert, key))
    untrusted = ModelOrigin(tls=(other_cert, other_key))
    try:
        yield ca, trusted, untrusted
    finally:
        trusted.close()
        untrusted.close()
