"""Fault detection, pure: thresholds, anomaly scores (z-score and median/MAD) and the counting
that turns bad evaluations into faults. Time comes in as an argument; nothing here reads a
clock, Prometheus or the cluster, so every rule is a table-driven unit test.

An evaluation of a signal is good, bad or unknown (no series, no traffic, too little history,
a failed query). Following Argo Rollouts' analysis, unknown is never a failure: it neither
counts towards a fault nor clears one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from onnxops.api import Fault

Verdict = Literal["good", "bad", "unknown"]
# 1 / Φ⁻¹(3/4): scales a median absolute deviation to a standard deviation for normal data.
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class Evaluation:
    """One signal of one ModelDeployment at one evaluation."""

    signal: str
    verdict: Verdict
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    pods: tuple[str, ...] = ()


def unknown(signal: str, why: str) -> Evaluation:
    return Evaluation(signal, "unknown", message=why)


def above(
    signal: str, value: float | None, limit: float, *, what: str, unit: str = "", scale: float = 1
) -> Evaluation:
    """Bad when `value` exceeds `limit` (both in the signal's unit; `scale` only for messages)."""
    if value is None:
        return unknown(signal, f"no {what} data")
    shown = f"{what} {value * scale:.4g}{unit}, limit {limit * scale:.4g}{unit}"
    return Evaluation(signal, "bad" if value > limit else "good", value, limit, shown)


def below(signal: str, value: float | None, limit: float, *, what: str) -> Evaluation:
    """Bad when `value` falls under `limit` (accuracy)."""
    if value is None:
        return unknown(signal, f"no {what} data")
    shown = f"{what} {value:.4g}, minimum {limit:.4g}"
    return Evaluation(signal, "bad" if value < limit else "good", value, limit, shown)


def z_score(value: float, baseline: Sequence[float], floor: float) -> float:
    """Distance of `value` above the baseline's mean in standard deviations.

    `floor` bounds the deviation from below: a flat baseline (an error ratio that was always
    0) would otherwise make any wobble infinitely anomalous."""
    mean = statistics.fmean(baseline)
    deviation = statistics.pstdev(baseline, mean)
    return (value - mean) / max(deviation, floor)


def robust_score(value: float, baseline: Sequence[float], floor: float) -> float:
    """Like z_score, from the median and the scaled median absolute deviation: earlier spikes
    inside the window barely move it, where they inflate a standard deviation."""
    median = statistics.median(baseline)
    mad = statistics.median(abs(x - median) for x in baseline) * MAD_SCALE
    return (value - median) / max(mad, floor)


def baseline(
    samples: Iterable[tuple[float, float]], *, now: float, window_s: float, recent_s: float
) -> list[float]:
    """The values a current value is compared against: inside the window, but older than
    `recent_s`, so a fault that has lasted a few evaluations is not its own baseline."""
    return [v for t, v in samples if now - window_s <= t <= now - recent_s]


def anomaly(
    signal: str,
    value: float | None,
    history: Sequence[float],
    *,
    method: Literal["medianMAD", "zScore"],
    limit: float,
    min_samples: int,
    floor: float,
    what: str,
) -> Evaluation:
    """Bad when `value` lies more than `limit` deviations above its history (a drop in latency
    or errors is good news); unknown while the history is shorter than `min_samples`."""
    if value is None:
        return unknown(signal, f"no {what} data")
    if len(history) < min_samples:
        return unknown(signal, f"{len(history)}/{min_samples} samples of {what} history")
    score_of = robust_score if method == "medianMAD" else z_score
    score = score_of(value, history, floor)
    centre = statistics.median(history) if method == "medianMAD" else statistics.fmean(history)
    message = f"{what} {value:.4g} is {score:.1f} deviations from its usual {centre:.4g}"
    return Evaluation(signal, "bad" if score > limit else "good", score, limit, message)


@dataclass(frozen=True)
class Streak:
    """Consecutive bad evaluations of one signal, and when the run began."""

    bad: int = 0
    since: str | None = None


@dataclass(frozen=True)
class Track:
    """What the monitor remembers of one ModelDeployment between evaluations."""

    streaks: Mapping[str, Streak] = field(default_factory=dict)
    unreadable: int = 0
    """Consecutive evaluations at which its metrics could not be read."""


def judge(
    track: Track,
    evaluations: Iterable[Evaluation],
    standing: Iterable[Fault],
    *,
    failure_threshold: int,
    now: str,
) -> tuple[Track, list[Fault]]:
    """The new track and the faults that stand after this evaluation.

    A fault starts after `failure_threshold` consecutive bad evaluations, keeps its `since`
    while it stays bad or unknown, and clears at the first good one. `standing` (the faults in
    status) carries faults across an operator restart, which starts with empty streaks."""
    before: dict[str, Fault] = {f.signal: f for f in standing}
    streaks = dict(track.streaks)
    faults: list[Fault] = []
    for ev in evaluations:
        streak = streaks.get(ev.signal, Streak())
        old = before.get(ev.signal)
        if ev.verdict == "good":
            streaks[ev.signal] = Streak()
            continue
        if ev.verdict == "unknown":
            if old is not None:
                faults.append(old)
            continue
        streak = Streak(streak.bad + 1, streak.since or now)
        streaks[ev.signal] = streak
        if streak.bad >= failure_threshold or old is not None:
            faults.append(
                Fault(
                    signal=ev.signal,  # type: ignore[arg-type]
                    value=_finite(ev.value),
                    threshold=ev.threshold,
                    since=(old.since if old is not None else None) or streak.since,
                    message=ev.message,
                    pods=list(ev.pods),
                )
            )
    return replace(track, streaks=streaks), faults


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def readability(track: Track, problem: str | None) -> Track:
    """Count consecutive evaluations whose metrics could not be read (`problem` says why)."""
    return replace(track, unreadable=track.unreadable + 1 if problem else 0)


def fault_changes(
    before: Iterable[Fault], after: Iterable[Fault]
) -> tuple[list[Fault], list[Fault]]:
    """(started, cleared): the transitions worth one Event each."""
    old = {f.signal: f for f in before}
    new = {f.signal: f for f in after}
    started = [f for s, f in new.items() if s not in old]
    cleared = [f for s, f in old.items() if s not in new]
    return started, cleared
