"""Measurements of a rollout: the candidate beside the stable version, one per signal, each
Successful, Failed or Inconclusive, and the verdict they add up to. Pure.

Missing data is never a failure (Argo Rollouts' rule): too few requests, no feedback or an
unreachable Prometheus make a measurement inconclusive, which neither fails nor promotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onnxops.api import Measurement, RolloutAnalysis
from onnxops.reasons import RolloutSignal, Signal, Verdict

OK, BAD, UNKNOWN = Verdict.SUCCESSFUL, Verdict.FAILED, Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Side:
    """One version's readings over the analysis window (None: no series)."""

    requests: float | None = None
    error_ratio: float | None = None
    p99_s: float | None = None
    accuracy: float | None = None
    drift: float | None = None


@dataclass(frozen=True)
class Readings:
    """What Prometheus said about one rollout; `error`: it could not be read."""

    stable: Side = field(default_factory=Side)
    candidate: Side = field(default_factory=Side)
    shadow: dict[str, float] = field(default_factory=dict)
    """Mirrored requests by outcome (agree, disagree, error, dropped) in the window."""
    error: str | None = None


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _m(
    signal: str,
    verdict: Verdict,
    message: str,
    now: str,
    *,
    stable: float | None = None,
    candidate: float | None = None,
    threshold: float | None = None,
) -> Measurement:
    return Measurement.model_validate(
        {
            "signal": signal,
            "stable": stable,
            "candidate": candidate,
            "threshold": threshold,
            "verdict": verdict,
            "message": message,
            "time": now,
        }
    )


def mirrored(readings: Readings) -> float:
    """Mirrored requests the candidate answered or failed (dropped ones never reached it)."""
    s = readings.shadow
    return s.get("agree", 0.0) + s.get("disagree", 0.0) + s.get("error", 0.0)


def measure(
    spec: RolloutAnalysis, readings: Readings, *, shadow: bool, now: str
) -> list[Measurement]:
    """One measurement per signal (agreement only in shadow steps)."""
    signals: list[str] = [Signal.ERROR_RATE, Signal.LATENCY_P99, Signal.ACCURACY, Signal.DRIFT]
    if shadow:
        signals.append(RolloutSignal.AGREEMENT)
    if readings.error:
        why = f"Prometheus could not be read: {readings.error}"
        return [_m(s, UNKNOWN, why, now) for s in signals]
    served = mirrored(readings) if shadow else (readings.candidate.requests or 0.0)
    if served < spec.min_requests:
        what = "mirrored to" if shadow else "answered by"
        why = f"{served:.0f} requests {what} the candidate (minRequests {spec.min_requests})"
        return [_m(s, UNKNOWN, why, now) for s in signals]
    st, ca = readings.stable, readings.candidate
    out = [_error_rate(spec, st, ca, now), _latency(spec, st, ca, now)]
    out += [_accuracy(spec, st, ca, now), _drift(spec, ca, now)]
    if shadow:
        out.append(_agreement(spec, readings, now))
    return out


def _error_rate(spec: RolloutAnalysis, st: Side, ca: Side, now: str) -> Measurement:
    limit = spec.max_error_rate_increase
    if ca.error_ratio is None:
        return _m(Signal.ERROR_RATE, UNKNOWN, "no error ratio for the candidate", now)
    base = st.error_ratio or 0.0
    increase = ca.error_ratio - base
    verdict = BAD if increase > limit else OK
    return _m(
        Signal.ERROR_RATE,
        verdict,
        f"5xx ratio: candidate {_fmt(ca.error_ratio)} vs stable {_fmt(st.error_ratio)} "
        f"(increase {increase:.4g}, limit {limit:g})",
        now,
        stable=st.error_ratio,
        candidate=ca.error_ratio,
        threshold=limit,
    )


def _latency(spec: RolloutAnalysis, st: Side, ca: Side, now: str) -> Measurement:
    limit = spec.max_latency_ratio
    if ca.p99_s is None or not st.p99_s:
        why = "p99 unknown for " + ("the candidate" if ca.p99_s is None else "the stable version")
        return _m(Signal.LATENCY_P99, UNKNOWN, why, now, stable=st.p99_s, candidate=ca.p99_s)
    ratio = ca.p99_s / st.p99_s
    return _m(
        Signal.LATENCY_P99,
        BAD if ratio > limit else OK,
        f"p99: candidate {ca.p99_s * 1000:.4g} ms vs stable {st.p99_s * 1000:.4g} ms "
        f"(ratio {ratio:.3g}, limit {limit:g})",
        now,
        stable=st.p99_s,
        candidate=ca.p99_s,
        threshold=limit,
    )


def _accuracy(spec: RolloutAnalysis, st: Side, ca: Side, now: str) -> Measurement:
    limit = spec.max_accuracy_drop
    if ca.accuracy is None or st.accuracy is None:
        return _m(
            Signal.ACCURACY,
            UNKNOWN,
            "no ground-truth feedback for both versions",
            now,
            stable=st.accuracy,
            candidate=ca.accuracy,
        )
    drop = st.accuracy - ca.accuracy
    return _m(
        Signal.ACCURACY,
        BAD if drop > limit else OK,
        f"online accuracy: candidate {ca.accuracy:.4g} vs stable {st.accuracy:.4g} "
        f"(drop {drop:.4g}, limit {limit:g})",
        now,
        stable=st.accuracy,
        candidate=ca.accuracy,
        threshold=limit,
    )


def _drift(spec: RolloutAnalysis, ca: Side, now: str) -> Measurement:
    limit = spec.max_drift
    if ca.drift is None:
        return _m(Signal.DRIFT, UNKNOWN, "no drift reading for the candidate", now)
    return _m(
        Signal.DRIFT,
        BAD if ca.drift > limit else OK,
        f"input PSI seen by the candidate {ca.drift:.4g} (limit {limit:g})",
        now,
        candidate=ca.drift,
        threshold=limit,
    )


def _agreement(spec: RolloutAnalysis, readings: Readings, now: str) -> Measurement:
    limit = spec.min_agreement
    total = mirrored(readings)
    share = readings.shadow.get("agree", 0.0) / total if total else None
    if share is None:
        return _m(RolloutSignal.AGREEMENT, UNKNOWN, "no mirrored request answered", now)
    return _m(
        RolloutSignal.AGREEMENT,
        BAD if share < limit else OK,
        f"agreement with stable {share:.4g} over {total:.0f} mirrored requests (least {limit:g})",
        now,
        candidate=share,
        threshold=limit,
    )


REQUIRED = {Signal.ERROR_RATE, Signal.LATENCY_P99}
"""Signals a success needs conclusive (plus agreement in shadow steps); accuracy and drift
count only when there is data (no feedback is common, and not the candidate's fault)."""


def verdict(measurements: list[Measurement], *, shadow: bool) -> tuple[Verdict, Measurement | None]:
    """The measurement's overall verdict and the first failed (or inconclusive) signal."""
    failed = next((m for m in measurements if m.verdict == BAD), None)
    if failed is not None:
        return BAD, failed
    needed = REQUIRED | ({RolloutSignal.AGREEMENT} if shadow else set())
    unknown = next((m for m in measurements if m.signal in needed and m.verdict == UNKNOWN), None)
    if unknown is not None or not measurements:
        return UNKNOWN, unknown
    return OK, None
