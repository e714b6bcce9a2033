"""Launching a serving container: its command, its environment (the spec's, then the pod
runner's own settings) and its ports, and the process started inside its cgroup.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import cgroups, processes
from .podenv import Lookup
from .podhost import RunnerSettings
from .processes import ProcessRecord
from .servingpod import POD_ADDRESS_REWRITE

REPO = Path(__file__).resolve().parents[3]
DEFAULT_PORT = 8080  # a container without ports: the runtime's default


def default_command() -> list[str]:
    """The serving runtime from the project's virtualenv (the image's entrypoint)."""
    python = REPO / ".venv" / "bin" / "python"
    return [str(python if python.exists() else "python3"), "-m", "onnxops_serving"]


def host_env() -> dict[str, str]:
    """The runner's own environment, as a container's base: the host's ONNXOPS_* settings must
    not leak into a "container"."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ONNXOPS_")}


def lookup_via(read: Callable[[str], Mapping[str, Any] | None]) -> Lookup:
    """`podenv`'s ConfigMap/Secret lookup on top of one API read (Secrets decoded)."""

    def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        obj = read(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        if obj is None:
            return None
        data = obj.get("data") or {}
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in data.items()}
        return dict(data)

    return lookup


def container_ports(container: Mapping[str, Any]) -> tuple[dict[str, int], int]:
    """The container's ports by number (as a string) and by name, and its HTTP port (the one
    named ``http``, or the first unnamed one). No mapping: the pod has an address of its own."""
    ports: dict[str, int] = {}
    for spec_port in container.get("ports", []):
        number = int(spec_port.get("containerPort") or 0)
        ports[str(number)] = number
        if spec_port.get("name"):
            ports[str(spec_port["name"])] = number
    http = next((p for p in container.get("ports", []) if p.get("name") in ("http", None)), None)
    return ports, (ports[str(http["containerPort"])] if http else DEFAULT_PORT)


def runtime_env(
    env: Mapping[str, str],
    settings: RunnerSettings,
    *,
    address: str,
    port: int,
    ports: Mapping[str, int],
) -> dict[str, str]:
    """The process's whole environment: the host's, the spec's ``env`` (already expanded and
    rebound to host paths), the runner's extras, and where the runtime listens."""
    out = dict(env)
    out.update(settings.extra_env)
    out.update(ONNXOPS_HOST=address, ONNXOPS_PORT=str(port))
    if "grpc" in ports:
        out["ONNXOPS_GRPC_PORT"] = str(ports["grpc"])
    # The shutdown delay covers kube-proxy still routing to a terminating pod; with no
    # kube-proxy here nothing routes to it, so stopping need not wait, unless the runner's
    # extras ask for it (traffic that follows the EndpointSlices, as the rollout tests send).
    if "ONNXOPS_SHUTDOWN_DELAY_S" not in settings.extra_env:
        out["ONNXOPS_SHUTDOWN_DELAY_S"] = "0"
    # Pod IPs are served on loopback here; shadow mirroring reaches them through this rewrite.
    out["ONNXOPS_MIRROR_ADDRESS_REWRITE"] = POD_ADDRESS_REWRITE
    return {**host_env(), **out}


def log_file(settings: RunnerSettings, target: str) -> Path:
    return settings.log_dir / f"{target}.log"


def launch(
    target: str,
    settings: RunnerSettings,
    env: Mapping[str, str],
    cgroup: cgroups.ContainerCgroup,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start one run of the container in its own process group, inside ``cgroup``."""
    argv = list(settings.command)
    if settings.resolv_conf is not None:
        # unshare execs in place (no fork) and so does sh: the PID is the container's.
        bind = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        argv = ["unshare", "--mount", "--", "sh", "-c", bind, str(settings.resolv_conf), *argv]
    child, record = processes.start(
        target,
        argv,
        log_file(settings, target),
        env=env,
        tie_to_parent=settings.tie_to_parent,
        preexec=cgroup.join if cgroup.dirs else None,
    )
    cgroup.attach(child.pid)
    return child, record
