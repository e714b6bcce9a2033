"""monitor/queries.py + prom.py against a real Prometheus: series of known values, backfilled
with `promtool tsdb create-blocks-from openmetrics` (cAdvisor's container_* names included,
which the devcluster pod runner does not export yet), read back through PrometheusReader.
A stopped or absent Prometheus reads as an error (unknown), never as a value."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devcluster import prometheus as prom
from onnxops.monitor import queries
from onnxops.monitor.prom import PrometheusReader, PromSettings

LABEL = "onnxops_io_model_deployment"
END = int(time.time()) - 120
TIMES = range(END - 300, END + 1, 15)


def _series() -> str:
    a = f'namespace="ml",{LABEL}="a",pod="a-1"'
    b = f'namespace="ml",{LABEL}="b",pod="b-1"'
    c = 'namespace="ml",pod="a-1",container="server"'
    rows: dict[str, list[str]] = {}

    def add(name: str, labels: str, per_s: float = 0.0, value: float = 0.0) -> None:
        rows.setdefault(name, []).extend(
            f"{name}{{{labels}}} {value + per_s * (t - TIMES[0])} {t}" for t in TIMES
        )

    add("onnxops_requests_total", f'{a},endpoint="infer",code="200"', per_s=9)
    add("onnxops_requests_total", f'{a},endpoint="infer",code="500"', per_s=1)  # 10% fail
    add("onnxops_requests_total", f'{a},endpoint="metrics",code="500"', per_s=50)  # not inference
    add("onnxops_requests_total", f'{b},endpoint="predict",code="200"', per_s=4)  # no 5xx series
    for le, share in (("0.01", 0.5), ("0.1", 0.98), ("+Inf", 1.0)):
        add("onnxops_request_duration_seconds_bucket", f'{a},le="{le}"', per_s=10 * share)
    add("onnxops_model_ready", a, value=1)
    add("onnxops_online_accuracy", a, value=0.7)
    add("onnxops_drift_psi_max", a, value=0.4)
    # b mid-rollout: a stable pod (labelled so) and a canary pod failing every request, with
    # worse accuracy, drift and latency; the monitor reads b's served version, the canary not.
    bs = f'namespace="ml",{LABEL}="b",pod="b-2",onnxops_io_track="stable"'
    bc = f'namespace="ml",{LABEL}="b",pod="b-canary-1",onnxops_io_track="canary"'
    add("onnxops_requests_total", f'{bs},endpoint="infer",code="200"', per_s=4)
    add("onnxops_requests_total", f'{bc},endpoint="infer",code="500"', per_s=4)
    for le, share in (("0.01", 1.0), ("0.1", 1.0), ("+Inf", 1.0)):
        add("onnxops_request_duration_seconds_bucket", f'{bs},le="{le}"', per_s=8 * share)
    for le, share in (("0.01", 0.0), ("0.1", 0.0), ("+Inf", 1.0)):
        add("onnxops_request_duration_seconds_bucket", f'{bc},le="{le}"', per_s=8 * share)
    add("onnxops_model_ready", bs, value=1)
    add("onnxops_online_accuracy", bs, value=0.9)
    add("onnxops_online_accuracy", bc, value=0.1)
    add("onnxops_drift_psi_max", bs, value=0.1)
    add("onnxops_drift_psi_max", bc, value=0.9)
    add("container_cpu_usage_seconds_total", c, per_s=0.3)
    add("container_cpu_cfs_periods_total", c, per_s=10)
    add("container_cpu_cfs_throttled_periods_total", c, per_s=4)
    add("container_memory_working_set_bytes", c, value=2e8)
    add("container_oom_events_total", c, value=1)
    # A second pod whose working set is 1e8 but for one scrape of 3e8 a minute before END.
    spiky = 'namespace="ml",pod="a-2",container="server"'
    add("container_memory_working_set_bytes", spiky, value=1e8)
    spike = f"{{{spiky}}} 100000000.0 {END - 60}"
    rows["container_memory_working_set_bytes"] = [
        r.replace(spike, f"{{{spiky}}} 300000000.0 {END - 60}")
        for r in rows["container_memory_working_set_bytes"]
    ]
    lines = []
    for name, samples in rows.items():
        lines += [f"# TYPE {name} unknown", *samples]
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prom.Prometheus]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: run `make system-deps`", pytrace=False)
    work = tmp_path_factory.mktemp("backfilled")
    (work / "series.om").write_text(_series())
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(work / "series.om"), str(work / "tsdb")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    server = prom.start(work, tie_to_parent=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("query", "key", "expected"),
    [
        (queries.presence(LABEL), ("ml", "a"), 1.0),
        (queries.error_ratio(LABEL, "1m"), ("ml", "a"), 0.1),
        (queries.error_ratio(LABEL, "1m"), ("ml", "b"), 0.0),  # healthy, not "no data"
        (queries.pod_error_ratio("1m"), ("ml", "a-1"), 0.1),  # the same, by the pod label
        (queries.pod_error_ratio("1m"), ("ml", "b-1"), 0.0),
        (queries.pod_error_ratio("1m"), ("ml", "b-2"), 0.0),  # stable-labelled: read
        (queries.latency_p99(LABEL, "1m"), ("ml", "b"), 0.0099),  # the canary's +Inf left out
        (queries.accuracy(LABEL), ("ml", "b"), 0.9),  # not the canary's 0.1
        (queries.drift(LABEL), ("ml", "b"), 0.1),  # nor its 0.9
        (queries.latency_p99(LABEL, "1m"), ("ml", "a"), 0.1),  # the 0.1 bucket's upper end
        (queries.accuracy(LABEL), ("ml", "a"), 0.7),
        (queries.drift(LABEL), ("ml", "a"), 0.4),
        (queries.cpu_cores("1m"), ("ml", "a-1"), 0.3),
        (queries.cpu_throttling("1m"), ("ml", "a-1"), 0.4),
        (queries.memory_bytes(), ("ml", "a-1"), 2e8),
        (queries.oom_events("1m"), ("ml", "a-1"), 0.0),  # the counter did not move
    ],
)
def test_query_reads_the_known_value(
    backfilled: prom.Prometheus, query: queries.Query, key: tuple[str, str], expected: float
) -> None:
    reader = PrometheusReader(PromSettings(backfilled.url), LABEL)
    reading = reader.instant(query, at=float(END))
    assert reading.error is None
    assert reading.values.get(key) == pytest.approx(expected, rel=0.05), reading.values


def test_a_canarys_series_are_left_out(backfilled: prom.Prometheus) -> None:
    reader = PrometheusReader(PromSettings(backfilled.url), LABEL)
    per_pod = reader.instant(queries.pod_error_ratio("1m"), at=float(END))
    assert per_pod.error is None and ("ml", "b-canary-1") not in per_pod.values
    # Read without the filter, the same series say b fails a third of its requests (4/s of
    # 12/s: the canary's), where the monitor reads 0 (the test above).
    counting = queries.error_ratio(LABEL, "1m").promql.replace(f",{queries.SERVED}", "")
    unfiltered = reader.instant(queries.Query("counting", counting, "model"), at=float(END))
    assert unfiltered.values.get(("ml", "b")) == pytest.approx(1 / 3, rel=0.05)


def test_history_is_one_range_query_for_all_models(backfilled: prom.Prometheus) -> None:
    reader = PrometheusReader(PromSettings(backfilled.url), LABEL)
    history = reader.history(queries.error_ratio(LABEL, "1m"), start=END - 240, end=END, step_s=30)
    assert history.error is None
    assert set(history.series) == {("ml", "a"), ("ml", "b")}
    assert len(history.series[("ml", "a")]) == 9
    assert reader.queries == 1


def test_unreachable_prometheus_is_an_error_not_a_value(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    # A port nobody listens on: connection refused, right away (no retries inside a cycle).
    reader = PrometheusReader(PromSettings("http://127.0.0.1:9", str(token), timeout_s=2), LABEL)
    reading = reader.instant(queries.presence(LABEL))
    assert reading.values == {} and reading.error and "ConnectionError" in reading.error
    assert (reader.queries, reader.errors) == (1, 1)


def test_a_bad_query_is_an_error_with_prometheus_reason(backfilled: prom.Prometheus) -> None:
    reader = PrometheusReader(PromSettings(backfilled.url), LABEL)
    reading = reader.instant(queries.Query("broken", "sum by (", "model"))
    assert reading.error and "400" in reading.error


@pytest.mark.parametrize(
    ("query", "key", "expected"),
    [
        (queries.peak_cpu_cores("1m", 120, 15), ("ml", "a-1"), 0.3),
        (queries.peak_memory_bytes(120), ("ml", "a-2"), 3e8),  # the one spike counts
        (queries.peak_memory_bytes(30), ("ml", "a-2"), 1e8),  # and leaves with the window
        (queries.peak_memory_bytes(120), ("ml", "a-1"), 2e8),
        # The series began at TIMES[0]: a window longer than that reaches back only so far.
        (queries.first_seen(600, 15), ("ml", "a-1"), float(TIMES[0])),
    ],
    # Named, not numbered by value: TIMES follows the clock, and pytest-xdist refuses to run
    # when its workers, started a second apart, collect different test ids.
    ids=["peak-cpu", "peak-memory-spike", "peak-memory-window", "peak-memory", "first-seen"],
)
def test_low_use_queries_read_peaks_and_how_far_back_the_series_go(
    backfilled: prom.Prometheus, query: queries.Query, key: tuple[str, str], expected: float
) -> None:
    reader = PrometheusReader(PromSettings(backfilled.url), LABEL)
    reading = reader.instant(query, at=float(END))
    assert reading.error is None, reading.error
    assert reading.values.get(key) == pytest.approx(expected, rel=0.05), reading.values


def test_a_series_older_than_the_window_covers_it(backfilled: prom.Prometheus) -> None:
    reader = PrometheusReader(PromSettings(backfilled.url), LABEL)
    reading = reader.instant(queries.first_seen(120, 15), at=float(END))
    assert reading.error is None
    assert END - reading.values[("ml", "a-1")] >= 120
