"""The kubelet's cAdvisor endpoint for the pod runner's containers: ``/metrics/cadvisor``.

Series carry cAdvisor's names and labels (``namespace``, ``pod``, ``container``, ``id``,
``name``, ``image``) plus ``node``, computed from each container's cgroup (`cgroups.Stats`), so
PromQL written for a real cluster's kubelet scrape works unchanged. Prometheus scrapes it as
one target (``job="kubelet"``, ``metrics_path=/metrics/cadvisor``) registered by the runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .cgroups import CFS_PERIOD_US, Limits, Stats

PATH = "/metrics/cadvisor"


@dataclass(frozen=True)
class ContainerSample:
    """One container's identity, limits and cgroup stats at scrape time."""

    namespace: str
    pod: str
    container: str
    node: str
    image: str
    cgroup_id: str
    limits: Limits
    stats: Stats
    start_time: float


# name, type, help, value
_SERIES: tuple[tuple[str, str, str, Callable[[ContainerSample], float]], ...] = (
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
        lambda s: s.stats.cpu_usage_s,
    ),
    (
        "container_cpu_cfs_periods_total",
        "counter",
        "Number of elapsed enforcement period intervals.",
        lambda s: s.stats.cfs_periods,
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "counter",
        "Number of throttled period intervals.",
        lambda s: s.stats.cfs_throttled_periods,
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "counter",
        "Total time duration the container has been throttled.",
        lambda s: s.stats.cfs_throttled_s,
    ),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        lambda s: s.stats.memory_usage,
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
        lambda s: s.stats.working_set,
    ),
    ("container_memory_rss", "gauge", "Size of RSS in bytes.", lambda s: s.stats.rss),
    (
        "container_spec_memory_limit_bytes",
        "gauge",
        "Memory limit for the container.",
        lambda s: s.limits.memory_limit or 0,
    ),
    (
        "container_spec_cpu_quota",
        "gauge",
        "CPU quota of the container.",
        lambda s: max(0, s.limits.quota_us),
    ),
    (
        "container_spec_cpu_period",
        "gauge",
        "CPU period of the container.",
        lambda s: CFS_PERIOD_US,
    ),
    (
        "container_spec_cpu_shares",
        "gauge",
        "CPU share of the container.",
        lambda s: s.limits.shares,
    ),
    (
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
        lambda s: s.stats.oom_kills,
    ),
    (
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds.",
        lambda s: s.start_time,
    ),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: Iterable[ContainerSample]) -> str:
    """The Prometheus text exposition of all samples."""
    samples = list(samples)
    lines: list[str] = []
    for name, kind, help_text, value in _SERIES:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for s in samples:
            labels = (
                f'container="{_escape(s.container)}",id="{_escape(s.cgroup_id)}",'
                f'image="{_escape(s.image)}",name="{_escape(s.cgroup_id)}",'
                f'namespace="{_escape(s.namespace)}",node="{_escape(s.node)}",'
                f'pod="{_escape(s.pod)}"'
            )
            lines.append(f"{name}{{{labels}}} {float(value(s))!r}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``/metrics/cadvisor`` on 127.0.0.1 (a free port), served from ``collect()``."""

    def __init__(self, collect: Callable[[], Iterable[ContainerSample]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != PATH:
                    self.send_error(404)
                    return
                body = render(outer.collect()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.collect = collect
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cadvisor", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
