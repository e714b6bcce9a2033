"""Every Prometheus metric the runtime exports (prefix ``onnxops_``), in one registry.

Hot-path counters and histograms are plain Python numbers updated on the event loop thread
only, so they need no locks; a collector turns them into metric families at scrape time.
"""

from __future__ import annotations

import shutil
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """A lock-free histogram for single-threaded use."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str, labels: dict[str, str]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=list(labels))
        self.add_to(fam, list(labels.values()))
        return fam

    def add_to(self, fam: HistogramMetricFamily, label_values: list[str]) -> None:
        cumulative, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((str(bound) if bound != float("inf") else "+Inf", running))
        fam.add_metric(label_values, cumulative, self.sum)


class ServingMetrics:
    """The runtime's metrics; the data plane and REST layer write, Prometheus reads."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.model: dict[str, str] = {"model": "", "version": ""}
        self.info: dict[str, str] = {}
        self.ready = False
        self.load_seconds = 0.0
        # (endpoint, status, protocol) -> count; gRPC requests carry the HTTP status their
        # outcome maps to, so one error-rate query covers both protocols.
        self.requests: dict[tuple[str, int, str], int] = {}
        self.in_flight = 0
        self.request_latency = Histogram(LATENCY_BUCKETS)  # REST
        self.grpc_request_latency = Histogram(LATENCY_BUCKETS)
        self.inference_latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.feedback_rows = 0
        # Shadow mirroring (stable side): (candidate_version, outcome) -> count, and the
        # candidate's answer time per candidate version.
        self.shadow: dict[tuple[str, str], int] = {}
        self.shadow_latency: dict[str, Histogram] = {}
        # Set once the model is loaded: () -> {"accuracy": ..} / {feature: psi}
        self.quality: Callable[[], dict[str, float]] = dict
        self.quality_rows: Callable[[], int] = int
        self.drift: Callable[[], dict[str, float]] = dict
        self.drift_rows: Callable[[], int] = int  # all rows seen; the window keeps the latest
        self.drift_window = 0
        # A wide model (pixels, one-hot columns) would add a series per feature per pod.
        self.drift_max_series = 100
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(namespace="onnxops", registry=self.registry)

    def count(self, endpoint: str, status: int, protocol: str = "rest") -> None:
        key = (endpoint, status, protocol)
        self.requests[key] = self.requests.get(key, 0) + 1

    def count_shadow(self, candidate_version: str, outcome: str, n: int = 1) -> None:
        key = (candidate_version, outcome)
        self.shadow[key] = self.shadow.get(key, 0) + n

    def observe_shadow(self, candidate_version: str, seconds: float) -> None:
        hist = self.shadow_latency.get(candidate_version)
        if hist is None:
            hist = self.shadow_latency[candidate_version] = Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def observe_inference(self, rows: int, seconds: float) -> None:
        self.inference_latency.observe(seconds)
        self.batch_size.observe(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _gauge(self, name: str, doc: str, value: float, **extra: str) -> GaugeMetricFamily:
        labels = {**self.model, **extra}
        fam = GaugeMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), value)
        return fam

    def collect(self) -> Iterator[Metric]:
        m = self.model
        yield self._gauge("onnxops_model_ready", "1 once the model is loaded and warm", self.ready)
        reqs = CounterMetricFamily(
            "onnxops_requests", "Requests by endpoint and status code",
            labels=["model", "version", "endpoint", "code", "protocol"],
        )  # fmt: skip
        for (endpoint, code, protocol), n in sorted(self.requests.items()):
            reqs.add_metric([m["model"], m["version"], endpoint, str(code), protocol], n)
        yield reqs
        yield self._gauge("onnxops_inflight_requests", "Requests being handled", self.in_flight)
        latency = HistogramMetricFamily(
            "onnxops_request_duration_seconds", "Inference request latency (infer, predict)",
            labels=[*m, "protocol"],
        )  # fmt: skip
        self.request_latency.add_to(latency, [*m.values(), "rest"])
        self.grpc_request_latency.add_to(latency, [*m.values(), "grpc"])
        yield latency
        yield self.inference_latency.family(
            "onnxops_inference_duration_seconds", "Time in ONNX Runtime per model call", m
        )
        yield self.batch_size.family("onnxops_batch_size", "Rows per model call", m)
        if self.info:
            yield self._gauge("onnxops_model_info", "The served model", 1, **self.info)
            yield self._gauge(
                "onnxops_model_load_seconds", "Fetch-to-warm load time", self.load_seconds
            )
        yield from self._quality()
        yield from self._shadow()
        yield from self._disk()

    def _shadow(self) -> Iterator[Metric]:
        if self.shadow:
            fam = CounterMetricFamily(
                "onnxops_shadow_requests",
                "Requests mirrored to a candidate version, by outcome",
                labels=[*self.model, "candidate_version", "outcome"],
            )
            for (candidate, outcome), n in sorted(self.shadow.items()):
                fam.add_metric([*self.model.values(), candidate, outcome], n)
            yield fam
        if self.shadow_latency:
            latency = HistogramMetricFamily(
                "onnxops_shadow_latency_seconds",
                "Time the candidate version took to answer a mirrored request",
                labels=[*self.model, "candidate_version"],
            )
            for candidate, hist in sorted(self.shadow_latency.items()):
                hist.add_to(latency, [*self.model.values(), candidate])
            yield latency

    def _quality(self) -> Iterator[Metric]:
        fb = CounterMetricFamily(
            "onnxops_feedback_rows", "Labelled rows received", labels=list(self.model)
        )
        fb.add_metric(list(self.model.values()), self.feedback_rows)
        yield fb
        yield self._gauge(
            "onnxops_quality_window_rows",
            "Labelled rows in the quality window",
            self.quality_rows(),
        )
        for key, value in self.quality().items():
            yield self._gauge(
                f"onnxops_online_{key}", f"Online {key} over the feedback window", value
            )
        psi = self.drift()
        seen, window = self.drift_rows(), self.drift_window
        yield self._gauge(
            "onnxops_drift_window_rows", "Input rows in the drift window", min(seen, window)
        )
        seen_fam = CounterMetricFamily(
            "onnxops_drift_rows", "Input rows seen for drift", labels=list(self.model)
        )
        seen_fam.add_metric(list(self.model.values()), seen)
        yield seen_fam
        if psi and len(psi) <= self.drift_max_series:
            fam = GaugeMetricFamily(
                "onnxops_drift_psi", "Population stability index per input feature",
                labels=[*self.model, "feature"],
            )  # fmt: skip
            for feature, value in psi.items():
                fam.add_metric([*self.model.values(), feature], value)
            yield fam
        if psi:
            yield self._gauge(
                "onnxops_drift_psi_max", "Largest PSI over features", max(psi.values())
            )

    def _disk(self) -> Iterator[Metric]:
        try:
            usage = shutil.disk_usage(self.model_dir)
        except OSError:
            return
        yield self._gauge(
            "onnxops_model_disk_used_bytes", "Used bytes on the model volume", usage.used
        )
        yield self._gauge(
            "onnxops_model_disk_free_bytes", "Free bytes on the model volume", usage.free
        )

    def describe(self) -> list[Any]:
        return []
