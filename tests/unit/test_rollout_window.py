"""The analysis window of a rollout (rollout/queries.py `window_s`, rollout/cycle.py
`by_window`): the monitor's rate window, but never reaching back before the step began (bar
the floor of two scrapes); rollouts due together share at most five windows, one query per
signal each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from onnxops.api import ModelDeployment
from onnxops.rollout import queries
from onnxops.rollout.cycle import Rollouts, by_window
from support.deployments import model_deployment

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("elapsed", "rate", "expected"),
    [
        (0, 120, 60),  # a step just begun: the floor, half the rate window (two scrapes)
        (-5, 120, 60),  # a start in the future (clock skew) too
        (59.9, 120, 60),
        (74.9, 120, 60),  # the longest rung not longer than the step
        (75, 120, 75),
        (119.9, 120, 105),
        (120, 120, 120),  # old enough: the monitor's rate window
        (86400, 120, 120),
        (3, 10, 5),  # the loop tests' 10 s window
        (6.5, 10, 6),
        (9.9, 10, 8),
        (10, 10, 10),
        (0, 1, 1),  # never zero
    ],
)
def test_the_window_starts_no_earlier_than_the_step(
    elapsed: float, rate: int, expected: int
) -> None:
    assert queries.window_s(elapsed, rate) == expected


@pytest.mark.parametrize("rate", [1, 2, 7, 10, 30, 120, 121, 600, 3600])
def test_the_window_is_bounded_and_takes_at_most_five_values(rate: int) -> None:
    floor = max(1, rate // 2)
    seen = set()
    for tenth in range(-10, 12 * rate):
        elapsed = tenth / 10
        w = queries.window_s(elapsed, rate)
        assert isinstance(w, int) and floor <= w <= rate
        assert w <= max(elapsed, floor)  # before the step's start only within the floor
        seen.add(w)
    assert len(seen) <= 5 and max(seen) == rate and min(seen) == floor


def md(name: str, started: timedelta, *, shadow: bool = False) -> ModelDeployment:
    step = {"shadow": 100, "pauseSeconds": 30} if shadow else {"weight": 10, "pauseSeconds": 30}
    rollout = {
        "phase": "Progressing",
        "step": 0,
        "steps": 1,
        "stableModel": {"uri": "https://h/m/1/model.onnx", "version": "1"},
        "stableVersion": "1",
        "candidate": {"uri": "https://h/m/2/model.onnx", "version": "2"},
        "candidateVersion": "2",
        "stepStartedAt": (NOW - started).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    body = model_deployment(
        name,
        namespace="ml",
        model=rollout["candidate"],
        rollout={"steps": [step]},
        status={"rollout": rollout},
    )
    return ModelDeployment.model_validate(body)


def test_rollouts_due_group_by_the_window_of_their_step() -> None:
    models = [
        md("a", timedelta(seconds=3)),
        md("b", timedelta(seconds=70)),
        md("c", timedelta(seconds=80)),
        md("d", timedelta(seconds=90)),
        md("e", timedelta(hours=2)),
        md("f", timedelta(minutes=5)),
    ]
    grouped = by_window(models, NOW.timestamp(), "2m")
    assert {w: [m.name for m in ms] for w, ms in grouped.items()} == {
        60: ["a", "b"],
        75: ["c"],
        90: ["d"],
        120: ["e", "f"],
    }


class Recording:
    """A PrometheusReader's `instant_by` that records each query and answers from `answers`
    (matched by the query's first words), failing every query once `fail_after` were sent."""

    def __init__(
        self, answers: dict[str, dict[tuple[str, ...], float]], fail_after: int = 99
    ) -> None:
        self.answers, self.fail_after = answers, fail_after
        self.sent: list[str] = []

    def instant_by(
        self, promql: str, labels: tuple[str, ...], at: float | None = None
    ) -> tuple[dict[tuple[str, ...], float], str | None]:
        self.sent.append(promql)
        if len(self.sent) > self.fail_after:
            return {}, "ConnectionError: refused"
        found = [v for k, v in self.answers.items() if promql.startswith(k)]
        return (found[0] if found else {}), None


def rollouts(reader: Any) -> Rollouts:
    return Rollouts(reader, lambda _: None, model_label="md", window="2m")


def test_one_query_per_signal_per_window_each_over_its_window() -> None:
    reader = Recording(
        {
            "sum by (namespace, md, version) (increase(": {
                ("ml", "young", "2"): 12.0,
                ("ml", "old", "2"): 900.0,
            }
        }
    )
    models = [md("young", timedelta(seconds=10)), md("old", timedelta(hours=1), shadow=True)]
    found = rollouts(reader).read(models, NOW.timestamp())
    by_version = len(queries.by_version("md", "1m"))
    # The young step's five signals over 60 s; the old one's five and its shadow over 120 s.
    assert len(reader.sent) == 2 * by_version + 1
    ranged = [("[" in q) for q in reader.sent]  # accuracy and drift are gauges, read as are
    assert ranged.count(True) == 2 * 3 + 1
    assert all("[60s]" in q for q in reader.sent[:by_version] if "[" in q)
    assert all("[120s]" in q for q in reader.sent[by_version:] if "[" in q)
    assert "onnxops_shadow_requests_total[120s]" in reader.sent[-1]
    assert found[("ml", "young")].candidate.requests == 12.0
    assert found[("ml", "old")].candidate.requests == 900.0


def test_after_a_failed_query_no_window_sends_more() -> None:
    reader = Recording({}, fail_after=0)
    models = [md("young", timedelta(seconds=10)), md("old", timedelta(hours=1))]
    found = rollouts(reader).read(models, NOW.timestamp())
    assert len(reader.sent) == 1  # the first failed; the rest would wait out their timeouts
    assert {k: r.error for k, r in found.items()} == {
        ("ml", "young"): "ConnectionError: refused",
        ("ml", "old"): "ConnectionError: refused",
    }
