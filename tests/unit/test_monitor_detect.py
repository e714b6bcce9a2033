"""monitor/detect.py: thresholds, anomaly scores and fault counting, table-driven."""

from __future__ import annotations

import pytest
from onnxops.api import Fault
from onnxops.monitor import detect
from onnxops.monitor.detect import Evaluation, Streak, Track


@pytest.mark.parametrize(
    ("value", "limit", "verdict"),
    [(None, 0.05, "unknown"), (0.0, 0.05, "good"), (0.05, 0.05, "good"), (0.051, 0.05, "bad")],
)
def test_above(value: float | None, limit: float, verdict: str) -> None:
    ev = detect.above("ErrorRate", value, limit, what="5xx ratio")
    assert ev.verdict == verdict
    assert ev.value == value


@pytest.mark.parametrize(
    ("value", "verdict"), [(None, "unknown"), (0.9, "good"), (0.85, "good"), (0.84, "bad")]
)
def test_below(value: float | None, verdict: str) -> None:
    assert detect.below("Accuracy", value, 0.85, what="accuracy").verdict == verdict


def test_latency_message_in_milliseconds() -> None:
    ev = detect.above("LatencyP99", 0.3, 0.25, what="p99", unit=" ms", scale=1000)
    assert ev.message == "p99 300 ms, limit 250 ms"


STEADY = [0.010, 0.011, 0.009, 0.010, 0.012, 0.010, 0.011, 0.009, 0.010, 0.010]


@pytest.mark.parametrize(
    ("method", "value", "history", "verdict"),
    [
        ("zScore", 0.010, STEADY, "good"),
        ("zScore", 0.050, STEADY, "bad"),
        ("medianMAD", 0.010, STEADY, "good"),
        ("medianMAD", 0.050, STEADY, "bad"),
        ("medianMAD", 0.001, STEADY, "good"),  # faster than usual is no fault
        ("zScore", 0.050, STEADY[:5], "unknown"),  # a fresh model: too little history
        ("zScore", None, STEADY, "unknown"),
    ],
)
def test_anomaly(method: str, value: float | None, history: list[float], verdict: str) -> None:
    ev = detect.anomaly(
        "LatencyAnomaly",
        value,
        history,
        method=method,  # type: ignore[arg-type]
        limit=3.0,
        min_samples=10,
        floor=0.0005,
        what="p99",
    )
    assert ev.verdict == verdict


def test_median_mad_shrugs_off_an_old_spike_that_blinds_the_z_score() -> None:
    history = [*STEADY, 1.0]  # one earlier spike inside the window
    assert detect.z_score(0.05, history, 0.0005) < 3  # the spike inflated the deviation
    assert detect.robust_score(0.05, history, 0.0005) > 3


def test_floor_keeps_a_flat_history_from_making_noise_an_anomaly() -> None:
    flat = [0.0] * 20
    assert detect.z_score(0.0005, flat, 0.001) == pytest.approx(0.5)
    assert detect.robust_score(0.01, flat, 0.001) == pytest.approx(10)


def test_baseline_leaves_out_recent_and_too_old_samples() -> None:
    samples = [(t, float(t)) for t in range(0, 100, 10)]
    assert detect.baseline(samples, now=100, window_s=60, recent_s=20) == [
        40.0,
        50.0,
        60.0,
        70.0,
        80.0,
    ]


def _run(verdicts: str, threshold: int = 3) -> list[list[Fault]]:
    """Faults after each evaluation of one signal: g=good, b=bad, u=unknown."""
    track, faults, out = Track(), [], []
    names = {"g": "good", "b": "bad", "u": "unknown"}
    for i, v in enumerate(verdicts):
        ev = Evaluation("ErrorRate", names[v], 0.5 if v == "b" else None, 0.05, "m")  # type: ignore[arg-type]
        track, faults = detect.judge(track, [ev], faults, failure_threshold=threshold, now=f"t{i}")
        out.append(faults)
    return out


@pytest.mark.parametrize(
    ("verdicts", "standing_after"),
    [
        ("bbb", [0, 0, 1]),  # the third consecutive bad evaluation makes the fault
        ("bbgbb", [0, 0, 0, 0, 0]),  # a good one resets the count
        ("bbubb", [0, 0, 0, 1, 1]),  # unknown neither counts nor resets
        ("bbbub", [0, 0, 1, 1, 1]),  # unknown keeps a standing fault
        ("bbbg", [0, 0, 1, 0]),  # the first good evaluation clears it
        ("uuuuu", [0, 0, 0, 0, 0]),  # unknown is never a fault
    ],
)
def test_consecutive_failures(verdicts: str, standing_after: list[int]) -> None:
    assert [len(f) for f in _run(verdicts)] == standing_after


def test_fault_since_is_the_first_bad_evaluation_of_the_run() -> None:
    faults = _run("gbbbb")
    assert faults[3][0].since == "t1"
    assert faults[4][0].since == "t1"


def test_standing_fault_from_status_survives_a_restart_with_its_since() -> None:
    standing = [Fault(signal="ErrorRate", value=0.4, threshold=0.05, since="earlier")]
    bad = Evaluation("ErrorRate", "bad", 0.5, 0.05, "now worse", ("p1",))
    track, faults = detect.judge(Track(), [bad], standing, failure_threshold=3, now="t")
    assert [(f.signal, f.since, f.value, f.pods) for f in faults] == [
        ("ErrorRate", "earlier", 0.5, ["p1"])
    ]
    assert track.streaks["ErrorRate"] == Streak(1, "t")


def test_readability_counts_consecutive_problems() -> None:
    track = Track()
    for problem, expected in [("down", 1), ("down", 2), (None, 0), ("down", 1)]:
        track = detect.readability(track, problem)
        assert track.unreadable == expected


def test_fault_changes() -> None:
    a, b, c = (Fault(signal=s) for s in ("ErrorRate", "Drift", "Accuracy"))  # type: ignore[arg-type]
    started, cleared = detect.fault_changes([a, b], [b, c])
    assert [f.signal for f in started] == ["Accuracy"]
    assert [f.signal for f in cleared] == ["ErrorRate"]
