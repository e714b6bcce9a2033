"""A running devcluster as recorded in its state directory: kubectl helpers, liveness, RSS,
and stopping exactly the recorded processes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import processes
from .apiclient import ApiClient
from .processes import ProcessRecord


class ClusterError(RuntimeError):
    """The cluster could not be started or is not in the expected state."""


@dataclass
class Cluster:
    """A running devcluster, as recorded in its state directory."""

    state_dir: Path
    bin_dir: Path
    server: str
    token: str
    processes: list[ProcessRecord]
    started_in_s: float = 0.0  # 0 while (or if) the start has not finished
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    def env(self) -> dict[str, str]:
        """This process's environment with KUBECONFIG pointing at the cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def api(self) -> ApiClient:
        return ApiClient(self.server, self.token, self.ca_file)

    def run_kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the cluster; with ``check`` a failure raises with its stderr."""
        result = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def release_namespace(self, namespace: str, timeout_s: int = 60) -> None:
        """Delete ``namespace`` and wait (bounded) for its pods to go. Call it while the pod
        runner of its serving pods still runs: their deletion is finished by their kubelet,
        and a pod left terminating keeps holding its node's capacity."""
        self.run_kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        self.run_kubectl(
            "delete", "pods", "--all", "-n", namespace, "--wait=true",
            f"--timeout={timeout_s}s", check=False, timeout_s=timeout_s + 30,
        )  # fmt: skip

    def wait_established(self, *crds: str, timeout_s: float = 60) -> None:
        """Wait until each CRD (``name.group``) is Established. Not ``kubectl wait``: right after
        a CRD is created its ``status.conditions`` may still be null, and kubectl wait then
        fails at once (".status.conditions accessor error") instead of waiting."""
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        deadline = time.monotonic() + timeout_s
        for crd in crds:
            while True:
                found = self.run_kubectl(
                    "get", f"crd/{crd}", "-o", f"jsonpath={jsonpath}", check=False
                )
                if found.stdout.strip() == "True":
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(f"crd/{crd} not Established after {timeout_s:g}s")
                time.sleep(0.25)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.run_kubectl(*args, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]]) -> str:
        """``kubectl apply -f -`` of YAML text, one object, or a list of objects."""
        if isinstance(manifest, list):
            manifest = {"apiVersion": "v1", "kind": "List", "items": manifest}
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run_kubectl("apply", "-f", "-", input=text).stdout

    @property
    def complete(self) -> bool:
        """The start finished and every recorded process still runs."""
        return bool(self.started_in_s) and all(self.running().values())

    def running(self) -> dict[str, bool]:
        return {r.name: processes.is_running(r) for r in self.processes}

    def rss_bytes(self) -> int:
        """Resident memory summed over the cluster's processes."""
        total = 0
        for record in self.processes:
            if processes.is_running(record):
                for line in Path(f"/proc/{record.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def stop(self) -> None:
        """Stop every recorded process (by process group) and forget them."""
        # One at a time in reverse start order: the apiserver shuts down in about a second
        # while etcd is up, but hangs for its whole grace period once etcd is gone.
        for record in reversed(self.processes):
            processes.stop([record])
        for child in self._children:
            child.poll()
        (self.state_dir / "state.json").unlink(missing_ok=True)

    def save(self) -> None:
        state = {
            "bin_dir": str(self.bin_dir),
            "server": self.server,
            "token": self.token,
            "started_in_s": self.started_in_s,
            "processes": [r.to_json() for r in self.processes],
        }
        # Written while processes start: a command killed mid-write must not leave half a file.
        tmp = self.state_dir / ".state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_dir / "state.json")


def load(state_dir: Path) -> Cluster | None:
    """The cluster recorded in ``state_dir``, or None if there is none."""
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except FileNotFoundError:
        return None
    return Cluster(
        state_dir=state_dir,
        bin_dir=Path(state["bin_dir"]),
        server=state["server"],
        token=state["token"],
        processes=[ProcessRecord.from_json(p) for p in state["processes"]],
        started_in_s=state.get("started_in_s", 0.0),
    )
