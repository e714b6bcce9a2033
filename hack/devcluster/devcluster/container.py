"""One serving pod as the pod runner's kubelet sees it: its process, cgroup, probes and status.

`ServingProcess.sync` is the kubelet's pod worker for one pod, called by the runner's sync loop
(which owns the lock): start the container, watch it exit, restart it with back-off, act on probe
results, apply resizes, honour deletion, and write the pod's status when it changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import time
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cgroups, processes
from .cadvisor import ContainerSample
from .podenv import EnvError, container_env
from .podstatus import ContainerView, ResizeView, build_status, terminated
from .probes import ProbeError, Prober, parse
from .processes import ProcessRecord
from .prometheus import label_name
from .resize import decide, limits_of, normalized, pod_requests
from .termlog import TerminationLog
from .volumes import PodVolumes, VolumeError

if TYPE_CHECKING:
    from .podrunner import PodRunner

log = logging.getLogger("devcluster.podrunner")

REPO = Path(__file__).resolve().parents[3]
CONTAINER = "server"
IMAGE_MARKER = "onnxops-serving"
DEFAULT_GRACE_S = 30
# A container that ran this long without exiting starts its back-off afresh.
BACKOFF_RESET_S = 120.0
ENV_RETRY_S = 2.0
# How often configMap/secret volumes are re-read (the kubelet: its sync period + cache TTL).
VOLUME_SYNC_S = float(os.environ.get("DEVCLUSTER_VOLUME_SYNC_S", "2"))
# Deferred or failed resizes are retried on the kubelet's periodic sync.
RESIZE_RETRY_S = 2.0


def default_command() -> list[str]:
    """The serving runtime from the project's virtualenv (the image's entrypoint)."""
    python = REPO / ".venv" / "bin" / "python"
    return [str(python if python.exists() else "python3"), "-m", "onnxops_serving"]


def serving_container(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod's onnxops serving container, if it has one."""
    for container in pod.get("spec", {}).get("containers", []):
        if container.get("name") == CONTAINER and IMAGE_MARKER in container.get("image", ""):
            return dict(container)
    return None


def wants_process(pod: Mapping[str, Any]) -> bool:
    """Is this a serving pod bound to a node and not being deleted (the runner's to run)?"""
    return (
        bool(pod.get("spec", {}).get("nodeName"))
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


def _pod_ip(uid: str) -> str:
    # A stable address per pod outside KWOK's pod CIDR; EndpointSlices refuse loopback ones.
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.{128 + digest[0] % 64}.{digest[1]}.{1 + digest[2] % 254}"


def loopback_of(pod_ip: str) -> str:
    """The loopback address a pod's processes listen on: its pod IP moved into 127.0.0.0/8
    (all of it is local). Every pod has an address of its own, so its container ports are
    its own as in a pod's network namespace: no two pods can ever want the same socket, and
    no port is picked free and then taken by someone else before the process binds it."""
    return "127." + pod_ip.split(".", 1)[1]


DEFAULT_PORT = 8080  # a container without ports: the runtime's default


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class ServingProcess:
    """The kubelet's state for one serving pod (one container, ``restartPolicy: Always``)."""

    def __init__(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod: str = meta["name"]
        self.node: str = pod["spec"]["nodeName"]
        self.obj: Mapping[str, Any] = pod
        container = serving_container(pod) or {}
        self.view = ContainerView(name=CONTAINER, image=str(container.get("image", "")))
        # A runner restarted over running pods keeps their restart counts (as a kubelet does).
        before = (pod.get("status") or {}).get("containerStatuses") or [{}]
        self.view.restart_count = int(before[0].get("restartCount", 0))
        self.applied: dict[str, Any] = normalized(container.get("resources") or {})
        self.view.resources = self.applied
        self.view.allocated = dict(self.applied.get("requests", {}))
        self.start_wall = time.time()
        self.pod_ip = _pod_ip(self.uid)
        self.address = loopback_of(self.pod_ip)
        self.host_ip = ""
        self.ports: dict[str, int] = {}
        self.port = 0
        self.env: dict[str, str] | None = None
        self.env_retry_at = 0.0
        self.volumes: PodVolumes | None = None
        self.termination: TerminationLog | None = None
        self.volumes_synced_at = 0.0
        self.volumes_refreshing = False
        self.cgroup: cgroups.ContainerCgroup | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.record: ProcessRecord | None = None
        self.run_started = 0.0  # monotonic start of the current run
        self.oom_before = 0
        self.probers: dict[str, Prober] = {}
        self.next_delay_s = 0.0  # back-off before the next restart (0: the first is at once)
        self.restart_at: float | None = None
        self.kill_deadline: float | None = None
        self.kill_reason = ""
        self.restart_now = False  # a kill for a resize restarts without back-off
        self.resize = ResizeView()
        self.resize_retry_at = 0.0
        self.observed_generation = int(meta.get("generation") or 1)
        self.last_status: dict[str, Any] | None = None
        self.deleted = False  # the API object is gone
        self.finalized = False  # terminal status written, delete sent
        self.gone = False  # nothing left to do: the runner forgets the pod

    # -- identity ------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.pod}"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def restarts(self) -> int:
        return self.view.restart_count

    @property
    def status_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}/status"

    @property
    def container(self) -> dict[str, Any]:
        return serving_container(self.obj) or {}

    def observe(self, pod: Mapping[str, Any], *, deleted: bool) -> None:
        self.obj = pod
        if deleted:
            self.deleted = True

    # -- the pod worker ------------------------------------------------------------------------
    def sync(self, runner: PodRunner, now: float) -> None:
        if self.deleted:
            self.stop_now()
            self.gone = True
            return
        if self.obj["metadata"].get("deletionTimestamp"):
            self._terminate(runner, now)
            return
        if not self.host_ip:
            addresses = runner.node(self.node).get("status", {}).get("addresses", [])
            self.host_ip = next(
                (a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1"
            )
        if self.child is None and self.restart_at is None:
            if now >= self.env_retry_at:
                self._first_start(runner, now)
        elif self.child is not None and self.child.poll() is not None:
            self._exited(runner, now)
        elif self.child is not None:
            self._running(runner, now)
        self._maybe_refresh_volumes(runner, now)
        if self.restart_at is not None and now >= self.restart_at:
            self._start(runner, now)
        self._maybe_resize(runner, now)
        self._write_status(runner, now)

    def _first_start(self, runner: PodRunner, now: float) -> None:
        try:
            env = container_env(self.obj, self.container, runner.lookup)
        except (EnvError, urllib.error.URLError) as error:
            if self.view.reason != "CreateContainerConfigError":
                log.warning("not starting %s yet: %s", self.target, error)
                runner.events.post(self.obj, "Failed", f"Error: {error}", warning=True)
            self.view.reason, self.view.message = "CreateContainerConfigError", str(error)
            self.env_retry_at = now + ENV_RETRY_S
            return
        volumes = PodVolumes(self.obj, self.container, runner.volumes_dir / self.uid)
        try:
            volumes.set_up(runner.api.get_or_none)
        except (VolumeError, OSError, urllib.error.URLError) as error:
            if self.view.message != str(error):
                log.warning("not starting %s yet: %s", self.target, error)
                runner.events.post(self.obj, "FailedMount", str(error), warning=True)
            self.view.reason, self.view.message = "ContainerCreating", str(error)
            self.env_retry_at = now + ENV_RETRY_S
            return
        self.volumes, self.volumes_synced_at = volumes, now
        env = volumes.rewrite_env(env)
        self.termination = TerminationLog(
            self.container,
            runner.volumes_dir / self.uid / "termination-log",
            runner.log_dir / f"{self.target}.log",
        )
        env = self.termination.rewrite_env(env)
        self.view.reason, self.view.message = "ContainerCreating", ""
        for spec_port in self.container.get("ports", []):
            number = int(spec_port.get("containerPort") or 0)
            self.ports[str(number)] = number
            if spec_port.get("name"):
                self.ports[str(spec_port["name"])] = number
        http = next(
            (p for p in self.container.get("ports", []) if p.get("name") in ("http", None)), None
        )
        self.port = self.ports[str(http["containerPort"])] if http else DEFAULT_PORT
        env.update(runner.extra_env)
        env.update(ONNXOPS_HOST=self.address, ONNXOPS_PORT=str(self.port))
        if "grpc" in self.ports:
            env["ONNXOPS_GRPC_PORT"] = str(self.ports["grpc"])
        # The shutdown delay covers kube-proxy still routing to a terminating pod; with no
        # kube-proxy here nothing routes to it, so stopping need not wait.
        env["ONNXOPS_SHUTDOWN_DELAY_S"] = "0"
        self.env = {**runner.host_env(), **env}
        self.applied = normalized(self.container.get("resources") or {})  # the spec as of now
        self.view.resources = self.applied
        self.view.allocated = dict(self.applied.get("requests", {}))
        self.cgroup = cgroups.ContainerCgroup(runner.mode, f"{self.uid}-{CONTAINER}")
        self.cgroup.create(limits_of(self.applied))
        self._start(runner, now)
        runner.targets.add(self.target, f"{self.address}:{self.port}", target_labels(self.obj))

    def _start(self, runner: PodRunner, now: float) -> None:
        assert self.env is not None and self.cgroup is not None
        if self.restart_at is not None:
            self.view.restart_count += 1
        self.restart_at = None
        cgroup = self.cgroup
        self.oom_before = cgroup.oom_kills()
        if self.termination is not None:
            self.termination.reset()
        self.child, self.record = processes.start(
            self.target,
            runner.command,
            runner.log_dir / f"{self.target}.log",
            env=self.env,
            tie_to_parent=runner.tie_to_parent,
            preexec=cgroup.join if cgroup.dirs else None,
        )
        cgroup.attach(self.child.pid)
        self.run_started = now
        v = self.view
        v.state, v.reason, v.message, v.exit_code = "running", "", "", None
        v.started_at, v.finished_at = time.time(), None
        v.container_id = f"devcluster://{self.uid[:8]}-{v.restart_count}-{self.child.pid}"
        self._arm_probes(now)
        runner.events.post(self.obj, "Started", f"Started container {CONTAINER}")
        log.info("started %s on port %d (pid %d)", self.target, self.port, self.child.pid)

    def _maybe_refresh_volumes(self, runner: PodRunner, now: float) -> None:
        volumes = self.volumes
        if (
            volumes is None
            or self.volumes_refreshing
            or now - self.volumes_synced_at < VOLUME_SYNC_S
        ):
            return
        self.volumes_synced_at, self.volumes_refreshing = now, True

        def work() -> None:  # API reads off the sync thread; only this job touches `volumes`
            try:
                volumes.refresh(runner.api.get_or_none)
            finally:
                self.volumes_refreshing = False

        runner.background(work)

    def _arm_probes(self, now: float) -> None:
        self.probers = {}
        container = self.container
        try:
            if "startupProbe" in container:
                self.probers["startup"] = Prober(
                    parse("startup", container["startupProbe"], self.ports, self.address), now
                )
            else:
                self._arm_after_startup(now)
        except ProbeError as error:
            log.warning("%s: %s (probe ignored)", self.target, error)
        self.view.started = "startup" not in self.probers
        self.view.ready = self.view.started and "readiness" not in self.probers

    def _arm_after_startup(self, now: float) -> None:
        container = self.container
        for kind in ("liveness", "readiness"):
            if f"{kind}Probe" in container:
                self.probers[kind] = Prober(
                    parse(kind, container[f"{kind}Probe"], self.ports, self.address), now
                )

    def _running(self, runner: PodRunner, now: float) -> None:
        assert self.child is not None and self.cgroup is not None
        if self.cgroup.enforce():
            log.warning("%s passed its memory limit: killed (watchdog mode)", self.target)
        if self.kill_deadline is not None:
            if now >= self.kill_deadline:
                self._signal(signal.SIGKILL)
            return
        for prober in list(self.probers.values()):
            if prober.due(now):
                runner.run_probe(self, prober)

    def probe_result(
        self, runner: PodRunner, prober: Prober, ok: bool, message: str, now: float
    ) -> None:
        if self.probers.get(prober.spec.kind) is not prober or self.kill_deadline is not None:
            return  # a result from an earlier run of the container, or it is being killed
        flipped = prober.record(ok, message, now)
        kind = prober.spec.kind
        if not ok:
            runner.events.post(
                self.obj, "Unhealthy", f"{kind.capitalize()} probe failed: {message}", warning=True
            )
        if flipped is None:
            return
        if kind == "startup" and flipped:
            self.view.started = True
            del self.probers["startup"]
            self._arm_after_startup(now)
            self.view.ready = "readiness" not in self.probers
        elif kind == "readiness":
            self.view.ready = flipped
        elif not flipped:  # liveness or startup failed: the kubelet kills the container
            reason = f"Container {CONTAINER} failed {kind} probe, will be restarted"
            runner.events.post(self.obj, "Killing", reason)
            self.kill(self._grace_s(), reason)

    def kill(self, grace_s: float, reason: str) -> None:
        log.info("%s: %s", self.target, reason)
        self.kill_reason = reason
        self.view.ready = False
        self.kill_deadline = time.monotonic() + grace_s
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, sig)

    def _grace_s(self) -> float:
        meta = self.obj["metadata"]
        if meta.get("deletionGracePeriodSeconds") is not None:
            return float(meta["deletionGracePeriodSeconds"])
        return float(self.obj["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))

    def _ended_run(self) -> None:
        """Record the run that just ended as the container's terminated state."""
        assert self.child is not None and self.cgroup is not None
        code = self.child.returncode
        v = self.view
        v.state, v.finished_at, v.ready = "terminated", time.time(), False
        v.exit_code = _exit_code(code)
        oom = self.cgroup.oom_kills() > self.oom_before
        v.reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        v.message = self.termination.message(v.exit_code) if self.termination else ""
        self.probers = {}
        self.kill_deadline = None

    def _exited(self, runner: PodRunner, now: float) -> None:
        assert self.child is not None
        self._ended_run()
        self.view.last_terminated = terminated(self.view)
        ran_s = now - self.run_started
        if self.restart_now:
            delay = 0.0
        else:
            if ran_s >= BACKOFF_RESET_S:
                self.next_delay_s = 0.0
            delay = self.next_delay_s
            self.next_delay_s = min(
                runner.backoff_max_s, max(runner.backoff_s, self.next_delay_s * 2)
            )
        self.restart_now = False
        log.warning(
            "%s exited (%s, code %s); restart in %.0fs",
            self.target,
            self.view.reason,
            self.view.exit_code,
            delay,
        )
        self.child = None
        self.restart_at = now + delay
        if delay > 0:
            message = (
                f"back-off {delay:.0f}s restarting failed container={CONTAINER} pod={self.pod}"
            )
            self.view.state, self.view.reason, self.view.message = (
                "waiting",
                "CrashLoopBackOff",
                message,
            )
            runner.events.post(
                self.obj, "BackOff", "Back-off restarting failed container", warning=True
            )

    # -- resize --------------------------------------------------------------------------------
    def _maybe_resize(self, runner: PodRunner, now: float) -> None:
        generation = int(self.obj["metadata"].get("generation") or 1)
        desired = normalized(self.container.get("resources") or {})
        if desired == self.applied:
            if self.resize != ResizeView():
                self.resize = ResizeView()
            self.observed_generation = generation
            return
        # A container waiting out a crash back-off is resized too: its next run gets the new
        # limits (an OOM-looping pod is exactly the one a memory resize is for).
        if self.cgroup is None or now < self.resize_retry_at:
            return
        self.resize_retry_at = now + RESIZE_RETRY_S
        self.observed_generation = generation
        others = [
            pod_requests(p)
            for p in runner.node_pods(self.node)
            if p["metadata"]["uid"] != self.uid
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        decision = decide(
            desired,
            self.applied,
            self.container.get("resizePolicy") or [],
            node_allocatable=runner.node(self.node).get("status", {}).get("allocatable", {}),
            others=others,
        )
        if decision.action == "defer":
            if self.resize.pending_reason != "Deferred":
                runner.events.post(self.obj, "ResizeDeferred", decision.message, warning=True)
            self.resize = ResizeView(pending_reason="Deferred", pending_message=decision.message)
            return
        if self.resize.pending_reason or not self.resize.in_progress:
            runner.events.post(self.obj, "ResizeStarted", f"Pod resize started: {desired}")
        self.view.allocated = dict(desired.get("requests", {}))
        try:
            self.cgroup.apply(limits_of(desired))
        except cgroups.LimitError as error:
            if self.resize.error_message != str(error):
                runner.events.post(self.obj, "ResizeError", str(error), warning=True)
            self.resize = ResizeView(in_progress=True, error_message=str(error))
            return
        self.applied = desired
        self.view.resources = desired
        self.resize = ResizeView()
        runner.events.post(self.obj, "ResizeCompleted", f"Pod resize completed: {desired}")
        if decision.restart and self.child is not None:
            self.restart_now = True
            self.kill(self._grace_s(), "resize needs a container restart (resizePolicy)")

    # -- deletion ------------------------------------------------------------------------------
    def _terminate(self, runner: PodRunner, now: float) -> None:
        if self.finalized:
            return
        if self.child is not None and self.child.poll() is None:
            if self.kill_deadline is None:
                runner.events.post(self.obj, "Killing", f"Stopping container {CONTAINER}")
                self.kill(self._grace_s(), "pod deleted")
            elif now >= self.kill_deadline:
                self._signal(signal.SIGKILL)
            self._write_status(runner, now)
            return
        if self.child is not None:
            self._ended_run()
            self.child = None
        self.restart_at = None
        code = self.view.exit_code or 0
        phase = "Succeeded" if self.view.state == "terminated" and code == 0 else "Failed"
        self._write_status(runner, now, terminal_phase=phase)
        meta = self.obj["metadata"]
        # The kubelet removes the object once the containers are gone (grace 0, same uid).
        runner.api.delete(
            f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}",
            {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
        )
        self.finalized = True
        self.stop_now()
        runner.targets.remove(self.target)

    def stop_now(self) -> None:
        """Stop the process at once (runner stopping, pod gone) and drop the cgroup."""
        if self.record is not None:
            processes.stop([self.record], grace_s=5)
        if self.child is not None:
            self.child.poll()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.volumes is not None:
            self.volumes.remove()

    # -- status --------------------------------------------------------------------------------
    def _write_status(
        self, runner: PodRunner, now: float, terminal_phase: str | None = None
    ) -> None:
        """Hand the pod's status to the runner's writers when it changed. Transition times
        are judged against what was last sent (the watch may not have echoed it yet)."""
        seen = {**self.obj, "status": self.last_status} if self.last_status else self.obj
        status = build_status(
            seen,
            self.view,
            host_ip=self.host_ip or "10.0.0.1",
            pod_ip=self.pod_ip,
            start_time=self.start_wall,
            observed_generation=self.observed_generation,
            resize=self.resize,
            terminal_phase=terminal_phase,
            now=time.time(),
        )
        if status == self.last_status:
            return
        self.last_status = status
        runner.write_status(self, status, wait=terminal_phase is not None)

    def status_written(self, error: Exception | None) -> None:
        """The writers' answer (in the sync thread): a gone pod is forgotten, a failed write
        is retried at the next sync."""
        if isinstance(error, urllib.error.HTTPError) and error.code == 404:
            self.deleted = True
        elif error is not None:
            log.warning("status of %s not written: %s", self.target, error)
            self.last_status = None

    def sample(self) -> ContainerSample:
        assert self.cgroup is not None
        return ContainerSample(
            namespace=self.namespace,
            pod=self.pod,
            container=CONTAINER,
            node=self.node,
            image=self.view.image,
            cgroup_id=self.cgroup.id,
            limits=self.cgroup.limits,
            stats=self.cgroup.stats(),
            start_time=self.view.started_at or self.start_wall,
        )
