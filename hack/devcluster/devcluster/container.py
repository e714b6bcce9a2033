"""One serving pod as the pod runner's kubelet sees it: the pod worker.

`ServingProcess.sync` is the kubelet's pod worker for one pod, called by the runner's sync loop
(which owns the lock): start the container, watch it exit, restart it with back-off, act on probe
results, apply resizes, honour deletion, and write the pod's status when it changed. It asks the
runner for everything else through `podhost.PodHost`; each concern is a module of its own:
launch and environment (`launch`), probes (`readiness`), back-off (`restarts`), resize
(`resizing`) and status (`podreport`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import urllib.error
from collections.abc import Mapping
from typing import Any

from . import cgroups, processes
from .cadvisor import ContainerSample
from .launch import container_ports, launch, log_file, lookup_via, runtime_env
from .podenv import EnvError, container_env
from .podhost import PodHost, RunnerSettings
from .podreport import StatusReport, sample
from .podstatus import ContainerView, build_status, terminated
from .probes import Prober
from .processes import ProcessRecord
from .readiness import Readiness
from .resize import limits_of
from .resizing import Resizing
from .restarts import Backoff, exit_code, record_backoff, record_exit
from .servingpod import CONTAINER, loopback_of, pod_ip, serving_container, target_labels
from .termlog import TerminationLog
from .volumes import PodVolumes, VolumeError

log = logging.getLogger("devcluster.podrunner")

DEFAULT_GRACE_S = 30
ENV_RETRY_S = 2.0
# How often configMap/secret volumes are re-read (the kubelet: its sync period + cache TTL).
VOLUME_SYNC_S = float(os.environ.get("DEVCLUSTER_VOLUME_SYNC_S", "2"))


class ServingProcess:
    """The kubelet's state for one serving pod (one container, ``restartPolicy: Always``)."""

    def __init__(self, pod: Mapping[str, Any], host: PodHost, settings: RunnerSettings) -> None:
        self.host, self.settings = host, settings
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
        self.resizing = Resizing(int(meta.get("generation") or 1))
        self.resizing.applied_now(container.get("resources") or {}, self.view)
        self.start_wall = time.time()
        self.pod_ip = pod_ip(self.uid)
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
        self.readiness = Readiness()
        self.backoff = Backoff(settings.backoff_s, settings.backoff_max_s)
        self.restart_at: float | None = None
        self.kill_deadline: float | None = None
        self.kill_reason = ""
        self.restart_now = False  # a kill for a resize restarts without back-off
        self.report = StatusReport()
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
    def sync(self, now: float) -> None:
        if self.deleted:
            self.stop_now()
            self.gone = True
            return
        if self.obj["metadata"].get("deletionTimestamp"):
            self._terminate(now)
            return
        if not self.host_ip:
            addresses = self.host.node(self.node).get("status", {}).get("addresses", [])
            self.host_ip = next(
                (a["address"] for a in addresses if a.get("type") == "InternalIP"), "10.0.0.1"
            )
        if self.child is None and self.restart_at is None:
            if now >= self.env_retry_at:
                self._first_start(now)
        elif self.child is not None and self.child.poll() is not None:
            self._exited(now)
        elif self.child is not None:
            self._running(now)
        self._maybe_refresh_volumes(now)
        if self.restart_at is not None and now >= self.restart_at:
            self._start(now)
        self._maybe_resize(now)
        self._write_status(now)

    def _first_start(self, now: float) -> None:
        host, settings = self.host, self.settings
        try:
            env = container_env(self.obj, self.container, lookup_via(host.read))
        except (EnvError, urllib.error.URLError) as error:
            if self.view.reason != "CreateContainerConfigError":
                log.warning("not starting %s yet: %s", self.target, error)
                host.post_event(self.obj, "Failed", f"Error: {error}", warning=True)
            self.view.reason, self.view.message = "CreateContainerConfigError", str(error)
            self.env_retry_at = now + ENV_RETRY_S
            return
        volumes = PodVolumes(self.obj, self.container, settings.volumes_dir / self.uid)
        try:
            volumes.set_up(host.read)
        except (VolumeError, OSError, urllib.error.URLError) as error:
            if self.view.message != str(error):
                log.warning("not starting %s yet: %s", self.target, error)
                host.post_event(self.obj, "FailedMount", str(error), warning=True)
            self.view.reason, self.view.message = "ContainerCreating", str(error)
            self.env_retry_at = now + ENV_RETRY_S
            return
        self.volumes, self.volumes_synced_at = volumes, now
        env = volumes.rewrite_env(env)
        self.termination = TerminationLog(
            self.container,
            settings.volumes_dir / self.uid / "termination-log",
            log_file(settings, self.target),
        )
        env = self.termination.rewrite_env(env)
        self.view.reason, self.view.message = "ContainerCreating", ""
        self.ports, self.port = container_ports(self.container)
        self.env = runtime_env(
            env, settings, address=self.address, port=self.port, ports=self.ports
        )
        self.resizing.applied_now(self.container.get("resources") or {}, self.view)
        self.cgroup = cgroups.ContainerCgroup(settings.mode, f"{self.uid}-{CONTAINER}")
        self.cgroup.create(limits_of(self.resizing.applied))
        self._start(now)
        host.add_target(self.target, f"{self.address}:{self.port}", target_labels(self.obj))

    def _start(self, now: float) -> None:
        assert self.env is not None and self.cgroup is not None
        if self.restart_at is not None:
            self.view.restart_count += 1
            self.resizing.restarted(self.obj, self.cgroup, self.host, self.view)
        self.restart_at = None
        self.oom_before = self.cgroup.oom_kills()
        if self.termination is not None:
            self.termination.reset()
        self.child, self.record = launch(self.target, self.settings, self.env, self.cgroup)
        self.run_started = now
        v = self.view
        v.state, v.reason, v.message, v.exit_code = "running", "", "", None
        v.started_at, v.finished_at = time.time(), None
        v.container_id = f"devcluster://{self.uid[:8]}-{v.restart_count}-{self.child.pid}"
        self.readiness.arm(self.container, self.ports, self.address, now, v, self.target)
        self.host.post_event(self.obj, "Started", f"Started container {CONTAINER}")
        log.info("started %s on port %d (pid %d)", self.target, self.port, self.child.pid)

    def _maybe_refresh_volumes(self, now: float) -> None:
        volumes = self.volumes
        if (
            volumes is None
            or self.volumes_refreshing
            or now - self.volumes_synced_at < VOLUME_SYNC_S
        ):
            return
        self.volumes_synced_at, self.volumes_refreshing = now, True
        read = self.host.read

        def work() -> None:  # API reads off the sync thread; only this job touches `volumes`
            try:
                volumes.refresh(read)
            finally:
                self.volumes_refreshing = False

        self.host.background(work)

    def _running(self, now: float) -> None:
        assert self.child is not None and self.cgroup is not None
        if self.cgroup.enforce():
            log.warning("%s passed its memory limit: killed (watchdog mode)", self.target)
        if self.kill_deadline is not None:
            if now >= self.kill_deadline:
                self._signal(signal.SIGKILL)
            return
        for prober in self.readiness.due(now):
            self.host.run_probe(self.uid, prober)

    def probe_result(self, prober: Prober, ok: bool, message: str, now: float) -> None:
        if not self.readiness.owns(prober) or self.kill_deadline is not None:
            return  # a result from an earlier run of the container, or it is being killed
        failed = self.readiness.record(prober, ok, message, now, self.view)
        kind = prober.spec.kind
        if not ok:
            self.host.post_event(
                self.obj, "Unhealthy", f"{kind.capitalize()} probe failed: {message}", warning=True
            )
        if failed:  # liveness or startup failed: the kubelet kills the container
            reason = f"Container {CONTAINER} failed {kind} probe, will be restarted"
            self.host.post_event(self.obj, "Killing", reason)
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
        message = self.termination.message(exit_code(code)) if self.termination else ""
        oom = self.cgroup.oom_kills() > self.oom_before
        record_exit(self.view, code, oom=oom, message=message)
        self.readiness.clear()
        self.kill_deadline = None

    def _exited(self, now: float) -> None:
        assert self.child is not None
        self._ended_run()
        self.view.last_terminated = terminated(self.view)
        delay = 0.0 if self.restart_now else self.backoff.after(now - self.run_started)
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
            record_backoff(self.view, delay, CONTAINER, self.pod)
            self.host.post_event(
                self.obj, "BackOff", "Back-off restarting failed container", warning=True
            )

    def _maybe_resize(self, now: float) -> None:
        restart = self.resizing.sync(
            self.obj,
            self.container,
            self.cgroup,
            self.host,
            self.view,
            now,
            running=self.child is not None,
        )
        if restart and self.child is not None:
            self.restart_now = True
            self.kill(self._grace_s(), "resize needs a container restart (resizePolicy)")

    # -- deletion ------------------------------------------------------------------------------
    def _terminate(self, now: float) -> None:
        if self.finalized:
            return
        if self.child is not None and self.child.poll() is None:
            if self.kill_deadline is None:
                self.host.post_event(self.obj, "Killing", f"Stopping container {CONTAINER}")
                self.kill(self._grace_s(), "pod deleted")
            elif now >= self.kill_deadline:
                self._signal(signal.SIGKILL)
            self._write_status(now)
            return
        if self.child is not None:
            self._ended_run()
            self.child = None
        self.restart_at = None
        code = self.view.exit_code or 0
        phase = "Succeeded" if self.view.state == "terminated" and code == 0 else "Failed"
        self._write_status(now, terminal_phase=phase)
        # The kubelet removes the object once the containers are gone (grace 0, same uid).
        self.host.delete_pod(self.namespace, self.pod, self.obj["metadata"]["uid"])
        self.finalized = True
        self.stop_now()
        self.host.remove_target(self.target)

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
    def _write_status(self, now: float, terminal_phase: str | None = None) -> None:
        """Hand the pod's status to the runner's writers when it changed."""
        status = build_status(
            self.report.seen(self.obj),
            self.view,
            host_ip=self.host_ip or "10.0.0.1",
            pod_ip=self.pod_ip,
            start_time=self.start_wall,
            observed_generation=self.resizing.observed_generation,
            resize=self.resizing.state,
            terminal_phase=terminal_phase,
            now=time.time(),
        )
        if self.report.changed(status):
            self.host.write_status(
                self.uid, self.status_path, status, wait=terminal_phase is not None
            )

    def status_written(self, error: Exception | None) -> None:
        """The writers' answer (in the sync thread): a gone pod is forgotten, a failed write
        is retried at the next sync."""
        if self.report.written(error, self.target):
            self.deleted = True

    def sample(self) -> ContainerSample:
        assert self.cgroup is not None
        return sample(
            self.view,
            self.cgroup,
            namespace=self.namespace,
            pod=self.pod,
            node=self.node,
            start_wall=self.start_wall,
        )
