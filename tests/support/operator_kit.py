"""Helpers of the operator's cluster tests: kubectl in one namespace, polling, and the
operator as a real subprocess (`onnxops operator`) that tests can start, kill and restart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]

# Short kopf timings so a module finishes in seconds; the defaults are sized for production.
FAST_OPERATOR_ENV = {
    "ONNXOPS_STANDALONE": "true",
    "ONNXOPS_RESYNC_S": "5",
    "ONNXOPS_RESYNC_IDLE_S": "2",
    "ONNXOPS_RETRY_BASE_S": "2",
    "ONNXOPS_RETRY_MAX_S": "8",
    "ONNXOPS_WATCH_TIMEOUT_S": "60",
}


def processes_naming(path: Path) -> list[psutil.Process]:
    """Live processes whose command line names `path` (what a test started under it)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    """Poll until the predicate returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class Kube:
    """kubectl against the devcluster, scoped to one namespace."""

    def __init__(self, cluster: Any, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cluster.run_kubectl("-n", self.namespace, *args, input=input, check=check)

    def apply(self, manifest: str | dict[str, Any]) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", "-f", "-", input=text, check=False)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def items(self, kind: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"] + (["-l", selector] if selector else [])
        return list(json.loads(self.run(*args).stdout)["items"])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.items("events")
            if e["involvedObject"].get("kind") == "ModelDeployment"
            and e["involvedObject"]["name"] == name
        ]

    def status(self, name: str) -> dict[str, Any]:
        obj = self.get("mdep", name)
        return (obj or {}).get("status", {})


class Operator:
    """`onnxops operator` as a child process; start/kill/stop as the tests need."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        *,
        python: str = sys.executable,
        fast: bool = True,
        argv: tuple[str, ...] = ("-m", "onnxops.run"),
    ) -> None:
        """`python`: another environment's interpreter; `fast`: the test timings
        (FAST_OPERATOR_ENV, standalone), else the operator's defaults as a user runs it;
        `argv`: how it is started (say, with `kopf run`; "{port}" is the liveness port)."""
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.python = python
        self.fast = fast
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ONNXOPS_")},
            "KUBECONFIG": str(self.kubeconfig),
            **(FAST_OPERATOR_ENV if self.fast else {}),
            "ONNXOPS_LIVENESS": f"http://127.0.0.1:{self.port}/healthz",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.python, *(a.format(port=self.port) for a in self.argv)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._healthy, "the operator's liveness endpoint", timeout_s=30)

    def _healthy(self) -> bool:
        return self.health() is not None

    def health(self) -> dict[str, Any] | None:
        """The liveness endpoint's JSON (kopf probes by id), None while it does not answer."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"operator exited with {self.proc.returncode}; see {self.log_path}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return dict(json.loads(r.read() or b"{}")) if r.status == 200 else None
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


FAKE_SERVING = [sys.executable, str(ROOT / "tests" / "cluster" / "fake_serving.py")]


@contextmanager
def serving_kubelet(
    cluster: Any,
    namespace: str,
    work_dir: Path,
    command: Sequence[str] | None = FAKE_SERVING,
    extra_env: Mapping[str, str] | None = None,
    resolv_conf: Path | None = None,
) -> Iterator[Any]:
    """A pod runner for ``namespace``'s serving pods (without one they stay Pending, as on a node
        whose kubelet is down), running ``command`` per pod: the light fake server by default, the
        real serving runtime with None; ``extra_env`` is added to every pod's environment (what a
        node's image would hold, such as its CA bundle) and ``resolv_conf`` is their /etc/resolv.conf
    (the kubelet's ``--resolv-conf``). On exit the namespace is released (deleted, its pods gone)
        while the runner still runs, then the runner stops."""
    from devcluster.podrunner import PodRunner
    from devcluster.prometheus import ScrapeTargets

    runner = PodRunner(
        cluster.api(),
        ScrapeTargets(work_dir / "targets"),
        work_dir / "logs",
        command=command,
        namespace=namespace,
        extra_env=extra_env,
        resolv_conf=resolv_conf,
    )
    runner.start()
    try:
        yield runner
    finally:
        cluster.release_namespace(namespace)
        runner.stop()
