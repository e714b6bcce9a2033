"""The pod runner: it stands in for the kubelet and the container runtime of the devcluster's
fake (KWOK) nodes, for the onnxops serving container only.

KWOK marks pods Running but runs nothing. For every Running pod with a container named
``server`` whose image contains ``onnxops-serving``, the runner starts the real serving runtime
(``python -m onnxops_serving`` from the project's .venv, or any configured command) as a local
process with that container's environment, ``ONNXOPS_HOST=127.0.0.1`` and a free
``ONNXOPS_PORT``; registers it as a Prometheus file_sd target labelled with namespace, pod,
container, node and the pod's labels; and stops it when the pod is deleted or stops Running.

Like a kubelet (``restartPolicy: Always``), it restarts a process that exits, with a back-off of
1 s doubling to 30 s, on the same port; the scrape target stays, so Prometheus sees ``up == 0``
meanwhile, as for a crashed container. A pod whose environment cannot be built yet (a missing
ConfigMap or Secret: the kubelet's CreateContainerConfigError) is retried every few seconds.
Restarted processes and retries are started by a supervisor thread that lives as long as the
runner (PR_SET_PDEATHSIG is tied to the thread that forks).
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import threading
import time
import urllib.error
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import processes
from .apiclient import ApiClient
from .podenv import EnvError, container_env
from .processes import ProcessRecord
from .prometheus import ScrapeTargets, label_name

log = logging.getLogger("devcluster.podrunner")

REPO = Path(__file__).resolve().parents[3]
CONTAINER = "server"
IMAGE_MARKER = "onnxops-serving"
# How long one watch request lasts; a stop is noticed at the latest after this.
WATCH_SECONDS = 10
# Restart back-off (the kubelet's is 10 s doubling to 5 min; shorter suits a dev loop), reset
# once a process has run this long; and how often a pod with a missing env source is retried.
BACKOFF_S, BACKOFF_MAX_S, BACKOFF_RESET_S = 1.0, 30.0, 60.0
ENV_RETRY_S = 2.0
SUPERVISE_S = 0.2


def default_command() -> list[str]:
    """The serving runtime from the project's virtualenv (the image's entrypoint)."""
    python = REPO / ".venv" / "bin" / "python"
    return [str(python if python.exists() else "python3"), "-m", "onnxops_serving"]


@dataclass
class ServingProcess:
    """One local process standing in for one pod's serving container."""

    namespace: str
    pod: str
    uid: str
    port: int
    record: ProcessRecord
    child: subprocess.Popen[bytes]
    env: dict[str, str]
    started_at: float
    restarts: int = 0  # like the pod's restartCount: never reset
    exited_at: float | None = None
    next_delay_s: float = BACKOFF_S

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.pod}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serving_container(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod's onnxops serving container, if it has one."""
    for container in pod.get("spec", {}).get("containers", []):
        if container.get("name") == CONTAINER and IMAGE_MARKER in container.get("image", ""):
            return dict(container)
    return None


def wants_process(pod: Mapping[str, Any]) -> bool:
    """Should a serving process run for this pod right now?"""
    return (
        pod.get("status", {}).get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and serving_container(pod) is not None
    )


def target_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """Scrape-target labels: pod labels (sanitized like ``labelmap``) + namespace/pod/container."""
    labels = {label_name(k): str(v) for k, v in pod["metadata"].get("labels", {}).items()}
    labels.update(
        namespace=pod["metadata"]["namespace"],
        pod=pod["metadata"]["name"],
        container=CONTAINER,
        node=pod["spec"].get("nodeName", ""),
    )
    return labels


class PodRunner:
    """Watches pods and keeps one serving process per matching Running pod."""

    def __init__(
        self,
        api: ApiClient,
        targets: ScrapeTargets,
        log_dir: Path,
        *,
        command: Sequence[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        namespace: str | None = None,
        tie_to_parent: bool = True,
    ) -> None:
        self.api = api
        self.targets = targets
        self.log_dir = log_dir
        self.command = list(command) if command else default_command()
        self.extra_env = dict(extra_env or {})
        self.tie_to_parent = tie_to_parent
        # One namespace (tests sharing a cluster) or all of them (the demo).
        self._pods_path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        self._lock = threading.Lock()
        self._running: dict[str, ServingProcess] = {}  # by pod uid
        self._waiting: dict[str, tuple[Mapping[str, Any], float]] = {}  # uid -> (pod, retry at)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="podrunner", daemon=True)
        self._supervisor = threading.Thread(
            target=self._supervise, name="podrunner-supervisor", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> PodRunner:
        self._thread.start()
        self._supervisor.start()
        return self

    def stop(self) -> None:
        """Stop watching and stop every serving process; targets are removed."""
        self._stopping.set()
        self.api.cancel_watches()
        with self._lock:
            for proc in list(self._running.values()):
                self._stop_process(proc)
            self._waiting.clear()
        for thread in (self._thread, self._supervisor):
            if thread.is_alive():
                thread.join(timeout=5)

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def serving(self) -> dict[str, ServingProcess]:
        """Processes by target name (``namespace.pod``); ``child.poll()`` tells if one exited."""
        with self._lock:
            return {p.target: p for p in self._running.values()}

    # -- the watch loop ----------------------------------------------------------------------
    def _loop(self) -> None:
        # This thread also owns the children (PR_SET_PDEATHSIG fires when it exits), so it
        # must not die on errors: it logs, waits a moment and lists again.
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._resync()
                resource_version = self._watch(resource_version)
            except Exception as error:
                if self._stopping.is_set():
                    break  # stop() cut the watch connection
                log.warning("pod watch failed, listing again: %s", error)
                resource_version = None
                self._stopping.wait(1)

    def _resync(self) -> str:
        listing = self.api.get(self._pods_path)
        pods = {p["metadata"]["uid"]: p for p in listing["items"]}
        with self._lock:
            for uid in list(self._running):
                if uid not in pods or not wants_process(pods[uid]):
                    self._stop_process(self._running[uid])
            for uid in list(self._waiting):
                if uid not in pods:
                    del self._waiting[uid]
        for pod in pods.values():
            self._handle(pod, deleted=False)
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> str | None:
        for event in self.api.watch(self._pods_path, resource_version, WATCH_SECONDS):
            if self._stopping.is_set():
                return resource_version
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":  # e.g. 410 Gone: our resourceVersion is too old
                return None
            resource_version = obj["metadata"]["resourceVersion"]
            if kind != "BOOKMARK":
                self._handle(obj, deleted=kind == "DELETED")
        return resource_version

    def _handle(self, pod: Mapping[str, Any], *, deleted: bool) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if self._stopping.is_set():
                return
            current = self._running.get(uid)
            if deleted or not wants_process(pod):
                self._waiting.pop(uid, None)
            if current is not None and (deleted or not wants_process(pod)):
                self._stop_process(current)
            elif current is None and not deleted and wants_process(pod):
                self._start_process(pod)

    # -- processes ---------------------------------------------------------------------------
    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        obj = self.api.get_or_none(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        if obj is None:
            return None
        data = obj.get("data") or {}
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in data.items()}
        return dict(data)

    def _start_process(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        container = serving_container(pod)
        assert container is not None
        try:
            pod_env = container_env(pod, container, self._lookup)
        except (EnvError, urllib.error.URLError) as error:
            if meta["uid"] not in self._waiting:
                log.warning("not starting %s/%s yet: %s", meta["namespace"], meta["name"], error)
            self._waiting[meta["uid"]] = (pod, time.monotonic() + ENV_RETRY_S)
            return
        self._waiting.pop(meta["uid"], None)
        port = processes.free_port()
        # The host's own ONNXOPS_* settings must not leak into a "container".
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXOPS_")}
        env.update(pod_env)
        env.update(self.extra_env)
        env.update(ONNXOPS_HOST="127.0.0.1", ONNXOPS_PORT=str(port))
        # The shutdown delay covers kube-proxy still routing to a terminating pod; with no
        # kube-proxy here nothing routes to it, so stopping need not wait.
        env["ONNXOPS_SHUTDOWN_DELAY_S"] = "0"
        name = f"{meta['namespace']}.{meta['name']}"
        child, record = self._spawn(name, env)
        proc = ServingProcess(
            meta["namespace"], meta["name"], meta["uid"], port, record, child, env, time.monotonic()
        )
        self._running[meta["uid"]] = proc
        self.targets.add(proc.target, f"127.0.0.1:{port}", target_labels(pod))
        log.info("started %s on port %d (pid %d)", name, port, child.pid)

    def _spawn(
        self, name: str, env: Mapping[str, str]
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        # Output of every run of the pod's process is appended to one log file.
        return processes.start(
            name,
            self.command,
            self.log_dir / f"{name}.log",
            env=env,
            tie_to_parent=self.tie_to_parent,
        )

    def _stop_process(self, proc: ServingProcess) -> None:
        self.targets.remove(proc.target)
        processes.stop([proc.record], grace_s=5)
        proc.child.poll()
        self._running.pop(proc.uid, None)
        log.info("stopped %s", proc.target)

    # -- the supervisor: restarts and retries ------------------------------------------------
    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_S):
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    now = time.monotonic()
                    for proc in list(self._running.values()):
                        self._restart_if_exited(proc, now)
                    for pod, retry_at in list(self._waiting.values()):
                        if now >= retry_at:
                            self._start_process(pod)
            except Exception:  # keep supervising: this thread owns the restarted processes
                log.exception("pod runner supervisor")

    def _restart_if_exited(self, proc: ServingProcess, now: float) -> None:
        code = proc.child.poll()
        if code is None:
            return
        if proc.exited_at is None:
            proc.exited_at = now
            if now - proc.started_at >= BACKOFF_RESET_S:
                proc.next_delay_s = BACKOFF_S
            log.warning("%s exited with %s; restart in %.0fs", proc.target, code, proc.next_delay_s)
        if now < proc.exited_at + proc.next_delay_s:
            return
        proc.child, proc.record = self._spawn(proc.target, proc.env)
        proc.restarts += 1
        proc.started_at, proc.exited_at = now, None
        proc.next_delay_s = min(BACKOFF_MAX_S, proc.next_delay_s * 2)
        log.info("restarted %s (restart %d, pid %d)", proc.target, proc.restarts, proc.child.pid)


def run_forever(runner: PodRunner) -> None:
    """Run until interrupted (the CLI's ``podrunner`` command)."""
    runner.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        runner.stop()
