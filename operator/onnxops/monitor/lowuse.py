"""Long low use, pure: per ModelDeployment with `resize.shrink` enabled, which resources every
pod used far below its request over the whole window (the peak over `afterSeconds`, read from
Prometheus). What it finds goes to `status.lowUse`, not to the faults (see `api.LowUse`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from onnxops.api import LowUse, ModelDeployment
from onnxops.monitor.pods import PodFacts
from onnxops.monitor.prom import Reading

MIB = 1024 * 1024
# The series must reach back over this share of the window: the first sample in it can
# trail the window's start by a step or a scrape.
COVERED = 0.95


def _quantity(resource: str, amount: float) -> str:
    return f"{amount / MIB:.0f}Mi" if resource == "memory" else f"{amount * 1000:.0f}m"


def _coarse(resource: str, amount: float) -> float:
    """A peak rounded up to a millicore or a MiB: finer would rewrite status at every cycle
    as the window slides, for no difference to a resize."""
    unit = MIB if resource == "memory" else 0.001
    return round(math.ceil(amount / unit) * unit, 3)


def evaluate(
    md: ModelDeployment,
    pods: Sequence[PodFacts],
    readings: Mapping[str, Reading],
    *,
    at: float,
) -> list[LowUse]:
    """The resources in long low use on every pod of this ModelDeployment; none when shrink
    is off, when a reading failed or is missing, or when a pod's series do not span the
    window (unknown is never low)."""
    shrink = md.spec.remediation.resize.shrink
    window = shrink.after_seconds
    if not shrink.enabled or not pods:
        return []
    first = readings.get(f"first_seen:{window}")
    if first is None or first.error:
        return []
    for pod in pods:
        seen = first.values.get((pod.namespace, pod.name))
        if seen is None or at - seen < COVERED * window:
            return []
    found = []
    measures: tuple[tuple[str, str, Callable[[PodFacts], float | None]], ...] = (
        ("cpu", f"peak_cpu_cores:{window}", lambda p: p.cpu_request),
        ("memory", f"peak_memory_bytes:{window}", lambda p: p.memory_request),
    )
    for resource, query, request_of in measures:
        reading = readings.get(query)
        if reading is None or reading.error:
            continue
        peaks, ratios = {}, {}
        for pod in pods:
            peak, request = reading.values.get((pod.namespace, pod.name)), request_of(pod)
            if peak is None or not request:
                break  # one pod unknown: the resource is not known to be low
            peaks[pod.name], ratios[pod.name] = peak, peak / request
        else:
            worst = max(ratios.values())
            if worst < shrink.below:
                peak = _coarse(resource, max(peaks.values()))
                found.append(
                    LowUse(
                        resource=resource,  # type: ignore[arg-type]
                        peak=peak,
                        value=round(worst, 3),
                        threshold=shrink.below,
                        window_seconds=window,
                        message=(
                            f"{resource} peak {_quantity(resource, peak)} over {window}s, "
                            f"{worst:.0%} of the request"
                        ),
                        pods=sorted(peaks)[:100],  # the API's bound, as for faults
                    )
                )
    return found


def windows(models: Sequence[ModelDeployment]) -> set[int]:
    """The low-use windows this cycle's models need read (one set of queries each)."""
    return {
        md.spec.remediation.resize.shrink.after_seconds
        for md in models
        if md.spec.remediation.resize.shrink.enabled
    }
