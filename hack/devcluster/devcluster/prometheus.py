"""Prometheus (the Debian package) on a free port, with file-based service discovery.

Scrape targets are JSON files in one folder that Prometheus watches: adding or removing a
target is writing or deleting a file, so any process (the pod runner, a test) can do it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import processes
from .processes import ProcessRecord

JOB = "onnxops-serving"
# Starts whose probed port was taken before Prometheus bound it are retried with a fresh port.
_ATTEMPTS = 3
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TARGET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ScrapeTargets:
    """A file_sd folder: one ``<name>.json`` per target."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, address: str, labels: Mapping[str, str]) -> None:
        """Scrape ``address`` (host:port) with ``labels``; replaces a target of the same name."""
        if not _TARGET_NAME.match(name):
            raise ValueError(f"bad target name {name!r}")
        bad = [k for k in labels if not _LABEL_NAME.match(k)]
        if bad:
            raise ValueError(f"not Prometheus label names: {bad}")
        body = json.dumps([{"targets": [address], "labels": dict(labels)}], indent=1)
        # Write then rename: Prometheus must never read a half-written file.
        tmp = self.directory / f".{name}.json.tmp"
        tmp.write_text(body)
        os.replace(tmp, self.directory / f"{name}.json")

    def remove(self, name: str) -> None:
        (self.directory / f"{name}.json").unlink(missing_ok=True)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.json"))


def label_name(key: str) -> str:
    """A Kubernetes label key as a Prometheus label name, the way ``labelmap`` relabelling does."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return name if _LABEL_NAME.match(name) else f"_{name}"


@dataclass
class Prometheus:
    """A running Prometheus and its scrape-target folder."""

    url: str
    targets: ScrapeTargets
    work_dir: Path
    record: ProcessRecord
    _child: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def add_target(self, name: str, address: str, labels: Mapping[str, str]) -> None:
        self.targets.add(name, address, labels)

    def remove_target(self, name: str) -> None:
        self.targets.remove(name)

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; returns ``data`` or raises with Prometheus' error."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        return list(self.api("query", query=promql)["result"])

    def wait_for(self, promql: str, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Poll an instant query until it returns at least one series."""
        result: list[dict[str, Any]] = processes.wait_for(
            lambda: self.query(promql), timeout_s=timeout_s, what=f"series for {promql}"
        )
        return result

    def stop(self) -> None:
        processes.stop([self.record])
        if self._child is not None:
            self._child.poll()


def _config(
    targets_dir: Path,
    scrape_interval: str,
    rule_files: Sequence[Path],
    alertmanagers: Sequence[str] = (),
) -> str:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": JOB,
                # fsnotify picks up changes at once; the refresh is only a safety net.
                "file_sd_configs": [
                    {"files": [str(targets_dir / "*.json")], "refresh_interval": "5s"}
                ],
            }
        ],
    }
    if alertmanagers:  # host:port of each, on loopback
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return json.dumps(config, indent=1)  # JSON is valid YAML


def start(
    work_dir: Path,
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    binary: str = "prometheus",
    tie_to_parent: bool = False,
    timeout_s: float = 30,
) -> Prometheus:
    """Start Prometheus with its config, TSDB and targets under ``work_dir``; wait for /-/ready."""
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(f"{binary} not found: run `make system-deps` (Debian prometheus)")
    targets = ScrapeTargets(work_dir / "targets")
    config = work_dir / "prometheus.yml"
    config.write_text(_config(targets.directory, scrape_interval, rule_files, alertmanagers))
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return _start_once(exe, work_dir, config, targets, tie_to_parent, timeout_s)
        except processes.ProcessExited as error:
            # A free port can be taken by someone else between our probe and the bind.
            if "address already in use" not in str(error) or attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _start_once(
    exe: str,
    work_dir: Path,
    config: Path,
    targets: ScrapeTargets,
    tie_to_parent: bool,
    timeout_s: float,
) -> Prometheus:
    port = processes.free_port()
    log_path = work_dir / "prometheus.log"
    child, record = processes.start(
        "prometheus",
        [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",  # lets a test reload rules with POST /-/reload
            "--log.level=warn",
        ],
        log_path,
        tie_to_parent=tie_to_parent,
    )
    prom = Prometheus(f"http://127.0.0.1:{port}", targets, work_dir, record, child)

    def ready() -> bool:
        if child.poll() is not None:
            log = log_path.read_text(errors="replace")[-2000:]
            raise processes.ProcessExited(f"prometheus exited ({child.returncode}):\n{log}")
        with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    try:
        processes.wait_for(ready, timeout_s=timeout_s, what="prometheus /-/ready")
    except BaseException:
        prom.stop()
        raise
    return prom
