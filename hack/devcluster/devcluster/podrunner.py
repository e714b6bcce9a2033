"""The pod runner: the kubelet of the devcluster's serving pods.

KWOK simulates every other pod; pods with a container named ``server`` whose image contains
``onnxops-serving`` are left alone by KWOK's stages (see `kwokstages.py`) and are this runner's:
for each such pod bound to a node it runs the real serving runtime (``python -m
onnxops_serving`` from the project's .venv, or any configured command) as a local process, and
does what the kubelet (v1.36) does for it:

- the process runs in its own cgroup with the container's limits (`cgroups.py`): memory limit →
  kernel OOM kill, CPU limit → CFS quota, CPU request → shares;
- startup, liveness and readiness probes (httpGet) run on the pod's schedule (`probes.py`); a
  failed liveness or startup probe kills and restarts the container;
- a process that exits is restarted with back-off (``CrashLoopBackOff`` meanwhile);
- the pod's whole status is written as the kubelet writes it (`podstatus.py`): phase, IPs,
  conditions, container state, restart count, last termination (``OOMKilled``/137, ``Error``);
- ``pods/resize`` is applied in place or by a restart per ``resizePolicy`` (`resize.py`);
- deletion: SIGTERM, the grace period, SIGKILL, then the pod object is removed;
- container metrics with cAdvisor's names on one ``/metrics/cadvisor`` endpoint (`cadvisor.py`)
  and each serving process, registered as Prometheus file_sd targets.

Each pod's worker is a `container.ServingProcess`; it reaches the runner only through the
`podhost.PodHost` protocol and the runner's frozen `podhost.RunnerSettings` (so neither module
imports the other), and keeps each of its concerns in a module of its own: launch and
environment (`launch.py`), probes (`readiness.py`), back-off (`restarts.py`), in-place resize
(`resizing.py`), status (`podreport.py`), which pods are ours (`servingpod.py`).

Each pod listens on a loopback address of its own with its container ports
(`servingpod.loopback_of`; ``ONNXOPS_PORT``, and ``ONNXOPS_GRPC_PORT`` for a port named
``grpc``); probes use it. One sync thread owns the processes
(PR_SET_PDEATHSIG is tied to the thread that forks); a watch thread feeds it pods; probes run
on a small thread pool so a hung process never stalls the others.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import cgroups
from .apiclient import ApiClient
from .cadvisor import PATH as CADVISOR_PATH
from .cadvisor import ContainerSample, MetricsServer
from .container import ServingProcess
from .events import EventRecorder
from .launch import default_command
from .podhost import RunnerSettings
from .probes import Prober, http_get
from .prometheus import ScrapeTargets
from .servingpod import target_labels, wants_process

log = logging.getLogger("devcluster.podrunner")

# How long one watch request lasts; a stop is noticed at the latest after this.
WATCH_SECONDS = 10
SYNC_S = 0.1
# Crash back-off: the kubelet's is 10 s doubling to 300 s, reset after 10 min of running; a dev
# loop wants shorter. DEVCLUSTER_BACKOFF_S / DEVCLUSTER_BACKOFF_MAX_S set them.
BACKOFF_S = float(os.environ.get("DEVCLUSTER_BACKOFF_S", "2"))
BACKOFF_MAX_S = float(os.environ.get("DEVCLUSTER_BACKOFF_MAX_S", "60"))

__all__ = [
    "PodRunner",
    "RunnerSettings",
    "ServingProcess",
    "default_command",
    "run_forever",
    "target_labels",
    "wants_process",
]


class PodRunner:
    """Watches pods and runs the serving pods bound to the devcluster's nodes; each pod's
    worker (`ServingProcess`) reaches it through `podhost.PodHost`, which this implements."""

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
        backoff_s: float = BACKOFF_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        resolv_conf: Path | None = None,
        volumes_dir: Path | None = None,
    ) -> None:
        self.api = api
        self.targets = targets
        self.namespace = namespace
        self.settings = RunnerSettings(
            command=tuple(command) if command else tuple(default_command()),
            log_dir=log_dir,
            # Each pod's emptyDirs and configMap/secret projections, under its uid (`volumes.py`).
            volumes_dir=volumes_dir or log_dir.parent / "volumes",
            mode=cgroups.detect(),
            extra_env=MappingProxyType(dict(extra_env or {})),
            tie_to_parent=tie_to_parent,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            resolv_conf=resolv_conf,
        )
        # One namespace (tests sharing a cluster) or all of them (the demo).
        self._pods_path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        self._lock = threading.Lock()
        self._pods: dict[str, ServingProcess] = {}  # by pod uid
        self._inbox: queue.SimpleQueue[tuple[Mapping[str, Any], bool]] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[str, Prober, bool, str]] = queue.SimpleQueue()
        self._nodes: dict[str, Mapping[str, Any]] = {}
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        # Status and Event writes leave the sync thread: one slow API call must not delay the
        # probes and exits of every other pod (the kubelet's status manager is asynchronous too).
        self._writers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="status")
        self._writes: queue.SimpleQueue[tuple[str, Exception | None]] = queue.SimpleQueue()
        self._writing: dict[str, dict[str, Any] | None] = {}  # uid -> next status (in flight)
        self.events = EventRecorder(api, self._writers)
        self.metrics = MetricsServer(self._samples)
        self._target_name = f"kubelet-{namespace or 'all'}-{os.getpid()}-{id(self) % 10**6}"
        self._watcher = threading.Thread(target=self._watch_loop, name="podrunner", daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name="podrunner-sync", daemon=True)

    @property
    def mode(self) -> cgroups.Mode:
        return self.settings.mode

    @property
    def log_dir(self) -> Path:
        return self.settings.log_dir

    @property
    def volumes_dir(self) -> Path:
        return self.settings.volumes_dir

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> PodRunner:
        level = logging.INFO if self.mode.enforces_cpu else logging.WARNING
        log.log(level, "pod runner: resource limits mode %s (%s)", self.mode.name, self.mode.reason)
        self.metrics.start()
        self.targets.add(
            self._target_name,
            f"127.0.0.1:{self.metrics.port}",
            {"job": "kubelet", "__metrics_path__": CADVISOR_PATH, "metrics_path": CADVISOR_PATH},
        )
        self._watcher.start()
        self._syncer.start()
        return self

    def stop(self) -> None:
        """Stop watching and stop every serving process; targets are removed."""
        self._stopping.set()
        self._wake.set()
        self.api.cancel_watches()
        for thread in (self._watcher, self._syncer):
            if thread.is_alive():
                thread.join(timeout=15)
        with self._lock:
            for proc in list(self._pods.values()):
                self._forget(proc)
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        self._writers.shutdown(wait=True, cancel_futures=True)
        self.targets.remove(self._target_name)
        self.metrics.stop()

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def serving(self) -> dict[str, ServingProcess]:
        """Pods with a started process, by target name (``namespace.pod``)."""
        with self._lock:
            return {p.target: p for p in self._pods.values() if p.child is not None}

    # -- the watch -----------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    listing = self.api.get(self._pods_path)
                    for pod in listing["items"]:
                        self._inbox.put((pod, False))
                    self._inbox.put(
                        ({"resync": {p["metadata"]["uid"] for p in listing["items"]}}, False)
                    )
                    resource_version = str(listing["metadata"]["resourceVersion"])
                    self._wake.set()
                for event in self.api.watch(self._pods_path, resource_version, WATCH_SECONDS):
                    if self._stopping.is_set():
                        return
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":  # e.g. 410 Gone: our resourceVersion is too old
                        resource_version = None
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self._inbox.put((obj, kind == "DELETED"))
                        self._wake.set()
            except Exception as error:
                if self._stopping.is_set():
                    return
                log.warning("pod watch failed, listing again: %s", error)
                resource_version = None
                self._stopping.wait(1)

    # -- the sync loop (owns every process) --------------------------------------------------
    def _sync_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(SYNC_S)
            self._wake.clear()
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._drain_inbox()
                    self._drain_writes()
                    self._drain_probe_results()
                    now = time.monotonic()
                    for proc in list(self._pods.values()):
                        try:
                            proc.sync(now)
                        except Exception:
                            log.exception("syncing %s", proc.target)
                        if proc.gone:
                            self._forget(proc)
            except Exception:  # keep syncing: this thread owns the processes
                log.exception("pod runner sync")

    def _drain_inbox(self) -> None:
        while True:
            try:
                pod, deleted = self._inbox.get_nowait()
            except queue.Empty:
                return
            if "resync" in pod:  # a fresh listing: pods it lacks were deleted meanwhile
                for proc in list(self._pods.values()):
                    if proc.uid not in pod["resync"]:
                        proc.deleted = True
                continue
            uid = pod["metadata"]["uid"]
            known = self._pods.get(uid)
            if known is not None:
                known.observe(pod, deleted=deleted)
            elif not deleted and wants_process(pod):
                self._pods[uid] = ServingProcess(pod, self, self.settings)

    def _patch_status(self, path: str, status: dict[str, Any]) -> Exception | None:
        try:
            self.api.merge_patch(path, {"status": status})
        except Exception as exc:
            return exc
        return None

    def _write(self, uid: str, path: str, status: dict[str, Any]) -> None:
        self._writes.put((uid, self._patch_status(path, status)))
        self._wake.set()

    def _drain_writes(self) -> None:
        while True:
            try:
                uid, error = self._writes.get_nowait()
            except queue.Empty:
                return
            queued = self._writing.pop(uid, None)
            proc = self._pods.get(uid)
            if proc is None:
                continue
            proc.status_written(error)
            if queued is not None and not proc.deleted:
                self._writing[uid] = None
                self._writers.submit(self._write, uid, proc.status_path, queued)

    def _drain_probe_results(self) -> None:
        while True:
            try:
                uid, prober, ok, message = self._results.get_nowait()
            except queue.Empty:
                return
            proc = self._pods.get(uid)
            if proc is not None:
                proc.probe_result(prober, ok, message, time.monotonic())

    def _forget(self, proc: ServingProcess) -> None:
        proc.stop_now()
        self.events.forget(proc.uid)
        self.targets.remove(proc.target)
        self._pods.pop(proc.uid, None)

    # -- PodHost: the services for ServingProcess (called in the sync thread) -----------------
    def read(self, path: str) -> Mapping[str, Any] | None:
        result: Mapping[str, Any] | None = self.api.get_or_none(path)
        return result

    def node(self, name: str) -> Mapping[str, Any]:
        if name not in self._nodes:
            self._nodes[name] = self.api.get(f"/api/v1/nodes/{name}")
        return self._nodes[name]

    def node_pods(self, node: str) -> list[Mapping[str, Any]]:
        listing = self.api.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
        return list(listing["items"])

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        self.api.delete(
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
        )

    def post_event(
        self, pod: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        self.events.post(pod, reason, message, warning=warning)

    def add_target(self, name: str, address: str, labels: Mapping[str, str]) -> None:
        self.targets.add(name, address, labels)

    def remove_target(self, name: str) -> None:
        self.targets.remove(name)

    def run_probe(self, uid: str, prober: Prober) -> None:
        prober.in_flight = True

        def work() -> None:
            ok, message = http_get(prober.spec)
            self._results.put((uid, prober, ok, message))
            self._wake.set()

        self._probe_pool.submit(work)

    def background(self, work: Callable[[], None]) -> None:
        """Run ``work`` off the sync thread (volume refreshes: API reads and file writes)."""
        self._probe_pool.submit(work)

    def write_status(self, uid: str, path: str, status: dict[str, Any], *, wait: bool) -> None:
        """PATCH the pod's status; one write in flight per pod, the newest status next.
        ``wait``: now, in this thread (a terminal status, written before the pod is removed)."""
        if wait:
            error = self._patch_status(path, status)
            proc = self._pods.get(uid)
            if proc is not None:
                proc.status_written(error)
            return
        if uid in self._writing:
            self._writing[uid] = status
            return
        self._writing[uid] = None
        self._writers.submit(self._write, uid, path, status)

    def _samples(self) -> list[ContainerSample]:
        with self._lock:
            procs = [p for p in self._pods.values() if p.cgroup is not None]
        return [p.sample() for p in procs]


def run_forever(runner: PodRunner) -> None:
    """Run until interrupted (the CLI's ``podrunner`` command)."""
    runner.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        runner.stop()
