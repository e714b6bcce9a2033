"""Measurements: each signal candidate beside stable, missing data inconclusive, and the
verdict they add up to (a failure anywhere fails; success needs traffic and the core signals)."""

from __future__ import annotations

from onnxops.api import RolloutAnalysis
from onnxops.reasons import RolloutSignal, Signal, Verdict
from onnxops.rollout.analysis import Readings, Side, measure, verdict

SPEC = RolloutAnalysis(min_requests=50)
NOW = "2026-01-01T00:00:00Z"


def judged(readings: Readings, *, shadow: bool = False) -> dict[str, Verdict]:
    return {m.signal: m.verdict for m in measure(SPEC, readings, shadow=shadow, now=NOW)}


def test_all_good() -> None:
    r = Readings(
        Side(500, 0.0, 0.010, 0.95, 0.05), Side(100, 0.01, 0.012, 0.94, 0.06), {"agree": 99}
    )
    assert set(judged(r).values()) == {Verdict.SUCCESSFUL}
    ms = measure(SPEC, r, shadow=True, now=NOW)
    assert verdict(ms, shadow=True) == (Verdict.SUCCESSFUL, None)
    err = next(m for m in ms if m.signal == Signal.ERROR_RATE)
    assert (err.stable, err.candidate, err.threshold) == (0.0, 0.01, 0.02)


def test_each_signal_fails_on_its_own_threshold() -> None:
    base = Side(500, 0.0, 0.010, 0.95, 0.05)
    assert judged(Readings(base, Side(100, 0.03, 0.01)))[Signal.ERROR_RATE] == Verdict.FAILED
    assert judged(Readings(base, Side(100, 0.0, 0.016)))[Signal.LATENCY_P99] == Verdict.FAILED
    assert judged(Readings(base, Side(100, 0.0, 0.01, 0.80)))[Signal.ACCURACY] == Verdict.FAILED
    assert judged(Readings(base, Side(100, 0.0, 0.01, None, 0.3)))[Signal.DRIFT] == Verdict.FAILED
    shadow = Readings(base, Side(60, 0.0, 0.01), {"agree": 50, "disagree": 10})
    assert judged(shadow, shadow=True)[RolloutSignal.AGREEMENT] == Verdict.FAILED


def test_no_feedback_is_inconclusive_but_does_not_block_success() -> None:
    r = Readings(Side(500, 0.0, 0.010), Side(100, 0.0, 0.010))
    assert judged(r)[Signal.ACCURACY] == Verdict.INCONCLUSIVE
    assert verdict(measure(SPEC, r, shadow=False, now=NOW), shadow=False)[0] == Verdict.SUCCESSFUL


def test_too_few_requests_makes_everything_inconclusive() -> None:
    r = Readings(Side(500, 0.0, 0.010), Side(49, 0.9, 0.5))
    assert set(judged(r).values()) == {Verdict.INCONCLUSIVE}
    ms = measure(SPEC, r, shadow=False, now=NOW)
    v, why = verdict(ms, shadow=False)
    assert v == Verdict.INCONCLUSIVE and why is not None and "49 requests" in why.message


def test_shadow_counts_mirrored_requests_not_served_ones() -> None:
    # In a shadow step the candidate answers mirrored requests only; dropped ones never reached it.
    r = Readings(Side(500, 0.0, 0.01), Side(500, 0.0, 0.01), {"agree": 30, "dropped": 400})
    assert set(judged(r, shadow=True).values()) == {Verdict.INCONCLUSIVE}


def test_unreachable_prometheus_is_inconclusive() -> None:
    ms = measure(SPEC, Readings(error="ConnectionError: refused"), shadow=True, now=NOW)
    assert len(ms) == 5 and {m.verdict for m in ms} == {Verdict.INCONCLUSIVE}
    assert "refused" in ms[0].message
