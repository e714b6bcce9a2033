"""Alertmanager (Debian's prometheus-alertmanager) on a loopback port, started and stopped by
PID, with a config given by the caller (say, manifests/monitoring/alertmanager.yaml with its
receiver pointed at a test's webhook)."""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import processes
from .processes import ProcessRecord

BINARY = "prometheus-alertmanager"


@dataclass
class Alertmanager:
    url: str
    address: str  # host:port, for Prometheus' alerting config
    record: ProcessRecord

    def stop(self) -> None:
        processes.stop([self.record])


def start(work_dir: Path, config: Path, *, tie_to_parent: bool = False) -> Alertmanager:
    exe = shutil.which(BINARY)
    if exe is None:
        raise FileNotFoundError(f"{BINARY} not found: run `make system-deps`")
    port, cluster_port = processes.free_port(), processes.free_port()
    address = f"127.0.0.1:{port}"
    _, record = processes.start(
        "alertmanager",
        [
            exe,
            f"--config.file={config}",
            f"--storage.path={work_dir / 'data'}",
            f"--web.listen-address={address}",
            # One instance: no gossip peers, and its cluster port on loopback, not 0.0.0.0.
            f"--cluster.listen-address=127.0.0.1:{cluster_port}",
            "--log.level=warn",
        ],
        work_dir / "alertmanager.log",
        tie_to_parent=tie_to_parent,
    )
    manager = Alertmanager(f"http://{address}", address, record)

    def ready() -> bool:
        with urllib.request.urlopen(f"{manager.url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    try:
        processes.wait_for(ready, timeout_s=30, what="alertmanager /-/ready")
    except BaseException:
        manager.stop()
        raise
    return manager
