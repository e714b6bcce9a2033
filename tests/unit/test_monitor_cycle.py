"""monitor/cycle.Monitor: detection one model after another, then each model's writes and heal
hooks side by side through the bounded pool; a cycle that overran its interval makes the
slots it ran past skipped (counted on the operator's /metrics, and logged), never queued."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from onnxops.api import Fault, ModelDeployment
from onnxops.config import OperatorConfig
from onnxops.monitor.cycle import Monitor
from onnxops.monitor.signals import Observations
from support.deployments import model_deployment

NOW = 1_800_000_000.0
SKIPPED = "onnxops_operator_monitor_cycles_skipped_total"


def _body(i: int, interval: int = 30) -> dict[str, Any]:
    return model_deployment(
        f"m{i}",
        namespace="ml",
        metadata={"resourceVersion": "1", "generation": 1},
        status={"phase": "Ready", "observedGeneration": 1},
        model={"uri": f"https://h/m{i}.onnx"},
        monitoring={"intervalSeconds": interval},
    )


def _settled(n: int) -> list[dict[str, Any]]:
    """Bodies whose status already says what the monitor finds at NOW (no Prometheus: not
    configured), so a cycle writes nothing and touches no apiserver: only the hooks run."""
    scratch = Monitor(OperatorConfig())
    stamp = datetime.fromtimestamp(NOW).strftime("%Y-%m-%dT%H:%M:%SZ")
    bodies = []
    for i in range(n):
        body = _body(i)
        md = ModelDeployment.model_validate(body)
        plan = scratch._detect(md, body, Observations(NOW, configured=False), stamp)
        body["status"] = {**body["status"], **plan.patch_of(md)}
        bodies.append(body)
    return bodies


class Recorder:
    """A heal hook that notes what it saw: how many ran at once, on which threads, and how
    many models had been judged when it ran."""

    def __init__(self, monitor: Monitor, hold_s: float = 0.05) -> None:
        self.monitor = monitor
        self.hold_s = hold_s
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.threads: set[int] = set()
        self.judged: list[int] = []
        self.seen: list[str] = []

    def __call__(
        self, md: ModelDeployment, faults: list[Fault], pods: Sequence[Any], at: datetime
    ) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.get_ident())
            self.judged.append(len(self.monitor.tracks))
            self.seen.append(md.name)
        time.sleep(self.hold_s)
        with self.lock:
            self.running -= 1


@pytest.mark.parametrize("pool", [1, 4, 16])
def test_hooks_run_side_by_side_bounded_by_the_pool_after_all_detection(pool: int) -> None:
    bodies = _settled(40)
    monitor = Monitor(OperatorConfig(monitor_write_concurrency=pool))
    hook = Recorder(monitor)
    monitor.hooks.append(hook)
    report = monitor.run_cycle(bodies, NOW)
    assert (report.evaluated, report.writes, report.events) == (40, 0, 0)
    assert sorted(hook.seen) == sorted(b["metadata"]["name"] for b in bodies)  # each once
    assert hook.most == pool  # as many in flight as the pool holds, never more
    assert len(hook.threads) == pool
    assert set(hook.judged) == {40}  # detection finished before any I/O fanned out


def test_the_pool_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXOPS_MONITOR_WRITE_CONCURRENCY", "3")
    assert OperatorConfig().monitor_write_concurrency == 3
    assert OperatorConfig.model_fields["monitor_write_concurrency"].default == 16
    monkeypatch.setenv("ONNXOPS_MONITOR_WRITE_CONCURRENCY", "0")
    with pytest.raises(ValueError):
        OperatorConfig()


def test_slots_a_long_cycle_ran_past_are_skipped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = Monitor(OperatorConfig())
    bodies = {("ml", f"m{i}"): _body(i) for i in range(3)}
    bodies[("ml", "fast")] = _body(9, interval=10)
    start = 30 * 60_000.0  # on both grids
    assert len(monitor.due(bodies, start)) == 4
    assert monitor.metrics.registry.get_sample_value(SKIPPED) == 0
    monitor.last_cycle_s = 95.0
    with caplog.at_level(logging.WARNING, "onnxops.monitor"):
        # 95 s later: the 30 s grid passed slots +1 and +2, the 10 s grid +1 ... +8
        assert len(monitor.due(bodies, start + 95)) == 4  # each due once, not once per slot
    assert monitor.metrics.registry.get_sample_value(SKIPPED) == 2 + 8
    said = [r.getMessage() for r in caplog.records]
    assert (
        "monitor: 2 slot(s) of the 30 s interval skipped (the previous cycle took 95.0 s)" in said
    )
    assert any("8 slot(s) of the 10 s interval" in m for m in said)
    assert monitor.due(bodies, start + 95) == []  # same slot: nothing due, nothing skipped
    assert monitor.due(bodies, start + 100) == [("ml", "fast")]  # its next slot: on time
    assert monitor.metrics.registry.get_sample_value(SKIPPED) == 10


def test_a_changed_interval_is_no_skip() -> None:
    monitor = Monitor(OperatorConfig())
    bodies = {("ml", "m"): _body(0, interval=30)}
    monitor.due(bodies, 30 * 60_000.0)
    bodies[("ml", "m")] = _body(0, interval=5)  # a new grid, not 6 missed slots
    assert monitor.due(bodies, 30 * 60_000.0 + 31) == [("ml", "m")]
    assert monitor.metrics.registry.get_sample_value(SKIPPED) == 0
