"""Sizing a container's resources up or down (heal's resize arithmetic), in the one
quantity form heal writes (`pools.quantity_text`). Pure.
"""

from __future__ import annotations

from decimal import Decimal

from onnxops.pools import MIB, Resources, quantity, quantity_text

# A shrink keeps this much over the peak use seen, and never goes under the floor.
HEADROOM = Decimal("1.2")
FLOOR = {"cpu": Decimal("0.01"), "memory": 32 * MIB}


def grown(
    resources: Resources, name: str, factor: float, *, minimum: Decimal = Decimal(0)
) -> Resources:
    """Requests and limits of one resource multiplied by `factor` (at least `minimum` more)."""
    out = {part: dict(values) for part, values in resources.items()}
    for part in ("requests", "limits"):
        current = out.get(part, {}).get(name)
        if current is None:
            continue
        value = quantity(current)
        out.setdefault(part, {})[name] = quantity_text(
            name, max(value * Decimal(str(factor)), value + minimum)
        )
    return out


def lowered(resources: Resources, name: str, factor: float, *, peak: Decimal) -> Resources:
    """Requests and limits of one resource divided by `factor`, but never below the peak use
    plus headroom, nor the floor, nor a request above its limit; never raised."""
    keep = max(peak * HEADROOM, FLOOR[name])
    out = {part: dict(values) for part, values in resources.items()}
    new_request = None
    for part in ("requests", "limits"):
        current = out.get(part, {}).get(name)
        if current is None:
            continue
        value = quantity(current)
        wanted = max(value / Decimal(str(factor)), keep, new_request or Decimal(0))
        if wanted < value:
            out[part][name] = quantity_text(name, wanted)
        if part == "requests":
            new_request = quantity(out[part][name])
    return out
