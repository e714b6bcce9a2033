"""Start the devcluster: etcd, kube-apiserver, controller-manager, scheduler and KWOK as
local processes, plus the fake nodes of each pool.

State lives in one directory (``.devcluster/`` for ``make cluster-up``, a temp dir for tests):
``state.json`` records every started process, so ``stop`` kills exactly those.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import binaries, kwokstages, processes
from .apiclient import ApiClient
from .cluster import Cluster, ClusterError, load
from .nodes import NodePool, default_pools, node_manifests
from .processes import ProcessRecord

__all__ = ["Cluster", "ClusterError", "load", "start"]  # Cluster/load re-exported for callers

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
# Identities in tokens.csv; all in system:masters (a dev cluster, not a security boundary).
USERS = ("admin", "kube-controller-manager", "kube-scheduler", "kwok", "karpenter")
# Starts that hit a port taken between probe and bind are retried with fresh ports.
_ATTEMPTS = 3


def _kubeconfig(server: str, ca_file: Path, user: str, token: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: devcluster
  cluster: {{server: "{server}", certificate-authority: "{ca_file}"}}
users:
- name: {user}
  user: {{token: "{token}"}}
contexts:
- name: devcluster
  context: {{cluster: devcluster, user: {user}, namespace: default}}
current-context: devcluster
"""


def _write_ca(serving_dir: Path, ca_file: Path) -> bool:
    """Extract the apiserver's self-signed CA (last certificate of its chain) once written."""
    crt = serving_dir / "apiserver.crt"
    if not crt.exists() or not (serving_dir / "apiserver.key").exists():
        return False
    pem = crt.read_text()
    end = "-----END CERTIFICATE-----"
    blocks = [b + end + "\n" for b in pem.split(end) if "BEGIN CERTIFICATE" in b]
    if not blocks:
        return False
    ca_file.write_text(blocks[-1].lstrip())
    return True


class _Starter:
    """The steps of one start; on any failure everything started so far is stopped."""

    def __init__(
        self, state_dir: Path, bin_dir: Path, tie_to_parent: bool, server: str, token: str
    ) -> None:
        self.state_dir = state_dir
        self.bin = bin_dir
        self.tie = tie_to_parent
        self.server = server
        self.token = token
        self.records: list[ProcessRecord] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def cluster(self, started_in_s: float = 0.0) -> Cluster:
        return Cluster(
            state_dir=self.state_dir,
            bin_dir=self.bin,
            server=self.server,
            token=self.token,
            processes=self.records,
            started_in_s=started_in_s,
            _children=self.children,
        )

    def spawn(self, name: str, *args: str) -> None:
        child, record = processes.start(
            name,
            [str(self.bin / name.split(":")[0]), *args],
            self.state_dir / "logs" / f"{name}.log",
            tie_to_parent=self.tie,
        )
        self.children.append(child)
        self.records.append(record)
        # Recorded at once, not when the start is complete: if this command is killed
        # (SIGKILL, a test timeout) mid-start, `down` still finds and stops what it started.
        self.cluster().save()

    def stop(self) -> None:
        for record in reversed(self.records):
            processes.stop([record], grace_s=3)
        (self.state_dir / "state.json").unlink(missing_ok=True)

    def check_alive(self) -> None:
        for child, record in zip(self.children, self.records, strict=True):
            if child.poll() is not None:
                tail = Path(record.log).read_text(errors="replace")[-2000:]
                raise processes.ProcessExited(f"{record.name} exited ({child.returncode}):\n{tail}")

    def wait(self, predicate: Any, what: str, timeout_s: float = 60) -> Any:
        def step() -> Any:
            self.check_alive()
            return predicate()

        return processes.wait_for(step, timeout_s=timeout_s, what=what, interval_s=0.05)


def start(
    state_dir: Path,
    *,
    pools: Sequence[NodePool] | None = None,
    bin_dir: Path | None = None,
    tie_to_parent: bool = False,
    timeout_s: float = 90,
) -> Cluster:
    """Start a fresh cluster in ``state_dir`` and return once its nodes are Ready.

    ``tie_to_parent`` makes the kernel kill the processes if the calling process dies (tests);
    ``make cluster-up`` leaves it off so the cluster outlives the command.
    """
    began = time.monotonic()
    bin_dir = binaries.require(bin_dir)
    state_dir = state_dir.resolve()
    existing = load(state_dir)
    if existing is not None and any(existing.running().values()):
        raise ClusterError(
            f"a devcluster is already running from {state_dir}; stop it first (make cluster-down)"
        )
    pools = list(pools) if pools is not None else default_pools()
    for name in ("logs", "state.json", "kubeconfig"):
        path = state_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            cluster = _start_once(state_dir, bin_dir, pools, tie_to_parent, timeout_s)
        except processes.ProcessExited as error:
            # A free port can be taken by someone else between our probe and the bind.
            if "address already in use" not in str(error) or attempt == _ATTEMPTS:
                raise
            continue
        cluster.started_in_s = round(time.monotonic() - began, 2)
        cluster.save()
        return cluster
    raise AssertionError("unreachable")


def _start_once(
    state_dir: Path,
    bin_dir: Path,
    pools: Sequence[NodePool],
    tie_to_parent: bool,
    timeout_s: float,
) -> Cluster:
    for name in ("etcd", "pki", "kubeconfigs"):  # logs stay: they tell why an attempt failed
        path = state_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    pki = state_dir / "pki"
    (pki / "serving").mkdir(parents=True)
    (state_dir / "kubeconfigs").mkdir()

    etcd_port, peer_port, api_port = (processes.free_port() for _ in range(3))
    tokens = {user: secrets.token_hex(16) for user in USERS}
    (pki / "tokens.csv").write_text(
        "".join(f'{tok},{user},{user},"system:masters"\n' for user, tok in tokens.items())
    )
    keygen = subprocess.Popen(
        ["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], stderr=subprocess.DEVNULL
    )
    server = f"https://127.0.0.1:{api_port}"
    run = _Starter(state_dir, bin_dir, tie_to_parent, server, tokens["admin"])
    try:
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        run.spawn(
            "etcd",
            f"--data-dir={state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",  # throwaway data: durability costs start time for nothing
            "--log-level=warn",
        )
        if keygen.wait() != 0:
            raise ClusterError("openssl genrsa failed to create the service-account key")
        sa_key = pki / "sa.key"
        run.spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={pki / 'serving'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--allow-privileged=true",
            "--profiling=false",
            # The `kubernetes` Service cannot point at a loopback address: without this the
            # endpoint reconciler logs an error every 10 s (nothing in the cluster uses it).
            "--endpoint-reconciler-type=none",
        )
        ca_file = pki / "ca.crt"
        run.wait(lambda: _write_ca(pki / "serving", ca_file), "the apiserver's serving cert")
        for user, token in tokens.items():
            path = state_dir / "kubeconfigs" / f"{user}.yaml"
            path.write_text(_kubeconfig(server, ca_file, user, token))
        (state_dir / "kubeconfig").write_text(
            _kubeconfig(server, ca_file, "admin", tokens["admin"])
        )
        api = ApiClient(server, tokens["admin"], ca_file)
        # Clients start only after /readyz: started earlier (they could, being system:masters)
        # they compete for the CPU with the apiserver's bootstrap, measured 0.3-0.7s slower
        # on 2 cores.
        run.wait(api.ready, "kube-apiserver /readyz", timeout_s)

        kc = state_dir / "kubeconfigs"
        run.spawn(
            "kube-controller-manager",
            f"--kubeconfig={kc / 'kube-controller-manager.yaml'}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",  # no HTTPS endpoint: avoids fixed ports clashing between clusters
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={ca_file}",
            f"--cluster-cidr={POD_CIDR}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        )
        run.spawn(
            "kube-scheduler",
            f"--kubeconfig={kc / 'kube-scheduler.yaml'}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        )
        run.spawn(
            "kwok",
            f"--kubeconfig={kc / 'kwok.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.0.0.1",
            f"--config={kwokstages.write(bin_dir / binaries.STAGES, state_dir / binaries.STAGES)}",
            # Heartbeats through Lease objects: cheap, and what the node controller watches.
            "--node-lease-duration-seconds=40",
        )
        for pool in pools:
            for node in node_manifests(pool):
                api.create("/api/v1/nodes", node)
        expected = sum(p.count for p in pools)
        run.wait(lambda: _ready_nodes(api) >= expected, f"{expected} Ready nodes", timeout_s)
        run.wait(
            lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default"),
            "the default service account (controller-manager up)",
            timeout_s,
        )
    except BaseException:
        run.stop()
        raise
    return run.cluster()


def _ready_nodes(api: ApiClient) -> int:
    items = api.get("/api/v1/nodes")["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n["status"].get("conditions", [])
        )
        for n in items
    )
